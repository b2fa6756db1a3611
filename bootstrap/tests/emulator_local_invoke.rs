//! `bootstrap invoke`'s engine: the emulator in-process, a runtime that sees DD_LAMBDA_HANDLER.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::path::PathBuf;

use bootstrap::emulator::local_invoke::{run, LocalInvokeOptions};
use bootstrap::emulator::{EmulatorError, FunctionIdentity};

fn options(handler: &str, event: PathBuf, count: u32) -> LocalInvokeOptions {
    LocalInvokeOptions {
        handler: handler.to_owned(),
        event,
        count,
        function: FunctionIdentity::default(),
        extra_env: vec![],
        runtime_program: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/runtimes/handler_runtime.py")),
        runtime_args: vec![],
    }
}

fn event_file(dir: &tempfile::TempDir, json: &str) -> PathBuf {
    let path = dir.path().join("event.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[tokio::test]
async fn invokes_the_handler_count_times_with_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(options("lib.so:echo", event_file(&dir, r#"{"k":"v"}"#), 3)).await.unwrap();
    assert_eq!(summary.responses.len(), 3);
    assert!(!summary.any_function_error());
    for response in &summary.responses {
        let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(body, serde_json::json!({"handler": "lib.so:echo", "event": {"k": "v"}}));
        assert_eq!(response.request_id.len(), 36);
    }
    assert_ne!(summary.responses[0].request_id, summary.responses[1].request_id);
}

#[tokio::test]
async fn a_function_error_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let summary = run(options("fail", event_file(&dir, "{}"), 1)).await.unwrap();
    assert!(summary.any_function_error());
    let body: serde_json::Value = serde_json::from_slice(&summary.responses[0].body).unwrap();
    assert_eq!(body["errorType"], "HandlerFailed");
}

#[tokio::test]
async fn a_missing_event_file_is_named() {
    let err = run(options("echo", PathBuf::from("/nonexistent/event.json"), 1)).await.unwrap_err();
    assert!(matches!(err, EmulatorError::EventFile { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/event.json"), "{err}");
}

#[tokio::test]
async fn a_missing_runtime_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options("echo", event_file(&dir, "{}"), 1);
    opts.runtime_program = Some(PathBuf::from("/nonexistent/bootstrap"));
    let err = run(opts).await.unwrap_err();
    assert!(matches!(err, EmulatorError::Spawn { .. }), "{err}");
}
