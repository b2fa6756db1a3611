//! The bootstrap served by a third-party Runtime API: cargo-lambda's emulator
//! (`cargo lambda watch --only-lambda-apis`, from the `.venv` that scripts/setup-peers.sh makes).
//! Unlike Lambda, its `AWS_LAMBDA_RUNTIME_API` is a URL with a path, its `/next` has no
//! Content-Type and its deadline is a constant 600000 (1970), and it answers `/response` 200.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use emulator_support::{post, Collected, Reply};
use http::StatusCode;
use runtime_support::*;
use serde_json::json;

/// cargo-lambda routes an invoke only to a function named after one of the workspace's binaries;
/// the runtime of function NAME polls `<AWS_LAMBDA_RUNTIME_API>/NAME/...`.
const FUNCTION: &str = "bootstrap";

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo_lambda() -> PathBuf {
    let path = workspace_root().join(".venv/bin/cargo-lambda");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/setup-peers.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A child process killed when the test ends, also on panic.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// cargo-lambda's Runtime API server and a bootstrap serving `handler` through it.
struct CargoLambda {
    invoke_url: String,
    bootstrap_stderr: Collected,
    // Dropped in this order: the runtime, then the server.
    _bootstrap: Killed,
    _server: Killed,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `KEY=VALUE` from cargo-lambda's ` INFO KEY=VALUE` start-up lines.
fn printed_variable(output: &str, key: &str) -> String {
    let prefix = format!("{key}=");
    output
        .lines()
        .find_map(|line| line.trim().strip_prefix("INFO ")?.trim().strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("cargo-lambda did not print {key}:\n{output}"))
        .trim()
        .to_owned()
}

fn start(handler: &str) -> CargoLambda {
    let port = free_port().to_string();
    let mut server = Command::new(cargo_lambda())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
            &port,
        ])
        .current_dir(workspace_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cargo-lambda starts");
    let output = Collected::spawn_reader(server.stdout.take().unwrap());
    let errors = Collected::spawn_reader(server.stderr.take().unwrap());
    let server = Killed(server);
    let printed = output
        .wait_for("starting Runtime server", Duration::from_mins(1))
        .unwrap_or_else(|text| panic!("cargo-lambda did not start:\n{text}\n{}", errors.text()));

    // It logs that line just before it binds: wait until it accepts connections.
    wait_until(Duration::from_secs(30), "cargo-lambda to listen", || {
        TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())).ok()
    });
    let runtime_api = printed_variable(&printed, "AWS_LAMBDA_RUNTIME_API");
    assert!(
        runtime_api.starts_with("http://127.0.0.1:") && runtime_api.ends_with("/.rt"),
        "{runtime_api}"
    );
    let mut bootstrap = Command::new(bootstrap_binary())
        .env("AWS_LAMBDA_RUNTIME_API", format!("{runtime_api}/{FUNCTION}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
        .env(
            "AWS_LAMBDA_FUNCTION_VERSION",
            printed_variable(&printed, "AWS_LAMBDA_FUNCTION_VERSION"),
        )
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            printed_variable(&printed, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        )
        .env("DD_LAMBDA_HANDLER", handler)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the bootstrap starts");
    let bootstrap_stderr = Collected::spawn_reader(bootstrap.stderr.take().unwrap());
    CargoLambda {
        invoke_url: format!("http://127.0.0.1:{port}/2015-03-31/functions/{FUNCTION}/invocations"),
        bootstrap_stderr,
        _bootstrap: Killed(bootstrap),
        _server: server,
    }
}

impl CargoLambda {
    async fn invoke(&self, event: &str) -> Reply {
        post(&self.invoke_url, event.as_bytes().to_vec(), &[]).await
    }
}

#[tokio::test]
async fn echo_round_trips_through_cargo_lambda() {
    let server = start(&example_handler("echo"));
    for n in 0..3 {
        let event = json!({"n": n, "nested": {"list": [1, "two", null]}});
        let reply = server.invoke(&event.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert_eq!(reply.json(), event);
    }
    // The constant, long-past deadline did not set off the bootstrap's timeout watch.
    let stderr = server.bootstrap_stderr.text();
    assert!(!stderr.contains("about to time out") && !stderr.contains("ERROR"), "{stderr}");
}

#[tokio::test]
async fn an_error_round_trips_through_cargo_lambda() {
    let server = start(&example_handler("error"));
    let reply = server.invoke(r#"{"message": "card declined"}"#).await;
    // cargo-lambda answers a function error 500 with the runtime's error body.
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"errorType": "handlers_example::ExampleError", "errorMessage": "card declined", "stackTrace": []})
    );
    // The process serves on after an error.
    let reply = server.invoke(r#"{"message": "out of stock"}"#).await;
    assert_eq!(reply.json()["errorMessage"], "out of stock");
}

#[tokio::test]
async fn the_handler_sees_cargo_lambdas_invocation_as_sent() {
    let server = start(&example_handler("context"));
    let reply = server.invoke("{}").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let context = reply.json();
    assert_eq!(context["deadline_ms"], 600_000, "{context}");
    assert_eq!(context["request_id"].as_str().unwrap().len(), 36, "{context}");
    assert_eq!(context["function_name"], FUNCTION);
    assert!(context["xray_trace_id"].as_str().unwrap().starts_with("Root=1-"), "{context}");
}
