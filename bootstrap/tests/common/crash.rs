// Shared by the tests of a handler library that kills the process (`dylib_abort`,
// `dylib_signal`; included with `#[path]`): what the dying bootstrap answered, printed and left.
#![allow(dead_code)]
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator_support::{wait_for_stat, Reply};
use crate::function::{name, Function};

pub const OOM: &str = "aws.lambda.enhanced.out_of_memory";
pub const ERRORS: &str = "aws.lambda.enhanced.errors";
pub const INVOCATIONS: &str = "aws.lambda.enhanced.invocations";

pub fn forwarder() -> [(&'static str, &'static str); 1] {
    [("DD_FLUSH_TO_LOG", "true")]
}

pub fn count(function: &Function, metric: &str) -> usize {
    function.metric_lines().iter().filter(|l| name(l) == metric).count()
}

/// The error body the invoke got, after checking it was delivered as a function error.
pub fn error_of(reply: &Reply) -> Value {
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"), "{}", reply.text());
    reply.json()
}

pub fn request_id(reply: &Reply) -> String {
    reply.header("x-amzn-requestid").unwrap().to_owned()
}

pub async fn runtime_pid(function: &Function) -> u64 {
    function.emulator.stats().await["runtime_pid"].as_u64().unwrap()
}

/// The runtime exited, was not asked to, and the one failed answer was the only one.
pub async fn assert_one_answer_then_the_process_ended(function: &Function) {
    wait_for_stat(&function.emulator, "runtime_exits", 1).await;
    let stats = function.emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 1, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "a second answer was attempted: {stats}");
    assert_eq!(stats["function_errors"], 1, "{stats}");
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
}

/// The next invocation is served, by a new process on a cold start that prints its metrics.
pub async fn assert_a_fresh_process_serves(function: &Function, event: &str, answer: Value, old_pid: u64) {
    let reply = function.invoke(event).await;
    assert!(reply.header("X-Amz-Function-Error").is_none(), "{}", reply.text());
    assert_eq!(reply.json(), answer);
    let stats = function.emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 2, "{stats}");
    assert_ne!(stats["runtime_pid"].as_u64(), Some(old_pid), "{stats}");
    assert_eq!(stats["answers_delivered"], 2, "{stats}");
    let start = Instant::now();
    while count(function, INVOCATIONS) < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the fresh process printed no invocations line:\n{}",
            function.emulator.stdout.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
