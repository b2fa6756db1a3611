//! The exec end-to-end harness: the real `bootstrap` binary with `DD_LAMBDA_HANDLER` set to a
//! child runtime, behind a real Runtime API emulator, invoked over HTTP with curl as a user
//! would.
//!
//! Emulators: our `lambda-emulator`, and cargo-lambda's (`cargo lambda watch
//! --only-lambda-apis`, from the venv `scripts/setup-peers.sh` makes).
#![allow(dead_code)]
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub const PATIENCE: Duration = Duration::from_secs(30);

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < PATIENCE, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process the test started, killed (by its own id) when the test ends.
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    /// Ours: starts `bootstrap` itself, answers Lambda's Invoke API.
    Ours,
    CargoLambda,
}

pub const EMULATORS: [Emulator; 2] = [Emulator::Ours, Emulator::CargoLambda];

/// One function: an emulator with `bootstrap` as the runtime.
pub struct Function {
    pub emulator: Emulator,
    pub port: u16,
    dir: tempfile::TempDir,
    processes: Vec<Started>,
}

/// An invoke's answer.
pub struct Answer {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Answer {
    /// Lambda's Invoke answers a function error with 200 and `X-Amz-Function-Error`;
    /// cargo-lambda with 500.
    pub fn is_function_error(&self) -> bool {
        self.status == 500 || self.headers.to_ascii_lowercase().contains("x-amz-function-error: unhandled")
    }

    pub fn ok_body(&self) -> &[u8] {
        assert!(
            self.status == 200 && !self.is_function_error(),
            "{} {}{}",
            self.status,
            self.headers,
            text(&self.body)
        );
        &self.body
    }

    pub fn error(&self) -> serde_json::Value {
        assert!(self.is_function_error(), "not an error: {} {}", self.status, text(&self.body));
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Function {
    /// A function whose task root is `tests/fixtures/exec/`.
    pub fn start(emulator: Emulator, handler: &str, extra_env: &[(&str, &str)]) -> Function {
        Self::start_in(emulator, &fixtures(), handler, extra_env, 30)
    }

    pub fn start_with(emulator: Emulator, handler: &str, extra_env: &[(&str, &str)], timeout_seconds: u32) -> Function {
        Self::start_in(emulator, &fixtures(), handler, extra_env, timeout_seconds)
    }

    /// A function whose task root (and working directory) is `task_root`.
    pub fn start_in(emulator: Emulator, task_root: &Path, handler: &str, extra_env: &[(&str, &str)], timeout_seconds: u32) -> Function {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).unwrap();
        let mut env: Vec<(String, String)> = vec![("DD_LAMBDA_HANDLER".into(), handler.into())];
        env.extend(extra_env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let processes = match emulator {
            Emulator::Ours => {
                let mut command = Command::new(env!("CARGO_BIN_EXE_lambda-emulator"));
                command
                    .args(["--listen", &format!("127.0.0.1:{port}"), "--timeout", &timeout_seconds.to_string()])
                    .args(env.iter().flat_map(|(k, v)| ["--env".to_owned(), format!("{k}={v}")]))
                    .args(["--", env!("CARGO_BIN_EXE_bootstrap")])
                    // The emulator's working directory is the task root.
                    .current_dir(task_root)
                    .stdout(log("stdout"))
                    .stderr(log("stderr"));
                let started = Started(command.spawn().unwrap());
                wait_for_port(port);
                vec![started]
            }
            Emulator::CargoLambda => {
                let cargo_lambda = workspace().join(".venv/bin/cargo-lambda");
                assert!(
                    cargo_lambda.exists(),
                    "{} is missing: run scripts/setup-peers.sh",
                    cargo_lambda.display()
                );
                // cargo-lambda wants a Cargo package with a binary even when it starts no
                // function itself. It tries to build it after an init error: that build stops
                // at once.
                std::fs::write(
                    dir.path().join("Cargo.toml"),
                    "[package]\nname = \"exec-fn\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[[bin]]\nname = \"exec-fn\"\npath = \"main.rs\"\n",
                )
                .unwrap();
                std::fs::write(
                    dir.path().join("main.rs"),
                    "compile_error!(\"a placeholder: the exec tests start their own runtime\");\n",
                )
                .unwrap();
                let emulator_log = log("emulator.log");
                let emulator = Command::new(&cargo_lambda)
                    .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
                    .args(["--concurrency", "4"])
                    .current_dir(dir.path())
                    .stdout(emulator_log.try_clone().unwrap())
                    .stderr(emulator_log)
                    .spawn()
                    .unwrap();
                let emulator = Started(emulator);
                wait_for_port(port);
                let bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
                    .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
                    .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                    .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                    .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
                    .env("LAMBDA_TASK_ROOT", task_root)
                    .envs(env)
                    .stdout(log("stdout"))
                    .stderr(log("stderr"))
                    .spawn()
                    .unwrap();
                vec![Started(bootstrap), emulator]
            }
        };
        Function {
            emulator,
            port,
            dir,
            processes,
        }
    }

    pub fn url(&self) -> String {
        let name = match self.emulator {
            Emulator::Ours => "function",
            Emulator::CargoLambda => "_",
        };
        format!("http://127.0.0.1:{}/2015-03-31/functions/{name}/invocations", self.port)
    }

    /// Invokes the function with curl.
    pub fn invoke(&self, event: &str) -> Answer {
        curl(&self.url(), event)
    }

    /// What the function wrote to `name` (`stdout` or `stderr`) so far.
    fn output(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.dir.path().join(name)).unwrap_or_default()
    }

    /// Waits until the output `name` satisfies `done` or `limit` passed, and returns it either
    /// way. Output is copied on its own threads (the child's by the bootstrap, the bootstrap's by
    /// our emulator), so it may land just after the answer.
    fn wait_for_output(&self, name: &str, limit: Duration, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        loop {
            let output = self.output(name);
            if done(&output) || Instant::now() >= deadline {
                return output;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout(&self) -> Vec<u8> {
        self.output("stdout")
    }

    /// Waits until stdout holds `line` as a whole line.
    pub fn wait_for_stdout_line(&self, line: &[u8]) {
        let whole = [b"\n".as_slice(), line, b"\n"].concat();
        let is_whole = |stdout: &[u8]| stdout.starts_with(&whole[1..]) || contains(stdout, &whole);
        assert!(
            is_whole(&self.wait_for_output("stdout", PATIENCE, is_whole)),
            "{:?}: stdout never held the {}-byte line whole",
            self.emulator,
            line.len()
        );
    }

    /// Waits (up to 10 s) until stdout holds `bytes`, and returns it either way.
    pub fn wait_for_stdout(&self, bytes: &[u8]) -> Vec<u8> {
        self.wait_for_output("stdout", Duration::from_secs(10), |stdout| contains(stdout, bytes))
    }

    pub fn stderr(&self) -> String {
        text(&self.output("stderr"))
    }

    /// Waits (up to 10 s) until stderr holds `needle`, and returns it either way.
    pub fn wait_for_stderr(&self, needle: &str) -> String {
        text(&self.wait_for_output("stderr", Duration::from_secs(10), |stderr| contains(stderr, needle.as_bytes())))
    }

    /// Waits for the bootstrap (cargo-lambda: which the test started) to exit by itself.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let bootstrap = &mut self.processes[0].0;
        loop {
            if let Some(status) = bootstrap.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the bootstrap did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn curl(url: &str, event: &str) -> Answer {
    let headers = tempfile::NamedTempFile::new().unwrap();
    let output: Output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-X",
            "POST",
            url,
            "--data-binary",
            event,
            "-w",
            "\n%{http_code}",
            "-D",
        ])
        .arg(headers.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
    // `-w` puts the status on a last line of its own.
    let split = output.stdout.iter().rposition(|b| *b == b'\n').unwrap();
    Answer {
        status: std::str::from_utf8(&output.stdout[split + 1..]).unwrap().parse().unwrap(),
        headers: std::fs::read_to_string(headers.path()).unwrap(),
        body: output.stdout[..split].to_vec(),
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
