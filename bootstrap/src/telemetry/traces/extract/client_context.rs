//! The Lambda client context of synchronous invokes from a traced caller (§5.3.6):
//! `custom._datadog` (legacy) or `custom` itself, as propagation headers.
use serde_json::Value;

use super::context::TraceContext;
use super::{propagation, ExtractInput};
use crate::telemetry::traces::json;

pub(super) fn extract(input: &ExtractInput<'_>) -> Option<TraceContext> {
    let raw = input.invocation.client_context.as_deref()?;
    let client_context: Value = serde_json::from_str(raw).ok()?;
    let custom = json::get(&client_context, "custom").filter(|c| json::truthy(Some(c)))?;
    let data = json::get(custom, "_datadog").unwrap_or(custom);
    propagation::extract(&propagation::Carrier::from_json(data), &input.config.propagation_extract)
}
