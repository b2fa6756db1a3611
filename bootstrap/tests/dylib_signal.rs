//! End to end: a handler library that kills the process with a fatal signal (a write through an
//! invalid pointer, a stack overflow, an undefined instruction, a division by zero in machine
//! code, a read past a mapped file's end), served by the real `bootstrap` under the real
//! `lambda-emulator`. The invocation gets exactly one answer from the dying bootstrap,
//! `Runtime.ExitError` worded as Lambda words the signal, its metrics (and trace) are sent as for
//! any failed invocation, the bootstrap dies of that very signal, and the next invocation is
//! served by a fresh process. A crash during init, with nothing to answer, ends the process as
//! before.
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

use std::time::{Duration, Instant};

use crash::{
    assert_a_fresh_process_serves, assert_one_answer_then_the_process_ended, count, error_of, forwarder, request_id, runtime_pid, ERRORS,
    INVOCATIONS, OOM,
};
use emulator_support::wait_for_stat;
use function::{has_tag, name, Function};
use serde_json::{json, Value};

/// Lambda's answer for a runtime that died of `description` under invocation `id`.
fn exit_error(id: &str, description: &str) -> Value {
    json!({
        "errorType": "Runtime.ExitError",
        "errorMessage": format!("RequestId: {id} Error: Runtime exited with error: {description}"),
        "stackTrace": [],
    })
}

/// After the signal: the bootstrap's answer was the only one, and the process died of
/// `signal` (as the emulator saw its exit status: `signal: segmentation fault`, maybe with
/// `(core dumped)` after it).
async fn assert_one_answer_then_death_by(function: &Function, signal: &str) {
    assert_one_answer_then_the_process_ended(function).await;
    let death = format!(r#"runtime exited; the next invoke starts a new one description="signal: {signal}"#);
    let stderr = function.emulator.stderr.wait_for(&death, Duration::from_secs(10));
    assert!(stderr.is_ok(), "the bootstrap did not die of {signal}: {stderr:?}");
}

/// The `invocations` and `errors` lines of the dead invocation (no `out_of_memory`), printed by
/// the metrics processor as for any failed invocation.
fn assert_counted_as_an_error(function: &Function) {
    let errors = function.wait_for_metric("errors", |l| name(l) == ERRORS);
    assert_eq!(
        (count(function, INVOCATIONS), count(function, ERRORS), count(function, OOM)),
        (1, 1, 0),
        "{}",
        function.emulator.stdout.text()
    );
    for tag in ["functionname:my-fn", "memorysize:512", "cold_start:true"] {
        assert!(has_tag(&errors, tag), "{tag} missing: {errors}");
    }
    assert_eq!(
        count(function, "aws.lambda.enhanced.runtime_duration"),
        1,
        "the processor's own report"
    );
}

/// The bootstrap's line on stderr about the invocation, once it is there.
fn report_line(function: &Function, id: &str) -> String {
    let start = Instant::now();
    loop {
        let stderr = function.stderr();
        if let Some(line) = stderr.lines().find(|l| l.contains(&format!("during invocation {id}"))) {
            return line.to_owned();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no report line for {id}:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_is_answered_as_an_exit_error_and_counted() {
    let function = Function::start("segfault", &forwarder(), &[]);
    let old_pid = runtime_pid(&function).await;
    let reply = function.invoke(r#"{"segfault": true}"#).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply), exit_error(&id, "signal: segmentation fault"));
    assert_one_answer_then_death_by(&function, "segmentation fault").await;
    assert_counted_as_an_error(&function);
    assert_eq!(
        report_line(&function, &id),
        format!(
            "bootstrap: the process got a fault (SIGSEGV: segmentation fault) during invocation {id}; answered it as Runtime.ExitError (Runtime API status 202); its metrics and trace were sent as for any failed invocation. The process ends; Lambda starts a new one."
        )
    );
    assert_a_fresh_process_serves(&function, r#"{"segfault": false}"#, json!({"segfault": false}), old_pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segfault_on_a_thread_of_the_handlers_own_is_answered_too() {
    let function = Function::start("segfault", &forwarder(), &[]);
    let reply = function.invoke(r#"{"segfault": true, "thread": true}"#).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply), exit_error(&id, "signal: segmentation fault"));
    assert_one_answer_then_death_by(&function, "segmentation fault").await;
    assert_counted_as_an_error(&function);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_keeps_stds_message_and_is_answered_as_an_abort() {
    let function = Function::start("stack_overflow", &forwarder(), &[]);
    let old_pid = runtime_pid(&function).await;
    let reply = function.invoke(r#"{"overflow": true}"#).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply), exit_error(&id, "signal: aborted (stack overflow)"));
    assert_one_answer_then_death_by(&function, "aborted").await;
    assert_counted_as_an_error(&function);
    // std's message is relayed from the bootstrap's stderr by the emulator, on its own
    // schedule (the death the emulator logged says nothing of it): waited for.
    let stderr = function.wait_for_stderr("has overflowed its stack");
    assert!(
        stderr.contains("thread 'main'") && stderr.contains("has overflowed its stack"),
        "{stderr}"
    );
    assert!(
        report_line(&function, &id).starts_with(&format!(
            "bootstrap: the process aborted (SIGABRT) during invocation {id} after its handler overflowed its stack; answered it as Runtime.ExitError (Runtime API status 202)"
        )),
        "{stderr}"
    );
    assert_a_fresh_process_serves(&function, r#"{"overflow": false}"#, json!({"overflow": false}), old_pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn illegal_instructions_floating_point_and_bus_errors_are_answered_with_their_signal() {
    for (signal, description) in [
        ("SIGILL", "illegal instruction"),
        ("SIGFPE", "floating point exception"),
        ("SIGBUS", "bus error"),
    ] {
        let function = Function::start("fault", &forwarder(), &[]);
        let reply = function.invoke(&format!(r#"{{"signal": "{signal}"}}"#)).await;
        let id = request_id(&reply);
        assert_eq!(error_of(&reply), exit_error(&id, &format!("signal: {description}")), "{signal}");
        assert_one_answer_then_death_by(&function, description).await;
        assert_counted_as_an_error(&function);
        assert!(
            report_line(&function, &id).contains(&format!(
                "the process got a fault ({signal}: {description}) during invocation {id}; answered it as Runtime.ExitError"
            )),
            "{}",
            function.stderr()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_in_flight_both_are_answered_with_the_segfault() {
    let function = Function::start("segfault", &[("DD_FLUSH_TO_LOG", "true"), ("AWS_LAMBDA_MAX_CONCURRENCY", "2")], &[]);
    let slow = function.emulator.spawn_invoke(r#"{"sleep_ms": 5000}"#);
    function.wait_for_handoffs(1);
    // The handoff is the `/next` answer; give the bootstrap a moment to call the handler.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failing = function.invoke(r#"{"segfault": true}"#).await;
    let slow = slow.await.unwrap();
    assert_eq!(error_of(&failing), exit_error(&request_id(&failing), "signal: segmentation fault"));
    assert_eq!(error_of(&slow), exit_error(&request_id(&slow), "signal: segmentation fault"));
    wait_for_stat(&function.emulator, "runtime_exits", 1).await;
    let stats = function.emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 2, "both answered by the bootstrap: {stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_faulted_invocations_trace_carries_the_error() {
    let function = Function::start("segfault", &[("DD_FLUSH_TO_LOG", "true"), ("DD_TRACE_ENABLED", "true")], &[]);
    let reply = function.invoke(r#"{"segfault": true}"#).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply)["errorType"], "Runtime.ExitError");
    let spans = traces_support::trace_of(&function.emulator, &id);
    traces_support::assert_well_formed(&spans);
    let lambda = traces_support::span(&spans, "aws.lambda");
    assert_eq!(lambda.error, 1, "{lambda:#?}");
    assert_eq!(lambda.meta("error.type"), Some("Runtime.ExitError"), "{lambda:#?}");
    assert_eq!(
        lambda.meta("error.message"),
        Some(format!("RequestId: {id} Error: Runtime exited with error: signal: segmentation fault").as_str()),
        "{lambda:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_during_init_is_the_inits_error() {
    let function = Function::start("echo", &[("DD_FLUSH_TO_LOG", "true"), ("HANDLERS_EXAMPLE_INIT", "segfault")], &[]);
    let reply = tokio::time::timeout(Duration::from_secs(30), function.invoke("{}"))
        .await
        .expect("the invoke of a runtime that crashed during init hangs");
    let error = error_of(&reply);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    assert_eq!(
        error["errorMessage"],
        "Runtime exited with error: signal: segmentation fault",
        "{error}\nstderr:\n{}",
        function.stderr()
    );
    let stats = function.emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 0, "{stats}");
    let line = "bootstrap: the process got a fault (SIGSEGV: segmentation fault) during the handler's init; reported it as Runtime.ExitError (Runtime API status 202)";
    function.assert_stderr_holds(line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_failure_during_init_is_an_out_of_memory_init_error() {
    let function = Function::start(
        "echo",
        &[("DD_FLUSH_TO_LOG", "true"), ("HANDLERS_EXAMPLE_INIT", "alloc_failure")],
        &[],
    );
    let reply = tokio::time::timeout(Duration::from_secs(30), function.invoke("{}"))
        .await
        .expect("the invoke of a runtime whose init failed an allocation hangs");
    // Only the bootstrap knows the cause: Lambda would see a process killed by SIGABRT.
    let error = error_of(&reply);
    assert_eq!(error["errorType"], "Runtime.OutOfMemory", "{error}");
    assert_eq!(
        error["errorMessage"], "Runtime exited with error: signal: aborted (memory allocation of 4611686018427387904 bytes failed)",
        "{error}"
    );
    let line = "during the handler's init after an allocation of 4611686018427387904 bytes failed; reported it as Runtime.OutOfMemory (Runtime API status 202)";
    function.assert_stderr_holds(line);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_on_a_runtime_worker_is_answered_too() {
    // With several invocations at once, handlers run on the multi-thread runtime's workers,
    // whose alternate stacks are std's own.
    let function = Function::start(
        "stack_overflow",
        &[("DD_FLUSH_TO_LOG", "true"), ("AWS_LAMBDA_MAX_CONCURRENCY", "2")],
        &[],
    );
    let reply = function.invoke(r#"{"overflow": true}"#).await;
    let id = request_id(&reply);
    assert_eq!(error_of(&reply), exit_error(&id, "signal: aborted (stack overflow)"));
    assert_one_answer_then_death_by(&function, "aborted").await;
    // std's message, relayed by the emulator on its own schedule: waited for.
    function.assert_stderr_holds("thread 'tokio-rt-worker'");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_on_a_thread_the_library_spawned_still_ends_the_process() {
    // The library's own copy of std gives its threads no alternate stack, so the kernel cannot
    // run any handler there: the process dies of SIGSEGV, unanswered by us, as before; Lambda
    // (the emulator) answers, and the next invocation is served.
    let function = Function::start("stack_overflow", &forwarder(), &[]);
    let reply = tokio::time::timeout(Duration::from_secs(30), function.invoke(r#"{"overflow": true, "thread": true}"#))
        .await
        .expect("the invoke hangs");
    let id = request_id(&reply);
    let message = error_of(&reply)["errorMessage"].as_str().unwrap().to_owned();
    // `(core dumped)` may follow where core dumps are on.
    assert!(
        message.starts_with(&format!(
            "RequestId: {id} Error: Runtime exited with error: signal: segmentation fault"
        )),
        "{message}"
    );
    let stats = function.emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 0, "{stats}");
    let reply = function.invoke(r#"{"overflow": false}"#).await;
    assert_eq!(reply.json(), json!({"overflow": false}));
}
