//! An echo function built with AWS's `lambda_runtime` crate: the reference peer for exec-mode tests.
//!
//! Behaviour by event:
//! - `{"error": "msg"}`: fails with that message;
//! - `{"exit": N}`: exits the process with status N without answering;
//! - `{"segv": true}`: dies of SIGSEGV;
//! - `{"sleep_ms": N}`: sleeps N ms, then echoes;
//! - `{"line_bytes": N}`: prints one stdout line of N bytes (newline excluded), then echoes;
//! - anything else: echoes.
use std::io::Write;
use std::time::Duration;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Diagnostic> {
    let payload = event.payload;
    if let Some(message) = payload.get("error").and_then(Value::as_str) {
        return Err(Diagnostic {
            error_type: "EchoError".into(),
            error_message: message.to_string(),
        });
    }
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(i32::try_from(code).unwrap_or(1));
    }
    if payload.get("segv").and_then(Value::as_bool) == Some(true) {
        // Rust's runtime handles SIGSEGV (to report stack overflows) and returns for a raised
        // one, so restore the default action first.
        // SAFETY: setting a signal's action and raising it have no memory-safety preconditions;
        // dying is the point.
        unsafe {
            libc::signal(libc::SIGSEGV, libc::SIG_DFL);
            libc::raise(libc::SIGSEGV);
        }
    }
    if let Some(ms) = payload.get("sleep_ms").and_then(Value::as_u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if let Some(bytes) = payload.get("line_bytes").and_then(Value::as_u64) {
        let line = "x".repeat(usize::try_from(bytes).unwrap_or(0));
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}").and_then(|()| stdout.flush()).map_err(|e| Diagnostic {
            error_type: "StdoutError".into(),
            error_message: e.to_string(),
        })?;
    }
    Ok(payload)
}
