//! The `SIGABRT` handler on its own: when the telemetry task cannot run (its runtime is stuck),
//! the handler still answers the invocation and prints the enhanced lines itself.
//!
//! The test runs itself again as a child process (`ABORT_REPORT_CHILD` set), which installs the
//! abort report against a Runtime API this test serves on 127.0.0.1, gives it a telemetry
//! runtime that is never driven, and calls a watched handler whose allocation fails through the
//! reporting allocator, so Rust aborts the process as it would in a handler library.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::Arc;

use bootstrap::abort_report;
use bootstrap::config::Environment;
use bootstrap::handler::{BoxFuture, Handler, HandlerOutcome, Invocation};
use bootstrap::lifecycle::{LifecycleEvent, LifecycleObserver};
use bootstrap::runtime_api::{Endpoint, InvocationContext};
use bootstrap::telemetry::metrics::MetricsConfig;

/// As in a handler library built with `sdk::export_abi!()`.
#[global_allocator]
static ALLOCATOR: sdk::alloc::Reporting = sdk::alloc::Reporting::system();

const CHILD: &str = "ABORT_REPORT_CHILD";
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:fallback-fn";
const HUGE: usize = 1 << 62;

/// A handler whose allocation fails: Rust's `handle_alloc_error` aborts the process.
struct FailingAllocation;

impl Handler for FailingAllocation {
    fn invoke(&self, _invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome> {
        Box::pin(async {
            let layout = std::alloc::Layout::from_size_align(HUGE, 1).unwrap();
            // SAFETY: a non-zero-sized layout; the allocation is refused.
            let ptr = unsafe { std::alloc::alloc(layout) };
            assert!(ptr.is_null());
            std::alloc::handle_alloc_error(layout)
        })
    }
}

/// Never called: its runtime never runs.
struct Unreachable;

impl LifecycleObserver for Unreachable {
    fn observe<'a>(&'a self, _event: &'a LifecycleEvent) -> BoxFuture<'a, ()> {
        Box::pin(async { unreachable!("the stuck runtime ran a task") })
    }
}

/// The child's whole life: set up as `main` does, then invoke.
fn child(runtime_api: &str) -> ! {
    sdk::alloc::set_failure_reporter(Some(abort_report::record_alloc_failure));
    let env = Environment::from_pairs([("DD_FLUSH_TO_LOG", "true"), ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")]);
    let metrics = MetricsConfig::from_env_with_extension_path(&env, std::path::Path::new("/nonexistent/datadog-agent"));
    let reporting = abort_report::install(&Endpoint::parse(runtime_api).unwrap(), &metrics).unwrap();
    let stuck = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    reporting.report_through(stuck.handle(), Arc::new(Unreachable), Vec::new()).unwrap();
    let handler = reporting.watch(Arc::new(FailingAllocation));
    let invocation = Arc::new(Invocation {
        context: InvocationContext {
            request_id: REQUEST_ID.to_owned(),
            invoked_function_arn: ARN.to_owned(),
            ..InvocationContext::default()
        },
        headers: http::HeaderMap::new(),
        event: bytes::Bytes::from_static(b"{}"),
    });
    let main = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    main.block_on(handler.invoke_timed(invocation));
    unreachable!("the handler aborts the process");
}

/// Serves one request and returns it whole (headers and body).
fn serve_one(listener: &TcpListener) -> String {
    let (mut stream, _) = listener.accept().unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).unwrap();
        received.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            if body.len() >= length {
                stream
                    .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}")
                    .unwrap();
                return text;
            }
        }
        assert!(n > 0, "the request ended early: {}", String::from_utf8_lossy(&received));
    }
}

#[test]
fn the_signal_handler_prints_the_lines_when_the_telemetry_task_cannot_run() {
    if let Ok(runtime_api) = std::env::var(CHILD) {
        child(&runtime_api);
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "the_signal_handler_prints_the_lines_when_the_telemetry_task_cannot_run",
            "--nocapture",
        ])
        .env(CHILD, listener.local_addr().unwrap().to_string())
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let request = serve_one(&listener);
    let output = process.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "{stderr}");

    let (head, body) = request.split_once("\r\n\r\n").unwrap();
    assert!(
        head.starts_with(&format!("POST /2018-06-01/runtime/invocation/{REQUEST_ID}/error HTTP/1.1\r\n")),
        "{head}"
    );
    assert!(
        head.contains("lambda-runtime-function-error-type: Runtime.OutOfMemory\r\n"),
        "{head}"
    );
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["errorType"], "Runtime.OutOfMemory");
    assert_eq!(
        body["errorMessage"],
        format!("RequestId: {REQUEST_ID} Error: Runtime exited with error: signal: aborted (memory allocation of {HUGE} bytes failed)")
    );

    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"m\":"))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = lines.iter().map(|l| l["m"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "aws.lambda.enhanced.invocations",
            "aws.lambda.enhanced.errors",
            "aws.lambda.enhanced.out_of_memory"
        ],
        "{stdout}"
    );
    for line in &lines {
        let tags: Vec<&str> = line["t"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        for tag in ["region:eu-west-1", "functionname:fallback-fn", "memorysize:256", "cold_start:true"] {
            assert!(tags.contains(&tag), "{tag} missing: {line}");
        }
        assert_eq!(line["v"], 1);
    }
    assert!(stderr.contains(&format!("memory allocation of {HUGE} bytes failed")), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "during invocation {REQUEST_ID} after an allocation of {HUGE} bytes failed; answered it as Runtime.OutOfMemory (Runtime API status 202); its enhanced metrics are printed, custom metrics and trace data not yet sent are lost"
        )),
        "{stderr}"
    );
}
