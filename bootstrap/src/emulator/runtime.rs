//! The Runtime API (`/2018-06-01/runtime/...`) as AWS documents it: `/next` long-polls for an
//! invocation, `/response` and `/error` answer it once (202), anything else about an unknown or
//! answered request id is refused (400), and a buffered response over 6 MiB is refused (413)
//! and fails the invocation with `Function.ResponseSizeTooLarge`.
use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

use super::body::{accepted, api_error, full, ChannelBody, ResponseBody};
use super::faults::{DropConnection, FaultKind};
use super::sandbox::{error_body, Answer, AnswerSlot, NextAnswer, Refusal, Sandbox};
use super::stats::Counter;
use crate::runtime_api::{header_names, MAX_RESPONSE_BYTES};

/// How many streamed chunks may wait for a slow invoke client before the runtime is held back.
const STREAM_BUFFER_FRAMES: usize = 16;
/// How much of an oversized answer is read (and dropped) before the connection is given up.
const DRAIN_LIMIT: u64 = 64 * 1024 * 1024;

/// What the runtime sends for `next-bad-deadline` and `next-bad-client-context`.
const BAD_DEADLINE: &str = "soon";
const BAD_CLIENT_CONTEXT: &str = "{not json";

/// `GET /2018-06-01/runtime/invocation/next`.
pub async fn next(sandbox: &Sandbox) -> Result<Response<ResponseBody>, DropConnection> {
    let dispatched = match sandbox.next().await {
        NextAnswer::Dispatch(dispatched) => dispatched,
        NextAnswer::Reset => return Err(DropConnection),
    };
    let fault = dispatched.fault;
    let mut response = Response::new(full(dispatched.request.event.clone()));
    let headers = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    if fault != Some(FaultKind::NextMissingRequestId) {
        put(header_names::REQUEST_ID, &dispatched.request.request_id);
    }
    match fault {
        Some(FaultKind::NextBadDeadline) => put(header_names::DEADLINE_MS, BAD_DEADLINE),
        _ => put(header_names::DEADLINE_MS, &dispatched.deadline_ms.to_string()),
    }
    put(header_names::INVOKED_FUNCTION_ARN, &dispatched.function_arn);
    put(header_names::TRACE_ID, &dispatched.request.trace_id);
    match (fault, &dispatched.request.client_context) {
        (Some(FaultKind::NextBadClientContext), _) => put(header_names::CLIENT_CONTEXT, BAD_CLIENT_CONTEXT),
        (_, Some(context)) => put(header_names::CLIENT_CONTEXT, context),
        (_, None) => {}
    }
    tracing::debug!(request_id = dispatched.request.request_id, "invocation handed to the runtime");
    Ok(response)
}

/// `POST /2018-06-01/runtime/invocation/{id}/response`.
pub async fn respond(sandbox: &Sandbox, request_id: &str, request: Request<Incoming>) -> Result<Response<ResponseBody>, DropConnection> {
    if sandbox.reset_answer(request_id) {
        return Err(DropConnection);
    }
    Ok(respond_once(sandbox, request_id, request).await)
}

async fn respond_once(sandbox: &Sandbox, request_id: &str, request: Request<Incoming>) -> Response<ResponseBody> {
    let slot = match sandbox.take_for_answer(request_id) {
        Ok(slot) => slot,
        Err(refusal) => return refused(request_id, refusal),
    };
    let streaming = request
        .headers()
        .get(header_names::RESPONSE_MODE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|mode| mode.eq_ignore_ascii_case("streaming"));
    if streaming {
        let content_type = request.headers().get(http::header::CONTENT_TYPE).cloned();
        return relay_stream(sandbox, slot, content_type, request.into_body()).await;
    }
    match read_limited(request).await {
        Ok(body) => {
            slot.deliver(Answer::Response { body });
            accepted()
        }
        Err(ReadError::TooLarge(size)) => {
            sandbox.stats.add(Counter::ResponsesTooLarge);
            let message = match size {
                Some(size) => {
                    format!("Response payload size ({size} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).")
                }
                None => format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            };
            slot.deliver(Answer::Error {
                body: error_body("Function.ResponseSizeTooLarge", &message),
            });
            api_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message)
        }
        Err(ReadError::Broken(reason)) => truncated(slot, &reason),
    }
}

/// `POST /2018-06-01/runtime/invocation/{id}/error`.
pub async fn error(sandbox: &Sandbox, request_id: &str, request: Request<Incoming>) -> Result<Response<ResponseBody>, DropConnection> {
    if sandbox.reset_answer(request_id) {
        return Err(DropConnection);
    }
    Ok(error_once(sandbox, request_id, request).await)
}

async fn error_once(sandbox: &Sandbox, request_id: &str, request: Request<Incoming>) -> Response<ResponseBody> {
    let slot = match sandbox.take_for_answer(request_id) {
        Ok(slot) => slot,
        Err(refusal) => return refused(request_id, refusal),
    };
    let error_type = error_type_header(request.headers());
    match read_limited(request).await {
        Ok(body) => {
            slot.deliver(Answer::Error {
                body: function_error_body(body, error_type.as_deref()),
            });
            accepted()
        }
        Err(ReadError::TooLarge(_)) => {
            let message = format!("Error payload exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).");
            slot.deliver(Answer::Error {
                body: error_body("Function.ResponseSizeTooLarge", &message),
            });
            api_error(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message)
        }
        Err(ReadError::Broken(reason)) => truncated(slot, &reason),
    }
}

/// `POST /2018-06-01/runtime/init/error`.
pub async fn init_error(sandbox: &Sandbox, request: Request<Incoming>) -> Response<ResponseBody> {
    let error_type = error_type_header(request.headers());
    let body = match read_limited(request).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    sandbox.init_error(&function_error_body(body, error_type.as_deref().or(Some("Runtime.Unknown"))));
    accepted()
}

fn refused(request_id: &str, refusal: Refusal) -> Response<ResponseBody> {
    tracing::warn!(
        request_id,
        ?refusal,
        "refused an answer for an invocation that is not waiting for one"
    );
    match refusal {
        Refusal::Unknown => api_error(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID"),
        Refusal::AlreadyAnswered => api_error(
            StatusCode::BAD_REQUEST,
            "InvalidStateTransition",
            "Invalid request ID: the invocation was already answered or timed out",
        ),
    }
}

fn truncated(slot: AnswerSlot, reason: &str) -> Response<ResponseBody> {
    let message = format!("the runtime's answer for {} broke off: {reason}", slot.request_id());
    slot.deliver(Answer::Error {
        body: error_body("Runtime.TruncatedResponse", &message),
    });
    api_error(StatusCode::BAD_REQUEST, "InvalidRequest", &message)
}

fn error_type_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header_names::FUNCTION_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// The error body the invoke receives: the runtime's own when it sent one, else one built from
/// the `Lambda-Runtime-Function-Error-Type` header.
fn function_error_body(body: Bytes, error_type: Option<&str>) -> Bytes {
    if !body.iter().all(u8::is_ascii_whitespace) {
        return body;
    }
    error_body(error_type.unwrap_or("Unhandled"), "")
}

enum ReadError {
    /// Over the limit; the declared size when the request said it.
    TooLarge(Option<u64>),
    Broken(String),
}

async fn read_limited(request: Request<Incoming>) -> Result<Bytes, ReadError> {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = request.into_body();
    let mut buffer = BytesMut::new();
    let mut too_large = declared.is_some_and(|size| size > MAX_RESPONSE_BYTES as u64);
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ReadError::Broken(e.to_string()))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > MAX_RESPONSE_BYTES as u64 {
            too_large = true;
            buffer.clear();
        }
        if too_large {
            // Read the rest and drop it, so the runtime's client sees the 413 instead of a
            // connection reset halfway through its upload; give up on absurd sizes.
            if seen > DRAIN_LIMIT {
                break;
            }
            continue;
        }
        buffer.extend_from_slice(&data);
    }
    if too_large {
        return Err(ReadError::TooLarge(declared.or(Some(seen))));
    }
    Ok(buffer.freeze())
}

/// Relays a streamed response chunk by chunk, trailers included, and answers 202 at its end.
/// A stream still running at the deadline ends with `Sandbox.Timedout` trailers, and the
/// runtime is killed as for any timeout.
async fn relay_stream(
    sandbox: &Sandbox,
    slot: AnswerSlot,
    content_type: Option<HeaderValue>,
    mut body: Incoming,
) -> Response<ResponseBody> {
    let request_id = slot.request_id().to_owned();
    let deadline = slot.deadline();
    let (frames, relayed) = ChannelBody::channel(STREAM_BUFFER_FRAMES);
    slot.deliver(Answer::Stream {
        content_type,
        body: relayed,
    });
    let mut client_gone = false;
    loop {
        let next = match deadline {
            Some(deadline) => {
                if let Ok(next) = tokio::time::timeout_at(deadline, body.frame()).await {
                    next
                } else {
                    let error = sandbox.timed_out_body(&request_id);
                    let _ = frames.send(Frame::trailers(error_trailers("Sandbox.Timedout", &error))).await;
                    drop(frames);
                    sandbox.kill_for_timeout(&request_id).await;
                    return api_error(StatusCode::GONE, "Sandbox.Timedout", "the invocation timed out while streaming");
                }
            }
            None => body.frame().await,
        };
        let Some(frame) = next else { break };
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                tracing::warn!(request_id, error = %err, "streamed response broke off");
                let error = error_body("Runtime.TruncatedResponse", &err.to_string());
                let _ = frames
                    .send(Frame::trailers(error_trailers("Runtime.TruncatedResponse", &error)))
                    .await;
                return api_error(StatusCode::BAD_REQUEST, "InvalidRequest", "the streamed response broke off");
            }
        };
        if let Some(trailers) = frame.trailers_ref() {
            if let Some(error_type) = trailers.get(header_names::FUNCTION_ERROR_TYPE) {
                tracing::info!(request_id, error_type = ?error_type, "streamed response ended with an error");
            }
        }
        // Keep reading after the invoke client hung up, so the runtime still gets its 202.
        if !client_gone && frames.send(frame).await.is_err() {
            client_gone = true;
        }
    }
    accepted()
}

/// The trailers that end a stream with an error: its type, and its body in base64.
fn error_trailers(error_type: &'static str, body: &[u8]) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert(header_names::FUNCTION_ERROR_TYPE, HeaderValue::from_static(error_type));
    let encoded = base64::engine::general_purpose::STANDARD.encode(body);
    if let Ok(value) = HeaderValue::from_str(&encoded) {
        trailers.insert(header_names::FUNCTION_ERROR_BODY, value);
    }
    trailers
}
