//! One invocation's trace, in two steps: [`InvocationTrace::begin`] when the event arrives
//! (ids are decided, so logs and child tracers can use them while the handler runs) and
//! [`InvocationTrace::finish`] after the answer (every span, finished).
use std::collections::HashSet;

use base64::Engine as _;
use serde_json::Value;

use super::config::TraceConfig;
use super::extract::{self, xray, ContextSource, TraceContext};
use super::function_span::{self, FunctionInfo, FunctionSpanStart};
use super::inferred::{self, span_pointers, InferInput, InferredSpans, Parent};
use super::span::{random_id, Span, SpanLink, TraceId};
use super::trigger::{self, EventSource, HandlerResult, Tags};
use super::{durable, payload};
use crate::runtime_api::{ErrorBody, InvocationContext};

/// First invocations this long after init count as proactive initialization (§5.12).
const PROACTIVE_INIT_AFTER_NS: i64 = 10_000_000_000;

/// Spans a handler may add to one invocation's trace; more are dropped, so a handler creating
/// spans in a loop cannot grow the bootstrap's memory without bound.
pub const MAX_HANDLER_SPANS: usize = 1000;

/// How the invocation ended, as far as its spans care.
#[derive(Clone, Copy, Debug)]
pub enum InvocationResult<'a> {
    /// A response body was posted.
    Response(&'a [u8]),
    /// The handler answered the Runtime API itself; the body is unknown.
    Answered,
    /// The handler failed with this error.
    Error(&'a ErrorBody),
    /// The handler failed; only the error type is known.
    ErrorType(&'a str),
    /// The deadline came first (§5.14).
    TimedOut,
}

impl<'a> InvocationResult<'a> {
    pub fn from_outcome(outcome: &'a crate::handler::HandlerOutcome, timed_out: bool) -> Self {
        use crate::handler::HandlerOutcome;
        if timed_out {
            return InvocationResult::TimedOut;
        }
        match outcome {
            HandlerOutcome::Response(body) => InvocationResult::Response(body),
            HandlerOutcome::Error(error) | HandlerOutcome::Answered { error: Some(error), .. } => InvocationResult::Error(error),
            HandlerOutcome::Answered {
                error_type: Some(error_type),
                ..
            } => InvocationResult::ErrorType(error_type),
            HandlerOutcome::Answered { .. } => InvocationResult::Answered,
        }
    }
}

/// The end of an invocation.
#[derive(Clone, Copy, Debug)]
pub struct Completion<'a> {
    pub result: InvocationResult<'a>,
    /// When the handler returned (or the timeout fired), epoch ns.
    pub end_ns: i64,
    /// The first invocation of this process.
    pub cold_start: bool,
}

/// The trace of one invocation, decided when it starts.
#[derive(Debug)]
pub struct InvocationTrace {
    pub source: EventSource,
    pub trigger_tags: Tags,
    pub durable_tags: Tags,
    /// The context extracted (from the event, or X-Ray), whether or not it parents the trace.
    pub context: Option<TraceContext>,
    pub trace_id: TraceId,
    /// The `aws.lambda` span's id: the active span for logs and child tracers.
    pub function_span_id: u64,
    pub sampling_priority: i32,
    /// `_dd.p.*` tags and origin carried into this trace.
    propagated: TraceContext,
    parent_is_xray: bool,
    function_parent_id: u64,
    inferred: Option<InferredSpans>,
    span_pointers: Vec<SpanLink>,
    request_id: String,
    invoked_function_arn: String,
    start_ns: i64,
    event: Value,
    /// Spans the handler created (dylib sdk), added to the trace when it finishes.
    handler_spans: Vec<Span>,
}

impl InvocationTrace {
    /// Detection, trigger tags, extraction, the root of the trace and the inferred spans.
    /// `start_ns` is when the handler starts (epoch ns).
    pub fn begin(event: Value, invocation: &InvocationContext, config: &TraceConfig, function: &FunctionInfo, start_ns: i64) -> Self {
        let source = trigger::detect(&event);
        let trigger_tags = trigger::trigger_tags(&event, &source, &invocation.invoked_function_arn);
        let durable_tags = durable::durable_tags(&event);
        let context = extract::extract(&event, &source, invocation, config);
        let xray_parent = invocation.xray_trace_id.as_deref().and_then(xray::context_from_header);

        // §5.4 / §6.2: an event context parents the trace (on the X-Ray segment when merging);
        // an X-Ray-only context does so only when merging; else a new trace starts.
        let (root, parent_is_xray) = match &context {
            Some(ctx) if ctx.source == ContextSource::Event => {
                let mut root = ctx.clone();
                if config.merge_xray_traces {
                    if let Some(x) = &xray_parent {
                        root.parent_id = x.parent_id;
                    }
                }
                (Some(root), false)
            }
            Some(ctx) if config.merge_xray_traces => (Some(ctx.clone()), true),
            _ => (None, false),
        };
        let epoch_seconds = u64::try_from(start_ns / 1_000_000_000).unwrap_or(0);
        let propagated = root
            .clone()
            .unwrap_or_else(|| TraceContext::new(TraceId::generate(epoch_seconds), 0, Some(1)));
        let trace_id = propagated.trace_id;
        let root_parent = propagated.parent_id;
        let sampling_priority = propagated.sampling_priority.unwrap_or(1);

        let inferred = config.managed_services.then(|| {
            let input = InferInput {
                request_id: &invocation.request_id,
                config,
            };
            let parent = Parent {
                trace_id,
                span_id: root_parent,
            };
            inferred::infer(&event, &source, &input, parent, &function.service(config), start_ns)
        });
        let inferred = inferred.flatten();
        let function_parent_id = inferred.as_ref().map_or(root_parent, |i| i.span.span_id);
        let span_pointers = if config.span_pointers {
            span_pointers::span_pointers(&event, &source)
        } else {
            Vec::new()
        };
        Self {
            source,
            trigger_tags,
            durable_tags,
            context,
            trace_id,
            function_span_id: random_id(),
            sampling_priority,
            propagated,
            parent_is_xray,
            function_parent_id,
            inferred,
            span_pointers,
            request_id: invocation.request_id.clone(),
            invoked_function_arn: invocation.invoked_function_arn.clone(),
            start_ns,
            event,
            handler_spans: Vec::new(),
        }
    }

    /// Adds a span the handler finished: into this trace, under the `aws.lambda` span unless it
    /// names another parent, in the function's service unless it names one. `false` (span
    /// dropped) past [`MAX_HANDLER_SPANS`].
    pub fn adopt(&mut self, mut span: Span, default_service: &str) -> bool {
        if self.handler_spans.len() >= MAX_HANDLER_SPANS {
            return false;
        }
        span.trace_id = self.trace_id;
        if span.parent_id == 0 {
            span.parent_id = self.function_span_id;
        }
        if span.service.is_empty() {
            default_service.clone_into(&mut span.service);
        }
        self.handler_spans.push(span);
        true
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// When the handler started, epoch ns.
    pub fn start_ns(&self) -> i64 {
        self.start_ns
    }

    /// The context a child (tracer, outgoing call) continues: this trace, parented on the
    /// `aws.lambda` span.
    pub fn child_context(&self) -> TraceContext {
        let mut context = self.propagated.clone();
        context.parent_id = self.function_span_id;
        context.sampling_priority = Some(self.sampling_priority);
        context.source = ContextSource::Event;
        context
    }

    /// For an authorizer function (§5.8 encode): the response with `context._datadog` added,
    /// when the response is an authorizer response (`principalId` and `policyDocument`).
    /// `finish_ns` is the end of the span the downstream request continues.
    pub fn authorizer_response(&self, response: &[u8], config: &TraceConfig, finish_ns: i64) -> Option<Vec<u8>> {
        if !config.encode_authorizer_context {
            return None;
        }
        let mut response: Value = serde_json::from_slice(response).ok()?;
        let is_authorizer = ["principalId", "policyDocument"]
            .iter()
            .all(|k| super::json::truthy(response.get(k)));
        if !is_authorizer {
            return None;
        }
        let mut context = self.child_context();
        if let Some(inferred) = &self.inferred {
            context.parent_id = inferred.span.span_id;
        }
        let mut headers: serde_json::Map<String, Value> = extract::injection_headers(&context, config)
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        headers.insert(extract::authorizer::PARENT_SPAN_FINISH_TIME.to_owned(), Value::from(finish_ns));
        if let Some(request_id) = super::json::path(&self.event, &["requestContext", "requestId"]) {
            headers.insert(extract::authorizer::AUTHORIZING_REQUEST_ID.to_owned(), request_id.clone());
        }
        let encoded = base64::engine::general_purpose::STANDARD.encode(Value::Object(headers).to_string());
        let object = response.as_object_mut()?;
        let context_value = object.entry("context").or_insert_with(|| Value::Object(serde_json::Map::default()));
        if !context_value.is_object() {
            *context_value = Value::Object(serde_json::Map::default());
        }
        context_value.as_object_mut()?.insert("_datadog".to_owned(), Value::String(encoded));
        serde_json::to_vec(&response).ok()
    }

    /// Every span of the invocation, finished: upstream hop, inferred span, `aws.lambda`, and
    /// `aws.lambda.load` on a new sandbox.
    pub fn finish(self, completion: &Completion<'_>, function: &FunctionInfo, config: &TraceConfig) -> Vec<Span> {
        let init_window = function.init_window_ns;
        let proactive =
            completion.cold_start && init_window.is_some_and(|(_, end)| self.start_ns.saturating_sub(end) > PROACTIVE_INIT_AFTER_NS);
        let cold_start = completion.cold_start && !proactive;
        let start = FunctionSpanStart {
            trace_id: self.trace_id,
            span_id: self.function_span_id,
            parent_id: self.function_parent_id,
            start_ns: self.start_ns,
            request_id: &self.request_id,
            invoked_function_arn: &self.invoked_function_arn,
            cold_start,
            proactive_initialization: proactive,
            parent_is_xray: self.parent_is_xray,
            trigger_tags: &self.trigger_tags,
            durable_tags: &self.durable_tags,
        };
        let mut function_span = function_span::start_function_span(&start, function, config);

        let handler_result = match completion.result {
            InvocationResult::Response(body) => Some(HandlerResult::Response(body)),
            // A streamed answer's status is unknown: counted as a success, like a non-JSON body.
            InvocationResult::Answered => Some(HandlerResult::Response(b"")),
            InvocationResult::Error(_) | InvocationResult::ErrorType(_) => Some(HandlerResult::Failed),
            InvocationResult::TimedOut => None,
        };
        let status_code = handler_result.and_then(|r| trigger::http_status_code(&self.source, r));
        if let Some(status) = &status_code {
            function_span::mark_status(&mut function_span, status);
        }
        match completion.result {
            InvocationResult::Error(error) => function_span::mark_error(&mut function_span, error),
            InvocationResult::ErrorType(error_type) => function_span.set_error(error_type, error_type, None),
            InvocationResult::TimedOut => function_span::mark_timeout(&mut function_span),
            // The response is parsed only when something reads it: most are never looked at.
            InvocationResult::Response(body) if config.capture_payload || durable::is_durable(&self.event) => {
                let response = payload::response_value(body);
                if let Some(status) = durable::execution_status(&self.event, &response) {
                    function_span.set_meta("aws.durable.execution_status", status);
                }
                if config.capture_payload {
                    payload::capture(
                        &mut function_span.meta,
                        "function.response",
                        &response,
                        config.capture_payload_max_depth,
                    );
                }
            }
            InvocationResult::Response(_) | InvocationResult::Answered => {}
        }
        if config.capture_payload {
            payload::capture(
                &mut function_span.meta,
                "function.request",
                &self.event,
                config.capture_payload_max_depth,
            );
        }
        function_span.finish_at(completion.end_ns);

        let mut spans = Vec::with_capacity(4);
        let mut inferred = self.inferred;
        if let Some(inferred) = inferred.as_mut() {
            inferred::finish(
                inferred,
                &self.trigger_tags,
                status_code.as_deref(),
                config.service.as_deref(),
                function_span.start_ns,
                completion.end_ns,
            );
        }
        // Span pointers go on the inferred span when there is one, else on `aws.lambda`.
        match inferred.as_mut() {
            Some(inferred) => inferred.span.span_links.extend(self.span_pointers),
            None => function_span.span_links.extend(self.span_pointers),
        }
        if let Some(inferred) = inferred {
            spans.extend(inferred.upstream);
            spans.push(inferred.span);
        }
        let load_span = match init_window {
            Some((init_start, init_end)) if (cold_start || proactive) && config.cold_start_tracing && !config.managed_instances => {
                Some(function_span::cold_start_span(&function_span, function, init_start, init_end))
            }
            _ => None,
        };
        spans.push(function_span);
        spans.extend(load_span);
        spans.extend(self.handler_spans);
        finalize(&mut spans, &self.propagated, self.sampling_priority);
        spans
    }
}

/// Trace-level tags: the local root carries the sampling decision and the propagated `_dd.p.*`
/// tags; every span that starts a service is `_dd.top_level`.
fn finalize(spans: &mut [Span], propagated: &TraceContext, sampling_priority: i32) {
    let ids: HashSet<u64> = spans.iter().map(|s| s.span_id).collect();
    let services: Vec<(u64, String)> = spans.iter().map(|s| (s.span_id, s.service.clone())).collect();
    let tid = propagated.trace_id.tid_tag();
    for (i, span) in spans.iter_mut().enumerate() {
        if let Some(tid) = &tid {
            span.set_meta("_dd.p.tid", tid.clone());
        }
        let parent_service = services.iter().find(|(id, _)| *id == span.parent_id).map(|(_, s)| s);
        if parent_service != Some(&span.service) {
            span.set_metric("_dd.top_level", 1.0);
        }
        let is_local_root = i == 0 || !ids.contains(&span.parent_id);
        if is_local_root {
            span.set_metric("_sampling_priority_v1", f64::from(sampling_priority));
            for (key, value) in propagated.tags.iter().filter(|(k, _)| k.starts_with("_dd.p.")) {
                span.set_meta(key.clone(), value.clone());
            }
            if !propagated.tags.contains_key("_dd.p.dm") && propagated.parent_id == 0 {
                // A trace started here was kept by the default sampler (decision maker 0).
                span.set_meta("_dd.p.dm", "-0");
            }
        }
    }
}

/// The whole trace of one answered invocation (§5.5): what the lead's lifecycle calls after
/// posting the answer. Never panics, whatever the event bytes are.
pub fn build_invocation_trace(report: &crate::lifecycle::InvocationReport, function: &FunctionInfo, config: &TraceConfig) -> Vec<Span> {
    let event = super::event::parse_event(&report.invocation.event, config.capture_payload);
    let trace = InvocationTrace::begin(
        event,
        &report.invocation.context,
        config,
        function,
        report.handler_started.epoch_ns(),
    );
    finish_invocation_trace(trace, report, function, config)
}

/// Finishes a trace begun earlier (when the handler asked for its context) with the report of
/// its invocation.
pub fn finish_invocation_trace(
    trace: InvocationTrace,
    report: &crate::lifecycle::InvocationReport,
    function: &FunctionInfo,
    config: &TraceConfig,
) -> Vec<Span> {
    let completion = Completion {
        result: InvocationResult::from_outcome(&report.outcome, report.timed_out),
        end_ns: report.handler_finished.epoch_ns(),
        cold_start: report.cold_start,
    };
    trace.finish(&completion, function, config)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use bytes::Bytes;
    use serde_json::json;

    use super::*;
    use crate::config::Environment;
    use crate::handler::{HandlerOutcome, Invocation};
    use crate::lifecycle::{InvocationReport, Timestamp};

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:my-fn";

    fn config(extra: &[(&str, &str)]) -> TraceConfig {
        let mut pairs = vec![("DD_TRACE_ENABLED", "true"), ("AWS_LAMBDA_FUNCTION_NAME", "my-fn")];
        pairs.extend_from_slice(extra);
        TraceConfig::from_env(&Environment::from_pairs(pairs))
    }

    fn function() -> FunctionInfo {
        FunctionInfo {
            name: "my-fn".into(),
            initialization_type: "on-demand".into(),
            ..Default::default()
        }
    }

    fn report(event: impl Into<Bytes>, outcome: HandlerOutcome, cold_start: bool, timed_out: bool) -> InvocationReport {
        let started = Timestamp::now();
        let finished = Timestamp {
            monotonic: started.monotonic + Duration::from_millis(5),
            wall: started.wall + Duration::from_millis(5),
        };
        InvocationReport {
            invocation: Arc::new(Invocation {
                context: InvocationContext {
                    request_id: "req-1".into(),
                    invoked_function_arn: ARN.into(),
                    xray_trace_id: Some("Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1".into()),
                    ..Default::default()
                },
                headers: http::HeaderMap::default(),
                event: event.into(),
            }),
            cold_start,
            received: started,
            handler_started: started,
            handler_finished: finished,
            answered: finished,
            outcome,
            answer_error: None,
            timed_out,
        }
    }

    fn api_gateway_event() -> Vec<u8> {
        json!({"resource": "/{proxy+}", "path": "/hello", "httpMethod": "GET",
               "headers": {"x-datadog-trace-id": "12345", "x-datadog-parent-id": "67890", "x-datadog-sampling-priority": "2"},
               "requestContext": {"stage": "prod", "apiId": "abc", "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                                  "requestTimeEpoch": 1428582896000u64, "identity": {"userAgent": "curl"}, "httpMethod": "GET", "path": "/prod/hello"}})
        .to_string()
        .into_bytes()
    }

    fn by_name<'a>(spans: &'a [Span], name: &str) -> &'a Span {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {spans:?}"))
    }

    #[test]
    fn api_gateway_trace_continues_the_caller() {
        let spans = build_invocation_trace(
            &report(
                api_gateway_event(),
                HandlerOutcome::Response(Bytes::from_static(br#"{"statusCode": 201}"#)),
                true,
                false,
            ),
            &function(),
            &config(&[("DD_SERVICE", "svc")]),
        );
        assert_eq!(spans.len(), 2);
        let inferred = by_name(&spans, "aws.apigateway");
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(inferred.trace_id, TraceId::new(0, 12345));
        assert_eq!(inferred.parent_id, 67890);
        assert_eq!(lambda.parent_id, inferred.span_id);
        assert_eq!(lambda.trace_id, inferred.trace_id);
        assert_eq!(lambda.meta["http.status_code"], "201");
        assert_eq!(inferred.meta["http.status_code"], "201");
        assert_eq!(inferred.meta["peer.service"], "svc");
        assert_eq!(
            inferred.meta["dd_resource_key"],
            "arn:aws:apigateway:us-east-1::/restapis/abc/stages/prod"
        );
        assert_eq!(inferred.meta["http.route"], "/{proxy+}");
        assert_eq!(lambda.meta["cold_start"], "true");
        assert_eq!(lambda.service, "svc");
        assert_eq!(inferred.metrics["_sampling_priority_v1"], 2.0);
        // Sync: the inferred span ends with the invocation, after aws.lambda.
        assert_eq!(inferred.end_ns(), lambda.end_ns());
        assert_eq!(lambda.duration_ns, 5_000_000);
        assert_eq!(lambda.error, 0);
    }

    #[test]
    fn errors_give_502_and_error_tags() {
        let mut error = ErrorBody::new("RuntimeError", "requested failure");
        error.stack_trace.push("at handler".into());
        let spans = build_invocation_trace(
            &report(api_gateway_event(), HandlerOutcome::Error(error), false, false),
            &function(),
            &config(&[]),
        );
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(lambda.error, 1);
        assert_eq!(lambda.meta["http.status_code"], "502");
        assert_eq!(lambda.meta["error.type"], "RuntimeError");
        assert_eq!(lambda.meta["error.message"], "requested failure");
        assert_eq!(lambda.meta["error.stack"], "at handler");
        assert_eq!(by_name(&spans, "aws.apigateway").meta["http.status_code"], "502");
    }

    #[test]
    fn timeouts_are_marked_and_still_sent() {
        let spans = build_invocation_trace(
            &report(
                &b"{}"[..],
                HandlerOutcome::Answered {
                    error_type: None,
                    error: None,
                },
                false,
                true,
            ),
            &function(),
            &config(&[]),
        );
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(lambda.error, 1);
        assert_eq!(lambda.meta["error.type"], "Impending Timeout");
    }

    #[test]
    fn new_trace_without_context_and_xray_only_with_merge() {
        let plain = build_invocation_trace(
            &report(&b"{}"[..], HandlerOutcome::Response(Bytes::new()), false, false),
            &function(),
            &config(&[]),
        );
        let lambda = by_name(&plain, "aws.lambda");
        assert_eq!(lambda.parent_id, 0);
        assert_ne!(lambda.trace_id.low, 3995693151288333088, "X-Ray does not parent without merge");
        let epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert!(
            (epoch & 0xFFFF_FFFF).abs_diff(lambda.trace_id.high >> 32) <= 1,
            "128-bit id starts with the epoch seconds"
        );
        assert_eq!(lambda.meta["_dd.p.tid"], format!("{:016x}", lambda.trace_id.high));
        assert_eq!(lambda.meta["_dd.p.dm"], "-0");
        assert_eq!(lambda.metrics["_sampling_priority_v1"], 1.0);
        assert_eq!(lambda.metrics["_dd.top_level"], 1.0);

        let merged = build_invocation_trace(
            &report(&b"{}"[..], HandlerOutcome::Response(Bytes::new()), false, false),
            &function(),
            &config(&[("DD_MERGE_XRAY_TRACES", "true")]),
        );
        let lambda = by_name(&merged, "aws.lambda");
        assert_eq!((lambda.trace_id.low, lambda.parent_id), (3995693151288333088, 10713633173203262661));
        assert_eq!(lambda.meta["_dd.parent_source"], "xray");

        let merged_event = build_invocation_trace(
            &report(api_gateway_event(), HandlerOutcome::Response(Bytes::new()), false, false),
            &function(),
            &config(&[("DD_MERGE_XRAY_TRACES", "true")]),
        );
        let inferred = by_name(&merged_event, "aws.apigateway");
        assert_eq!(
            (inferred.trace_id.low, inferred.parent_id),
            (12345, 10713633173203262661),
            "parented on the X-Ray segment"
        );
    }

    #[test]
    fn cold_start_span_and_proactive_initialization() {
        let mut function = function();
        let now = Timestamp::now().epoch_ns();
        function.init_window_ns = Some((now - 50_000_000, now - 1_000_000));
        let spans = build_invocation_trace(
            &report(&b"{}"[..], HandlerOutcome::Response(Bytes::new()), true, false),
            &function,
            &config(&[]),
        );
        let load = by_name(&spans, "aws.lambda.load");
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(load.parent_id, lambda.span_id);
        assert_eq!(load.duration_ns, 49_000_000);
        let off = build_invocation_trace(
            &report(&b"{}"[..], HandlerOutcome::Response(Bytes::new()), true, false),
            &function,
            &config(&[("DD_COLD_START_TRACING", "false")]),
        );
        assert!(off.iter().all(|s| s.name != "aws.lambda.load"));

        function.init_window_ns = Some((now - 60_000_000_000, now - 30_000_000_000));
        let spans = build_invocation_trace(
            &report(&b"{}"[..], HandlerOutcome::Response(Bytes::new()), true, false),
            &function,
            &config(&[]),
        );
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(lambda.meta["cold_start"], "false");
        assert_eq!(lambda.meta["proactive_initialization"], "true");
    }

    #[test]
    fn managed_services_off_means_no_inferred_span() {
        let spans = build_invocation_trace(
            &report(api_gateway_event(), HandlerOutcome::Response(Bytes::new()), false, false),
            &function(),
            &config(&[("DD_TRACE_MANAGED_SERVICES", "false")]),
        );
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_id, 67890);
    }

    #[test]
    fn payload_capture_and_span_pointers() {
        let event = json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2024-01-01T00:00:00.000Z",
            "s3": {"bucket": {"name": "mybucket", "arn": "arn:aws:s3:::mybucket"}, "object": {"key": "mykey", "eTag": "123abc", "size": 3}}}],
            "password": "hunter2"});
        let spans = build_invocation_trace(
            &report(
                event.to_string(),
                HandlerOutcome::Response(Bytes::from_static(br#"{"ok": true}"#)),
                false,
                false,
            ),
            &function(),
            &config(&[("DD_CAPTURE_LAMBDA_PAYLOAD", "true")]),
        );
        let lambda = by_name(&spans, "aws.lambda");
        assert_eq!(lambda.meta["function.request.password"], "redacted");
        assert_eq!(lambda.meta["function.response.ok"], "True");
        let s3 = by_name(&spans, "aws.s3");
        assert_eq!(s3.span_links[0].attributes["ptr.hash"], "8d49f5b0b742484159d4cd572bae1ce5");
        // Async: ends when aws.lambda starts.
        assert_eq!(s3.end_ns(), lambda.start_ns);
    }

    #[test]
    fn authorizer_response_gets_the_context() {
        let event: Value = serde_json::from_slice(&api_gateway_event()).unwrap();
        let config = config(&[]);
        let trace = InvocationTrace::begin(
            event,
            &report(
                &b"{}"[..],
                HandlerOutcome::Answered {
                    error_type: None,
                    error: None,
                },
                false,
                false,
            )
            .invocation
            .context,
            &config,
            &function(),
            1,
        );
        let response = br#"{"principalId": "u", "policyDocument": {"Version": "2012-10-17"}, "context": {"k": "v"}}"#;
        let injected: Value = serde_json::from_slice(&trace.authorizer_response(response, &config, 42).unwrap()).unwrap();
        assert_eq!(injected["context"]["k"], "v");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(injected["context"]["_datadog"].as_str().unwrap())
            .unwrap();
        let headers: Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(headers["x-datadog-trace-id"], "12345");
        assert_eq!(headers["x-datadog-parent-span-finish-time"], 42);
        assert!(trace.authorizer_response(br#"{"statusCode": 200}"#, &config, 42).is_none());
    }

    #[test]
    fn hostile_events_never_panic() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let big = json!({"headers": {"x": "y".repeat(6 * 1024 * 1024)}, "requestContext": {"stage": "s"}}).to_string();
        for event in [
            deep.into_bytes(),
            big.into_bytes(),
            b"[1,2]".to_vec(),
            b"\"s\"".to_vec(),
            b"null".to_vec(),
            b"12".to_vec(),
            vec![0xff, 0xfe],
        ] {
            let spans = build_invocation_trace(
                &report(event, HandlerOutcome::Response(Bytes::new()), false, false),
                &function(),
                &config(&[("DD_CAPTURE_LAMBDA_PAYLOAD", "true")]),
            );
            assert!(spans.iter().any(|s| s.name == "aws.lambda"));
            let line = super::super::forwarder_line(&spans);
            assert!(serde_json::from_str::<Value>(&line).is_ok());
        }
    }
}
