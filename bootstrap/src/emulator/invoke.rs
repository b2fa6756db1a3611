//! The Invoke API: `POST /2015-03-31/functions/{name}/invocations`, the Runtime Interface
//! Emulator's path, answered as Lambda's synchronous `Invoke` answers.
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{api_error, full, ResponseBody};
use super::sandbox::{error_body, Answer, InvokeRequest, Sandbox};
use super::stats::Counter;
use super::{ids, EmulatorError};
use crate::runtime_api::MAX_RESPONSE_BYTES;

pub const REQUEST_ID: &str = "x-amzn-requestid";
pub const FUNCTION_ERROR: &str = "x-amz-function-error";
pub const EXECUTED_VERSION: &str = "x-amz-executed-version";
pub const TRACE_ID: &str = "x-amzn-trace-id";
pub const CLIENT_CONTEXT: &str = "x-amz-client-context";

/// Lambda's limit on the init phase of an on-demand function; an invocation not taken from
/// `/next` by then times out.
const INIT_LIMIT: Duration = Duration::from_secs(10);

/// Handles one invoke from start to answer.
pub async fn handle(sandbox: Arc<Sandbox>, request: Request<Incoming>) -> Response<ResponseBody> {
    sandbox.stats.add(Counter::InvokesReceived);
    let trace_id = request
        .headers()
        .get(TRACE_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map_or_else(|| ids::xray_trace_id(SystemTime::now()), str::to_owned);
    let client_context = match decode_client_context(request.headers().get(CLIENT_CONTEXT)) {
        Ok(context) => context,
        Err(message) => return api_error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", &message),
    };
    let event = match read_event(request.into_body()).await {
        Ok(event) => event,
        Err(response) => return *response,
    };
    let invoke = InvokeRequest {
        request_id: ids::uuid_v4(),
        event,
        trace_id,
        client_context,
    };
    let request_id = invoke.request_id.clone();
    // Run the invocation in a task of its own: its timeout holds even if the client hangs up.
    let answer = tokio::spawn(run(Arc::clone(&sandbox), invoke)).await;
    match answer {
        Ok(Ok(answer)) => answer_response(&sandbox, &request_id, answer),
        Ok(Err(EmulatorError::ShuttingDown)) => {
            api_error(StatusCode::SERVICE_UNAVAILABLE, "ServiceException", "the emulator is shutting down")
        }
        Ok(Err(err)) => {
            tracing::error!(error = %err, "the invocation could not run");
            api_error(StatusCode::BAD_GATEWAY, "ServiceException", &err.to_string())
        }
        Err(join) => api_error(StatusCode::INTERNAL_SERVER_ERROR, "ServiceException", &join.to_string()),
    }
}

/// Queues the invocation (waiting for a concurrency slot), and waits for its answer within the
/// init limit and then the function's timeout.
pub async fn run(sandbox: Arc<Sandbox>, invoke: InvokeRequest) -> Result<Answer, EmulatorError> {
    let request_id = invoke.request_id.clone();
    let permit = Arc::clone(&sandbox.concurrency)
        .acquire_owned()
        .await
        .map_err(|_| EmulatorError::ShuttingDown)?;
    let mut submitted = sandbox.submit(invoke, permit)?;
    let timed_out = || Answer::Error {
        body: sandbox.timed_out_body(&request_id),
    };
    let deadline = tokio::select! {
        biased;
        answer = &mut submitted.answer => return Ok(answer.unwrap_or_else(|_| lost(&request_id))),
        picked = &mut submitted.picked_up => match picked {
            Ok(deadline) => deadline,
            // Taken out without being picked up: its answer is already on its way.
            Err(_) => return Ok(submitted.answer.await.unwrap_or_else(|_| lost(&request_id))),
        },
        () = tokio::time::sleep(INIT_LIMIT) => {
            if sandbox.time_out(&request_id).await {
                return Ok(timed_out());
            }
            return Ok(submitted.answer.await.unwrap_or_else(|_| lost(&request_id)));
        }
    };
    match tokio::time::timeout_at(deadline, &mut submitted.answer).await {
        Ok(answer) => Ok(answer.unwrap_or_else(|_| lost(&request_id))),
        Err(_) if sandbox.time_out(&request_id).await => Ok(timed_out()),
        // Answered just as the deadline passed: that answer wins.
        Err(_) => Ok(submitted.answer.await.unwrap_or_else(|_| lost(&request_id))),
    }
}

fn lost(request_id: &str) -> Answer {
    Answer::Error {
        body: error_body(
            "Runtime.Unknown",
            &format!("RequestId: {request_id} Error: the invocation ended without an answer"),
        ),
    }
}

fn answer_response(sandbox: &Sandbox, request_id: &str, answer: Answer) -> Response<ResponseBody> {
    let streamed = matches!(answer, Answer::Stream { .. });
    let (body, content_type, function_error) = match answer {
        // Lambda's Invoke answers a buffered response as JSON whatever the runtime declared.
        Answer::Response { body } => (full(body), None, false),
        Answer::Stream { content_type, body } => (BodyExt::boxed(body), content_type, false),
        Answer::Error { body } => (full(body), None, true),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    if let Ok(value) = HeaderValue::from_str(&sandbox.options().function.version) {
        headers.insert(EXECUTED_VERSION, value);
    }
    if streamed {
        // hyper sends only the trailers a response declares; these carry a mid-stream error.
        headers.insert(
            http::header::TRAILER,
            HeaderValue::from_static("Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"),
        );
    }
    if function_error {
        sandbox.stats.add(Counter::FunctionErrors);
        headers.insert(FUNCTION_ERROR, HeaderValue::from_static("Unhandled"));
    }
    response
}

/// `X-Amz-Client-Context` is base64 of a JSON document; the runtime receives the JSON.
fn decode_client_context(header: Option<&HeaderValue>) -> Result<Option<String>, String> {
    let Some(raw) = header.map(http::HeaderValue::as_bytes).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| format!("X-Amz-Client-Context is not valid base64: {e}"))?;
    let text = String::from_utf8(decoded).map_err(|_| "X-Amz-Client-Context does not decode to UTF-8 text".to_owned())?;
    serde_json::from_str::<serde::de::IgnoredAny>(&text).map_err(|e| format!("X-Amz-Client-Context is not JSON: {e}"))?;
    Ok(Some(text))
}

async fn read_event(mut body: Incoming) -> Result<Bytes, Box<Response<ResponseBody>>> {
    let too_large = || {
        Box::new(api_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestTooLargeException",
            &format!("Request must be smaller than {MAX_RESPONSE_BYTES} bytes for the InvokeFunction operation"),
        ))
    };
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Box::new(api_error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", &e.to_string())))?;
        if let Ok(data) = frame.into_data() {
            if buffer.len() + data.len() > MAX_RESPONSE_BYTES {
                return Err(too_large());
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_context_is_decoded_and_checked() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(r#"{"custom":{"k":"v"}}"#);
        let header = HeaderValue::from_str(&encoded).unwrap();
        assert_eq!(
            decode_client_context(Some(&header)).unwrap().as_deref(),
            Some(r#"{"custom":{"k":"v"}}"#)
        );
        assert_eq!(decode_client_context(None).unwrap(), None);
        assert!(decode_client_context(Some(&HeaderValue::from_static("%%%")))
            .unwrap_err()
            .contains("base64"));
        let not_json = HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode("nope")).unwrap();
        assert!(decode_client_context(Some(&not_json)).unwrap_err().contains("JSON"));
    }
}
