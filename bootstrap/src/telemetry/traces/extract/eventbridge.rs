//! EventBridge events: `detail._datadog` (§5.3.4).
use serde_json::Value;

use super::context::TraceContext;
use super::{messaging, step_functions, ExtractInput};
use crate::telemetry::traces::json;

pub(super) fn extract(event: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    let data = json::path(event, &["detail", "_datadog"]).filter(|d| json::truthy(Some(d)))?;
    step_functions::extract(data).or_else(|| messaging::from_datadog_object(data, input))
}
