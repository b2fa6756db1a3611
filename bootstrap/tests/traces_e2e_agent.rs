//! The trace-agent path end to end: the real `bootstrap` under the real `lambda-emulator`, with
//! `DD_TRACE_AGENT_URL` naming Datadog's APM test agent (`ddapm-test-agent` from PyPI, in the
//! workspace's `.venv`, installed by `scripts/setup-peers.sh`; `DDAPM_TEST_AGENT` overrides the
//! path). The agent checks every payload (trace count header, tracer version header, content
//! length) and the test reads the spans back from it. Then an agent that is not there: the
//! invocations are still answered and the loss is logged.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use emulator_support::get;
use serde_json::Value;
use traces_support::*;

/// The checks the agent runs on each payload the bootstrap sends.
const AGENT_CHECKS: &str = "trace_count_header,meta_tracer_version_header,trace_content_length";

struct TestAgent {
    child: Child,
    port: u16,
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl TestAgent {
    fn start() -> Self {
        let binary = std::env::var_os("DDAPM_TEST_AGENT").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/ddapm-test-agent"),
            PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} not found: run scripts/setup-peers.sh (or set DDAPM_TEST_AGENT)",
            binary.display()
        );
        let port = free_port();
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

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every trace the agent received, as spans.
    async fn traces(&self) -> Vec<Vec<Value>> {
        let reply = get(&self.url("/test/traces"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.text()))
    }

    /// Waits for the trace holding a span with this `request_id` tag.
    async fn trace_of(&self, request_id: &str) -> Vec<Value> {
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

fn named<'a>(trace: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = trace.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {trace:#?}");
    found[0]
}

#[tokio::test]
async fn the_test_agent_accepts_the_bootstraps_traces() {
    let agent = TestAgent::start();
    let agent_url = agent.url("");
    let emulator = start_traced("echo", &[], &[("DD_TRACE_AGENT_URL", &agent_url)]);

    let event: Value = serde_json::from_str(&fixture_text("api-gateway.json")).unwrap();
    let reply = invoke(&emulator, event.to_string()).await;
    assert_eq!(reply.json(), event);
    let trace = agent.trace_of(&request_id(&reply)).await;
    let inferred = named(&trace, "aws.apigateway");
    let lambda = named(&trace, "aws.lambda");
    assert_eq!(lambda["trace_id"], 12345);
    assert_eq!(inferred["trace_id"], 12345);
    assert_eq!(inferred["parent_id"], 67890, "the caller's span");
    assert_eq!(lambda["parent_id"], inferred["span_id"], "aws.lambda under the inferred span");
    assert_eq!(lambda["type"], "serverless");
    assert_eq!(lambda["meta"]["cold_start"], "true");
    assert_eq!(lambda["meta"]["_dd.origin"], "lambda");
    assert_eq!(lambda["meta"]["function_trigger.event_source"], "api-gateway");
    assert_eq!(inferred["metrics"]["_sampling_priority_v1"], 2.0);
    let load = named(&trace, "aws.lambda.load");
    assert_eq!(load["parent_id"], lambda["span_id"]);

    // A second invocation: its own trace, not a cold start.
    let reply = invoke(&emulator, r#"{"second":true}"#).await;
    let trace = agent.trace_of(&request_id(&reply)).await;
    let lambda = named(&trace, "aws.lambda");
    assert_eq!(lambda["meta"]["cold_start"], "false");
    assert_eq!(lambda["parent_id"], 0);
    assert_eq!(trace.len(), 1, "{trace:#?}");

    let failures = get(&agent.url("/test/trace_check/failures?return_all=true"), &[]).await;
    assert_eq!(failures.status, 200, "the agent's checks failed: {}", failures.text());
    let summary: Value = get(&agent.url("/test/trace_check/summary?return_all=true"), &[]).await.json();
    for check in AGENT_CHECKS.split(',') {
        assert!(
            summary[check]["Passed_Checks"].as_u64().unwrap_or(0) >= 2,
            "{check} did not pass on both payloads: {summary}"
        );
        assert_eq!(summary[check]["Failed_Checks"].as_u64().unwrap_or(0), 0, "{check}: {summary}");
    }
    assert!(trace_lines(&emulator).is_empty(), "traces go to the agent, not stdout");
}

#[tokio::test]
async fn an_unreachable_agent_loses_the_spans_but_not_the_invocations() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let emulator = start_traced("echo", &[], &[("DD_TRACE_AGENT_URL", &nobody)]);
    for n in 0..3 {
        let event = format!(r#"{{"n":{n}}}"#);
        let reply = invoke(&emulator, event.clone()).await;
        assert_eq!(reply.text(), event, "answered although the agent is not there");
    }
    let stderr = emulator
        .stderr
        .wait_for("spans are dropped", Duration::from_secs(20))
        .unwrap_or_else(|text| panic!("the lost spans were not reported:\n{text}"));
    assert!(stderr.contains(&nobody), "the message names the agent's URL:\n{stderr}");
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
    assert_eq!(stats["answers_delivered"], 3, "{stats}");
    assert!(trace_lines(&emulator).is_empty(), "no fallback to stdout");
}
