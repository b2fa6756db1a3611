//! Exec-mode telemetry through the real `lambda-emulator` + `bootstrap` + a Python child under
//! awslambdaric: logs injection on the child's lines, the child's own tracer (ddtrace) joining
//! the invocation's trace through the bootstrap's trace agent, the universal-instrumentation
//! endpoints, and DogStatsD datagrams from the child.
//!
//! The endpoints listen on free ports chosen by the test (`DD_DOGSTATSD_PORT`,
//! `DD_APM_RECEIVER_PORT`, `DD_UNIVERSAL_INSTRUMENTATION_PORT`), so tests can run side by side.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use std::time::Duration;

use emulator_support::{post, EmulatorProcess};
use serde_json::{json, Value};
use traces_support::{parse_trace_line, request_id, span, trace_lines, trace_of, WireSpan};

fn python() -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python3");
    assert!(python.exists(), "{} is missing: run scripts/setup-peers.sh", python.display());
    python.display().to_string()
}

fn task_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec_telemetry")
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Function {
    emulator: EmulatorProcess,
    universal_port: u16,
    agent_port: u16,
}

/// The bootstrap serving `<module>.handler` under awslambdaric, tracing on, lines to stdout.
fn start(module: &str, env: &[(&str, &str)]) -> Function {
    let (universal_port, agent_port, statsd_port) = (free_tcp_port(), free_tcp_port(), free_udp_port());
    let mut pairs: Vec<(String, String)> = vec![
        ("DD_LAMBDA_HANDLER".into(), format!("{} -m awslambdaric {module}.handler", python())),
        ("DD_TRACE_ENABLED".into(), "true".into()),
        ("DD_FLUSH_TO_LOG".into(), "true".into()),
        ("DD_ENHANCED_METRICS".into(), "false".into()),
        ("DD_UNIVERSAL_INSTRUMENTATION_PORT".into(), universal_port.to_string()),
        ("DD_APM_RECEIVER_PORT".into(), agent_port.to_string()),
        ("DD_DOGSTATSD_PORT".into(), statsd_port.to_string()),
    ];
    pairs.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let env_flags: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut flags = vec!["--function-name", "py-fn", "--timeout", "30"];
    for pair in &env_flags {
        flags.extend(["--env", pair.as_str()]);
    }
    let emulator = EmulatorProcess::start_in(&task_root(), &flags, &[env!("CARGO_BIN_EXE_bootstrap")]);
    Function {
        emulator,
        universal_port,
        agent_port,
    }
}

/// `dd.trace_id` as §7 writes it for this span's trace: 32 hex digits for a 128-bit id.
fn log_trace_id(lambda: &WireSpan) -> String {
    match lambda.meta("_dd.p.tid") {
        Some(high) => format!("{high}{:016x}", lambda.trace_id),
        None => lambda.trace_id.to_string(),
    }
}

fn stdout_lines(function: &Function) -> Vec<String> {
    function.emulator.stdout.text().lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn child_lines_carry_the_invocation_trace_ids() {
    let function = start("logs_handler", &[]);
    let reply = function.emulator.invoke(r#"{"n": 1}"#).await;
    assert_eq!(reply.json(), json!({"ok": true}), "{}", function.emulator.stderr.text());
    let spans = trace_of(&function.emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    let marker = format!("[dd.trace_id={} dd.span_id={}]", log_trace_id(lambda), lambda.span_id);
    let emulator = &function.emulator;
    emulator.stdout.wait_for("through logging", Duration::from_secs(10)).unwrap();
    emulator.stderr.wait_for("stderr line", Duration::from_secs(10)).unwrap();
    let lines = stdout_lines(&function);

    assert!(lines.contains(&format!("{marker} plain text line")), "{lines:#?}");
    let json_line = lines.iter().find(|l| l.contains("json line")).unwrap();
    let parsed: Value = serde_json::from_str(json_line).unwrap_or_else(|e| panic!("{e}: {json_line}"));
    assert_eq!(parsed["msg"], "json line");
    assert_eq!(parsed["dd.trace_id"], log_trace_id(lambda));
    assert_eq!(parsed["dd.span_id"], lambda.span_id.to_string());
    assert_eq!(parsed["dd.service"], "py-fn");

    // awslambdaric's own format: the marker before the message, as Datadog's formatter puts it.
    let logged = lines.iter().find(|l| l.contains("through logging")).unwrap();
    let fields: Vec<&str> = logged.split('\t').collect();
    assert_eq!(fields[2], request_id(&reply), "{logged}");
    assert_eq!(fields[3], marker, "{logged}");

    let raw = emulator.stdout.raw();
    let raw = raw
        .split(|b| *b == b'\n')
        .find(|line| line.ends_with(b" not utf-8"))
        .unwrap_or_else(|| panic!("no raw line: {lines:#?}"));
    assert!(raw.starts_with(marker.as_bytes()), "{raw:?}");
    assert!(raw.ends_with(b"\xff\xfe not utf-8"), "the bytes pass through: {raw:?}");

    assert!(
        lines.contains(&r#"{"m": "child.metric", "v": 1, "e": 1795524692, "t": ["k:v"]}"#.to_owned()),
        "a metric line is never rewritten: {lines:#?}"
    );
    assert!(lines.contains(&"init line, before any invocation".to_owned()), "{lines:#?}");
    assert!(
        emulator.stderr.text().contains(&format!("{marker} stderr line")),
        "stderr lines too"
    );
}

/// Invokes with `X-Amzn-Trace-Id: xray` (the invocation's `Lambda-Runtime-Trace-Id`).
async fn invoke_with_xray(function: &Function, event: &Value, xray: &str) -> String {
    let url = function.emulator.invoke_url();
    let reply = post(&url, event.to_string().into_bytes(), &[("X-Amzn-Trace-Id", xray)]).await;
    assert_eq!(reply.json(), json!({"ok": true}), "{}", function.emulator.stderr.text());
    request_id(&reply)
}

/// The `(dd.trace_id, dd.span_id)` of the `correlation_handler` lines of `case`, checked to be
/// the same on all four (plain, JSON, stderr, awslambdaric's format); `None` when the lines
/// are untouched.
fn case_ids(function: &Function, case: &str, request_id: &str) -> Option<(String, String)> {
    let emulator = &function.emulator;
    emulator
        .stdout
        .wait_for(&format!("logging {case}"), Duration::from_secs(10))
        .unwrap();
    emulator
        .stderr
        .wait_for(&format!("stderr {case}"), Duration::from_secs(10))
        .unwrap();
    let lines = stdout_lines(function);
    let plain = lines.iter().find(|l| l.ends_with(&format!("plain {case}"))).unwrap();
    let json_line = lines.iter().find(|l| l.contains(&format!("json {case}"))).unwrap();
    let logged = lines.iter().find(|l| l.ends_with(&format!("logging {case}"))).unwrap();
    let json: Value = serde_json::from_str(json_line).unwrap_or_else(|e| panic!("{e}: {json_line}"));
    let fields: Vec<&str> = logged.split('\t').collect();
    assert_eq!(fields[2], request_id, "{logged}");
    let stderr = function.emulator.stderr.text();
    if *plain == format!("plain {case}") {
        assert!(json.get("dd.trace_id").is_none(), "{json_line}");
        assert_eq!(fields.len(), 4, "{logged}");
        assert!(stderr.lines().any(|l| l == format!("stderr {case}")), "{stderr}");
        return None;
    }
    let ids = plain
        .strip_prefix("[dd.trace_id=")
        .and_then(|rest| rest.strip_suffix(&format!("] plain {case}")))
        .unwrap_or_else(|| panic!("{plain}"));
    let (trace, span) = ids.split_once(" dd.span_id=").unwrap();
    let marker = format!("[dd.trace_id={trace} dd.span_id={span}]");
    assert_eq!(
        (json["dd.trace_id"].as_str(), json["dd.span_id"].as_str()),
        (Some(trace), Some(span)),
        "{json_line}"
    );
    assert_eq!(json["dd.service"], "py-fn");
    assert_eq!(fields[3], marker, "{logged}");
    assert!(stderr.contains(&format!("{marker} stderr {case}")), "{stderr}");
    Some((trace.to_owned(), span.to_owned()))
}

#[tokio::test]
async fn with_tracing_off_child_lines_carry_the_seeds_correlation_ids() {
    // Datadog's library with tracing off (§5.16): a `dummy.span` under the X-Ray context, keeping
    // the event's trace id when the event carried one; lines carry its trace id and its own
    // (random) span id. No X-Ray context: no ids. Nothing is traced.
    let function = start("correlation_handler", &[("DD_TRACE_ENABLED", "false")]);
    let xray = traces_support::XRAY_HEADER;
    let mut event: Value = serde_json::from_str(&traces_support::fixture_text("api-gateway.json")).unwrap();
    event["headers"]["x-datadog-trace-id"] = "4110911582297405551".into();
    event["headers"]["x-datadog-parent-id"] = "2336172166318291498".into();
    event["headers"]["x-datadog-sampling-priority"] = "1".into();
    event["case"] = "event".into();

    let request = invoke_with_xray(&function, &event, xray).await;
    let (trace, span) = case_ids(&function, "event", &request).expect("stamped");
    assert_eq!(trace, "4110911582297405551", "the event's trace id");
    let span_id: u64 = span.parse().unwrap();
    assert!(
        ![0, 2336172166318291498, traces_support::XRAY_PARENT_ID].contains(&span_id),
        "{span}"
    );

    let request = invoke_with_xray(&function, &json!({"case": "xray"}), xray).await;
    let (trace, other_span) = case_ids(&function, "xray", &request).expect("stamped");
    assert_eq!(trace, "3995693151288333088", "X-Ray's trace id");
    assert_ne!(other_span, span, "a dummy span per invocation");

    event["case"] = "unparsable-xray".into();
    let request = invoke_with_xray(&function, &event, "not an x-ray header").await;
    assert_eq!(case_ids(&function, "unparsable-xray", &request), None, "no X-Ray context, no ids");

    assert!(trace_lines(&function.emulator).is_empty(), "nothing is traced");
}

#[tokio::test]
async fn with_tracing_and_logs_injection_off_lines_are_untouched() {
    let function = start(
        "correlation_handler",
        &[("DD_TRACE_ENABLED", "false"), ("DD_LOGS_INJECTION", "false")],
    );
    let request = invoke_with_xray(&function, &json!({"case": "off"}), traces_support::XRAY_HEADER).await;
    assert_eq!(case_ids(&function, "off", &request), None);
    assert!(!function.emulator.stdout.text().contains("dd.trace_id"));
    assert!(!function.emulator.stderr.text().contains("dd.trace_id"));
}

#[tokio::test]
async fn a_ddtrace_child_puts_its_spans_under_aws_lambda() {
    let function = start("ddtrace_handler", &[]);
    let reply = function.emulator.invoke(r#"{"n": 1}"#).await;
    assert_eq!(reply.json(), json!({"traced": true}), "{}", function.emulator.stderr.text());
    let ours = trace_of(&function.emulator, &request_id(&reply));
    let lambda = span(&ours, "aws.lambda").clone();
    // The child's spans come with our trace, or in a line of their own just after it.
    if let Err(text) = function.emulator.stdout.wait_for("child.inner", Duration::from_secs(20)) {
        panic!("no child span; stdout:\n{text}\nstderr:\n{}", function.emulator.stderr.text());
    }
    let all: Vec<WireSpan> = trace_lines(&function.emulator).iter().flat_map(|l| parse_trace_line(l)).collect();
    let work = span(&all, "child.work");
    let inner = span(&all, "child.inner");
    assert_eq!(work.trace_id, lambda.trace_id, "{all:#?}");
    assert_eq!(work.parent_id, lambda.span_id, "the child's root is under aws.lambda: {all:#?}");
    assert_eq!(inner.parent_id, work.span_id);
    assert_eq!(inner.trace_id, lambda.trace_id);
    assert_eq!(work.service, "child-svc");
    assert_eq!(work.meta("work.kind"), Some("test"));
    assert_eq!(work.meta("_dd.origin"), Some("lambda"));
    assert!(
        work.start >= lambda.start && work.end() <= lambda.end() + 5_000_000,
        "{work:#?} {lambda:#?}"
    );

    // Its log line carries the same trace.
    let logged = function
        .emulator
        .stdout
        .wait_for("inside the child's span", Duration::from_secs(5))
        .unwrap();
    let line = logged.lines().find(|l| l.contains("inside the child's span")).unwrap();
    assert!(line.contains(&format!("dd.trace_id={}", log_trace_id(&lambda))), "{line}");
}

/// A universal-instrumentation tracer's placeholder span (resource `dd-tracer-serverless-span`,
/// named `aws.lambda` by dd-trace-rb) is dropped, as the Datadog Extension drops it, and its
/// children are re-parented under the bootstrap's span: one `aws.lambda` span per trace.
#[tokio::test]
async fn a_tracers_placeholder_span_gives_way_to_ours() {
    let function = start("placeholder_handler", &[]);
    let reply = function.emulator.invoke(r#"{"n": 1}"#).await;
    assert_eq!(reply.json(), json!({"placeholder": true}), "{}", function.emulator.stderr.text());
    let ours = trace_of(&function.emulator, &request_id(&reply));
    let lambda = span(&ours, "aws.lambda").clone();
    if let Err(text) = function.emulator.stdout.wait_for("child.handler", Duration::from_secs(20)) {
        panic!("no child span; stdout:\n{text}\nstderr:\n{}", function.emulator.stderr.text());
    }
    let all: Vec<WireSpan> = trace_lines(&function.emulator).iter().flat_map(|l| parse_trace_line(l)).collect();
    let functions: Vec<&WireSpan> = all.iter().filter(|s| s.name == "aws.lambda").collect();
    assert_eq!(functions.len(), 1, "{all:#?}");
    assert!(all.iter().all(|s| s.resource != "dd-tracer-serverless-span"), "{all:#?}");
    let child = span(&all, "child.handler");
    assert_eq!((child.trace_id, child.parent_id), (lambda.trace_id, lambda.span_id), "{all:#?}");
}

#[tokio::test]
async fn universal_instrumentation_and_trace_agent_endpoints() {
    use bootstrap::telemetry::traces::{Span, TraceId};
    let function = start("wait_handler", &[]);
    let release = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    let release_path = release.to_path_buf();
    std::fs::remove_file(&release_path).unwrap();
    let event = json!({"release": release_path.display().to_string()}).to_string();
    let invoke = function.emulator.spawn_invoke(&event);
    let universal = |path: &str| format!("http://127.0.0.1:{}{path}", function.universal_port);
    let agent = |path: &str| format!("http://127.0.0.1:{}{path}", function.agent_port);

    // The emulator starts the bootstrap on the first invoke: wait until the endpoints listen.
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", function.universal_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", function.agent_port)).is_err()
    {
        assert!(started.elapsed() < Duration::from_secs(20), "the endpoints never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let hello = emulator_support::get(&universal("/lambda/hello"), &[]).await;
    assert_eq!(hello.status, 200);
    let info = emulator_support::get(&agent("/info"), &[]).await;
    assert!(info.json()["endpoints"].as_array().unwrap().contains(&json!("/v0.4/traces")));

    // The child's handler is running once the start answers with a context.
    let mut started = None;
    for _ in 0..200 {
        let reply = post(&universal("/lambda/start-invocation"), event.clone().into_bytes(), &[]).await;
        if reply.header("x-datadog-trace-id").is_some() {
            started = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let started = started.expect("start-invocation never answered a context");
    let trace_id: u64 = started.header("x-datadog-trace-id").unwrap().parse().unwrap();
    let parent_id: u64 = started.header("x-datadog-parent-id").unwrap().parse().unwrap();
    assert_eq!(started.header("x-datadog-span-id"), started.header("x-datadog-parent-id"));
    assert_eq!(started.header("x-datadog-sampling-priority"), Some("1"));

    // Garbage is refused, and the endpoints keep serving.
    let garbage = post(&agent("/v0.4/traces"), vec![0xdd, 0xff, 0xff, 0xff, 0xff], &[]).await;
    assert_eq!(garbage.status, 400);
    let garbage = post(
        &universal("/lambda/end-invocation?x"),
        b"\x00\x01".to_vec(),
        &[("x-datadog-invocation-error", "maybe")],
    )
    .await;
    assert_eq!(garbage.status, 200);

    let mut child = Span::new("tracer.op", TraceId::new(0, trace_id), 4242, parent_id);
    child.service = "tracer-svc".into();
    child.start_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    child.duration_ns = 1000;
    let mut stranger = Span::new("stranger.op", TraceId::new(0, 99), 4343, 17);
    stranger.start_ns = child.start_ns;
    let payload = bootstrap::sinks::trace_agent::encode_v04(&[vec![child], vec![stranger]]);
    let accepted = emulator_support::send("PUT", &agent("/v0.4/traces"), payload, &[("Content-Type", "application/msgpack")]).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());

    let stack = "frame one\nframe two";
    let stack = base64::engine::general_purpose::STANDARD.encode(stack);
    let ended = post(
        &universal("/lambda/end-invocation"),
        Vec::new(),
        &[
            ("x-datadog-invocation-error", "true"),
            ("x-datadog-invocation-error-type", "ChildError"),
            ("x-datadog-invocation-error-msg", "reported by the tracer"),
            ("x-datadog-invocation-error-stack", stack.as_str()),
        ],
    )
    .await;
    assert_eq!(ended.status, 200);

    std::fs::write(&release_path, b"go").unwrap();
    let reply = invoke.await.unwrap();
    assert_eq!(reply.json(), json!({"released": true}));
    let spans = trace_of(&function.emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!((lambda.trace_id, lambda.span_id), (trace_id, parent_id));
    let op = span(&spans, "tracer.op");
    assert_eq!((op.trace_id, op.parent_id), (trace_id, parent_id), "{spans:#?}");
    assert!(spans.iter().all(|s| s.name != "stranger.op"), "another trace's spans are dropped");
    assert_eq!(lambda.error, 1);
    assert_eq!(lambda.meta("error.type"), Some("ChildError"));
    assert_eq!(lambda.meta("error.message"), Some("reported by the tracer"));
    assert_eq!(lambda.meta("error.stack"), Some("frame one\nframe two"));
    function
        .emulator
        .stderr
        .wait_for("belong to no invocation", Duration::from_secs(5))
        .unwrap_or_else(|text| panic!("no dropped-span count logged:\n{text}"));
}

#[tokio::test]
async fn dogstatsd_datagrams_from_the_child_come_out_as_metric_lines() {
    let function = start("statsd_handler", &[]);
    let reply = function.emulator.invoke("{}").await;
    assert_eq!(reply.json(), json!({"sent": 3}), "{}", function.emulator.stderr.text());
    let text = function
        .emulator
        .stdout
        .wait_for("child.gauge", Duration::from_secs(10))
        .unwrap_or_else(|text| panic!("no metric lines:\n{text}\nstderr:\n{}", function.emulator.stderr.text()));
    let metric = |name: &str| -> Value {
        let needle = format!("{{\"m\":\"{name}\"");
        let line = text
            .lines()
            .find(|l| l.starts_with(&needle))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"));
        serde_json::from_str(line).unwrap()
    };
    let layer = format!("dd_lambda_layer:datadog-bootstrap_{}", env!("CARGO_PKG_VERSION"));
    let dist = metric("child.dist");
    assert_eq!(dist["v"], 1.5);
    assert!(dist["e"].is_i64());
    assert_eq!(dist["t"], json!(["team:a", layer]));
    let count = metric("child.count");
    assert_eq!(count["v"], 3);
    assert_eq!(count["t"], json!(["team:b", layer]));
    assert_eq!(metric("child.gauge")["v"], 7);
}
