//! Timeouts, runtime exits, extensions and shutdown, streaming and concurrency, through the real
//! `lambda-emulator` binary.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use std::time::Duration;

use bytes::BytesMut;
use emulator_support::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

fn python_runtime() -> String {
    runtime_fixture("python_runtime.py")
}

#[tokio::test]
async fn timeout_kills_the_runtime_and_the_next_invoke_gets_a_fresh_one() {
    let emulator = EmulatorProcess::start(&["--timeout", "1"], &[&python_runtime()]);
    let before = emulator.invoke(r#"{"action":"context"}"#).await.json();

    let reply = emulator.invoke(r#"{"action":"sleep","seconds":30}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    let body = reply.json();
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert_eq!(body["errorMessage"], format!("{request_id} Task timed out after 1.00 seconds"));

    let after = emulator.invoke(r#"{"action":"context"}"#).await.json();
    assert_ne!(before["pid"], after["pid"], "the runtime was not restarted");
    assert_eq!(after["env"]["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand");
    let stats = emulator.stats().await;
    assert_eq!(stats["timeouts"], 1);
    assert_eq!(stats["runtime_starts"], 2);
    assert_eq!(stats["function_errors"], 1);
}

#[tokio::test]
async fn runtime_exit_fails_the_invoke_and_the_runtime_is_restarted() {
    let emulator = EmulatorProcess::start(&[], &[&python_runtime()]);
    let reply = emulator.invoke(r#"{"action":"exit","code":3}"#).await;
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    let body = reply.json();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert_eq!(
        body["errorMessage"],
        format!("RequestId: {request_id} Error: Runtime exited with error: exit status 3")
    );

    let next = emulator.invoke(r#"{"action":"echo","again":true}"#).await;
    assert_eq!(next.json()["again"], true);
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_exits"], 1);
    assert_eq!(stats["runtime_starts"], 2);
}

#[tokio::test]
async fn a_killed_runtime_is_reported_as_lambda_words_it() {
    // The test is the runtime; the runtime process is a `sleep` the test kills mid-invocation.
    let emulator = EmulatorProcess::start(&["--timeout", "10"], &["sleep", "300"]);
    let invoke = emulator.spawn_invoke("{}");
    let next = get(&emulator.url("/2018-06-01/runtime/invocation/next"), &[]).await;
    assert_eq!(next.status, StatusCode::OK);
    let runtime_pid = runtime_pid(&emulator);
    // SAFETY: kill(2) on the runtime process this test's emulator started.
    assert_eq!(unsafe { libc::kill(runtime_pid, libc::SIGKILL) }, 0);
    let body = invoke.await.unwrap().json();
    assert_eq!(body["errorType"], "Runtime.ExitError");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: signal: killed"),
        "{body}"
    );
}

/// The runtime's pid, from the emulator's "runtime started pid=N" log line.
fn runtime_pid(emulator: &EmulatorProcess) -> libc::pid_t {
    let stderr = emulator.stderr.wait_for("runtime started pid=", Duration::from_secs(5)).unwrap();
    let rest = stderr.split("runtime started pid=").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn extensions_get_invoke_and_shutdown_and_the_runtime_flushes_on_sigterm() {
    let mut emulator = EmulatorProcess::start(&["--env", "RUNTIME_EXTENSION=1"], &[&python_runtime()]);
    emulator
        .stdout
        .wait_for("extension registered 200", Duration::from_secs(10))
        .unwrap();
    let reply = emulator.invoke(r#"{"action":"echo"}"#).await;
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    emulator
        .stdout
        .wait_for(
            &format!("extension got INVOKE {request_id} arn=arn:aws:lambda:us-east-1:123456789012:function:function"),
            Duration::from_secs(5),
        )
        .unwrap();

    let status = emulator.terminate();
    assert!(status.success(), "{status:?}");
    let stdout = emulator.stdout.wait_for("final flush done", Duration::from_secs(5)).unwrap();
    let shutdown = stdout.find("extension got SHUTDOWN reason=spindown").expect(&stdout);
    let flushed = stdout.find("runtime got SIGTERM; final flush done").unwrap();
    assert!(shutdown < flushed, "{stdout}");
}

#[tokio::test]
async fn streamed_responses_are_relayed_as_they_arrive() {
    let emulator = EmulatorProcess::start(&[], &[&python_runtime()]);
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let event = serde_json::json!({
        "action": "stream",
        "chunks": ["first-chunk;", "second-chunk;", "last-chunk"],
        "gate": gate,
        "error_type": "Runtime.StreamError",
    });
    let request = Request::post(emulator.invoke_url())
        .header("TE", "trailers")
        .body(Full::new(bytes::Bytes::from(event.to_string())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/plain");
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let mut body = response.into_body();

    // The runtime sends its last chunk only once the gate exists, and the test opens the gate
    // only after the first chunk arrived: a buffering emulator never gets here.
    let mut received = BytesMut::new();
    while !received.starts_with(b"first-chunk;") {
        let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
            .await
            .expect("the first chunk was not relayed before the last was sent")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }
    std::fs::write(&gate, "").unwrap();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        match frame.into_data() {
            Ok(data) => received.extend_from_slice(&data),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    assert_eq!(&received[..], b"first-chunk;second-chunk;last-chunk");
    let trailers = trailers.expect("the runtime's error trailers are relayed");
    assert_eq!(trailers["lambda-runtime-function-error-type"], "Runtime.StreamError");
    emulator.stdout.wait_for("answered 202", Duration::from_secs(5)).unwrap();
}

#[tokio::test]
async fn invokes_queue_one_at_a_time_by_default() {
    let emulator = EmulatorProcess::start(&["--env", "RUNTIME_THREADS=2"], &[&python_runtime()]);
    let replies: Vec<_> = (0..3)
        .map(|_| emulator.spawn_invoke(r#"{"action":"track","seconds":0.2}"#))
        .collect();
    for reply in replies {
        let reply = reply.await.unwrap();
        assert_eq!(reply.json()["max_in_flight"], 1, "{}", reply.text());
    }
}

#[tokio::test]
async fn max_concurrency_runs_invokes_together() {
    let emulator = EmulatorProcess::start(
        &["--env", "RUNTIME_THREADS=3", "--env", "AWS_LAMBDA_MAX_CONCURRENCY=3"],
        &[&python_runtime()],
    );
    // Each invocation waits at a barrier for all three: only concurrent dispatch passes it.
    let replies: Vec<_> = (0..3).map(|_| emulator.spawn_invoke(r#"{"action":"barrier"}"#)).collect();
    for reply in replies {
        let reply = reply.await.unwrap();
        assert_eq!(reply.json()["barrier"], "passed", "{}", reply.text());
    }
}

#[tokio::test]
async fn a_stream_past_its_deadline_ends_with_a_timeout_and_the_runtime_is_replaced() {
    let emulator = EmulatorProcess::start(&["--timeout", "1"], &[&python_runtime()]);
    let dir = tempfile::tempdir().unwrap();
    // The gate never opens: the runtime holds its last chunk past the 1 s timeout.
    let event = serde_json::json!({"action": "stream", "chunks": ["early;", "never"], "gate": dir.path().join("gate")});
    let request = Request::post(emulator.invoke_url())
        .header("TE", "trailers")
        .body(Full::new(bytes::Bytes::from(event.to_string())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let request_id = response.headers()["x-amzn-requestid"].to_str().unwrap().to_owned();
    let mut body = response.into_body();
    let mut received = BytesMut::new();
    let mut trailers = None;
    while let Some(frame) = tokio::time::timeout(Duration::from_secs(8), body.frame()).await.unwrap() {
        match frame.unwrap().into_data() {
            Ok(data) => received.extend_from_slice(&data),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    assert_eq!(&received[..], b"early;");
    let trailers = trailers.expect("a timeout trailer");
    assert_eq!(trailers["lambda-runtime-function-error-type"], "Sandbox.Timedout");
    let encoded = trailers["lambda-runtime-function-error-body"].to_str().unwrap();
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap();
    let error: serde_json::Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(error["errorMessage"], format!("{request_id} Task timed out after 1.00 seconds"));

    let next = emulator.invoke(r#"{"action":"echo","after":"timeout"}"#).await;
    assert_eq!(next.json()["after"], "timeout");
    let stats = emulator.stats().await;
    assert_eq!(stats["timeouts"], 1);
    assert_eq!(stats["runtime_starts"], 2);
}
