//! Arbitrary bytes as an invocation event: JSON parsing, event-source detection, trigger tags,
//! trace extraction with every propagation style, the inferred spans, payload capture
//! (`DD_CAPTURE_LAMBDA_PAYLOAD`) and the forwarder line, as one invocation runs them. Never
//! panics; the trace always has its `aws.lambda` span and the line is JSON.
#![no_main]

use bootstrap::config::Environment;
use bootstrap::runtime_api::InvocationContext;
use bootstrap::telemetry::traces::{
    extract, forwarder_line, trigger, Completion, FunctionInfo, InvocationResult, InvocationTrace, TraceConfig,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const START_NS: i64 = 1_700_000_000_000_000_000;

fn config() -> TraceConfig {
    TraceConfig::from_env(&Environment::from_pairs([
        ("DD_TRACE_ENABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ("DD_CAPTURE_LAMBDA_PAYLOAD", "true"),
        ("DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", "64"),
        ("DD_MERGE_XRAY_TRACES", "true"),
        ("DD_TRACE_MANAGED_SERVICES", "true"),
        ("DD_ENCODE_AUTHORIZER_CONTEXT", "true"),
        ("DD_DECODE_AUTHORIZER_CONTEXT", "true"),
        ("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "datadog,tracecontext,b3,b3multi,baggage"),
        ("DD_TRACE_PROPAGATION_STYLE_INJECT", "datadog,tracecontext,b3,b3multi,baggage"),
    ]))
}

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Value>(data) else { return };
    let config = config();
    let invocation = InvocationContext {
        request_id: "fuzz-request".into(),
        deadline_ms: 1_700_000_900_000,
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
        xray_trace_id: Some("Root=1-65f0a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1".into()),
        // The event doubles as the client context: the same untrusted bytes reach that reader.
        client_context: Some(event.to_string()),
        ..Default::default()
    };
    let source = trigger::detect(&event);
    let _ = trigger::trigger_tags(&event, &source, &invocation.invoked_function_arn);
    if let Some(context) = extract::extract(&event, &source, &invocation, &config) {
        assert!(context.is_complete(), "extract returned an incomplete context: {context:?}");
        let _ = extract::injection_headers(&context, &config);
    }
    let function = FunctionInfo {
        name: "f".into(),
        ..Default::default()
    };
    let trace = InvocationTrace::begin(event, &invocation, &config, &function, START_NS);
    let _ = trace.child_context();
    let _ = trace.authorizer_response(data, &config, START_NS + 1_000);
    // The event is also the response: payload capture walks both.
    let completion = Completion {
        result: InvocationResult::Response(data),
        end_ns: START_NS + 100_000_000,
        cold_start: true,
    };
    let spans = trace.finish(&completion, &function, &config);
    assert!(spans.iter().any(|s| s.name == "aws.lambda"), "no aws.lambda span");
    let line = forwarder_line(&spans);
    assert!(serde_json::from_str::<Value>(&line).is_ok(), "the forwarder line is not JSON");
});
