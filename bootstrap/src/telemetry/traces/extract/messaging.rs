//! SQS, SNS, SNS→SQS and EventBridge→SQS (§5.3.3): only the first record is read.
use base64::Engine;
use serde_json::Value;

use super::context::TraceContext;
use super::{propagation, step_functions, xray, ExtractInput};
use crate::telemetry::traces::json;
use crate::telemetry::traces::trigger::step_functions::is_step_functions_event;

/// The SQS body parsed as JSON, when it is a JSON text (an object body is not unwrapped, §11).
pub fn parsed_body(record: &Value) -> Option<Value> {
    let body = json::get(record, "body")?.as_str()?;
    serde_json::from_str(body).ok()
}

/// An SNS notification envelope carried in an SQS body.
pub fn sns_envelope(body: &Value) -> Option<&Value> {
    let is_notification = json::get(body, "Type").and_then(Value::as_str) == Some("Notification");
    (is_notification && json::get(body, "TopicArn").is_some()).then_some(body)
}

/// A `_datadog` object as a context: Step Functions data if it is that, else propagation headers.
pub(super) fn from_datadog_object(data: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    if is_step_functions_event(data) {
        if let Some(context) = step_functions::extract(data) {
            return Some(context);
        }
    }
    propagation::extract(&propagation::Carrier::from_json(data), &input.config.propagation_extract)
}

pub(super) fn extract(event: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    let first = json::first_record(event)?;
    // EventBridge → SQS: the body is an EventBridge event with `detail._datadog`.
    if let Some(dd) = parsed_body(first).and_then(|body| json::path(&body, &["detail", "_datadog"]).cloned()) {
        let context = from_datadog_object(&dd, input);
        if context.as_ref().is_some_and(TraceContext::is_complete) {
            return context;
        }
    }
    let body = parsed_body(first);
    let sns_in_sqs = body.as_ref().and_then(sns_envelope);
    let attributes = match sns_in_sqs {
        Some(envelope) => json::get(envelope, "MessageAttributes"),
        None => match json::get(first, "messageAttributes").filter(|a| !a.is_null()) {
            Some(sqs) => Some(sqs),
            None => json::path(first, &["Sns", "MessageAttributes"]),
        },
    };
    let datadog = attributes.and_then(|a| json::get(a, "_datadog")).filter(|d| json::truthy(Some(d)));
    if let Some(attribute) = datadog {
        let data = attribute_json(attribute)?;
        from_datadog_object(&data, input)
    } else {
        let header = json::str_at(first, &["attributes", "AWSTraceHeader"])?;
        xray::datadog_context_from_aws_trace_header(header)
    }
}

/// The JSON inside a `_datadog` message attribute: `String` (`stringValue` / `Value`) or
/// `Binary` (base64 `binaryValue` / `Value`). Other types, bad base64 or bad JSON give nothing.
fn attribute_json(attribute: &Value) -> Option<Value> {
    let data_type = json::get(attribute, "Type")
        .filter(|t| json::truthy(Some(t)))
        .or_else(|| json::get(attribute, "dataType"))
        .and_then(Value::as_str);
    let value = |sqs: &str| {
        json::get(attribute, sqs)
            .filter(|v| json::truthy(Some(v)))
            .or_else(|| json::get(attribute, "Value"))
            .and_then(Value::as_str)
    };
    let text = match data_type {
        Some("Binary") => base64::engine::general_purpose::STANDARD
            .decode(value("binaryValue")?.trim())
            .ok()?,
        Some("String") => value("stringValue")?.as_bytes().to_vec(),
        _ => return None,
    };
    serde_json::from_slice(&text).ok()
}
