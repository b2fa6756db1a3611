//! Turns lifecycle events into finished traces and hands them to a sink: the Forwarder's stdout
//! line, or a trace agent (the Datadog Extension, or `DD_TRACE_AGENT_URL` / `DD_AGENT_HOST`).
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::children::{self, ChildChunkOutcome, FinishedInvocation, RecentInvocations};
use super::extract::{self, ContextSource, TraceContext};
use super::function_span::{init_error_span, mark_error, FunctionInfo};
use super::invocation::{finish_invocation_trace, Completion, InvocationResult, InvocationTrace};
use super::logs::Correlation;
use super::{forwarder_line, Span, TraceConfig};
use crate::handler::{BoxFuture, Invocation};
use crate::lifecycle::{InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
use crate::runtime_api::ErrorBody;
use crate::sinks::trace_agent::TraceAgentClient;
use crate::sinks::xray::{XrayDaemon, XrayHeader};

/// Where finished traces go, chosen as Datadog's tracer chooses (§5.15).
pub enum TraceSink {
    /// One `{"traces": [[...]]}` line per trace on stdout, for the Datadog Forwarder.
    Stdout(Mutex<Box<dyn Write + Send>>),
    /// msgpack `/v0.4/traces` to a trace agent.
    Agent(TraceAgentClient),
}

impl TraceSink {
    /// A configured agent, else the Extension's (`extension_agent`, when it is present), else stdout.
    pub fn choose(config: &TraceConfig, extension_agent: Option<std::net::SocketAddr>) -> Self {
        let agent = config
            .trace_agent_url
            .clone()
            .or_else(|| config.agent_host.as_ref().map(|host| format!("http://{host}:8126")))
            .or_else(|| extension_agent.map(|addr| format!("http://{addr}")));
        match agent {
            Some(url) => TraceSink::Agent(TraceAgentClient::new(&url)),
            None => TraceSink::Stdout(Mutex::new(Box::new(std::io::stdout()))),
        }
    }

    async fn send(&self, spans: Vec<Span>) {
        if spans.is_empty() {
            return;
        }
        match self {
            TraceSink::Stdout(out) => {
                let mut line = forwarder_line(&spans);
                line.push('\n');
                let written = out.lock().map(|mut out| out.write_all(line.as_bytes()).and_then(|()| out.flush()));
                if !matches!(written, Ok(Ok(()))) {
                    tracing::error!(spans = spans.len(), "cannot write the trace line to stdout; its spans are dropped");
                }
            }
            TraceSink::Agent(agent) => {
                let count = spans.len();
                // Boxed: the HTTP request's future would otherwise make every invocation's
                // observer future its size, Forwarder mode included.
                if let Err(err) = Box::pin(agent.send(&[spans])).await {
                    tracing::error!(spans = count, "{err}; the trace's spans are dropped");
                }
            }
        }
    }
}

/// The tracing side of telemetry; register it as a lifecycle observer when `DD_TRACE_ENABLED`.
pub struct TraceProcessor {
    config: TraceConfig,
    /// Shared, so each invocation takes it without copying its strings.
    function: Mutex<Arc<FunctionInfo>>,
    sink: TraceSink,
    /// Requests whose trace already went out before their `Invocation` report came: when their
    /// answer left (`AnswerSent`) or their timeout approached; with `AWS_LAMBDA_MAX_CONCURRENCY`
    /// several can be in flight at once.
    sent_early: Mutex<HashSet<String>>,
    /// Invocations whose handler is running, by request id: a handler asking for its trace
    /// begins it here, and the trace sent after the response is that same one.
    in_flight: Mutex<HashMap<String, Arc<InFlight>>>,
    /// The last invocations sent: spans a child tracer flushes after the answer still find
    /// their trace, and log lines printed just after the answer their ids.
    recent: Mutex<RecentInvocations>,
    /// The X-Ray daemon (`AWS_XRAY_DAEMON_ADDRESS`), for Datadog's metadata subsegments.
    xray: Option<XrayDaemon>,
}

/// An invocation whose handler is running. Its trace is begun only when the handler asks for
/// it (parsing the event is work the invocation's path otherwise never pays).
struct InFlight {
    invocation: Arc<Invocation>,
    handler_started_ns: i64,
    trace: Mutex<Option<InvocationTrace>>,
    /// The ids log lines of this invocation are stamped with, computed on the first line.
    correlation: std::sync::OnceLock<Correlation>,
    /// An error a child tracer reported (`/lambda/end-invocation`) for an answer that was not one.
    reported_error: Mutex<Option<ErrorBody>>,
}

impl TraceProcessor {
    /// The tracing configuration this processor runs with.
    pub fn config(&self) -> &TraceConfig {
        &self.config
    }

    pub fn new(config: TraceConfig, function: FunctionInfo, sink: TraceSink) -> Self {
        Self {
            function: Mutex::new(Arc::new(function)),
            sink,
            sent_early: Mutex::new(HashSet::new()),
            in_flight: Mutex::new(HashMap::new()),
            recent: Mutex::new(RecentInvocations::default()),
            xray: XrayDaemon::from_address(config.xray_daemon_address.as_deref()),
            config,
        }
    }

    /// Registers an invocation whose handler starts now (the lifecycle's synchronous hook): an
    /// insert, nothing parsed.
    pub fn invocation_started(&self, invocation: &Arc<Invocation>, handler_started: Timestamp) {
        let entry = Arc::new(InFlight {
            invocation: invocation.clone(),
            handler_started_ns: handler_started.epoch_ns(),
            trace: Mutex::new(None),
            correlation: std::sync::OnceLock::new(),
            reported_error: Mutex::new(None),
        });
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.insert(invocation.context.request_id.clone(), entry);
        }
    }

    /// Runs `f` on the trace of in-flight request `request_id`, beginning it on first use;
    /// `None` when the request is not in flight.
    fn with_trace<R>(&self, request_id: &str, f: impl FnOnce(&mut InvocationTrace) -> R) -> Option<R> {
        let entry = self.in_flight.lock().ok()?.get(request_id)?.clone();
        let mut slot = entry.trace.lock().ok()?;
        let trace = slot.get_or_insert_with(|| self.begin(&entry.invocation, entry.handler_started_ns));
        Some(f(trace))
    }

    fn begin(&self, invocation: &Invocation, start_ns: i64) -> InvocationTrace {
        let event = super::event::parse_event(&invocation.event, self.config.capture_payload);
        InvocationTrace::begin(event, &invocation.context, &self.config, &self.function(), start_ns)
    }

    /// Removes `request_id` from the in-flight set; its trace when the handler began one, and
    /// the error a child tracer reported for it.
    fn take_trace(&self, request_id: &str) -> (Option<InvocationTrace>, Option<ErrorBody>) {
        let Some(entry) = self.in_flight.lock().ok().and_then(|mut m| m.remove(request_id)) else {
            return (None, None);
        };
        let reported = entry.reported_error.lock().ok().and_then(|mut e| e.take());
        let trace = entry.trace.lock().ok().and_then(|mut t| t.take());
        (trace, reported)
    }

    /// The in-flight entry a child's call refers to: `request_id` when given and in flight,
    /// else the only invocation in flight (none when several are and nothing tells them apart).
    fn attributed(&self, request_id: Option<&str>) -> Option<Arc<InFlight>> {
        super::logs::attributed_in_flight(&*self.in_flight.lock().ok()?, request_id)
    }

    fn correlation_of(&self, trace: &InvocationTrace) -> Correlation {
        Correlation::new(
            trace.trace_id,
            trace.function_span_id,
            &self.function().service(&self.config),
            self.config.env.as_deref().unwrap_or_default(),
            self.config.version.as_deref().unwrap_or_default(),
        )
    }

    /// The ids a log line of the function is stamped with (§7), by the rule of the README's
    /// "Logs injection" section: the invocation the line names (`request_id`, from the Lambda
    /// log format), else the only invocation in flight, else, when none is, the one answered
    /// last (its output may still be draining); `None` when the line cannot be attributed.
    pub fn log_correlation(&self, request_id: Option<&str>) -> Option<Correlation> {
        if let Some(entry) = self.attributed(request_id) {
            if let Some(ids) = entry.correlation.get() {
                return Some(ids.clone());
            }
            let ids = {
                let mut slot = entry.trace.lock().ok()?;
                let trace = slot.get_or_insert_with(|| self.begin(&entry.invocation, entry.handler_started_ns));
                self.correlation_of(trace)
            };
            return Some(entry.correlation.get_or_init(|| ids).clone());
        }
        let idle = self.in_flight.lock().ok()?.is_empty();
        let recent = self.recent.lock().ok()?;
        match request_id {
            Some(id) => recent.by_request_id(id).map(|f| f.correlation.clone()),
            None if idle => recent.last().map(|f| f.correlation.clone()),
            None => None,
        }
    }

    /// `/lambda/start-invocation` of a child tracer: the context its spans continue (the
    /// `aws.lambda` span of the invocation whose event is `event`, else of the only one in flight).
    pub fn universal_start(&self, event: &[u8]) -> Option<TraceContext> {
        let entry = {
            let in_flight = self.in_flight.lock().ok()?;
            let same_event = in_flight.values().find(|e| e.invocation.event.as_ref() == event).cloned();
            same_event.or_else(|| (in_flight.len() == 1).then(|| in_flight.values().next().cloned()).flatten())?
        };
        let mut slot = entry.trace.lock().ok()?;
        let trace = slot.get_or_insert_with(|| self.begin(&entry.invocation, entry.handler_started_ns));
        Some(trace.child_context())
    }

    /// `/lambda/end-invocation` of a child tracer reporting `error`: the `aws.lambda` span is
    /// marked with it unless the answer itself is an error. `false` when no invocation is
    /// attributable.
    pub fn universal_end(&self, error: Option<ErrorBody>) -> bool {
        let Some(entry) = self.attributed(None) else { return false };
        if let (Some(error), Ok(mut slot)) = (error, entry.reported_error.lock()) {
            *slot = Some(error);
        }
        true
    }

    /// Spans a child's tracer sent to the trace agent endpoint, one chunk per trace: added to
    /// the invocation's trace while it is in flight, else sent at once beside the trace already
    /// sent (same trace id, parented on its `aws.lambda` span). Returns how many were dropped
    /// because no invocation of this sandbox owns their trace.
    pub async fn receive_child_chunks(&self, chunks: Vec<Vec<Span>>) -> usize {
        let mut dropped = 0;
        let mut late = Vec::new();
        for chunk in chunks {
            match self.place_child_chunk(chunk) {
                ChildChunkOutcome::Adopted => {}
                ChildChunkOutcome::Late(spans) => late.extend(spans),
                ChildChunkOutcome::Dropped(count) => dropped += count,
            }
        }
        if !late.is_empty() {
            self.sink.send(late).await;
        }
        dropped
    }

    fn place_child_chunk(&self, chunk: Vec<Span>) -> ChildChunkOutcome {
        let service = self.function().service(&self.config);
        let entries: Vec<Arc<InFlight>> = match self.in_flight.lock() {
            Ok(in_flight) => in_flight.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        let mut candidates = Vec::with_capacity(entries.len());
        for entry in &entries {
            if let Ok(mut slot) = entry.trace.lock() {
                let trace = slot.get_or_insert_with(|| self.begin(&entry.invocation, entry.handler_started_ns));
                candidates.push(children::Candidate::of(trace));
            }
        }
        if let Some(target) = children::choose(&chunk, &candidates) {
            let entry = &entries[target];
            let spans = children::reparent(chunk, &candidates[target]);
            let count = spans.len();
            let adopted = match entry.trace.lock() {
                Ok(mut slot) => match slot.as_mut() {
                    Some(trace) => spans.into_iter().filter(|s| trace.adopt(s.clone(), &service)).count(),
                    None => 0,
                },
                Err(_) => 0,
            };
            return if adopted == count {
                ChildChunkOutcome::Adopted
            } else {
                ChildChunkOutcome::Dropped(count - adopted)
            };
        }
        let recent = match self.recent.lock() {
            Ok(recent) => recent.candidates(),
            Err(_) => Vec::new(),
        };
        match children::choose(&chunk, &recent) {
            Some(target) => ChildChunkOutcome::Late(children::finish_late(chunk, &recent[target], &service)),
            None => ChildChunkOutcome::Dropped(chunk.len()),
        }
    }

    /// §5.8 encode, on the answer's path: the response with `context._datadog` when it looks
    /// like an authorizer's (a cheap byte check first; parsed only then).
    pub fn authorizer_response(&self, request_id: &str, response: &[u8]) -> Option<Bytes> {
        if !self.config.encode_authorizer_context || !children::looks_like_authorizer_response(response) {
            return None;
        }
        let finish_ns = Timestamp::now().epoch_ns();
        self.with_trace(request_id, |trace| trace.authorizer_response(response, &self.config, finish_ns))
            .flatten()
            .map(Bytes::from)
    }

    fn remember(&self, trace: &InvocationTrace, end_ns: i64) {
        let finished = FinishedInvocation {
            request_id: trace.request_id().to_owned(),
            candidate: children::Candidate::of(trace),
            end_ns,
            correlation: self.correlation_of(trace),
        };
        if let Ok(mut recent) = self.recent.lock() {
            recent.push(finished);
        }
    }

    /// The context a handler continues (its trace, parented on the `aws.lambda` span).
    pub fn child_context(&self, request_id: &str) -> Option<TraceContext> {
        self.with_trace(request_id, |trace| trace.child_context())
    }

    /// Propagation headers for an outgoing call of the handler, in the configured styles,
    /// parented on `parent_span_id` (else the `aws.lambda` span).
    pub fn injection_headers(&self, request_id: &str, parent_span_id: Option<u64>) -> Option<Vec<(String, String)>> {
        self.with_trace(request_id, |trace| {
            let mut context = trace.child_context();
            if let Some(parent) = parent_span_id {
                context.parent_id = parent;
            }
            extract::injection_headers(&context, &self.config)
        })
    }

    /// Adds a span the handler finished to its invocation's trace; `false` when the request is
    /// not in flight (its trace already went out) or the trace has too many handler spans.
    pub fn adopt_span(&self, request_id: &str, span: Span) -> bool {
        let service = self.function().service(&self.config);
        self.with_trace(request_id, |trace| trace.adopt(span, &service)).unwrap_or(false)
    }

    fn function(&self) -> Arc<FunctionInfo> {
        self.function
            .lock()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |f| f.clone())
    }

    /// §6.3: the incoming Datadog context and the trigger tags, as X-Ray metadata subsegments.
    fn send_xray_metadata(&self, invocation: &Invocation, upstream: Option<&TraceContext>, spans: &[Span]) {
        let Some(daemon) = &self.xray else { return };
        let Some(header) = invocation.context.xray_trace_id.as_deref().and_then(XrayHeader::parse) else {
            return;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        if let Some(context) = upstream {
            let trace_id = if context.trace_id.high == 0 {
                context.trace_id.low.to_string()
            } else {
                ((u128::from(context.trace_id.high) << 64) | u128::from(context.trace_id.low)).to_string()
            };
            let value = serde_json::json!({
                "trace-id": trace_id,
                "parent-id": context.parent_id.to_string(),
                "sampling-priority": context.sampling_priority.unwrap_or(1).to_string(),
            });
            daemon.send_metadata(&header, "trace", value, now);
        }
        let trigger_tags: serde_json::Map<String, serde_json::Value> = spans
            .iter()
            .find(|span| span.name == "aws.lambda")
            .map(|span| {
                span.meta
                    .iter()
                    .filter(|(key, _)| key.starts_with("function_trigger.") || key.starts_with("http."))
                    .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
                    .collect()
            })
            .unwrap_or_default();
        if !trigger_tags.is_empty() {
            daemon.send_metadata(&header, "lambda_function_tags", serde_json::Value::Object(trigger_tags), now);
        }
    }

    /// The finished trace of an answered invocation, sent: the one the handler began, else one
    /// begun now.
    async fn send_invocation_trace(&self, report: &InvocationReport) {
        let (begun, reported_error) = self.take_trace(&report.invocation.context.request_id);
        let function = self.function();
        let trace = begun.unwrap_or_else(|| self.begin(&report.invocation, report.handler_started.epoch_ns()));
        self.remember(&trace, report.handler_finished.epoch_ns());
        let function_span_id = trace.function_span_id;
        let upstream = trace.context.clone().filter(|c| c.source == ContextSource::Event);
        let mut spans = finish_invocation_trace(trace, report, &function, &self.config);
        if let Some(error) = reported_error.filter(|_| !report.outcome.is_error()) {
            if let Some(span) = spans.iter_mut().find(|s| s.span_id == function_span_id) {
                mark_error(span, &error);
            }
        }
        self.send_xray_metadata(&report.invocation, upstream.as_ref(), &spans);
        self.sink.send(spans).await;
    }

    async fn handle(&self, event: &LifecycleEvent) {
        match event {
            LifecycleEvent::Init(init) => {
                if let Ok(mut function) = self.function.lock() {
                    *function = Arc::new(FunctionInfo::clone(&function).with_init(init));
                }
                if let Some(error) = &init.error {
                    // The seed traces a handler that fails to import; no invocation span follows.
                    let span = init_error_span(
                        &self.function(),
                        &self.config,
                        error,
                        init.started.epoch_ns(),
                        init.finished.epoch_ns(),
                    );
                    self.sink.send(vec![span]).await;
                }
            }
            LifecycleEvent::AnswerSent(report) => {
                let request_id = &report.invocation.context.request_id;
                // A trace sent at the timeout stays marked for the `Invocation` report after this.
                let sent_at_timeout = self.sent_early.lock().is_ok_and(|sent| sent.contains(request_id));
                if sent_at_timeout || report.timed_out {
                    return;
                }
                if let Ok(mut sent) = self.sent_early.lock() {
                    sent.insert(request_id.clone());
                }
                self.send_invocation_trace(report).await;
            }
            LifecycleEvent::Invocation(report) => {
                let sent_early = self
                    .sent_early
                    .lock()
                    .is_ok_and(|mut sent| sent.remove(&report.invocation.context.request_id));
                // `timed_out` also covers a report that overtakes its own timeout flush.
                if sent_early || report.timed_out {
                    return;
                }
                self.send_invocation_trace(report).await;
            }
            LifecycleEvent::TimeoutApproaching {
                invocation,
                received,
                at,
                cold_start,
            } => {
                let function = self.function();
                let trace = self
                    .take_trace(&invocation.context.request_id)
                    .0
                    .unwrap_or_else(|| self.begin(invocation, received.epoch_ns()));
                self.remember(&trace, at.epoch_ns());
                let completion = Completion {
                    result: InvocationResult::TimedOut,
                    end_ns: at.epoch_ns(),
                    cold_start: *cold_start,
                };
                let spans = trace.finish(&completion, &function, &self.config);
                if let Ok(mut sent) = self.sent_early.lock() {
                    sent.insert(invocation.context.request_id.clone());
                }
                self.sink.send(spans).await;
            }
            LifecycleEvent::Shutdown { .. } => {}
        }
    }
}

impl LifecycleObserver for TraceProcessor {
    fn observe<'a>(&'a self, event: &'a LifecycleEvent) -> BoxFuture<'a, ()> {
        Box::pin(self.handle(event))
    }

    fn invocation_started(&self, invocation: &Arc<Invocation>, handler_started: Timestamp) {
        TraceProcessor::invocation_started(self, invocation, handler_started);
    }

    fn rewrite_response(&self, invocation: &Invocation, body: &Bytes) -> Option<Bytes> {
        self.authorizer_response(&invocation.context.request_id, body)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use serde_json::Value;

    use super::*;
    use crate::config::Environment;
    use crate::handler::HandlerOutcome;
    use crate::lifecycle::InvocationReport;
    use crate::runtime_api::InvocationContext;
    use crate::telemetry::traces::TraceId;

    use crate::test_support::SharedOutput as Output;

    fn processor(out: &Output) -> TraceProcessor {
        let env = Environment::from_pairs([("DD_TRACE_ENABLED", "true"), ("AWS_LAMBDA_FUNCTION_NAME", "my-fn")]);
        let function = FunctionInfo {
            name: "my-fn".into(),
            initialization_type: "on-demand".into(),
            init_window_ns: None,
            handler: None,
        };
        TraceProcessor::new(
            TraceConfig::from_env(&env),
            function,
            TraceSink::Stdout(Mutex::new(Box::new(out.clone()))),
        )
    }

    fn trace_lines(out: &Output) -> Vec<Vec<Value>> {
        out.json_lines()
            .iter()
            .map(|line| line["traces"][0].as_array().unwrap().clone())
            .collect()
    }

    #[tokio::test]
    async fn a_trace_begun_by_the_handler_goes_out_once_at_the_timeout() {
        let out = Output::default();
        let processor = processor(&out);
        let invocation = Arc::new(Invocation {
            context: InvocationContext {
                request_id: "r1".into(),
                invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:my-fn".into(),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{}"),
        });
        let started = Timestamp::now();
        processor.invocation_started(&invocation, started);
        let context = processor.child_context("r1").unwrap();
        let mut span = Span::new("work", TraceId::default(), 5, 0);
        span.start_ns = started.epoch_ns();
        assert!(processor.adopt_span("r1", span));

        let at = Timestamp {
            monotonic: started.monotonic + Duration::from_millis(50),
            wall: started.wall + Duration::from_millis(50),
        };
        let timeout = LifecycleEvent::TimeoutApproaching {
            invocation: invocation.clone(),
            received: started,
            at,
            cold_start: false,
        };
        processor.observe(&timeout).await;
        assert!(processor.child_context("r1").is_none(), "no longer in flight");
        assert!(!processor.adopt_span("r1", Span::new("late", TraceId::default(), 6, 0)));

        let report = InvocationReport {
            invocation,
            cold_start: false,
            received: started,
            handler_started: started,
            handler_finished: at,
            answered: at,
            outcome: HandlerOutcome::Response(Bytes::new()),
            answer_error: None,
            timed_out: true,
        };
        processor.observe(&LifecycleEvent::Invocation(Arc::new(report))).await;

        let traces = trace_lines(&out);
        assert_eq!(traces.len(), 1, "sent once, at the timeout");
        let spans = &traces[0];
        let lambda = spans.iter().find(|s| s["name"] == "aws.lambda").unwrap();
        let work = spans.iter().find(|s| s["name"] == "work").unwrap();
        assert_eq!(lambda["span_id"], format!("{:016X}", context.parent_id));
        assert_eq!(lambda["trace_id"], format!("{:016X}", context.trace_id.low));
        assert_eq!(lambda["meta"]["error.type"], "Impending Timeout");
        assert_eq!(work["parent_id"], lambda["span_id"]);
        assert_eq!(work["trace_id"], lambda["trace_id"]);
        assert_eq!(work["service"], lambda["service"]);
    }

    #[test]
    fn a_trace_takes_at_most_the_handler_span_limit() {
        let out = Output::default();
        let processor = processor(&out);
        let invocation = Arc::new(Invocation {
            context: InvocationContext {
                request_id: "r1".into(),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{}"),
        });
        processor.invocation_started(&invocation, Timestamp::now());
        let limit = super::super::invocation::MAX_HANDLER_SPANS;
        let accepted = (0..limit + 5)
            .filter(|i| processor.adopt_span("r1", Span::new("s", TraceId::default(), *i as u64 + 1, 0)))
            .count();
        assert_eq!(accepted, limit);
    }
}

#[cfg(test)]
mod timeout_and_init_tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::Environment;
    use crate::handler::{HandlerOutcome, Invocation};
    use crate::lifecycle::{InitReport, InvocationReport, Timestamp};
    use crate::runtime_api::{ErrorBody, InvocationContext};

    use crate::test_support::SharedOutput as Lines;

    fn processor(out: &Lines) -> TraceProcessor {
        let config = TraceConfig::from_env(&Environment::from_pairs([("DD_TRACE_ENABLED", "true")]));
        let function = FunctionInfo {
            name: "my-fn".into(),
            handler: Some("/var/task/libapp.so:handler".into()),
            ..Default::default()
        };
        TraceProcessor::new(config, function, TraceSink::Stdout(Mutex::new(Box::new(out.clone()))))
    }

    fn invocation(request_id: &str) -> Arc<Invocation> {
        Arc::new(Invocation {
            context: InvocationContext {
                request_id: request_id.into(),
                invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:my-fn".into(),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{}"),
        })
    }

    fn timeout_approaching(request_id: &str) -> LifecycleEvent {
        LifecycleEvent::TimeoutApproaching {
            invocation: invocation(request_id),
            received: Timestamp::now(),
            at: Timestamp::now(),
            cold_start: false,
        }
    }

    fn finished(request_id: &str, timed_out: bool) -> LifecycleEvent {
        LifecycleEvent::Invocation(answered_report(request_id, timed_out))
    }

    fn answer_sent(request_id: &str, timed_out: bool) -> LifecycleEvent {
        LifecycleEvent::AnswerSent(answered_report(request_id, timed_out))
    }

    fn answered_report(request_id: &str, timed_out: bool) -> Arc<InvocationReport> {
        let now = Timestamp::now();
        Arc::new(InvocationReport {
            invocation: invocation(request_id),
            cold_start: false,
            received: now,
            handler_started: now,
            handler_finished: now,
            answered: now,
            outcome: HandlerOutcome::Response(Bytes::from_static(b"{}")),
            answer_error: None,
            timed_out,
        })
    }

    fn count_for(lines: &[String], request_id: &str) -> usize {
        lines
            .iter()
            .filter(|l| l.contains(&format!("\"request_id\": \"{request_id}\"")))
            .count()
    }

    #[tokio::test]
    async fn a_trace_flushed_at_its_timeout_is_not_sent_again() {
        let out = Lines::default();
        let processor = processor(&out);
        processor.observe(&timeout_approaching("a")).await;
        processor.observe(&finished("a", true)).await;
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("Impending Timeout"));
    }

    #[tokio::test]
    async fn a_trace_sent_when_its_answer_left_is_not_sent_again() {
        let out = Lines::default();
        let processor = processor(&out);
        processor.observe(&answer_sent("a", false)).await;
        assert_eq!(count_for(&out.lines(), "a"), 1, "sent while the answer is acknowledged");
        processor.observe(&finished("a", false)).await;
        // An abort report comes as `Invocation` alone: its trace is still sent.
        processor.observe(&finished("b", false)).await;
        let lines = out.lines();
        assert_eq!(count_for(&lines, "a"), 1, "{lines:#?}");
        assert_eq!(count_for(&lines, "b"), 1, "{lines:#?}");
        // Nothing stays behind for request ids that will not come again.
        assert!(processor.sent_early.lock().is_ok_and(|sent| sent.is_empty()));
    }

    #[tokio::test]
    async fn an_answer_leaving_after_its_timeout_flush_sends_nothing_more() {
        let out = Lines::default();
        let processor = processor(&out);
        processor.observe(&timeout_approaching("a")).await;
        processor.observe(&answer_sent("a", false)).await;
        processor.observe(&finished("a", false)).await;
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("Impending Timeout"));
        assert!(processor.sent_early.lock().is_ok_and(|sent| sent.is_empty()));
    }

    #[tokio::test]
    async fn concurrent_invocations_do_not_clear_each_others_timeout_flush() {
        // Two workers: "a" nears its deadline, "b" finishes, then "a" finishes within the margin.
        let out = Lines::default();
        let processor = processor(&out);
        processor.observe(&timeout_approaching("a")).await;
        processor.observe(&finished("b", false)).await;
        processor.observe(&finished("a", false)).await;
        let lines = out.lines();
        assert_eq!(count_for(&lines, "a"), 1, "{lines:#?}");
        assert_eq!(count_for(&lines, "b"), 1, "{lines:#?}");
    }

    #[tokio::test]
    async fn a_failed_init_sends_one_failed_span() {
        let out = Lines::default();
        let processor = processor(&out);
        let started = Timestamp::now();
        let finished = Timestamp {
            monotonic: started.monotonic + Duration::from_millis(3),
            wall: started.wall + Duration::from_millis(3),
        };
        let report = InitReport {
            started,
            finished,
            handler_init: Duration::ZERO,
            initialization_type: "on-demand".into(),
            error: Some(ErrorBody::new("Runtime.HandlerNotFound", "no such library")),
        };
        processor.observe(&LifecycleEvent::Init(Arc::new(report.clone()))).await;
        let lines = out.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        for needle in [
            "\"name\": \"aws.lambda\"",
            "\"resource\": \"/var/task/libapp.so\"",
            "\"error\": 1",
            "\"duration\": 3000000",
            "\"error.type\": \"Runtime.HandlerNotFound\"",
        ] {
            assert!(lines[0].contains(needle), "{needle} missing from {}", lines[0]);
        }

        // A successful init sends nothing.
        let ok = InitReport { error: None, ..report };
        processor.observe(&LifecycleEvent::Init(Arc::new(ok))).await;
        assert_eq!(out.lines().len(), 1);
    }
}

#[cfg(test)]
mod future_size {
    use std::sync::Mutex;

    use super::*;
    use crate::config::Environment;

    /// Every invocation boxes the observer's future, so what it holds across an await is copied
    /// each time: the trace agent's HTTP request is boxed where it runs (1.2 KB with it boxed,
    /// 1.5 KB without).
    #[test]
    fn the_observer_future_stays_small() {
        let config = TraceConfig::from_env(&Environment::from_pairs([("DD_TRACE_ENABLED", "true")]));
        let processor = TraceProcessor::new(
            config,
            FunctionInfo::default(),
            TraceSink::Stdout(Mutex::new(Box::new(std::io::sink()))),
        );
        let event = LifecycleEvent::Shutdown { at: Timestamp::now() };
        let future = processor.handle(&event);
        assert!(std::mem::size_of_val(&future) <= 1536, "{} bytes", std::mem::size_of_val(&future));
    }
}
