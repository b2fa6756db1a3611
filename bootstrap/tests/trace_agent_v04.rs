//! Our `/v0.4/traces` payloads against Datadog's APM test agent (`ddapm-test-agent`, from
//! PyPI): accepted, passing its checks, and read back unchanged from its session API.
//!
//! Needs the agent: `python3 -m venv .venv && .venv/bin/pip install ddapm-test-agent` at the
//! workspace root (or `DDAPM_TEST_AGENT=/path/to/ddapm-test-agent`); `scripts/setup-peers.sh` installs it.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bootstrap::config::Environment;
use bootstrap::runtime_api::InvocationContext;
use bootstrap::sinks::trace_agent::{encode_v04, CONTENT_TYPE, TRACE_COUNT_HEADER};
use bootstrap::telemetry::traces::{Completion, FunctionInfo, InvocationResult, InvocationTrace, TraceConfig};
use serde_json::Value;

struct Agent {
    child: Child,
    port: u16,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_agent() -> Agent {
    let binary = std::env::var_os("DDAPM_TEST_AGENT").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/ddapm-test-agent"),
        PathBuf::from,
    );
    assert!(
        binary.exists(),
        "{} not found: pip install ddapm-test-agent into .venv",
        binary.display()
    );
    let port = free_port();
    let child = Command::new(binary)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--otlp-http-port",
            &free_port().to_string(),
            "--otlp-grpc-port",
            &free_port().to_string(),
        ])
        .args(["--web-ui-port", &free_port().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let agent = Agent { child, port };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if request(port, "GET", "/info", &[], &[]).is_ok_and(|(status, _)| status == 200) {
            return agent;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("ddapm-test-agent did not start on port {port}");
}

/// A minimal HTTP/1.1 exchange over loopback.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let status_line = String::from_utf8_lossy(&response[..split])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut body = response[(split + 4).min(response.len())..].to_vec();
    if head_is_chunked(&response[..split]) {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn head_is_chunked(head: &[u8]) -> bool {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&body[line_end + 2..line_end + 2 + size]);
        body = &body[line_end + 2 + size + 2..];
    }
    out
}

#[test]
fn the_test_agent_accepts_our_traces() {
    let agent = start_agent();
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/fixtures/events/api-gateway.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let config = TraceConfig::from_env(&Environment::from_pairs([
        ("DD_TRACE_ENABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
    ]));
    let function = FunctionInfo {
        name: "my-fn".into(),
        ..Default::default()
    };
    let invocation = InvocationContext {
        request_id: "req-1".into(),
        invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:my-fn".into(),
        ..Default::default()
    };
    let start = 1_700_000_000_000_000_000;
    let trace = InvocationTrace::begin(event, &invocation, &config, &function, start);
    let spans = trace.finish(
        &Completion {
            result: InvocationResult::Response(br#"{"statusCode": 200}"#),
            end_ns: start + 5_000_000,
            cold_start: true,
        },
        &function,
        &config,
    );
    let payload = encode_v04(std::slice::from_ref(&spans));
    let (status, body) = request(
        agent.port,
        "PUT",
        "/v0.4/traces?test_session_token=bootstrap",
        &[
            ("Content-Type", CONTENT_TYPE),
            (TRACE_COUNT_HEADER, "1"),
            ("Datadog-Meta-Lang", "rust"),
            ("Datadog-Meta-Tracer-Version", env!("CARGO_PKG_VERSION")),
            ("X-Datadog-Test-Session-Token", "bootstrap"),
        ],
        &payload,
    )
    .unwrap();
    assert_eq!(status, 200, "agent refused the payload: {}", String::from_utf8_lossy(&body));

    let (status, body) = request(agent.port, "GET", "/test/session/traces?test_session_token=bootstrap", &[], &[]).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let traces: Value = serde_json::from_slice(&body).unwrap();
    let received = traces[0].as_array().unwrap_or_else(|| panic!("no trace read back: {traces}"));
    assert_eq!(received.len(), spans.len());
    for ours in &spans {
        let theirs = received.iter().find(|s| s["span_id"] == ours.span_id).unwrap();
        assert_eq!(theirs["name"], ours.name.as_str());
        assert_eq!(theirs["trace_id"], ours.trace_id.low);
        assert_eq!(theirs["parent_id"], ours.parent_id);
        assert_eq!(theirs["start"], ours.start_ns);
        assert_eq!(theirs["duration"], ours.duration_ns);
        assert_eq!(theirs["meta"]["_dd.origin"], "lambda");
    }
    let lambda = received.iter().find(|s| s["name"] == "aws.lambda").unwrap();
    assert_eq!(
        lambda["parent_id"],
        received.iter().find(|s| s["name"] == "aws.apigateway").unwrap()["span_id"]
    );
    assert_eq!(lambda["meta"]["http.status_code"], "200");
}
