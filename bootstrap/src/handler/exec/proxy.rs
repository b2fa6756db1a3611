//! The Runtime API the child talks to, served on 127.0.0.1 at an ephemeral port.
//!
//! The child must not tell it from Lambda: `/next` answers with the upstream `/next`'s headers
//! and event unchanged; `/response` is taken as sent (202, as Lambda answers) and handed to
//! the lifecycle, which posts it; `/error` and streamed responses are relayed upstream as
//! they arrive, and the child gets the upstream's own answer. Any other path (e.g. the
//! Extensions API) is relayed as it is. Bodies are passed as `Bytes`, never re-encoded.
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::dispatch::{Answering, Dispatcher};
use crate::handler::HandlerOutcome;
use crate::lifecycle::Timestamp;
use crate::runtime_api::client::{full, Body, BodyError};
use crate::runtime_api::{header_names, ErrorBody, RuntimeApiClient, API_VERSION, MAX_RESPONSE_BYTES};

/// The running proxy; it stops accepting when dropped.
pub struct Proxy {
    address: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Proxy {
    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn start(dispatcher: Arc<Dispatcher>, upstream: RuntimeApiClient) -> std::io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let address = listener.local_addr()?;
        let routes = Arc::new(Routes { dispatcher, upstream });
        let accept = tokio::spawn(accept_loop(listener, routes));
        Ok(Self { address, accept })
    }

    /// `host:port`, the child's `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

async fn accept_loop(listener: TcpListener, routes: Arc<Routes>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or similar: wait a little rather than spin.
                tracing::warn!(error = %e, "the handler proxy could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let generation = routes.dispatcher.generation();
        let routes = routes.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let routes = routes.clone();
                async move { Ok::<_, Infallible>(routes.handle(request, generation).await) }
            });
            // A broken or garbage connection only ends itself; hyper has already answered 400
            // to what it could not parse.
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Which Runtime API call a request is.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Next,
    Response(&'a str),
    Error(&'a str),
    InitError,
    /// A known path with the wrong method.
    WrongMethod,
    /// Anything else: relayed upstream as it is.
    Other,
}

fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let Some(rest) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(API_VERSION))
        .and_then(|p| p.strip_prefix("/runtime/"))
    else {
        return Route::Other;
    };
    let (expected, found) = match rest {
        "invocation/next" => (Method::GET, Route::Next),
        "init/error" => (Method::POST, Route::InitError),
        _ => match rest.strip_prefix("invocation/").and_then(|r| r.rsplit_once('/')) {
            Some((id, "response")) if !id.is_empty() && !id.contains('/') => (Method::POST, Route::Response(id)),
            Some((id, "error")) if !id.is_empty() && !id.contains('/') => (Method::POST, Route::Error(id)),
            _ => return Route::Other,
        },
    };
    if *method == expected {
        found
    } else {
        Route::WrongMethod
    }
}

struct Routes {
    dispatcher: Arc<Dispatcher>,
    upstream: RuntimeApiClient,
}

impl Routes {
    async fn handle(&self, request: Request<Incoming>, generation: u64) -> Response<Body> {
        let path = request.uri().path().to_owned();
        match route(request.method(), &path) {
            Route::Next => self.next(generation).await,
            Route::Response(id) => match self.dispatcher.begin_answer(id) {
                None => invalid_request_id(),
                Some(answering) if is_streaming(request.headers()) => self.relay_stream(request, answering, &path).await,
                Some(answering) => self.take_response(request, answering).await,
            },
            Route::Error(id) => match self.dispatcher.begin_answer(id) {
                None => invalid_request_id(),
                Some(answering) => self.relay_error(request, answering, &path).await,
            },
            Route::InitError => self.init_error(request, generation).await,
            Route::WrongMethod => json(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                &format!("{} is not allowed on {path}", request.method()),
            ),
            Route::Other => self.relay_other(request, &path).await,
        }
    }

    /// The child's `/next`: the upstream `/next`'s headers and event, unchanged.
    async fn next(&self, generation: u64) -> Response<Body> {
        let Some(invocation) = self.dispatcher.next(generation).await else {
            // Only the connections of a child that already died get here.
            return json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Runtime.ExitError",
                "this runtime process has been replaced",
            );
        };
        let mut response = Response::new(full(invocation.event.clone()));
        let headers = response.headers_mut();
        for (name, value) in &invocation.headers {
            if !is_framing(name) {
                headers.append(name, value.clone());
            }
        }
        response
    }

    /// Reads a body whole. One that cannot be read puts the invocation back in the queue and
    /// answers the child 400, so the invocation still gets exactly one answer.
    async fn read_body(&self, body: Incoming, answering: Answering, what: &str) -> Result<(Bytes, Answering), Response<Body>> {
        match body.collect().await {
            Ok(collected) => Ok((collected.to_bytes(), answering)),
            Err(e) => {
                self.dispatcher.give_back(answering);
                Err(json(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    &format!("the {what} body could not be read: {e}"),
                ))
            }
        }
    }

    /// A buffered `/response`: handed to the lifecycle, which posts it upstream.
    async fn take_response(&self, request: Request<Incoming>, answering: Answering) -> Response<Body> {
        let (body, answering) = match self.read_body(request.into_body(), answering, "response").await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        let finished = Timestamp::now();
        if body.len() > MAX_RESPONSE_BYTES {
            // Lambda refuses it the same way, and the invocation fails.
            let message = format!("Exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).");
            let error = ErrorBody::new(
                "Function.ResponseSizeTooLarge",
                format!("Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes)."),
            );
            answering.answer(HandlerOutcome::Error(error), finished);
            return json(StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge", &message);
        }
        answering.answer(HandlerOutcome::Response(body), finished);
        accepted()
    }

    /// `/error`: relayed upstream byte for byte (headers included); the child gets the
    /// upstream's answer, the lifecycle the parsed error.
    async fn relay_error(&self, request: Request<Incoming>, answering: Answering, path: &str) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let (body, answering) = match self.read_body(body, answering, "error").await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        let finished = Timestamp::now();
        let error = ErrorBody::from_handler_bytes(&body);
        let error_type = parts
            .headers
            .get(header_names::FUNCTION_ERROR_TYPE)
            .and_then(|v| v.to_str().ok())
            .map_or_else(|| error.error_type.clone(), str::to_owned);
        let mut headers = forwarded(&parts.headers);
        headers.remove(header::CONTENT_LENGTH);
        headers.remove(header::TRANSFER_ENCODING);
        match self.upstream.send(parts.method, path, headers, full(body)).await {
            Ok(upstream) => {
                answering.answer(
                    HandlerOutcome::Answered {
                        error_type: Some(error_type),
                        error: Some(error),
                    },
                    finished,
                );
                relayed(upstream)
            }
            Err(e) => {
                // Upstream unreachable: the lifecycle posts the error itself (and reports
                // whatever goes wrong then); the child's part is done.
                tracing::warn!(error = %e, "relaying the handler's /error upstream failed");
                answering.answer(HandlerOutcome::Error(error), finished);
                accepted()
            }
        }
    }

    /// A streamed `/response`: relayed upstream as it arrives, trailers included.
    async fn relay_stream(&self, request: Request<Incoming>, answering: Answering, path: &str) -> Response<Body> {
        let (parts, body) = request.into_parts();
        let trailers: Arc<Mutex<Option<HeaderMap>>> = Arc::default();
        let seen = trailers.clone();
        let body: Body = body
            .map_frame(move |frame| {
                if let Some(found) = frame.trailers_ref() {
                    *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(found.clone());
                }
                frame
            })
            .map_err(|e| Box::new(e) as BodyError)
            .boxed();
        let result = self.upstream.send(parts.method, path, forwarded(&parts.headers), body).await;
        let finished = Timestamp::now();
        let trailers = trailers.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let (error_type, error) = stream_error(trailers.as_ref());
        match result {
            Ok(upstream) => {
                answering.answer(HandlerOutcome::Answered { error_type, error }, finished);
                relayed(upstream)
            }
            Err(e) => {
                let message = format!("relaying the streamed response upstream failed: {e}");
                tracing::warn!("{message}");
                answering.answer(
                    HandlerOutcome::Answered {
                        error_type: Some("Runtime.StreamError".into()),
                        error: Some(ErrorBody::new("Runtime.StreamError", message.clone())),
                    },
                    finished,
                );
                json(StatusCode::BAD_GATEWAY, "Runtime.StreamError", &message)
            }
        }
    }

    /// `/init/error`: ends the child's init with its error, which the caller posts upstream.
    async fn init_error(&self, request: Request<Incoming>, generation: u64) -> Response<Body> {
        let body = match request.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => {
                return json(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    &format!("the error body could not be read: {e}"),
                )
            }
        };
        if self.dispatcher.init_error(generation, ErrorBody::from_handler_bytes(&body)) {
            accepted()
        } else {
            json(
                StatusCode::FORBIDDEN,
                "InvalidStateTransition",
                "init/error is only accepted before the runtime's first /next",
            )
        }
    }

    async fn relay_other(&self, request: Request<Incoming>, path: &str) -> Response<Body> {
        let path_and_query = request.uri().path_and_query().map_or(path, |pq| pq.as_str()).to_owned();
        let (parts, body) = request.into_parts();
        let body = body.map_err(|e| Box::new(e) as BodyError).boxed();
        match self
            .upstream
            .send(parts.method, &path_and_query, forwarded(&parts.headers), body)
            .await
        {
            Ok(upstream) => relayed(upstream),
            Err(e) => json(StatusCode::BAD_GATEWAY, "Runtime.ProxyError", &e.to_string()),
        }
    }
}

fn is_streaming(headers: &HeaderMap) -> bool {
    headers
        .get(header_names::RESPONSE_MODE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"))
}

/// Headers that describe one hop's connection or framing, which hyper sets for each side.
fn is_framing(name: &header::HeaderName) -> bool {
    name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING || is_hop_by_hop(name)
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    name == header::CONNECTION || name == header::HOST || name == header::TE || name == header::UPGRADE || name.as_str() == "keep-alive"
}

/// The child's request headers as sent upstream: all but the hop's own.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !is_hop_by_hop(name) {
            out.append(name, value.clone());
        }
    }
    out
}

/// The upstream's answer, passed to the child as it streams.
fn relayed(upstream: Response<Incoming>) -> Response<Body> {
    let (mut parts, body) = upstream.into_parts();
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove("keep-alive");
    Response::from_parts(parts, body.map_err(|e| Box::new(e) as BodyError).boxed())
}

/// The error a stream's trailers carry (`Lambda-Runtime-Function-Error-Type`/`-Body`, the
/// body base64-encoded JSON).
fn stream_error(trailers: Option<&HeaderMap>) -> (Option<String>, Option<ErrorBody>) {
    let Some(trailers) = trailers else {
        return (None, None);
    };
    let error_type = trailers
        .get(header_names::FUNCTION_ERROR_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let error =
        trailers
            .get(header_names::FUNCTION_ERROR_BODY)
            .map(|v| match base64::engine::general_purpose::STANDARD.decode(v.as_bytes()) {
                Ok(decoded) => ErrorBody::from_handler_bytes(&decoded),
                Err(_) => ErrorBody::from_handler_bytes(v.as_bytes()),
            });
    let error_type = error_type.or_else(|| error.as_ref().map(|e| e.error_type.clone()));
    (error_type, error)
}

fn accepted() -> Response<Body> {
    let mut response = Response::new(full(Bytes::from_static(br#"{"status":"OK"}"#)));
    *response.status_mut() = StatusCode::ACCEPTED;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn invalid_request_id() -> Response<Body> {
    json(StatusCode::BAD_REQUEST, "InvalidRequestID", "Invalid request ID")
}

/// An error answer in the Runtime API's shape.
fn json(status: StatusCode, error_type: &str, message: &str) -> Response<Body> {
    let mut response = Response::new(full(Bytes::from(ErrorBody::new(error_type, message).to_json())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let base = "/2018-06-01/runtime";
        assert_eq!(route(&Method::GET, &format!("{base}/invocation/next")), Route::Next);
        assert_eq!(
            route(&Method::POST, &format!("{base}/invocation/abc-1/response")),
            Route::Response("abc-1")
        );
        assert_eq!(
            route(&Method::POST, &format!("{base}/invocation/abc-1/error")),
            Route::Error("abc-1")
        );
        assert_eq!(route(&Method::POST, &format!("{base}/init/error")), Route::InitError);
        assert_eq!(route(&Method::POST, &format!("{base}/invocation/next")), Route::WrongMethod);
        assert_eq!(route(&Method::GET, &format!("{base}/invocation/abc/response")), Route::WrongMethod);
        assert_eq!(route(&Method::POST, &format!("{base}/invocation//response")), Route::Other);
        assert_eq!(route(&Method::POST, "/2020-01-01/extension/register"), Route::Other);
    }

    #[test]
    fn stream_error_from_trailers() {
        let mut trailers = HeaderMap::new();
        trailers.insert(header_names::FUNCTION_ERROR_TYPE, HeaderValue::from_static("Runtime.StreamError"));
        let body = base64::engine::general_purpose::STANDARD.encode(br#"{"errorType":"Boom","errorMessage":"mid-stream"}"#);
        trailers.insert(header_names::FUNCTION_ERROR_BODY, HeaderValue::from_str(&body).unwrap());
        let (error_type, error) = stream_error(Some(&trailers));
        assert_eq!(error_type.as_deref(), Some("Runtime.StreamError"));
        assert_eq!(error.unwrap(), ErrorBody::new("Boom", "mid-stream"));
        assert_eq!(stream_error(None), (None, None));
    }
}
