//! The bootstrap's own log lines on stderr: level from `DD_LOG_LEVEL` (Datadog's names, any
//! case), JSON objects when `AWS_LAMBDA_LOG_FORMAT=JSON`, one warning for an unknown level.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use runtime_support::*;
use serde_json::Value;

/// What the bootstrap wrote while serving two echo invocations.
struct Logged {
    lines: Vec<String>,
    /// The two invocations' request ids.
    ids: Vec<String>,
}

/// Runs two echo invocations with the given log settings, then a third that the emulator breaks
/// (`--fault next-bad-deadline@3`), which the bootstrap reports with an ERROR line naming it. The
/// runtime's stderr is relayed in order, so once that line is in, every line the bootstrap wrote
/// for the first two is too, and "no such line" means the bootstrap wrote none.
async fn two_invocations(log_level: &str, log_format: &str) -> Logged {
    let level = format!("DD_LOG_LEVEL={log_level}");
    let format = format!("AWS_LAMBDA_LOG_FORMAT={log_format}");
    let emulator = start(
        &example_handler("echo"),
        &[
            "--timeout",
            RELAXED_TIMEOUT,
            "--env",
            &level,
            "--env",
            &format,
            // Metrics for the Forwarder: API mode without a key would add its own warning.
            "--env",
            "DD_FLUSH_TO_LOG=true",
            "--fault",
            "next-bad-deadline@3",
        ],
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = emulator.invoke("{}").await;
        function_response(&reply);
        ids.push(reply.header("x-amzn-requestid").unwrap().to_owned());
    }
    let marker = emulator.invoke("{}").await;
    function_error(&marker);
    let marker_id = marker.header("x-amzn-requestid").unwrap().to_owned();
    wait_for_runtime_line(&emulator, "the bootstrap's ERROR line for the broken invocation", |line| {
        line.contains("ERROR") && line.contains(&marker_id)
    });
    assert_one_answer_each_from_one_process(&emulator, 3).await;
    let lines = runtime_stderr_lines(&emulator)
        .into_iter()
        .filter(|line| !line.contains(&marker_id))
        .collect();
    Logged { lines, ids }
}

#[tokio::test]
async fn debug_level_shows_the_bootstraps_debug_lines() {
    let logged = two_invocations("DeBuG", "").await;
    for id in &logged.ids {
        let answered = logged.lines.iter().any(|line| line.contains("DEBUG") && line.contains(id));
        assert!(answered, "no debug line for {id}:\n{}", logged.lines.join("\n"));
    }
}

#[tokio::test]
async fn the_default_level_shows_no_debug_lines() {
    let logged = two_invocations("", "").await;
    assert!(logged.lines.is_empty(), "{}", logged.lines.join("\n"));
}

#[tokio::test]
async fn json_format_makes_every_line_a_json_object() {
    let logged = two_invocations("debug", "JSON").await;
    for line in &logged.lines {
        let object: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
        assert!(object["level"].is_string() && object["timestamp"].is_string(), "{line}");
    }
    for id in &logged.ids {
        let answered = logged.lines.iter().any(|line| {
            let object: Value = serde_json::from_str(line).unwrap();
            object["level"] == "DEBUG" && object["request_id"] == id.as_str()
        });
        assert!(answered, "no JSON debug line for {id}:\n{}", logged.lines.join("\n"));
    }
}

#[tokio::test]
async fn an_unknown_level_warns_once_and_logs_at_info() {
    let logged = two_invocations("loud", "").await;
    assert_eq!(logged.lines.len(), 1, "{}", logged.lines.join("\n"));
    let warning = &logged.lines[0];
    assert!(warning.contains("WARN") && warning.contains("Invalid log level: loud"), "{warning}");
}

#[tokio::test]
async fn an_unknown_level_warning_is_json_too() {
    let logged = two_invocations("loud", "json").await;
    assert_eq!(logged.lines.len(), 1, "{}", logged.lines.join("\n"));
    let warning: Value = serde_json::from_str(&logged.lines[0]).unwrap();
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["message"], "Invalid log level: loud Defaulting to INFO");
}
