//! A small loopback HTTP/1 server for the child-tracer endpoints: bind, accept, one task per
//! connection, a bounded body.
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request, its body read (at most the server's limit).
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub type Reply = Response<Full<Bytes>>;

pub fn reply(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
}

/// Serves `listener` until the returned task is aborted; each request goes to `handle`.
pub fn serve<H, F>(listener: TcpListener, body_limit: usize, handle: H) -> JoinHandle<()>
where
    H: Fn(Received) -> F + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let handle = Arc::new(handle);
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::debug!(error = %err, "a child-tracer endpoint could not accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<Incoming>| {
                    let handle = handle.clone();
                    async move { Ok::<_, Infallible>(answer(request, body_limit, &*handle).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

async fn answer<H, F>(request: hyper::Request<Incoming>, body_limit: usize, handle: &H) -> Reply
where
    H: Fn(Received) -> F,
    F: Future<Output = Reply>,
{
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, body_limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, format!("body over {body_limit} bytes, or cut short")),
    };
    handle(Received {
        method: parts.method,
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        body,
    })
    .await
}

/// Binds `addr`; a port already taken (the Datadog Extension serves it) is reported to the
/// caller, which logs it and goes on without this endpoint.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}
