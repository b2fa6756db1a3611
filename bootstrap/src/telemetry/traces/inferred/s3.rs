//! S3 inferred span (`aws.s3`).
use serde_json::Value;

use super::draft::{Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::parse_utc;
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let record = json::first_record(event)?;
    let s3 = json::get(record, "s3");
    let bucket = s3.and_then(|s| json::get(s, "bucket"));
    let object = s3.and_then(|s| json::get(s, "object"));
    let bucket_name = bucket.and_then(|b| json::get(b, "name"));
    let name_text = bucket_name.and_then(Value::as_str);
    let service = service_name(input.config, name_text, "lambda_s3", name_text, Some("s3"));
    let mut draft = Draft::new("aws.s3", service, json::py_str(bucket_name), "web", Synchronicity::Async);
    draft.tag_str("operation_name", "aws.s3");
    draft.tag("resource_names", bucket_name);
    draft.tag_str("span.kind", "server");
    draft.tag("event_name", json::get(record, "eventName"));
    draft.tag("bucketname", bucket_name);
    draft.tag("bucket_arn", bucket.and_then(|b| json::get(b, "arn")));
    draft.tag("object_key", object.and_then(|o| json::get(o, "key")));
    draft.tag("object_size", object.and_then(|o| json::get(o, "size")));
    draft.tag("object_etag", object.and_then(|o| json::get(o, "eTag")));
    // Without fractional seconds Datadog's library fails here and infers no span (§11).
    draft.start_ns = Some(parse_utc(json::get(record, "eventTime")?.as_str()?, true)?);
    Some(draft)
}
