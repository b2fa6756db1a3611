//! SQS inferred span (`aws.sqs`), with an upstream SNS or EventBridge span when the message
//! body is an SNS notification or an EventBridge event carrying `_datadog`.
use serde_json::{json, Value};

use super::draft::{int, Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::ms_to_ns;
use super::{eventbridge, sns};
use crate::telemetry::traces::extract::messaging::{parsed_body, sns_envelope};
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let record = json::first_record(event)?;
    let arn = json::get(record, "eventSourceARN")?.as_str()?;
    let queue = arn.rsplit(':').next().unwrap_or(arn);
    let service = service_name(input.config, Some(queue), "lambda_sqs", Some(queue), Some("sqs"));
    let mut draft = Draft::new("aws.sqs", service, queue.to_owned(), "web", Synchronicity::Async);
    let attributes = json::get(record, "attributes").filter(|a| json::truthy(Some(a)));
    draft.tag_str("operation_name", "aws.sqs");
    draft.tag_str("resource_names", queue);
    draft.tag_str("span.kind", "server");
    draft.tag_str("queuename", queue);
    draft.tag_str("event_source_arn", arn);
    draft.tag("receipt_handle", json::get(record, "receiptHandle"));
    draft.tag("sender_id", attributes.and_then(|a| json::get(a, "SenderId")));
    let start = ms_to_ns(int(attributes.and_then(|a| json::get(a, "SentTimestamp")))?)?;
    draft.start_ns = Some(start);
    draft.upstream = upstream(record, input).map(|hop| (Box::new(hop), start));
    Some(draft)
}

fn upstream(record: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let body = parsed_body(record)?;
    if let Some(envelope) = sns_envelope(&body) {
        let sns_event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": envelope}]});
        return sns::build(&sns_event, input);
    }
    let has_datadog = json::get(&body, "detail")
        .filter(|d| json::truthy(Some(d)))
        .is_some_and(|d| json::truthy(json::get(d, "_datadog")));
    if has_datadog {
        return eventbridge::build(&body, input);
    }
    None
}
