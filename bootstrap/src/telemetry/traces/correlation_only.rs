//! Logs injection with tracing off (`DD_TRACE_ENABLED` false, `DD_LOGS_INJECTION` on): the
//! correlation ids Datadog's library gives log lines when it builds no trace (§5.16, §8.3
//! step 5), without building one.
//!
//! The seed's rule (`tracing.py: set_correlation_ids`, `get_dd_trace_context_obj`): only when the
//! invocation has an X-Ray context (`_X_AMZN_TRACE_ID`, in Lambda) does it start a `dummy.span`,
//! under the X-Ray context, or, when the event carried a complete Datadog context, under that
//! context's trace id with the X-Ray segment as parent. Log lines then carry the dummy span's
//! trace id (the event's, 128-bit when it had `_dd.p.tid`, else X-Ray's) and its own random span
//! id. No X-Ray context: no dummy span, no ids. Nothing is ever sent: the span is never finished.
//!
//! Here the same ids are computed per invocation on the first log line (or sdk record) that
//! asks for them: the X-Ray header is read first, and the event is parsed only when it exists.
//! Invocations that log nothing cost a map insert and removal.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use super::config::TraceConfig;
use super::event::parse_event;
use super::extract::{self, xray, ContextSource};
use super::logs::Correlation;
use super::span::{random_id, TraceId};
use super::trigger;
use crate::handler::{BoxFuture, Invocation};
use crate::lifecycle::{LifecycleEvent, LifecycleObserver, Timestamp};

/// Answered invocations whose ids are kept for the lines a child prints after its answer.
const RECENT: usize = 8;

/// The seed's dummy span: what a log line of the invocation carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CorrelationIds {
    pub trace_id: TraceId,
    /// The dummy span's own id (random; no span with it is ever sent).
    pub span_id: u64,
    /// The sampling priority of the context the dummy span continues.
    pub sampling_priority: i32,
}

/// The ids the seed's `set_correlation_ids` would give `invocation`'s log lines; `None` when it
/// starts no dummy span (not in Lambda, or no complete X-Ray context).
pub fn correlation_ids(invocation: &Invocation, config: &TraceConfig) -> Option<CorrelationIds> {
    // `_get_xray_trace_context` answers only in Lambda, and without it there is no dummy span:
    // checked before the event is parsed.
    if !config.running_in_lambda {
        return None;
    }
    let xray = xray::context_from_header(invocation.context.xray_trace_id.as_deref()?)?;
    // The dummy span's parent is X-Ray's segment in either case, and a context without one is
    // incomplete: no dummy span.
    if xray.parent_id == 0 {
        return None;
    }
    let event = parse_event(&invocation.event, false);
    let source = trigger::detect(&event);
    // An event context keeps its trace id and priority (its parent becomes X-Ray's segment,
    // which lines do not show: they carry the dummy span's own id).
    let continued = extract::extract(&event, &source, &invocation.context, config)
        .filter(|context| context.source == ContextSource::Event)
        .unwrap_or(xray);
    // Complete (§5.3), the parent being X-Ray's segment, checked above.
    let complete = !continued.trace_id.is_zero() && continued.sampling_priority.is_some();
    complete.then(|| CorrelationIds {
        trace_id: continued.trace_id,
        span_id: random_id(),
        sampling_priority: continued.sampling_priority.unwrap_or(1),
    })
}

/// One invocation's ids, computed on first use.
struct Pending {
    invocation: Arc<Invocation>,
    ids: OnceLock<Option<(CorrelationIds, Correlation)>>,
}

/// The correlation-only mode: registered as a lifecycle observer instead of the trace
/// processor when tracing is off and logs injection on. Serves the exec child's line rewriter
/// and the handler library's trace-context calls.
pub struct CorrelationOnly {
    config: TraceConfig,
    /// `dd.service` of JSON lines: the `aws.lambda` span's service rule.
    service: String,
    /// Invocations whose handler is running, by request id.
    in_flight: Mutex<HashMap<String, Arc<Pending>>>,
    /// The invocation answered last (its ids are computed if a late line asks).
    last_answered: Mutex<Option<Arc<Pending>>>,
    /// Earlier answered invocations whose ids were computed, oldest first.
    earlier: Mutex<VecDeque<(String, Correlation)>>,
}

impl CorrelationOnly {
    pub fn new(config: TraceConfig, service: String) -> Self {
        Self {
            config,
            service,
            in_flight: Mutex::new(HashMap::new()),
            last_answered: Mutex::new(None),
            earlier: Mutex::new(VecDeque::new()),
        }
    }

    fn computed<'a>(&self, pending: &'a Pending) -> Option<&'a (CorrelationIds, Correlation)> {
        pending
            .ids
            .get_or_init(|| {
                let ids = correlation_ids(&pending.invocation, &self.config)?;
                let correlation = Correlation::new(
                    ids.trace_id,
                    ids.span_id,
                    &self.service,
                    self.config.env.as_deref().unwrap_or_default(),
                    self.config.version.as_deref().unwrap_or_default(),
                );
                Some((ids, correlation))
            })
            .as_ref()
    }

    /// The ids of in-flight request `request_id` (a handler library asking for its
    /// invocation's); `None` when it is not in flight or has no ids.
    pub fn ids(&self, request_id: &str) -> Option<CorrelationIds> {
        let pending = self.in_flight.lock().ok()?.get(request_id)?.clone();
        self.computed(&pending).map(|(ids, _)| *ids)
    }

    /// The ids a line of an exec child is stamped with, attributed as with tracing on
    /// (`TraceProcessor::log_correlation`): the invocation the line names, else the only one in
    /// flight, else, with none in flight, the one answered last. `None`: the line is left as it
    /// is (not attributable, or the invocation has no ids).
    pub fn log_correlation(&self, request_id: Option<&str>) -> Option<Correlation> {
        let (attributed, idle) = {
            let in_flight = self.in_flight.lock().ok()?;
            (super::logs::attributed_in_flight(&in_flight, request_id), in_flight.is_empty())
        };
        if let Some(pending) = attributed {
            return self.computed(&pending).map(|(_, correlation)| correlation.clone());
        }
        let last = self.last_answered.lock().ok()?.clone();
        if let Some(last) = last.filter(|last| request_id.is_none_or(|id| id == last.invocation.context.request_id)) {
            return match request_id {
                Some(_) => self.computed(&last).map(|(_, c)| c.clone()),
                None if idle => self.computed(&last).map(|(_, c)| c.clone()),
                None => None,
            };
        }
        let id = request_id?;
        let earlier = self.earlier.lock().ok()?;
        earlier.iter().rev().find(|(rid, _)| rid == id).map(|(_, c)| c.clone())
    }

    fn started(&self, invocation: &Arc<Invocation>) {
        let pending = Arc::new(Pending {
            invocation: invocation.clone(),
            ids: OnceLock::new(),
        });
        if let Ok(mut in_flight) = self.in_flight.lock() {
            in_flight.insert(invocation.context.request_id.clone(), pending);
        }
    }

    /// The invocation was answered: its ids stay reachable for late lines; only the last one
    /// keeps its event (to compute them), earlier ones keep the ids they computed.
    fn answered(&self, request_id: &str) {
        let Some(pending) = self.in_flight.lock().ok().and_then(|mut m| m.remove(request_id)) else {
            return;
        };
        let previous = self.last_answered.lock().ok().and_then(|mut last| last.replace(pending));
        let computed = previous.and_then(|p| {
            let correlation = p.ids.get()?.as_ref()?.1.clone();
            Some((p.invocation.context.request_id.clone(), correlation))
        });
        if let (Some(entry), Ok(mut earlier)) = (computed, self.earlier.lock()) {
            if earlier.len() == RECENT {
                earlier.pop_front();
            }
            earlier.push_back(entry);
        }
    }
}

impl LifecycleObserver for CorrelationOnly {
    fn observe<'a>(&'a self, event: &'a LifecycleEvent) -> BoxFuture<'a, ()> {
        if let LifecycleEvent::Invocation(report) = event {
            self.answered(&report.invocation.context.request_id);
        }
        Box::pin(std::future::ready(()))
    }

    fn invocation_started(&self, invocation: &Arc<Invocation>, _handler_started: Timestamp) {
        self.started(invocation);
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::config::Environment;
    use crate::runtime_api::InvocationContext;

    const XRAY: &str = "Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1";
    const XRAY_TRACE_ID: u64 = 3995693151288333088;
    const API_GATEWAY: &str = r#"{"resource": "/", "path": "/", "httpMethod": "GET", "requestContext": {"stage": "prod"},
        "headers": {"x-datadog-trace-id": "4110911582297405551", "x-datadog-parent-id": "2336172166318291498",
        "x-datadog-sampling-priority": "1"}}"#;

    fn config(in_lambda: bool) -> TraceConfig {
        let mut pairs = vec![("DD_TRACE_ENABLED", "false")];
        if in_lambda {
            pairs.push(("AWS_LAMBDA_FUNCTION_NAME", "fn"));
        }
        TraceConfig::from_env(&Environment::from_pairs(pairs))
    }

    fn invocation(request_id: &str, event: &str, xray: Option<&str>) -> Arc<Invocation> {
        Arc::new(Invocation {
            context: InvocationContext {
                request_id: request_id.into(),
                xray_trace_id: xray.map(str::to_owned),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from(event.to_owned()),
        })
    }

    #[test]
    fn the_event_trace_id_when_x_ray_is_there_else_x_ray_s() {
        let from_event = correlation_ids(&invocation("r", API_GATEWAY, Some(XRAY)), &config(true)).unwrap();
        assert_eq!(from_event.trace_id, TraceId::new(0, 4110911582297405551));
        assert_eq!(from_event.sampling_priority, 1);
        assert_ne!(from_event.span_id, 0);
        assert_ne!(from_event.span_id, 2336172166318291498, "the dummy span's own id, not the caller's");
        assert_ne!(from_event.span_id, 0x94ae789b969f1cc5, "nor the X-Ray segment's");

        let from_xray = correlation_ids(&invocation("r", r#"{"any": 1}"#, Some(XRAY)), &config(true)).unwrap();
        assert_eq!(from_xray.trace_id, TraceId::new(0, XRAY_TRACE_ID));
        assert_eq!(from_xray.sampling_priority, 2, "X-Ray's priority (always 2, §6.1)");

        let wide = API_GATEWAY.replace(
            r#""x-datadog-sampling-priority": "1""#,
            r#""x-datadog-sampling-priority": "1", "x-datadog-tags": "_dd.p.tid=66bcb5eb00000000""#,
        );
        let wide = correlation_ids(&invocation("r", &wide, Some(XRAY)), &config(true)).unwrap();
        assert_eq!(wide.trace_id, TraceId::new(0x66bcb5eb00000000, 4110911582297405551));
    }

    #[test]
    fn no_ids_without_an_x_ray_context_or_outside_lambda() {
        for xray in [
            None,
            Some("garbage"),
            Some("Root=1-5e272390-8c398be037738dc042009320;Parent=0000000000000000;Sampled=1"),
        ] {
            assert_eq!(
                correlation_ids(&invocation("r", API_GATEWAY, xray), &config(true)),
                None,
                "{xray:?}"
            );
        }
        // An X-Ray root whose trace id converts to 0 still parents the event's trace, not its own.
        let zero_root = "Root=1-5e272390-000000008000000000000000;Parent=94ae789b969f1cc5;Sampled=1";
        assert_eq!(correlation_ids(&invocation("r", "{}", Some(zero_root)), &config(true)), None);
        let from_event = correlation_ids(&invocation("r", API_GATEWAY, Some(zero_root)), &config(true)).unwrap();
        assert_eq!(from_event.trace_id.low, 4110911582297405551);
        assert_eq!(correlation_ids(&invocation("r", API_GATEWAY, Some(XRAY)), &config(false)), None);
    }

    #[test]
    fn each_invocation_gets_one_dummy_span_and_late_lines_find_it() {
        let correlation = CorrelationOnly::new(config(true), "svc".into());
        assert_eq!(correlation.log_correlation(None), None, "before any invocation");
        correlation.started(&invocation("a", "{}", Some(XRAY)));
        let a = correlation.log_correlation(None).unwrap();
        assert_eq!(a.trace_id, XRAY_TRACE_ID.to_string());
        assert_eq!(a.service, "svc");
        assert_eq!(correlation.log_correlation(Some("a")), Some(a.clone()), "decided once");
        let ids = correlation.ids("a").unwrap();
        assert_eq!(ids.span_id.to_string(), a.span_id);

        correlation.answered("a");
        assert_eq!(correlation.ids("a"), None, "no longer in flight");
        assert_eq!(correlation.log_correlation(None), Some(a.clone()), "a late line");

        correlation.started(&invocation("b", API_GATEWAY, Some(XRAY)));
        correlation.started(&invocation("c", "{}", None));
        assert_eq!(correlation.log_correlation(None), None, "two in flight, the line names neither");
        let b = correlation.log_correlation(Some("b")).unwrap();
        assert_eq!(b.trace_id, "4110911582297405551");
        assert_ne!(b.span_id, a.span_id);
        assert_eq!(correlation.log_correlation(Some("c")), None, "no X-Ray: no ids");
        assert_eq!(correlation.log_correlation(Some("a")), Some(a.clone()), "named after its answer");

        correlation.answered("b");
        correlation.answered("c");
        assert_eq!(correlation.log_correlation(Some("b")), Some(b));
        assert_eq!(correlation.log_correlation(Some("a")), Some(a));
        assert_eq!(correlation.log_correlation(None), None, "the last answered has no ids");
    }
}
