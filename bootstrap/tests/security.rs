//! Security properties of a full run: the real `bootstrap` in exec mode under the real
//! `lambda-emulator`, with everything on (the loopback Runtime API proxy, DogStatsD, the
//! universal-instrumentation and trace-agent listeners, tracing, enhanced metrics, API mode
//! against a recording intake, X-Ray).
//!
//! - every socket the bootstrap listens on (TCP `LISTEN`, unconnected bound UDP) is on
//!   127.0.0.1, read from `/proc/<pid>/fd` and `/proc/<pid>/net/{tcp,tcp6,udp,udp6}`;
//! - a known API key (plain, or decrypted by KMS) reaches the intake's `DD-API-KEY` header and
//!   never shows in any output of the emulator, the bootstrap or the child, at debug level;
//! - an exec child starts with descriptors 0, 1 and 2 only;
//! - a child cannot answer a request id it was not given (a dead predecessor's, an answered
//!   one, an invented one, another invocation's still queued in the bootstrap): 400, and every
//!   invocation gets exactly its own one answer (the emulator's counters).
//!
//! Every port is a free one chosen by the test, so tests run side by side.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/intake.rs"]
mod intake;

#[path = "common/moto.rs"]
mod moto;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;
use emulator_support::{EmulatorProcess, Reply};
use intake::{Intake, IntakeOptions, Journal};
use serde_json::{json, Value};

const FUNCTION: &str = "security-fn";
/// What the forging runtime uses as an id nobody was ever given.
const INVENTED_ID: &str = "00000000-0000-4000-8000-000000000000";
const PATIENCE: Duration = Duration::from_secs(20);

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/security")
        .join(name)
        .display()
        .to_string()
}

fn python() -> String {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python3");
    assert!(python.exists(), "{} is missing: run scripts/setup-peers.sh", python.display());
    python.display().to_string()
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The bootstrap with everything on, serving `handler` (an exec command line).
struct Run {
    emulator: EmulatorProcess,
    /// `SECURITY_STATE_DIR` of the forging runtime.
    state: tempfile::TempDir,
    statsd_port: u16,
    universal_port: u16,
    agent_port: u16,
    /// Where the X-Ray daemon would be: the bootstrap sends its subsegments here.
    _xray_daemon: UdpSocket,
}

impl Run {
    /// `runtime` is the emulator's command (normally just the bootstrap); `env` comes on top of
    /// (and replaces) the defaults.
    fn start_command(handler: &str, env: &[(&str, &str)], runtime: &[&str]) -> Run {
        let state = tempfile::tempdir().unwrap();
        let xray_daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (statsd_port, universal_port, agent_port) = (free_udp_port(), free_tcp_port(), free_tcp_port());
        let mut pairs: BTreeMap<String, String> = [
            ("DD_LAMBDA_HANDLER", handler.to_owned()),
            ("SECURITY_STATE_DIR", state.path().display().to_string()),
            ("DD_TRACE_ENABLED", "true".to_owned()),
            ("DD_ENHANCED_METRICS", "true".to_owned()),
            ("DD_MERGE_XRAY_TRACES", "true".to_owned()),
            ("AWS_XRAY_DAEMON_ADDRESS", xray_daemon.local_addr().unwrap().to_string()),
            ("DD_DOGSTATSD_PORT", statsd_port.to_string()),
            ("DD_UNIVERSAL_INSTRUMENTATION_PORT", universal_port.to_string()),
            ("DD_APM_RECEIVER_PORT", agent_port.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        pairs.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let env_flags: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut flags = vec!["--function-name", FUNCTION, "--timeout", "30"];
        for pair in &env_flags {
            flags.extend(["--env", pair.as_str()]);
        }
        let emulator = EmulatorProcess::start(&flags, runtime);
        Run {
            emulator,
            state,
            statsd_port,
            universal_port,
            agent_port,
            _xray_daemon: xray_daemon,
        }
    }

    fn start(handler: &str, env: &[(&str, &str)]) -> Run {
        Self::start_command(handler, env, &[env!("CARGO_BIN_EXE_bootstrap")])
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.state.path().join(name)
    }

    /// Waits until the forging runtime created `name` in its state directory; its content.
    fn wait_for_state_file(&self, name: &str) -> String {
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(self.state_file(name)) {
                if text.ends_with('\n') {
                    return text.trim().to_owned();
                }
            }
            assert!(
                started.elapsed() < PATIENCE,
                "the runtime never wrote {name}; stderr:\n{}",
                self.emulator.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Creates `name` in the state directory whole (written aside, then renamed).
    fn put_state_file(&self, name: &str, content: &str) {
        let aside = self.state_file(&format!(".{name}"));
        std::fs::write(&aside, content).unwrap();
        std::fs::rename(aside, self.state_file(name)).unwrap();
    }

    /// Everything the emulator printed, which includes the bootstrap's and the child's output.
    fn all_output(&self) -> String {
        format!("{}\n{}", self.emulator.stdout.text(), self.emulator.stderr.text())
    }
}

fn request_id(reply: &Reply) -> String {
    reply.header("x-amzn-requestid").unwrap_or_default().to_owned()
}

// ---- Sockets, as the kernel lists them ----

/// One of the process's sockets from `/proc/<pid>/net/*`.
#[derive(Debug, Clone)]
struct Socket {
    table: &'static str,
    local: SocketAddr,
    remote: SocketAddr,
    /// The kernel's TCP state number (`0A` is LISTEN; UDP sockets show `07`, closed).
    state: u8,
}

const TCP_LISTEN: u8 = 0x0a;

impl Socket {
    fn is_tcp(&self) -> bool {
        self.table.starts_with("tcp")
    }

    /// A TCP socket in LISTEN, or a UDP socket bound to a port and connected to no peer: it
    /// takes connections or datagrams from whoever reaches its address.
    fn is_listening(&self) -> bool {
        if self.is_tcp() {
            self.state == TCP_LISTEN
        } else {
            self.local.port() != 0 && self.remote.port() == 0
        }
    }
}

/// `/proc` prints each 32-bit word of an address as the host-order number, in hex.
fn parse_proc_address(hex: &str) -> SocketAddr {
    let (ip, port) = hex.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).unwrap().to_ne_bytes())
        .collect();
    let ip = match words.as_slice() {
        [v4] => IpAddr::V4(Ipv4Addr::from(*v4)),
        _ => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(words.concat()).unwrap())),
    };
    SocketAddr::new(ip, port)
}

/// The socket inodes among `pid`'s open descriptors.
fn socket_inodes(pid: u32) -> HashSet<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?.to_owned();
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect()
}

/// Every IP socket `pid` holds open.
fn process_sockets(pid: u32) -> Vec<Socket> {
    let inodes = socket_inodes(pid);
    let mut sockets = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(inode) = fields.get(9).and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            if inode == 0 || !inodes.contains(&inode) {
                continue;
            }
            sockets.push(Socket {
                table,
                local: parse_proc_address(fields[1]),
                remote: parse_proc_address(fields[2]),
                state: u8::from_str_radix(fields[3], 16).unwrap(),
            });
        }
    }
    sockets
}

#[test]
fn proc_addresses_are_decoded() {
    // As this (little-endian) kernel prints them.
    if cfg!(target_endian = "little") {
        assert_eq!(parse_proc_address("0100007F:1F90"), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(parse_proc_address("00000000:1FBD"), "0.0.0.0:8125".parse().unwrap());
        assert_eq!(
            parse_proc_address("00000000000000000000000001000000:1FBE"),
            "[::1]:8126".parse().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_binds_loopback_only() {
    let intake = Intake::start(IntakeOptions::default(), Journal::default()).await;
    let host = intake.url();
    let handler = fixture("runtime.sh");
    let run = Run::start(&handler, &[("DD_API_KEY", "listeners-test-key"), ("DATADOG_HOST", &host)]);

    // An invocation held by the child: everything the bootstrap runs is up.
    let held = run.emulator.spawn_invoke(r#"{"hold": true}"#);
    run.emulator
        .stdout
        .wait_for("security runtime: handling an invocation", PATIENCE)
        .unwrap_or_else(|text| panic!("the child never got the invocation:\n{text}\n{}", run.emulator.stderr.text()));
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", run.universal_port)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", run.agent_port)).is_err()
    {
        assert!(started.elapsed() < PATIENCE, "the trace endpoints never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = run.emulator.stats().await["runtime_pid"].as_u64().expect("a runtime runs") as u32;
    let sockets = process_sockets(pid);

    run.put_state_file("release", "go");
    let reply = held.await.unwrap();
    let proxy: SocketAddr = reply.json()["runtime_api"].as_str().unwrap().parse().unwrap();

    let listening: Vec<&Socket> = sockets.iter().filter(|s| s.is_listening()).collect();
    let exposed: Vec<&&Socket> = listening
        .iter()
        .filter(|s| s.local.ip() != IpAddr::V4(Ipv4Addr::LOCALHOST))
        .collect();
    assert!(exposed.is_empty(), "listening beyond 127.0.0.1: {exposed:#?}\nall: {sockets:#?}");
    let listens = |tcp: bool, port: u16| listening.iter().any(|s| s.is_tcp() == tcp && s.local.port() == port);
    assert!(listens(true, proxy.port()), "the Runtime API proxy ({proxy}): {sockets:#?}");
    assert!(listens(true, run.universal_port), "universal instrumentation: {sockets:#?}");
    assert!(listens(true, run.agent_port), "trace agent: {sockets:#?}");
    assert!(listens(false, run.statsd_port), "DogStatsD: {sockets:#?}");
    assert_eq!(proxy.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST), "the child's AWS_LAMBDA_RUNTIME_API");
}

// ---- The API key never printed ----

/// Every 8-character piece of `key`: a truncated or partly masked key counts as printed.
fn key_pieces(key: &str) -> Vec<&str> {
    (0..=key.len() - 8).map(|i| &key[i..i + 8]).collect()
}

/// Runs invocations with the key in use (a custom metric flushed to the intake), stops the
/// emulator, and checks that the key reached the intake and no output holds any piece of it.
async fn assert_key_used_and_never_printed(key: &str, key_env: &[(&str, &str)]) {
    let intake = Intake::start(IntakeOptions::default(), Journal::default()).await;
    let host = intake.url();
    let mut env = vec![("DATADOG_HOST", host.as_str()), ("DD_LOG_LEVEL", "debug")];
    env.extend_from_slice(key_env);
    let handler = fixture("runtime.sh");
    let mut run = Run::start(&handler, &env);

    let sent = run.emulator.invoke(r#"{"statsd": true}"#).await;
    assert_eq!(sent.json(), json!({"sent": 1}), "{}", run.emulator.stderr.text());
    let echoed = run.emulator.invoke(r#"{"second": true}"#).await;
    assert_eq!(echoed.json(), json!({"second": true}));
    assert!(
        intake.wait_for_requests(1, PATIENCE).await,
        "nothing reached the intake; stderr:\n{}",
        run.emulator.stderr.text()
    );
    run.emulator.terminate();
    // The emulator has exited: its pipes end once their reader threads drained them.
    run.emulator
        .stderr
        .wait_for("runtime exited at shutdown", PATIENCE)
        .unwrap_or_else(|text| panic!("no shutdown line:\n{text}"));

    let requests = intake.requests();
    assert!(
        requests.iter().all(|r| r.headers["dd-api-key"] == key),
        "every intake request carries the key: {:?}",
        requests.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    let output = run.all_output();
    // The search covers all three: the emulator's lines, the bootstrap's (at debug level) and
    // the child's.
    for evidence in [
        "[lambda-emulator]",
        "DEBUG invocation answered",
        "security runtime: handling an invocation",
    ] {
        assert!(output.contains(evidence), "no {evidence:?} in the output:\n{output}");
    }
    for piece in key_pieces(key) {
        assert!(!output.contains(piece), "{piece:?} (of the API key) was printed:\n{output}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_api_key_is_used_and_never_printed() {
    let key = "zqxwPlainKey4815kjhv1623plmnbvcx";
    assert_key_used_and_never_printed(key, &[("DD_API_KEY", key)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kms_decrypted_api_key_is_used_and_never_printed() {
    let key = "zqxwKmsKey42jhgf0987poiuytrewqas";
    let moto = moto::moto();
    let kms = aws_sdk_kms::Client::new(&moto::sdk(&moto.endpoint, "us-east-1").await);
    let key_id = kms.create_key().send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    let blob = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(key.as_bytes()))
        .encryption_context("LambdaFunctionName", FUNCTION)
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone()
        .into_inner();
    let ciphertext = base64::engine::general_purpose::STANDARD.encode(blob);
    let env = [
        ("DD_KMS_API_KEY", ciphertext.as_str()),
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    assert_key_used_and_never_printed(key, &env).await;
}

// ---- Descriptors an exec child starts with ----

/// The descriptors `fd_runtime.py` reports, fd -> target.
fn reported_fds(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value["fds"].clone()).unwrap_or_else(|e| panic!("{e}: {value}"))
}

#[test]
fn the_descriptor_listing_sees_an_inherited_descriptor() {
    // The check the next test relies on: a descriptor left open across exec is listed.
    let output = std::process::Command::new("/bin/sh")
        .args(["-c", "exec \"$0\" \"$1\" --list 7</dev/null"])
        .args([python(), fixture("fd_runtime.py")])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let fds: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(fds.get("7").map(String::as_str), Some("/dev/null"), "{fds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_child_inherits_no_descriptor_of_the_bootstrap() {
    let intake = Intake::start(IntakeOptions::default(), Journal::default()).await;
    let host = intake.url();
    let handler = format!("{} {}", python(), fixture("fd_runtime.py"));
    // The bootstrap's own parent leaves descriptor 9 open to it, as a careless one would.
    let run = Run::start_command(
        &handler,
        &[("DD_API_KEY", "fd-test-key"), ("DATADOG_HOST", &host)],
        &["/bin/sh", "-c", "exec \"$0\" 9</dev/null", env!("CARGO_BIN_EXE_bootstrap")],
    );
    let first = run.emulator.invoke("{}").await;
    let fds = reported_fds(&first.json());
    let pid = run.emulator.stats().await["runtime_pid"].as_u64().unwrap() as u32;
    let bootstrap_fds = std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();

    assert_eq!(
        fds.keys().map(String::as_str).collect::<Vec<_>>(),
        ["0", "1", "2"],
        "the child got more than stdio: {fds:#?}"
    );
    assert_eq!(fds["0"], "/dev/null");
    assert!(fds["1"].starts_with("pipe:") && fds["2"].starts_with("pipe:"), "{fds:#?}");
    // The bootstrap did have descriptors to leak: its sockets, its pipes, the inherited 9.
    assert!(bootstrap_fds > 10, "the bootstrap holds only {bootstrap_fds} descriptors");
    assert!(
        std::fs::read_link(format!("/proc/{pid}/fd/9")).is_ok(),
        "the bootstrap kept its inherited descriptor 9"
    );
}

// ---- Answers for ids the child was not given ----

/// The forging runtime's report: (id, /response status, /error status) per forged id.
fn forged(reply: &Reply) -> Vec<(String, u64, u64)> {
    let body = reply.json();
    body["forged"]
        .as_array()
        .unwrap_or_else(|| panic!("no forged list: {body}"))
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap().to_owned(),
                f["response"].as_u64().unwrap(),
                f["error"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cannot_answer_ids_of_earlier_invocations_or_invented_ones() {
    let handler = fixture("runtime.sh");
    let run = Run::start(&handler, &[("DD_FLUSH_TO_LOG", "true")]);

    let answered = run.emulator.invoke(r#"{"first": true}"#).await;
    assert_eq!(answered.json(), json!({"first": true}));
    // The child dies holding the second invocation and is started again.
    let died = run.emulator.invoke(r#"{"exit": true}"#).await;
    assert_eq!(died.json()["errorType"], "Runtime.ExitError", "{}", died.text());
    let forging = run.emulator.invoke(r#"{"forge-old": true}"#).await;

    let expected: Vec<(String, u64, u64)> = [request_id(&answered), request_id(&died), INVENTED_ID.to_owned()]
        .into_iter()
        .map(|id| (id, 400, 400))
        .collect();
    assert_eq!(forged(&forging), expected, "{}", run.emulator.stderr.text());
    let stats = run.emulator.stats().await;
    assert_eq!(stats["invokes_received"], 3, "{stats}");
    assert_eq!(stats["answers_delivered"], 3, "one answer each: {stats}");
    assert_eq!(stats["answers_refused"], 0, "no forged answer reached Lambda: {stats}");
}

/// The request ids the emulator handed to the runtime so far, from its debug log.
fn handed_ids(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains("invocation handed to the runtime"))
        .filter_map(|l| {
            let rest = l.split("request_id=").nth(1)?;
            Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_cannot_answer_an_invocation_queued_for_it() {
    let handler = fixture("runtime.sh");
    let run = Run::start(&handler, &[("DD_FLUSH_TO_LOG", "true"), ("AWS_LAMBDA_MAX_CONCURRENCY", "2")]);

    // The child holds the first invocation; the bootstrap takes the second from Lambda and
    // queues it, since the child polls one at a time.
    let holding = run.emulator.spawn_invoke(r#"{"forge-queued": true}"#);
    let holder = run.wait_for_state_file("holder");
    let queued = run.emulator.spawn_invoke(r#"{"queued": "its own answer"}"#);
    let started = Instant::now();
    let target = loop {
        let ids = handed_ids(&run.emulator.stderr.text());
        if let Some(other) = ids.into_iter().find(|id| *id != holder) {
            break other;
        }
        assert!(started.elapsed() < PATIENCE, "the second invocation never left the emulator");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    run.put_state_file("target", &format!("{target}\n"));

    let holding = holding.await.unwrap();
    assert_eq!(forged(&holding), [(target.clone(), 400, 400)], "{}", run.emulator.stderr.text());
    let queued = queued.await.unwrap();
    assert_eq!(request_id(&queued), target);
    assert_eq!(
        queued.json(),
        json!({"queued": "its own answer"}),
        "the real answer, not the forged one"
    );
    let stats = run.emulator.stats().await;
    assert_eq!(stats["invokes_received"], 2, "{stats}");
    assert_eq!(stats["answers_delivered"], 2, "one answer each: {stats}");
    assert_eq!(stats["answers_refused"], 0, "no forged answer reached Lambda: {stats}");
}
