//! Bad input, each tried on the real `bootstrap` under the real `lambda-emulator`: every
//! invocation gets exactly one answer, with a clear error, and the next one is served by the same
//! process.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use emulator_support::EmulatorProcess;
use runtime_support::*;
use serde_json::json;

fn start_with(handler: &str, extra_flags: &[&str]) -> EmulatorProcess {
    let mut flags = vec!["--timeout", RELAXED_TIMEOUT, "--env", "RUST_BACKTRACE=0"];
    flags.extend_from_slice(extra_flags);
    start(&example_handler(handler), &flags)
}

#[tokio::test]
async fn an_event_that_does_not_fit_a_typed_handler_is_an_unmarshal_error() {
    let emulator = start_with("typed", &[]);
    let body = function_error(&emulator.invoke(r#"{"id": "not a number", "items": []}"#).await);
    assert_eq!(body["errorType"], "Runtime.UnmarshalError", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains("handlers_example::Order") && message.contains("[id]"), "{message}");
    let body = function_error(&emulator.invoke("not json at all").await);
    assert_eq!(body["errorType"], "Runtime.UnmarshalError", "{body}");
    let reply = emulator.invoke(r#"{"id": 9, "items": ["a", "b", "c"]}"#).await;
    assert_eq!(function_response(&reply), json!({"id": 9, "item_count": 3}));
    assert_one_answer_each_from_one_process(&emulator, 3).await;
}

#[tokio::test]
async fn a_response_that_does_not_serialize_is_a_marshal_error() {
    let emulator = start_with("unserializable", &[]);
    for _ in 0..2 {
        let body = function_error(&emulator.invoke("{}").await);
        assert_eq!(body["errorType"], "Runtime.MarshalError", "{body}");
        assert!(body["errorMessage"].as_str().unwrap().contains("key must be a string"), "{body}");
    }
    assert_one_answer_each_from_one_process(&emulator, 2).await;
}

#[tokio::test]
async fn a_response_over_6_mb_is_response_size_too_large() {
    const SEVEN_MB: usize = 7 * 1024 * 1024;
    let emulator = start_with("big", &[]);
    let body = function_error(&emulator.invoke(&format!(r#"{{"bytes": {SEVEN_MB}}}"#)).await);
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains(&SEVEN_MB.to_string()) && message.contains("6291456"), "{message}");
    // Just under the limit still goes through, whole.
    let just_under = 6 * 1024 * 1024 - 16;
    let reply = emulator.invoke(&format!(r#"{{"bytes": {just_under}}}"#)).await;
    assert_eq!(reply.body.len(), just_under);
    assert_eq!(function_response(&reply).as_str().unwrap().len(), just_under - 2);
    assert_one_answer_each_from_one_process(&emulator, 2).await;
}

#[tokio::test]
async fn a_zero_length_event_is_an_error_for_json_handlers_and_empty_bytes_for_raw_ones() {
    let emulator = start_with("echo", &[]);
    let body = function_error(&emulator.invoke("").await);
    assert_eq!(body["errorType"], "Runtime.UnmarshalError", "{body}");
    assert!(body["errorMessage"].as_str().unwrap().contains("empty"), "{body}");
    assert_eq!(
        function_response(&emulator.invoke(r#"{"after": "empty"}"#).await),
        json!({"after": "empty"})
    );
    assert_one_answer_each_from_one_process(&emulator, 2).await;

    let emulator = start_with("raw_echo", &[]);
    let reply = emulator.invoke("").await;
    assert_eq!(reply.header("x-amz-function-error"), None, "{}", reply.text());
    assert!(reply.body.is_empty(), "{}", reply.text());
    assert_one_answer_each_from_one_process(&emulator, 1).await;
}

#[tokio::test]
async fn a_handler_error_is_answered_with_its_type_and_message() {
    let emulator = start_with("error", &[]);
    for message in ["card declined", "out of stock"] {
        let reply = emulator.invoke(&json!({ "message": message }).to_string()).await;
        let body = function_error(&reply);
        assert_eq!(
            body,
            json!({"errorType": "handlers_example::ExampleError", "errorMessage": message, "stackTrace": []})
        );
    }
    let stats = emulator.stats().await;
    assert_eq!(stats["function_errors"], 2, "{stats}");
    assert_one_answer_each_from_one_process(&emulator, 2).await;
}

/// Invokes twice with `--fault FAULT` on the first invocation; returns the first answer after
/// checking the second was served normally by the same process.
async fn with_fault_on_the_first_invocation(fault: &str) -> (EmulatorProcess, emulator_support::Reply) {
    let emulator = start_with("echo", &["--fault", fault]);
    let first = emulator.invoke(r#"{"n": 1}"#).await;
    let second = emulator.invoke(r#"{"n": 2}"#).await;
    assert_eq!(function_response(&second), json!({"n": 2}));
    let stats = emulator.stats().await;
    assert_eq!(stats["faults_injected"], 1, "{stats}");
    assert_one_answer_each_from_one_process(&emulator, 2).await;
    (emulator, first)
}

#[tokio::test]
async fn a_next_answer_without_a_request_id_is_skipped_and_the_loop_goes_on() {
    // The emulator first hands over a copy of invocation 1 without its request id (nobody can
    // answer that), then invocation 1 itself.
    let (emulator, first) = with_fault_on_the_first_invocation("next-missing-request-id").await;
    assert_eq!(function_response(&first), json!({"n": 1}));
    wait_for_runtime_line(&emulator, "the bootstrap's report of the broken /next", |line| {
        line.contains("ERROR") && line.contains("Lambda-Runtime-Aws-Request-Id")
    });
}

#[tokio::test]
async fn a_non_numeric_deadline_fails_that_invocation_only() {
    let (_emulator, first) = with_fault_on_the_first_invocation("next-bad-deadline").await;
    let body = function_error(&first);
    assert_eq!(body["errorType"], "Runtime.InvalidInvocationHeader", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("Lambda-Runtime-Deadline-Ms") && message.contains("\"soon\""),
        "{message}"
    );
}

#[tokio::test]
async fn a_client_context_that_is_not_json_fails_that_invocation_only() {
    let (_emulator, first) = with_fault_on_the_first_invocation("next-bad-client-context").await;
    let body = function_error(&first);
    assert_eq!(body["errorType"], "Runtime.InvalidInvocationHeader", "{body}");
    assert!(
        body["errorMessage"].as_str().unwrap().contains("Lambda-Runtime-Client-Context"),
        "{body}"
    );
}

#[tokio::test]
async fn a_next_request_dropped_by_the_api_is_retried() {
    let (emulator, first) = with_fault_on_the_first_invocation("reset-next").await;
    assert_eq!(function_response(&first), json!({"n": 1}));
    wait_for_runtime_line(&emulator, "the bootstrap's retry warning", |line| {
        line.contains("WARN") && line.contains("/next")
    });
}
