//! All 53 trigger fixtures through the real `lambda-emulator` + `bootstrap` (echo dylib,
//! `DD_TRACE_ENABLED=true`, `DD_FLUSH_TO_LOG=true`, the function ARN of the reference run),
//! each trace line compared field by field with what Datadog's own library produced
//! (`../shared/fixtures/events-expected.json`): trigger tags on `aws.lambda`, trace and parent
//! ids, sampling priority, inferred (and upstream) span name/service/resource/type/start/tags,
//! and the parentage of every span.
//!
//! What differs from the reference run, on purpose: the emulator's request ids (the reference
//! used `123`), and `AWS_LAMBDA_FUNCTION_NAME` being set, so fixtures without a context get the
//! X-Ray fallback, which starts a new trace unless `DD_MERGE_XRAY_TRACES` (§5.4).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use std::collections::BTreeMap;

use serde_json::Value;
use traces_support::*;

/// `_about.mock_lambda_context.invoked_function_arn` of events-expected.json, split into the
/// emulator's flags.
const FUNCTION_FLAGS: [&str; 6] = [
    "--function-name",
    "python-layer-test",
    "--region",
    "us-west-1",
    "--account-id",
    "123457598159",
];

fn expected_all() -> Value {
    let path = shared_fixtures().join("events-expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn str_map(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// The trigger tags as the `aws.lambda` span carries them.
fn trigger_tags_of(span: &WireSpan) -> BTreeMap<String, String> {
    span.meta
        .iter()
        .filter(|(k, _)| k.starts_with("function_trigger.") || (k.starts_with("http.") && *k != "http.status_code"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The HTTP status the seed derives from a response (§5.6): the echo answers the event itself.
fn status_of_echo(event: &Value) -> String {
    match event.get("statusCode") {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Seconds as the reference wrote them vs our nanoseconds, equal to the microsecond.
fn assert_seconds(name: &str, what: &str, expected: &Value, actual_ns: i64) {
    let expected = expected.as_f64().unwrap_or_else(|| panic!("{name}: {what} is not a number"));
    let actual = actual_ns as f64 / 1e9;
    assert!((expected - actual).abs() < 1e-6, "{name}: {what} expected {expected} got {actual}");
}

/// A span's tags without the trace-level `_dd.p.*` ones (checked on the local root instead).
fn without_propagation_tags(span: &WireSpan) -> BTreeMap<String, String> {
    span.meta
        .iter()
        .filter(|(k, _)| !k.starts_with("_dd.p."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The inferred span's tags after the handler (§5.7): the reference's, with our request id, plus
/// what the library adds once the handler returns.
fn expected_inferred_tags(
    exp: &Value,
    request_id: &str,
    trigger: &BTreeMap<String, String>,
    status: Option<&str>,
) -> BTreeMap<String, String> {
    let mut tags = str_map(&exp["tags"]);
    if tags.contains_key("request_id") {
        tags.insert("request_id".into(), request_id.into());
    }
    if let Some(status) = status {
        tags.insert("http.status_code".into(), status.into());
    }
    if let Some(route) = trigger.get("http.route") {
        tags.insert("http.route".into(), route.clone());
    }
    if let Some(arn) = trigger.get("function_trigger.event_source_arn") {
        tags.insert("dd_resource_key".into(), arn.clone());
    }
    tags
}

#[tokio::test]
async fn every_fixture_through_the_real_bootstrap_matches_datadogs_library() {
    let expected_all = expected_all();
    let emulator = start_traced("echo", &FUNCTION_FLAGS, &[]);
    let mut checked = 0;
    for (name, expected) in expected_all.as_object().unwrap() {
        if name.starts_with('_') {
            continue;
        }
        let text = fixture_text(name);
        let event: Value = serde_json::from_str(&text).unwrap();
        let reply = invoke(&emulator, text.clone()).await;
        assert_eq!(reply.header("x-amz-function-error"), None, "{name}: {}", reply.text());
        assert_eq!(reply.json(), event, "{name}: the echo answers the event");
        let request_id = request_id(&reply);
        let spans = trace_of(&emulator, &request_id);
        assert_well_formed(&spans);

        let lambda = span(&spans, "aws.lambda");
        assert_eq!(lambda.meta("request_id"), Some(request_id.as_str()), "{name}");
        assert_eq!(lambda.resource, "python-layer-test", "{name}");
        assert_eq!(lambda.span_type, "serverless", "{name}");
        assert_eq!(
            lambda.meta("cold_start"),
            Some(if checked == 0 { "true" } else { "false" }),
            "{name}"
        );
        assert_eq!(
            lambda.meta("function_arn"),
            Some("arn:aws:lambda:us-west-1:123457598159:function:python-layer-test"),
            "{name}"
        );
        assert_eq!(lambda.error, 0, "{name}: {lambda:#?}");
        let trigger = str_map(&expected["trigger_tags"]);
        let http = trigger.contains_key("span.kind");
        let mut trigger_without_kind = trigger.clone();
        trigger_without_kind.remove("span.kind");
        assert_eq!(trigger_tags_of(lambda), trigger_without_kind, "{name}: trigger tags");
        // `span.kind: server` is also a tag of every `aws.lambda` span (§5.6).
        assert_eq!(lambda.meta("span.kind"), Some("server"), "{name}");
        let status = http.then(|| status_of_echo(&event));
        assert_eq!(lambda.meta("http.status_code"), status.as_deref(), "{name}: status");

        // The extracted context parents the trace; without one a new trace starts at the root.
        let root = local_root(&spans);
        match &expected["context"] {
            Value::Null => {
                assert_eq!(root.parent_id, 0, "{name}: no context, a new trace: {spans:#?}");
                assert_ne!(root.trace_id, XRAY_TRACE_ID, "{name}: X-Ray parents only when merging");
                assert_eq!(root.metrics["_sampling_priority_v1"], 1.0, "{name}");
                assert_eq!(root.meta("_dd.p.dm"), Some("-0"), "{name}: kept by the default sampler");
                let tid = root.meta("_dd.p.tid").unwrap_or_default();
                assert!(
                    tid.len() == 16 && tid.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                    "{name}: a new trace has a 128-bit id: {tid:?}"
                );
            }
            context => {
                assert_eq!(root.trace_id.to_string(), context["trace_id"], "{name}: trace id");
                assert_eq!(root.parent_id.to_string(), context["parent_id"], "{name}: parent id");
                assert_eq!(
                    root.metrics["_sampling_priority_v1"],
                    context["sampling_priority"].as_f64().unwrap(),
                    "{name}: sampling priority"
                );
                for (key, value) in str_map(&context["meta"]).iter().filter(|(k, _)| k.starts_with("_dd.p.")) {
                    assert_eq!(root.meta(key), Some(value.as_str()), "{name}: propagated {key}");
                }
            }
        }

        // Inferred span (and upstream hop): the reference's values, then the finish rules.
        let inferred_expected = expected.get("inferred").filter(|v| !v.is_null());
        let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
        match inferred_expected {
            None => {
                assert_eq!(lambda.parent_id, root.parent_id, "{name}: aws.lambda is the root");
                assert!(
                    names.iter().all(|n| ["aws.lambda", "aws.lambda.load"].contains(n)),
                    "{name}: no inferred span expected, got {names:?}"
                );
            }
            Some(exp) => {
                let inferred = span(&spans, exp["name"].as_str().unwrap());
                assert_eq!(inferred.service, exp["service"], "{name}: inferred service");
                assert_eq!(inferred.resource, exp["resource"], "{name}: inferred resource");
                assert_eq!(inferred.span_type, exp["span_type"], "{name}: inferred type");
                assert_eq!(
                    without_propagation_tags(inferred),
                    expected_inferred_tags(exp, &request_id, &trigger, status.as_deref()),
                    "{name}: inferred tags"
                );
                assert_eq!(inferred.metrics.get("_dd._inferred_span"), Some(&1.0), "{name}");
                assert_eq!(lambda.parent_id, inferred.span_id, "{name}: aws.lambda under the inferred span");
                if exp["start_seconds"].is_string() {
                    // ALB: no time in the event, the span starts with the handler.
                    assert_eq!(inferred.start, lambda.start, "{name}: handler-time start");
                } else {
                    assert_seconds(name, "inferred start", &exp["start_seconds"], inferred.start);
                }
                match exp["tags"]["_inferred_span.synchronicity"].as_str() {
                    Some("async") => assert_eq!(inferred.end(), lambda.start, "{name}: async ends as aws.lambda starts"),
                    Some("sync") => assert!(inferred.end() >= lambda.end(), "{name}: sync ends with the invocation"),
                    other => panic!("{name}: synchronicity {other:?}"),
                }
                match exp.get("upstream").filter(|v| !v.is_null()) {
                    None => assert_eq!(inferred.span_id, root.span_id, "{name}: the inferred span is the root"),
                    Some(up) => {
                        let upstream = span(&spans, up["name"].as_str().unwrap());
                        assert_eq!(upstream.service, up["service"], "{name}: upstream service");
                        assert_eq!(upstream.resource, up["resource"], "{name}: upstream resource");
                        let mut upstream_tags = str_map(&up["tags"]);
                        if upstream_tags.contains_key("request_id") {
                            upstream_tags.insert("request_id".into(), request_id.clone());
                        }
                        assert_eq!(without_propagation_tags(upstream), upstream_tags, "{name}: upstream tags");
                        assert_seconds(name, "upstream start", &up["start_seconds"], upstream.start);
                        assert_seconds(name, "upstream finish", &up["finish_seconds"], upstream.end());
                        assert_eq!(upstream.span_id, root.span_id, "{name}: the upstream hop is the root");
                        assert_eq!(inferred.parent_id, upstream.span_id, "{name}: inferred under upstream");
                    }
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 53, "every fixture is covered");
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 1, "one bootstrap served them all: {stats}");
    assert_eq!(stats["answers_delivered"], 53, "{stats}");
    assert_eq!(trace_lines(&emulator).len(), 53, "one trace line per invocation");
}
