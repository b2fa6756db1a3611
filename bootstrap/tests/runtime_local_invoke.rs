//! `bootstrap invoke --handler SPEC --event FILE --count N`, the real binary: each response on
//! its own stdout line; exit 0, 1 on a function error, 2 when the invocations cannot run.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
// runtime_support builds on emulator_support.
mod emulator_support;
mod runtime_support;

use std::process::{Command, Output};

use runtime_support::{bootstrap_binary, example_handler};
use serde_json::{json, Value};

fn local_invoke(handler: &str, event: &str, count: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, event).unwrap();
    Command::new(bootstrap_binary())
        .args(["invoke", "--handler", handler, "--event"])
        .arg(&event_file)
        .args(["--count", count, "--timeout", "60"])
        .env("RUST_BACKTRACE", "0")
        .current_dir(dir.path())
        .output()
        .expect("the bootstrap runs")
}

fn stdout_json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}")))
        .collect()
}

#[test]
fn three_echo_invocations_print_three_responses_and_exit_0() {
    let event = json!({"order": 7, "items": ["a", "b"]});
    let output = local_invoke(&example_handler("echo"), &event.to_string(), "3");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout_json_lines(&output), vec![event.clone(), event.clone(), event]);
}

#[test]
fn a_function_error_prints_the_error_and_exits_1() {
    let output = local_invoke(&example_handler("error"), r#"{"message": "card declined"}"#, "2");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let expected = json!({"errorType": "handlers_example::ExampleError", "errorMessage": "card declined", "stackTrace": []});
    assert_eq!(stdout_json_lines(&output), vec![expected.clone(), expected]);
}

#[test]
fn an_init_error_is_a_function_error() {
    let output = local_invoke("/nonexistent/libgone.so:echo", "{}", "1");
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = stdout_json_lines(&output);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["errorType"], "Runtime.HandlerNotFound", "{}", lines[0]);
    assert!(lines[0]["errorMessage"].as_str().unwrap().contains("/nonexistent/libgone.so"));
}

#[test]
fn a_missing_event_file_exits_2_naming_it() {
    let output = Command::new(bootstrap_binary())
        .args(["invoke", "--handler", "libapp.so", "--event", "/nonexistent/event.json"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/event.json"), "{stderr}");
}
