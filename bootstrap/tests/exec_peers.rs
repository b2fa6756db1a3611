//! Exec mode with the runtimes users actually have, unchanged, from `handlers-example`: an echo
//! function built with AWS's `lambda_runtime` crate (and its streaming sibling), Python's
//! `awslambdaric` (from the venv `scripts/setup-peers.sh` makes), and a bash + curl runtime
//! in the shape of AWS's tutorial. Each runs behind the real `bootstrap`, behind each emulator,
//! except awslambdaric behind cargo-lambda: awslambdaric dies of SIGSEGV on its first event from
//! cargo-lambda's emulator even when run directly, without the bootstrap (cargo-lambda sends
//! `Lambda-Runtime-Deadline-Ms: 600000`, a deadline long past, and a placeholder function ARN).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod exec_support;

use std::path::{Path, PathBuf};

use exec_support::{workspace, Emulator, Function, EMULATORS};
use serde_json::{json, Value};

/// A `handlers-example` binary, built next to `bootstrap` (`scripts/test.sh` builds the workspace).
fn peer_binary(name: &str) -> String {
    let path = Path::new(env!("CARGO_BIN_EXE_bootstrap")).with_file_name(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p handlers-example`",
        path.display()
    );
    path.display().to_string()
}

fn python_with_awslambdaric() -> String {
    let python = workspace().join(".venv/bin/python3");
    assert!(python.exists(), "{} is missing: run scripts/setup-peers.sh", python.display());
    python.display().to_string()
}

fn handlers_example(dir: &str) -> PathBuf {
    workspace().join("handlers-example").join(dir)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

fn assert_exit_error(function: &Function, event: &str, wording: &str) {
    let error = function.invoke(event).error();
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("RequestId: ") && message.ends_with(&format!(" Error: {wording}")),
        "{message}"
    );
}

#[test]
fn lambda_runtime_echo_function() {
    let echo = peer_binary("lambda-runtime-echo");
    let task_root = handlers_example("src");
    for emulator in EMULATORS {
        // The big line as the child wrote it: logs injection, on by default even with tracing
        // off, would put the invocation's ids in front (exec_telemetry tests that).
        let function = Function::start_in(emulator, &task_root, &echo, &[("DD_LOGS_INJECTION", "false")], 30);
        let event = json!({"hello": "world", "n": [1, 2, 3]});
        assert_eq!(json_of(function.invoke(&event.to_string()).ok_body()), event, "{emulator:?}");

        let error = function.invoke(r#"{"error": "no thanks"}"#).error();
        assert_eq!(
            (error["errorType"].as_str(), error["errorMessage"].as_str()),
            (Some("EchoError"), Some("no thanks"))
        );

        assert_exit_error(&function, r#"{"exit": 1}"#, "Runtime exited with error: exit status 1");
        assert_exit_error(
            &function,
            r#"{"segv": true}"#,
            "Runtime exited with error: signal: segmentation fault",
        );

        // A 1 MiB stdout line, whole, and the function still answers.
        let size = 1024 * 1024;
        function.invoke(&json!({"line_bytes": size}).to_string()).ok_body();
        function.wait_for_stdout_line(&vec![b'x'; size]);
    }

    // Lambda's timeout: the sandbox is reset, and the next invoke is served.
    let function = Function::start_in(Emulator::Ours, &task_root, &echo, &[], 1);
    assert_eq!(function.invoke(r#"{"sleep_ms": 5000}"#).error()["errorType"], "Sandbox.Timedout");
    assert_eq!(
        json_of(function.invoke(r#"{"after": "timeout"}"#).ok_body()),
        json!({"after": "timeout"})
    );
}

#[test]
fn lambda_runtime_streaming_function() {
    let stream = peer_binary("lambda-runtime-stream");
    let function = Function::start_in(Emulator::Ours, &handlers_example("src"), &stream, &[], 30);
    let answer = function.invoke(r#"{"chunks": 4, "delay_ms": 20}"#);
    assert!(
        answer.headers.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{}",
        answer.headers
    );
    assert!(
        answer.ok_body().ends_with(b"chunk 0\nchunk 1\nchunk 2\nchunk 3\n"),
        "{}",
        exec_support::text(&answer.body)
    );
}

#[test]
fn awslambdaric_handlers() {
    let python = python_with_awslambdaric();
    let task_root = handlers_example("python");
    let command = |handler: &str| format!("{python} -m awslambdaric handler.{handler}");
    let emulator = Emulator::Ours;
    let function = Function::start_in(emulator, &task_root, &command("echo"), &[], 30);
    let event = json!({"hello": "python"});
    assert_eq!(json_of(function.invoke(&event.to_string()).ok_body()), event, "{emulator:?}");

    let function = Function::start_in(emulator, &task_root, &command("error"), &[], 30);
    let error = function.invoke(r#"{"message": "raised"}"#).error();
    assert_eq!(
        (error["errorType"].as_str(), error["errorMessage"].as_str()),
        (Some("HandlerError"), Some("raised"))
    );

    let function = Function::start_in(emulator, &task_root, &command("crash"), &[], 30);
    assert_exit_error(&function, "{}", "Runtime exited with error: exit status 1");
    let function = Function::start_in(emulator, &task_root, &command("segv"), &[], 30);
    assert_exit_error(&function, "{}", "Runtime exited with error: signal: segmentation fault");

    // The line as the child wrote it (see lambda_runtime_echo_function).
    let function = Function::start_in(emulator, &task_root, &command("big_line"), &[("DD_LOGS_INJECTION", "false")], 30);
    let size = 1024 * 1024;
    function.invoke(&json!({"bytes": size}).to_string()).ok_body();
    function.wait_for_stdout_line(&vec![b'x'; size]);

    let function = Function::start_in(Emulator::Ours, &task_root, &command("sleep"), &[], 1);
    assert_eq!(function.invoke(r#"{"ms": 5000}"#).error()["errorType"], "Sandbox.Timedout");
}

#[test]
fn bash_tutorial_runtime() {
    let bootstrap_sh = handlers_example("bash").join("bootstrap.sh").display().to_string();
    for emulator in EMULATORS {
        let function = Function::start_in(emulator, &handlers_example("bash"), &bootstrap_sh, &[], 30);
        assert_eq!(function.invoke(r#"{"k": "v"}"#).ok_body(), br#"{"k": "v"}"#, "{emulator:?}");
        let error = function.invoke(r#"{"error": "bash says no"}"#).error();
        assert_eq!(
            (error["errorType"].as_str(), error["errorMessage"].as_str()),
            (Some("BashError"), Some("bash says no"))
        );
        assert_exit_error(&function, r#"{"exit": 3}"#, "Runtime exited with error: exit status 3");
        assert_eq!(function.invoke("[]").ok_body(), b"[]");
    }
}
