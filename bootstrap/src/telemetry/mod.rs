//! Telemetry built from lifecycle events: metrics, traces and logs.
//!
//! [`Telemetry::from_config`] builds the processors the configuration asks for; each is a
//! [`crate::lifecycle::LifecycleObserver`], so the lifecycle tells them what happened and
//! waits for their flush before it asks for the next invocation.
mod exec;
mod host;
pub mod metrics;
mod response_keys;
pub mod traces;

use std::sync::Arc;

use crate::config::Config;
use crate::handler::HostServices;
use crate::lifecycle::Observers;

pub use exec::{ExecAddresses, ExecTelemetry};
pub use host::TelemetryHost;

use self::metrics::{MetricsConfig, MetricsOutputs, MetricsProcessor};
use self::traces::{CorrelationOnly, FunctionInfo, TraceConfig, TraceProcessor, TraceSink};

/// The telemetry processors of one sandbox.
#[derive(Clone)]
pub struct Telemetry {
    pub metrics: Arc<MetricsProcessor>,
    pub traces: Option<Arc<TraceProcessor>>,
    /// With tracing off and `DD_LOGS_INJECTION` on: the ids log lines carry without a trace.
    pub correlation: Option<Arc<CorrelationOnly>>,
}

impl Telemetry {
    /// Builds every processor; call inside the tokio runtime before the handler's init, so the
    /// API key lookup runs beside it.
    pub fn from_config(config: &Config) -> Self {
        let mut metrics_config = MetricsConfig::from_env(&config.env);
        let extension_present = metrics_config.extension_present;
        let child_tells_extension = exec::function_span_left_to_extension(&config.env, extension_present, crate::handler::is_exec(config));
        metrics_config.http_errors_counted_by_extension = child_tells_extension;
        // The Extension's DogStatsD and trace agent, on the ports `DD_DOGSTATSD_PORT` and
        // `DD_APM_RECEIVER_PORT` move (8125, 8126), the same settings that move our own listeners.
        // `DD_UNIVERSAL_INSTRUMENTATION_PORT` moves 8124, where `DD_LOCAL_TEST` asks it to flush.
        let extension_ports = ExecAddresses::from_env(&config.env);
        let outputs = MetricsOutputs {
            extension_dogstatsd: metrics_config.dogstatsd_addr(),
            extension_lifecycle: extension_ports.universal_instrumentation,
            ..MetricsOutputs::default()
        };
        let extension_agent = extension_present.then_some(extension_ports.trace_agent);
        let metrics = MetricsProcessor::new(metrics_config, &config.env, outputs);
        let trace_config = TraceConfig::from_env(&config.env);
        let left_to_extension = trace_config.enabled && child_tells_extension;
        if left_to_extension {
            tracing::info!(
                "DD_UNIVERSAL_INSTRUMENTATION is on with the Datadog Extension: the child's tracer and the Extension make \
                 the aws.lambda and inferred spans, so the bootstrap sends no span and leaves the child's log lines to its tracer"
            );
        }
        // With tracing off, log lines still get the seed's correlation ids (§5.16). A child whose
        // spans are left to the Extension has tracing on: its lines keep what its tracer wrote.
        let correlation = (!trace_config.enabled && trace_config.logs_injection).then(|| {
            let service = FunctionInfo::from_config(&config.function).service(&trace_config);
            Arc::new(CorrelationOnly::new(trace_config.clone(), service))
        });
        let traces = (trace_config.enabled && !left_to_extension).then(|| {
            let sink = TraceSink::choose(&trace_config, extension_agent);
            let function = FunctionInfo::from_config(&config.function).with_handler(config.handler.clone());
            Arc::new(TraceProcessor::new(trace_config, function, sink))
        });
        Self {
            metrics,
            traces,
            correlation,
        }
    }

    /// What a handler library may ask of telemetry (pass to `handler::load`).
    pub fn host_services(&self) -> Arc<dyn HostServices> {
        Arc::new(TelemetryHost::new(self.metrics.clone(), self.traces.clone()).with_correlation(self.correlation.clone()))
    }

    /// Starts the DogStatsD listener for handlers and exec children (`127.0.0.1:DD_DOGSTATSD_PORT`)
    /// unless the Datadog Extension owns that port. A bind failure is logged and the function
    /// keeps serving without it.
    pub fn start_dogstatsd(&self) {
        let addr = self.metrics.config().dogstatsd_addr();
        match self.metrics.start_dogstatsd(addr) {
            Ok(Some(bound)) => tracing::debug!(%bound, "DogStatsD listener started"),
            Ok(None) => {}
            // Most often the Datadog Extension (or another function's bootstrap, locally) owns it.
            Err(err) => tracing::debug!("{err}; custom metrics sent over DogStatsD will not be collected by the bootstrap"),
        }
    }

    /// The lifecycle observers, traces first: their line is the cheaper one to lose at a timeout.
    pub fn observers(&self) -> Observers {
        let mut observers = Observers::default();
        if let Some(traces) = &self.traces {
            observers.push(traces.clone());
        }
        if let Some(correlation) = &self.correlation {
            observers.push(correlation.clone());
        }
        observers.push(self.metrics.clone());
        observers
    }
}
