//! Runs a peer runtime under the real `lambda-emulator` (the bootstrap package's binary, built
//! beside this package's by `cargo build --workspace`) and invokes it with curl, as a user would.
//! The emulator relays the runtime's stdout to its own and starts it with Lambda's environment.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A bound on every wait, so a broken peer fails its test instead of hanging it.
const PATIENCE: Duration = Duration::from_mins(1);

/// The directory holding this package's binaries, and the workspace's other artifacts.
pub fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_lambda-runtime-echo"))
        .parent()
        .map(Path::to_path_buf)
        .expect("binaries live in a directory")
}

fn emulator_binary() -> PathBuf {
    let path = artifacts_dir().join("lambda-emulator");
    assert!(
        path.is_file(),
        "{} is missing: build the whole workspace first (`cargo build --workspace`, as scripts/test.sh does)",
        path.display()
    );
    path
}

/// Text read from a child's stream as it arrives.
#[derive(Clone, Default)]
pub struct Output(Arc<(Mutex<String>, Condvar)>);

impl Output {
    fn read_from(stream: impl Read + Send + 'static) -> Self {
        let output = Output::default();
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                sink.0 .0.lock().unwrap().push_str(&line);
                sink.0 .1.notify_all();
                line.clear();
            }
        });
        output
    }

    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap().clone()
    }

    /// Waits until the text contains `needle`, and returns it.
    pub fn wait_for(&self, needle: &str) -> String {
        let (text, arrived) = &*self.0;
        let start = Instant::now();
        let mut guard = text.lock().unwrap();
        while !guard.contains(needle) {
            let left = PATIENCE
                .checked_sub(start.elapsed())
                .unwrap_or_else(|| panic!("never saw {needle:?} in:\n{}", *guard));
            guard = arrived.wait_timeout(guard, left).unwrap().0;
        }
        guard.clone()
    }
}

/// An invoke's answer.
#[derive(Debug)]
pub struct Invoked {
    pub status: u16,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Invoked {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Lambda's mark of a function error: `X-Amz-Function-Error: Unhandled`.
    pub fn is_function_error(&self) -> bool {
        self.header("x-amz-function-error") == Some("Unhandled")
    }
}

/// `lambda-emulator --listen 127.0.0.1:0 --timeout 60 [--env K=V]... -- COMMAND`, stopped when
/// dropped (also when a test panics).
pub struct Emulator {
    child: Child,
    address: String,
    pub stdout: Output,
    pub stderr: Output,
}

impl Emulator {
    /// Starts COMMAND as the runtime, with `task_root` as its directory (LAMBDA_TASK_ROOT).
    pub fn start(task_root: &Path, env: &[(&str, &str)], command: &[&str]) -> Self {
        let mut emulator = Command::new(emulator_binary());
        emulator.args(["--listen", "127.0.0.1:0", "--function-name", "peer", "--timeout", "60"]);
        for (key, value) in env {
            emulator.arg("--env").arg(format!("{key}={value}"));
        }
        let mut child = emulator
            .arg("--")
            .args(command)
            .current_dir(task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lambda-emulator binary starts");
        let stdout = Output::read_from(child.stdout.take().unwrap());
        let stderr = Output::read_from(child.stderr.take().unwrap());
        let mut emulator = Self {
            child,
            address: String::new(),
            stdout,
            stderr,
        };
        let text = emulator.stderr.wait_for("listening on ");
        text.split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("an address follows `listening on`")
            .clone_into(&mut emulator.address);
        emulator
    }

    /// `POST /2015-03-31/functions/peer/invocations` with `event`.
    pub fn invoke(&self, event: &[u8]) -> Invoked {
        let url = format!("http://{}/2015-03-31/functions/peer/invocations", self.address);
        let (head, body) = curl(&["-X", "POST", "--data-binary", "@-", &url], event);
        let mut lines = head.lines();
        let status = lines
            .next()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("no status line in {head:?}"));
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
            .collect();
        Invoked { status, headers, body }
    }

    /// The emulator's counters (`GET /2015-03-31/emulator/stats`).
    pub fn stats(&self) -> serde_json::Value {
        let url = format!("http://{}/2015-03-31/emulator/stats", self.address);
        let (_, body) = curl(&[&url], b"");
        serde_json::from_slice(&body).expect("the stats are JSON")
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM: the emulator shuts its runtime down as Lambda would, then exits.
            // SAFETY: kill(2) with our own child's pid.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs curl with `stdin` as its input; returns the response head and body.
fn curl(args: &[&str], stdin: &[u8]) -> (String, Vec<u8>) {
    let mut child = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-D", "-"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
    let split = output
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("curl printed a response head");
    let head = String::from_utf8_lossy(&output.stdout[..split]).into_owned();
    (head, output.stdout[split + 4..].to_vec())
}
