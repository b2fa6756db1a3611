//! Every trigger fixture of Datadog's library (`../shared/fixtures/events`) through detection,
//! trigger tags, context extraction and inferred spans, compared with what the library itself
//! produced (`../shared/fixtures/events-expected.json`).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::path::PathBuf;

use bootstrap::config::Environment;
use bootstrap::runtime_api::InvocationContext;
use bootstrap::telemetry::traces::inferred::{infer, InferInput, Parent};
use bootstrap::telemetry::traces::{extract, trigger, TraceConfig, TraceId};
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures")
}

fn load(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn str_map(value: &Value) -> std::collections::BTreeMap<String, String> {
    value
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect()
}

/// Seconds as the reference wrote them vs our nanoseconds: equal to the microsecond (the
/// reference went through Python floats).
fn assert_seconds(name: &str, what: &str, expected: &Value, actual_ns: i64) {
    let expected = expected.as_f64().unwrap_or_else(|| panic!("{name}: {what} is not a number"));
    let actual = actual_ns as f64 / 1e9;
    assert!((expected - actual).abs() < 1e-6, "{name}: {what} expected {expected} got {actual}");
}

const HANDLER_START_NS: i64 = 1_700_000_000_123_000_000;

#[test]
fn every_fixture_matches_datadogs_library() {
    let expected_all = load(fixtures_dir().join("events-expected.json"));
    let about = &expected_all["_about"]["mock_lambda_context"];
    let arn = about["invoked_function_arn"].as_str().unwrap();
    let extraction_request_id = about["aws_request_id (trace extraction)"].as_str().unwrap();
    let inferred_request_id = about["aws_request_id (inferred spans)"].as_str().unwrap();
    // The reference ran with tracing on (the library's own default) and default styles.
    let config = TraceConfig::from_env(&Environment::from_pairs([("DD_TRACE_ENABLED", "true")]));
    let invocation = InvocationContext {
        request_id: extraction_request_id.to_owned(),
        invoked_function_arn: arn.to_owned(),
        ..Default::default()
    };

    let mut checked = 0;
    for (name, expected) in expected_all.as_object().unwrap() {
        if name.starts_with('_') {
            continue;
        }
        let event = load(fixtures_dir().join("events").join(name));

        let source = trigger::detect(&event);
        assert_eq!(source.event_type.as_str(), expected["event_type"], "{name}: event type");
        assert_eq!(source.subtype.as_str(), expected["subtype"], "{name}: subtype");

        let tags = trigger::trigger_tags(&event, &source, arn);
        assert_eq!(tags, str_map(&expected["trigger_tags"]), "{name}: trigger tags");

        let context = extract::extract(&event, &source, &invocation, &config);
        match (&expected["context"], &context) {
            (Value::Null, None) => {}
            (Value::Null, Some(ctx)) => panic!("{name}: expected no context, got {ctx:?}"),
            (exp, None) => panic!("{name}: expected context {exp}, got none"),
            (exp, Some(ctx)) => {
                assert_eq!(ctx.trace_id.low.to_string(), exp["trace_id"], "{name}: trace id");
                assert_eq!(ctx.parent_id.to_string(), exp["parent_id"], "{name}: parent id");
                assert_eq!(
                    ctx.sampling_priority.map(f64::from),
                    exp["sampling_priority"].as_f64(),
                    "{name}: priority"
                );
                assert_eq!(ctx.meta(), str_map(&exp["meta"]), "{name}: context meta");
            }
        }

        let parent = Parent {
            trace_id: context.as_ref().map_or(TraceId::new(0, 99), |c| c.trace_id),
            span_id: context.as_ref().map_or(0, |c| c.parent_id),
        };
        let input = InferInput {
            request_id: inferred_request_id,
            config: &config,
        };
        let inferred = infer(&event, &source, &input, parent, "Function", HANDLER_START_NS);
        match (expected.get("inferred").filter(|v| !v.is_null()), inferred) {
            (None, None) => {}
            (None, Some(spans)) => panic!("{name}: expected no inferred span, got {:?}", spans.span),
            (Some(exp), None) => panic!("{name}: expected inferred span {}, got none", exp["name"]),
            (Some(exp), Some(spans)) => {
                let span = &spans.span;
                assert_eq!(span.name, exp["name"], "{name}: inferred name");
                assert_eq!(span.service, exp["service"], "{name}: inferred service");
                assert_eq!(span.resource, exp["resource"], "{name}: inferred resource");
                assert_eq!(span.span_type, exp["span_type"], "{name}: inferred type");
                assert_eq!(span.meta, str_map(&exp["tags"]), "{name}: inferred tags");
                assert_eq!(span.metrics.get("_dd._inferred_span"), Some(&1.0), "{name}");
                assert_eq!(span.trace_id, parent.trace_id, "{name}: inferred trace");
                if exp["start_seconds"].is_string() {
                    // ALB: no time in the event, the span starts with the handler.
                    assert_eq!(span.start_ns, HANDLER_START_NS, "{name}: handler-time start");
                } else {
                    assert_seconds(name, "inferred start", &exp["start_seconds"], span.start_ns);
                }
                match (exp.get("upstream").filter(|v| !v.is_null()), &spans.upstream) {
                    (None, None) => assert_eq!(span.parent_id, parent.span_id, "{name}: inferred parent"),
                    (Some(up), Some(upstream)) => {
                        assert_eq!(upstream.name, up["name"], "{name}: upstream name");
                        assert_eq!(upstream.service, up["service"], "{name}: upstream service");
                        assert_eq!(upstream.resource, up["resource"], "{name}: upstream resource");
                        assert_eq!(upstream.meta, str_map(&up["tags"]), "{name}: upstream tags");
                        assert_seconds(name, "upstream start", &up["start_seconds"], upstream.start_ns);
                        assert_seconds(name, "upstream finish", &up["finish_seconds"], upstream.end_ns());
                        assert_eq!(upstream.parent_id, parent.span_id, "{name}: upstream parent");
                        assert_eq!(span.parent_id, upstream.span_id, "{name}: inferred under upstream");
                    }
                    (exp_up, got) => panic!("{name}: upstream expected {exp_up:?}, got {got:?}"),
                }
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 53, "every fixture is covered");
}
