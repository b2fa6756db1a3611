//! Lambda Function URL inferred span (`aws.lambda.url`).
use serde_json::Value;

use super::draft::{float, Draft, InferInput, Synchronicity};
use super::service::service_name;
use crate::telemetry::traces::json;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let rc = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    let domain = json::get(rc, "domainName");
    let service = service_name(
        input.config,
        json::get(rc, "apiId").and_then(Value::as_str),
        "lambda_url",
        domain.and_then(Value::as_str),
        None,
    );
    let http = json::get(rc, "http").filter(|h| json::truthy(Some(h)));
    let method = http.and_then(|h| json::get(h, "method"));
    let path = http.and_then(|h| json::get(h, "path"));
    let resource = format!("{} {}", json::py_str(method), json::py_str(path));
    let mut draft = Draft::new("aws.lambda.url", service, resource.clone(), "http", Synchronicity::Sync);
    draft.tag_str("operation_name", "aws.lambda.url");
    draft.tag_str("http.url", format!("https://{}{}", json::py_str(domain), json::py_str(path)));
    draft.tag("endpoint", path);
    draft.tag("http.method", method);
    draft.tag_str("resource_names", resource);
    draft.tag_str("request_id", input.request_id);
    let epoch_ms = float(json::get(rc, "timeEpoch"))?;
    draft.start_ns = Some((epoch_ms * 1e6) as i64);
    Some(draft)
}
