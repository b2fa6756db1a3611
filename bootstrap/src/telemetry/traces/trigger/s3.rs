//! S3 notifications.
use serde_json::Value;

use crate::telemetry::traces::json;

/// `Records[0].s3.bucket.arn`.
pub(super) fn event_source_arn(event: &Value) -> Option<String> {
    json::str_at(json::first_record(event)?, &["s3", "bucket", "arn"]).map(str::to_owned)
}
