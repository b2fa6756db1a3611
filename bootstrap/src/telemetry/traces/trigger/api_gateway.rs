//! API Gateway REST (v1), HTTP (v2) and WebSocket events, and the Function URL shortcut that
//! shares their `requestContext.stage` shape.
use serde_json::Value;

use super::{function_url, EventSource, EventSubtype, EventType};
use crate::telemetry::traces::arn::FunctionArn;
use crate::telemetry::traces::json;

pub(super) fn detect(event: &Value) -> Option<EventSource> {
    let request_context = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    if !json::truthy(json::get(request_context, "stage")) {
        return None;
    }
    if function_url::is_function_url_domain(json::get(request_context, "domainName")) {
        return Some(EventSource::of(EventType::FunctionUrl));
    }
    let mut subtype = EventSubtype::None;
    if json::get(event, "httpMethod").is_some() {
        subtype = EventSubtype::ApiGateway;
    }
    if json::get(event, "routeKey").is_some() {
        subtype = EventSubtype::HttpApi;
    }
    if json::truthy(json::get(request_context, "messageDirection")) {
        subtype = EventSubtype::Websocket;
    }
    Some(EventSource {
        event_type: EventType::ApiGateway,
        subtype,
    })
}

/// `arn:<partition>:apigateway:<region>::/restapis/<apiId>/stages/<stage>`, region of the function.
pub(super) fn event_source_arn(event: &Value, function: &FunctionArn) -> String {
    let rc = json::get(event, "requestContext");
    let field = |k: &str| json::py_str(rc.and_then(|rc| json::get(rc, k)));
    format!(
        "arn:{}:apigateway:{}::/restapis/{}/stages/{}",
        function.partition(),
        function.region,
        field("apiId"),
        field("stage")
    )
}
