//! CloudWatch Logs subscriptions and CloudWatch (scheduled) Events.
use std::io::Read;

use base64::Engine;
use serde_json::Value;

use super::{EventSource, EventType};
use crate::telemetry::traces::arn::FunctionArn;
use crate::telemetry::traces::json;

/// The most decompressed log data read to find the log group; a subscription batch is at most
/// 1 MB compressed, and the group name sits at the start.
const MAX_DECOMPRESSED_BYTES: u64 = 16 * 1024 * 1024;

pub(super) fn detect_logs(event: &Value) -> Option<EventSource> {
    json::truthy(json::get(event, "awslogs")).then_some(EventSource::of(EventType::CloudwatchLogs))
}

pub(super) fn detect_events(event: &Value) -> Option<EventSource> {
    let from_events = json::get(event, "source").and_then(Value::as_str) == Some("aws.events");
    let has_categories = json::get(event, "detail")
        .and_then(|d| json::get(d, "EventCategories"))
        .is_some_and(|c| !c.is_null());
    (from_events || has_categories).then_some(EventSource::of(EventType::CloudwatchEvents))
}

/// `arn:<partition>:logs:<region>:<account>:log-group:<logGroup>` from the gzipped, base64
/// `awslogs.data` (group `cloudwatch` when the payload names none). Undecodable data gives no ARN.
pub(super) fn logs_event_source_arn(event: &Value, function: &FunctionArn) -> Option<String> {
    let data = json::str_at(event, &["awslogs", "data"])?;
    let compressed = base64::engine::general_purpose::STANDARD.decode(data).ok()?;
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(compressed.as_slice())
        .take(MAX_DECOMPRESSED_BYTES)
        .read_to_end(&mut text)
        .ok()?;
    let logs: Value = serde_json::from_slice(&text).ok()?;
    let group = json::get(&logs, "logGroup").map_or_else(|| "cloudwatch".to_owned(), |g| json::py_str(Some(g)));
    Some(format!(
        "arn:{}:logs:{}:{}:log-group:{}",
        function.partition(),
        function.region,
        function.account,
        group
    ))
}

/// `resources[0]` when there are resources.
pub(super) fn events_event_source_arn(event: &Value) -> Option<String> {
    let first = json::get(event, "resources")?.as_array()?.first()?;
    Some(json::py_str(Some(first)))
}
