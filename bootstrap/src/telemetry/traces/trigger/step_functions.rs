//! Step Functions invocations: the context object at the top level, under `Payload` (legacy
//! Lambda task) or under `_datadog` with `serverless-version` (JSONata style).
use serde_json::Value;

use crate::telemetry::traces::json;

fn has_context_keys(value: &Value) -> bool {
    ["Execution", "StateMachine", "State"].iter().all(|k| json::get(value, k).is_some())
}

/// Datadog's `is_step_function_event`.
pub fn is_step_functions_event(event: &Value) -> bool {
    let event = json::get(event, "Payload").unwrap_or(event);
    if !event.is_object() {
        return false;
    }
    if has_context_keys(event) {
        return true;
    }
    json::get(event, "_datadog")
        .filter(|dd| json::truthy(Some(dd)))
        .is_some_and(|dd| has_context_keys(dd) && json::get(dd, "serverless-version").is_some())
}

/// The state machine's ARN: `StateMachine.Id` of the context object.
pub(super) fn event_source_arn(event: &Value) -> Option<String> {
    let context = json::get(event, "_datadog").unwrap_or(event);
    json::str_at(context, &["StateMachine", "Id"]).map(str::to_owned)
}
