//! `ExecHandler` through the library, with real child runtimes (bash + curl, and Python's
//! standard library) from `tests/fixtures/exec/`. The test plays the lifecycle: it builds each
//! invocation as the upstream `/next` would give it and reads the outcome. Upstream relays
//! (`/error`) go to a closed port here; the end-to-end tests cover them against an emulator.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootstrap::config::{Config, Environment};
use bootstrap::handler::exec::output::{Destinations, OutputConfig};
use bootstrap::handler::exec::{ChildStatus, ExecHandler};
use bootstrap::handler::{Handler, HandlerOutcome, InitError, Invocation, TimedOutcome};
use bootstrap::lifecycle::Timestamp;
use bootstrap::runtime_api::{Endpoint, InvocationContext, RuntimeApiClient};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// Bounds every wait on a child, so a broken handler fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(30);

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec")
}

fn config() -> Config {
    let mut pairs = vec![("LAMBDA_TASK_ROOT".to_owned(), fixtures().display().to_string())];
    if let Ok(path) = std::env::var("PATH") {
        pairs.push(("PATH".to_owned(), path));
    }
    Config::from_env(Environment::from_pairs(pairs))
}

/// Nothing listens there: relays upstream fail, as they would with the platform gone.
fn unreachable_upstream() -> RuntimeApiClient {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    RuntimeApiClient::new(Endpoint::parse(&address.to_string()).unwrap())
}

/// What the child wrote, as the pumps wrote it (one entry per write).
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<Vec<u8>>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn writes(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
    fn all(&self) -> Vec<u8> {
        self.writes().concat()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.all()).into_owned()
    }
    /// Waits until one single write contains `needle` whole.
    async fn wait_for_write_of(&self, needle: &[u8]) {
        let waited = tokio::time::timeout(PATIENCE, async {
            while !self.writes().iter().any(|write| write.windows(needle.len()).any(|w| w == needle)) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "no single write held the {} bytes expected", needle.len());
    }

    /// Waits until the output contains `needle` (output arrives on its own threads).
    async fn wait_for(&self, needle: &str) -> String {
        let waited = tokio::time::timeout(PATIENCE, async {
            loop {
                if self.text().contains(needle) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let text = self.text();
        assert!(waited.is_ok(), "output never contained {needle:?}: {text}");
        text
    }
}

struct Child {
    handler: ExecHandler,
    init: Duration,
    stdout: Captured,
    stderr: Captured,
}

async fn try_start(command: &str) -> Result<Child, InitError> {
    let (stdout, stderr) = (Captured::default(), Captured::default());
    let output = OutputConfig::new(Destinations {
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
    });
    let started = tokio::time::timeout(
        PATIENCE,
        ExecHandler::start_with_output(command, &config(), unreachable_upstream(), output),
    )
    .await
    .expect("start never finished");
    started.map(|(handler, init)| Child {
        handler,
        init,
        stdout,
        stderr,
    })
}

async fn start(command: &str) -> Child {
    match try_start(command).await {
        Ok(child) => child,
        Err(err) => panic!("{command} did not start: {err}"),
    }
}

fn invocation(request_id: &str, event: &str) -> Arc<Invocation> {
    let mut headers = HeaderMap::new();
    let mut add = |name: &'static str, value: &str| {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    };
    add("lambda-runtime-aws-request-id", request_id);
    add("lambda-runtime-deadline-ms", "4102444800000");
    add(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:exec-test",
    );
    add(
        "lambda-runtime-trace-id",
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
    );
    add("lambda-runtime-client-context", r#"{"custom":{"k":"v"}}"#);
    add("lambda-runtime-cognito-identity", r#"{"identityId":"id","identityPoolId":"pool"}"#);
    add("lambda-runtime-aws-tenant-id", "tenant-1");
    add("lambda-runtime-invocation-id", "invocation-1");
    add("content-type", "application/json");
    Arc::new(Invocation {
        context: InvocationContext::from_headers(&headers).unwrap(),
        headers,
        event: Bytes::from(event.to_owned()),
    })
}

async fn invoke(child: &Child, request_id: &str, event: &str) -> TimedOutcome {
    tokio::time::timeout(PATIENCE, child.handler.invoke_timed(invocation(request_id, event)))
        .await
        .expect("the invocation was never answered")
}

fn response_text(outcome: &HandlerOutcome) -> String {
    match outcome {
        HandlerOutcome::Response(body) => String::from_utf8_lossy(body).into_owned(),
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error_of(outcome: &HandlerOutcome) -> (String, String) {
    match outcome {
        HandlerOutcome::Error(error) => (error.error_type.clone(), error.error_message.clone()),
        other => panic!("expected an error, got {other:?}"),
    }
}

const BASH: &str = "./bash_runtime.sh";
const PYTHON: &str = "python3 python_runtime.py";

#[tokio::test]
async fn echo_returns_the_event_byte_for_byte_from_both_runtimes() {
    for command in [BASH, PYTHON] {
        let child = start(command).await;
        assert!(child.init > Duration::ZERO);
        let event = r#"{"greeting": "héllo", "n": [1, 2, 3]}"#;
        let before = Timestamp::now();
        let timed = invoke(&child, "req-echo", event).await;
        assert_eq!(response_text(&timed.outcome), event, "{command}");
        // The child's times: it got the event after we submitted it, and answered after that.
        assert!(timed.handler_started.monotonic >= before.monotonic);
        assert!(timed.handler_finished.monotonic >= timed.handler_started.monotonic);
        // A second invocation on the same (keep-alive) connections.
        assert_eq!(response_text(&invoke(&child, "req-echo-2", "[]").await.outcome), "[]");
    }
}

#[tokio::test]
async fn the_child_sees_every_next_header_unchanged() {
    let child = start(PYTHON).await;
    let sent = invocation("req-headers", r#"{"action":"headers"}"#);
    let outcome = tokio::time::timeout(PATIENCE, child.handler.invoke(sent.clone())).await.unwrap();
    let seen: serde_json::Value = serde_json::from_str(&response_text(&outcome)).unwrap();
    for (name, value) in &sent.headers {
        assert_eq!(seen[name.as_str()], value.to_str().unwrap(), "header {name}: {seen}");
    }
}

#[tokio::test]
async fn the_child_gets_our_environment_with_the_proxy_as_runtime_api() {
    let child = start(PYTHON).await;
    let env: serde_json::Value =
        serde_json::from_str(&response_text(&invoke(&child, "req-env", r#"{"action":"env"}"#).await.outcome)).unwrap();
    assert_eq!(env["AWS_LAMBDA_RUNTIME_API"], child.handler.runtime_api().to_string());
    assert!(child.handler.runtime_api().ip().is_loopback());
    assert_ne!(child.handler.runtime_api().port(), 0);
    // Everything else is ours, unchanged (but what the `python3` launcher itself adjusts).
    let launcher_own = |name: &str| matches!(name, "PATH" | "PWD" | "LC_CTYPE" | "_" | "SHLVL") || name.starts_with("PYENV");
    for (name, value) in std::env::vars().filter(|(name, _)| !launcher_own(name) && name != "AWS_LAMBDA_RUNTIME_API") {
        assert_eq!(env[&name], value, "variable {name}");
    }
}

#[tokio::test]
async fn no_descriptor_of_ours_reaches_the_child() {
    // A descriptor without close-on-exec, as a careless library or our parent might leave one.
    let leaked = unsafe { libc::dup(2) };
    assert!(leaked > 2);
    let child = start(PYTHON).await;
    let fds: serde_json::Value =
        serde_json::from_str(&response_text(&invoke(&child, "req-fds", r#"{"action":"fds"}"#).await.outcome)).unwrap();
    unsafe { libc::close(leaked) };
    assert_eq!(
        fds["startup_fds"],
        serde_json::json!([]),
        "the child started with descriptors of ours: {fds}"
    );
}

#[tokio::test]
async fn an_error_is_parsed_and_passed_on() {
    for (command, error_type, message) in [
        (BASH, "HandlerError", "the event asked for an error"),
        (PYTHON, "ValueError", "python says no"),
    ] {
        let child = start(command).await;
        let timed = invoke(&child, "req-error", r#"{"action":"error"}"#).await;
        // The upstream is unreachable, so the error comes back for the lifecycle to post.
        assert_eq!(error_of(&timed.outcome), (error_type.to_owned(), message.to_owned()), "{command}");
        assert!(timed.outcome.is_error());
    }
}

#[tokio::test]
async fn a_child_that_exits_fails_its_invocation_and_is_started_again() {
    let child = start(BASH).await;
    let timed = invoke(&child, "req-exit", r#"{"action":"exit1"}"#).await;
    assert_eq!(
        error_of(&timed.outcome),
        (
            "Runtime.ExitError".to_owned(),
            "RequestId: req-exit Error: Runtime exited with error: exit status 1".to_owned()
        )
    );
    // Its last lines were out before its death was reported.
    assert!(
        child.stdout.text().contains("last stdout line before exit 1\n"),
        "{}",
        child.stdout.text()
    );
    assert!(
        child.stderr.text().contains("last stderr line before exit 1\n"),
        "{}",
        child.stderr.text()
    );
    // Restarted before the next invocation, and the restart is reported once.
    let restart = tokio::time::timeout(PATIENCE, child.handler.before_next())
        .await
        .unwrap()
        .expect("a restart report");
    assert!(restart.error.is_none());
    assert!(restart.finished.monotonic >= restart.started.monotonic);
    assert_eq!(child.handler.child_status(), ChildStatus::Ready);
    assert!(child.handler.before_next().await.is_none());
    assert_eq!(
        response_text(&invoke(&child, "req-after-exit", r#""still here""#).await.outcome),
        r#""still here""#
    );
}

#[tokio::test]
async fn signals_are_worded_as_lambda_words_them() {
    let child = start(BASH).await;
    let timed = invoke(&child, "req-segv", r#"{"action":"segv"}"#).await;
    assert_eq!(
        error_of(&timed.outcome).1,
        "RequestId: req-segv Error: Runtime exited with error: signal: segmentation fault"
    );
    // The partial line written just before the crash arrives, terminated.
    assert!(
        child.stdout.text().contains("partial line before SIGSEGV\n"),
        "{}",
        child.stdout.text()
    );
    let timed = invoke(&child, "req-kill", r#"{"action":"sigkill"}"#).await;
    assert_eq!(
        error_of(&timed.outcome).1,
        "RequestId: req-kill Error: Runtime exited with error: signal: killed"
    );
    assert_eq!(response_text(&invoke(&child, "req-after-kill", "1").await.outcome), "1");

    let child = start(PYTHON).await;
    let timed = invoke(&child, "req-py-segv", r#"{"action":"segv"}"#).await;
    assert_eq!(
        error_of(&timed.outcome).1,
        "RequestId: req-py-segv Error: Runtime exited with error: signal: segmentation fault"
    );
    assert!(child.stderr.text().contains("python runtime about to segfault\n"));
}

#[tokio::test]
async fn init_failures_carry_the_childs_error() {
    let err = try_start(&format!("{BASH} init-error")).await.err().expect("init must fail");
    let body = err.to_error_body();
    assert_eq!(body.error_type, "Runtime.ConfigError");
    assert_eq!(body.error_message, "missing configuration");
    assert_eq!(body.stack_trace, ["runtime.sh:init"]);

    let err = try_start(&format!("{PYTHON} --init-error")).await.err().expect("init must fail");
    assert_eq!(err.to_error_body().error_type, "Runtime.ConfigError");

    let err = try_start(&format!("{BASH} exit-in-init")).await.err().expect("init must fail");
    let body = err.to_error_body();
    assert_eq!(body.error_type, "Runtime.ExitError");
    assert_eq!(body.error_message, "Runtime exited with error: exit status 3");

    let err = try_start(&format!("{PYTHON} --exit-in-init")).await.err().expect("init must fail");
    assert_eq!(err.to_error_body().error_message, "Runtime exited with error: exit status 4");
}

#[tokio::test]
async fn unusable_commands_are_named() {
    let err = try_start("./no-such-runtime --flag").await.err().expect("must fail");
    assert!(err.to_string().contains("no-such-runtime"), "{err}");
    assert_eq!(err.error_type(), "Runtime.InvalidEntrypoint");

    let not_executable = fixtures().join("not_executable.sh");
    let err = try_start(&not_executable.display().to_string()).await.err().expect("must fail");
    assert!(
        err.to_string().contains("not_executable.sh") && err.to_string().contains("chmod +x"),
        "{err}"
    );

    assert!(matches!(try_start("   ").await, Err(InitError::NotConfigured)));
    assert!(try_start("''").await.err().expect("must fail").to_string().contains("empty"));
}

#[tokio::test]
async fn long_and_non_utf8_lines_arrive_whole_and_untouched() {
    let child = start(BASH).await;
    invoke(&child, "req-big", r#"{"action":"bigline"}"#).await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    child.stdout.wait_for_write_of(&[big.as_slice(), b"\n"].concat()).await;
    invoke(&child, "req-bytes", r#"{"action":"nonutf8"}"#).await;
    child.stdout.wait_for_write_of(b"bytes \xff\xfe\x80 end\n").await;

    let child = start(PYTHON).await;
    invoke(&child, "req-py-big", r#"{"action":"bigline"}"#).await;
    child
        .stdout
        .wait_for_write_of(&[vec![b'y'; 2 * 1024 * 1024], b"\n".to_vec()].concat())
        .await;
}

#[tokio::test]
async fn answers_for_unknown_or_answered_ids_get_400() {
    let child = start(BASH).await;
    let outcome = invoke(&child, "req-unknown", r#"{"action":"unknown-id"}"#).await.outcome;
    assert_eq!(response_text(&outcome), r#"{"unknown_id_status":400}"#);

    let outcome = invoke(&child, "req-twice", r#"{"action":"twice"}"#).await.outcome;
    assert_eq!(response_text(&outcome), r#""first answer""#);
    child.stdout.wait_for("bash runtime: answer statuses 202 400\n").await;
}

#[tokio::test]
async fn garbage_http_gets_400_and_the_invocation_one_answer() {
    let child = start(BASH).await;
    let outcome = invoke(&child, "req-garbage", r#"{"action":"garbage"}"#).await.outcome;
    assert_eq!(response_text(&outcome), r#"{"garbage_answer":"HTTP/1.1 400 Bad Request"}"#);
    assert_eq!(response_text(&invoke(&child, "req-after-garbage", "2").await.outcome), "2");
}

#[tokio::test]
async fn a_child_that_stops_polling_leaves_the_next_invocation_waiting() {
    let child = start(BASH).await;
    let outcome = invoke(&child, "req-last", r#"{"action":"stop-polling"}"#).await.outcome;
    assert_eq!(response_text(&outcome), r#""answered; never polling again""#);
    let waiting = child.handler.invoke_timed(invocation("req-waiting", r#""waits""#));
    tokio::pin!(waiting);
    assert!(
        tokio::time::timeout(Duration::from_millis(500), waiting.as_mut()).await.is_err(),
        "answered although the child never asked for it"
    );
    // What the lifecycle does when the platform's timeout hits: reset the runtime. The queued
    // invocation then goes to the new child.
    child.handler.kill_child();
    let timed = tokio::time::timeout(PATIENCE, waiting).await.unwrap();
    assert_eq!(response_text(&timed.outcome), r#""waits""#);
}

#[tokio::test]
async fn concurrent_invocations_flow_through_together() {
    let child = start(&format!("env AWS_LAMBDA_MAX_CONCURRENCY=4 {PYTHON}")).await;
    let handler = Arc::new(child.handler);
    // Each one waits at a barrier for all four: they only finish if all four are in flight.
    let tasks: Vec<_> = ["c-1", "c-2", "c-3", "c-4"]
        .into_iter()
        .map(|id| {
            let handler = handler.clone();
            tokio::spawn(async move { handler.invoke_timed(invocation(id, r#"{"action":"barrier"}"#)).await })
        })
        .collect();
    for task in tasks {
        let timed = tokio::time::timeout(PATIENCE, task).await.expect("never answered").unwrap();
        assert_eq!(response_text(&timed.outcome), r#"{"together": 4}"#);
    }
}

#[tokio::test]
async fn shutdown_passes_sigterm_to_the_child() {
    for (command, line) in [(BASH, "bash runtime: got SIGTERM\n"), (PYTHON, "python runtime: got SIGTERM\n")] {
        let child = start(command).await;
        let status = child.handler.shutdown(Duration::from_secs(5)).await.expect("the child was running");
        assert_eq!(status.code(), Some(0), "{command} did not exit on its own terms: {status}");
        assert!(child.stdout.text().contains(line), "{command}: {}", child.stdout.text());
        assert_eq!(child.handler.child_status(), ChildStatus::Stopped);
    }
}
