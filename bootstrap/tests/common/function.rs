// Shared by the end-to-end metrics tests (included with `#[path]`): the real `bootstrap` binary
// serving the example dylib under the real `lambda-emulator`, and readers for what it prints.
#![allow(dead_code)]
use std::net::UdpSocket;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::emulator_support::{EmulatorProcess, Reply};

/// The function every test emulates: the seed's reference output was captured with these.
pub const FUNCTION: &str = "my-fn";
pub const MEMORY_MB: &str = "512";

/// `libhandlers_example.so`, built by the test command (`cargo build --workspace --all-targets`).
pub fn example_dylib() -> PathBuf {
    let target =
        std::env::var("CARGO_TARGET_DIR").map_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")), PathBuf::from);
    let dylib = target.join("debug/libhandlers_example.so");
    assert!(
        dylib.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace --all-targets`, as scripts/test.sh does)",
        dylib.display()
    );
    dylib
}

/// A free UDP port on 127.0.0.1 for the bootstrap's DogStatsD listener (`DD_DOGSTATSD_PORT`), so
/// tests running side by side never share 8125.
pub fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The bootstrap, serving `handler` of the example dylib as `my-fn` (512 MB), with `env` on top
/// of what the emulator sets, under a fresh emulator with `flags`.
pub struct Function {
    pub emulator: EmulatorProcess,
    pub dogstatsd_port: u16,
}

impl Function {
    pub fn start(handler: &str, env: &[(&str, &str)], flags: &[&str]) -> Self {
        let dogstatsd_port = free_udp_port();
        let mut args: Vec<String> = ["--function-name", FUNCTION, "--memory", MEMORY_MB]
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        args.extend(flags.iter().map(std::string::ToString::to_string));
        let handler = format!("{}:{handler}", example_dylib().display());
        let port = dogstatsd_port.to_string();
        let mut all_env = vec![("_HANDLER", handler.as_str()), ("DD_DOGSTATSD_PORT", port.as_str())];
        all_env.extend_from_slice(env);
        for (k, v) in all_env {
            args.push("--env".into());
            args.push(format!("{k}={v}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let emulator = EmulatorProcess::start(&args, &[env!("CARGO_BIN_EXE_bootstrap")]);
        // The bootstrap binds its DogStatsD port before it registers its internal extension, so
        // once the emulator saw the registration, datagrams sent here are heard.
        if let Err(stderr) = emulator.stderr.wait_for("extension registered", Duration::from_secs(20)) {
            assert!(
                env.iter().any(|(k, _)| *k == "HANDLERS_EXAMPLE_INIT"),
                "the bootstrap never registered its extension; stderr:\n{stderr}"
            );
        }
        Self { emulator, dogstatsd_port }
    }

    pub async fn invoke(&self, event: &str) -> Reply {
        self.emulator.invoke(event).await
    }

    /// Sends one DogStatsD datagram to the bootstrap's listener, as an exec child would.
    pub fn statsd(&self, datagram: &[u8]) {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.send_to(datagram, ("127.0.0.1", self.dogstatsd_port)).unwrap();
    }

    /// Every metric line the runtime printed so far, parsed.
    pub fn metric_lines(&self) -> Vec<Value> {
        metric_lines(&self.emulator.stdout.text())
    }

    /// Waits until a metric line satisfies `wanted`; panics with the whole output otherwise.
    pub fn wait_for_metric(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            if let Some(line) = self.metric_lines().into_iter().find(|l| wanted(l)) {
                return line;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no metric line for {what}; stdout:\n{}\nstderr:\n{}",
                self.emulator.stdout.text(),
                self.emulator.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the emulator handed `n` invocations to the runtime (its debug log says so).
    pub fn wait_for_handoffs(&self, n: usize) {
        let start = Instant::now();
        while self.stderr().matches("invocation handed to the runtime").count() < n {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the emulator never handed invocation {n} over:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (up to 10 s) until stderr holds `text`, and returns it: a line written after the
    /// answer it follows (the report of a crash during init posts first, then logs).
    pub fn wait_for_stderr(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let stderr = self.stderr();
            if stderr.contains(text) || start.elapsed() > Duration::from_secs(10) {
                return stderr;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits for `text` as [`Self::wait_for_stderr`] does, and fails the test with what stderr
    /// held when it never came; returns stderr.
    pub fn assert_stderr_holds(&self, text: &str) -> String {
        let stderr = self.wait_for_stderr(text);
        assert!(stderr.contains(text), "stderr never held {text:?}:\n{stderr}");
        stderr
    }

    /// The bootstrap's and the emulator's stderr so far.
    pub fn stderr(&self) -> String {
        self.emulator.stderr.text()
    }
}

/// The Forwarder's metric lines among `stdout`'s lines: `{"m":...}` objects.
pub fn metric_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.starts_with("{\"m\":"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a metric line that is not JSON ({e}): {l}")))
        .collect()
}

pub fn name(line: &Value) -> &str {
    line["m"].as_str().unwrap_or_default()
}

pub fn tags(line: &Value) -> Vec<&str> {
    line["t"]
        .as_array()
        .map(|t| t.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

pub fn has_tag(line: &Value, tag: &str) -> bool {
    tags(line).contains(&tag)
}

/// The runtime tag the bootstrap should derive from this machine's `/etc/os-release`, as
/// Datadog's Extension does: `provided.al2` / `provided.al2023` on Amazon Linux, else `unknown`.
pub fn expected_runtime_tag() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = text
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .unwrap_or_default()
        .replace('"', "");
    let runtime = if pretty == "Amazon Linux 2" {
        "provided.al2"
    } else if pretty.starts_with("Amazon Linux 2023") {
        "provided.al2023"
    } else {
        "unknown"
    };
    format!("runtime:{runtime}")
}
