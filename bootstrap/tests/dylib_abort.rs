//! End to end: a handler library that aborts the process (Rust's allocation failure, a plain
//! `abort()`), served by the real `bootstrap` under the real `lambda-emulator`. The invocation
//! gets exactly one answer from the dying bootstrap (`Runtime.OutOfMemory` naming the failed
//! size, or `Runtime.ExitError` "signal: aborted"), its metrics (and trace) are printed as for
//! any failed invocation, the bootstrap is gone, and the next invocation is served by a fresh
//! process.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/crash.rs"]
mod crash;

#[path = "traces_support/mod.rs"]
mod traces_support;

use crash::{
    assert_a_fresh_process_serves, assert_one_answer_then_the_process_ended, count, error_of, forwarder, request_id, runtime_pid, ERRORS,
    INVOCATIONS, OOM,
};
use emulator_support::wait_for_stat;
use function::{has_tag, name, tags, Function};

/// Far beyond any address space: every allocator refuses it, whatever the overcommit policy.
const HUGE: u64 = 1 << 62;

async fn stat(function: &Function, field: &str) -> u64 {
    function.emulator.stats().await[field].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_failure_is_answered_as_out_of_memory_and_counted() {
    let function = Function::start("alloc_failure", &forwarder(), &[]);
    let old_pid = runtime_pid(&function).await;
    let reply = function.invoke(&format!(r#"{{"bytes": {HUGE}}}"#)).await;
    let id = request_id(&reply);
    let error = error_of(&reply);
    assert_eq!(error["errorType"], "Runtime.OutOfMemory", "{error}");
    assert_eq!(
        error["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: signal: aborted (memory allocation of {HUGE} bytes failed)"),
    );
    assert_one_answer_then_the_process_ended(&function).await;

    // The enhanced lines of the aborted invocation, as the metrics processor prints them.
    let oom = function.wait_for_metric("out_of_memory", |l| name(l) == OOM);
    let lines = function.metric_lines();
    let of = |metric: &str| lines.iter().find(|l| name(l) == metric).cloned().unwrap();
    assert_eq!(
        (count(&function, INVOCATIONS), count(&function, ERRORS), count(&function, OOM)),
        (1, 1, 1)
    );
    for line in [&oom, &of(ERRORS), &of(INVOCATIONS)] {
        assert_eq!(line["v"], 1, "{line}");
        assert!(line["e"].is_u64(), "{line}");
        for tag in ["functionname:my-fn", "memorysize:512", "cold_start:true"] {
            assert!(has_tag(line, tag), "{tag} missing: {line}");
        }
        assert!(tags(line).last().unwrap().starts_with("dd_lambda_layer:"), "{line}");
    }
    // Reported by the metrics processor as any failed invocation: the rest of its metrics too.
    for metric in ["aws.lambda.enhanced.runtime_duration", "aws.lambda.enhanced.response_latency"] {
        assert_eq!(count(&function, metric), 1, "{metric}");
    }
    // Both lines come from the bootstrap's stderr, relayed by the emulator on its own schedule,
    // and the report is written after the answer: waited for, not assumed.
    let alloc_message = format!("memory allocation of {HUGE} bytes failed");
    function.assert_stderr_holds(&alloc_message);
    let report = format!(
        "during invocation {id} after an allocation of {HUGE} bytes failed; answered it as Runtime.OutOfMemory (Runtime API status 202); its metrics and trace were sent as for any failed invocation"
    );
    function.assert_stderr_holds(&report);

    assert_a_fresh_process_serves(&function, r#"{"bytes": 64}"#, serde_json::json!({"allocated": 64}), old_pid).await;
    // The fresh process's invocation carries the same tag set as the aborted one: both cold.
    let lines = function.metric_lines();
    let invocations: Vec<_> = lines.iter().filter(|l| name(l) == INVOCATIONS).collect();
    assert_eq!(tags(invocations[0]), tags(invocations[1]));
    assert_eq!(
        (count(&function, ERRORS), count(&function, OOM)),
        (1, 1),
        "the served invocation is no error"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_is_answered_as_an_exit_error_and_counted_as_an_error_only() {
    let function = Function::start("abort", &forwarder(), &[]);
    let old_pid = runtime_pid(&function).await;
    let reply = function.invoke(r#"{"abort": true}"#).await;
    let id = request_id(&reply);
    let error = error_of(&reply);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    assert_eq!(
        error["errorMessage"],
        format!("RequestId: {id} Error: Runtime exited with error: signal: aborted")
    );
    assert_one_answer_then_the_process_ended(&function).await;
    function.wait_for_metric("errors", |l| name(l) == ERRORS);
    assert_eq!(
        (count(&function, INVOCATIONS), count(&function, ERRORS), count(&function, OOM)),
        (1, 1, 0)
    );
    // Written after the answer, and relayed by the emulator: waited for.
    let report = format!("during invocation {id}; answered it as Runtime.ExitError (Runtime API status 202)");
    function.assert_stderr_holds(&report);
    assert_a_fresh_process_serves(&function, r#"{"abort": false}"#, serde_json::json!({"aborted": false}), old_pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_in_flight_only_the_one_whose_allocation_failed_is_out_of_memory() {
    let function = Function::start(
        "alloc_failure",
        &[("DD_FLUSH_TO_LOG", "true"), ("AWS_LAMBDA_MAX_CONCURRENCY", "2")],
        &[],
    );
    let slow = function.emulator.spawn_invoke(r#"{"bytes": 64, "sleep_ms": 5000}"#);
    function.wait_for_handoffs(1);
    // The handoff is the `/next` answer; give the bootstrap a moment to call the handler.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let failing = function.invoke(&format!(r#"{{"bytes": {HUGE}}}"#)).await;
    let slow = slow.await.unwrap();
    assert_eq!(error_of(&failing)["errorType"], "Runtime.OutOfMemory");
    let bystander = error_of(&slow);
    assert_eq!(
        bystander,
        serde_json::json!({
            "errorType": "Runtime.ExitError",
            "errorMessage": format!("RequestId: {} Error: Runtime exited with error: signal: aborted", request_id(&slow)),
            "stackTrace": [],
        })
    );
    wait_for_stat(&function.emulator, "runtime_exits", 1).await;
    let stats = function.emulator.stats().await;
    // Both answered by the bootstrap (the emulator answers an invocation left in flight itself,
    // which would not count as a delivered answer).
    assert_eq!(stats["answers_delivered"], 2, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    function.wait_for_metric("out_of_memory", |l| name(l) == OOM);
    let start = std::time::Instant::now();
    while count(&function, ERRORS) < 2 && start.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        (count(&function, INVOCATIONS), count(&function, ERRORS), count(&function, OOM)),
        (2, 2, 1),
        "{}",
        function.emulator.stdout.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_enhanced_metrics_the_abort_is_still_answered_and_nothing_is_printed() {
    let function = Function::start(
        "alloc_failure",
        &[("DD_FLUSH_TO_LOG", "true"), ("DD_ENHANCED_METRICS", "false")],
        &[],
    );
    let reply = function.invoke(&format!(r#"{{"bytes": {HUGE}}}"#)).await;
    assert_eq!(error_of(&reply)["errorType"], "Runtime.OutOfMemory");
    assert_one_answer_then_the_process_ended(&function).await;
    assert_eq!(stat(&function, "runtime_exits").await, 1);
    // Written after the answer, and relayed by the emulator: waited for.
    function.assert_stderr_holds("answered it as Runtime.OutOfMemory");
    assert!(function.metric_lines().is_empty(), "{}", function.emulator.stdout.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aborted_invocations_trace_carries_the_error() {
    let function = Function::start("alloc_failure", &[("DD_FLUSH_TO_LOG", "true"), ("DD_TRACE_ENABLED", "true")], &[]);
    let reply = function.invoke(&format!(r#"{{"bytes": {HUGE}}}"#)).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply)["errorType"], "Runtime.OutOfMemory");
    let spans = traces_support::trace_of(&function.emulator, &id);
    traces_support::assert_well_formed(&spans);
    let lambda = traces_support::span(&spans, "aws.lambda");
    assert_eq!(lambda.error, 1, "{lambda:#?}");
    assert_eq!(lambda.meta("error.type"), Some("Runtime.OutOfMemory"), "{lambda:#?}");
    assert!(
        lambda
            .meta("error.message")
            .is_some_and(|m| m.ends_with(&format!("(memory allocation of {HUGE} bytes failed)"))),
        "{lambda:#?}"
    );
    assert_eq!(lambda.meta("cold_start"), Some("true"), "{lambda:#?}");
}
