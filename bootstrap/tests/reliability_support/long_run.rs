//! A function for long runs: the real `lambda-emulator` running the real `bootstrap`, its
//! stdout tallied as it streams (see [`super::tally`]) and its stderr kept only in part, invoked
//! over one keep-alive connection.
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::tally::TalliedStream;

/// Stderr lines kept: the last ones, and the first warnings and errors.
const KEPT_LINES: usize = 200;

#[derive(Default)]
struct StderrState {
    tail: VecDeque<String>,
    warnings: Vec<String>,
    warning_count: u64,
    listening: Option<String>,
    /// The emulator saw the bootstrap register its extension: its listeners are bound.
    registered: bool,
}

/// The bootstrap's and the emulator's stderr, kept in part.
#[derive(Clone, Default)]
pub struct KeptStderr(Arc<(Mutex<StderrState>, Condvar)>);

impl KeptStderr {
    fn spawn(stream: impl std::io::Read + Send + 'static) -> Self {
        let kept = KeptStderr::default();
        let sink = kept.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                line.clear();
                let (state, ready) = &*sink.0;
                let mut state = state.lock().unwrap();
                if state.listening.is_none() {
                    if let Some(rest) = text.split("listening on ").nth(1) {
                        state.listening = rest.split_whitespace().next().map(str::to_owned);
                        ready.notify_all();
                    }
                }
                if text.contains("extension registered") {
                    state.registered = true;
                    ready.notify_all();
                }
                if text.contains("WARN") || text.contains("ERROR") {
                    state.warning_count += 1;
                    if state.warnings.len() < KEPT_LINES {
                        state.warnings.push(text.clone());
                    }
                }
                state.tail.push_back(text);
                if state.tail.len() > KEPT_LINES {
                    state.tail.pop_front();
                }
            }
        });
        kept
    }

    fn wait_for_address(&self, limit: Duration) -> Option<String> {
        let (state, ready) = &*self.0;
        let guard = state.lock().unwrap();
        let (guard, _) = ready.wait_timeout_while(guard, limit, |s| s.listening.is_none()).unwrap();
        guard.listening.clone()
    }

    fn wait_for_registration(&self, limit: Duration) -> bool {
        let (state, ready) = &*self.0;
        let guard = state.lock().unwrap();
        let (guard, _) = ready.wait_timeout_while(guard, limit, |s| !s.registered).unwrap();
        guard.registered
    }

    /// Warning and error lines: how many, and the first ones.
    pub fn warnings(&self) -> (u64, Vec<String>) {
        let state = self.0 .0.lock().unwrap();
        (state.warning_count, state.warnings.clone())
    }

    pub fn tail(&self) -> String {
        let state = self.0 .0.lock().unwrap();
        state.tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

pub struct LongRunFunction {
    child: Child,
    pub addr: String,
    pub stdout: TalliedStream,
    pub stderr: KeptStderr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// One invoke's answer: status, whether it was a function error, body.
pub struct Answer {
    pub status: u16,
    pub function_error: bool,
    pub body: Bytes,
}

impl LongRunFunction {
    /// `lambda-emulator --listen 127.0.0.1:0 FLAGS --env K=V... -- bootstrap`, in `dir`;
    /// `custom_metric` is the metric whose values the tally counts.
    pub fn start(dir: &Path, flags: &[&str], env: &[(String, String)], custom_metric: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"));
        command.args(["--listen", "127.0.0.1:0"]).args(flags);
        for (k, v) in env {
            command.arg("--env").arg(format!("{k}={v}"));
        }
        let mut child = command
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_bootstrap"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lambda-emulator binary starts");
        let stdout = TalliedStream::spawn(child.stdout.take().unwrap(), custom_metric);
        let stderr = KeptStderr::spawn(child.stderr.take().unwrap());
        let Some(addr) = stderr.wait_for_address(Duration::from_secs(20)) else {
            let _ = child.kill();
            panic!("the emulator never said where it listens:\n{}", stderr.tail());
        };
        // The bootstrap binds its DogStatsD port before it registers its internal extension:
        // datagrams sent after that are heard.
        assert!(
            stderr.wait_for_registration(Duration::from_secs(30)),
            "the bootstrap never registered its extension:\n{}",
            stderr.tail()
        );
        Self {
            child,
            addr,
            stdout,
            stderr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub async fn invoke(&self, event: Bytes) -> Answer {
        let request = Request::post(format!("http://{}/2015-03-31/functions/function/invocations", self.addr))
            .body(Full::new(event))
            .unwrap();
        let response = self.client.request(request).await.expect("the invoke is answered");
        let status = response.status().as_u16();
        let function_error = response.headers().contains_key("x-amz-function-error");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            function_error,
            body,
        }
    }

    pub async fn stats(&self) -> serde_json::Value {
        let request = Request::get(format!("http://{}/2015-03-31/emulator/stats", self.addr))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    /// The bootstrap's process id, as the emulator reports it.
    pub async fn runtime_pid(&self) -> u32 {
        let stats = self.stats().await;
        stats["runtime_pid"].as_u64().expect("a runtime runs") as u32
    }

    /// SIGTERM to the emulator (it shuts the runtime down as Lambda does), then waits.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        crate::emulator_support::terminate(&mut self.child)
    }
}

impl Drop for LongRunFunction {
    fn drop(&mut self) {
        crate::emulator_support::stop_gracefully(&mut self.child);
    }
}
