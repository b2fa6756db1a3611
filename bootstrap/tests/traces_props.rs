//! Arbitrary JSON events and header values never make tracing panic.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use bootstrap::config::Environment;
use bootstrap::runtime_api::InvocationContext;
use bootstrap::telemetry::traces::extract::{self, propagation, xray};
use bootstrap::telemetry::traces::{
    forwarder_line, trigger, Completion, FunctionInfo, InvocationResult, InvocationTrace, PropagationStyle, TraceConfig,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Keys the trigger and extraction code looks at, so random events reach deep paths.
const KEYS: &[&str] = &[
    "requestContext",
    "stage",
    "domainName",
    "httpMethod",
    "routeKey",
    "messageDirection",
    "elb",
    "headers",
    "multiValueHeaders",
    "awslogs",
    "data",
    "detail-type",
    "detail",
    "_datadog",
    "source",
    "Records",
    "eventSource",
    "EventSource",
    "eventSourceARN",
    "body",
    "messageAttributes",
    "Sns",
    "MessageAttributes",
    "Type",
    "dataType",
    "stringValue",
    "binaryValue",
    "Value",
    "attributes",
    "AWSTraceHeader",
    "kinesis",
    "cf",
    "s3",
    "bucket",
    "object",
    "Execution",
    "StateMachine",
    "State",
    "Payload",
    "serverless-version",
    "request",
    "authorizer",
    "integrationLatency",
    "requestTimeEpoch",
    "timeEpoch",
    "http",
    "identity",
    "x-datadog-trace-id",
    "x-datadog-parent-id",
    "x-datadog-sampling-priority",
    "x-datadog-tags",
    "traceparent",
    "tracestate",
    "DurableExecutionArn",
    "InitialExecutionState",
    "Operations",
    "Timestamp",
    "eventTime",
    "SentTimestamp",
    "dynamodb",
    "Keys",
    "TopicArn",
    "eventName",
    "path",
    "rawPath",
    "time",
    "version",
    "lambda",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[ -~]{0,24}".prop_map(Value::String),
        prop_oneof![
            Just("aws:sqs"),
            Just("aws:sns"),
            Just("aws:kinesis"),
            Just("aws:s3"),
            Just("aws:dynamodb"),
            Just("v1"),
            Just("Binary"),
            Just("String"),
            Just("Notification"),
            Just("a.lambda-url.b"),
            Just("eyJ4IjoxfQ=="),
            Just("1970-01-01T00:00:00.000Z")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<_, _>>())),
        ]
    })
}

fn config() -> TraceConfig {
    TraceConfig::from_env(&Environment::from_pairs([
        ("DD_TRACE_ENABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("DD_CAPTURE_LAMBDA_PAYLOAD", "true"),
        ("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "datadog,tracecontext,b3,b3multi,baggage"),
    ]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_event_gives_a_trace(event in json_value(), xray_header in proptest::option::of("[ -~]{0,80}"), client_context in proptest::option::of(json_value())) {
        let config = config();
        let invocation = InvocationContext {
            request_id: "r".into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:1:function:f".into(),
            xray_trace_id: xray_header,
            client_context: client_context.map(|c| c.to_string()),
            ..Default::default()
        };
        let source = trigger::detect(&event);
        let _ = trigger::trigger_tags(&event, &source, &invocation.invoked_function_arn);
        let _ = extract::extract(&event, &source, &invocation, &config);
        let function = FunctionInfo { name: "f".into(), ..Default::default() };
        let trace = InvocationTrace::begin(event, &invocation, &config, &function, 1_700_000_000_000_000_000);
        let spans = trace.finish(&Completion { result: InvocationResult::Response(b"{\"statusCode\": 500}"), end_ns: 1_700_000_000_100_000_000, cold_start: true }, &function, &config);
        prop_assert!(spans.iter().any(|s| s.name == "aws.lambda"));
        let line = forwarder_line(&spans);
        prop_assert!(serde_json::from_str::<Value>(&line).is_ok());
    }

    #[test]
    fn any_header_values_extract_without_panicking(
        trace_id in "[ -~]{0,40}", parent in "[ -~]{0,40}", priority in "[ -~]{0,4}", tags in "[ -~]{0,600}",
        traceparent in "[0-9a-fA-F-]{0,60}", tracestate in "[ -~]{0,80}", b3 in "[0-9a-fd-]{0,70}", baggage in "[ -~]{0,80}",
    ) {
        let carrier = propagation::Carrier::from_pairs([
            ("x-datadog-trace-id", trace_id.as_str()), ("x-datadog-parent-id", parent.as_str()),
            ("x-datadog-sampling-priority", priority.as_str()), ("x-datadog-tags", tags.as_str()),
            ("traceparent", traceparent.as_str()), ("tracestate", tracestate.as_str()), ("b3", b3.as_str()),
            ("x-b3-traceid", traceparent.as_str()), ("x-b3-spanid", parent.as_str()), ("baggage", baggage.as_str()),
        ]);
        let styles = [PropagationStyle::Datadog, PropagationStyle::TraceContext, PropagationStyle::B3Single, PropagationStyle::B3Multi, PropagationStyle::Baggage];
        if let Some(context) = propagation::extract(&carrier, &styles) {
            let _ = propagation::inject(&context, &styles);
        }
        let _ = xray::context_from_header(&tracestate);
        let _ = xray::datadog_context_from_aws_trace_header(&baggage);
    }
}
