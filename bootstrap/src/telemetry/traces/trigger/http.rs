//! The `http.*` trigger tags shared by API Gateway, Function URL and ALB events.
use std::borrow::Cow;

use serde_json::{Map, Value};

use super::Tags;
use crate::telemetry::traces::json;

/// Request headers: single-value `headers` when non-empty, else the first value of each
/// `multiValueHeaders` entry. Non-text values are dropped.
pub fn resolve_headers(event: &Value) -> Cow<'_, Map<String, Value>> {
    if let Some(headers) = json::get(event, "headers").and_then(Value::as_object).filter(|h| !h.is_empty()) {
        return Cow::Borrowed(headers);
    }
    let mut resolved = Map::new();
    if let Some(multi) = json::get(event, "multiValueHeaders").and_then(Value::as_object) {
        for (key, value) in multi {
            match value {
                Value::Array(values) => {
                    if let Some(first) = values.first() {
                        resolved.insert(key.clone(), first.clone());
                    }
                }
                Value::String(_) => {
                    resolved.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
    }
    Cow::Owned(resolved)
}

pub(super) fn tags(event: &Value) -> Tags {
    let mut tags = Tags::new();
    tags.insert("span.kind".into(), "server".into());
    let request_context = json::get(event, "requestContext").filter(|rc| rc.is_object());
    let rc_get = |k: &str| request_context.and_then(|rc| json::get(rc, k));
    let mut path = json::get(event, "path").cloned();
    let mut method = json::get(event, "httpMethod").cloned();
    if json::truthy(rc_get("stage")) {
        if let Some(domain) = rc_get("domainName").filter(|d| json::truthy(Some(d))) {
            tags.insert("http.url".into(), format!("https://{}", json::py_str(Some(domain))));
        }
        path = rc_get("path").cloned();
        method = rc_get("httpMethod").cloned();
        let v2_http = rc_get("http").filter(|h| h.is_object() && json::truthy(Some(h)));
        if let (Some(http), Some("2.0")) = (v2_http, json::get(event, "version").and_then(Value::as_str)) {
            path = json::get(http, "path").cloned();
            method = json::get(http, "method").cloned();
        }
    } else if json::truthy(rc_get("elb")) {
        // ALB events have no stage: the URL comes from the forwarded host/proto headers.
        let headers = resolve_headers(event);
        if let Some(host) = headers.get("host").filter(|h| json::truthy(Some(h))) {
            let proto = headers
                .get("x-forwarded-proto")
                .map_or_else(|| "http".to_owned(), |p| json::py_str(Some(p)));
            tags.insert("http.url".into(), format!("{proto}://{}", json::py_str(Some(host))));
        }
        if let Some(agent) = headers.get("user-agent").filter(|a| json::truthy(Some(a))) {
            tags.insert("http.useragent".into(), json::py_str(Some(agent)));
        }
        if let Some(p) = path.as_ref().filter(|p| json::truthy(Some(p))) {
            tags.insert("http.route".into(), json::py_str(Some(p)));
        }
    }
    if let Some(p) = path.as_ref().filter(|p| json::truthy(Some(p))) {
        if let Some(url) = tags.get_mut("http.url") {
            url.push_str(&json::py_str(Some(p)));
        }
    }
    if let Some(m) = method.as_ref().filter(|m| json::truthy(Some(m))) {
        tags.insert("http.method".into(), json::py_str(Some(m)));
    }
    let headers = resolve_headers(event);
    let referer = headers
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("referer") && json::truthy(Some(v)))
        .map(|(_, v)| json::py_str(Some(v)));
    if let Some(referer) = referer {
        tags.insert("http.referer".into(), referer);
    }
    let route = json::get(event, "routeKey")
        .filter(|r| json::truthy(Some(r)))
        .or_else(|| json::get(event, "resource"));
    if let Some(route) = route.and_then(Value::as_str).filter(|r| !r.is_empty()) {
        tags.insert("http.route".into(), route.rsplit(' ').next().unwrap_or(route).to_owned());
    }
    tags
}
