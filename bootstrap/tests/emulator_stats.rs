//! The stats endpoint's facts about the current runtime (its pid and cold start), which the
//! benches read, through the real `lambda-emulator` binary.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use emulator_support::*;

fn python_runtime() -> String {
    runtime_fixture("python_runtime.py")
}

#[tokio::test]
async fn stats_name_the_current_runtime_and_its_first_next() {
    let emulator = EmulatorProcess::start(&[], &[&python_runtime()]);
    let first = emulator.invoke(r#"{"action":"context"}"#).await.json();
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_pid"], first["pid"]);
    let cold_start = stats["first_next_after_start_us"]
        .as_u64()
        .expect("set once the runtime polled /next");
    assert!(cold_start > 0, "{stats}");

    // A crash: the next invoke runs a new runtime, and the stats follow it.
    emulator.invoke(r#"{"action":"exit","code":1}"#).await;
    let second = emulator.invoke(r#"{"action":"context"}"#).await.json();
    assert_ne!(first["pid"], second["pid"]);
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_pid"], second["pid"]);
    assert!(stats["first_next_after_start_us"].as_u64().is_some(), "{stats}");
}

#[tokio::test]
async fn no_cold_start_is_reported_before_the_first_next() {
    // `sleep` never polls `/next`.
    let emulator = EmulatorProcess::start(&[], &["sleep", "300"]);
    let stats = emulator.stats().await;
    assert!(stats["runtime_pid"].as_u64().is_some(), "{stats}");
    assert!(stats["first_next_after_start_us"].is_null(), "{stats}");
}
