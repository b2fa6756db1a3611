//! Exec mode end to end: the real `bootstrap` binary, with `DD_LAMBDA_HANDLER` set to a child
//! runtime from `tests/fixtures/exec/`, behind a real Runtime API emulator, invoked over HTTP
//! with curl as a user would.
//!
//! Emulator: cargo-lambda's (`cargo lambda watch --only-lambda-apis`), from the venv that
//! `scripts/setup-peers.sh` makes. (cargo-lambda answers 500 to every streamed response on its
//! invoke API, whoever sends it, so streaming is tested against `lambda-emulator`.)
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

/// cargo-lambda's emulator with `bootstrap` as the function's runtime.
struct Function {
    port: u16,
    dir: tempfile::TempDir,
    bootstrap: Option<Started>,
    _emulator: Started,
}

impl Function {
    fn start(handler: &str, extra_env: &[(&str, &str)]) -> Function {
        let cargo_lambda = workspace().join(".venv/bin/cargo-lambda");
        assert!(
            cargo_lambda.exists(),
            "{} is missing: run scripts/setup-peers.sh",
            cargo_lambda.display()
        );
        // cargo-lambda wants a Cargo package with a binary even when it starts no function
        // itself. It tries to build it after an init error: that build stops at once.
        let dir = tempfile::tempdir().unwrap();
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
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let emulator = Command::new(&cargo_lambda)
            .args(["lambda", "watch", "--only-lambda-apis", "-A", "127.0.0.1", "-P", &port.to_string()])
            .args(["--concurrency", "4"])
            .current_dir(dir.path())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let emulator = Started(emulator);
        wait_for_port(port);
        let bootstrap = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
            .env("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt"))
            .env("AWS_LAMBDA_FUNCTION_NAME", "_")
            .env("LAMBDA_TASK_ROOT", fixtures())
            .env("DD_LAMBDA_HANDLER", handler)
            .envs(extra_env.iter().copied())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .unwrap();
        Function {
            port,
            dir,
            bootstrap: Some(Started(bootstrap)),
            _emulator: emulator,
        }
    }

    /// Invokes the function with curl; returns the HTTP status and the body.
    fn invoke(&self, event: &str) -> (u16, Vec<u8>) {
        let url = format!("http://127.0.0.1:{}/2015-03-31/functions/_/invocations", self.port);
        let output = curl(&url, event);
        assert!(output.status.success(), "curl failed: {}", String::from_utf8_lossy(&output.stderr));
        // `-w` puts the status on a last line of its own.
        let split = output.stdout.iter().rposition(|b| *b == b'\n').unwrap();
        let status = std::str::from_utf8(&output.stdout[split + 1..]).unwrap().parse().unwrap();
        (status, output.stdout[..split].to_vec())
    }

    fn stdout(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("stdout")).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(self.dir.path().join("stderr")).unwrap_or_default()).into_owned()
    }

    /// Waits for the bootstrap to exit by itself.
    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut started = self.bootstrap.take().unwrap();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = started.0.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the bootstrap did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn curl(url: &str, event: &str) -> Output {
    Command::new("curl")
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
        ])
        .output()
        .unwrap()
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
    for handler in [BASH, PYTHON] {
        let function = Function::start(handler, &[]);
        let event = r#"{"hello": "wörld", "list": [1, 2]}"#;
        assert_eq!(function.invoke(event), (200, event.as_bytes().to_vec()), "{handler}");
    }

    // The error body reaches the caller exactly as the child posted it.
    let function = Function::start(BASH, &[]);
    let (status, body) = function.invoke(r#"{"action":"error"}"#);
    assert_eq!(status, 500);
    assert_eq!(
        text(&body),
        r#"{"errorMessage":"the event asked for an error","errorType":"HandlerError","stackTrace":["runtime.sh:42"]}"#
    );

    for (event, wording) in [
        (r#"{"action":"exit1"}"#, "Runtime exited with error: exit status 1"),
        (r#"{"action":"segv"}"#, "Runtime exited with error: signal: segmentation fault"),
        (r#"{"action":"sigkill"}"#, "Runtime exited with error: signal: killed"),
    ] {
        let (status, body) = function.invoke(event);
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(status, 500, "{}", text(&body));
        assert_eq!(error["errorType"], "Runtime.ExitError");
        let message = error["errorMessage"].as_str().unwrap();
        assert!(
            message.starts_with("RequestId: ") && message.ends_with(&format!(" Error: {wording}")),
            "{message}"
        );
        // The child was started again: the next invoke works.
        assert_eq!(function.invoke(r#""again""#), (200, br#""again""#.to_vec()));
    }
    let stdout = function.stdout();
    assert!(contains(&stdout, b"last stdout line before exit 1\n"));
    assert!(contains(&stdout, b"partial line before SIGSEGV\n"));
    assert!(function.stderr().contains("last stderr line before exit 1\n"));
}

#[test]
fn output_lines_of_a_megabyte_and_raw_bytes_reach_stdout() {
    let function = Function::start(BASH, &[]);
    assert_eq!(function.invoke(r#"{"action":"bigline"}"#).0, 200);
    assert_eq!(function.invoke(r#"{"action":"nonutf8"}"#).0, 200);
    let stdout = function.stdout();
    let line = [b"\n".as_slice(), &vec![b'x'; 1024 * 1024 + 1], b"\n"].concat();
    assert!(contains(&stdout, &line), "the 1 MiB line is not whole on stdout");
    assert!(contains(&stdout, b"\nbytes \xff\xfe\x80 end\n"));
}

#[test]
fn bad_requests_from_the_child_get_400_and_invocations_one_answer() {
    let function = Function::start(BASH, &[]);
    assert_eq!(
        function.invoke(r#"{"action":"unknown-id"}"#),
        (200, br#"{"unknown_id_status":400}"#.to_vec())
    );
    assert_eq!(function.invoke(r#"{"action":"twice"}"#), (200, br#""first answer""#.to_vec()));
    assert_eq!(
        function.invoke(r#"{"action":"garbage"}"#),
        (200, br#"{"garbage_answer":"HTTP/1.1 400 Bad Request"}"#.to_vec())
    );
    assert_eq!(function.invoke("3"), (200, b"3".to_vec()));
    assert!(contains(&function.stdout(), b"bash runtime: answer statuses 202 400\n"));
}

#[test]
fn max_concurrency_reaches_the_child_and_invocations_run_together() {
    let function = Function::start(PYTHON, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
    let url = format!("http://127.0.0.1:{}/2015-03-31/functions/_/invocations", function.port);
    // Each waits at a barrier for all four: they only finish if all four are in flight at once.
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || curl(&url, r#"{"action":"barrier"}"#))
        })
        .collect();
    for call in calls {
        let output = call.join().unwrap();
        assert_eq!(text(&output.stdout), "{\"together\": 4}\n200", "{}", function.stderr());
    }
}

#[test]
fn an_init_failure_is_reported_and_the_bootstrap_exits() {
    let mut function = Function::start(&format!("{BASH} init-error"), &[]);
    let status = function.wait_exit();
    assert!(!status.success());
    let stderr = function.stderr();
    assert!(
        stderr.contains("Runtime.ConfigError") && stderr.contains("missing configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("bash runtime: init is failing"), "{stderr}");

    let mut function = Function::start("./no-such-runtime", &[]);
    assert!(!function.wait_exit().success());
    assert!(function.stderr().contains("no-such-runtime"), "{}", function.stderr());
}
