//! Which trace an invocation continues (§5.3): read from the event according to its source,
//! else from the client context, else (in Lambda) from the invocation's X-Ray header.
pub mod authorizer;
mod client_context;
mod context;
mod durable;
mod eventbridge;
mod http;
mod kinesis;
pub mod messaging;
pub mod propagation;
pub mod step_functions;
pub mod xray;

use serde_json::Value;

pub use context::{ContextSource, TraceContext};

use super::config::TraceConfig;
use super::json;
use super::trigger::{EventSource, EventType};
use crate::runtime_api::InvocationContext;

/// What extraction reads besides the event.
pub struct ExtractInput<'a> {
    pub source: EventSource,
    pub invocation: &'a InvocationContext,
    pub config: &'a TraceConfig,
}

/// The context of §5.3: a complete context from the event (source `Event`), else the X-Ray
/// context of the invocation when running in Lambda (source `Xray`), else `None`. Never
/// panics, whatever the event is.
pub fn extract(event: &Value, source: &EventSource, invocation: &InvocationContext, config: &TraceConfig) -> Option<TraceContext> {
    let input = ExtractInput {
        source: *source,
        invocation,
        config,
    };
    let from_event = from_event(event, &input).filter(TraceContext::is_complete);
    if let Some(mut context) = from_event {
        context.source = ContextSource::Event;
        return Some(context);
    }
    if !config.running_in_lambda {
        return None;
    }
    xray::context_from_header(invocation.xray_trace_id.as_deref()?)
}

fn from_event(event: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    let client_context = || client_context::extract(input);
    if event.is_object() && json::get(event, "request").is_some() {
        // AppSync resolvers: the request's headers, without authorizer decoding.
        let request = json::get(event, "request").filter(|r| json::get(r, "headers").is_some());
        return match request {
            Some(request) => http::extract(request, input, false)
                .filter(TraceContext::is_complete)
                .or_else(client_context),
            None => client_context(),
        };
    }
    if event.is_object() && (json::get(event, "headers").is_some() || json::get(event, "multiValueHeaders").is_some()) {
        let decode = input.config.decode_authorizer_context;
        return http::extract(event, input, decode)
            .filter(TraceContext::is_complete)
            .or_else(client_context);
    }
    let found = match input.source.event_type {
        EventType::Sns | EventType::Sqs => messaging::extract(event, input),
        EventType::Eventbridge => eventbridge::extract(event, input),
        EventType::Kinesis => kinesis::extract(event, input),
        EventType::StepFunctions => step_functions::extract(event),
        _ if json::get(event, "DurableExecutionArn").is_some() => return durable::extract(event, input),
        _ => None,
    };
    found.or_else(client_context)
}

/// The headers that continue `context` elsewhere, in the configured inject styles
/// (`x-datadog-*`, `traceparent`, …): for the universal-instrumentation answer and for
/// outgoing calls made by the handler.
pub fn injection_headers(context: &TraceContext, config: &TraceConfig) -> Vec<(String, String)> {
    propagation::inject(context, &config.propagation_inject)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;
    use crate::telemetry::traces::trigger::detect;
    use serde_json::json;

    fn config(pairs: &[(&str, &str)]) -> TraceConfig {
        TraceConfig::from_env(&Environment::from_pairs(pairs.iter().copied()))
    }

    fn run(event: &Value, invocation: &InvocationContext, config: &TraceConfig) -> Option<TraceContext> {
        extract(event, &detect(event), invocation, config)
    }

    const XRAY: &str = "Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1";

    #[test]
    fn xray_fallback_only_in_lambda() {
        let invocation = InvocationContext {
            xray_trace_id: Some(XRAY.into()),
            ..Default::default()
        };
        assert!(run(&json!({}), &invocation, &config(&[])).is_none());
        let ctx = run(&json!({}), &invocation, &config(&[("AWS_LAMBDA_FUNCTION_NAME", "f")])).unwrap();
        assert_eq!(ctx.source, ContextSource::Xray);
        assert_eq!(
            (ctx.trace_id.low, ctx.parent_id, ctx.sampling_priority),
            (3995693151288333088, 10713633173203262661, Some(2))
        );
    }

    #[test]
    fn client_context_custom_and_legacy() {
        let custom = r#"{"custom": {"x-datadog-trace-id": "1", "x-datadog-parent-id": "2", "x-datadog-sampling-priority": "1"}}"#;
        let legacy =
            r#"{"custom": {"_datadog": {"x-datadog-trace-id": "3", "x-datadog-parent-id": "4", "x-datadog-sampling-priority": "1"}}}"#;
        for (raw, trace) in [(custom, 1), (legacy, 3)] {
            let invocation = InvocationContext {
                client_context: Some(raw.into()),
                ..Default::default()
            };
            assert_eq!(run(&json!({"any": 1}), &invocation, &config(&[])).unwrap().trace_id.low, trace);
        }
    }

    #[test]
    fn message_attributes_that_are_not_json_or_base64() {
        let sqs = |attribute: Value| json!({"Records": [{"eventSource": "aws:sqs", "messageAttributes": {"_datadog": attribute}}]});
        let invocation = InvocationContext::default();
        for attribute in [
            json!({"dataType": "String", "stringValue": "{not json"}),
            json!({"dataType": "Binary", "binaryValue": "%%%not base64"}),
            json!({"dataType": "Binary", "binaryValue": "bm90IGpzb24="}),
            json!({"dataType": "Number", "stringValue": "1"}),
            json!("just a string"),
        ] {
            assert!(run(&sqs(attribute.clone()), &invocation, &config(&[])).is_none(), "{attribute}");
        }
        let good = json!({"dataType": "String", "stringValue": r#"{"x-datadog-trace-id":"7","x-datadog-parent-id":"8","x-datadog-sampling-priority":"1"}"#});
        assert_eq!(run(&sqs(good), &invocation, &config(&[])).unwrap().trace_id.low, 7);
    }

    #[test]
    fn durable_checkpoint_with_the_highest_number() {
        let event = json!({"DurableExecutionArn": "arn:aws:lambda:us-east-1:1:function:f:1/durable-execution/n/i",
            "InitialExecutionState": {"Operations": [
                {"Name": "_datadog_2", "StepDetails": {"Result": "{\"x-datadog-trace-id\":\"22\",\"x-datadog-parent-id\":\"2\",\"x-datadog-sampling-priority\":\"1\"}"}},
                {"Name": "_datadog_10", "StepDetails": {"Result": {"x-datadog-trace-id": "100", "x-datadog-parent-id": "3", "x-datadog-sampling-priority": "1"}}},
                {"Name": "_datadog_x", "StepDetails": {"Result": "{}"}},
                {"Name": "other"}]}});
        assert_eq!(run(&event, &InvocationContext::default(), &config(&[])).unwrap().trace_id.low, 100);
    }

    #[test]
    fn eventbridge_step_functions_detail() {
        let event = json!({"detail-type": "x", "source": "s", "detail": {"_datadog": {
            "Execution": {"Id": "arn:aws:states:sa-east-1:425362996713:execution:abhinav-activity-state-machine:72a7ca3e-901c-41bb-b5a3-5f279b92a316", "RedriveCount": 0},
            "StateMachine": {}, "State": {"Name": "Lambda Invoke", "EnteredTime": "2024-12-04T19:38:04.118Z", "RetryCount": 0}}}});
        let ctx = run(&event, &InvocationContext::default(), &config(&[])).unwrap();
        assert_eq!(ctx.trace_id.low, 435175499815315247);
    }
}
