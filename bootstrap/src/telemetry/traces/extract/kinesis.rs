//! Kinesis records: `_datadog` inside the base64 JSON data of the first record (§5.3.5).
use base64::Engine;
use serde_json::Value;

use super::context::TraceContext;
use super::{propagation, ExtractInput};
use crate::telemetry::traces::json;

pub(super) fn extract(event: &Value, input: &ExtractInput<'_>) -> Option<TraceContext> {
    let data = json::str_at(json::first_record(event)?, &["kinesis", "data"])?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    if !bytes.is_ascii() {
        return None;
    }
    let payload: Value = serde_json::from_slice(&bytes).ok()?;
    let dd = json::get(&payload, "_datadog").filter(|d| json::truthy(Some(d)))?;
    propagation::extract(&propagation::Carrier::from_json(dd), &input.config.propagation_extract)
}
