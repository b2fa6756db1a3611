//! The bootstrap's own log lines on stderr: level from `DD_LOG_LEVEL` (Datadog's names, any
//! case), JSON objects when `AWS_LAMBDA_LOG_FORMAT=JSON`, one warning for an unknown level.
mod emulator_support;
mod runtime_support;

use emulator_support::EmulatorProcess;
use runtime_support::*;
use serde_json::Value;

/// Runs two echo invocations with the given log settings; returns the bootstrap's stderr lines
/// and the request ids.
async fn two_invocations(log_level: &str, log_format: &str) -> (Vec<String>, Vec<String>) {
    let level = format!("DD_LOG_LEVEL={log_level}");
    let format = format!("AWS_LAMBDA_LOG_FORMAT={log_format}");
    let emulator: EmulatorProcess = start(
        &example_handler("echo"),
        &["--timeout", RELAXED_TIMEOUT, "--env", &level, "--env", &format],
    );
    let mut ids = Vec::new();
    for _ in 0..2 {
        let reply = emulator.invoke("{}").await;
        function_response(&reply);
        ids.push(reply.header("x-amzn-requestid").unwrap().to_owned());
    }
    assert_one_answer_each_from_one_process(&emulator, 2).await;
    (runtime_stderr_lines(&emulator), ids)
}

#[tokio::test]
async fn debug_level_shows_the_bootstraps_debug_lines() {
    let (lines, ids) = two_invocations("DeBuG", "").await;
    for id in &ids {
        let answered = lines.iter().any(|line| line.contains("DEBUG") && line.contains(id));
        assert!(answered, "no debug line for {id}:\n{}", lines.join("\n"));
    }
}

#[tokio::test]
async fn the_default_level_shows_no_debug_lines() {
    let (lines, _) = two_invocations("", "").await;
    assert!(lines.iter().all(|line| !line.contains("DEBUG")), "{}", lines.join("\n"));
}

#[tokio::test]
async fn json_format_makes_every_line_a_json_object() {
    let (lines, ids) = two_invocations("debug", "JSON").await;
    assert!(!lines.is_empty());
    for line in &lines {
        let object: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"));
        assert!(object["level"].is_string() && object["timestamp"].is_string(), "{line}");
    }
    for id in &ids {
        let answered = lines.iter().any(|line| {
            let object: Value = serde_json::from_str(line).unwrap();
            object["level"] == "DEBUG" && object["request_id"] == id.as_str()
        });
        assert!(answered, "no JSON debug line for {id}:\n{}", lines.join("\n"));
    }
}

#[tokio::test]
async fn an_unknown_level_warns_once_and_logs_at_info() {
    let (lines, _) = two_invocations("loud", "").await;
    let warnings: Vec<_> = lines.iter().filter(|line| line.contains("Invalid log level: loud")).collect();
    assert_eq!(warnings.len(), 1, "{}", lines.join("\n"));
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(lines.iter().all(|line| !line.contains("DEBUG")), "{}", lines.join("\n"));
}

#[tokio::test]
async fn an_unknown_level_warning_is_json_too() {
    let (lines, _) = two_invocations("loud", "json").await;
    assert_eq!(lines.len(), 1, "{}", lines.join("\n"));
    let warning: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["message"], "Invalid log level: loud Defaulting to INFO");
}
