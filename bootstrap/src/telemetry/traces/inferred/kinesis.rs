//! Kinesis inferred span (`aws.kinesis`).
use serde_json::Value;

use super::draft::{float, Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::seconds_to_ns;
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let record = json::first_record(event)?;
    let arn = json::get(record, "eventSourceARN");
    let arn_text = arn.and_then(Value::as_str).unwrap_or_default();
    let last = arn_text.rsplit(':').next().unwrap_or_default();
    let stream = last.strip_prefix("stream/").unwrap_or(last);
    let event_id = json::get(record, "eventID")?.as_str()?;
    let shard = event_id.split(':').next().unwrap_or_default();
    let service = service_name(input.config, Some(stream), "lambda_kinesis", Some(stream), Some("kinesis"));
    let kinesis = json::get(record, "kinesis").filter(|k| json::truthy(Some(k)));
    let mut draft = Draft::new("aws.kinesis", service, stream.to_owned(), "web", Synchronicity::Async);
    draft.tag_str("operation_name", "aws.kinesis");
    draft.tag_str("resource_names", stream);
    draft.tag_str("span.kind", "server");
    draft.tag_str("streamname", stream);
    draft.tag_str("shardid", shard);
    draft.tag("event_source_arn", arn);
    draft.tag_str("event_id", event_id);
    draft.tag("event_name", json::get(record, "eventName"));
    draft.tag("event_version", json::get(record, "eventVersion"));
    draft.tag("partition_key", kinesis.and_then(|k| json::get(k, "partitionKey")));
    draft.start_ns = Some(seconds_to_ns(float(
        kinesis.and_then(|k| json::get(k, "approximateArrivalTimestamp")),
    )?)?);
    Some(draft)
}
