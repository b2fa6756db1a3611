//! What the emulator emulates: the function's identity and limits, and the runtime command.
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::faults::Fault;

/// The function as Lambda would describe it, with Lambda's own defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionIdentity {
    pub name: String,
    pub version: String,
    pub region: String,
    pub account_id: String,
    pub memory_mb: u32,
    pub timeout: Duration,
}

impl Default for FunctionIdentity {
    fn default() -> Self {
        Self {
            name: "function".to_owned(),
            version: "$LATEST".to_owned(),
            region: "us-east-1".to_owned(),
            account_id: "123456789012".to_owned(),
            memory_mb: 128,
            timeout: Duration::from_secs(3),
        }
    }
}

impl FunctionIdentity {
    /// `arn:aws:lambda:REGION:ACCOUNT:function:NAME`, as `/next` reports it.
    pub fn arn(&self) -> String {
        format!("arn:aws:lambda:{}:{}:function:{}", self.region, self.account_id, self.name)
    }

    /// The timeout as Lambda words it in "Task timed out after 3.00 seconds".
    pub fn timeout_seconds_text(&self) -> String {
        format!("{:.2}", self.timeout.as_secs_f64())
    }
}

/// Where the runtime's stdout goes. Lambda sends both streams to CloudWatch; a local invoke
/// keeps stdout for the responses, so it sends the runtime's stdout to stderr.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StdoutTarget {
    #[default]
    Stdout,
    Stderr,
    /// Straight to `/dev/null`, never through the emulator: for benchmarks, so the runtime's
    /// telemetry lines cost the emulator nothing.
    Discard,
}

/// The runtime process to start and restart.
#[derive(Clone, Debug)]
pub struct RuntimeCommand {
    pub program: OsString,
    pub args: Vec<OsString>,
    /// `K=V` pairs set on top of the Lambda variables (the `--env` flags).
    pub extra_env: Vec<(String, String)>,
    /// `LAMBDA_TASK_ROOT` and the runtime's working directory.
    pub task_root: PathBuf,
    pub stdout: StdoutTarget,
}

/// Everything one emulator needs.
#[derive(Clone, Debug)]
pub struct EmulatorOptions {
    pub listen: SocketAddr,
    pub function: FunctionIdentity,
    pub runtime: RuntimeCommand,
    /// Misbehaviour on purpose, for test suites (see [`super::faults`]); empty in normal use.
    pub faults: Vec<Fault>,
}

impl EmulatorOptions {
    /// `AWS_LAMBDA_MAX_CONCURRENCY` as the runtime will see it (an `--env` pair first, else the
    /// emulator's own environment); 1 when unset or not a positive number.
    pub fn max_concurrency(&self, own_env: impl Fn(&str) -> Option<String>) -> usize {
        const NAME: &str = "AWS_LAMBDA_MAX_CONCURRENCY";
        let from_flags = self.runtime.extra_env.iter().rev().find(|(k, _)| k == NAME).map(|(_, v)| v.clone());
        from_flags
            .or_else(|| own_env(NAME))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(extra_env: Vec<(String, String)>) -> EmulatorOptions {
        EmulatorOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            function: FunctionIdentity::default(),
            runtime: RuntimeCommand {
                program: "true".into(),
                args: vec![],
                extra_env,
                task_root: PathBuf::from("/tmp"),
                stdout: StdoutTarget::Stdout,
            },
            faults: vec![],
        }
    }

    #[test]
    fn arn_and_timeout_text_follow_lambda() {
        let f = FunctionIdentity {
            name: "f".into(),
            timeout: Duration::from_millis(1500),
            ..FunctionIdentity::default()
        };
        assert_eq!(f.arn(), "arn:aws:lambda:us-east-1:123456789012:function:f");
        assert_eq!(f.timeout_seconds_text(), "1.50");
    }

    #[test]
    fn max_concurrency_prefers_flags_then_own_env() {
        assert_eq!(options(vec![]).max_concurrency(|_| None), 1);
        assert_eq!(options(vec![]).max_concurrency(|_| Some("4".into())), 4);
        let flagged = options(vec![("AWS_LAMBDA_MAX_CONCURRENCY".into(), "2".into())]);
        assert_eq!(flagged.max_concurrency(|_| Some("4".into())), 2);
        assert_eq!(options(vec![]).max_concurrency(|_| Some("zero".into())), 1);
        assert_eq!(options(vec![]).max_concurrency(|_| Some("0".into())), 1);
    }
}
