//! API Gateway REST (`aws.apigateway`), HTTP (`aws.httpapi`) and WebSocket
//! (`aws.apigateway.websocket`) inferred spans, with the upstream authorizer span (§5.8).
use serde_json::Value;

use super::draft::{int, Draft, InferInput, Synchronicity};
use super::service::service_name;
use super::time::ms_to_ns;
use crate::telemetry::traces::extract::authorizer;
use crate::telemetry::traces::json;

/// Invoked with `X-Amz-Invocation-Type: Event` (exact key): the caller did not wait.
fn synchronicity(event: &Value) -> Synchronicity {
    let invocation_type = json::get(event, "headers").and_then(|h| json::get(h, "X-Amz-Invocation-Type"));
    if invocation_type.and_then(Value::as_str) == Some("Event") {
        Synchronicity::Async
    } else {
        Synchronicity::Sync
    }
}

/// A templated `routeKey` (`GET /user/{id}` → `/user/{id}`), else `rawPath`, else
/// `requestContext.resourcePath`, else the route key.
fn resource_path(event: &Value, rc: &Value) -> String {
    let route_key = json::get(rc, "routeKey")
        .filter(|r| json::truthy(Some(r)))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if route_key.contains('{') {
        if let Some(path) = route_key.split(' ').nth(1) {
            return path.to_owned();
        }
    }
    json::get(event, "rawPath")
        .filter(|p| json::truthy(Some(p)))
        .or_else(|| json::get(rc, "resourcePath").filter(|p| json::truthy(Some(p))))
        .map_or_else(|| route_key.to_owned(), |p| json::py_str(Some(p)))
}

fn api_service(input: &InferInput<'_>, rc: &Value) -> Option<String> {
    let api_id = json::get(rc, "apiId").and_then(Value::as_str);
    let domain = json::get(rc, "domainName").and_then(Value::as_str);
    service_name(input.config, api_id, "lambda_api_gateway", domain, None)
}

fn common_tags(draft: &mut Draft, rc: &Value, input: &InferInput<'_>) {
    draft.tag("apiid", json::get(rc, "apiId"));
    draft.tag("apiname", json::get(rc, "apiId"));
    draft.tag("stage", json::get(rc, "stage"));
    draft.tag_str("request_id", input.request_id);
}

/// REST and WebSocket: when the authorizer injected its context, an `aws.apigateway.authorizer`
/// span from its finish time to `requestTimeEpoch + integrationLatency`, and the main span
/// starts where it ends.
fn with_authorizer(mut draft: Draft, event: &Value, request_time_ms: i64, input: &InferInput<'_>) -> Draft {
    let start_ns = ms_to_ns(request_time_ms);
    draft.start_ns = start_ns;
    if !input.config.decode_authorizer_context {
        return draft;
    }
    let Some(data) = authorizer::injected_data(event, false) else {
        return draft;
    };
    let Some(auth_start) = authorizer::parent_span_finish_time_ns(&data) else {
        return draft;
    };
    let latency = int(json::path(event, &["requestContext", "authorizer", "integrationLatency"])).unwrap_or(0);
    let Some(latency_end) = request_time_ms.checked_add(latency).and_then(ms_to_ns) else {
        return draft;
    };
    let auth_end = auth_start.max(latency_end);
    let mut upstream = draft.clone();
    upstream.name = "aws.apigateway.authorizer";
    upstream.synchronicity = Synchronicity::Sync;
    upstream.start_ns = Some(auth_start);
    upstream.tag_str("operation_name", "aws.apigateway.authorizer");
    draft.start_ns = Some(auth_end);
    draft.upstream = Some((Box::new(upstream), auth_end));
    draft
}

pub(super) fn rest(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let rc = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    let identity = json::get(rc, "identity").filter(|i| i.is_object())?;
    let domain = json::get(rc, "domainName").map_or_else(String::new, |d| json::py_str(Some(d)));
    let method = json::get(event, "httpMethod");
    let path = json::get(event, "path");
    let resource = format!("{} {}", json::py_str(method), resource_path(event, rc));
    let mut draft = Draft::new(
        "aws.apigateway",
        api_service(input, rc),
        resource.clone(),
        "web",
        synchronicity(event),
    );
    draft.tag_str("http.url", format!("https://{domain}{}", json::py_str(path)));
    draft.tag("endpoint", path);
    draft.tag("http.method", method);
    draft.tag_str("resource_names", resource);
    draft.tag("http.useragent", json::get(identity, "userAgent"));
    draft.tag_str("span.kind", "server");
    common_tags(&mut draft, rc, input);
    let request_time_ms = int(json::get(rc, "requestTimeEpoch"))?;
    Some(with_authorizer(draft, event, request_time_ms, input))
}

pub(super) fn websocket(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let rc = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    let route_key = json::get(rc, "routeKey");
    let endpoint = json::py_str(route_key);
    let mut draft = Draft::new(
        "aws.apigateway.websocket",
        api_service(input, rc),
        endpoint.clone(),
        "web",
        synchronicity(event),
    );
    draft.tag_str("operation_name", "aws.apigateway.websocket");
    // Domain and route key are concatenated without a slash, as Datadog's library does (§11).
    draft.tag_str(
        "http.url",
        format!("https://{}{endpoint}", json::py_str(json::get(rc, "domainName"))),
    );
    draft.tag_str("endpoint", endpoint.clone());
    draft.tag_str("resource_names", endpoint);
    draft.tag_str("span.kind", "server");
    common_tags(&mut draft, rc, input);
    draft.tag("connection_id", json::get(rc, "connectionId"));
    draft.tag("event_type", json::get(rc, "eventType"));
    draft.tag("message_direction", json::get(rc, "messageDirection"));
    let request_time_ms = int(json::get(rc, "requestTimeEpoch"))?;
    Some(with_authorizer(draft, event, request_time_ms, input))
}

pub(super) fn http_api(event: &Value, input: &InferInput<'_>) -> Option<Draft> {
    let rc = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    let http = json::get(rc, "http").filter(|h| h.is_object());
    let http_field = |k: &str| http.and_then(|h| json::get(h, k));
    let path = json::get(event, "rawPath");
    let resource = format!("{} {}", json::py_str(http_field("method")), resource_path(event, rc));
    let mut draft = Draft::new("aws.httpapi", api_service(input, rc), resource.clone(), "web", synchronicity(event));
    draft.tag("endpoint", path);
    draft.tag_str(
        "http.url",
        format!("https://{}{}", json::py_str(json::get(rc, "domainName")), json::py_str(path)),
    );
    draft.tag("http.method", http_field("method"));
    draft.tag("http.protocol", http_field("protocol"));
    draft.tag("http.source_ip", http_field("sourceIp"));
    draft.tag("http.useragent", http_field("userAgent"));
    draft.tag_str("resource_names", resource);
    common_tags(&mut draft, rc, input);
    let request_time_ms = int(json::get(rc, "timeEpoch"))?;
    draft.start_ns = ms_to_ns(request_time_ms);
    // HTTP APIs get no authorizer span, but start where the authorizer ended.
    if input.config.decode_authorizer_context {
        if let Some(data) = authorizer::injected_data(event, true) {
            draft.start_ns = Some(authorizer::parent_span_finish_time_ns(&data)?);
        }
    }
    Some(draft)
}
