//! Datadog's APM test agent (pip `ddapm-test-agent`) as a real trace agent on 127.0.0.1, for
//! the tests that send it traces. Include with `#[path = "common/test_agent.rs"] mod test_agent;`
//! beside `emulator_support`.
#![allow(dead_code)]
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator_support::get;

/// The checks the agent runs on each payload the bootstrap sends.
pub const AGENT_CHECKS: &str = "trace_count_header,meta_tracer_version_header,trace_content_length";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct TestAgent {
    child: Child,
    pub port: u16,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestAgent {
    /// On a free port.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// On `port`.
    pub fn start_on(port: u16) -> Self {
        let binary = std::env::var_os("DDAPM_TEST_AGENT").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/ddapm-test-agent"),
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} not found: run scripts/setup-peers.sh (or set DDAPM_TEST_AGENT)",
            binary.display()
        );
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--otlp-http-port", &free_port().to_string()])
            .args(["--otlp-grpc-port", &free_port().to_string()])
            .args(["--web-ui-port", &free_port().to_string()])
            .env("ENABLED_CHECKS", AGENT_CHECKS)
            .env("DD_POOL_TRACE_CHECK_FAILURES", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let agent = TestAgent { child, port };
        let deadline = Instant::now() + Duration::from_mins(1);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "ddapm-test-agent never listened on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every trace the agent received, as spans.
    pub async fn traces(&self) -> Vec<Vec<Value>> {
        let reply = get(&self.url("/test/traces"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text()))
    }

    /// Waits for the trace holding a span with this `request_id` tag.
    pub async fn trace_of(&self, request_id: &str) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let traces = self.traces().await;
            let found = traces
                .into_iter()
                .find(|trace| trace.iter().any(|span| span["meta"]["request_id"] == request_id));
            if let Some(trace) = found {
                return trace;
            }
            assert!(Instant::now() < deadline, "the agent never received the trace of {request_id}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
