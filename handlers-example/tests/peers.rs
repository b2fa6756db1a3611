//! The exec-mode peer runtimes, each run under the real `lambda-emulator` on 127.0.0.1 (tests
//! use real Runtime API servers, never a mock).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod support;

use std::path::PathBuf;

use serde_json::json;
use support::{Emulator, Invoked};

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Runs `command` under the emulator, in the python handlers' folder (awslambdaric imports the
/// handler module from its working directory), with `_HANDLER` as Lambda would set it.
fn peer(command: &[&str]) -> Emulator {
    let handler = command.last().copied().unwrap_or("");
    Emulator::start(&manifest_dir().join("python"), &[("_HANDLER", handler)], command)
}

fn assert_echo(emulator: &Emulator, event: serde_json::Value) {
    let answer = emulator.invoke(event.to_string().as_bytes());
    assert_eq!(answer.status, 200);
    assert!(!answer.is_function_error(), "{:?}", String::from_utf8_lossy(&answer.body));
    assert!(answer.header("x-amzn-requestid").is_some());
    assert_eq!(answer.json(), event);
}

fn assert_error(answer: &Invoked, error_type: &str, message: &str) {
    assert_eq!(answer.status, 200);
    assert!(answer.is_function_error(), "{:?}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    assert_eq!(body["errorType"], error_type, "{body}");
    assert_eq!(body["errorMessage"], message, "{body}");
}

/// The runtime died under the invocation: Lambda's `Runtime.ExitError`, worded with how it ended.
fn assert_exited(answer: &Invoked, how: &str) {
    assert!(answer.is_function_error(), "{:?}", String::from_utf8_lossy(&answer.body));
    let body = answer.json();
    assert_eq!(body["errorType"], "Runtime.ExitError", "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains(&format!("Runtime exited with error: {how}")), "{message}");
}

/// The lines the runtime printed on stdout, once `expected_line` has arrived.
fn stdout_lines(emulator: &Emulator, expected_line: &str) -> Vec<String> {
    emulator.stdout.wait_for(expected_line).lines().map(str::to_owned).collect()
}

#[test]
fn lambda_runtime_echo_echoes_fails_prints_sleeps_and_exits() {
    let emulator = peer(&[env!("CARGO_BIN_EXE_lambda-runtime-echo")]);

    assert_echo(&emulator, json!({"hello": ["world", 1, null]}));
    assert_error(&emulator.invoke(br#"{"error": "card declined"}"#), "EchoError", "card declined");
    assert_echo(&emulator, json!({"sleep_ms": 20}));
    assert_echo(&emulator, json!({"line_bytes": 5000}));
    assert_exited(&emulator.invoke(br#"{"exit": 3}"#), "exit status 3");

    let line = "x".repeat(5000);
    assert_eq!(stdout_lines(&emulator, &line), vec![line]);
    let stats = emulator.stats();
    assert_eq!(
        (stats["runtime_starts"].as_u64(), stats["runtime_exits"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
}

#[test]
fn lambda_runtime_echo_dies_of_sigsegv() {
    let emulator = peer(&[env!("CARGO_BIN_EXE_lambda-runtime-echo")]);
    assert_exited(&emulator.invoke(br#"{"segv": true}"#), "signal: segmentation fault");
}

#[test]
fn lambda_runtime_stream_sends_its_chunks_as_a_streamed_response() {
    let emulator = peer(&[env!("CARGO_BIN_EXE_lambda-runtime-stream")]);
    let answer = emulator.invoke(br#"{"chunks": 3, "delay_ms": 10}"#);
    assert_eq!(answer.status, 200);
    assert!(!answer.is_function_error());
    // Relayed as it streams, with the content type the runtime declared for its stream.
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert_eq!(
        answer.header("content-type"),
        Some("application/vnd.awslambda.http-integration-response")
    );
    // The body is the metadata prelude, eight NUL bytes, then the chunks.
    let separator = answer.body.windows(8).position(|w| w == [0; 8]).expect("no prelude separator");
    let prelude: serde_json::Value = serde_json::from_slice(&answer.body[..separator]).unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(&answer.body[separator + 8..], b"chunk 0\nchunk 1\nchunk 2\n");
}

#[test]
fn bash_runtime_echoes_fails_and_exits() {
    let script = manifest_dir().join("bash/bootstrap.sh");
    let emulator = peer(&[script.to_str().unwrap()]);

    assert_echo(&emulator, json!({"k": "v", "n": [1, 2]}));
    assert_error(&emulator.invoke(br#"{"error": "no such order"}"#), "BashError", "no such order");
    assert_exited(&emulator.invoke(br#"{"exit": 4}"#), "exit status 4");
}

/// `$DD_TEST_PYTHON`, else the workspace's `.venv` that scripts/setup-peers.sh creates.
fn python_with_awslambdaric() -> String {
    if let Ok(python) = std::env::var("DD_TEST_PYTHON") {
        return python;
    }
    let venv = manifest_dir().join("../.venv/bin/python");
    assert!(
        venv.is_file(),
        "no Python with awslambdaric: set DD_TEST_PYTHON or run scripts/setup-peers.sh (it creates {})",
        venv.display()
    );
    venv.to_string_lossy().into_owned()
}

#[test]
fn python_awslambdaric_handlers() {
    let python = python_with_awslambdaric();
    let run = |handler: &str| peer(&[&python, "-m", "awslambdaric", handler]);

    assert_echo(&run("handler.echo"), json!({"a": [1, "b"]}));

    assert_error(
        &run("handler.error").invoke(br#"{"message": "refused"}"#),
        "HandlerError",
        "refused",
    );

    let answer = run("handler.sleep").invoke(br#"{"ms": 20}"#);
    assert!(!answer.is_function_error());
    assert_eq!(answer.json(), json!({"slept_ms": 20}));

    let emulator = run("handler.big_line");
    assert_echo_like(&emulator.invoke(br#"{"bytes": 3000}"#), json!({"line_bytes": 3000}));
    let line = "x".repeat(3000);
    assert!(stdout_lines(&emulator, &line).contains(&line));

    assert_exited(&run("handler.crash").invoke(b"{}"), "exit status 1");
    assert_exited(&run("handler.segv").invoke(b"{}"), "signal: segmentation fault");
}

fn assert_echo_like(answer: &Invoked, expected: serde_json::Value) {
    assert!(!answer.is_function_error(), "{:?}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json(), expected);
}
