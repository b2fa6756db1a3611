//! Drives the real `lambda-emulator` binary: starts it on a free loopback port, collects its
//! output, and talks HTTP to it.
#![allow(dead_code)]
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn runtime_fixture(name: &str) -> String {
    fixtures().join("runtimes").join(name).to_string_lossy().into_owned()
}

/// Output collected from one stream, with a way to wait for a line. Lines that are not UTF-8
/// are kept: as bytes in [`Collected::raw`], lossily in [`Collected::text`].
#[derive(Clone, Default)]
pub struct Collected(Arc<(Mutex<Output>, Condvar)>);

#[derive(Default)]
pub struct Output {
    text: String,
    raw: Vec<u8>,
}

impl Collected {
    pub fn spawn_reader(stream: impl Read + Send + 'static) -> Self {
        let collected = Collected::default();
        let sink = collected.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream);
            let mut line = Vec::new();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                let (output, ready) = &*sink.0;
                let mut output = output.lock().unwrap();
                output.text.push_str(&String::from_utf8_lossy(&line));
                output.raw.extend_from_slice(&line);
                ready.notify_all();
                line.clear();
            }
        });
        collected
    }

    pub fn text(&self) -> String {
        self.0 .0.lock().unwrap().text.clone()
    }

    /// Every byte collected so far.
    pub fn raw(&self) -> Vec<u8> {
        self.0 .0.lock().unwrap().raw.clone()
    }

    /// Waits until the collected text contains `needle`; returns the text either way.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Result<String, String> {
        let (output, ready) = &*self.0;
        let start = Instant::now();
        let mut guard = output.lock().unwrap();
        while !guard.text.contains(needle) {
            let left = limit.checked_sub(start.elapsed()).ok_or_else(|| guard.text.clone())?;
            guard = ready.wait_timeout(guard, left).unwrap().0;
        }
        Ok(guard.text.clone())
    }
}

pub struct EmulatorProcess {
    child: Child,
    pub addr: String,
    pub stdout: Collected,
    pub stderr: Collected,
}

impl EmulatorProcess {
    /// `lambda-emulator --listen 127.0.0.1:0 FLAGS -- COMMAND`, in `dir` (the task root).
    pub fn start_in(dir: &Path, flags: &[&str], command: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"))
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .arg("--")
            .args(command)
            .current_dir(dir)
            .env("LAMBDA_EMULATOR_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the lambda-emulator binary starts");
        let stdout = Collected::spawn_reader(child.stdout.take().unwrap());
        let stderr = Collected::spawn_reader(child.stderr.take().unwrap());
        let text = match stderr.wait_for("listening on ", Duration::from_secs(20)) {
            Ok(text) => text,
            Err(text) => {
                let _ = child.kill();
                panic!("the emulator never said where it listens; stderr:\n{text}");
            }
        };
        let addr = text
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap()
            .to_owned();
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    pub fn start(flags: &[&str], command: &[&str]) -> Self {
        Self::start_in(&std::env::temp_dir(), flags, command)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn invoke_url(&self) -> String {
        self.url("/2015-03-31/functions/function/invocations")
    }

    /// Sends SIGTERM and waits for the emulator to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        terminate(&mut self.child)
    }

    pub async fn stats(&self) -> serde_json::Value {
        let reply = get(&self.url("/2015-03-31/emulator/stats"), &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.json()
    }

    /// Invokes in the background (while the test plays the runtime, say).
    pub fn spawn_invoke(&self, event: &str) -> tokio::task::JoinHandle<Reply> {
        let url = self.invoke_url();
        let event = event.as_bytes().to_vec();
        tokio::spawn(async move { post(&url, event, &[]).await })
    }

    pub async fn invoke(&self, event: &str) -> Reply {
        post(&self.invoke_url(), event.as_bytes().to_vec(), &[]).await
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        stop_gracefully(&mut self.child);
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

pub async fn send(method: &str, url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client().request(request.body(Full::new(Bytes::from(body))).unwrap()).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply { status, headers, body }
}

pub async fn post(url: &str, body: Vec<u8>, headers: &[(&str, &str)]) -> Reply {
    send("POST", url, body, headers).await
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", url, Vec::new(), headers).await
}

/// Polls the stats until `field` reaches `at_least`.
pub async fn wait_for_stat(emulator: &EmulatorProcess, field: &str, at_least: u64) {
    let start = Instant::now();
    loop {
        let stats = emulator.stats().await;
        if stats[field].as_u64().unwrap() >= at_least {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{field} never reached {at_least}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, as Lambda ends a sandbox, then SIGKILL if the process is still there after 5 s.
pub fn stop_gracefully(child: &mut std::process::Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) with our own child's pid.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// SIGTERM to an emulator we started, then its exit status (a panic if it takes over 10 s).
pub fn terminate(child: &mut std::process::Child) -> ExitStatus {
    // SAFETY: kill(2) with our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("the emulator did not exit within 10 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
