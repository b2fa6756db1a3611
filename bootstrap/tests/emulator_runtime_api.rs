//! The Runtime and Invoke APIs' semantics, through the real `lambda-emulator` binary.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use emulator_support::*;
use http::StatusCode;

fn bash_runtime() -> String {
    runtime_fixture("bash_curl_runtime.sh")
}

fn python_runtime() -> String {
    runtime_fixture("python_runtime.py")
}

#[tokio::test]
async fn bash_runtime_echoes_with_the_request_id() {
    let emulator = EmulatorProcess::start(&[], &[&bash_runtime()]);
    let reply = emulator.invoke(r#"{"hello":"world"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.text(), r#"{"hello":"world"}"#);
    assert_eq!(reply.header("x-amz-function-error"), None);
    let request_id = reply.header("x-amzn-requestid").expect("X-Amzn-RequestId").to_owned();
    assert_eq!(request_id.len(), 36, "{request_id}");
    // The runtime's stdout passes through to the emulator's.
    emulator
        .stdout
        .wait_for(&format!("bash runtime handling {request_id}"), Duration::from_secs(5))
        .unwrap();
    let stats = emulator.stats().await;
    assert_eq!(stats["invokes_received"], 1);
    assert_eq!(stats["answers_delivered"], 1);
}

#[tokio::test]
async fn bash_runtime_error_is_an_unhandled_function_error() {
    let emulator = EmulatorProcess::start(&[], &[&bash_runtime()]);
    let reply = emulator.invoke(r#"{"please":"fail"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    let body = reply.json();
    assert_eq!(body["errorType"], "EventFailure");
    assert_eq!(body["errorMessage"], "the event asked to fail");
    // The runtime keeps serving after a function error.
    let again = emulator.invoke(r#"{"fine":true}"#).await;
    assert_eq!(again.text(), r#"{"fine":true}"#);
    assert_eq!(emulator.stats().await["function_errors"], 1);
}

#[tokio::test]
async fn unknown_and_twice_answered_request_ids_get_400() {
    // The test is the runtime here; the emulator's runtime process only sleeps.
    let emulator = EmulatorProcess::start(&["--timeout", "10"], &["sleep", "300"]);
    let invoke = emulator.spawn_invoke(r#"{"n":1}"#);
    let next = get(&emulator.url("/2018-06-01/runtime/invocation/next"), &[]).await;
    assert_eq!(next.status, StatusCode::OK);
    assert_eq!(next.header("content-type"), Some("application/json"));
    assert_eq!(next.text(), r#"{"n":1}"#);
    let id = next.header("lambda-runtime-aws-request-id").unwrap().to_owned();
    let answer = |kind: &str| emulator.url(&format!("/2018-06-01/runtime/invocation/{id}/{kind}"));

    let first = post(&answer("response"), br#"{"answer":1}"#.to_vec(), &[]).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    let twice = post(&answer("response"), br#"{"answer":2}"#.to_vec(), &[]).await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert_eq!(twice.json()["errorType"], "InvalidStateTransition");
    let late_error = post(&answer("error"), br#"{"errorType":"E","errorMessage":"m"}"#.to_vec(), &[]).await;
    assert_eq!(late_error.status, StatusCode::BAD_REQUEST);
    let unknown = post(
        &emulator.url("/2018-06-01/runtime/invocation/00000000-0000-4000-8000-000000000000/response"),
        b"{}".to_vec(),
        &[],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.json()["errorType"], "InvalidRequestID");

    let reply = invoke.await.unwrap();
    assert_eq!(reply.text(), r#"{"answer":1}"#);
    assert_eq!(reply.header("x-amzn-requestid"), Some(id.as_str()));
    let stats = emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 1);
    assert_eq!(stats["answers_refused"], 3);
}

#[tokio::test]
async fn a_response_over_6_mb_gets_413_and_fails_the_invocation() {
    let emulator = EmulatorProcess::start(&["--timeout", "10"], &["sleep", "300"]);
    let invoke = emulator.spawn_invoke("{}");
    let next = get(&emulator.url("/2018-06-01/runtime/invocation/next"), &[]).await;
    let id = next.header("lambda-runtime-aws-request-id").unwrap().to_owned();
    let big = vec![b'a'; 6 * 1024 * 1024 + 1];
    let refused = post(&emulator.url(&format!("/2018-06-01/runtime/invocation/{id}/response")), big, &[]).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);

    let reply = invoke.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    let body = reply.json();
    assert_eq!(body["errorType"], "Function.ResponseSizeTooLarge");
    assert!(body["errorMessage"].as_str().unwrap().contains("6291457 bytes"), "{body}");
    assert_eq!(emulator.stats().await["responses_too_large"], 1);
}

#[tokio::test]
async fn init_error_fails_the_pending_invoke_and_the_next_invoke_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let start_count = dir.path().join("starts");
    let gate = dir.path().join("gate");
    let emulator = EmulatorProcess::start(
        &[
            "--env",
            &format!("RUNTIME_STARTS_FILE={}", start_count.display()),
            "--env",
            &format!("RUNTIME_INIT_ERROR_GATE={}", gate.display()),
        ],
        &[&python_runtime()],
    );
    let invoke = emulator.spawn_invoke(r#"{"action":"echo"}"#);
    wait_for_stat(&emulator, "invokes_received", 1).await;
    std::fs::write(&gate, "").unwrap();

    let failed = invoke.await.unwrap();
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.header("x-amz-function-error"), Some("Unhandled"));
    let body = failed.json();
    assert_eq!(body["errorType"], "Runtime.InitTestError");
    assert_eq!(body["errorMessage"], "cannot init");

    let next = emulator.invoke(r#"{"action":"echo","n":2}"#).await;
    assert_eq!(next.header("x-amz-function-error"), None, "{}", next.text());
    assert_eq!(next.json()["n"], 2);
    assert_eq!(std::fs::read_to_string(&start_count).unwrap(), "2");
    let stats = emulator.stats().await;
    assert_eq!(stats["init_errors"], 1);
    assert_eq!(stats["runtime_starts"], 2);
}

#[tokio::test]
async fn next_carries_lambda_headers_trace_id_client_context_and_environment() {
    let task_root = tempfile::tempdir().unwrap();
    let task_root = task_root.path().canonicalize().unwrap();
    let emulator = EmulatorProcess::start_in(
        &task_root,
        &[
            "--function-name",
            "my-fn",
            "--region",
            "eu-west-1",
            "--account-id",
            "111122223333",
            "--memory",
            "256",
            "--timeout",
            "5",
            "--env",
            "CUSTOM_FLAG=on",
        ],
        &[&python_runtime()],
    );
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let client_context = r#"{"custom":{"tenant":"acme"},"client":{"app_title":"t"}}"#;
    let encoded = base64::engine::general_purpose::STANDARD.encode(client_context);
    let reply = post(
        &emulator.url("/2015-03-31/functions/my-fn/invocations"),
        br#"{"action":"context"}"#.to_vec(),
        &[("X-Amzn-Trace-Id", trace), ("X-Amz-Client-Context", &encoded)],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = reply.json();
    let headers = &seen["headers"];
    assert_eq!(headers["lambda-runtime-trace-id"], trace);
    assert_eq!(headers["lambda-runtime-client-context"], client_context);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(
        headers["lambda-runtime-invoked-function-arn"],
        "arn:aws:lambda:eu-west-1:111122223333:function:my-fn"
    );
    assert_eq!(headers["lambda-runtime-aws-request-id"], reply.header("x-amzn-requestid").unwrap());
    let deadline: u64 = headers["lambda-runtime-deadline-ms"].as_str().unwrap().parse().unwrap();
    let left = deadline as i64 - seen["now_ms"].as_i64().unwrap();
    assert!((3_000..=5_000).contains(&left), "deadline is {left} ms away, expected about 5 s");

    let env = &seen["env"];
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], emulator.addr.as_str());
    assert_eq!(env["AWS_LAMBDA_FUNCTION_NAME"], "my-fn");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST");
    assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256");
    assert_eq!(env["AWS_REGION"], "eu-west-1");
    assert_eq!(env["AWS_DEFAULT_REGION"], "eu-west-1");
    assert_eq!(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/my-fn");
    assert!(env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap().contains("/[$LATEST]"), "{env}");
    assert_eq!(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    assert_eq!(env["LAMBDA_TASK_ROOT"], task_root.to_str().unwrap());
    assert_eq!(env["CUSTOM_FLAG"], "on");

    // Without a trace header the emulator makes a sampled X-Ray id of its own.
    let fresh = emulator.invoke(r#"{"action":"context"}"#).await.json();
    let trace = fresh["headers"]["lambda-runtime-trace-id"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = trace.split(';').collect();
    assert_eq!(parts.len(), 3, "{trace}");
    let root: Vec<&str> = parts[0].trim_start_matches("Root=").split('-').collect();
    assert_eq!(root[0], "1");
    let epoch = u64::from_str_radix(root[1], 16).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert!(now.abs_diff(epoch) < 60, "{trace}");
    assert_eq!(root[2].len(), 24);
    assert_eq!(parts[1].trim_start_matches("Parent=").len(), 16);
    assert_eq!(parts[2], "Sampled=1");
    assert!(fresh["headers"].get("lambda-runtime-client-context").is_none());
}

#[tokio::test]
async fn runtime_output_passes_through_and_emulator_lines_are_prefixed() {
    let emulator = EmulatorProcess::start(&[], &[&python_runtime()]);
    let reply = emulator.invoke(r#"{"action":"print","line":"hello from the function"}"#).await;
    assert_eq!(reply.json()["printed"], true);
    emulator
        .stdout
        .wait_for("hello from the function\n", Duration::from_secs(5))
        .unwrap();
    let stderr = emulator.stderr.text();
    assert!(!stderr.is_empty());
    for line in stderr.lines() {
        assert!(line.starts_with("[lambda-emulator] "), "unprefixed emulator line: {line:?}");
    }
}

#[tokio::test]
async fn unknown_paths_get_404() {
    let emulator = EmulatorProcess::start(&[], &["sleep", "300"]);
    let reply = get(&emulator.url("/2018-06-01/runtime/nothing"), &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
