//! Extension mode end to end: the real `bootstrap` under the real `lambda-emulator`, in a mount
//! namespace where `/opt/extensions/datadog-agent` exists (an empty executable file bind-mounted
//! from a temporary directory; the machine's `/opt` is untouched), so the bootstrap picks the
//! Datadog Extension transport as Datadog's library does. Real peers stand in for the
//! Extension: a UDP socket the test binds on `DD_DOGSTATSD_PORT` (its DogStatsD), Datadog's APM
//! test agent on `DD_APM_RECEIVER_PORT` (its trace agent), a TCP listener on
//! `DD_UNIVERSAL_INSTRUMENTATION_PORT` (its 8124, where `DD_LOCAL_TEST` asks it to flush), all
//! bound only once the bootstrap's init is over, which shows it left those ports to the
//! Extension. A recorder given as `DATADOG_HOST` shows nothing goes to the API.
//!
//! Needs unprivileged user namespaces (`unshare -rm true`); skipped with a printed reason without.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/intake.rs"]
mod intake;

#[path = "common/test_agent.rs"]
mod test_agent;

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emulator_support::EmulatorProcess;
use function::{example_dylib, metric_lines};
use serde_json::Value;
use test_agent::{free_port, TestAgent};

/// Enhanced metrics the bootstrap still sends with the Extension (enhanced.rs's table): the
/// Extension never emits these, or cannot see the evidence.
const OURS_IN_EXTENSION_MODE: &[&str] = &[
    "aws.lambda.enhanced.response_latency",
    "aws.lambda.enhanced.batch_item_failures",
    "aws.lambda.enhanced.errors",
    "aws.lambda.enhanced.out_of_memory",
];

fn unshare_works() -> bool {
    Command::new("unshare")
        .args(["-rm", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory to bind-mount on `/opt`, holding the Extension's file.
fn fake_opt() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let extensions = dir.path().join("extensions");
    std::fs::create_dir(&extensions).unwrap();
    let agent = extensions.join("datadog-agent");
    std::fs::write(&agent, b"").unwrap();
    Command::new("chmod").arg("755").arg(&agent).status().unwrap();
    dir
}

/// The bootstrap under the emulator, in a mount namespace whose `/opt` is `opt`.
fn start(opt: &Path, env: &[(&str, String)]) -> EmulatorProcess {
    let mut args: Vec<String> = vec!["--function-name".into(), "my-fn".into()];
    for (k, v) in env {
        args.push("--env".into());
        args.push(format!("{k}={v}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let opt = opt.display().to_string();
    let command = [
        "unshare",
        "--mount",
        "--map-root-user",
        "sh",
        "-c",
        r#"mount --bind "$0" /opt && exec "$@""#,
        &opt,
        env!("CARGO_BIN_EXE_bootstrap"),
    ];
    let emulator = EmulatorProcess::start(&args, &command);
    // Init is over once the bootstrap's own extension registered: any port it meant to bind is bound.
    emulator
        .stderr
        .wait_for("extension registered", Duration::from_secs(20))
        .unwrap_or_else(|stderr| panic!("the bootstrap never registered its extension; stderr:\n{stderr}"));
    emulator
}

/// The Extension's DogStatsD: binding it succeeds only if the bootstrap left the port free.
struct DogStatsD(UdpSocket);

impl DogStatsD {
    fn bind(port: u16) -> Self {
        let socket = UdpSocket::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("DogStatsD port {port} is taken: the bootstrap must leave it to the Extension ({e})"));
        socket.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        Self(socket)
    }

    /// Datagrams until `done` holds for all received so far (or 10 s).
    fn receive_until(&self, mut received: Vec<String>, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; 65_536];
        while !done(&received) && Instant::now() < deadline {
            if let Ok(n) = self.0.recv(&mut buf) {
                received.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned));
            }
        }
        received
    }

    /// What arrives within a short quiet period.
    fn drain(&self) -> Vec<String> {
        let mut received = Vec::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok(n) = self.0.recv(&mut buf) {
            received.extend(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_owned));
        }
        received
    }
}

fn metric_name(datagram: &str) -> &str {
    datagram.split(':').next().unwrap_or_default()
}

/// Every enhanced metric among `datagrams` is one the table leaves to the bootstrap.
fn assert_only_ours(datagrams: &[String]) {
    for d in datagrams {
        let name = metric_name(d);
        assert!(
            !name.starts_with("aws.lambda.enhanced.") || OURS_IN_EXTENSION_MODE.contains(&name),
            "{name} is the Extension's to emit, not ours: {datagrams:#?}"
        );
    }
}

/// The Extension's 8124: records the request lines it gets (`DD_LOCAL_TEST`'s flush).
struct LifecycleApi {
    requests: Arc<Mutex<Vec<String>>>,
}

impl LifecycleApi {
    fn bind(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("port {port} is taken: the bootstrap must leave 8124 to the Extension ({e})"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head);
                seen.lock().unwrap().push(text.lines().next().unwrap_or_default().to_owned());
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Self { requests }
    }

    fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.requests.lock().unwrap().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.requests.lock().unwrap().clone()
    }
}

struct Ports {
    dogstatsd: u16,
    agent: u16,
    lifecycle: u16,
}

impl Ports {
    fn free() -> Self {
        Self {
            dogstatsd: function::free_udp_port(),
            agent: free_port(),
            lifecycle: free_port(),
        }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DD_DOGSTATSD_PORT", self.dogstatsd.to_string()),
            ("DD_APM_RECEIVER_PORT", self.agent.to_string()),
            ("DD_UNIVERSAL_INSTRUMENTATION_PORT", self.lifecycle.to_string()),
        ]
    }

    /// [`Ports::env`] for the exec child `tests/fixtures/exec/<fixture>`, tracing on.
    fn exec_env(&self, fixture: &str) -> Vec<(&'static str, String)> {
        let mut env = self.env();
        env.extend([
            ("_HANDLER", format!("{}/tests/fixtures/exec/{fixture}", env!("CARGO_MANIFEST_DIR"))),
            ("DD_TRACE_ENABLED", "true".to_owned()),
        ]);
        env
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dylibs_metrics_and_traces_go_to_the_extension_and_nothing_to_the_forwarder_or_the_api() {
    if !unshare_works() {
        println!("skipped: `unshare -rm true` fails (no unprivileged user namespaces), so /opt cannot be faked");
        return;
    }
    let opt = fake_opt();
    let intake = intake::Intake::start(intake::IntakeOptions::default(), intake::Journal::default()).await;
    let ports = Ports::free();
    let mut env = ports.env();
    env.extend([
        ("_HANDLER", format!("{}:metric", example_dylib().display())),
        ("DD_TRACE_ENABLED", "true".to_owned()),
        ("DD_LOCAL_TEST", "true".to_owned()),
        ("DATADOG_HOST", intake.url()),
        ("DD_API_KEY", "not-used".to_owned()),
    ]);
    let emulator = start(opt.path(), &env);
    let dogstatsd = DogStatsD::bind(ports.dogstatsd);
    let lifecycle = LifecycleApi::bind(ports.lifecycle);
    let agent = TestAgent::start_on(ports.agent);

    let reply = emulator
        .invoke(r#"{"name":"ext.metric","value":2.5,"tags":["team:a","odd tag,x"]}"#)
        .await;
    assert_eq!(reply.json(), serde_json::json!({"sent": true}), "{}", reply.text());
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();

    // DD_LOCAL_TEST's flush request comes after the invocation's datagrams were sent.
    assert_eq!(lifecycle.wait_for(1), ["POST /lambda/flush HTTP/1.1"]);
    let datagrams = dogstatsd.receive_until(Vec::new(), |d| d.iter().any(|l| l.starts_with("ext.metric:")));
    let datagrams = [datagrams, dogstatsd.drain()].concat();
    let custom: Vec<&String> = datagrams.iter().filter(|d| d.starts_with("ext.metric:")).collect();
    assert_eq!(custom.len(), 1, "{datagrams:#?}");
    // The library's DogStatsD line: a distribution, tags normalised, the layer tag last, no `|T`
    // for a point without a timestamp.
    let layer = format!("dd_lambda_layer:datadog-bootstrap_{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(*custom[0], format!("ext.metric:2.5|d|#team:a,odd_tag_x,{layer}"));
    assert_only_ours(&datagrams);
    let latency: Vec<&String> = datagrams
        .iter()
        .filter(|d| metric_name(d) == "aws.lambda.enhanced.response_latency")
        .collect();
    assert_eq!(latency.len(), 1, "the Extension never emits response_latency: {datagrams:#?}");
    assert!(
        latency[0].contains("|d|#") && latency[0].contains("functionname:my-fn"),
        "{}",
        latency[0]
    );

    let trace = agent.trace_of(&request_id).await;
    assert_eq!(function_spans(&trace).len(), 1, "{trace:#?}");

    let second = emulator.invoke(r#"{"name":"ext.metric","value":1}"#).await;
    assert_eq!(second.json(), serde_json::json!({"sent": true}));
    assert_eq!(lifecycle.wait_for(2).len(), 2, "one flush request per invocation");
    let more = dogstatsd.receive_until(Vec::new(), |d| d.iter().any(|l| l.starts_with("ext.metric:")));
    assert_only_ours(&[more.clone(), dogstatsd.drain()].concat());

    // Only DD_LOCAL_TEST's flush: never a start-invocation, the one call that makes the Extension
    // create an aws.lambda span of its own.
    assert_eq!(lifecycle.wait_for(2), ["POST /lambda/flush HTTP/1.1"; 2]);
    let stdout = emulator.stdout.text();
    assert!(metric_lines(&stdout).is_empty(), "no Forwarder line with the Extension:\n{stdout}");
    assert!(!stdout.contains("{\"traces\":"), "traces go to the agent:\n{stdout}");
    assert!(intake.requests().is_empty(), "nothing goes to the API: {:?}", intake.requests());
}

/// The `aws.lambda` spans of a trace.
fn function_spans(trace: &[Value]) -> Vec<&Value> {
    trace.iter().filter(|s| s["name"] == "aws.lambda").collect()
}

/// An exec child with no tracer of its own (or one that never calls `/lambda/start-invocation`,
/// as ddtrace and dd-trace-js): the bootstrap's `aws.lambda` span is the only one. The Extension
/// makes its own only after a start-invocation (bottlecap's `tracer_detected`), and the bootstrap
/// sends none; it keeps a tracer-sent `aws.lambda` span as it is, keyed by its `request_id` tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_childs_function_span_is_the_bootstraps_and_the_only_one() {
    if !unshare_works() {
        println!("skipped: `unshare -rm true` fails (no unprivileged user namespaces), so /opt cannot be faked");
        return;
    }
    let opt = fake_opt();
    let ports = Ports::free();
    let env = ports.exec_env("bash_runtime.sh");
    let emulator = start(opt.path(), &env);
    let _dogstatsd = DogStatsD::bind(ports.dogstatsd);
    let lifecycle = LifecycleApi::bind(ports.lifecycle);
    let agent = TestAgent::start_on(ports.agent);

    let reply = emulator.invoke(r#"{"hello":"extension"}"#).await;
    assert_eq!(reply.json(), serde_json::json!({"hello": "extension"}), "{}", reply.text());
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    let trace = agent.trace_of(&request_id).await;
    let spans = function_spans(&trace);
    assert_eq!(spans.len(), 1, "{trace:#?}");
    let meta = &spans[0]["meta"];
    assert_eq!(meta["request_id"], request_id.as_str());
    assert_eq!(meta["cold_start"], "true");
    assert_eq!(meta["functionname"], "my-fn");
    assert_eq!(meta["_dd.origin"], "lambda");
    // The span was sent after the invocation: any call to 8124 would have come before it.
    let calls = lifecycle.requests.lock().unwrap().clone();
    assert!(calls.is_empty(), "the bootstrap called the Extension's 8124: {calls:?}");
}

/// An exec child whose tracer does universal instrumentation (here a bash "tracer" calling
/// start- and end-invocation as dd-trace-java does) makes the Extension create the function
/// span; with `DD_UNIVERSAL_INSTRUMENTATION=true` the bootstrap sends none of its own (no second
/// `aws.lambda` or inferred span) and leaves the child's log lines to that tracer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_universal_instrumentation_the_function_span_is_left_to_the_extension() {
    if !unshare_works() {
        println!("skipped: `unshare -rm true` fails (no unprivileged user namespaces), so /opt cannot be faked");
        return;
    }
    let opt = fake_opt();
    let ports = Ports::free();
    let mut env = ports.exec_env("ui_runtime.sh");
    env.extend([
        ("DD_UNIVERSAL_INSTRUMENTATION", "true".to_owned()),
        ("DD_LOG_LEVEL", "info".to_owned()),
    ]);
    let emulator = start(opt.path(), &env);
    let dogstatsd = DogStatsD::bind(ports.dogstatsd);
    let lifecycle = LifecycleApi::bind(ports.lifecycle);
    let agent = TestAgent::start_on(ports.agent);

    let mut request_ids = Vec::new();
    for n in 1..=2 {
        let reply = emulator.invoke(r#"{"hello":"ui"}"#).await;
        assert_eq!(reply.json(), serde_json::json!({"hello": "ui"}), "{}", reply.text());
        request_ids.push(reply.header("x-amzn-requestid").unwrap().to_owned());
        // The child's calls reach the Extension (the bootstrap does not stand in for it).
        let calls = lifecycle.wait_for(2 * n);
        assert_eq!(
            calls[2 * n - 2..],
            ["POST /lambda/start-invocation HTTP/1.1", "POST /lambda/end-invocation HTTP/1.1"]
        );
        // The bootstrap's flush (traces first, then metrics) is over once its datagram arrives.
        let latency = "aws.lambda.enhanced.response_latency";
        let datagrams = dogstatsd.receive_until(Vec::new(), |d| d.iter().any(|l| metric_name(l) == latency));
        assert!(datagrams.iter().any(|l| metric_name(l) == latency), "{datagrams:#?}");
    }
    // A 5xx answer to an HTTP trigger: the Extension counts it in `errors` from the body the
    // child posts to end-invocation, so the bootstrap must not count it a second time.
    let reply = emulator.invoke(r#"{"requestContext":{"stage":"prod"},"statusCode":500}"#).await;
    assert_eq!(reply.json()["statusCode"], 500, "{}", reply.text());
    request_ids.push(reply.header("x-amzn-requestid").unwrap().to_owned());
    lifecycle.wait_for(6);
    let latency = "aws.lambda.enhanced.response_latency";
    let datagrams = dogstatsd.receive_until(Vec::new(), |d| d.iter().any(|l| metric_name(l) == latency));
    assert!(datagrams.iter().any(|l| metric_name(l) == latency), "{datagrams:#?}");
    assert!(
        !datagrams.iter().any(|l| metric_name(l) == "aws.lambda.enhanced.errors"),
        "the Extension counts this error; the bootstrap counted it too: {datagrams:#?}"
    );

    let traces = agent.traces().await;
    assert!(traces.is_empty(), "the bootstrap sent spans the Extension makes: {traces:#?}");

    // The child's lines are relayed by the bootstrap, then by the emulator, each on its own
    // schedule: the last one is waited for (the child printed the others before it).
    let last = format!("ui runtime: handling {}", request_ids.last().unwrap());
    let stdout = emulator
        .stdout
        .wait_for(&last, Duration::from_secs(10))
        .unwrap_or_else(|stdout| stdout);
    assert!(stdout.contains("ui runtime: ready, DD_TRACE_AGENT_URL=unset"), "{stdout}");
    for request_id in &request_ids {
        let line = format!("ui runtime: handling {request_id}");
        assert!(
            stdout.lines().any(|l| l == line),
            "the child's line is left as it printed it:\n{stdout}"
        );
    }
    assert!(!stdout.contains("dd.trace_id"), "{stdout}");
    let warning = "DD_UNIVERSAL_INSTRUMENTATION is on with the Datadog Extension";
    let stderr = emulator
        .stderr
        .wait_for(warning, Duration::from_secs(10))
        .unwrap_or_else(|stderr| stderr);
    assert!(
        stderr.contains("DD_UNIVERSAL_INSTRUMENTATION is on with the Datadog Extension"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_child_talks_to_the_extension_and_only_its_unseen_oom_is_ours() {
    if !unshare_works() {
        println!("skipped: `unshare -rm true` fails (no unprivileged user namespaces), so /opt cannot be faked");
        return;
    }
    let opt = fake_opt();
    let ports = Ports::free();
    let env = ports.exec_env("oom_runtime.sh");
    let emulator = start(opt.path(), &env);
    // The child's tracer endpoints (8124, 8126) are the Extension's: the bootstrap bound neither.
    let dogstatsd = DogStatsD::bind(ports.dogstatsd);
    let _lifecycle = LifecycleApi::bind(ports.lifecycle);
    let _agent = TcpListener::bind(("127.0.0.1", ports.agent))
        .unwrap_or_else(|e| panic!("the bootstrap took the Extension's trace-agent port ({e})"));

    // (event, the bootstrap counts its OOM: only Rust's, which the Extension does not recognise)
    for (event, ours) in [
        (r#"{"oom":"rust"}"#, true),
        (r#"{"oom":"python"}"#, false),
        (r#"{"oom":"dotnet"}"#, false),
        (r#"{"oom":"rust","survive":true}"#, true),
    ] {
        let reply = emulator.invoke(event).await;
        let language = serde_json::from_str::<Value>(event).unwrap()["oom"].as_str().unwrap().to_owned();
        // The child's own datagram reaches the Extension directly; the bootstrap's flush (its
        // response_latency) follows every invocation.
        let child_metric = format!("oom_runtime.invocation:1|d|#language:{language}");
        let datagrams = dogstatsd.receive_until(Vec::new(), |d| {
            d.contains(&child_metric) && d.iter().any(|l| l.starts_with("aws.lambda.enhanced.response_latency:"))
        });
        let datagrams = [datagrams, dogstatsd.drain()].concat();
        assert!(datagrams.contains(&child_metric), "{event}: {datagrams:#?}\n{}", reply.text());
        assert_only_ours(&datagrams);
        let ooms = datagrams
            .iter()
            .filter(|d| metric_name(d) == "aws.lambda.enhanced.out_of_memory")
            .count();
        assert_eq!(ooms, usize::from(ours), "{event}: {datagrams:#?}");
        assert!(
            !datagrams.iter().any(|d| metric_name(d) == "aws.lambda.enhanced.errors"),
            "handler errors are the Extension's to count: {datagrams:#?}"
        );
    }
    let stdout = emulator.stdout.text();
    assert!(metric_lines(&stdout).is_empty(), "no Forwarder line with the Extension:\n{stdout}");
}

/// A handler library's allocation failure with the Extension: the dying bootstrap answers
/// `Runtime.OutOfMemory`, the error type the Extension counts as `errors` and `out_of_memory`
/// itself, so the bootstrap sends neither; what only it measures (`response_latency`) still
/// arrives, sent by its report of the aborted invocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dylibs_allocation_failure_is_left_to_the_extension_to_count() {
    if !unshare_works() {
        println!("skipped: `unshare -rm true` fails (no unprivileged user namespaces), so /opt cannot be faked");
        return;
    }
    let opt = fake_opt();
    let ports = Ports::free();
    let mut env = ports.env();
    env.push(("_HANDLER", format!("{}:alloc_failure", example_dylib().display())));
    let emulator = start(opt.path(), &env);
    let dogstatsd = DogStatsD::bind(ports.dogstatsd);

    let reply = emulator.invoke(r#"{"bytes": 4611686018427387904}"#).await;
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"), "{}", reply.text());
    assert_eq!(reply.json()["errorType"], "Runtime.OutOfMemory", "{}", reply.text());
    let latency = "aws.lambda.enhanced.response_latency";
    let datagrams = dogstatsd.receive_until(Vec::new(), |d| d.iter().any(|l| metric_name(l) == latency));
    let datagrams = [datagrams, dogstatsd.drain()].concat();
    assert!(datagrams.iter().any(|d| metric_name(d) == latency), "{datagrams:#?}");
    for left_to_the_extension in ["aws.lambda.enhanced.errors", "aws.lambda.enhanced.out_of_memory"] {
        assert!(
            !datagrams.iter().any(|d| metric_name(d) == left_to_the_extension),
            "{left_to_the_extension} is counted by the Extension from the error type: {datagrams:#?}"
        );
    }
    assert_only_ours(&datagrams);
    let stdout = emulator.stdout.text();
    assert!(metric_lines(&stdout).is_empty(), "no Forwarder line with the Extension:\n{stdout}");
    // The bootstrap's report is written after the answer and relayed by the emulator: waited for.
    let report = "answered it as Runtime.OutOfMemory (Runtime API status 202); its metrics and trace were sent";
    let stderr = emulator
        .stderr
        .wait_for(report, Duration::from_secs(10))
        .unwrap_or_else(|stderr| stderr);
    assert!(stderr.contains(report), "{stderr}");
}
