//! Application Load Balancer inferred span (`aws.alb`); ALB events carry no time, so the span
//! starts with the handler. Tags whose value is unknown are left out.
use serde_json::Value;

use super::draft::{Draft, InferInput, Synchronicity};
use super::service::service_name;
use crate::telemetry::traces::json;
use crate::telemetry::traces::trigger::resolve_headers;

pub(super) fn build(event: &Value, input: &InferInput<'_>) -> Draft {
    let headers = resolve_headers(event);
    let text = |v: Option<&Value>| v.filter(|v| !v.is_null()).map(|v| json::py_str(Some(v)));
    let host = text(headers.get("host"));
    let method = text(json::get(event, "httpMethod"));
    let path = text(json::get(event, "path"));
    let proto = text(headers.get("x-forwarded-proto")).unwrap_or_else(|| "http".to_owned());
    let service = service_name(input.config, host.as_deref(), "lambda_alb", host.as_deref(), None);
    let resource = match (&method, &path) {
        (Some(m), Some(p)) => format!("{m} {p}"),
        (Some(m), None) => m.clone(),
        (None, Some(p)) => p.clone(),
        (None, None) => "aws.alb".to_owned(),
    };
    let mut draft = Draft::new("aws.alb", service, resource.clone(), "http", Synchronicity::Sync);
    let url = match (&host, &path) {
        (Some(h), Some(p)) if !h.is_empty() => Some(format!("{proto}://{h}{p}")),
        _ => None,
    };
    let optional = [
        ("operation_name", Some("aws.alb".to_owned())),
        ("span.kind", Some("server".to_owned())),
        ("http.method", method),
        ("http.url", url),
        ("http.useragent", text(headers.get("user-agent"))),
        ("endpoint", path),
        ("resource_names", Some(resource)),
        ("request_id", Some(input.request_id.to_owned())),
        (
            "target_group_arn",
            text(json::path(event, &["requestContext", "elb", "targetGroupArn"])),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            draft.tag_str(key, value);
        }
    }
    draft
}
