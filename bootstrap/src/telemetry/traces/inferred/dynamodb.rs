//! DynamoDB Streams inferred span (`aws.dynamodb`).
use serde_json::Value;

use super::draft::{int, Draft, InferInput, Synchronicity};
use super::service::service_name;
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let record = json::first_record(event)?;
    let arn = json::get(record, "eventSourceARN")?.as_str()?;
    let table = arn.split('/').nth(1)?;
    let service = service_name(input.config, Some(table), "lambda_dynamodb", Some(table), Some("dynamodb"));
    let stream = json::get(record, "dynamodb").filter(|d| json::truthy(Some(d)));
    let field = |k: &str| stream.and_then(|d| json::get(d, k));
    let mut draft = Draft::new("aws.dynamodb", service, table.to_owned(), "web", Synchronicity::Async);
    draft.tag_str("operation_name", "aws.dynamodb");
    draft.tag_str("resource_names", table);
    draft.tag_str("span.kind", "server");
    draft.tag_str("tablename", table);
    draft.tag_str("event_source_arn", arn);
    draft.tag("event_id", json::get(record, "eventID"));
    draft.tag("event_name", json::get(record, "eventName"));
    draft.tag("event_version", json::get(record, "eventVersion"));
    draft.tag("stream_view_type", field("StreamViewType"));
    draft.tag("size_bytes", field("SizeBytes"));
    draft.start_ns = int(field("ApproximateCreationDateTime"))?.checked_mul(1_000_000_000);
    draft.start_ns?;
    Some(draft)
}
