//! HTTP events (API Gateway REST/HTTP/WebSocket, ALB, Function URL, AppSync requests):
//! the authorizer's injected context first, then the request headers (§5.3.2).
use serde_json::Value;

use super::context::TraceContext;
use super::{authorizer, propagation, ExtractInput};
use crate::telemetry::traces::trigger::{self, EventSubtype, EventType};

pub(super) fn extract(event: &Value, input: &ExtractInput<'_>, decode_authorizer: bool) -> Option<TraceContext> {
    if decode_authorizer {
        let is_http_api = input.source.is(EventType::ApiGateway, EventSubtype::HttpApi);
        if let Some(data) = authorizer::injected_data(event, is_http_api) {
            let context = propagation::extract(&propagation::Carrier::from_json(&data), &input.config.propagation_extract);
            if context.as_ref().is_some_and(TraceContext::is_complete) {
                return context;
            }
        }
    }
    let headers = trigger::resolve_headers(event);
    propagation::extract(&propagation::Carrier::from_json_map(&headers), &input.config.propagation_extract)
}
