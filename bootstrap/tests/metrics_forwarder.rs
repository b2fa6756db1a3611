//! Forwarder mode (`DD_FLUSH_TO_LOG=true`): the lines printed for three invocations (echo, echo,
//! a handler error) compared field by field with what Datadog's Python library printed for the
//! same three (`reference-output/datadog_lambda_flush_to_log.txt`), and every line checked
//! against the Forwarder's own acceptance rules.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "common/metrics.rs"]
mod common;

use bootstrap::handler::HandlerOutcome;
use bootstrap::lifecycle::{LifecycleEvent, LifecycleObserver};
use bootstrap::runtime_api::ErrorBody;
use bootstrap::telemetry::metrics::MetricValue;
use common::*;
use serde_json::Value;

/// The Forwarder's `extract_metric` rule: a JSON object with m, v, e, t; t a list; v a number.
fn forwarder_accepts(line: &str) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    ["m", "v", "e", "t"].iter().all(|k| map.contains_key(*k)) && map["t"].is_array() && map["v"].is_number()
}

/// Keys in textual order, as printed.
fn key_order(line: &str) -> Vec<String> {
    let map: serde_json::Map<String, Value> = serde_json::from_str(line).unwrap();
    let mut keys: Vec<(usize, String)> = map.keys().map(|k| (line.find(&format!("\"{k}\":")).unwrap(), k.clone())).collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

/// A tag with the seed's self-naming values mapped to ours.
fn normalise(tag: &str) -> String {
    match tag.split_once(':') {
        Some(("runtime", _)) => "runtime:<runtime>".into(),
        Some(("datadog_lambda" | "datadog_lambda_bootstrap", _)) => "<library-version>".into(),
        Some(("dd_lambda_layer", _)) => "<layer>".into(),
        _ => tag.to_owned(),
    }
}

#[tokio::test]
async fn lines_match_the_seeds_field_by_field() {
    let out = SharedBuf::default();
    let processor = processor(&env(&[("DD_FLUSH_TO_LOG", "true")]), &out, false);
    let outcomes = [
        ok(),
        ok(),
        HandlerOutcome::Error(ErrorBody::new("RuntimeError", "requested failure")),
    ];
    for (i, outcome) in outcomes.into_iter().enumerate() {
        processor
            .lambda_metric("peer.test.count", MetricValue::Integer(1), &["k:v".into()], None)
            .unwrap();
        processor
            .observe(&LifecycleEvent::Invocation(report(&format!("r{i}"), i == 0, outcome)))
            .await;
    }
    let ours = out.lines();
    assert!(!ours.is_empty());
    for line in &ours {
        assert!(forwarder_accepts(line), "the Forwarder would take this for a log: {line}");
        assert_eq!(key_order(line), ["m", "v", "e", "t"], "{line}");
        assert!(!line.contains("\\/"), "slashes must not be escaped: {line}");
        assert!(!line.contains(": ") && !line.contains(", "), "compact: {line}");
    }

    let reference = reference("datadog_lambda_flush_to_log.txt");
    let reference: Vec<&str> = reference.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(reference.len(), 7);
    // Match each reference line, in order, to the next of ours with the same name and tag keys.
    let mut cursor = 0;
    for expected in reference {
        let expected: Value = serde_json::from_str(expected).unwrap();
        let expected_tags: Vec<String> = expected["t"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| normalise(t.as_str().unwrap()))
            .collect();
        let position = ours[cursor..]
            .iter()
            .position(|line| {
                let got: Value = serde_json::from_str(line).unwrap();
                let tags: Vec<String> = got["t"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| normalise(t.as_str().unwrap()))
                    .collect();
                got["m"] == expected["m"] && tags == expected_tags
            })
            .unwrap_or_else(|| panic!("no line of ours matches {expected} (after line {cursor}):\n{}", ours.join("\n")));
        let got: Value = serde_json::from_str(&ours[cursor + position]).unwrap();
        assert!(
            got["v"].is_i64() == expected["v"].is_i64() && got["v"] == expected["v"],
            "value {got} vs {expected}"
        );
        assert!(got["e"].is_i64(), "integer epoch seconds: {got}");
        cursor += position + 1;
    }
}

#[tokio::test]
async fn enhanced_metrics_off_prints_only_custom_metrics() {
    let out = SharedBuf::default();
    let processor = processor(&env(&[("DD_FLUSH_TO_LOG", "true"), ("DD_ENHANCED_METRICS", "false")]), &out, true);
    processor.lambda_metric("c", MetricValue::Float(2.5), &[], None).unwrap();
    processor.observe(&LifecycleEvent::Invocation(report("r", true, ok()))).await;
    let lines = out.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with(r#"{"m":"c","v":2.5,"e":"#), "{}", lines[0]);
}

#[tokio::test]
async fn proc_metrics_and_post_runtime_follow_the_routing() {
    let out = SharedBuf::default();
    let processor = processor(&env(&[("DD_FLUSH_TO_LOG", "true")]), &out, true);
    processor.observe(&LifecycleEvent::Invocation(report("r1", true, ok()))).await;
    processor
        .observe(&LifecycleEvent::Shutdown {
            at: bootstrap::lifecycle::Timestamp::now(),
        })
        .await;
    let names: Vec<String> = out
        .lines()
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["m"]
                .as_str()
                .unwrap()
                .trim_start_matches("aws.lambda.enhanced.")
                .to_owned()
        })
        .collect();
    for expected in [
        "invocations",
        "runtime_duration",
        "response_latency",
        "produced_bytes",
        "cpu_total_time",
        "num_cores",
        "fd_use",
        "threads_use",
        "tmp_max",
        "post_runtime_duration",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected} missing from {names:?}");
    }
    // Left to the Forwarder, which derives them from Lambda's REPORT line.
    for absent in [
        "duration",
        "billed_duration",
        "max_memory_used",
        "memorysize",
        "estimated_cost",
        "init_duration",
        "timeouts",
    ] {
        assert!(!names.iter().any(|n| n == absent), "{absent} would be counted twice");
    }
}

#[tokio::test]
async fn timeout_flush_counts_the_invocation_once() {
    let out = SharedBuf::default();
    let processor = processor(&env(&[("DD_FLUSH_TO_LOG", "true")]), &out, false);
    let r = report(
        "slow",
        false,
        HandlerOutcome::Error(ErrorBody::new("Sandbox.Timedout", "timed out")),
    );
    processor
        .lambda_metric("before.timeout", MetricValue::Integer(1), &[], None)
        .unwrap();
    processor
        .observe(&LifecycleEvent::TimeoutApproaching {
            invocation: r.invocation.clone(),
            received: r.received,
            at: bootstrap::lifecycle::Timestamp::now(),
            cold_start: false,
        })
        .await;
    let after_timeout = out.lines();
    assert!(
        after_timeout.iter().any(|l| l.contains("\"m\":\"before.timeout\"")),
        "custom metrics flushed before the kill"
    );
    assert_eq!(after_timeout.iter().filter(|l| l.contains("enhanced.invocations")).count(), 1);
    processor.observe(&LifecycleEvent::Invocation(r)).await;
    assert_eq!(
        out.lines().iter().filter(|l| l.contains("enhanced.invocations")).count(),
        1,
        "not counted twice"
    );
}
