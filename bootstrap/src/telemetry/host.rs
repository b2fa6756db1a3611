//! The telemetry behind a handler library's host API: custom metrics go to the metrics
//! processor, trace calls to the trace processor's in-flight invocations.
use std::sync::Arc;

use super::metrics::custom::CustomMetricError;
use super::metrics::{MetricValue, MetricsProcessor};
use super::traces::{CorrelationOnly, Span, TraceProcessor};
use crate::api_key::ApiKey;
use crate::handler::{ActiveTraceContext, HostServices};

/// [`HostServices`] over the sandbox's processors; tracing calls find no trace when
/// `DD_TRACE_ENABLED` is off (`traces` is `None`), only the log correlation ids of
/// `correlation` when logs injection is on.
pub struct TelemetryHost {
    metrics: Arc<MetricsProcessor>,
    traces: Option<Arc<TraceProcessor>>,
    correlation: Option<Arc<CorrelationOnly>>,
}

impl TelemetryHost {
    pub fn new(metrics: Arc<MetricsProcessor>, traces: Option<Arc<TraceProcessor>>) -> Self {
        Self {
            metrics,
            traces,
            correlation: None,
        }
    }

    /// Adds the correlation-only ids (tracing off, logs injection on).
    #[must_use]
    pub fn with_correlation(mut self, correlation: Option<Arc<CorrelationOnly>>) -> Self {
        self.correlation = correlation;
        self
    }
}

impl HostServices for TelemetryHost {
    fn metric(&self, name: &str, value: MetricValue, tags: &[String], timestamp: Option<f64>) -> Result<(), CustomMetricError> {
        let result = self.metrics.lambda_metric(name, value, tags, timestamp);
        if let Err(error) = &result {
            // The seed's warning, for handlers that ignore the sdk's `Err`.
            tracing::warn!("{error}");
        }
        result
    }

    fn trace_context(&self, request_id: &str) -> Option<ActiveTraceContext> {
        let context = self.traces.as_ref()?.child_context(request_id)?;
        Some(ActiveTraceContext {
            trace_id_high: context.trace_id.high,
            trace_id_low: context.trace_id.low,
            span_id: context.parent_id,
            sampling_priority: context.sampling_priority.unwrap_or(1),
        })
    }

    fn log_correlation(&self, request_id: &str) -> Option<ActiveTraceContext> {
        let ids = self.correlation.as_ref()?.ids(request_id)?;
        Some(ActiveTraceContext {
            trace_id_high: ids.trace_id.high,
            trace_id_low: ids.trace_id.low,
            span_id: ids.span_id,
            sampling_priority: ids.sampling_priority,
        })
    }

    fn trace_headers(&self, request_id: &str, parent_span_id: Option<u64>) -> Option<Vec<(String, String)>> {
        self.traces.as_ref()?.injection_headers(request_id, parent_span_id)
    }

    fn finish_span(&self, request_id: &str, span: Span) -> bool {
        self.traces.as_ref().is_some_and(|traces| traces.adopt_span(request_id, span))
    }

    fn set_api_key(&self, key: &str) {
        self.metrics.override_api_key(ApiKey::new(key));
    }
}
