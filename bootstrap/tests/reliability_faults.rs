//! Faults survived (issue 8, part 2), each end to end through the real `lambda-emulator` and the
//! real `bootstrap`, each checked against the three invariants:
//! 1. every invocation got exactly one answer (the emulator's counters: none lost, none refused
//!    as a second answer, none left to time out);
//! 2. telemetry failed open: the function kept serving, and no point or span was lost (what the
//!    intake or stdout got against what was produced), or, where a peer refused them for good,
//!    the loss was logged with its reason;
//! 3. the bootstrap is still alive and serving, or exited as Lambda expects.
//!
//! Faults already covered elsewhere are not repeated here (handler panics: runtime_acceptance;
//! a child's exit, SIGSEGV and SIGKILL wording: exec_end_to_end and exec_peers; SIGKILL counted
//! as an OOM: metrics_e2e_exec; an intake 500 outage delivered at shutdown and an undecryptable
//! KMS key: metrics_e2e_api; API key errors at the library level: api_key_moto). The README
//! Reliability section lists every fault with its test.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod reliability_support;
mod runtime_support;

#[path = "common/moto.rs"]
mod moto;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use emulator_support::{EmulatorProcess, Reply};
use reliability_support::intake::{reserve_port, FaultyIntake, Misbehaviour, Point};
use reliability_support::long_run::LongRunFunction;
use reliability_support::proc;
use reliability_support::throttle::ThrottlingProxy;
use runtime_support::{example_handler, function_error, function_response};
use serde_json::{json, Value};

const KEY: &str = "0123456789abcdef0123456789abcdef";
/// Lambda's limit on a synchronous invoke's event and on a buffered response.
const LAMBDA_PAYLOAD_LIMIT: usize = 6 * 1024 * 1024;
const CUSTOM_METRIC: &str = "fault.metric";

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn exec_fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/exec")
        .join(name)
        .display()
        .to_string()
}

/// `python3 tests/fixtures/exec/python_runtime.py`: a child runtime that misbehaves on demand.
fn python_runtime() -> String {
    format!("python3 {}", exec_fixture("python_runtime.py"))
}

/// A binary built beside `bootstrap` (the workspace build makes them).
fn artifact(name: &str) -> String {
    let path = Path::new(env!("CARGO_BIN_EXE_bootstrap")).with_file_name(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace`", path.display());
    path.display().to_string()
}

/// The bootstrap under the emulator, its listeners on free ports so tests run side by side.
struct Function {
    emulator: EmulatorProcess,
    statsd_port: u16,
}

impl Function {
    fn start(handler: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        let statsd_port = free_udp_port();
        let ports = [
            ("DD_DOGSTATSD_PORT", statsd_port.to_string()),
            ("DD_APM_RECEIVER_PORT", free_tcp_port().to_string()),
            ("DD_UNIVERSAL_INSTRUMENTATION_PORT", free_tcp_port().to_string()),
            ("DD_LAMBDA_HANDLER", handler.to_owned()),
            ("DD_LOG_LEVEL", "debug".to_owned()),
        ];
        let mut args: Vec<String> = ["--function-name", "my-fn", "--memory", "512"]
            .iter()
            .map(ToString::to_string)
            .collect();
        if !flags.contains(&"--timeout") {
            args.extend(["--timeout".to_owned(), "60".to_owned()]);
        }
        args.extend(flags.iter().map(ToString::to_string));
        for (k, v) in ports.iter().map(|(k, v)| (*k, v.as_str())).chain(env.iter().copied()) {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let emulator = EmulatorProcess::start(&args, &[env!("CARGO_BIN_EXE_bootstrap")]);
        // The bootstrap binds its DogStatsD port before it registers its internal extension:
        // datagrams sent after that are heard. (A runtime whose init fails may never register.)
        let _ = emulator.stderr.wait_for("extension registered", Duration::from_secs(20));
        Self { emulator, statsd_port }
    }

    async fn invoke(&self, event: &str) -> Reply {
        self.emulator.invoke(event).await
    }

    /// The example library's `metric` export, sending `fault.metric` with value `value`.
    async fn invoke_metric(&self, value: u64) {
        let reply = self
            .invoke(&json!({"name": CUSTOM_METRIC, "value": value, "tags": ["fault:test"]}).to_string())
            .await;
        assert_eq!(function_response(&reply), json!({"sent": true}), "{}", self.stderr());
    }

    /// One DogStatsD datagram to the bootstrap's listener, as an exec child sends it.
    fn statsd(&self, datagram: &[u8]) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(datagram, ("127.0.0.1", self.statsd_port)).unwrap();
    }

    fn stderr(&self) -> String {
        self.emulator.stderr.text()
    }

    /// The Forwarder's metric lines on stdout.
    fn metric_lines(&self) -> Vec<Value> {
        metric_lines(&self.emulator.stdout.text())
    }

    /// Waits until the metric lines satisfy `wanted`; returns them either way.
    fn wait_for_metric_lines(&self, wanted: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        loop {
            let lines = self.metric_lines();
            if wanted(&lines) || start.elapsed() > Duration::from_secs(20) {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    async fn runtime_pid(&self) -> u32 {
        self.emulator.stats().await["runtime_pid"].as_u64().expect("a runtime runs") as u32
    }
}

fn metric_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"m\":"))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn count_named(lines: &[Value], name: &str) -> usize {
    lines.iter().filter(|l| l["m"] == name).count()
}

/// Invariants 1 and 3 when one bootstrap served everything: `invokes` invokes, each answered
/// once by the runtime (none refused, none timed out), by one runtime process still alive.
async fn assert_each_answered_once_by_one_live_bootstrap(emulator: &EmulatorProcess, invokes: u64) -> u32 {
    assert_answered_once_by_one_live_bootstrap(emulator, invokes, invokes).await
}

/// As [`assert_each_answered_once_by_one_live_bootstrap`], when `received - invokes` invokes
/// were refused by the Invoke API itself (too large) and never reached the runtime.
async fn assert_answered_once_by_one_live_bootstrap(emulator: &EmulatorProcess, received: u64, invokes: u64) -> u32 {
    let stats = emulator.stats().await;
    assert_eq!(stats["invokes_received"], received, "{stats}");
    assert_eq!(stats["answers_delivered"], invokes, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(stats["timeouts"], 0, "{stats}");
    assert_eq!(
        (stats["runtime_starts"].as_u64(), stats["runtime_exits"].as_u64()),
        (Some(1), Some(0)),
        "{stats}"
    );
    let pid = stats["runtime_pid"].as_u64().expect("the runtime still runs") as u32;
    assert!(proc::alive(pid), "the bootstrap (pid {pid}) is alive");
    figure(&format!("{invokes} invocations answered once each, 0 lost, 0 answered twice"));
    pid
}

/// A figure for the README's Reliability section, printed under the test's name (`--nocapture`).
fn figure(text: &str) {
    let test_name = std::thread::current().name().unwrap_or("?").to_owned();
    println!("reliability figure [{test_name}]: {text}");
}

/// Invariant 2 for custom points: each value `0..n` of `metric` arrived exactly once.
fn assert_each_value_once(points: &[Point], metric: &str, n: u64) {
    let mut values: Vec<u64> = points.iter().filter(|p| p.0 == metric).map(|p| p.1 as u64).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (0..n).collect::<Vec<_>>(),
        "each point exactly once (none lost, none sent twice)"
    );
    figure(&format!("{n} custom points produced, {n} accepted once each, 0 lost"));
}

fn every_value_arrived(metric: &'static str, n: u64) -> impl Fn(&[Point]) -> bool {
    move |points| points.iter().filter(|p| p.0 == metric).count() as u64 >= n
}

// ---------------------------------------------------------------------------------------------
// The Datadog intake (API mode) misbehaving.

/// Runs the `metric` export in API mode against an intake that misbehaves as `plan` says, then
/// recovers: the function answers every invoke, the points the failed flushes kept are
/// delivered once by a later flush, and each failure was logged with `reason`.
async fn survive_intake_plan(plan: Vec<Misbehaviour>, reason: &str) {
    let intake = FaultyIntake::start(plan.clone()).await;
    let faults = plan.len();
    let host = intake.url();
    let function = Function::start(&example_handler("metric"), &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)], &[]);
    let mut n = 0;
    // Each invoke waits for the previous invocation's flush (it runs before the next /next), so
    // the plan is used up after a few invokes.
    while intake.faulted().len() < faults {
        function.invoke_metric(n).await;
        n += 1;
        assert!(n < 10, "the intake saw {:?}; stderr:\n{}", intake.faulted(), function.stderr());
    }
    // Recovered: this invocation's flush carries everything the failed ones kept.
    function.invoke_metric(n).await;
    n += 1;
    assert!(
        intake
            .wait_for_points(Duration::from_secs(30), every_value_arrived(CUSTOM_METRIC, n))
            .await,
        "points missing: {:?}\nstderr:\n{}",
        intake.points(),
        function.stderr()
    );
    assert_each_value_once(&intake.points(), CUSTOM_METRIC, n);
    assert!(intake.api_keys().iter().all(|k| k == KEY));
    // The failed flush's warning reaches our copy of stderr through the emulator's relay and a
    // pipe reader, on their own schedule: waited for, not assumed. (The plan's faults are one
    // flush's attempts, so its one warning is the first line that keeps the points.)
    let stderr = function
        .emulator
        .stderr
        .wait_for("kept for the next flush", Duration::from_secs(10))
        .unwrap_or_else(|stderr| stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("WARN") && l.contains(reason) && l.contains("kept for the next flush")),
        "no warning naming {reason:?}:\n{stderr}"
    );
    assert!(!stderr.contains(KEY), "the API key leaked");
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_answering_5xx_loses_no_point() {
    use Misbehaviour::Status;
    survive_intake_plan(vec![Status(500), Status(503), Status(502)], "answered 502 after 3 attempt(s)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_answering_429_loses_no_point() {
    survive_intake_plan(vec![Misbehaviour::Status(429); 3], "answered 429 after 3 attempt(s)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_hanging_past_the_timeout_loses_no_point() {
    // Three attempts of 3 s each: the flush gives up after ~9 s, the next one delivers.
    survive_intake_plan(vec![Misbehaviour::Hang; 3], "timed out").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_closing_mid_request_loses_no_point() {
    survive_intake_plan(vec![Misbehaviour::CloseMidRequest; 3], "could not reach the Datadog API").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_refusing_connections_loses_no_point() {
    let port = reserve_port();
    let host = format!("http://127.0.0.1:{port}");
    let function = Function::start(&example_handler("metric"), &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)], &[]);
    // Nothing listens: every attempt of these invocations' flushes is refused.
    for n in 0..3 {
        function.invoke_metric(n).await;
    }
    // The flush of the third runs until the fourth's /next: wait for its refusal in the log.
    let start = Instant::now();
    while function.stderr().matches("could not reach the Datadog API").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", function.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stderr = function.stderr();
    assert!(stderr.contains("connection failed"), "the reason is named:\n{stderr}");
    // The intake comes up on that port; the next flushes deliver everything kept.
    let intake = FaultyIntake::start_on(port, Vec::new()).await;
    for n in 3..5 {
        function.invoke_metric(n).await;
    }
    assert!(
        intake
            .wait_for_points(Duration::from_secs(30), every_value_arrived(CUSTOM_METRIC, 5))
            .await,
        "{:?}\n{}",
        intake.points(),
        function.stderr()
    );
    assert_each_value_once(&intake.points(), CUSTOM_METRIC, 5);
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 5).await;
}

// ---------------------------------------------------------------------------------------------
// SIGTERM while busy.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_flush_to_a_hanging_intake_ends_within_lambdas_grace() {
    let intake = FaultyIntake::start(vec![Misbehaviour::Hang; 100]).await;
    let host = intake.url();
    let mut function = Function::start(&example_handler("metric"), &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)], &[]);
    function.invoke_metric(0).await;
    assert!(intake.wait_for_arrivals(1, Duration::from_secs(20)).await, "{}", function.stderr());
    let pid = function.runtime_pid().await;
    // The flush hangs on the intake; the sandbox shuts down (SHUTDOWN to the bootstrap's
    // extension, SIGTERM, 500 ms of grace, then SIGKILL).
    let asked = Instant::now();
    let status = function.emulator.terminate();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(!proc::alive(pid), "the bootstrap is gone");
    assert!(took < Duration::from_secs(3), "the shutdown took {took:?}");
    // The emulator has exited, but our pipe reader may not have read its last lines yet: both
    // lines are waited for (the bootstrap's comes through the emulator's relay, the emulator's
    // own does not, so neither says the other is there).
    let lost = "shutting down with 1 custom metric point(s) still on their way to the Datadog API";
    let _ = function.emulator.stderr.wait_for(lost, Duration::from_secs(10));
    let stats_line = function
        .emulator
        .stderr
        .wait_for("runtime exited at shutdown", Duration::from_secs(10))
        .unwrap_or_else(|stderr| stderr);
    assert!(
        stats_line.contains("runtime exited at shutdown"),
        "the emulator saw the runtime end:\n{stats_line}"
    );
    // The only invocation had its answer; its point was never accepted, and the loss is
    // counted in the log with its reason.
    assert!(intake.points().is_empty());
    assert!(stats_line.lines().any(|l| l.contains("WARN") && l.contains(lost)), "{stats_line}");
    println!(
        "sigterm during flush: shutdown took {took:?}; runtime end: {}",
        stats_line
            .lines()
            .find(|l| l.contains("runtime exited at shutdown"))
            .unwrap_or_default()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_an_invocation_answers_it_once_and_the_next_is_served() {
    let intake = FaultyIntake::start(Vec::new()).await;
    let host = intake.url();
    let function = Function::start(&example_handler("sleep"), &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)], &[]);
    // The handler would run 8 s: the shutdown must not wait for it (Lambda's grace is 500 ms).
    let reply = function.emulator.spawn_invoke(r#"{"ms":8000}"#);
    let start = Instant::now();
    while !function.stderr().contains("invocation handed to the runtime") {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A point the handler's invocation produced before the signal.
    function.statsd(format!("{CUSTOM_METRIC}:0|d").as_bytes());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pid = function.runtime_pid().await;
    // SAFETY: kill(2) to the bootstrap the emulator started for this test.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    let signalled = Instant::now();
    let reply = reply.await.unwrap();
    let error = function_error(&reply);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    let took = signalled.elapsed();
    println!("sigterm during an invocation: answered {took:?} after the signal: {error}");
    assert!(took < Duration::from_secs(4), "the bootstrap waited for the handler: {took:?}");
    // The bootstrap's shutdown flush delivered the point before it exited.
    assert!(
        intake
            .wait_for_points(Duration::from_secs(10), every_value_arrived(CUSTOM_METRIC, 1))
            .await,
        "{}",
        function.stderr()
    );
    assert_each_value_once(&intake.points(), CUSTOM_METRIC, 1);
    assert!(!proc::alive(pid));
    // A fresh bootstrap serves the next invoke.
    assert_eq!(function_response(&function.invoke(r#"{"ms":0}"#).await)["slept_ms"], 0);
    let stats = function.emulator.stats().await;
    assert_eq!(stats["invokes_received"], 2, "{stats}");
    assert_eq!(stats["answers_delivered"], 1, "the runtime answered the second: {stats}");
    assert_eq!(stats["function_errors"], 1, "the emulator answered the first, once: {stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(
        (stats["runtime_starts"].as_u64(), stats["runtime_exits"].as_u64()),
        (Some(2), Some(1)),
        "{stats}"
    );
}

// ---------------------------------------------------------------------------------------------
// The API key's AWS sources failing or throttling (moto behind a throttling proxy).

/// The key stored in each source of moto; returns the env of each source.
struct KeySources {
    secret_arn: String,
    ssm_name: &'static str,
    kms_cli: String,
    kms_other_function: String,
}

async fn store_keys(endpoint: &str) -> KeySources {
    let sm = aws_sdk_secretsmanager::Client::new(&moto::sdk(endpoint, "us-east-1").await);
    let secret_arn = sm
        .create_secret()
        .name("dd-key")
        .secret_string(KEY)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let ssm = aws_sdk_ssm::Client::new(&moto::sdk(endpoint, "us-east-1").await);
    ssm.put_parameter()
        .name("/dd/key")
        .value(KEY)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let kms = aws_sdk_kms::Client::new(&moto::sdk(endpoint, "us-east-1").await);
    let key_id = kms.create_key().send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    let mut ciphertexts = Vec::new();
    for context in [None, Some("other-fn")] {
        let mut request = kms
            .encrypt()
            .key_id(&key_id)
            .plaintext(aws_sdk_kms::primitives::Blob::new(KEY.as_bytes()));
        if let Some(name) = context {
            request = request.encryption_context("LambdaFunctionName", name);
        }
        let blob = request.send().await.unwrap().ciphertext_blob().unwrap().clone().into_inner();
        ciphertexts.push(base64::engine::general_purpose::STANDARD.encode(blob));
    }
    KeySources {
        secret_arn,
        ssm_name: "/dd/key",
        kms_cli: ciphertexts.remove(0),
        kms_other_function: ciphertexts.remove(0),
    }
}

/// The function in API mode with its key from `source` (variable, value) through `endpoint`.
fn function_with_key_source(endpoint: &str, intake: &FaultyIntake, source: (&str, &str)) -> Function {
    let host = intake.url();
    Function::start(
        &example_handler("metric"),
        &[
            source,
            ("DATADOG_HOST", &host),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
        ],
        &[],
    )
}

/// The points the bootstrap's log counts as dropped for want of a key.
fn dropped_points(stderr: &str) -> u64 {
    stderr
        .lines()
        .filter_map(|l| l.split("no Datadog API key: ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Three invocations with a key that cannot be had: all answered, one error line naming the
/// variable and `aws_code`, and every point counted as dropped in the log (none sent).
async fn assert_key_failure_is_survived(function: &Function, intake: &FaultyIntake, variable: &str, aws_code: &str) {
    for n in 0..3 {
        function.invoke_metric(n).await;
    }
    // The third flush runs after its answer: the fourth invoke waits for it. Its log line
    // reaches our copy of stderr through a pipe reader, so it is waited for, not assumed.
    function.invoke_metric(3).await;
    let start = Instant::now();
    while dropped_points(&function.stderr()) < 3 && start.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stderr = function.stderr();
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("cannot get the Datadog API key"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line, however many flushes:\n{stderr}");
    assert!(errors[0].contains(variable) && errors[0].contains(aws_code), "{}", errors[0]);
    let dropped = dropped_points(&stderr);
    assert!(dropped >= 3, "the dropped points are counted in the log ({dropped}):\n{stderr}");
    assert!(!stderr.contains(KEY), "the key leaked");
    assert_eq!(intake.arrived(), 0, "nothing is sent without a key");
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_sources_failing_leave_the_function_serving() {
    let moto = moto::moto();
    let keys = store_keys(&moto.endpoint).await;
    let missing_secret = keys.secret_arn.replace("dd-key", "no-such-secret");
    let cases = [
        (("DD_API_KEY_SECRET_ARN", missing_secret.as_str()), "ResourceNotFoundException"),
        (("DD_API_KEY_SSM_NAME", "/dd/no-such-parameter"), "ParameterNotFound"),
        // Encrypted for another function: neither Decrypt (without, then with our name) works.
        (("DD_KMS_API_KEY", keys.kms_other_function.as_str()), "InvalidCiphertextException"),
    ];
    for (source, code) in cases {
        let intake = FaultyIntake::start(Vec::new()).await;
        let function = function_with_key_source(&moto.endpoint, &intake, source);
        assert_key_failure_is_survived(&function, &intake, source.0, code).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_sources_throttled_then_answering_lose_no_point() {
    let moto = moto::moto();
    let keys = store_keys(&moto.endpoint).await;
    let cases = [
        ("DD_API_KEY_SECRET_ARN", keys.secret_arn.as_str()),
        ("DD_API_KEY_SSM_NAME", keys.ssm_name),
        ("DD_KMS_API_KEY", keys.kms_cli.as_str()),
    ];
    for source in cases {
        // The AWS SDK retries throttling (3 attempts): two throttled answers, then moto's.
        let proxy = ThrottlingProxy::start(&moto.endpoint, 2).await;
        let intake = FaultyIntake::start(Vec::new()).await;
        let function = function_with_key_source(&proxy.endpoint, &intake, source);
        for n in 0..3 {
            function.invoke_metric(n).await;
        }
        assert!(
            intake
                .wait_for_points(Duration::from_secs(30), every_value_arrived(CUSTOM_METRIC, 3))
                .await,
            "{}: {:?}\n{}",
            source.0,
            intake.points(),
            function.stderr()
        );
        assert_eq!(proxy.throttled(), 2, "{}", source.0);
        assert_each_value_once(&intake.points(), CUSTOM_METRIC, 3);
        assert!(intake.api_keys().iter().all(|k| k == KEY), "{}", source.0);
        assert!(
            !function.stderr().contains("cannot get the Datadog API key"),
            "{}",
            function.stderr()
        );
        assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_sources_throttled_for_good_leave_the_function_serving() {
    let moto = moto::moto();
    let keys = store_keys(&moto.endpoint).await;
    let cases = [
        ("DD_API_KEY_SECRET_ARN", keys.secret_arn.as_str()),
        ("DD_API_KEY_SSM_NAME", keys.ssm_name),
        ("DD_KMS_API_KEY", keys.kms_cli.as_str()),
    ];
    for source in cases {
        let proxy = ThrottlingProxy::start(&moto.endpoint, usize::MAX).await;
        let intake = FaultyIntake::start(Vec::new()).await;
        let function = function_with_key_source(&proxy.endpoint, &intake, source);
        assert_key_failure_is_survived(&function, &intake, source.0, "ThrottlingException").await;
        assert!(proxy.throttled() >= 3, "the SDK retried: {}", proxy.throttled());
    }
}

// ---------------------------------------------------------------------------------------------
// Exec children dying, timing out, running out of memory; telemetry as Forwarder lines.

fn exec_env() -> Vec<(&'static str, &'static str)> {
    vec![("DD_FLUSH_TO_LOG", "true"), ("DD_TRACE_ENABLED", "true")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_child_crashes_are_answered_once_and_the_bootstrap_serves_on() {
    let function = Function::start(&exec_fixture("bash_runtime.sh"), &exec_env(), &[]);
    let crashes = [
        (r#"{"action":"exit1"}"#, "exit status 1"),
        (r#"{"action":"segv"}"#, "signal: segmentation fault"),
        (r#"{"action":"sigkill"}"#, "signal: killed"),
    ];
    for (n, (event, wording)) in crashes.iter().enumerate() {
        let error = function_error(&function.invoke(event).await);
        assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
        assert!(error["errorMessage"].as_str().unwrap().ends_with(wording), "{error}");
        let echo = format!(r#"{{"after":{n}}}"#);
        assert_eq!(function.invoke(&echo).await.text(), echo, "the restarted child answers");
    }
    let invocations = 2 * crashes.len();
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.invocations") >= invocations);
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.invocations"), invocations, "{lines:?}");
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.errors"), crashes.len(), "{lines:?}");
    let traces = function
        .emulator
        .stdout
        .text()
        .lines()
        .filter(|l| l.starts_with("{\"traces\":"))
        .count();
    assert_eq!(traces, invocations, "one trace per invocation, crashed or not");
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, invocations as u64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_child_dying_during_init_is_an_init_error_and_the_bootstrap_exits() {
    let function = Function::start(&format!("{} --exit-in-init", python_runtime()), &exec_env(), &[]);
    for _ in 0..2 {
        let error = function_error(&function.invoke("{}").await);
        assert!(
            error["errorType"].as_str().unwrap().starts_with("Runtime."),
            "Lambda's init error shape: {error}"
        );
        assert!(error["errorMessage"].as_str().unwrap().contains("exit status 4"), "{error}");
    }
    let last_words = function
        .emulator
        .stderr
        .wait_for("python runtime: dying during init", Duration::from_secs(10));
    assert!(last_words.is_ok(), "the child's last words:\n{last_words:?}");
    // Each failed init is counted before the bootstrap exits.
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.errors") >= 2);
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.errors"), 2, "{lines:?}");
    let stats = function.emulator.stats().await;
    // Each invoke found a fresh sandbox whose init failed, and was answered once with it.
    assert_eq!(stats["invokes_received"], 2, "{stats}");
    assert_eq!(stats["function_errors"], 2, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(stats["init_errors"], 2, "{stats}");
    assert_eq!(stats["runtime_starts"], 2, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_child_past_its_timeout_flushes_then_the_sandbox_is_reset() {
    let mut env = exec_env();
    env.push(("DD_APM_FLUSH_DEADLINE_MILLISECONDS", "300"));
    let function = Function::start(&python_runtime(), &env, &["--timeout", "2"]);
    let error = function_error(&function.invoke(r#"{"action":"sleep","seconds":10}"#).await);
    assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
    // Flushed before the kill: the invocation is counted and its trace printed (the timeout
    // itself is the Forwarder's to count, from Lambda's `Task timed out` line).
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.invocations") >= 1);
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.invocations"), 1, "{lines:?}");
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.timeouts"), 0, "{lines:?}");
    assert_eq!(
        function
            .emulator
            .stdout
            .text()
            .lines()
            .filter(|l| l.starts_with("{\"traces\":"))
            .count(),
        1,
        "the timed-out invocation's trace"
    );
    assert_eq!(function.invoke(r#""after""#).await.text(), r#""after""#);
    let stats = function.emulator.stats().await;
    assert_eq!(stats["invokes_received"], 2, "{stats}");
    assert_eq!(stats["timeouts"], 1, "{stats}");
    assert_eq!(stats["answers_delivered"], 1, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(stats["runtime_starts"], 2, "Lambda resets the sandbox after a timeout: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_child_out_of_memory_is_answered_once_and_counted() {
    // A 256 MB address-space limit on the child (the bootstrap's own is untouched): the Rust
    // echo asking for 1 GiB fails its allocation and aborts, as it would at a memory limit.
    let handler = format!("sh -c 'ulimit -v 262144; exec {}'", artifact("lambda-runtime-echo"));
    let function = Function::start(&handler, &exec_env(), &[]);
    let error = function_error(&function.invoke(r#"{"line_bytes": 1073741824}"#).await);
    assert_eq!(error["errorType"], "Runtime.ExitError", "{error}");
    assert!(error["errorMessage"].as_str().unwrap().contains("signal: aborted"), "{error}");
    let message = function
        .emulator
        .stderr
        .wait_for("memory allocation of 1073741824 bytes failed", Duration::from_secs(10));
    assert!(message.is_ok(), "the child's message is relayed:\n{message:?}");
    // Counted as an error and as an out_of_memory: the bootstrap watches the child's output for
    // Rust's allocation failure, which neither the Forwarder nor the Extension recognises.
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.out_of_memory") >= 1);
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.errors"), 1, "{lines:?}");
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.out_of_memory"), 1, "{lines:?}");
    assert_eq!(function.invoke(r#"{"after":"oom"}"#).await.json(), json!({"after": "oom"}));
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 2).await;
}

// ---------------------------------------------------------------------------------------------
// Volume: a child flooding stdout, 1000 tag sets per invocation, events and responses at 6 MB.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_flooding_stdout_with_100_mb_loses_no_line_and_stays_bounded() {
    const TOTAL: u64 = 100 * 1024 * 1024;
    const LINE: u64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = [
        ("DD_LAMBDA_HANDLER", python_runtime()),
        ("DD_TRACE_ENABLED", "true".to_owned()),
        ("DD_FLUSH_TO_LOG", "true".to_owned()),
        ("DD_DOGSTATSD_PORT", free_udp_port().to_string()),
        ("DD_APM_RECEIVER_PORT", free_tcp_port().to_string()),
        ("DD_UNIVERSAL_INSTRUMENTATION_PORT", free_tcp_port().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let function = LongRunFunction::start(dir.path(), &["--timeout", "300"], &env, CUSTOM_METRIC);
    let event = json!({"action": "flood", "total_bytes": TOTAL, "line_bytes": LINE}).to_string();
    let answer = function.invoke(event.into()).await;
    let lines = TOTAL / LINE;
    assert_eq!(answer.status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&answer.body).unwrap(), json!({"lines": lines}));
    let tally = function.stdout.wait_until(Duration::from_mins(2), |t| t.numbered_lines >= lines);
    assert_eq!(tally.numbered_lines, lines, "every line arrived");
    assert_eq!(tally.numbered_out_of_order, 0, "in order");
    // The bootstrap still serves, and kept its memory bounded while copying the flood.
    let again = function.invoke(r#""after the flood""#.into()).await;
    assert_eq!(again.body.as_ref(), br#""after the flood""#);
    let pid = function.runtime_pid().await;
    let sample = proc::sample(pid).expect("the bootstrap is alive");
    println!(
        "100 MB stdout flood: bootstrap VmHWM {} KB, VmRSS {} KB",
        sample.hwm_kb, sample.rss_kb
    );
    assert!(
        sample.hwm_kb < 64 * 1024,
        "the bootstrap buffered the flood: VmHWM {} KB",
        sample.hwm_kb
    );
    let stats = function.stats().await;
    assert_eq!(
        (stats["invokes_received"].as_u64(), stats["answers_delivered"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_distinct_tag_sets_per_invocation_all_arrive() {
    const TAG_SETS: u64 = 1000;
    const INVOCATIONS: u64 = 3;
    let intake = FaultyIntake::start(Vec::new()).await;
    let host = intake.url();
    let function = Function::start(&example_handler("sleep"), &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)], &[]);
    for invocation in 0..INVOCATIONS {
        let reply = function.emulator.spawn_invoke(r#"{"ms":300}"#);
        // While the handler runs, its "child" sends 1000 points, each with its own tag set,
        // 50 to a datagram (DogStatsD's multi-metric form).
        let lines: Vec<String> = (0..TAG_SETS)
            .map(|i| {
                let value = invocation * TAG_SETS + i;
                format!("{CUSTOM_METRIC}:{value}|d|#set:{i},invocation:{invocation}")
            })
            .collect();
        for chunk in lines.chunks(50) {
            function.statsd(chunk.join("\n").as_bytes());
        }
        assert_eq!(function_response(&reply.await.unwrap())["slept_ms"], 300);
    }
    let total = TAG_SETS * INVOCATIONS;
    assert!(
        intake
            .wait_for_points(Duration::from_secs(30), every_value_arrived(CUSTOM_METRIC, total))
            .await,
        "{} of {total} points (invocations {:?}); stderr:\n{}",
        intake.points().len(),
        intake
            .points()
            .iter()
            .map(|p| p.1 as u64 / TAG_SETS)
            .collect::<std::collections::BTreeSet<_>>(),
        function.stderr()
    );
    let points = intake.points();
    assert_each_value_once(&points, CUSTOM_METRIC, total);
    // Each point kept its own tag set.
    for (_, value, tags) in &points {
        let (invocation, set) = (*value as u64 / TAG_SETS, *value as u64 % TAG_SETS);
        assert!(
            tags.contains(&format!("set:{set}")) && tags.contains(&format!("invocation:{invocation}")),
            "{tags:?}"
        );
    }
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, INVOCATIONS).await;
}

/// A JSON string of exactly `bytes` bytes, quotes included.
fn json_string_of(bytes: usize) -> String {
    format!("\"{}\"", "e".repeat(bytes - 2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_mb_events_and_responses_at_lambdas_limit_in_dylib_mode() {
    let function = Function::start(&example_handler("raw_echo"), &[("DD_FLUSH_TO_LOG", "true")], &[]);
    // An event of exactly 6291456 bytes goes through, and comes back whole.
    let event = json_string_of(LAMBDA_PAYLOAD_LIMIT);
    let reply = function.invoke(&event).await;
    assert_eq!(reply.header("x-amz-function-error"), None);
    assert_eq!(reply.body.len(), LAMBDA_PAYLOAD_LIMIT);
    assert!(reply.body.as_ref() == event.as_bytes());
    // One byte more is refused by the Invoke API, as Lambda refuses it; the function never sees it.
    let refused = function.invoke(&json_string_of(LAMBDA_PAYLOAD_LIMIT + 1)).await;
    assert_eq!(refused.status, http::StatusCode::PAYLOAD_TOO_LARGE, "{}", refused.text());
    assert!(refused.text().contains("RequestTooLargeException"), "{}", refused.text());
    drop(function);

    // The responses: `big` answers a JSON string of `bytes` bytes.
    let function = Function::start(&example_handler("big"), &[("DD_FLUSH_TO_LOG", "true")], &[]);
    let reply = function.invoke(&json!({"bytes": LAMBDA_PAYLOAD_LIMIT}).to_string()).await;
    assert_eq!(
        reply.header("x-amz-function-error"),
        None,
        "{}",
        &reply.text()[..200.min(reply.body.len())]
    );
    assert_eq!(reply.body.len(), LAMBDA_PAYLOAD_LIMIT);
    let error = function_error(&function.invoke(&json!({"bytes": LAMBDA_PAYLOAD_LIMIT + 1}).to_string()).await);
    assert_eq!(error["errorType"], "Function.ResponseSizeTooLarge", "{error}");
    assert_eq!(function.invoke(&json!({"bytes": 4}).to_string()).await.text(), r#""xx""#);
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 3).await;
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.invocations") >= 3);
    assert_eq!(
        count_named(&lines, "aws.lambda.enhanced.invocations"),
        3,
        "telemetry kept up: {lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_mb_events_and_responses_at_lambdas_limit_in_exec_mode() {
    let function = Function::start(&python_runtime(), &[("DD_FLUSH_TO_LOG", "true")], &[]);
    // The child echoes the event's bytes as its response: exactly 6291456 both ways.
    let event = json_string_of(LAMBDA_PAYLOAD_LIMIT);
    let reply = function.invoke(&event).await;
    assert_eq!(reply.header("x-amz-function-error"), None);
    assert_eq!(reply.body.len(), LAMBDA_PAYLOAD_LIMIT);
    assert!(reply.body.as_ref() == event.as_bytes());
    let refused = function.invoke(&json_string_of(LAMBDA_PAYLOAD_LIMIT + 1)).await;
    assert_eq!(refused.status, http::StatusCode::PAYLOAD_TOO_LARGE, "{}", refused.text());
    // The child's own response, at the limit and one byte past it.
    let sized = |bytes: usize| json!({"action": "sized", "bytes": bytes}).to_string();
    let reply = function.invoke(&sized(LAMBDA_PAYLOAD_LIMIT)).await;
    assert_eq!(reply.header("x-amz-function-error"), None);
    assert_eq!(reply.body.len(), LAMBDA_PAYLOAD_LIMIT);
    let error = function_error(&function.invoke(&sized(LAMBDA_PAYLOAD_LIMIT + 1)).await);
    assert_eq!(error["errorType"], "Function.ResponseSizeTooLarge", "{error}");
    assert_eq!(function.invoke(r#""after""#).await.text(), r#""after""#);
    assert_answered_once_by_one_live_bootstrap(&function.emulator, 5, 4).await;
    let lines = function.wait_for_metric_lines(|l| count_named(l, "aws.lambda.enhanced.invocations") >= 4);
    assert_eq!(count_named(&lines, "aws.lambda.enhanced.invocations"), 4, "{lines:?}");
}

// ---------------------------------------------------------------------------------------------
// The Runtime API dropping connections.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_resetting_next_loses_no_invocation_nor_point() {
    let intake = FaultyIntake::start(Vec::new()).await;
    let host = intake.url();
    let function = Function::start(
        &example_handler("metric"),
        &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)],
        &["--fault", "reset-next@2"],
    );
    for n in 0..4 {
        function.invoke_metric(n).await;
    }
    assert!(
        intake
            .wait_for_points(Duration::from_secs(20), every_value_arrived(CUSTOM_METRIC, 4))
            .await
    );
    assert_each_value_once(&intake.points(), CUSTOM_METRIC, 4);
    assert_eq!(function.emulator.stats().await["faults_injected"], 1);
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 4).await;
}

/// The bootstrap must retry a `/response` whose connection dropped before an answer: the
/// invocation is otherwise left unanswered until it times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_api_resetting_response_loses_no_invocation_nor_point() {
    let intake = FaultyIntake::start(Vec::new()).await;
    let host = intake.url();
    let function = Function::start(
        &example_handler("metric"),
        &[("DD_API_KEY", KEY), ("DATADOG_HOST", &host)],
        &["--fault", "reset-response@2", "--timeout", "10"],
    );
    for n in 0..4 {
        function.invoke_metric(n).await;
    }
    assert!(
        intake
            .wait_for_points(Duration::from_secs(20), every_value_arrived(CUSTOM_METRIC, 4))
            .await
    );
    assert_each_value_once(&intake.points(), CUSTOM_METRIC, 4);
    assert_eq!(function.emulator.stats().await["faults_injected"], 1);
    assert_each_answered_once_by_one_live_bootstrap(&function.emulator, 4).await;
}
