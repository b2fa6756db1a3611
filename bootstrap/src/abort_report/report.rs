//! The emergency report of a dying process (an abort, a fault), built and sent with async-signal-safe calls
//! only: text in stack buffers, `socket`/`connect`/`write`/`read` for the Runtime API's
//! `/error`, `write` for the metric lines on stdout and the log line on stderr.
pub use super::cause::Cause;
use super::prepared::{LineSet, Prepared};
use super::stack_buf::StackBuf;
use crate::runtime_api::header_names;
use crate::telemetry::metrics::enhanced::EnhancedMetric;

/// How long the Runtime API gets to take the `/error` (it is on the sandbox's loopback).
const POST_TIMEOUT_SECS: libc::time_t = 2;

/// `{"errorMessage":...,"errorType":...,"stackTrace":[]}` worded as Lambda words a runtime
/// that exited: `RequestId: <id> Error: Runtime exited with error: signal: aborted` (or
/// `segmentation fault`, `bus error`, ...), with the failed allocation or the stack overflow
/// after it when that is the cause.
pub fn error_body<const N: usize>(out: &mut StackBuf<N>, request_id: &[u8], cause: Cause) {
    out.push(b"{\"errorMessage\":\"RequestId: ")
        .push_json_text(request_id)
        .push(b" Error: ");
    push_exit_message(out, cause);
}

/// The `/init/error` body of a process that dies during the handler's init: `Runtime exited
/// with error: signal: aborted (memory allocation of N bytes failed)` and the error type.
pub fn init_error_body<const N: usize>(out: &mut StackBuf<N>, cause: Cause) {
    out.push(b"{\"errorMessage\":\"");
    push_exit_message(out, cause);
}

/// `Runtime exited with error: signal: ...` and the cause, then the body's end.
fn push_exit_message<const N: usize>(out: &mut StackBuf<N>, cause: Cause) {
    out.push(b"Runtime exited with error: signal: ")
        .push(cause.signal_description().as_bytes());
    match cause {
        Cause::OutOfMemory { size } => {
            out.push(b" (memory allocation of ").push_u64(size as u64).push(b" bytes failed)");
        }
        Cause::StackOverflow => {
            out.push(b" (stack overflow)");
        }
        Cause::Aborted | Cause::Fault(_) => {}
    }
    out.push(b"\",\"errorType\":\"")
        .push(cause.error_type().as_bytes())
        .push(b"\",\"stackTrace\":[]}");
}

/// The whole `/init/error` request, as the Runtime API client would send it.
pub fn init_error_request<const N: usize>(out: &mut StackBuf<N>, prepared: &Prepared, cause: Cause, body: &[u8]) {
    out.push(&prepared.init_error_line)
        .push(&prepared.fixed_headers)
        .push(header_names::FUNCTION_ERROR_TYPE.as_bytes())
        .push(b": ")
        .push(cause.error_type().as_bytes())
        .push(b"\r\nContent-Length: ")
        .push_u64(body.len() as u64)
        .push(b"\r\n\r\n")
        .push(body);
}

/// The whole `/error` request, as the Runtime API client would send it.
pub fn error_request<const N: usize>(
    out: &mut StackBuf<N>,
    prepared: &Prepared,
    request_id: &[u8],
    invocation_id: &[u8],
    cause: Cause,
    body: &[u8],
) {
    out.push(&prepared.request_start)
        .push(request_id)
        .push(b"/error HTTP/1.1\r\n")
        .push(&prepared.fixed_headers)
        .push(header_names::FUNCTION_ERROR_TYPE.as_bytes())
        .push(b": ")
        .push(cause.error_type().as_bytes())
        .push(b"\r\n");
    if !invocation_id.is_empty() {
        out.push(header_names::INVOCATION_ID.as_bytes())
            .push(b": ")
            .push(invocation_id)
            .push(b"\r\n");
    }
    out.push(b"Content-Length: ")
        .push_u64(body.len() as u64)
        .push(b"\r\n\r\n")
        .push(body);
}

/// The Forwarder lines of an aborted invocation, byte for byte as the metrics processor prints
/// them: `{"m":..,"v":1,"e":<seconds>,"t":<tags>}` and a newline each.
pub fn metric_lines<const N: usize>(out: &mut StackBuf<N>, lines: LineSet, cause: Cause, epoch_seconds: u64, tags_json: &[u8]) {
    let oom = matches!(cause, Cause::OutOfMemory { .. });
    let wanted = [
        (EnhancedMetric::Invocations, lines.invocations),
        (EnhancedMetric::Errors, lines.errors),
        (EnhancedMetric::OutOfMemory, lines.out_of_memory && oom),
    ];
    for (metric, _) in wanted.iter().filter(|(_, on)| *on) {
        out.push(b"{\"m\":\"")
            .push(metric.name().as_bytes())
            .push(b"\",\"v\":1,\"e\":")
            .push_u64(epoch_seconds)
            .push(b",\"t\":")
            .push(tags_json)
            .push(b"}\n");
    }
}

/// Sends `request` to the Runtime API and returns the answer's status code.
pub fn post(prepared: &Prepared, request: &[u8]) -> Result<u16, PostError> {
    // SAFETY: plain system calls on a socket this function owns; every pointer is to a live
    // local or to `prepared`, with its true length.
    unsafe {
        let fd = libc::socket(prepared.family(), libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(PostError::last("socket"));
        }
        let result = (|| {
            let timeout = libc::timeval {
                tv_sec: POST_TIMEOUT_SECS,
                tv_usec: 0,
            };
            for option in [libc::SO_SNDTIMEO, libc::SO_RCVTIMEO] {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    option,
                    std::ptr::from_ref(&timeout).cast(),
                    size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            let (address, address_len) = prepared.socket_address();
            if libc::connect(fd, address, address_len) != 0 {
                return Err(PostError::last("connect"));
            }
            write_all(fd, request).map_err(|errno| PostError { step: "write", errno })?;
            read_status(fd)
        })();
        libc::close(fd);
        result
    }
}

/// Reads until the status line is complete (or the connection ends).
fn read_status(fd: libc::c_int) -> Result<u16, PostError> {
    let mut answer = [0u8; 256];
    let mut len = 0;
    while len < answer.len() && !answer[..len].contains(&b'\n') {
        // SAFETY: reads into the unused tail of a local buffer.
        let n = unsafe { libc::read(fd, answer[len..].as_mut_ptr().cast(), answer.len() - len) };
        match n {
            0 => break,
            n if n < 0 => {
                if errno() == libc::EINTR {
                    continue;
                }
                return Err(PostError::last("read"));
            }
            n => len += n as usize,
        }
    }
    // `HTTP/1.1 202 Accepted`
    let status = answer[..len]
        .split(|&b| b == b' ')
        .nth(1)
        .filter(|code| code.len() == 3 && code.iter().all(u8::is_ascii_digit))
        .map(|code| code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')));
    status.ok_or(PostError { step: "read", errno: 0 })
}

/// Writes everything, going on after partial writes and interruptions; the errno on failure.
pub fn write_all(fd: libc::c_int, mut bytes: &[u8]) -> Result<(), i32> {
    while !bytes.is_empty() {
        // SAFETY: writes from a live slice with its true length.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            let errno = errno();
            if errno == libc::EINTR {
                continue;
            }
            return Err(errno);
        }
        bytes = &bytes[n as usize..];
    }
    Ok(())
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Which step of the `/error` post failed, with its errno (0: the answer was not HTTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostError {
    pub step: &'static str,
    pub errno: i32,
}

impl PostError {
    fn last(step: &'static str) -> Self {
        Self { step, errno: errno() }
    }
}

/// Seconds since the Unix epoch (`clock_gettime`, signal-safe).
pub fn epoch_seconds() -> u64 {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &raw mut now) };
    now.tv_sec.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abort_report::cause::Fault;
    use crate::runtime_api::{Endpoint, ErrorBody};
    use crate::sinks::forwarder_lines::format_line;
    use crate::telemetry::metrics::MetricPoint;

    const ID: &[u8] = b"8476a536-e9f4-11e8-9739-2dfe598c3fcd";

    #[test]
    fn error_bodies_parse_as_lambda_error_bodies() {
        let mut oom = StackBuf::<512>::new();
        error_body(&mut oom, ID, Cause::OutOfMemory { size: 1 << 40 });
        let body: ErrorBody = serde_json::from_slice(oom.as_bytes()).unwrap();
        assert_eq!(body.error_type, "Runtime.OutOfMemory");
        assert_eq!(
            body.error_message,
            "RequestId: 8476a536-e9f4-11e8-9739-2dfe598c3fcd Error: Runtime exited with error: signal: aborted (memory allocation of 1099511627776 bytes failed)"
        );
        assert!(body.stack_trace.is_empty());
        for (cause, message) in [
            (Cause::StackOverflow, "signal: aborted (stack overflow)"),
            (Cause::Fault(Fault::Segmentation), "signal: segmentation fault"),
            (Cause::Fault(Fault::Bus), "signal: bus error"),
            (Cause::Fault(Fault::IllegalInstruction), "signal: illegal instruction"),
            (Cause::Fault(Fault::FloatingPoint), "signal: floating point exception"),
        ] {
            let mut text = StackBuf::<512>::new();
            error_body(&mut text, ID, cause);
            let body: ErrorBody = serde_json::from_slice(text.as_bytes()).unwrap();
            let expected = format!("RequestId: 8476a536-e9f4-11e8-9739-2dfe598c3fcd Error: Runtime exited with error: {message}");
            assert_eq!(body, ErrorBody::new("Runtime.ExitError", &expected));
        }
        let mut aborted = StackBuf::<512>::new();
        error_body(&mut aborted, ID, Cause::Aborted);
        let body: ErrorBody = serde_json::from_slice(aborted.as_bytes()).unwrap();
        assert_eq!(
            body,
            ErrorBody::new(
                "Runtime.ExitError",
                "RequestId: 8476a536-e9f4-11e8-9739-2dfe598c3fcd Error: Runtime exited with error: signal: aborted"
            )
        );
    }

    #[test]
    fn the_request_carries_the_error_type_and_the_invocation_id() {
        let prepared = Prepared::new(&Endpoint::parse("127.0.0.1:9001").unwrap(), LineSet::default()).unwrap();
        let mut request = StackBuf::<4096>::new();
        error_request(&mut request, &prepared, ID, b"inv-7", Cause::Aborted, b"{}");
        let text = String::from_utf8(request.as_bytes().to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.split("\r\n");
        assert_eq!(
            lines.next(),
            Some("POST /2018-06-01/runtime/invocation/8476a536-e9f4-11e8-9739-2dfe598c3fcd/error HTTP/1.1")
        );
        let headers: Vec<&str> = lines.collect();
        for expected in [
            "Host: 127.0.0.1:9001",
            "Content-Type: application/json",
            "lambda-runtime-function-error-type: Runtime.ExitError",
            "lambda-runtime-invocation-id: inv-7",
            "Content-Length: 2",
            "Connection: close",
        ] {
            assert!(headers.contains(&expected), "{expected} missing in {headers:?}");
        }
        assert_eq!(body, "{}");
        let mut without = StackBuf::<4096>::new();
        error_request(&mut without, &prepared, ID, b"", Cause::Aborted, b"{}");
        assert!(!String::from_utf8_lossy(without.as_bytes()).contains("invocation-id"));
    }

    #[test]
    fn lines_are_the_processors_lines() {
        let tags = vec![
            "region:us-east-1".to_owned(),
            "cold_start:true".into(),
            "dd_lambda_layer:x_1".into(),
        ];
        let tags_json = serde_json::to_vec(&tags).unwrap();
        let all = LineSet {
            invocations: true,
            errors: true,
            out_of_memory: true,
        };
        let expected = |names: &[&str]| -> String {
            names
                .iter()
                .map(|n| format_line(&MetricPoint::new(*n, 1, 1_795_520_249, tags.clone())) + "\n")
                .collect()
        };
        let mut oom = StackBuf::<4096>::new();
        metric_lines(&mut oom, all, Cause::OutOfMemory { size: 8 }, 1_795_520_249, &tags_json);
        assert_eq!(
            String::from_utf8_lossy(oom.as_bytes()),
            expected(&[
                "aws.lambda.enhanced.invocations",
                "aws.lambda.enhanced.errors",
                "aws.lambda.enhanced.out_of_memory"
            ])
        );
        let mut aborted = StackBuf::<4096>::new();
        metric_lines(&mut aborted, all, Cause::Aborted, 1_795_520_249, &tags_json);
        assert_eq!(
            String::from_utf8_lossy(aborted.as_bytes()),
            expected(&["aws.lambda.enhanced.invocations", "aws.lambda.enhanced.errors"])
        );
        let mut none = StackBuf::<64>::new();
        metric_lines(&mut none, LineSet::default(), Cause::OutOfMemory { size: 8 }, 1, &tags_json);
        assert!(none.is_empty());
    }

    #[test]
    fn posts_to_a_real_listener_and_reads_its_status() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = Endpoint::parse(&listener.local_addr().unwrap().to_string()).unwrap();
        let prepared = Prepared::new(&endpoint, LineSet::default()).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.ends_with(b"{}") {
                let n = stream.read(&mut chunk).unwrap();
                assert!(n > 0, "the request ended early: {}", String::from_utf8_lossy(&received));
                received.extend_from_slice(&chunk[..n]);
            }
            stream.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n").unwrap();
            received
        });
        let mut request = StackBuf::<4096>::new();
        error_request(&mut request, &prepared, ID, b"", Cause::Aborted, b"{}");
        assert_eq!(post(&prepared, request.as_bytes()), Ok(202));
        assert_eq!(server.join().unwrap(), request.as_bytes());

        // Nobody listening: a refused connection, reported, not a hang.
        let closed = Endpoint::parse(
            &std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .to_string(),
        )
        .unwrap();
        let prepared = Prepared::new(&closed, LineSet::default()).unwrap();
        let refused = post(&prepared, request.as_bytes()).unwrap_err();
        assert_eq!((refused.step, refused.errno), ("connect", libc::ECONNREFUSED));
    }
}
