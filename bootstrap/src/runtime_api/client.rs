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

    /// Posts a buffered response.
    pub async fn respond(&self, request_id: &str, invocation_id: Option<&str>, body: Bytes) -> Result<(), ClientError> {
        let path = format!("/{API_VERSION}/runtime/invocation/{request_id}/response");
        let mut headers = HeaderMap::new();
        echo_invocation_id(&mut headers, invocation_id);
        self.call(Method::POST, &path, headers, full(body)).await.map(drop)
    }

    /// Posts an invocation error.
    pub async fn error(&self, request_id: &str, invocation_id: Option<&str>, error: &ErrorBody) -> Result<(), ClientError> {
        let path = format!("/{API_VERSION}/runtime/invocation/{request_id}/error");
        let mut headers = error_headers(&error.error_type);
        echo_invocation_id(&mut headers, invocation_id);
        self.call(Method::POST, &path, headers, full(Bytes::from(error.to_json())))
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
