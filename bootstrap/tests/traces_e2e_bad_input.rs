//! Bad input through the real `lambda-emulator` + `bootstrap` with tracing on (and payload
//! capture, the deepest walk of the event): events that are not objects, 10 000 levels deep or
//! 6 MB, malformed propagation headers, `_datadog` attributes that are not JSON or not base64.
//! Each invocation is answered once, its trace line is still printed, a malformed context is
//! ignored (a new trace, nothing made up), and one bootstrap process serves them all.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use serde_json::{json, Value};
use traces_support::*;

/// Lambda's limit on a synchronous invoke's payload.
const INVOKE_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;

fn fixture(name: &str) -> Value {
    serde_json::from_str(&fixture_text(name)).unwrap()
}

fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

fn nested_objects(depth: usize) -> String {
    format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
}

/// An API Gateway event whose only headers are `headers`.
fn api_gateway_with(headers: Value) -> String {
    let mut event = fixture("api-gateway.json");
    event["headers"] = headers;
    event.as_object_mut().unwrap().remove("multiValueHeaders");
    event.to_string()
}

/// The SQS fixture with its `_datadog` attribute replaced.
fn sqs_with_datadog_attribute(attribute: Value) -> String {
    let mut event = fixture("sqs-string-msg-attribute.json");
    event["Records"][0]["messageAttributes"]["_datadog"] = attribute;
    event.to_string()
}

fn sns_with_datadog_attribute(attribute: Value) -> String {
    let mut event = fixture("sns-string-msg-attribute.json");
    event["Records"][0]["Sns"]["MessageAttributes"]["_datadog"] = attribute;
    event.to_string()
}

fn kinesis_with_data(data: &str) -> String {
    let mut event = fixture("kinesis.json");
    event["Records"][0]["kinesis"]["data"] = json!(data);
    event.to_string()
}

fn eventbridge_with_datadog(datadog: Value) -> String {
    let mut event = fixture("eventbridge-custom.json");
    event["detail"]["_datadog"] = datadog;
    event.to_string()
}

/// What one case must show in its trace.
struct Case {
    what: &'static str,
    event: String,
    /// The event source the trigger tags must still name (None: not a known trigger).
    source: Option<&'static str>,
    /// The inferred span still built from the rest of the event.
    inferred: Option<&'static str>,
}

fn case(what: &'static str, event: String, source: Option<&'static str>, inferred: Option<&'static str>) -> Case {
    Case {
        what,
        event,
        source,
        inferred,
    }
}

fn cases() -> Vec<Case> {
    let huge_tags = format!(
        "_dd.p.dm=-0,{}",
        (0..20_000).map(|i| format!("_dd.p.k{i}=v")).collect::<Vec<_>>().join(",")
    );
    let six_megabytes = {
        let envelope = r#"{"data":""}"#.len();
        format!(r#"{{"data":"{}"}}"#, "x".repeat(INVOKE_PAYLOAD_LIMIT - envelope - 64))
    };
    let datadog = |trace: &str, parent: &str, priority: &str| json!({"x-datadog-trace-id": trace, "x-datadog-parent-id": parent, "x-datadog-sampling-priority": priority});
    let http = Some("api-gateway");
    let apigw = Some("aws.apigateway");
    vec![
        case("an array", "[1,2,3]".into(), None, None),
        case("a string", "\"just text\"".into(), None, None),
        case("a number", "42".into(), None, None),
        case("null", "null".into(), None, None),
        case("nothing at all", String::new(), None, None),
        case("not JSON", "{\"unterminated\": ".into(), None, None),
        case("10 000 nested arrays", nested_arrays(10_000), None, None),
        case("10 000 nested objects", nested_objects(10_000), None, None),
        case("6 MB", six_megabytes, None, None),
        case("non-hex datadog ids", api_gateway_with(datadog("zz", "yy", "1")), http, apigw),
        case("negative datadog ids", api_gateway_with(datadog("-1", "-2", "1")), http, apigw),
        case("zero datadog ids", api_gateway_with(datadog("0", "0", "1")), http, apigw),
        case(
            "ids past 64 bits",
            api_gateway_with(datadog("18446744073709551616", "99999999999999999999999", "1")),
            http,
            apigw,
        ),
        case("no sampling priority", api_gateway_with(datadog("5", "6", "")), http, apigw),
        case(
            "huge x-datadog-tags",
            api_gateway_with(json!({"x-datadog-tags": huge_tags, "x-datadog-trace-id": "zz"})),
            http,
            apigw,
        ),
        case(
            "traceparent with bad hex",
            api_gateway_with(json!({"traceparent": "00-zzzz0000000000000000000000000001-0000000000000001-01"})),
            http,
            apigw,
        ),
        case(
            "traceparent of the wrong length",
            api_gateway_with(json!({"traceparent": "00-0001-0000000000000001-01"})),
            http,
            apigw,
        ),
        case(
            "traceparent with zero ids",
            api_gateway_with(json!({"traceparent": "00-00000000000000000000000000000000-0000000000000000-01"})),
            http,
            apigw,
        ),
        case(
            "b3-looking garbage",
            api_gateway_with(json!({"b3": "-".repeat(100_000), "x-b3-traceid": "nothex"})),
            http,
            apigw,
        ),
        case(
            "headers that are a list",
            api_gateway_with(json!(["x-datadog-trace-id", "1"])),
            http,
            apigw,
        ),
        case(
            "SQS _datadog that is not JSON",
            sqs_with_datadog_attribute(json!({"stringValue": "{not json", "dataType": "String"})),
            Some("sqs"),
            Some("aws.sqs"),
        ),
        case(
            "SQS _datadog that is not base64",
            sqs_with_datadog_attribute(json!({"binaryValue": "%%%not base64%%%", "dataType": "Binary"})),
            Some("sqs"),
            Some("aws.sqs"),
        ),
        case(
            "SQS _datadog of another type",
            sqs_with_datadog_attribute(json!({"stringValue": "1", "dataType": "Number"})),
            Some("sqs"),
            Some("aws.sqs"),
        ),
        case(
            "SNS _datadog that is not JSON",
            sns_with_datadog_attribute(json!({"Type": "String", "Value": "[[[["})),
            Some("sns"),
            Some("aws.sns"),
        ),
        case(
            "SNS _datadog that is not base64",
            sns_with_datadog_attribute(json!({"Type": "Binary", "Value": "***"})),
            Some("sns"),
            Some("aws.sns"),
        ),
        case(
            "Kinesis data that is not base64",
            kinesis_with_data("***"),
            Some("kinesis"),
            Some("aws.kinesis"),
        ),
        case(
            "Kinesis data that is not JSON",
            kinesis_with_data("bm90IGpzb24="),
            Some("kinesis"),
            Some("aws.kinesis"),
        ),
        case(
            "EventBridge _datadog that is a number",
            eventbridge_with_datadog(json!(7)),
            Some("eventbridge"),
            Some("aws.eventbridge"),
        ),
    ]
}

#[tokio::test]
async fn every_bad_event_is_answered_and_still_traced() {
    let emulator = start_traced(
        "echo",
        &["--timeout", "30"],
        &[
            ("DD_CAPTURE_LAMBDA_PAYLOAD", "true"),
            ("DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", "10000"),
        ],
    );
    let cases = cases();
    for case in &cases {
        let what = case.what;
        let reply = invoke(&emulator, case.event.clone()).await;
        assert_eq!(reply.status, http::StatusCode::OK, "{what}: {}", reply.text());
        let failed = reply.header("x-amz-function-error").is_some();
        // The echo takes any JSON value; what is not JSON (or too deep for serde) is its error.
        let sent: Result<Value, _> = serde_json::from_str(&case.event);
        assert_eq!(failed, sent.is_err(), "{what}: {}", reply.text());
        if let Ok(sent) = sent {
            let answered: Value = serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(answered, sent, "{what}: the echo answers the event");
        }
        let spans = trace_of(&emulator, &request_id(&reply));
        assert_well_formed(&spans);
        let lambda = span(&spans, "aws.lambda");
        assert_eq!(lambda.error, i64::from(failed), "{what}: error iff the handler failed: {lambda:#?}");
        assert_eq!(lambda.meta("function_trigger.event_source"), case.source, "{what}");
        let root = local_root(&spans);
        // EventBridge is left out: the seed forces its inferred span's parent to the X-Ray
        // segment when the event has no context (§5.7), and the emulator always sends X-Ray.
        if case.source != Some("eventbridge") {
            assert_eq!(root.parent_id, 0, "{what}: a malformed context is no context: {spans:#?}");
        }
        assert_eq!(root.metrics["_sampling_priority_v1"], 1.0, "{what}");
        match case.inferred {
            Some(name) => assert_eq!(lambda.parent_id, span(&spans, name).span_id, "{what}"),
            None => assert_eq!(lambda.span_id, root.span_id, "{what}: no inferred span: {spans:#?}"),
        }
    }
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 1, "no crash: {stats}");
    assert_eq!(stats["answers_delivered"], cases.len(), "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(trace_lines(&emulator).len(), cases.len(), "one trace line per invocation");
    let stderr = emulator.stderr.text();
    assert!(!stderr.contains("panicked"), "{stderr}");
}
