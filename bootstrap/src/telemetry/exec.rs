//! Telemetry for an exec child, started before the child: its log lines stamped with the
//! invocation's trace ids, Datadog's endpoints its tracer talks to, and the variable that makes
//! its tracer use them. (DogStatsD, which serves every handler, is `Telemetry::start_dogstatsd`.)
use std::net::SocketAddr;
use std::sync::Arc;

use super::traces::listeners::{ChildTracerEndpoints, TRACE_AGENT_ADDR, UNIVERSAL_INSTRUMENTATION_ADDR};
use super::traces::log_rewriter::TraceLogRewriter;
use super::Telemetry;
use crate::config::Environment;
use crate::handler::exec::output::OutputConfig;

/// Where the exec endpoints listen (the Extension's ports in production; tests pick others).
#[derive(Clone, Copy, Debug)]
pub struct ExecAddresses {
    pub universal_instrumentation: SocketAddr,
    pub trace_agent: SocketAddr,
}

impl Default for ExecAddresses {
    fn default() -> Self {
        Self {
            universal_instrumentation: UNIVERSAL_INSTRUMENTATION_ADDR,
            trace_agent: TRACE_AGENT_ADDR,
        }
    }
}

impl ExecAddresses {
    /// The Datadog Agent's own setting `DD_APM_RECEIVER_PORT` moves the trace agent;
    /// `DD_UNIVERSAL_INSTRUMENTATION_PORT` moves 8124 (tracers only know 8124: it exists for
    /// tests). Invalid values keep the default.
    pub fn from_env(env: &Environment) -> Self {
        let port = |name: &str, default: SocketAddr| {
            env.non_empty(name)
                .and_then(|v| v.trim().parse::<u16>().ok())
                .map_or(default, |port| SocketAddr::new(default.ip(), port))
        };
        Self {
            universal_instrumentation: port("DD_UNIVERSAL_INSTRUMENTATION_PORT", UNIVERSAL_INSTRUMENTATION_ADDR),
            trace_agent: port("DD_APM_RECEIVER_PORT", TRACE_AGENT_ADDR),
        }
    }
}

/// What runs for an exec child; keep it alive as long as the child (dropping it stops the
/// trace endpoints).
pub struct ExecTelemetry {
    /// How the child is started: its output's rewriter and extra environment.
    pub output: OutputConfig,
    pub endpoints: Option<ChildTracerEndpoints>,
}

impl Telemetry {
    /// Starts what an exec child needs with tracing on: the universal-instrumentation and
    /// trace-agent endpoints, and logs injection. A port already taken is logged and skipped.
    /// With tracing off, or with the Datadog Extension (which owns those ports), no endpoint is
    /// started (with tracing off, logs injection uses the correlation-only ids); the child's
    /// output is watched for OOM messages with enhanced metrics on.
    pub async fn start_exec(&self, env: &Environment, addresses: ExecAddresses) -> ExecTelemetry {
        let mut output = OutputConfig::default();
        // The child's OOM messages count in out_of_memory (tracing on or off).
        if let Some(watch) = self.metrics.output_watch() {
            output = output.with_watch(watch);
        }
        let Some(traces) = &self.traces else {
            // Tracing off: the lines still carry the seed's correlation ids, if logs injection is on.
            if let Some(correlation) = &self.correlation {
                output = output.with_rewriter(Arc::new(TraceLogRewriter::new(correlation.clone())));
            }
            return ExecTelemetry { output, endpoints: None };
        };
        if traces.config().logs_injection {
            output = output.with_rewriter(Arc::new(TraceLogRewriter::new(traces.clone())));
        }
        if self.metrics.config().extension_present {
            // Ports 8124 and 8126 are the Extension's: binding them first (Lambda starts the
            // runtime and the extensions side by side) would take them from it. The child's
            // tracer talks to the Extension, as in any function with it.
            return ExecTelemetry { output, endpoints: None };
        }
        let endpoints = ChildTracerEndpoints::start(traces.clone(), addresses.universal_instrumentation, addresses.trace_agent).await;
        if let Some(agent) = endpoints.agent {
            output = output.with_child_env(child_tracer_env(env, agent));
        }
        ExecTelemetry {
            output,
            endpoints: Some(endpoints),
        }
    }
}

/// Whether the invocation's `aws.lambda` and inferred spans are the Datadog Extension's to
/// create, not ours: with the Extension present, an exec child, and `DD_UNIVERSAL_INSTRUMENTATION`
/// on (datadog-lambda-go's name for "the Extension makes the function span").
///
/// A tracer doing Datadog's universal instrumentation (dd-trace-java, dd-trace-dotnet,
/// datadog-lambda-go with that setting, datadog-lambda-rb, datadog-lambda-rs) calls the
/// Extension's `/lambda/start-invocation` and `/lambda/end-invocation` on 127.0.0.1:8124, a port
/// only the Extension may bind, and the Extension then creates its own `aws.lambda` and inferred
/// spans for every invocation, parenting the tracer's spans under them. Ours would be a second
/// copy in the same trace, so the user tells us to send none (and to leave the child's log lines
/// to its tracer, whose ids are the ones sent). A handler library has no such tracer: there the
/// spans stay ours whatever the setting says.
pub(super) fn function_span_left_to_extension(env: &Environment, extension_present: bool, is_exec: bool) -> bool {
    extension_present && is_exec && env.flag("DD_UNIVERSAL_INSTRUMENTATION", false)
}

/// Datadog's tracers write traces to stdout in Lambda unless they are told where an agent is
/// (`DD_TRACE_AGENT_URL`, `DD_AGENT_HOST`; ddtrace's `_use_log_writer`, dd-trace-js's exporter
/// choice) or find the Extension's file. The documented switch is the variable: the child gets
/// `DD_TRACE_AGENT_URL` naming our endpoint, unless the user set one of them.
fn child_tracer_env(env: &Environment, agent: SocketAddr) -> Vec<(String, String)> {
    let user_chose = ["DD_TRACE_AGENT_URL", "DD_AGENT_HOST", "DATADOG_TRACE_AGENT_HOSTNAME"]
        .iter()
        .any(|name| env.non_empty(name).is_some());
    if user_chose {
        return Vec::new();
    }
    vec![("DD_TRACE_AGENT_URL".to_owned(), format!("http://{agent}"))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_child_is_pointed_at_our_agent_unless_the_user_chose_one() {
        let agent: SocketAddr = "127.0.0.1:8126".parse().unwrap();
        assert_eq!(
            child_tracer_env(&Environment::default(), agent),
            [("DD_TRACE_AGENT_URL".to_owned(), "http://127.0.0.1:8126".to_owned())]
        );
        let moved = ExecAddresses::from_env(&Environment::from_pairs([
            ("DD_APM_RECEIVER_PORT", "9126"),
            ("DD_UNIVERSAL_INSTRUMENTATION_PORT", "x"),
        ]));
        assert_eq!(moved.trace_agent.to_string(), "127.0.0.1:9126");
        assert_eq!(moved.universal_instrumentation, UNIVERSAL_INSTRUMENTATION_ADDR);
        let chosen = Environment::from_pairs([("DD_AGENT_HOST", "10.0.0.1")]);
        assert!(child_tracer_env(&chosen, agent).is_empty());
    }

    #[test]
    fn only_an_exec_child_with_the_extension_and_the_setting_leaves_the_function_span_to_it() {
        let on = Environment::from_pairs([("DD_UNIVERSAL_INSTRUMENTATION", "true")]);
        assert!(function_span_left_to_extension(&on, true, true));
        assert!(
            !function_span_left_to_extension(&on, false, true),
            "without the Extension, 8124 is ours"
        );
        assert!(
            !function_span_left_to_extension(&on, true, false),
            "a handler library has no child tracer"
        );
        let off = Environment::from_pairs([("DD_UNIVERSAL_INSTRUMENTATION", "false")]);
        assert!(!function_span_left_to_extension(&off, true, true));
        assert!(!function_span_left_to_extension(&Environment::default(), true, true));
    }
}
