//! What a handler may ask of the bootstrap while it runs: send a custom metric, read its
//! invocation's trace context, add a span to that trace, get propagation headers, replace the
//! API key. Telemetry implements it (`telemetry::TelemetryHost`); the dylib loader exposes it to
//! the library through `sdk::abi::HostApi` (see [`super::host_api`]).
use crate::telemetry::metrics::custom::CustomMetricError;
use crate::telemetry::metrics::MetricValue;
use crate::telemetry::traces::Span;

/// The ids a handler continues: the invocation's trace, parented on its `aws.lambda` span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveTraceContext {
    pub trace_id_high: u64,
    pub trace_id_low: u64,
    /// The `aws.lambda` span's id.
    pub span_id: u64,
    pub sampling_priority: i32,
}

/// The host side of the handler's telemetry calls. Implementations are called from the
/// handler's threads, concurrently, and must be cheap and never block on I/O.
pub trait HostServices: Send + Sync + 'static {
    /// The seed's `lambda_metric`: validated, then kept for the flush after the response.
    fn metric(&self, name: &str, value: MetricValue, tags: &[String], timestamp: Option<f64>) -> Result<(), CustomMetricError>;

    /// The trace of the invocation `request_id`, decided on the first call; `None` when tracing
    /// is off or the request is not in flight.
    fn trace_context(&self, request_id: &str) -> Option<ActiveTraceContext>;

    /// When there is no trace (tracing off) but logs injection is on: the ids the invocation's
    /// log lines carry (the seed's dummy span, §5.16), which no span continues. Asked only when
    /// [`Self::trace_context`] has none; `None` (the default) when there are none either.
    fn log_correlation(&self, _request_id: &str) -> Option<ActiveTraceContext> {
        None
    }

    /// Propagation headers continuing `request_id`'s trace, parented on `parent_span_id`
    /// (`None`: the `aws.lambda` span); `None` when there is no trace.
    fn trace_headers(&self, request_id: &str, parent_span_id: Option<u64>) -> Option<Vec<(String, String)>>;

    /// Adds a finished span (its trace id is the host's) to `request_id`'s trace; `false` when
    /// there is no trace to add it to.
    fn finish_span(&self, request_id: &str, span: Span) -> bool;

    /// Replaces the Datadog API key from the next flush on.
    fn set_api_key(&self, key: &str);
}
