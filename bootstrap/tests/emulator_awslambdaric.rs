//! AWS's own Python runtime client, `awslambdaric`, served unchanged by the emulator.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use std::path::PathBuf;

use emulator_support::*;
use http::StatusCode;

/// `$DD_TEST_PYTHON`, else the workspace's `.venv` that `.ci/run` creates.
fn python_with_awslambdaric() -> PathBuf {
    if let Some(python) = std::env::var_os("DD_TEST_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with awslambdaric: set DD_TEST_PYTHON or create {} \
         (`python3 -m venv .venv && .venv/bin/pip install awslambdaric`, as .ci/run does)",
        venv.display()
    );
    venv
}

#[tokio::test]
async fn awslambdaric_echo_handler_answers_through_the_emulator() {
    let python = python_with_awslambdaric();
    let handlers = fixtures().join("python");
    let emulator = EmulatorProcess::start_in(
        &handlers,
        &["--function-name", "py-echo", "--timeout", "30"],
        &[python.to_str().unwrap(), "-m", "awslambdaric", "echo_handler.handler"],
    );
    for n in 0..2 {
        let reply = emulator.invoke(&format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.header("x-amz-function-error"), None, "{}", reply.text());
        let body = reply.json();
        assert_eq!(body["echo"]["n"], n);
        assert_eq!(body["request_id"], reply.header("x-amzn-requestid").unwrap());
        assert_eq!(body["function_name"], "py-echo");
        assert_eq!(body["arn"], "arn:aws:lambda:us-east-1:123456789012:function:py-echo");
        let remaining = body["remaining_ms"].as_i64().unwrap();
        assert!(remaining > 20_000 && remaining <= 30_000, "remaining {remaining} ms");
    }
    let stats = emulator.stats().await;
    assert_eq!(stats["answers_delivered"], 2);
    assert_eq!(stats["answers_refused"], 0);
}
