use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::{header_names, Endpoint, ErrorBody, HeaderError, InvocationContext, API_VERSION};

/// A request or response body that may stream (the exec proxy relays bodies as they arrive).
pub type Body = BoxBody<Bytes, BodyError>;
/// The error a streamed body can fail with.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

const USER_AGENT: &str = concat!("datadog-lambda-bootstrap/", env!("CARGO_PKG_VERSION"));
const NEXT_RETRY_FIRST: Duration = Duration::from_millis(10);
const NEXT_RETRY_MAX: Duration = Duration::from_secs(1);

/// A call to the Runtime API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not reach the Runtime API at {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the Runtime API's answer to {path} failed: {source}")]
    Body {
        path: String,
        #[source]
        source: BodyError,
    },
    #[error("the Runtime API answered {status} to {path}: {body}")]
    Rejected { path: String, status: StatusCode, body: String },
    #[error("cannot build a Runtime API request for {path}: {source}")]
    Request {
        path: String,
        #[source]
        source: http::Error,
    },
}

impl ClientError {
    /// The connection was refused or reset: worth retrying on `/next`.
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, ClientError::Transport { source, .. } if source.is_connect() || is_reset(source))
    }

    /// The HTTP status the API answered with, when it answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

fn is_reset(error: &hyper_util::client::legacy::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            );
        }
        if let Some(hyper_err) = err.downcast_ref::<hyper::Error>() {
            if hyper_err.is_incomplete_message() || hyper_err.is_closed() || hyper_err.is_canceled() {
                return true;
            }
        }
        source = err.source();
    }
    false
}

/// `/next`'s answer: the raw headers (the exec proxy passes them on unchanged) and the event.
#[derive(Clone, Debug)]
pub struct NextEvent {
    pub headers: HeaderMap,
    pub event: Bytes,
}

impl NextEvent {
    /// Reads the documented headers into a typed context.
    pub fn context(&self) -> Result<InvocationContext, HeaderError> {
        InvocationContext::from_headers(&self.headers)
    }
}

/// The Runtime API client: HTTP/1.1 with keep-alive, no timeout on the `/next` long poll.
#[derive(Clone, Debug)]
pub struct RuntimeApiClient {
    endpoint: Endpoint,
    http: Client<HttpConnector, Body>,
}

impl RuntimeApiClient {
    pub fn new(endpoint: Endpoint) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(None).build(connector);
        Self { endpoint, http }
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Waits for the next invocation. A refused or reset connection is retried with a short,
    /// growing backoff and logged; every other failure is returned.
    pub async fn next(&self) -> Result<NextEvent, ClientError> {
        let path = format!("/{API_VERSION}/runtime/invocation/next");
        let mut backoff = NEXT_RETRY_FIRST;
        loop {
            match self.call(Method::GET, &path, HeaderMap::new(), empty()).await {
                Ok((headers, event)) => return Ok(NextEvent { headers, event }),
                Err(err) if err.is_connection_failure() => {
                    tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "Runtime API /next failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NEXT_RETRY_MAX);
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Posts a buffered response; `sent` is told when the connection has taken the body.
    pub async fn respond(&self, request_id: &str, invocation_id: Option<&str>, body: Bytes, sent: &BodySent) -> Result<(), ClientError> {
        let path = format!("/{API_VERSION}/runtime/invocation/{request_id}/response");
        let mut headers = HeaderMap::new();
        echo_invocation_id(&mut headers, invocation_id);
        self.call(Method::POST, &path, headers, sent.body(body)).await.map(drop)
    }

    /// Posts an invocation error; `sent` is told when the connection has taken the body.
    pub async fn error(
        &self,
        request_id: &str,
        invocation_id: Option<&str>,
        error: &ErrorBody,
        sent: &BodySent,
    ) -> Result<(), ClientError> {
        let path = format!("/{API_VERSION}/runtime/invocation/{request_id}/error");
        let mut headers = error_headers(&error.error_type);
        echo_invocation_id(&mut headers, invocation_id);
        self.call(Method::POST, &path, headers, sent.body(Bytes::from(error.to_json())))
            .await
            .map(drop)
    }

    /// Posts an init error; Lambda then ends the sandbox's init.
    pub async fn init_error(&self, error: &ErrorBody) -> Result<(), ClientError> {
        let path = format!("/{API_VERSION}/runtime/init/error");
        self.call(
            Method::POST,
            &path,
            error_headers(&error.error_type),
            full(Bytes::from(error.to_json())),
        )
        .await
        .map(drop)
    }

    /// Sends any Runtime API request and buffers the answer; a non-2xx answer is an error.
    /// `path` starts at the API version (`/2018-06-01/...`).
    pub async fn call(&self, method: Method, path: &str, headers: HeaderMap, body: Body) -> Result<(HeaderMap, Bytes), ClientError> {
        let response = self.send(method, path, headers, body).await?;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map_err(|source| ClientError::Body {
                path: path.to_owned(),
                source: Box::new(source),
            })?
            .to_bytes();
        if !parts.status.is_success() {
            return Err(ClientError::Rejected {
                path: path.to_owned(),
                status: parts.status,
                body: String::from_utf8_lossy(&bytes).chars().take(512).collect(),
            });
        }
        Ok((parts.headers, bytes))
    }

    /// Sends any Runtime API request and returns the answer unread (the exec proxy relays it).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Body,
    ) -> Result<http::Response<hyper::body::Incoming>, ClientError> {
        let mut request = Request::builder()
            .method(method)
            .uri(self.endpoint.uri(path))
            .body(body)
            .map_err(|source| ClientError::Request {
                path: path.to_owned(),
                source,
            })?;
        *request.headers_mut() = headers;
        request
            .headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        self.http.request(request).await.map_err(|source| ClientError::Transport {
            endpoint: self.endpoint.to_string(),
            source,
        })
    }
}

/// Told when the connection is done with a request's body: hyper drops a body once its last
/// byte is in the connection's write buffer, which it flushes in the same turn (or when it gives
/// the request up). The lifecycle starts an invocation's telemetry on this notice, beside the
/// wait for Lambda's acknowledgement, so that work never delays the answer itself. Given once
/// per body; a notice given before anyone waits is kept for the next [`BodySent::wait`].
#[derive(Clone, Debug, Default)]
pub struct BodySent(Arc<tokio::sync::Notify>);

impl BodySent {
    /// Waits for the notice; returns at once when it already came.
    pub async fn wait(&self) {
        self.0.notified().await;
    }

    /// Gives the notice without a body (an answer the handler already posted itself).
    pub fn notify(&self) {
        self.0.notify_one();
    }

    /// A body with all its bytes at hand that gives the notice when dropped.
    fn body(&self, bytes: Bytes) -> Body {
        NoticeOnDrop {
            bytes: Full::new(bytes),
            notice: self.clone(),
        }
        .boxed()
    }
}

struct NoticeOnDrop {
    bytes: Full<Bytes>,
    notice: BodySent,
}

impl hyper::body::Body for NoticeOnDrop {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BodyError>>> {
        Pin::new(&mut self.bytes)
            .poll_frame(cx)
            .map(|frame| frame.map(|result| result.map_err(|never| match never {})))
    }

    fn is_end_stream(&self) -> bool {
        self.bytes.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.bytes.size_hint()
    }
}

impl Drop for NoticeOnDrop {
    fn drop(&mut self) {
        self.notice.notify();
    }
}

/// A body with all its bytes at hand.
pub fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

fn error_headers(error_type: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(error_type) {
        headers.insert(header_names::FUNCTION_ERROR_TYPE, value);
    }
    headers
}

fn echo_invocation_id(headers: &mut HeaderMap, invocation_id: Option<&str>) {
    if let Some(value) = invocation_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        headers.insert(header_names::INVOCATION_ID, value);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_support::HoldingRuntimeApi;

    #[tokio::test]
    async fn the_sent_notice_comes_before_lambda_acknowledges_the_answer() {
        let HoldingRuntimeApi {
            endpoint,
            mut answers,
            release,
        } = HoldingRuntimeApi::start().await;
        let client = RuntimeApiClient::new(endpoint);
        let sent = BodySent::default();
        let answer = tokio::spawn({
            let sent = sent.clone();
            async move { client.respond("req-1", None, Bytes::from_static(b"{\"done\"}"), &sent).await }
        });
        tokio::time::timeout(Duration::from_secs(10), sent.wait())
            .await
            .expect("the notice comes while the acknowledgement is held back");
        let (path, body) = tokio::time::timeout(Duration::from_secs(10), answers.recv())
            .await
            .expect("the server got the answer")
            .expect("server alive");
        assert_eq!(path, "/2018-06-01/runtime/invocation/req-1/response");
        assert_eq!(body, Bytes::from_static(b"{\"done\"}"));
        assert!(!answer.is_finished(), "the answer is still waiting for its acknowledgement");
        release.notify_one();
        let result = tokio::time::timeout(Duration::from_secs(10), answer).await.expect("acknowledged");
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }

    #[tokio::test]
    async fn a_notice_given_before_anyone_waits_is_kept() {
        let sent = BodySent::default();
        sent.notify();
        tokio::time::timeout(Duration::from_secs(1), sent.wait())
            .await
            .expect("the earlier notice counts");
    }
}
