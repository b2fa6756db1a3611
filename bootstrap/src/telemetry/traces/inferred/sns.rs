//! SNS inferred span (`aws.sns`).
use serde_json::Value;

use super::draft::{Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::parse_utc;
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let record = json::first_record(event)?;
    let sns = json::get(record, "Sns").filter(|s| json::truthy(Some(s)))?;
    let topic_arn = json::get(sns, "TopicArn")?.as_str()?;
    let topic = topic_arn.rsplit(':').next().unwrap_or(topic_arn);
    let service = service_name(input.config, Some(topic), "lambda_sns", Some(topic), Some("sns"));
    let mut draft = Draft::new("aws.sns", service, topic.to_owned(), "web", Synchronicity::Async);
    draft.tag_str("operation_name", "aws.sns");
    draft.tag_str("resource_names", topic);
    draft.tag_str("span.kind", "server");
    draft.tag_str("topicname", topic);
    draft.tag_str("topic_arn", topic_arn);
    draft.tag("message_id", json::get(sns, "MessageId"));
    draft.tag("type", json::get(sns, "Type"));
    // The subject is absent in SNS → SQS messages.
    if let Some(subject) = json::get(sns, "Subject").filter(|s| json::truthy(Some(s))) {
        draft.tag("subject", Some(subject));
    }
    draft.start_ns = Some(parse_utc(json::get(sns, "Timestamp")?.as_str()?, true)?);
    Some(draft)
}
