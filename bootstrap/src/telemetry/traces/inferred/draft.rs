//! An inferred span before it has ids: what each trigger family builds.
use serde_json::Value;

use crate::telemetry::traces::config::TraceConfig;
use crate::telemetry::traces::json;
use crate::telemetry::traces::trigger::Tags;

/// Whether the caller waited for the function (`sync`: the span ends with the invocation) or
/// not (`async`: the span ends when the function starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synchronicity {
    Sync,
    Async,
}

impl Synchronicity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Synchronicity::Sync => "sync",
            Synchronicity::Async => "async",
        }
    }
}

/// What the builders need besides the event.
pub struct InferInput<'a> {
    /// The invocation's request id (`request_id` tag).
    pub request_id: &'a str,
    pub config: &'a TraceConfig,
}

#[derive(Clone, Debug)]
pub struct Draft {
    pub name: &'static str,
    /// `None`: the tracer's default service (the function span's).
    pub service: Option<String>,
    pub resource: String,
    pub span_type: &'static str,
    /// `None`: the span starts when the handler starts (ALB events carry no time).
    pub start_ns: Option<i64>,
    pub tags: Tags,
    pub synchronicity: Synchronicity,
    /// A hop before this one (authorizer, SNS or EventBridge before SQS), with its end.
    pub upstream: Option<(Box<Draft>, i64)>,
}

impl Draft {
    pub fn new(
        name: &'static str,
        service: Option<String>,
        resource: String,
        span_type: &'static str,
        synchronicity: Synchronicity,
    ) -> Self {
        Self {
            name,
            service,
            resource,
            span_type,
            start_ns: None,
            tags: Tags::new(),
            synchronicity,
            upstream: None,
        }
    }

    /// Sets a tag from a JSON value the way ddtrace stores it (`None` for a missing value).
    pub fn tag(&mut self, key: &str, value: Option<&Value>) {
        self.tags.insert(key.to_owned(), json::py_str(value));
    }

    pub fn tag_str(&mut self, key: &str, value: impl Into<String>) {
        self.tags.insert(key.to_owned(), value.into());
    }
}

/// `int(value)` in Python, for a JSON number or numeric text.
pub fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 9.2e18).map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A JSON number as seconds (float), as `span.start = value` reads it.
pub fn float(value: Option<&Value>) -> Option<f64> {
    match value? {
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}
