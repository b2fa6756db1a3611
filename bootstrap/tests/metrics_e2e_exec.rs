//! End to end, exec mode, Forwarder output: an exec child killed by SIGKILL (as the kernel's OOM
//! killer does) is answered `Runtime.ExitError` and counted in `aws.lambda.enhanced.out_of_memory`
//! and `errors` by the bootstrap, since no Datadog component sees that kill in the Forwarder's
//! mode; the next invocation is served by a restarted child, a cold start again.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

use std::time::{Duration, Instant};

use emulator_support::EmulatorProcess;
use function::{free_udp_port, has_tag, metric_lines, name};
use serde_json::Value;

fn bash_runtime() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exec/bash_runtime.sh").to_owned()
}

fn wait_for_lines(emulator: &EmulatorProcess, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let lines = metric_lines(&emulator.stdout.text());
        if wanted(&lines) {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "metric lines never arrived; stdout:\n{}\nstderr:\n{}",
            emulator.stdout.text(),
            emulator.stderr.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_child_killed_by_sigkill_counts_an_out_of_memory_and_an_error() {
    let handler = format!("_HANDLER={}", bash_runtime());
    let statsd = format!("DD_DOGSTATSD_PORT={}", free_udp_port());
    let emulator = EmulatorProcess::start(
        &[
            "--function-name",
            "my-fn",
            "--env",
            &handler,
            "--env",
            "DD_FLUSH_TO_LOG=true",
            "--env",
            &statsd,
        ],
        &[env!("CARGO_BIN_EXE_bootstrap")],
    );

    let killed = emulator.invoke(r#"{"sigkill": true}"#).await;
    assert_eq!(killed.header("x-amz-function-error"), Some("Unhandled"), "{}", killed.text());
    let body = killed.json();
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    assert!(
        body["errorMessage"].as_str().unwrap_or_default().contains("signal: killed"),
        "{body}"
    );
    let request_id = killed.header("x-amzn-requestid").unwrap_or_default().to_owned();

    let lines = wait_for_lines(&emulator, |lines| {
        lines.iter().any(|l| name(l) == "aws.lambda.enhanced.out_of_memory")
    });
    let count = |metric: &str| lines.iter().filter(|l| name(l) == metric).count();
    assert_eq!(count("aws.lambda.enhanced.out_of_memory"), 1, "{lines:?}");
    assert_eq!(count("aws.lambda.enhanced.errors"), 1, "{lines:?}");
    assert_eq!(count("aws.lambda.enhanced.invocations"), 1, "{lines:?}");
    let oom = lines.iter().find(|l| name(l) == "aws.lambda.enhanced.out_of_memory").unwrap();
    assert_eq!(oom["v"], 1, "{oom}");
    assert!(has_tag(oom, "functionname:my-fn") && has_tag(oom, "cold_start:true"), "{oom}");

    // The child is started again: the next invocation is answered, as a new cold start.
    let echoed = emulator.invoke(r#"{"after": "the kill"}"#).await;
    assert_eq!(echoed.json(), serde_json::json!({"after": "the kill"}), "{}", echoed.text());
    assert_ne!(echoed.header("x-amzn-requestid").unwrap_or_default(), request_id);
    let lines = wait_for_lines(&emulator, |lines| {
        lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.invocations").count() == 2
    });
    let second = lines
        .iter()
        .filter(|l| name(l) == "aws.lambda.enhanced.invocations")
        .nth(1)
        .unwrap();
    assert!(has_tag(second, "cold_start:true"), "a restarted child is a cold start: {second}");
    assert_eq!(
        lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.out_of_memory").count(),
        1,
        "the second invocation is not an OOM: {lines:?}"
    );
}
