//! Lambda durable functions (§5.17): execution tags from the event, status from the response.
use serde_json::Value;

use super::json;
use super::trigger::Tags;

/// `aws.durable.execution_name`, `aws.durable.execution_id`, `aws.durable.first_invocation`
/// from a `DurableExecutionArn` ending in `/durable-execution/<name>/<id>`.
pub fn durable_tags(event: &Value) -> Tags {
    let mut tags = Tags::new();
    let Some(arn) = json::get(event, "DurableExecutionArn").and_then(Value::as_str) else {
        return tags;
    };
    let parts: Vec<&str> = arn.rsplitn(4, '/').collect();
    let [id, name, marker, _] = parts.as_slice() else { return tags };
    if *marker != "durable-execution" || id.is_empty() || name.is_empty() {
        return tags;
    }
    let operations = json::path(event, &["InitialExecutionState", "Operations"]).and_then(Value::as_array);
    let first = operations.is_some_and(|ops| ops.len() == 1);
    tags.insert("aws.durable.execution_name".into(), (*name).to_owned());
    tags.insert("aws.durable.execution_id".into(), (*id).to_owned());
    tags.insert("aws.durable.first_invocation".into(), first.to_string());
    tags
}

/// `aws.durable.execution_status` from a response `Status` of SUCCEEDED, FAILED or PENDING.
/// An invocation of a durable function (its event carries `DurableExecutionArn`).
pub fn is_durable(event: &Value) -> bool {
    json::get(event, "DurableExecutionArn").is_some()
}

pub fn execution_status(event: &Value, response: &Value) -> Option<String> {
    json::get(event, "DurableExecutionArn")?;
    let status = json::get(response, "Status")?.as_str()?;
    matches!(status, "SUCCEEDED" | "FAILED" | "PENDING").then(|| status.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tags_and_status() {
        let event = json!({"DurableExecutionArn": "arn:aws:lambda:us-east-1:1:function:f:1/durable-execution/order/abc-123",
                           "InitialExecutionState": {"Operations": [{}]}});
        let tags = durable_tags(&event);
        assert_eq!(tags["aws.durable.execution_name"], "order");
        assert_eq!(tags["aws.durable.execution_id"], "abc-123");
        assert_eq!(tags["aws.durable.first_invocation"], "true");
        assert_eq!(execution_status(&event, &json!({"Status": "PENDING"})).as_deref(), Some("PENDING"));
        assert_eq!(execution_status(&event, &json!({"Status": "WEIRD"})), None);
        assert!(durable_tags(&json!({"DurableExecutionArn": "arn:nothing"})).is_empty());
        assert!(durable_tags(&json!({"DurableExecutionArn": 5})).is_empty());
    }
}
