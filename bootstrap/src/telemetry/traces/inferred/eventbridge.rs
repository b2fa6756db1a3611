//! EventBridge inferred span (`aws.eventbridge`).
use serde_json::Value;

use super::draft::{Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::parse_utc;
use crate::telemetry::traces::json;
use crate::telemetry::traces::trigger::step_functions::is_step_functions_event;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let source = match json::get(event, "source") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        // A list or object cannot be a mapping key: Datadog's library gives up here.
        Some(_) => return None,
    };
    let service = service_name(input.config, source, "lambda_eventbridge", source, Some("eventbridge"));
    let resource = source.unwrap_or("aws.eventbridge").to_owned();
    let mut draft = Draft::new("aws.eventbridge", service, resource, "web", Synchronicity::Async);
    draft.tag_str("operation_name", "aws.eventbridge");
    draft.tag_str("resource_names", source.map_or_else(|| "None".to_owned(), str::to_owned));
    draft.tag_str("span.kind", "server");
    draft.tag("detail_type", json::get(event, "detail-type"));
    // A Step Functions context in the detail has a finer time: the state's entry.
    let detail = json::get(event, "detail");
    let entered = detail
        .filter(|d| is_step_functions_event(d))
        .and_then(|d| json::str_at(d, &["_datadog", "State", "EnteredTime"]));
    draft.start_ns = Some(match entered {
        Some(time) => parse_utc(time, true)?,
        None => parse_utc(json::get(event, "time")?.as_str()?, false)?,
    });
    Some(draft)
}
