//! API mode against a recording HTTP intake started here on 127.0.0.1: decoded payloads
//! compared with the seed's (`reference-output/datadog_lambda_api_requests.jsonl`), and an
//! intake that answers 500 or 429, hangs, or refuses connections.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "common/metrics.rs"]
mod common;
#[path = "common/intake.rs"]
mod intake;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bootstrap::lifecycle::{LifecycleEvent, LifecycleObserver};
use bootstrap::sinks::datadog_api::ApiSinkSettings;
use bootstrap::telemetry::metrics::{MetricValue, MetricsConfig, MetricsOutputs, MetricsProcessor};
use common::*;
use intake::{Intake, IntakeOptions, Journal};
use serde_json::Value;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Ok,
    Status(u16),
    Hang,
}

/// An intake whose first `failures` requests get `behaviour` (a hang outlasts every attempt's
/// timeout), the rest 202.
async fn recorder(behaviour: Behaviour, failures: usize) -> Intake {
    let options = match behaviour {
        Behaviour::Ok => IntakeOptions::default(),
        Behaviour::Status(status) => IntakeOptions {
            fail_first: failures,
            fail_status: status,
            ..IntakeOptions::default()
        },
        Behaviour::Hang => IntakeOptions {
            hold_first: failures,
            ..IntakeOptions::default()
        },
    };
    Intake::start(options, Journal::default()).await
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn api_processor(host: &str, out: &SharedBuf) -> Arc<MetricsProcessor> {
    let env = env(&[("DD_API_KEY", KEY), ("DATADOG_HOST", host)]);
    let config = MetricsConfig::from_env_with_extension_path(&env, std::path::Path::new("/nonexistent"));
    let outputs = MetricsOutputs {
        stdout: Box::new(out.clone()),
        proc: None,
        api_settings: Some(ApiSinkSettings {
            attempt_timeout: Duration::from_millis(300),
            max_attempts: 3,
            backoff: Duration::from_millis(10),
            ..ApiSinkSettings::new("")
        }),
        ..MetricsOutputs::default()
    };
    MetricsProcessor::new(config, &env, outputs)
}

async fn invoke_with_metric(processor: &MetricsProcessor, id: &str) {
    processor
        .lambda_metric("peer.test.count", MetricValue::Integer(1), &["k:v".into()], None)
        .unwrap();
    processor.observe(&LifecycleEvent::Invocation(report(id, id == "r0", ok()))).await;
}

#[tokio::test]
async fn payloads_match_the_seeds() {
    let intake = recorder(Behaviour::Ok, 0).await;
    let out = SharedBuf::default();
    let processor = api_processor(&format!("http://{}", intake.addr), &out);
    for i in 0..3 {
        invoke_with_metric(&processor, &format!("r{i}")).await;
    }
    let ours = intake.requests();
    let reference = reference("datadog_lambda_api_requests.jsonl");
    let reference: Vec<Value> = reference.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ours.len(), reference.len());
    for (got, expected) in ours.iter().zip(&reference) {
        assert_eq!(got.path, expected["path"]);
        assert_eq!(got.headers["dd-api-key"], KEY);
        assert_eq!(got.headers["content-encoding"], "deflate");
        assert_eq!(got.headers["content-type"], "application/json");
        let (got_series, expected_series) = (&got.body["series"][0], &expected["body"]["series"][0]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(got_series), keys(expected_series));
        for field in ["metric", "type", "host", "device", "interval"] {
            assert_eq!(got_series[field], expected_series[field], "{field}");
        }
        assert_eq!(got_series["tags"][0], expected_series["tags"][0]);
        assert!(got_series["tags"][1].as_str().unwrap().starts_with("dd_lambda_layer:"));
        let (point, expected_point) = (&got_series["points"][0], &expected_series["points"][0]);
        assert!(
            point[0].is_f64() && point[0].as_f64().unwrap() % 10.0 == 0.0,
            "10 s bucket as a float: {point}"
        );
        assert_eq!(point[1], expected_point[1], "values as floats");
    }
    // Enhanced metrics still go to stdout in API mode, as the seed prints them.
    assert!(out.lines().iter().any(|l| l.contains("aws.lambda.enhanced.invocations")));
}

#[tokio::test]
async fn failing_intake_keeps_the_points_for_the_next_flush() {
    for behaviour in [Behaviour::Status(500), Behaviour::Status(429), Behaviour::Hang] {
        // Three failed attempts on the first flush, then the intake recovers.
        let intake = recorder(behaviour, 3).await;
        let processor = api_processor(&format!("http://{}", intake.addr), &SharedBuf::default());
        invoke_with_metric(&processor, "r0").await;
        assert_eq!(processor.stats.api_failures.load(Ordering::Relaxed), 1);
        assert_eq!(processor.stats.api_points_sent.load(Ordering::Relaxed), 0);
        invoke_with_metric(&processor, "r1").await;
        assert_eq!(
            processor.stats.api_points_sent.load(Ordering::Relaxed),
            2,
            "the kept point and the new one"
        );
        let requests = intake.requests();
        let last = &requests.last().unwrap().body["series"];
        let values: usize = last
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["points"][0][1].as_array().unwrap().len())
            .sum();
        assert_eq!(values, 2);
    }
}

#[tokio::test]
async fn refused_connection_and_rejected_key() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let processor = api_processor(&format!("http://{closed}"), &SharedBuf::default());
    invoke_with_metric(&processor, "r0").await;
    assert_eq!(processor.stats.api_failures.load(Ordering::Relaxed), 1);
    assert_eq!(processor.stats.dropped.load(Ordering::Relaxed), 0, "kept for later");

    let intake = recorder(Behaviour::Status(403), 100).await;
    let processor = api_processor(&format!("http://{}", intake.addr), &SharedBuf::default());
    invoke_with_metric(&processor, "r0").await;
    assert_eq!(intake.requests().len(), 1, "a 403 is not retried");
    assert_eq!(processor.stats.dropped.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn thousand_tag_sets_in_one_invocation() {
    let intake = recorder(Behaviour::Ok, 0).await;
    let processor = api_processor(&format!("http://{}", intake.addr), &SharedBuf::default());
    for i in 0..1000 {
        processor
            .lambda_metric("m", MetricValue::Integer(i), &[format!("id:{i}")], None)
            .unwrap();
    }
    processor.observe(&LifecycleEvent::Invocation(report("r", true, ok()))).await;
    let requests = intake.requests();
    assert_eq!(requests[0].body["series"].as_array().unwrap().len(), 1000);
}
