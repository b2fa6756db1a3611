//! The floor of the benchmark: a Lambda runtime that does nothing but `/next` -> `/response`,
//! echoing the event, over one keep-alive connection with the minimal client in
//! `benches::http1`. No `lambda_runtime`, no async runtime, no JSON: whatever a real runtime
//! costs above this is its own overhead.
//!
//! `AWS_LAMBDA_RUNTIME_API` is `host:port` (what Lambda and `lambda-emulator` set); an
//! `http://host:port/prefix` URL is accepted too.
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

use benches::http1::{Connection, HttpError};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "lambda-runtime-aws-request-id";

fn main() -> ExitCode {
    let Some(raw) = std::env::var_os("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("bare-loop: AWS_LAMBDA_RUNTIME_API is not set; run me under a Lambda Runtime API");
        return ExitCode::FAILURE;
    };
    let raw = raw.to_string_lossy();
    let Some((addr, prefix)) = endpoint(&raw) else {
        eprintln!("bare-loop: AWS_LAMBDA_RUNTIME_API={raw:?} is not host:port or http://host:port[/prefix]");
        return ExitCode::FAILURE;
    };
    match serve(addr, &prefix) {
        Ok(never) => match never {},
        Err(err) => {
            eprintln!("bare-loop: the Runtime API at {addr} failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Serves invocations until the connection fails.
fn serve(addr: SocketAddr, prefix: &str) -> Result<std::convert::Infallible, HttpError> {
    let mut connection = Connection::connect(addr)?;
    let next_path = format!("{prefix}{NEXT}");
    // Reused for every invocation: the path of the answer and the event it echoes.
    let mut response_path = String::with_capacity(128);
    let mut event = Vec::with_capacity(16 * 1024);
    loop {
        let next = connection.request("GET", &next_path, b"")?;
        if next.status != 200 {
            return Err(HttpError::Malformed("/next did not answer 200"));
        }
        let id = next.header(REQUEST_ID).ok_or(HttpError::Malformed("/next without a request id"))?;
        let id = std::str::from_utf8(id).map_err(|_| HttpError::Malformed("a request id that is not UTF-8"))?;
        response_path.clear();
        response_path.push_str(prefix);
        response_path.push_str("/2018-06-01/runtime/invocation/");
        response_path.push_str(id);
        response_path.push_str("/response");
        event.clear();
        event.extend_from_slice(next.body);
        // 202 on success; anything else (a late answer after a timeout) is the emulator's business.
        connection.request("POST", &response_path, &event)?;
    }
}

/// `host:port` or `http://host:port/prefix` -> the address and the path prefix.
fn endpoint(raw: &str) -> Option<(SocketAddr, String)> {
    let rest = raw.strip_prefix("http://").unwrap_or(raw);
    let (authority, prefix) = match rest.find('/') {
        Some(at) => (&rest[..at], rest[at..].trim_end_matches('/').to_owned()),
        None => (rest, String::new()),
    };
    let addr = authority.to_socket_addrs().ok()?.next()?;
    Some((addr, prefix))
}
