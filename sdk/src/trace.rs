//! The invocation's Datadog trace, seen from the handler: its context, child spans, the headers
//! that continue it on outgoing calls, and the ids for log correlation (§5.16, §7).
//!
//! The bootstrap decides the trace (continuing the caller's, or starting one) and owns the
//! `aws.lambda` span; the handler only reads the ids and adds spans under it. Everything here is
//! inert when tracing is off (`DD_TRACE_ENABLED` unset or false) or outside the bootstrap: no
//! context, empty headers, spans that record nothing; only the log correlation ids remain with
//! tracing off, as in Datadog's library (zeros outside the bootstrap).
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use crate::abi::{BorrowedBytes, RawNumericTag, RawSpan, RawTag};
use crate::host::host;
use crate::Context;

/// The trace an invocation belongs to and the span a handler's work hangs under.
///
/// ```
/// let context = sdk::TraceContext { trace_id_high: 0x6b05765000000000, trace_id_low: 42, span_id: 7, sampling_priority: 1 };
/// assert_eq!(context.trace_id(), 0x6b05765000000000_000000000000002a);
/// assert_eq!(context.log_correlation().to_string(), "dd.trace_id=6b05765000000000000000000000002a dd.span_id=7");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// High 64 bits of the 128-bit trace id (0 when the caller sent a 64-bit id).
    pub trace_id_high: u64,
    /// Low 64 bits: the classic Datadog trace id (`x-datadog-trace-id`).
    pub trace_id_low: u64,
    /// The active span: the `aws.lambda` span, or the [`Span`] this context came from.
    pub span_id: u64,
    /// -1 (user reject), 0 (auto reject), 1 (auto keep), 2 (user keep).
    pub sampling_priority: i32,
}

impl TraceContext {
    /// The full 128-bit trace id.
    ///
    /// ```
    /// let context = sdk::TraceContext { trace_id_high: 1, trace_id_low: 2, span_id: 3, sampling_priority: 1 };
    /// assert_eq!(context.trace_id(), (1u128 << 64) | 2);
    /// ```
    pub fn trace_id(&self) -> u128 {
        (u128::from(self.trace_id_high) << 64) | u128::from(self.trace_id_low)
    }

    /// The ids to put on a log line, in the seed's format (§7).
    ///
    /// ```
    /// let context = sdk::TraceContext { trace_id_high: 0, trace_id_low: 8460795402960033906, span_id: 5837228094213247506, sampling_priority: 1 };
    /// assert_eq!(
    ///     context.log_correlation().to_string(),
    ///     "dd.trace_id=8460795402960033906 dd.span_id=5837228094213247506"
    /// );
    /// ```
    pub fn log_correlation(&self) -> LogCorrelation {
        let trace_id = if self.trace_id_high == 0 {
            self.trace_id_low.to_string()
        } else {
            format!("{:032x}", self.trace_id())
        };
        LogCorrelation {
            trace_id,
            span_id: self.span_id.to_string(),
        }
    }
}

/// `dd.trace_id` and `dd.span_id` for a log line, formatted as Datadog's libraries do (§7): the
/// trace id in decimal when it fits in 64 bits, else 32 lower-case hex digits; the span id in
/// decimal; both `0` when there is no trace. `Display` writes `dd.trace_id=... dd.span_id=...`;
/// put it in brackets in a text line (`[dd.trace_id=... dd.span_id=...]`, as the seed's format
/// does) or use the fields as `"dd.trace_id"`/`"dd.span_id"` keys of a JSON line.
///
/// ```
/// let ids = sdk::LogCorrelation::none();
/// assert_eq!(format!("[{ids}] hello"), "[dd.trace_id=0 dd.span_id=0] hello");
/// assert_eq!((ids.trace_id.as_str(), ids.span_id.as_str()), ("0", "0"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogCorrelation {
    /// The `dd.trace_id` value.
    pub trace_id: String,
    /// The `dd.span_id` value.
    pub span_id: String,
}

impl LogCorrelation {
    /// No active trace: both ids are `0`.
    ///
    /// ```
    /// assert_eq!(sdk::LogCorrelation::none().to_string(), "dd.trace_id=0 dd.span_id=0");
    /// ```
    pub fn none() -> Self {
        Self {
            trace_id: "0".to_owned(),
            span_id: "0".to_owned(),
        }
    }
}

impl fmt::Display for LogCorrelation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dd.trace_id={} dd.span_id={}", self.trace_id, self.span_id)
    }
}

/// Tracing calls on the invocation's context.
impl Context {
    /// The invocation's trace context, parented on its `aws.lambda` span; `None` when tracing
    /// is off or outside the bootstrap. The first call decides the trace (reading the event's
    /// propagation headers); later calls, and the `aws.lambda` span sent after the response,
    /// carry the same ids.
    ///
    /// ```
    /// let context = sdk::Context::default();
    /// assert_eq!(context.trace(), None); // no bootstrap here
    /// ```
    pub fn trace(&self) -> Option<TraceContext> {
        let raw = host()?.trace_context(&self.request_id)?;
        Some(TraceContext {
            trace_id_high: raw.trace_id_high,
            trace_id_low: raw.trace_id_low,
            span_id: raw.span_id,
            sampling_priority: raw.sampling_priority,
        })
    }

    /// Headers to put on an outgoing HTTP call so the callee continues this trace under the
    /// `aws.lambda` span: `x-datadog-trace-id`, `x-datadog-parent-id`,
    /// `x-datadog-sampling-priority`, `x-datadog-tags`, `traceparent`, `tracestate` (the styles
    /// of `DD_TRACE_PROPAGATION_STYLE_INJECT`). Empty when tracing is off or outside the
    /// bootstrap. Use [`Span::trace_headers`] to parent the callee on a span of yours.
    ///
    /// ```
    /// assert!(sdk::Context::default().trace_headers().is_empty());
    /// ```
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        host().map_or_else(Vec::new, |host| host.trace_headers(&self.request_id, 0))
    }

    /// The ids to put on the handler's log lines (see [`LogCorrelation`]): the trace's, or with
    /// tracing off (and `DD_LOGS_INJECTION` on) the correlation ids Datadog's library gives log
    /// lines without a trace (the invocation's X-Ray trace, or the trace id its event carried);
    /// zeros when there are none.
    ///
    /// ```
    /// let context = sdk::Context::default();
    /// println!("[{}] order placed", context.log_correlation());
    /// assert_eq!(context.log_correlation(), sdk::LogCorrelation::none());
    /// ```
    pub fn log_correlation(&self) -> LogCorrelation {
        let ids = host().and_then(|host| host.log_correlation(&self.request_id));
        ids.map_or_else(LogCorrelation::none, |raw| {
            TraceContext {
                trace_id_high: raw.trace_id_high,
                trace_id_low: raw.trace_id_low,
                span_id: raw.span_id,
                sampling_priority: raw.sampling_priority,
            }
            .log_correlation()
        })
    }

    /// Starts a child span of the `aws.lambda` span, named `name` (the operation, e.g.
    /// `dynamodb.query`). Set its resource, service, type and tags with the builder methods; it
    /// is finished (timed and sent with the invocation's trace) when dropped or on
    /// [`Span::finish`]. Without a trace it records nothing.
    ///
    /// ```
    /// let context = sdk::Context::default();
    /// {
    ///     let _span = context.span("db.query").resource("SELECT orders").span_type("sql").tag("db.system", "postgresql");
    ///     // ... the work being timed ...
    /// } // finished here
    /// let span = context.span("cache.get");
    /// assert!(!span.is_recording()); // no bootstrap here
    /// span.finish();
    /// ```
    pub fn span(&self, name: &str) -> Span {
        let Some(trace) = self.trace() else {
            return Span::inert();
        };
        Span::start(self.request_id.clone(), trace, trace.span_id, name)
    }
}

/// A span the handler times, sent in the invocation's trace when finished (on drop or
/// [`Span::finish`]). Builder methods take and return the span so a span can be set up in one
/// expression; the `set_*` methods change it later.
///
/// ```
/// let context = sdk::Context::default();
/// let mut span = context.span("payment.charge").service("payments").tag("currency", "EUR").metric("amount", 12.5);
/// let child = span.child("http.request").span_type("http");
/// if let Err(reason) = "charge refused".parse::<u32>() {
///     span.set_error("ParseIntError", &reason.to_string());
/// }
/// child.finish();
/// assert!(span.context().is_none()); // no trace outside the bootstrap
/// ```
#[must_use = "a span is timed until it is dropped: bind it to a variable (`let _span = ...`)"]
pub struct Span {
    state: Option<Recording>,
}

struct Recording {
    request_id: String,
    trace: TraceContext,
    span_id: u64,
    parent_id: u64,
    name: String,
    resource: String,
    service: String,
    span_type: String,
    start_ns: i64,
    started: Instant,
    error: bool,
    meta: Vec<(String, String)>,
    metrics: Vec<(String, f64)>,
}

impl Span {
    fn inert() -> Self {
        Self { state: None }
    }

    fn start(request_id: String, trace: TraceContext, parent_id: u64, name: &str) -> Self {
        let start_ns = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Self {
            state: Some(Recording {
                request_id,
                trace,
                span_id: new_span_id(),
                parent_id,
                name: name.to_owned(),
                resource: String::new(),
                service: String::new(),
                span_type: String::new(),
                start_ns,
                started: Instant::now(),
                error: false,
                meta: Vec::new(),
                metrics: Vec::new(),
            }),
        }
    }

    /// Whether the span will be sent (there is a trace to send it in).
    ///
    /// ```
    /// assert!(!sdk::Context::default().span("x").is_recording());
    /// ```
    pub fn is_recording(&self) -> bool {
        self.state.is_some()
    }

    /// The resource (what the operation acted on: a query, a route); the name when unset.
    ///
    /// ```
    /// let _span = sdk::Context::default().span("db.query").resource("SELECT 1");
    /// ```
    pub fn resource(mut self, resource: &str) -> Self {
        self.set_resource(resource);
        self
    }

    /// The service; the function's service (`DD_SERVICE`, else the bootstrap's default) when unset.
    ///
    /// ```
    /// let _span = sdk::Context::default().span("db.query").service("orders-db");
    /// ```
    pub fn service(mut self, service: &str) -> Self {
        if let Some(state) = &mut self.state {
            service.clone_into(&mut state.service);
        }
        self
    }

    /// The span type (`db`, `http`, `cache`, `sql`, `web`...).
    ///
    /// ```
    /// let _span = sdk::Context::default().span("db.query").span_type("db");
    /// ```
    pub fn span_type(mut self, span_type: &str) -> Self {
        if let Some(state) = &mut self.state {
            span_type.clone_into(&mut state.span_type);
        }
        self
    }

    /// Adds a string tag.
    ///
    /// ```
    /// let _span = sdk::Context::default().span("db.query").tag("db.system", "dynamodb");
    /// ```
    pub fn tag(mut self, key: &str, value: &str) -> Self {
        self.set_tag(key, value);
        self
    }

    /// Adds a numeric tag (a span metric); non-finite values are dropped.
    ///
    /// ```
    /// let _span = sdk::Context::default().span("db.query").metric("db.row_count", 3.0);
    /// ```
    pub fn metric(mut self, key: &str, value: f64) -> Self {
        self.set_metric(key, value);
        self
    }

    /// Changes the resource.
    ///
    /// ```
    /// let mut span = sdk::Context::default().span("http.request");
    /// span.set_resource("GET /orders");
    /// ```
    pub fn set_resource(&mut self, resource: &str) {
        if let Some(state) = &mut self.state {
            resource.clone_into(&mut state.resource);
        }
    }

    /// Adds (or replaces) a string tag.
    ///
    /// ```
    /// let mut span = sdk::Context::default().span("http.request");
    /// span.set_tag("http.status_code", "200");
    /// ```
    pub fn set_tag(&mut self, key: &str, value: &str) {
        if let Some(state) = &mut self.state {
            state.meta.retain(|(k, _)| k != key);
            state.meta.push((key.to_owned(), value.to_owned()));
        }
    }

    /// Adds (or replaces) a numeric tag; non-finite values are dropped.
    ///
    /// ```
    /// let mut span = sdk::Context::default().span("batch");
    /// span.set_metric("items", 10.0);
    /// ```
    pub fn set_metric(&mut self, key: &str, value: f64) {
        if let Some(state) = self.state.as_mut().filter(|_| value.is_finite()) {
            state.metrics.retain(|(k, _)| k != key);
            state.metrics.push((key.to_owned(), value));
        }
    }

    /// Marks the span as failed, with Datadog's `error.type` and `error.message` tags.
    ///
    /// ```
    /// let mut span = sdk::Context::default().span("payment.charge");
    /// span.set_error("CardDeclined", "insufficient funds");
    /// ```
    pub fn set_error(&mut self, error_type: &str, message: &str) {
        if self.state.is_some() {
            self.set_tag("error.type", error_type);
            self.set_tag("error.message", message);
            if let Some(state) = &mut self.state {
                state.error = true;
            }
        }
    }

    /// Starts a span under this one (same trace, this span as parent).
    ///
    /// ```
    /// let parent = sdk::Context::default().span("checkout");
    /// let child = parent.child("inventory.reserve");
    /// assert!(!child.is_recording());
    /// ```
    pub fn child(&self, name: &str) -> Span {
        match &self.state {
            Some(state) => Span::start(state.request_id.clone(), state.trace, state.span_id, name),
            None => Span::inert(),
        }
    }

    /// The trace context with this span active (its id as `span_id`); `None` without a trace.
    ///
    /// ```
    /// assert!(sdk::Context::default().span("x").context().is_none());
    /// ```
    pub fn context(&self) -> Option<TraceContext> {
        self.state.as_ref().map(|state| TraceContext {
            span_id: state.span_id,
            ..state.trace
        })
    }

    /// The request id of the invocation this span belongs to, and the trace context with this
    /// span active: what `sdk::logging::in_span` makes current. `None` without a trace.
    pub(crate) fn invocation_context(&self) -> Option<(&str, TraceContext)> {
        let state = self.state.as_ref()?;
        Some((
            state.request_id.as_str(),
            TraceContext {
                span_id: state.span_id,
                ..state.trace
            },
        ))
    }

    /// The ids of this span for a log line; zeros without a trace.
    ///
    /// ```
    /// assert_eq!(sdk::Context::default().span("x").log_correlation(), sdk::LogCorrelation::none());
    /// ```
    pub fn log_correlation(&self) -> LogCorrelation {
        self.context().map_or_else(LogCorrelation::none, |c| c.log_correlation())
    }

    /// Propagation headers that make the callee of an outgoing call a child of this span (see
    /// [`Context::trace_headers`]); empty without a trace.
    ///
    /// ```
    /// assert!(sdk::Context::default().span("http.request").trace_headers().is_empty());
    /// ```
    pub fn trace_headers(&self) -> Vec<(String, String)> {
        match (&self.state, host()) {
            (Some(state), Some(host)) => host.trace_headers(&state.request_id, state.span_id),
            _ => Vec::new(),
        }
    }

    /// Ends the span now and sends it with the invocation's trace. Dropping the span does the
    /// same; this makes the end explicit.
    ///
    /// ```
    /// sdk::Context::default().span("x").finish();
    /// ```
    pub fn finish(mut self) {
        self.send();
    }

    fn send(&mut self) {
        let (Some(state), Some(host)) = (self.state.take(), host()) else {
            return;
        };
        let duration_ns = i64::try_from(state.started.elapsed().as_nanos()).unwrap_or(i64::MAX);
        let meta: Vec<RawTag> = state
            .meta
            .iter()
            .map(|(k, v)| RawTag {
                key: BorrowedBytes::from_slice(k.as_bytes()),
                value: BorrowedBytes::from_slice(v.as_bytes()),
            })
            .collect();
        let metrics: Vec<RawNumericTag> = state
            .metrics
            .iter()
            .map(|(k, v)| RawNumericTag {
                key: BorrowedBytes::from_slice(k.as_bytes()),
                value: *v,
            })
            .collect();
        let raw = RawSpan {
            span_id: state.span_id,
            parent_id: state.parent_id,
            name: BorrowedBytes::from_slice(state.name.as_bytes()),
            resource: BorrowedBytes::from_slice(state.resource.as_bytes()),
            service: BorrowedBytes::from_slice(state.service.as_bytes()),
            span_type: BorrowedBytes::from_slice(state.span_type.as_bytes()),
            start_ns: state.start_ns,
            duration_ns,
            error: i32::from(state.error),
            meta: meta.as_ptr(),
            meta_len: meta.len(),
            metrics: metrics.as_ptr(),
            metrics_len: metrics.len(),
        };
        // A span the host cannot place (its trace already went out at a timeout) is dropped:
        // nothing the handler could do about it.
        let _ = host.finish_span(&state.request_id, &raw);
    }
}

#[cfg(test)]
impl Span {
    /// A recording span without a host, for the logging tests.
    pub(crate) fn recording_for_tests(request_id: &str, trace: TraceContext, name: &str) -> Self {
        Self::start(request_id.to_owned(), trace, trace.span_id, name)
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        self.send();
    }
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            Some(state) => f
                .debug_struct("Span")
                .field("name", &state.name)
                .field("span_id", &state.span_id)
                .field("parent_id", &state.parent_id)
                .finish_non_exhaustive(),
            None => f.write_str("Span(not recording)"),
        }
    }
}

/// A non-zero random 64-bit span id. std's `RandomState` is seeded from the OS once per thread
/// and advanced for each instance; mixing in a process-wide counter and the time keeps ids
/// distinct across threads without a `rand` dependency in every handler library.
fn new_span_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        let id = hasher.finish();
        if id != 0 {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_ids_are_non_zero_and_distinct() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| new_span_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(!ids.contains(&0));
    }

    #[test]
    fn a_recording_span_keeps_its_tags_and_parent() {
        let trace = TraceContext {
            trace_id_high: 0,
            trace_id_low: 5,
            span_id: 9,
            sampling_priority: 1,
        };
        let mut span = Span::start("req".into(), trace, 9, "work")
            .tag("a", "1")
            .tag("a", "2")
            .metric("n", f64::NAN);
        span.set_error("E", "m");
        let child = span.child("inner");
        let state = span.state.as_ref().unwrap();
        assert_eq!(
            state.meta,
            vec![
                ("a".into(), "2".into()),
                ("error.type".into(), "E".into()),
                ("error.message".into(), "m".into())
            ]
        );
        assert!(state.metrics.is_empty());
        assert!(state.error);
        assert_eq!(child.state.as_ref().unwrap().parent_id, state.span_id);
        assert_eq!(span.context().unwrap().span_id, state.span_id);
        assert_eq!(span.context().unwrap().trace_id_low, 5);
    }
}
