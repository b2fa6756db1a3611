//! Lambda Managed Instances: `AWS_LAMBDA_MAX_CONCURRENCY=N` keeps N invocations in flight in one
//! bootstrap process. Overlap is shown by the `rendezvous` handler (invocations wait for each
//! other inside the handler), never by how long anything took.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use emulator_support::EmulatorProcess;
use runtime_support::*;
use serde_json::json;

fn start_concurrent(handler: &str, concurrency: &str) -> EmulatorProcess {
    let concurrency_env = format!("AWS_LAMBDA_MAX_CONCURRENCY={concurrency}");
    start(
        &example_handler(handler),
        &["--timeout", RELAXED_TIMEOUT, "--env", &concurrency_env],
    )
}

async fn invoke_all(emulator: &EmulatorProcess, events: &[String]) -> Vec<emulator_support::Reply> {
    let pending: Vec<_> = events.iter().map(|event| emulator.spawn_invoke(event)).collect();
    let mut replies = Vec::new();
    for invoke in pending {
        replies.push(invoke.await.unwrap());
    }
    replies
}

#[tokio::test]
async fn four_sleeps_complete_in_one_process_with_concurrency_4() {
    let emulator = start_concurrent("sleep", "4");
    let replies = invoke_all(&emulator, &vec![r#"{"ms": 300}"#.to_owned(); 4]).await;
    for reply in &replies {
        assert_eq!(function_response(reply), json!({"slept_ms": 300}));
    }
    let mut ids: Vec<_> = replies.iter().map(|r| r.header("x-amzn-requestid").unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "four distinct invocations");
    assert_one_answer_each_from_one_process(&emulator, 4).await;
}

#[tokio::test]
async fn four_invocations_are_in_flight_at_once_with_concurrency_4() {
    let emulator = start_concurrent("rendezvous", "4");
    // Each waits inside the handler until all four are there: only a process running four
    // invocations at once can answer `met` (a generous bound keeps a broken runtime from hanging).
    let event = json!({"parties": 4, "wait_ms": 30_000}).to_string();
    let replies = invoke_all(&emulator, &vec![event; 4]).await;
    for reply in &replies {
        assert_eq!(function_response(reply), json!({"met": true, "present": 4}));
    }
    assert_one_answer_each_from_one_process(&emulator, 4).await;
}

#[tokio::test]
async fn without_concurrency_invocations_never_meet() {
    // The control for the test above: one at a time, a party of two never meets.
    let emulator = start(&example_handler("rendezvous"), &["--timeout", RELAXED_TIMEOUT]);
    let event = json!({"parties": 2, "wait_ms": 200}).to_string();
    let replies = invoke_all(&emulator, &vec![event; 2]).await;
    for reply in &replies {
        assert_eq!(function_response(reply), json!({"met": false, "present": 1}));
    }
    assert_one_answer_each_from_one_process(&emulator, 2).await;
}

#[tokio::test]
async fn eight_async_sleeps_through_four_workers_each_get_their_own_answer() {
    let emulator = start_concurrent("async_sleep", "4");
    let events: Vec<String> = (1..=8).map(|n| json!({ "ms": n * 10 }).to_string()).collect();
    let replies = invoke_all(&emulator, &events).await;
    for (n, reply) in (1..=8).zip(&replies) {
        assert_eq!(function_response(reply), json!({ "slept_ms": n * 10 }));
    }
    assert_one_answer_each_from_one_process(&emulator, 8).await;
}
