//! One `lambda-emulator` process per case: started on a free loopback port with the case's
//! runtime, asked for its stats, stopped the way Lambda stops a sandbox (SIGTERM).
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::cases::Case;
use crate::http1::Connection;
use crate::BenchError;

/// RIE's invoke path; the emulator takes any function name.
pub const INVOKE_PATH: &str = "/2015-03-31/functions/bench/invocations";
const STATS_PATH: &str = "/2015-03-31/emulator/stats";
/// How long the emulator gets to say where it listens.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long it gets to exit after SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(5);
/// Lines of the emulator's stderr kept to explain a failure.
const TAIL_LINES: usize = 40;
/// Long enough that a loaded machine never turns a slow invoke into a timeout (a cold start).
const FUNCTION_TIMEOUT_SECONDS: &str = "60";

/// The emulator's stats (see `bootstrap/src/emulator/stats.rs`), the fields the bench reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct EmulatorStats {
    pub invokes_received: u64,
    pub function_errors: u64,
    pub runtime_starts: u64,
    pub runtime_pid: Option<u32>,
    pub first_next_after_start_us: Option<u64>,
}

/// The last lines the emulator (and the runtime, whose stderr it relays) wrote to stderr.
#[derive(Clone, Default)]
struct OutputTail(Arc<Mutex<VecDeque<String>>>);

impl OutputTail {
    fn push(&self, line: String) {
        let mut lines = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if lines.len() == TAIL_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    fn text(&self) -> String {
        let lines = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        lines.iter().map(String::as_str).collect::<Vec<_>>().join("\n")
    }
}

pub struct EmulatorProcess {
    case: String,
    child: Child,
    addr: SocketAddr,
    output: OutputTail,
}

impl EmulatorProcess {
    /// Starts `lambda-emulator --listen 127.0.0.1:0 ... -- <case command>` in the case's task
    /// root; returns once it listens (its runtime is starting: the init phase).
    pub fn start(emulator: &Path, case: &Case) -> Result<Self, BenchError> {
        let mut command = Command::new(emulator);
        command.args([
            "--listen",
            "127.0.0.1:0",
            "--function-name",
            "bench",
            "--timeout",
            FUNCTION_TIMEOUT_SECONDS,
            // The runtime's stdout (metric and trace lines) goes straight to /dev/null: relayed
            // line by line through the emulator, it would cost the emulator CPU on the
            // invoke's path, which Lambda's own log pipeline does not.
            "--runtime-stdout",
            "discard",
        ]);
        for (key, value) in &case.env {
            command.arg("--env").arg(format!("{key}={value}"));
        }
        command
            .arg("--")
            .args(&case.command)
            .current_dir(&case.task_root)
            .env("LAMBDA_EMULATOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| BenchError::SpawnEmulator {
            case: case.id.to_owned(),
            source,
        })?;
        let output = OutputTail::default();
        let (listening_tx, listening) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let tail = output.clone();
            std::thread::spawn(move || {
                let mut listening_tx = Some(listening_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_addr(&line) {
                        if let Some(tx) = listening_tx.take() {
                            let _ = tx.send(addr);
                        }
                    }
                    tail.push(line);
                }
            });
        }
        let mut process = Self {
            case: case.id.to_owned(),
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            output,
        };
        if let Ok(addr) = listening.recv_timeout(START_LIMIT) {
            process.addr = addr;
            Ok(process)
        } else {
            let reason = match process.child.try_wait() {
                Ok(Some(status)) => format!("it exited ({status})"),
                _ => format!("it did not say where it listens within {} s", START_LIMIT.as_secs()),
            };
            // Let the reader thread catch the last lines before quoting them.
            std::thread::sleep(Duration::from_millis(50));
            let output = process.output.text();
            Err(BenchError::EmulatorDown {
                case: process.case.clone(),
                reason,
                output,
            })
        }
    }

    pub fn case(&self) -> &str {
        &self.case
    }

    /// A new keep-alive connection to the emulator.
    pub fn connect(&self) -> Result<Connection, BenchError> {
        Connection::connect(self.addr).map_err(|source| BenchError::Http {
            case: self.case.clone(),
            source,
        })
    }

    pub fn stats(&self, connection: &mut Connection) -> Result<EmulatorStats, BenchError> {
        let response = connection.request("GET", STATS_PATH, b"").map_err(|source| BenchError::Http {
            case: self.case.clone(),
            source,
        })?;
        if response.status != 200 {
            return Err(self.down(format!("its stats answered {}", response.status)));
        }
        serde_json::from_slice(response.body).map_err(|err| self.down(format!("its stats are not the JSON expected: {err}")))
    }

    /// Waits for the current runtime's first `/next`; returns the emulator's measure of it.
    pub fn wait_for_cold_start(&self, connection: &mut Connection, limit: Duration) -> Result<Duration, BenchError> {
        let started = Instant::now();
        loop {
            let stats = self.stats(connection)?;
            if let Some(us) = stats.first_next_after_start_us {
                return Ok(Duration::from_micros(us));
            }
            if started.elapsed() > limit {
                return Err(BenchError::NoColdStart {
                    case: self.case.clone(),
                    seconds: limit.as_secs(),
                });
            }
            // The measure is taken by the emulator; polling gently leaves the CPU to the runtime.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// An explanation with the emulator's last output.
    pub fn down(&self, reason: String) -> BenchError {
        BenchError::EmulatorDown {
            case: self.case.clone(),
            reason,
            output: self.output.text(),
        }
    }

    /// SIGTERM (the emulator stops its runtime as Lambda would), then SIGKILL if it lingers.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let asked = Instant::now();
        while asked.elapsed() < STOP_LIMIT {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// The address in the emulator's `listening on 127.0.0.1:PORT (invoke: ...)` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_address() {
        let line = "lambda-emulator  INFO listening on 127.0.0.1:40123 (invoke: POST http://127.0.0.1:40123/...)";
        assert_eq!(listening_addr(line), Some("127.0.0.1:40123".parse().unwrap()));
        assert_eq!(listening_addr("runtime started pid=4"), None);
    }
}
