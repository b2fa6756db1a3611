//! A Lambda emulator written to AWS's documentation and the Runtime Interface Emulator's
//! behaviour, shared by the `lambda-emulator` binary and `bootstrap invoke`.
//!
//! One listener serves:
//! - the Invoke API, `POST /2015-03-31/functions/{name}/invocations` (any name), answered as
//!   Lambda's synchronous `Invoke`: 200, `X-Amzn-RequestId`, and `X-Amz-Function-Error:
//!   Unhandled` on a function error, a timeout (`Sandbox.Timedout`), a runtime exit
//!   (`Runtime.ExitError`) or an init error; streamed responses are relayed chunk by chunk;
//! - the Runtime API, `/2018-06-01/runtime/...`, with Lambda's semantics ([`runtime`]);
//! - the Extensions API, `/2020-01-01/extension/...` (INVOKE and SHUTDOWN events);
//! - our own addition for test suites, `GET /2015-03-31/emulator/stats`: a JSON object of
//!   counters that only grow ([`StatsSnapshot`]): `invokes_received`, `answers_delivered`,
//!   `answers_refused` (duplicated or late `/response` and `/error`), `function_errors`,
//!   `timeouts`, `runtime_starts`, `runtime_exits`, `init_errors`, `responses_too_large`,
//!   `faults_injected`; and two facts about the current runtime for benches: `runtime_pid` and
//!   `first_next_after_start_us` (spawn to its first `/next`), `null` when unknown.
//!
//! For test suites, the hidden `--fault KIND[@N]` flag (repeatable) makes the emulator misbehave
//! once, for the N-th invocation the runtime takes (default the first), so a runtime's handling of
//! a broken Runtime API is tested against this emulator rather than a mock ([`faults`]):
//! `next-missing-request-id` (an extra `/next` answer without a request id, then the invocation
//! intact), `next-bad-deadline` (a non-numeric `Lambda-Runtime-Deadline-Ms`),
//! `next-bad-client-context` (a `Lambda-Runtime-Client-Context` that is not JSON), `reset-next`
//! (the `/next` that would hand the invocation over is dropped unanswered; the invocation stays
//! queued) and `reset-response` (the invocation's first `/response` or `/error` is dropped unread;
//! it stays unanswered).
//!
//! The runtime runs in a process group of its own, started at once (the init phase) and again on
//! the invoke after a timeout, exit or init error. Invocations run one at a time, or up to
//! `AWS_LAMBDA_MAX_CONCURRENCY` when the runtime's environment sets it.
mod body;
pub mod cli;
mod extensions;
pub mod faults;
mod ids;
mod invoke;
pub mod local_invoke;
pub mod log_writer;
mod options;
mod process;
mod runtime;
mod sandbox;
mod server;
mod stats;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use options::{EmulatorOptions, FunctionIdentity, RuntimeCommand, StdoutTarget};
pub use server::Emulator;
pub use stats::StatsSnapshot;

/// Why the emulator, or a local invoke, could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source}; choose another address with --listen")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime `{program}`: {source}; check that the command exists and is executable")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the emulator is shutting down and starts no new runtime")]
    ShuttingDown,
    #[error("cannot read the event file {path}: {source}")]
    EventFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot find the current executable to run as the runtime: {0}; pass the runtime command explicitly")]
    CurrentExe(#[source] std::io::Error),
    #[error("invoking the function through the emulator at {url} failed: {reason}")]
    Invoke { url: String, reason: String },
}
