//! The endpoints an exec child's own tracer talks to when no Datadog Extension runs: the
//! universal-instrumentation API on 127.0.0.1:8124 ([`universal`]) and a trace agent on
//! 127.0.0.1:8126 ([`agent`]). Both only feed the [`TraceProcessor`]: spans end up in the
//! invocation's trace, shipped by its sink.
pub mod agent;
pub mod http;
pub mod msgpack;
pub mod placeholder;
pub mod universal;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::TraceProcessor;

/// The Extension's ports, which tracers use by default.
pub const UNIVERSAL_INSTRUMENTATION_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8124);
pub const TRACE_AGENT_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8126);

/// The running endpoints; they stop when this is dropped.
#[derive(Default)]
pub struct ChildTracerEndpoints {
    /// Where `/lambda/*` is served, when the port could be bound.
    pub universal: Option<SocketAddr>,
    /// Where the trace agent is served, when the port could be bound.
    pub agent: Option<SocketAddr>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ChildTracerEndpoints {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ChildTracerEndpoints {
    /// Binds both endpoints (the Extension's ports in production). A port already taken is
    /// logged and skipped: the function keeps serving, without that endpoint.
    pub async fn start(traces: Arc<TraceProcessor>, universal_addr: SocketAddr, agent_addr: SocketAddr) -> Self {
        let mut endpoints = Self::default();
        match http::bind(universal_addr).await {
            Ok(listener) => {
                endpoints.universal = listener.local_addr().ok();
                let traces = traces.clone();
                endpoints.tasks.push(http::serve(listener, universal::BODY_LIMIT, move |request| {
                    std::future::ready(universal::handle(&traces, &request))
                }));
            }
            Err(err) => tracing::warn!(
                addr = %universal_addr,
                "cannot serve Datadog's universal instrumentation API ({err}); is the Datadog Extension running? Child tracers will not get the invocation's context from it"
            ),
        }
        match http::bind(agent_addr).await {
            Ok(listener) => {
                endpoints.agent = listener.local_addr().ok();
                endpoints.tasks.push(http::serve(listener, agent::BODY_LIMIT, move |request| {
                    agent::handle(traces.clone(), request)
                }));
            }
            Err(err) => tracing::warn!(
                addr = %agent_addr,
                "cannot serve a trace agent for the function's tracer ({err}); is the Datadog Extension running? Its spans will not join the invocation's trace"
            ),
        }
        endpoints
    }
}
