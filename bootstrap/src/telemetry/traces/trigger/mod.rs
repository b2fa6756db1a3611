//! What invoked the function (§5.1) and the trigger tags put on the `aws.lambda` span (§5.2).
//!
//! Detection runs every family's check in Datadog's order, a later match overriding an earlier
//! one, exactly as the library does; each family's file knows its own shape and ARN.
mod alb;
mod api_gateway;
mod cloudfront;
mod cloudwatch;
mod eventbridge;
mod function_url;
mod http;
mod records;
mod s3;
mod sns;
pub mod step_functions;

pub use http::resolve_headers;

use std::collections::BTreeMap;

use serde_json::Value;

use super::arn::FunctionArn;
use super::json;
use crate::telemetry::response_keys::may_hold_key;

/// String tags, sorted (the order of a JSON object does not matter to Datadog).
pub type Tags = BTreeMap<String, String>;

/// Event types, with the names used in tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Unknown,
    ApiGateway,
    Alb,
    CloudwatchLogs,
    CloudwatchEvents,
    Cloudfront,
    Dynamodb,
    Eventbridge,
    Kinesis,
    FunctionUrl,
    S3,
    Sns,
    Sqs,
    StepFunctions,
}

impl EventType {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Unknown => "unknown",
            EventType::ApiGateway => "api-gateway",
            EventType::Alb => "application-load-balancer",
            EventType::CloudwatchLogs => "cloudwatch-logs",
            EventType::CloudwatchEvents => "cloudwatch-events",
            EventType::Cloudfront => "cloudfront",
            EventType::Dynamodb => "dynamodb",
            EventType::Eventbridge => "eventbridge",
            EventType::Kinesis => "kinesis",
            EventType::FunctionUrl => "lambda-function-url",
            EventType::S3 => "s3",
            EventType::Sns => "sns",
            EventType::Sqs => "sqs",
            EventType::StepFunctions => "states",
        }
    }

    /// Triggers whose answer is an HTTP response (`http.*` tags, `http.status_code`).
    pub fn is_http(&self) -> bool {
        matches!(self, EventType::ApiGateway | EventType::Alb | EventType::FunctionUrl)
    }
}

/// Subtypes distinguish the API Gateway and ALB payload flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventSubtype {
    None,
    ApiGateway,
    HttpApi,
    Websocket,
    Alb,
    AlbMultiValueHeaders,
}

impl EventSubtype {
    pub fn as_str(&self) -> &'static str {
        match self {
            EventSubtype::None => "none",
            EventSubtype::ApiGateway => "api-gateway",
            EventSubtype::HttpApi => "http-api",
            EventSubtype::Websocket => "websocket",
            EventSubtype::Alb => "alb",
            EventSubtype::AlbMultiValueHeaders => "alb-multi-value-headers",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSource {
    pub event_type: EventType,
    pub subtype: EventSubtype,
}

impl EventSource {
    pub const UNKNOWN: EventSource = EventSource::of(EventType::Unknown);

    pub const fn of(event_type: EventType) -> Self {
        Self {
            event_type,
            subtype: EventSubtype::None,
        }
    }

    /// Datadog's `equals`: never true for `unknown`.
    pub fn is(&self, event_type: EventType, subtype: EventSubtype) -> bool {
        self.event_type != EventType::Unknown && self.event_type == event_type && self.subtype == subtype
    }
}

/// Detects the event source (§5.1). Anything that is not a JSON object is `unknown`.
pub fn detect(event: &Value) -> EventSource {
    if !event.is_object() {
        return EventSource::UNKNOWN;
    }
    let mut source = None;
    if let Some(found) = api_gateway::detect(event) {
        // A Function URL is recognised inside the API Gateway check and wins at once.
        if found.event_type == EventType::FunctionUrl {
            return found;
        }
        source = Some(found);
    }
    for check in [alb::detect, cloudwatch::detect_logs, eventbridge::detect, cloudwatch::detect_events] {
        if let Some(found) = check(event) {
            source = Some(found);
        }
    }
    if step_functions::is_step_functions_event(event) {
        source = Some(EventSource::of(EventType::StepFunctions));
    }
    if let Some(found) = records::detect(event) {
        source = Some(found);
    }
    source.unwrap_or(EventSource::UNKNOWN)
}

/// The trigger tags of §5.2: `function_trigger.event_source`, `function_trigger.event_source_arn`
/// and, for HTTP triggers, the `http.*` and `span.kind` tags. Region and account of built ARNs
/// come from the invoked function's ARN.
pub fn trigger_tags(event: &Value, source: &EventSource, invoked_function_arn: &str) -> Tags {
    let mut tags = Tags::new();
    if source.event_type == EventType::Unknown {
        return tags;
    }
    tags.insert("function_trigger.event_source".into(), source.event_type.as_str().into());
    if let Some(arn) = event_source_arn(event, *source, &FunctionArn::parse(invoked_function_arn)) {
        tags.insert("function_trigger.event_source_arn".into(), arn);
    }
    if source.event_type.is_http() {
        tags.extend(http::tags(event));
    }
    tags
}

/// The ARN of what triggered the function: the event's own `eventSourceARN` when it has one,
/// else one built per source.
fn event_source_arn(event: &Value, source: EventSource, function: &FunctionArn) -> Option<String> {
    let arn_of = |v: &Value| {
        let arn = json::get(v, "eventSourceARN").filter(|a| json::truthy(Some(a)));
        arn.or_else(|| json::get(v, "eventSourceArn")).cloned()
    };
    let mut arn = arn_of(event);
    if let Some(record) = json::first_record(event).filter(|r| json::truthy(Some(r))) {
        arn = arn_of(record);
    }
    match arn {
        Some(Value::Null) | None => build_event_source_arn(event, source, function),
        Some(found) => Some(json::py_str(Some(&found))).filter(|s| !s.is_empty()),
    }
}

fn build_event_source_arn(event: &Value, source: EventSource, function: &FunctionArn) -> Option<String> {
    let built = match source.event_type {
        EventType::S3 => s3::event_source_arn(event),
        EventType::Sns => sns::event_source_arn(event),
        EventType::Cloudfront => cloudfront::event_source_arn(event, function),
        EventType::FunctionUrl => Some(function_url::event_source_arn(function)),
        EventType::ApiGateway => Some(api_gateway::event_source_arn(event, function)),
        EventType::Alb => alb::event_source_arn(event),
        EventType::CloudwatchLogs => cloudwatch::logs_event_source_arn(event, function),
        EventType::CloudwatchEvents => cloudwatch::events_event_source_arn(event),
        EventType::StepFunctions => step_functions::event_source_arn(event),
        _ => None,
    };
    built.filter(|arn| !arn.is_empty())
}

/// What the handler answered, as far as the `http.status_code` tag cares.
#[derive(Clone, Copy, Debug)]
pub enum HandlerResult<'a> {
    /// A response body (JSON or not).
    Response(&'a [u8]),
    /// The handler failed or answered nothing.
    Failed,
}

/// The `http.status_code` tag for HTTP triggers (§5.6): a failure (no response) is `502`; a
/// JSON object gives its `statusCode` (`None` when missing, as Datadog's library spells it);
/// any other answer is `200`.
pub fn http_status_code(source: &EventSource, result: HandlerResult<'_>) -> Option<String> {
    if !source.event_type.is_http() {
        return None;
    }
    Some(match result {
        HandlerResult::Failed => "502".to_owned(),
        HandlerResult::Response(body) => {
            if let Some(status) = status_code_of_object(body) {
                return Some(status);
            }
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Null) => "502".to_owned(),
                Ok(response @ Value::Object(_)) => json::py_str(json::get(&response, "statusCode")),
                _ => "200".to_owned(),
            }
        }
    })
}

/// `statusCode` of a response that is a JSON object, read without building the rest of it
/// (an HTTP response carries its whole body); `None` for anything else, which the caller
/// reads the slow way.
fn status_code_of_object(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct StatusOnly {
        #[serde(rename = "statusCode", default)]
        status_code: Option<Value>,
    }
    let trimmed = body.trim_ascii();
    if !trimmed.starts_with(b"{") {
        return None;
    }
    // An object that cannot hold the key is not parsed: its status is `None`. (A body shaped
    // like an object that is not valid JSON reads the same way; API Gateway answers such a
    // response with a 502 of its own, whatever the tag says.)
    if trimmed.ends_with(b"}") && !may_hold_key(trimmed, "statusCode") {
        return Some(json::py_str(None));
    }
    let probe: StatusOnly = serde_json::from_slice(body).ok()?;
    Some(json::py_str(probe.status_code.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn non_objects_are_unknown() {
        for event in [json!(null), json!([1, 2]), json!("s"), json!(3)] {
            assert_eq!(detect(&event), EventSource::UNKNOWN);
            assert!(trigger_tags(&event, &detect(&event), "arn").is_empty());
        }
    }

    #[test]
    fn later_checks_override_earlier_ones() {
        let event = json!({"detail-type": "x", "source": "aws.events"});
        assert_eq!(detect(&event).event_type, EventType::CloudwatchEvents);
        let event = json!({"detail-type": "x", "Records": [{"eventSource": "aws:sqs"}]});
        assert_eq!(detect(&event).event_type, EventType::Sqs);
        let event = json!({"source": ["aws.events"]});
        assert_eq!(detect(&event).event_type, EventType::Unknown);
    }

    #[test]
    fn status_codes() {
        let api = EventSource::of(EventType::ApiGateway);
        assert_eq!(
            http_status_code(&api, HandlerResult::Response(br#"{"statusCode": 403}"#)).as_deref(),
            Some("403")
        );
        assert_eq!(
            http_status_code(&api, HandlerResult::Response(br#"{"body": "x"}"#)).as_deref(),
            Some("None")
        );
        for (body, status) in [
            (
                &br#" {"statusCode": "201", "body": {"nested": [1, {"statusCode": 500}]}}"#[..],
                "201",
            ),
            (br#"{"statusCode": 200.0}"#, "200.0"),
            (br#"{"statusCode": null}"#, "None"),
            (br#"{"statusCode": 1, "statusCode": 2}"#, "2"),
            (br#"{"statusCode": 204"#, "200"),
            (br#" {"body": "{\"statusCode\": 500}"} "#, "None"),
            (br#"{"\u0073tatusCode": 404}"#, "404"),
        ] {
            assert_eq!(
                http_status_code(&api, HandlerResult::Response(body)).as_deref(),
                Some(status),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(http_status_code(&api, HandlerResult::Response(b"null")).as_deref(), Some("502"));
        assert_eq!(http_status_code(&api, HandlerResult::Response(b"not json")).as_deref(), Some("200"));
        assert_eq!(http_status_code(&api, HandlerResult::Failed).as_deref(), Some("502"));
        assert_eq!(http_status_code(&EventSource::of(EventType::Sqs), HandlerResult::Failed), None);
    }

    #[test]
    fn referer_header_is_matched_case_insensitively() {
        let event = json!({"requestContext": {"elb": {"targetGroupArn": "tg"}}, "httpMethod": "GET", "path": "/p",
            "headers": {"host": "h", "Referer": "https://from"}});
        let tags = trigger_tags(&event, &detect(&event), "arn:aws:lambda:us-east-1:1:function:f");
        assert_eq!(tags["http.referer"], "https://from");
        assert_eq!(tags["http.url"], "http://h/p");
    }
}
