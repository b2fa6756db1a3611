//! Inferred spans (§5.7): a span for the managed service that invoked the function (API
//! Gateway, SQS, …), parent of `aws.lambda`, with an optional upstream hop before it.
mod alb;
mod api_gateway;
mod draft;
mod dynamodb;
mod eventbridge;
mod function_url;
mod kinesis;
mod s3;
pub mod service;
mod sns;
pub mod span_pointers;
mod sqs;
pub mod time;

use serde_json::Value;

pub use draft::{InferInput, Synchronicity};

use super::span::{random_id, Span, TraceId};
use super::trigger::{EventSource, EventSubtype, EventType, Tags};
use draft::Draft;

/// The inferred spans of one invocation, with ids, before the invocation ends: `span` is the
/// parent of `aws.lambda`; `upstream`, when present, is its parent and already finished.
#[derive(Clone, Debug)]
pub struct InferredSpans {
    pub span: Span,
    pub synchronicity: Synchronicity,
    pub upstream: Option<Span>,
}

/// The draft for the detected source, or `None` (unknown source, or an event the library
/// could not infer a span from).
fn draft(event: &Value, source: EventSource, input: &InferInput<'_>) -> Option<Draft> {
    use EventSubtype as S;
    use EventType as T;
    match (source.event_type, source.subtype) {
        (T::ApiGateway, S::ApiGateway) => api_gateway::rest(event, input),
        (T::FunctionUrl, _) => function_url::build(event, input),
        (T::Alb, _) => Some(alb::build(event, input)),
        (T::ApiGateway, S::HttpApi) => api_gateway::http_api(event, input),
        (T::ApiGateway, S::Websocket) => api_gateway::websocket(event, input),
        (T::Sqs, S::None) => sqs::build(event, input),
        (T::Sns, S::None) => sns::build(event, input),
        (T::Kinesis, S::None) => kinesis::build(event, input),
        (T::Dynamodb, S::None) => dynamodb::build(event, input),
        (T::S3, S::None) => s3::build(event, input),
        (T::Eventbridge, S::None) => eventbridge::build(event, input),
        _ => None,
    }
}

/// Where the inferred spans hang: the trace and the parent span id (0 for a new trace).
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    pub trace_id: TraceId,
    pub span_id: u64,
}

/// Builds the inferred spans (§5.7) under `parent`. `default_service` is used where Datadog
/// falls back to the tracer's service; `handler_start_ns` starts spans whose event has no time.
pub fn infer(
    event: &Value,
    source: &EventSource,
    input: &InferInput<'_>,
    parent: Parent,
    default_service: &str,
    handler_start_ns: i64,
) -> Option<InferredSpans> {
    let mut draft = draft(event, *source, input)?;
    let synchronicity = draft.synchronicity;
    let mut parent_id = parent.span_id;
    let upstream = draft.upstream.take().map(|(hop, end_ns)| {
        let mut span = to_span(*hop, parent.trace_id, parent_id, default_service, handler_start_ns);
        span.finish_at(end_ns);
        parent_id = span.span_id;
        span
    });
    let span = to_span(draft, parent.trace_id, parent_id, default_service, handler_start_ns);
    Some(InferredSpans {
        span,
        synchronicity,
        upstream,
    })
}

fn to_span(draft: Draft, trace_id: TraceId, parent_id: u64, default_service: &str, handler_start_ns: i64) -> Span {
    let mut span = Span::new(draft.name, trace_id, random_id(), parent_id);
    span.service = draft.service.unwrap_or_else(|| default_service.to_owned());
    span.resource = draft.resource;
    draft.span_type.clone_into(&mut span.span_type);
    span.start_ns = draft.start_ns.unwrap_or(handler_start_ns);
    if span.meta.is_empty() {
        span.meta = draft.tags;
    } else {
        span.meta.extend(draft.tags);
    }
    span.set_meta("_dd.origin", "lambda");
    span.set_meta("_inferred_span.synchronicity", draft.synchronicity.as_str());
    span.set_meta("_inferred_span.tag_source", "self");
    span.set_metric("_dd._inferred_span", 1.0);
    span
}

/// What the invocation's end adds to the inferred span (§5.7): status code, route,
/// `dd_resource_key`, `peer.service`; then it is finished: an async span at the function
/// span's start, a sync one at the invocation's end.
pub fn finish(
    inferred: &mut InferredSpans,
    trigger_tags: &Tags,
    status_code: Option<&str>,
    service: Option<&str>,
    function_start_ns: i64,
    end_ns: i64,
) {
    let span = &mut inferred.span;
    if let Some(status) = status_code {
        span.set_meta("http.status_code", status);
    }
    if let Some(route) = trigger_tags.get("http.route") {
        span.set_meta("http.route", route.clone());
    }
    if let Some(arn) = trigger_tags.get("function_trigger.event_source_arn") {
        span.set_meta("dd_resource_key", arn.clone());
    }
    if let Some(service) = service {
        span.set_meta("peer.service", service);
    }
    let end = match inferred.synchronicity {
        Synchronicity::Async => function_start_ns,
        Synchronicity::Sync => end_ns,
    };
    span.finish_at(end);
}
