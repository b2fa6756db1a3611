//! What the handler sees in its `Context`, compared with what the emulator sent: the example
//! library's `context` handler answers its Context as JSON.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use emulator_support::post;
use runtime_support::*;
use serde_json::json;

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

#[tokio::test]
async fn every_context_field_is_what_the_runtime_api_sent() {
    let emulator = start(
        &example_handler("context"),
        &[
            "--function-name",
            "checkout",
            "--region",
            "eu-west-3",
            "--account-id",
            "210987654321",
            "--memory",
            "256",
            "--timeout",
            "45",
        ],
    );
    let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let client_context = json!({
        "client": {"installation_id": "install-1", "app_title": "Shop", "app_version_name": "1.2",
                   "app_version_code": "12", "app_package_name": "com.example.shop"},
        "custom": {"cart": "c-42"},
        "env": {"platform": "Android"}
    });
    let encoded = base64::engine::general_purpose::STANDARD.encode(client_context.to_string());
    let before = epoch_ms();
    let reply = post(
        &emulator.url("/2015-03-31/functions/checkout/invocations"),
        b"{}".to_vec(),
        &[("X-Amzn-Trace-Id", trace), ("X-Amz-Client-Context", &encoded)],
    )
    .await;
    let after = epoch_ms();
    let context = function_response(&reply);

    assert_eq!(context["request_id"], reply.header("x-amzn-requestid").unwrap());
    assert_eq!(
        context["invoked_function_arn"],
        "arn:aws:lambda:eu-west-3:210987654321:function:checkout"
    );
    assert_eq!(context["xray_trace_id"], trace);
    assert_eq!(context["function_name"], "checkout");
    assert_eq!(context["function_version"], "$LATEST");
    assert_eq!(context["memory_size_mb"], 256);
    assert_eq!(context["log_group_name"], "/aws/lambda/checkout");
    let stream = context["log_stream_name"].as_str().unwrap();
    assert!(
        stream.contains("/[$LATEST]") && stream.len() == "2024/01/01/[$LATEST]".len() + 32,
        "{stream}"
    );
    // The deadline is when the emulator handed the invocation over, plus the 45 s timeout.
    let deadline = context["deadline_ms"].as_u64().unwrap();
    assert!(
        (before + 45_000..=after + 45_000).contains(&deadline),
        "deadline {deadline} not within [{before}, {after}] + 45 s"
    );
    let client = &context["client_context"];
    assert_eq!(client["client"]["installationId"], "install-1", "{client}");
    assert_eq!(client["client"]["appTitle"], "Shop", "{client}");
    assert_eq!(client["client"]["appPackageName"], "com.example.shop", "{client}");
    assert_eq!(client["custom"], json!({"cart": "c-42"}));
    assert_eq!(client["environment"], json!({"platform": "Android"}));
    // The emulator sends neither a Cognito identity nor a tenant id.
    assert_eq!(context["identity"], serde_json::Value::Null);
    assert_eq!(context["tenant_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn without_a_trace_header_the_handler_gets_the_fresh_id_the_emulator_made() {
    let emulator = start(&example_handler("context"), &["--timeout", RELAXED_TIMEOUT]);
    let first = function_response(&emulator.invoke("{}").await);
    let second = function_response(&emulator.invoke("{}").await);
    let (first, second) = (first["xray_trace_id"].as_str().unwrap(), second["xray_trace_id"].as_str().unwrap());
    assert!(first.starts_with("Root=1-") && first.ends_with(";Sampled=1"), "{first}");
    assert_ne!(first, second, "each invocation has its own trace");
}

#[tokio::test]
async fn concurrent_invocations_each_see_their_own_trace_id() {
    // With four invocations in flight in one process, a trace id kept in process-wide state
    // (as `_X_AMZN_TRACE_ID` in the environment would be) would leak between them.
    let emulator = start(
        &example_handler("context"),
        &["--timeout", RELAXED_TIMEOUT, "--env", "AWS_LAMBDA_MAX_CONCURRENCY=4"],
    );
    let traces: Vec<String> = (0..16)
        .map(|n| format!("Root=1-5759e988-{n:024x};Parent={n:016x};Sampled=1"))
        .collect();
    let url = emulator.invoke_url();
    let pending: Vec<_> = traces
        .iter()
        .map(|trace| {
            let (url, trace) = (url.clone(), trace.clone());
            tokio::spawn(async move { post(&url, b"{}".to_vec(), &[("X-Amzn-Trace-Id", &trace)]).await })
        })
        .collect();
    for (trace, invoke) in traces.iter().zip(pending) {
        let reply = invoke.await.unwrap();
        let context = function_response(&reply);
        assert_eq!(context["xray_trace_id"], trace.as_str());
        assert_eq!(context["request_id"], reply.header("x-amzn-requestid").unwrap());
    }
    assert_one_answer_each_from_one_process(&emulator, 16).await;
}
