//! Record-batch events (DynamoDB, Kinesis, S3, SNS, SQS, CloudFront), told apart by the first
//! record's `eventSource`.
use serde_json::Value;

use super::{EventSource, EventType};
use crate::telemetry::traces::json;

pub(super) fn detect(event: &Value) -> Option<EventSource> {
    let record = json::first_record(event).filter(|r| r.is_object() && json::truthy(Some(r)))?;
    let source_name = json::get(record, "eventSource")
        .filter(|s| json::truthy(Some(s)))
        .or_else(|| json::get(record, "EventSource"))
        .and_then(Value::as_str);
    let mut found = match source_name {
        Some("aws:dynamodb") => Some(EventType::Dynamodb),
        Some("aws:kinesis") => Some(EventType::Kinesis),
        Some("aws:s3") => Some(EventType::S3),
        Some("aws:sns") => Some(EventType::Sns),
        Some("aws:sqs") => Some(EventType::Sqs),
        _ => None,
    };
    if json::truthy(json::get(record, "cf")) {
        found = Some(EventType::Cloudfront);
    }
    found.map(EventSource::of)
}
