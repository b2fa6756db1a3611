//! What can stop a benchmark run, each with what to do about it.
use std::path::PathBuf;

use crate::http1::HttpError;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{path} is missing; build everything first: cargo build --release --workspace")]
    MissingBinary { path: PathBuf },
    #[error("case {case}: {what} is missing at {path}; {hint}")]
    MissingPrerequisite {
        case: String,
        what: &'static str,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("unknown case `{0}`; known cases: {1}")]
    UnknownCase(String, String),
    #[error("cannot start lambda-emulator for case {case}: {source}")]
    SpawnEmulator {
        case: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lambda-emulator for case {case} did not come up: {reason}; its last output:\n{output}")]
    EmulatorDown { case: String, reason: String, output: String },
    #[error("case {case}: talking to lambda-emulator failed: {source}")]
    Http {
        case: String,
        #[source]
        source: HttpError,
    },
    #[error("case {case}: the invoke answered {status} {function_error}: {body}")]
    BadAnswer {
        case: String,
        status: u16,
        function_error: String,
        body: String,
    },
    #[error("case {case}: the runtime never polled /next within {seconds} s of its start")]
    NoColdStart { case: String, seconds: u64 },
    #[error("cannot start the local Datadog intake on 127.0.0.1: {0}")]
    Intake(#[source] std::io::Error),
    #[error("cannot draw the plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
