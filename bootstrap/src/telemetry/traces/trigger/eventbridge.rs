//! EventBridge events (custom buses, or any event with a `detail-type`).
use serde_json::Value;

use super::{EventSource, EventType};
use crate::telemetry::traces::json;

pub(super) fn detect(event: &Value) -> Option<EventSource> {
    json::truthy(json::get(event, "detail-type")).then_some(EventSource::of(EventType::Eventbridge))
}
