//! Lambda durable functions (§5.17): the context saved in the `_datadog_<N>` checkpoint with
//! the highest N.
use serde_json::Value;

use super::context::TraceContext;
use super::{propagation, ExtractInput};
use crate::telemetry::traces::json;

const CHECKPOINT_PREFIX: &str = "_datadog_";

pub(super) fn extract(event: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    let operations = json::path(event, &["InitialExecutionState", "Operations"])?;
    let operations: Vec<&Value> = match operations {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => map.values().collect(),
        _ => return None,
    };
    let best = operations
        .into_iter()
        .filter_map(|op| {
            let number: i64 = json::get(op, "Name")?.as_str()?.strip_prefix(CHECKPOINT_PREFIX)?.parse().ok()?;
            Some((number, op))
        })
        .max_by_key(|(number, _)| *number)?
        .1;
    let result = json::path(best, &["StepDetails", "Result"])?;
    let data = match result {
        Value::String(text) => serde_json::from_str(text).ok()?,
        other => other.clone(),
    };
    data.is_object()
        .then(|| propagation::extract(&propagation::Carrier::from_json(&data), &input.config.propagation_extract))
        .flatten()
}
