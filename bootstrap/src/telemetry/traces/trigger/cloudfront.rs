//! CloudFront Lambda@Edge events.
use serde_json::Value;

use crate::telemetry::traces::arn::FunctionArn;
use crate::telemetry::traces::json;

/// `arn:<partition>:cloudfront::<account>:distribution/<distributionId>`, account of the function.
pub(super) fn event_source_arn(event: &Value, function: &FunctionArn) -> Option<String> {
    let record = json::first_record(event)?;
    let id = json::path(record, &["cf", "config", "distributionId"]);
    Some(format!(
        "arn:{}:cloudfront::{}:distribution/{}",
        function.partition(),
        function.account,
        json::py_str(id)
    ))
}
