//! The emulator's `--fault` option itself, with the test playing the runtime over HTTP: what a
//! runtime sees is what the fault's documentation says, so later reliability tests can rely on it.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use bytes::Bytes;
use emulator_support::{client, EmulatorProcess};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";

/// The emulator with a runtime that never polls, so the test is the only runtime.
fn start(fault: &str) -> EmulatorProcess {
    EmulatorProcess::start(&["--timeout", "60", "--fault", fault], &["sleep", "600"])
}

/// One request; `Err` when the connection was dropped without an answer.
async fn call(method: &str, url: &str, body: &'static str) -> Result<(StatusCode, http::HeaderMap, Bytes), String> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client().request(request).await.map_err(|e| format!("{e:?}"))?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

#[tokio::test]
async fn reset_next_drops_one_next_and_keeps_the_invocation_queued() {
    let emulator = start("reset-next");
    let invoke = emulator.spawn_invoke(r#"{"n": 1}"#);
    let dropped = call("GET", &emulator.url(NEXT), "").await;
    assert!(dropped.is_err(), "the first /next was answered: {dropped:?}");
    let (status, headers, event) = call("GET", &emulator.url(NEXT), "").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event.as_ref(), br#"{"n": 1}"#);
    let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
    let response = format!("/2018-06-01/runtime/invocation/{id}/response");
    assert_eq!(
        call("POST", &emulator.url(&response), "\"done\"").await.unwrap().0,
        StatusCode::ACCEPTED
    );
    assert_eq!(invoke.await.unwrap().text(), "\"done\"");
    let counters = emulator.stats().await;
    assert_eq!(
        (counters["faults_injected"].as_u64(), counters["answers_delivered"].as_u64()),
        (Some(1), Some(1)),
        "{counters}"
    );
}

#[tokio::test]
async fn reset_response_drops_the_first_answer_and_accepts_a_retry() {
    let emulator = start("reset-response");
    let invoke = emulator.spawn_invoke("{}");
    let (_, headers, _) = call("GET", &emulator.url(NEXT), "").await.unwrap();
    let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
    let response = emulator.url(&format!("/2018-06-01/runtime/invocation/{id}/response"));
    let dropped = call("POST", &response, "\"first\"").await;
    assert!(dropped.is_err(), "the first /response was answered: {dropped:?}");
    assert_eq!(call("POST", &response, "\"retried\"").await.unwrap().0, StatusCode::ACCEPTED);
    // Only the retry reached the invoke.
    assert_eq!(invoke.await.unwrap().text(), "\"retried\"");
    assert_eq!(call("POST", &response, "\"again\"").await.unwrap().0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn next_missing_request_id_sends_a_copy_without_it_then_the_invocation() {
    let emulator = start("next-missing-request-id");
    let invoke = emulator.spawn_invoke(r#"{"n": 1}"#);
    let (_, headers, event) = call("GET", &emulator.url(NEXT), "").await.unwrap();
    assert!(headers.get("lambda-runtime-aws-request-id").is_none(), "{headers:?}");
    assert_eq!(event.as_ref(), br#"{"n": 1}"#);
    let (_, headers, event) = call("GET", &emulator.url(NEXT), "").await.unwrap();
    assert_eq!(event.as_ref(), br#"{"n": 1}"#);
    let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
    let response = emulator.url(&format!("/2018-06-01/runtime/invocation/{id}/response"));
    assert_eq!(call("POST", &response, "1").await.unwrap().0, StatusCode::ACCEPTED);
    let reply = invoke.await.unwrap();
    assert_eq!(reply.header("x-amzn-requestid"), Some(id.as_str()));
}

#[tokio::test]
async fn a_fault_numbered_n_waits_for_the_nth_invocation() {
    let emulator = start("next-bad-deadline@2");
    for n in 1..=2 {
        let invoke = emulator.spawn_invoke("{}");
        let (_, headers, _) = call("GET", &emulator.url(NEXT), "").await.unwrap();
        let deadline = headers["lambda-runtime-deadline-ms"].to_str().unwrap();
        assert_eq!(deadline.parse::<u64>().is_ok(), n == 1, "invocation {n}: deadline {deadline:?}");
        let id = headers["lambda-runtime-aws-request-id"].to_str().unwrap().to_owned();
        let response = emulator.url(&format!("/2018-06-01/runtime/invocation/{id}/response"));
        assert_eq!(call("POST", &response, "{}").await.unwrap().0, StatusCode::ACCEPTED);
        invoke.await.unwrap();
    }
}
