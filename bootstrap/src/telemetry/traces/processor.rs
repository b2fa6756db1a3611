//! Turns lifecycle events into finished traces and hands them to a sink: the Forwarder's stdout
//! line, or a trace agent (the Datadog Extension, or `DD_TRACE_AGENT_URL` / `DD_AGENT_HOST`).
use std::io::Write;
use std::sync::Mutex;

use super::function_span::FunctionInfo;
use super::invocation::{build_invocation_trace, Completion, InvocationResult, InvocationTrace};
use super::{forwarder_line, Span, TraceConfig};
use crate::handler::BoxFuture;
use crate::lifecycle::{LifecycleEvent, LifecycleObserver};
use crate::sinks::trace_agent::TraceAgentClient;

/// Where finished traces go, chosen as Datadog's tracer chooses (§5.15).
pub enum TraceSink {
    /// One `{"traces": [[...]]}` line per trace on stdout, for the Datadog Forwarder.
    Stdout(Mutex<Box<dyn Write + Send>>),
    /// msgpack `/v0.4/traces` to a trace agent.
    Agent(TraceAgentClient),
}

impl TraceSink {
    /// The Extension's (or a configured) agent when there is one, else stdout.
    pub fn choose(config: &TraceConfig, extension_present: bool) -> Self {
        let agent = config
            .trace_agent_url
            .clone()
            .or_else(|| config.agent_host.as_ref().map(|host| format!("http://{host}:8126")))
            .or_else(|| extension_present.then(|| "http://127.0.0.1:8126".to_owned()));
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
                if let Err(err) = agent.send(&[spans]).await {
                    tracing::error!(spans = count, "{err}; the trace's spans are dropped");
                }
            }
        }
    }
}

/// The tracing side of telemetry; register it as a lifecycle observer when `DD_TRACE_ENABLED`.
pub struct TraceProcessor {
    config: TraceConfig,
    function: Mutex<FunctionInfo>,
    sink: TraceSink,
    /// The request whose trace already went out when its timeout approached.
    flushed_at_timeout: Mutex<Option<String>>,
}

impl TraceProcessor {
    pub fn new(config: TraceConfig, function: FunctionInfo, sink: TraceSink) -> Self {
        Self {
            config,
            function: Mutex::new(function),
            sink,
            flushed_at_timeout: Mutex::new(None),
        }
    }

    fn function(&self) -> FunctionInfo {
        self.function
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    async fn handle(&self, event: &LifecycleEvent) {
        match event {
            LifecycleEvent::Init(init) => {
                if let Ok(mut function) = self.function.lock() {
                    *function = function.clone().with_init(init);
                }
            }
            LifecycleEvent::Invocation(report) => {
                let already_sent = self
                    .flushed_at_timeout
                    .lock()
                    .ok()
                    .and_then(|mut sent| sent.take())
                    .is_some_and(|id| id == report.invocation.context.request_id);
                if already_sent {
                    return;
                }
                let spans = build_invocation_trace(report, &self.function(), &self.config);
                self.sink.send(spans).await;
            }
            LifecycleEvent::TimeoutApproaching {
                invocation,
                received,
                at,
                cold_start,
            } => {
                let function = self.function();
                let event = serde_json::from_slice(&invocation.event).unwrap_or(serde_json::Value::Null);
                let trace = InvocationTrace::begin(event, &invocation.context, &self.config, &function, received.epoch_ns());
                let completion = Completion {
                    result: InvocationResult::TimedOut,
                    end_ns: at.epoch_ns(),
                    cold_start: *cold_start,
                };
                let spans = trace.finish(&completion, &function, &self.config);
                if let Ok(mut sent) = self.flushed_at_timeout.lock() {
                    *sent = Some(invocation.context.request_id.clone());
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
}
