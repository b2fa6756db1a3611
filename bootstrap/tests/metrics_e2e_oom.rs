//! End to end, exec mode: a child that prints a runtime's out-of-memory message (Rust's
//! allocation failure, Python's `MemoryError`, Node's heap limit, Java's `OutOfMemoryError`,
//! Go's `fatal error: runtime: out of memory`, .NET's `OutOfMemoryException`) is counted in
//! `aws.lambda.enhanced.out_of_memory` once, by whoever the no-double-counting table names: the
//! Forwarder counts its own 5 patterns from the log line, so the bootstrap leaves them to it in
//! the Forwarder and API modes (enhanced metrics are Forwarder lines in both) and counts the
//! others. A child that prints the message and answers anyway is counted as Datadog's Extension
//! counts it (any OOM log line of an invocation, success or not), without an error.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/intake.rs"]
mod intake;

use std::time::{Duration, Instant};

use emulator_support::EmulatorProcess;
use function::{free_udp_port, has_tag, metric_lines, name};
use serde_json::Value;

const OUT_OF_MEMORY: &str = "aws.lambda.enhanced.out_of_memory";
const ERRORS: &str = "aws.lambda.enhanced.errors";
/// The last enhanced metric of an invocation's flush: once it is printed, the flush is complete.
const RUNTIME_DURATION: &str = "aws.lambda.enhanced.runtime_duration";

fn oom_runtime() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/exec/oom_runtime.sh").to_owned()
}

fn start(handler: &str, env: &[(&str, &str)]) -> EmulatorProcess {
    let mut args: Vec<String> = ["--function-name", "my-fn"].iter().map(ToString::to_string).collect();
    for (k, v) in [("_HANDLER", handler)].iter().chain(env) {
        args.push("--env".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    EmulatorProcess::start(&args, &[env!("CARGO_BIN_EXE_bootstrap")])
}

fn count(lines: &[Value], metric: &str) -> usize {
    lines.iter().filter(|l| name(l) == metric).count()
}

/// Waits until `n` invocations' flushes are printed; returns every metric line.
fn wait_for_flushes(emulator: &EmulatorProcess, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let lines = metric_lines(&emulator.stdout.text());
        if count(&lines, RUNTIME_DURATION) >= n {
            return lines;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{n} flushes never arrived; stdout:\n{}\nstderr:\n{}",
            emulator.stdout.text(),
            emulator.stderr.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the emulator's copy of stderr comes to hold `text` (within 10 s): it relays stdout
/// and stderr through two pipes, so the metric lines can be read before the line the child
/// wrote first.
fn stderr_holds(emulator: &EmulatorProcess, text: &str) -> bool {
    let start = Instant::now();
    while !emulator.stderr.text().contains(text) {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

/// What each language's OOM does under the bootstrap: (event, dies, counted by the bootstrap in
/// the Forwarder and API modes, the message on stderr).
const CASES: &[(&str, bool, bool, &str)] = &[
    (r#"{"oom":"rust"}"#, true, true, "memory allocation of 1099511627776 bytes failed"),
    (r#"{"oom":"python"}"#, true, false, "MemoryError"),
    (r#"{"oom":"node"}"#, true, false, "JavaScript heap out of memory"),
    (r#"{"oom":"java"}"#, true, false, "java.lang.OutOfMemoryError"),
    (r#"{"oom":"go"}"#, true, false, "fatal error: runtime: out of memory"),
    (r#"{"oom":"dotnet"}"#, true, true, "System.OutOfMemoryException"),
    (r#"{"oom":"rust","survive":true}"#, false, true, "memory allocation of"),
    (r#"{"oom":"python","survive":true}"#, false, false, "MemoryError"),
    (r#"{"plain":true}"#, false, false, ""),
];

/// Runs every case in order and checks the Forwarder lines after each flush.
async fn run_cases(emulator: &EmulatorProcess) -> Vec<Value> {
    let (mut ooms, mut errors) = (0, 0);
    let mut lines = Vec::new();
    for (n, (event, dies, counted, message)) in CASES.iter().enumerate() {
        let reply = emulator.invoke(event).await;
        if *dies {
            assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"), "{event}: {}", reply.text());
            assert_eq!(reply.json()["errorType"], "Runtime.ExitError", "{event}");
            errors += 1;
        } else {
            assert_eq!(reply.header("x-amz-function-error"), None, "{event}: {}", reply.text());
            assert_eq!(reply.json(), serde_json::from_str::<Value>(event).unwrap());
        }
        if *counted {
            ooms += 1;
        }
        lines = wait_for_flushes(emulator, n + 1);
        assert_eq!(count(&lines, OUT_OF_MEMORY), ooms, "after {event}: {lines:#?}");
        assert_eq!(count(&lines, ERRORS), errors, "after {event}");
        assert!(stderr_holds(emulator, message), "{event}: the child's message is copied");
    }
    for oom in lines.iter().filter(|l| name(l) == OUT_OF_MEMORY) {
        assert_eq!(oom["v"], 1, "{oom}");
        assert!(has_tag(oom, "functionname:my-fn"), "the invocation's tags: {oom}");
    }
    lines
}

#[tokio::test]
async fn forwarder_mode_counts_the_oom_lines_the_forwarder_does_not() {
    let statsd = free_udp_port().to_string();
    let emulator = start(&oom_runtime(), &[("DD_FLUSH_TO_LOG", "true"), ("DD_DOGSTATSD_PORT", &statsd)]);
    let lines = run_cases(&emulator).await;
    // Each death restarts the child: the invocation after it is a cold start again.
    let rust = lines.iter().find(|l| name(l) == OUT_OF_MEMORY).unwrap();
    assert!(has_tag(rust, "cold_start:true"), "the first invocation: {rust}");
    // The child's own DogStatsD metric, sent before each death, is not lost either.
    assert_eq!(count(&lines, "oom_runtime.invocation"), CASES.len(), "{lines:#?}");
}

#[tokio::test]
async fn api_mode_prints_enhanced_metrics_for_the_forwarder_and_posts_only_custom_ones() {
    let intake = intake::Intake::start(intake::IntakeOptions::default(), intake::Journal::default()).await;
    let statsd = free_udp_port().to_string();
    let host = intake.url();
    let emulator = start(
        &oom_runtime(),
        &[("DATADOG_HOST", &host), ("DD_API_KEY", "test-key"), ("DD_DOGSTATSD_PORT", &statsd)],
    );
    run_cases(&emulator).await;
    assert!(
        intake.wait_for_requests(1, Duration::from_secs(10)).await,
        "the custom metrics are posted"
    );
    // Every custom point arrives (the last flush may still be on its way).
    let start = Instant::now();
    let posted = loop {
        let posted = intake::points(&intake.requests());
        if posted.iter().filter(|p| p.0 == "oom_runtime.invocation").count() == CASES.len() || start.elapsed() > Duration::from_secs(10) {
            break posted;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        posted.iter().filter(|p| p.0 == "oom_runtime.invocation").count(),
        CASES.len(),
        "{posted:?}"
    );
    assert!(
        posted.iter().all(|p| !p.0.starts_with("aws.lambda.enhanced.")),
        "enhanced metrics go to the Forwarder in API mode, as the library sends them: {posted:?}"
    );
}

#[tokio::test]
async fn an_oom_line_during_init_counts_with_the_init_failure() {
    let handler = format!("{} init-oom", oom_runtime());
    let emulator = start(&handler, &[("DD_FLUSH_TO_LOG", "true")]);
    let reply = emulator.invoke("{}").await;
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"), "{}", reply.text());
    assert!(
        reply.json()["errorMessage"].as_str().unwrap().contains("signal: aborted"),
        "{}",
        reply.text()
    );
    let start = Instant::now();
    let lines = loop {
        let lines = metric_lines(&emulator.stdout.text());
        if count(&lines, OUT_OF_MEMORY) >= 1 || start.elapsed() > Duration::from_secs(10) {
            break lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        count(&lines, OUT_OF_MEMORY),
        1,
        "stdout:\n{}\nstderr:\n{}",
        emulator.stdout.text(),
        emulator.stderr.text()
    );
    assert_eq!(count(&lines, ERRORS), 1, "{lines:#?}");
    let oom = lines.iter().find(|l| name(l) == OUT_OF_MEMORY).unwrap();
    assert!(has_tag(oom, "cold_start:true"), "init's tags: {oom}");
}
