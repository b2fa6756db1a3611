//! Exec mode end to end: the real `bootstrap` binary, with `DD_LAMBDA_HANDLER` set to a child
//! runtime from `tests/fixtures/exec/`, behind a real Runtime API emulator, invoked over HTTP
//! with curl as a user would.
//!
//! Emulators: our `lambda-emulator`, and cargo-lambda's (`cargo lambda watch
//! --only-lambda-apis`, from the venv `scripts/setup-peers.sh` makes). cargo-lambda answers 500
//! to every streamed response on its invoke API whoever sends it, and has no invoke timeout
//! that resets the runtime, so streaming and timeouts are tested on `lambda-emulator` only.
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn fixtures() -> PathBuf {
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
enum Emulator {
    /// Ours: starts `bootstrap` itself, answers Lambda's Invoke API.
    Ours,
    CargoLambda,
}

const EMULATORS: [Emulator; 2] = [Emulator::Ours, Emulator::CargoLambda];

/// One function: an emulator with `bootstrap` as the runtime.
struct Function {
    emulator: Emulator,
    port: u16,
    dir: tempfile::TempDir,
    processes: Vec<Started>,
}

/// An invoke's answer.
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Answer {
    /// Lambda's Invoke answers a function error with 200 and `X-Amz-Function-Error`;
    /// cargo-lambda with 500.
    fn is_function_error(&self) -> bool {
        self.status == 500 || self.headers.to_ascii_lowercase().contains("x-amz-function-error: unhandled")
    }

    fn ok_body(&self) -> &[u8] {
        assert!(
            self.status == 200 && !self.is_function_error(),
            "{} {}{}",
            self.status,
            self.headers,
            text(&self.body)
        );
        &self.body
    }

    fn error(&self) -> serde_json::Value {
        assert!(self.is_function_error(), "not an error: {} {}", self.status, text(&self.body));
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Function {
    fn start(emulator: Emulator, handler: &str, extra_env: &[(&str, &str)]) -> Function {
        Self::start_with(emulator, handler, extra_env, 30)
    }

    fn start_with(emulator: Emulator, handler: &str, extra_env: &[(&str, &str)], timeout_seconds: u32) -> Function {
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
                    .current_dir(fixtures())
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
                    .env("LAMBDA_TASK_ROOT", fixtures())
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

    fn url(&self) -> String {
        let name = match self.emulator {
            Emulator::Ours => "function",
            Emulator::CargoLambda => "_",
        };
        format!("http://127.0.0.1:{}/2015-03-31/functions/{name}/invocations", self.port)
    }

    /// Invokes the function with curl.
    fn invoke(&self, event: &str) -> Answer {
        curl(&self.url(), event)
    }

    fn stdout(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("stderr")).unwrap_or_default()).into_owned()
    }

    /// Waits for the bootstrap (cargo-lambda: which the test started) to exit by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
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

fn curl(url: &str, event: &str) -> Answer {
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

const BASH: &str = "./bash_runtime.sh";
const PYTHON: &str = "python3 python_runtime.py";

#[test]
fn echo_error_and_crashes_through_both_runtimes() {
    for emulator in EMULATORS {
        for handler in [BASH, PYTHON] {
            let function = Function::start(emulator, handler, &[]);
            let event = r#"{"hello": "wörld", "list": [1, 2]}"#;
            assert_eq!(function.invoke(event).ok_body(), event.as_bytes(), "{emulator:?} {handler}");
        }

        // The error body reaches the caller exactly as the child posted it.
        let function = Function::start(emulator, BASH, &[]);
        let answer = function.invoke(r#"{"action":"error"}"#);
        assert!(answer.is_function_error());
        assert_eq!(
            text(&answer.body),
            r#"{"errorMessage":"the event asked for an error","errorType":"HandlerError","stackTrace":["runtime.sh:42"]}"#
        );

        for (event, wording) in [
            (r#"{"action":"exit1"}"#, "Runtime exited with error: exit status 1"),
            (r#"{"action":"segv"}"#, "Runtime exited with error: signal: segmentation fault"),
            (r#"{"action":"sigkill"}"#, "Runtime exited with error: signal: killed"),
        ] {
            let error = function.invoke(event).error();
            assert_eq!(error["errorType"], "Runtime.ExitError", "{emulator:?}");
            let message = error["errorMessage"].as_str().unwrap();
            assert!(
                message.starts_with("RequestId: ") && message.ends_with(&format!(" Error: {wording}")),
                "{message}"
            );
            // The child was started again: the next invoke works.
            assert_eq!(function.invoke(r#""again""#).ok_body(), br#""again""#);
        }
        let stdout = function.stdout();
        assert!(contains(&stdout, b"last stdout line before exit 1\n"), "{emulator:?}");
        assert!(contains(&stdout, b"partial line before SIGSEGV\n"), "{emulator:?}");
        assert!(function.stderr().contains("last stderr line before exit 1\n"), "{emulator:?}");
    }
}

#[test]
fn output_lines_of_a_megabyte_and_raw_bytes_reach_stdout() {
    for emulator in EMULATORS {
        let function = Function::start(emulator, BASH, &[]);
        function.invoke(r#"{"action":"bigline"}"#).ok_body();
        function.invoke(r#"{"action":"nonutf8"}"#).ok_body();
        let stdout = function.stdout();
        let line = [b"\n".as_slice(), &vec![b'x'; 1024 * 1024 + 1], b"\n"].concat();
        assert!(contains(&stdout, &line), "{emulator:?}: the 1 MiB line is not whole on stdout");
        assert!(contains(&stdout, b"\nbytes \xff\xfe\x80 end\n"), "{emulator:?}");
    }
}

#[test]
fn bad_requests_from_the_child_get_400_and_invocations_one_answer() {
    for emulator in EMULATORS {
        let function = Function::start(emulator, BASH, &[]);
        assert_eq!(
            function.invoke(r#"{"action":"unknown-id"}"#).ok_body(),
            br#"{"unknown_id_status":400}"#
        );
        assert_eq!(function.invoke(r#"{"action":"twice"}"#).ok_body(), br#""first answer""#);
        assert_eq!(
            function.invoke(r#"{"action":"garbage"}"#).ok_body(),
            br#"{"garbage_answer":"HTTP/1.1 400 Bad Request"}"#
        );
        assert_eq!(function.invoke("3").ok_body(), b"3");
        assert!(
            contains(&function.stdout(), b"bash runtime: answer statuses 202 400\n"),
            "{emulator:?}"
        );
    }
}

#[test]
fn max_concurrency_reaches_the_child_and_invocations_run_together() {
    for emulator in EMULATORS {
        let function = Function::start(emulator, PYTHON, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
        // Each waits at a barrier for all four: they only finish if all four are in flight at once.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let url = function.url();
                std::thread::spawn(move || curl(&url, r#"{"action":"barrier"}"#))
            })
            .collect();
        for call in calls {
            let answer = call.join().unwrap();
            assert_eq!(answer.ok_body(), br#"{"together": 4}"#, "{emulator:?}: {}", function.stderr());
        }
    }
}

#[test]
fn an_init_failure_is_reported_and_the_bootstrap_exits() {
    let mut function = Function::start(Emulator::CargoLambda, &format!("{BASH} init-error"), &[]);
    assert!(!function.wait_exit().success());
    let stderr = function.stderr();
    assert!(
        stderr.contains("Runtime.ConfigError") && stderr.contains("missing configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("bash runtime: init is failing"), "{stderr}");

    let mut function = Function::start(Emulator::CargoLambda, "./no-such-runtime", &[]);
    assert!(!function.wait_exit().success());
    assert!(function.stderr().contains("no-such-runtime"), "{}", function.stderr());

    // Lambda's Invoke answers with the init error the child posted, as it is.
    let function = Function::start(Emulator::Ours, &format!("{PYTHON} --init-error"), &[]);
    let error = function.invoke("{}").error();
    assert_eq!(error["errorType"], "Runtime.ConfigError");
    assert_eq!(error["errorMessage"], "no config");
}

#[test]
fn streamed_responses_are_relayed_with_their_error_trailers() {
    let function = Function::start(Emulator::Ours, PYTHON, &[]);
    let answer = function.invoke(r#"{"action":"stream"}"#);
    let body = answer.ok_body();
    let prelude_end = body.windows(8).position(|w| w == [0u8; 8]).expect("the metadata prelude");
    let prelude: serde_json::Value = serde_json::from_slice(&body[..prelude_end]).unwrap();
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(&body[prelude_end + 8..], b"one two three");
    assert!(
        answer.headers.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{}",
        answer.headers
    );

    // A mid-stream error: what was sent arrives, and the emulator saw the error trailers.
    let answer = function.invoke(r#"{"action":"stream-error"}"#);
    assert!(contains(&answer.body, b"partial "));
    assert!(function.stderr().contains("StreamFailed"), "{}", function.stderr());
    assert_eq!(function.invoke(r#""after""#).ok_body(), br#""after""#);
}

#[test]
fn a_timed_out_invocation_resets_the_function() {
    let function = Function::start_with(Emulator::Ours, PYTHON, &[], 1);
    let error = function.invoke(r#"{"action":"sleep","seconds":5}"#).error();
    assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
    assert_eq!(function.invoke(r#""after the timeout""#).ok_body(), br#""after the timeout""#);
}
