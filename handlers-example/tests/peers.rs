//! The exec-mode peer runtimes, each run against a real Runtime API server on 127.0.0.1.
mod support;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::{Answer, RuntimeApi};

fn peer(program: &str, args: &[&str], api: &RuntimeApi) -> Child {
    Command::new(program)
        .args(args)
        // awslambdaric imports the handler module from its working directory.
        .current_dir(manifest_dir().join("python"))
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "peer")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/peer")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "2024/01/01/[$LATEST]abc")
        .env("_HANDLER", args.last().copied().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits for the peer to exit; a generous bound so a broken peer fails instead of hanging.
fn wait(child: &mut Child) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the peer did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn stdout_of(child: &mut Child) -> String {
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).unwrap();
    text
}

fn assert_echo(api: &RuntimeApi, id: &str, event: serde_json::Value) {
    api.push(id, event.to_string().as_bytes());
    let answer = api.answer();
    assert_eq!((answer.kind.as_str(), answer.request_id.as_str()), ("response", id));
    assert_eq!(answer.json(), event);
}

fn assert_error(answer: &Answer, id: &str, error_type: &str, message: &str) {
    assert_eq!((answer.kind.as_str(), answer.request_id.as_str()), ("error", id));
    let body = answer.json();
    assert_eq!(body["errorType"], error_type, "{body}");
    assert_eq!(body["errorMessage"], message, "{body}");
}

#[test]
fn lambda_runtime_echo_echoes_fails_prints_sleeps_and_exits() {
    let api = RuntimeApi::start();
    let mut child = peer(env!("CARGO_BIN_EXE_lambda-runtime-echo"), &[], &api);

    assert_echo(&api, "r1", json!({"hello": ["world", 1, null]}));

    api.push("r2", br#"{"error": "card declined"}"#);
    let answer = api.answer();
    assert_error(&answer, "r2", "EchoError", "card declined");
    assert_eq!(answer.header("lambda-runtime-function-error-type"), Some("unhandled"));

    assert_echo(&api, "r3", json!({"sleep_ms": 20}));
    assert_echo(&api, "r4", json!({"line_bytes": 5000}));

    api.push("r5", br#"{"exit": 3}"#);
    assert_eq!(wait(&mut child).code(), Some(3));
    let lines: Vec<String> = stdout_of(&mut child).lines().map(str::to_owned).collect();
    assert_eq!(lines, vec!["x".repeat(5000)]);
}

#[test]
fn lambda_runtime_echo_dies_of_sigsegv() {
    let api = RuntimeApi::start();
    let mut child = peer(env!("CARGO_BIN_EXE_lambda-runtime-echo"), &[], &api);
    api.push("r1", br#"{"segv": true}"#);
    assert_eq!(wait(&mut child).signal(), Some(libc::SIGSEGV));
}

#[test]
fn lambda_runtime_stream_sends_its_chunks_as_a_streamed_response() {
    let api = RuntimeApi::start();
    let mut child = peer(env!("CARGO_BIN_EXE_lambda-runtime-stream"), &[], &api);
    api.push("s1", br#"{"chunks": 3, "delay_ms": 10}"#);
    let answer = api.answer();
    assert_eq!((answer.kind.as_str(), answer.request_id.as_str()), ("response", "s1"));
    assert_eq!(answer.header("lambda-runtime-function-response-mode"), Some("streaming"));
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    // The body is the metadata prelude, eight NUL bytes, then the chunks.
    let separator = answer.body.windows(8).position(|w| w == [0; 8]).expect("no prelude separator");
    let prelude: serde_json::Value = serde_json::from_slice(&answer.body[..separator]).unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}");
    assert_eq!(&answer.body[separator + 8..], b"chunk 0\nchunk 1\nchunk 2\n");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bash_runtime_echoes_fails_and_exits() {
    let api = RuntimeApi::start();
    let script = manifest_dir().join("bash/bootstrap.sh");
    let mut child = peer(script.to_str().unwrap(), &[], &api);

    assert_echo(&api, "b1", json!({"k": "v", "n": [1, 2]}));
    api.push("b2", br#"{"error": "no such order"}"#);
    assert_error(&api.answer(), "b2", "BashError", "no such order");
    api.push("b3", br#"{"exit": 4}"#);
    assert_eq!(wait(&mut child).code(), Some(4));
}

#[test]
#[ignore = "needs python3 with awslambdaric installed (pip install awslambdaric)"]
fn python_awslambdaric_handlers() {
    let run = |handler: &str| {
        let api = RuntimeApi::start();
        let child = peer("python3", &["-m", "awslambdaric", handler], &api);
        (api, child)
    };

    let (api, mut child) = run("handler.echo");
    assert_echo(&api, "p1", json!({"a": [1, "b"]}));
    let _ = child.kill();
    let _ = child.wait();

    let (api, mut child) = run("handler.error");
    api.push("p2", br#"{"message": "refused"}"#);
    assert_error(&api.answer(), "p2", "HandlerError", "refused");
    let _ = child.kill();
    let _ = child.wait();

    let (api, mut child) = run("handler.sleep");
    api.push("p3", br#"{"ms": 20}"#);
    assert_eq!(api.answer().json(), json!({"slept_ms": 20}));
    let _ = child.kill();
    let _ = child.wait();

    let (api, mut child) = run("handler.big_line");
    api.push("p4", br#"{"bytes": 3000}"#);
    assert_eq!(api.answer().json(), json!({"line_bytes": 3000}));
    let _ = child.kill();
    let _ = child.wait();
    assert!(stdout_of(&mut child).lines().any(|line| line == "x".repeat(3000)));

    let (api, mut child) = run("handler.crash");
    api.push("p5", b"{}");
    assert_eq!(wait(&mut child).code(), Some(1));

    let (api, mut child) = run("handler.segv");
    api.push("p6", b"{}");
    assert_eq!(wait(&mut child).signal(), Some(libc::SIGSEGV));
}
