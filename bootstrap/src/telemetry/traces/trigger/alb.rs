//! Application Load Balancer target-group events.
use serde_json::Value;

use super::{EventSource, EventSubtype, EventType};
use crate::telemetry::traces::json;

pub(super) fn detect(event: &Value) -> Option<EventSource> {
    let request_context = json::get(event, "requestContext").filter(|rc| rc.is_object())?;
    if !json::truthy(json::get(request_context, "elb")) {
        return None;
    }
    let subtype = if json::get(event, "multiValueHeaders").is_some() {
        EventSubtype::AlbMultiValueHeaders
    } else {
        EventSubtype::Alb
    };
    Some(EventSource {
        event_type: EventType::Alb,
        subtype,
    })
}

/// `requestContext.elb.targetGroupArn`.
pub(super) fn event_source_arn(event: &Value) -> Option<String> {
    json::str_at(event, &["requestContext", "elb", "targetGroupArn"]).map(str::to_owned)
}
