//! SNS notifications.
use serde_json::Value;

use crate::telemetry::traces::json;

/// `Records[0].Sns.TopicArn`.
pub(super) fn event_source_arn(event: &Value) -> Option<String> {
    json::str_at(json::first_record(event)?, &["Sns", "TopicArn"]).map(str::to_owned)
}
