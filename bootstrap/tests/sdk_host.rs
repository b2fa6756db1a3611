//! The sdk's telemetry API through the real `bootstrap` under the real `lambda-emulator`, with
//! the example handler library: custom metrics (`metric`), and the trace context, child spans
//! and propagation headers (`traced`).
//!
//! Needs `target/<profile>/libhandlers_example.so`: `scripts/test.sh` builds it first (or run
//! `cargo build -p handlers-example`).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use std::path::PathBuf;
use std::time::Duration;

use emulator_support::*;
use serde_json::{json, Value};

/// The example library cargo built beside this test's executable.
fn library() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("libhandlers_example.so");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p handlers-example` (scripts/test.sh does) before this test",
        path.display()
    );
    path
}

/// The bootstrap serving `libhandlers_example.so:<handler>`, with extra variables.
fn start(handler: &str, env: &[&str]) -> EmulatorProcess {
    let handler = format!("DD_LAMBDA_HANDLER={}:{handler}", library().display());
    let mut flags = vec!["--function-name", "my-fn", "--timeout", "10", "--env", handler.as_str()];
    for pair in env {
        flags.extend(["--env", pair]);
    }
    EmulatorProcess::start(&flags, &[env!("CARGO_BIN_EXE_bootstrap")])
}

/// Stdout's JSON lines that satisfy `keep`, once one does (lines are printed after the response).
fn json_lines(emulator: &EmulatorProcess, needle: &str, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let text = emulator
        .stdout
        .wait_for(needle, Duration::from_secs(10))
        .unwrap_or_else(|text| panic!("no {needle} on stdout:\n{text}\nstderr:\n{}", emulator.stderr.text()));
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|value| keep(value))
        .collect()
}

fn custom_metric_lines(emulator: &EmulatorProcess, name: &str) -> Vec<Value> {
    json_lines(emulator, &format!(r#""m":"{name}""#), |line| line["m"] == name)
}

#[tokio::test]
async fn a_custom_metric_is_a_forwarder_line_with_the_seeds_shape() {
    let emulator = start("metric", &["DD_FLUSH_TO_LOG=true"]);
    let reply = emulator.invoke("{}").await;
    assert_eq!(reply.json(), json!({"sent": true}), "{}", emulator.stderr.text());

    let lines = custom_metric_lines(&emulator, "example.metric");
    assert_eq!(lines.len(), 1, "{lines:?}");
    let text = emulator.stdout.text();
    let raw = text.lines().find(|l| l.contains(r#""m":"example.metric""#)).unwrap();
    // The seed's line: compact, keys m, v, e, t in that order, integer epoch seconds.
    assert!(raw.starts_with(r#"{"m":"example.metric","v":1.0,"e":"#), "{raw}");
    let line = &lines[0];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let e = line["e"].as_u64().expect("integer epoch seconds");
    assert!(now.abs_diff(e) < 60, "{line}");
    let tags: Vec<&str> = line["t"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    // The handler's tags, then the layer tag, as the seed appends it.
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(tags[0], "tag:a");
    assert!(tags[1].starts_with("dd_lambda_layer:"), "{tags:?}");
}

#[tokio::test]
async fn metrics_from_a_spawned_thread_and_refusals_without_a_crash() {
    let emulator = start("metric", &["DD_FLUSH_TO_LOG=true"]);
    let threaded = emulator
        .invoke(r#"{"name": "example.threaded", "value": 7, "tags": ["k:v", "x:y"], "from_thread": true}"#)
        .await;
    assert_eq!(threaded.json(), json!({"sent": true}));
    let refused = emulator.invoke(r#"{"name": " "}"#).await.json();
    assert_eq!(refused["sent"], false);
    assert!(refused["error"].as_str().unwrap().contains("Invalid metric name"), "{refused}");

    let lines = custom_metric_lines(&emulator, "example.threaded");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["v"], json!(7), "an integer stays an integer");
    let tags = lines[0]["t"].as_array().unwrap();
    assert_eq!((tags[0].as_str(), tags[1].as_str()), (Some("k:v"), Some("x:y")));
    // Still serving after the refusal.
    assert_eq!(emulator.invoke("{}").await.json(), json!({"sent": true}));
}

/// Span ids of the trace line are 16 upper-case hex digits.
fn hex(id: &str) -> u64 {
    u64::from_str_radix(id, 16).unwrap()
}

fn decimal(value: &Value) -> u64 {
    value.as_str().unwrap().parse().unwrap()
}

fn span<'a>(spans: &'a [Value], name: &str) -> &'a Value {
    spans
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no {name} span in {spans:#?}"))
}

/// The spans of the one trace line printed for the invocation.
fn trace_spans(emulator: &EmulatorProcess) -> Vec<Value> {
    let lines = json_lines(emulator, r#"{"traces""#, |line| line.get("traces").is_some());
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0]["traces"][0].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_handlers_spans_and_ids_are_the_trace_lines() {
    let emulator = start("traced", &["DD_TRACE_ENABLED=true", "DD_FLUSH_TO_LOG=true"]);
    let answer = emulator.invoke(r#"{"hello": "world"}"#).await.json();
    let spans = trace_spans(&emulator);

    let lambda = span(&spans, "aws.lambda");
    let work = span(&spans, "example.work");
    let thread = span(&spans, "example.thread");
    let lambda_id = hex(lambda["span_id"].as_str().unwrap());

    // The ids the handler saw are the trace's.
    let trace = &answer["trace"];
    assert_eq!(decimal(&trace["trace_id_low"]), hex(lambda["trace_id"].as_str().unwrap()));
    assert_eq!(decimal(&trace["span_id"]), lambda_id);
    assert_eq!(
        format!("{:016x}", decimal(&trace["trace_id_high"])),
        lambda["meta"]["_dd.p.tid"].as_str().unwrap()
    );
    assert_eq!(trace["sampling_priority"], 1);

    // Its spans hang under aws.lambda, in the same trace, with what the handler set.
    for child in [work, thread] {
        assert_eq!(child["trace_id"], lambda["trace_id"]);
        assert_eq!(hex(child["parent_id"].as_str().unwrap()), lambda_id);
        assert_eq!(child["service"], lambda["service"]);
    }
    assert_eq!(hex(work["span_id"].as_str().unwrap()), decimal(&answer["span_id"]));
    assert_eq!(hex(thread["span_id"].as_str().unwrap()), decimal(&answer["thread_span_id"]));
    assert_eq!(work["resource"], "example.resource");
    assert_eq!(work["type"], "custom");
    assert_eq!(work["meta"]["example.tag"], "yes");
    assert_eq!(work["metrics"]["example.count"], 3.0);
    assert_eq!(thread["resource"], "example.thread");
    assert!(work["start"].as_i64().unwrap() >= lambda["start"].as_i64().unwrap());

    // Headers continue the trace under aws.lambda, or under the span they were asked from.
    let headers = &answer["headers"];
    assert_eq!(decimal(&headers["x-datadog-trace-id"]), decimal(&trace["trace_id_low"]));
    assert_eq!(decimal(&headers["x-datadog-parent-id"]), lambda_id);
    assert_eq!(headers["x-datadog-sampling-priority"], "1");
    let traceparent = headers["traceparent"].as_str().unwrap();
    let full_trace_id = format!("{:016x}{:016x}", decimal(&trace["trace_id_high"]), decimal(&trace["trace_id_low"]));
    assert_eq!(traceparent, format!("00-{full_trace_id}-{lambda_id:016x}-01"));
    assert_eq!(decimal(&answer["span_headers"]["x-datadog-parent-id"]), decimal(&answer["span_id"]));

    // Log correlation in the seed's format: a 128-bit id as 32 hex digits.
    assert_eq!(
        answer["log_correlation"],
        format!("dd.trace_id={full_trace_id} dd.span_id={lambda_id}")
    );
}

#[tokio::test]
async fn an_api_gateway_caller_trace_is_continued() {
    let emulator = start("traced", &["DD_TRACE_ENABLED=true", "DD_FLUSH_TO_LOG=true"]);
    let event = json!({
        "resource": "/{proxy+}", "path": "/hello", "httpMethod": "GET",
        "headers": {"x-datadog-trace-id": "12345", "x-datadog-parent-id": "67890", "x-datadog-sampling-priority": "2"},
        "requestContext": {"stage": "prod", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                           "requestTimeEpoch": 1428582896000u64, "identity": {"userAgent": "curl"}, "httpMethod": "GET", "path": "/prod/hello"}
    });
    let answer = emulator.invoke(&event.to_string()).await.json();
    let spans = trace_spans(&emulator);
    let inferred = span(&spans, "aws.apigateway");
    let lambda = span(&spans, "aws.lambda");
    let work = span(&spans, "example.work");

    assert_eq!(answer["trace"]["trace_id_low"], "12345");
    assert_eq!(answer["trace"]["trace_id_high"], "0");
    assert_eq!(answer["trace"]["sampling_priority"], 2);
    assert_eq!(hex(inferred["trace_id"].as_str().unwrap()), 12345);
    assert_eq!(hex(inferred["parent_id"].as_str().unwrap()), 67890);
    assert_eq!(lambda["parent_id"], inferred["span_id"]);
    assert_eq!(work["parent_id"], lambda["span_id"]);
    assert_eq!(work["trace_id"], inferred["trace_id"]);
    assert_eq!(answer["headers"]["x-datadog-trace-id"], "12345");
    assert_eq!(answer["headers"]["x-datadog-sampling-priority"], "2");
    let lambda_id = hex(lambda["span_id"].as_str().unwrap());
    assert_eq!(answer["log_correlation"], format!("dd.trace_id=12345 dd.span_id={lambda_id}"));
}

#[tokio::test]
async fn with_tracing_off_the_handler_sees_no_trace_and_no_trace_line_is_printed() {
    let emulator = start("traced", &["DD_FLUSH_TO_LOG=true"]);
    let xray = "Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1";
    let answer = post(&emulator.invoke_url(), b"{}".to_vec(), &[("X-Amzn-Trace-Id", xray)])
        .await
        .json();
    assert_eq!(answer["trace"], Value::Null);
    assert_eq!(answer["span_id"], Value::Null);
    assert_eq!(answer["headers"], json!({}));
    // Only the ids Datadog's library gives log lines without a trace: the X-Ray trace id and a
    // placeholder span's (sdk_logging tests them).
    let correlation = answer["log_correlation"].as_str().unwrap();
    assert!(
        correlation.starts_with("dd.trace_id=3995693151288333088 dd.span_id="),
        "{correlation}"
    );
    // The enhanced metrics line follows the response; by then a trace line would be there too.
    let text = emulator
        .stdout
        .wait_for("aws.lambda.enhanced.invocations", Duration::from_secs(10))
        .unwrap();
    assert!(!text.contains(r#"{"traces""#), "{text}");
}
