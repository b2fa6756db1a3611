//! AWS's own Rust runtime client, `lambda_runtime`, served unchanged by the emulator.
//!
//! The runtime is this test binary itself, re-run by the emulator with
//! `EMULATOR_TEST_RUNTIME_CHILD=1`: the same test function then serves invocations instead.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use emulator_support::*;
use http::StatusCode;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

const CHILD: &str = "EMULATOR_TEST_RUNTIME_CHILD";
const TEST_NAME: &str = "lambda_runtime_echo_answers_through_the_emulator";

async fn echo(event: LambdaEvent<Value>) -> Result<Value, Error> {
    if event.payload.get("fail").is_some() {
        return Err("the event asked to fail".into());
    }
    Ok(json!({
        "echo": event.payload,
        "request_id": event.context.request_id,
        "arn": event.context.invoked_function_arn,
        "trace_id": event.context.xray_trace_id,
    }))
}

fn serve_as_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(lambda_runtime::run(service_fn(echo))).unwrap();
}

#[test]
fn lambda_runtime_echo_answers_through_the_emulator() {
    if std::env::var_os(CHILD).is_some() {
        return serve_as_runtime();
    }
    let this_test_binary = std::env::current_exe().unwrap();
    let emulator = EmulatorProcess::start(
        &["--env", &format!("{CHILD}=1")],
        &[this_test_binary.to_str().unwrap(), "--exact", TEST_NAME, "--nocapture"],
    );
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let trace = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let reply = post(&emulator.invoke_url(), br#"{"n":1}"#.to_vec(), &[("X-Amzn-Trace-Id", trace)]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("x-amz-function-error"), None, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["echo"], json!({"n": 1}));
        assert_eq!(body["request_id"], reply.header("x-amzn-requestid").unwrap());
        assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:123456789012:function:function");
        assert_eq!(body["trace_id"], trace);

        let failed = emulator.invoke(r#"{"fail":true}"#).await;
        assert_eq!(failed.header("x-amz-function-error"), Some("Unhandled"));
        assert_eq!(failed.json()["errorMessage"], "the event asked to fail");
        assert_eq!(emulator.stats().await["answers_delivered"], 2);
    });
}
