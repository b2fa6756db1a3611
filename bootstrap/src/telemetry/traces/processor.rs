//! Turns lifecycle events into finished traces and hands them to a sink: the Forwarder's stdout
//! line, or a trace agent (the Datadog Extension, or `DD_TRACE_AGENT_URL` / `DD_AGENT_HOST`).
use std::collections::HashSet;
use std::io::Write;
use std::sync::Mutex;

use super::function_span::{init_error_span, FunctionInfo};
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
    /// Requests whose trace already went out when their timeout approached; with
    /// `AWS_LAMBDA_MAX_CONCURRENCY` several can be in flight at once.
    flushed_at_timeout: Mutex<HashSet<String>>,
}

impl TraceProcessor {
    pub fn new(config: TraceConfig, function: FunctionInfo, sink: TraceSink) -> Self {
        Self {
            config,
            function: Mutex::new(function),
            sink,
            flushed_at_timeout: Mutex::new(HashSet::new()),
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
            LifecycleEvent::Invocation(report) => {
                let request_id = &report.invocation.context.request_id;
                let sent_at_timeout = self.flushed_at_timeout.lock().is_ok_and(|mut sent| sent.remove(request_id));
                // `timed_out` also covers a report that overtakes its own timeout flush.
                if sent_at_timeout || report.timed_out {
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
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::config::Environment;
    use crate::handler::{HandlerOutcome, Invocation};
    use crate::lifecycle::{InitReport, InvocationReport, Timestamp};
    use crate::runtime_api::{ErrorBody, InvocationContext};

    /// Stdout the test can read back.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn read(&self) -> Vec<String> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect()
        }
    }

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
            headers: Default::default(),
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
        let now = Timestamp::now();
        LifecycleEvent::Invocation(Arc::new(InvocationReport {
            invocation: invocation(request_id),
            cold_start: false,
            received: now,
            handler_started: now,
            handler_finished: now,
            answered: now,
            outcome: HandlerOutcome::Response(Bytes::from_static(b"{}")),
            answer_error: None,
            timed_out,
        }))
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
        let lines = out.read();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("Impending Timeout"));
    }

    #[tokio::test]
    async fn concurrent_invocations_do_not_clear_each_others_timeout_flush() {
        // Two workers: "a" nears its deadline, "b" finishes, then "a" finishes within the margin.
        let out = Lines::default();
        let processor = processor(&out);
        processor.observe(&timeout_approaching("a")).await;
        processor.observe(&finished("b", false)).await;
        processor.observe(&finished("a", false)).await;
        let lines = out.read();
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
        let lines = out.read();
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
        assert_eq!(out.read().len(), 1);
    }
}
