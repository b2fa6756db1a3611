//! One HTTP/1.1 listener serving every API, and the [`Emulator`] handle that owns it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::body::{api_error, json, ResponseBody};
use super::faults::DropConnection;
use super::options::EmulatorOptions;
use super::sandbox::Sandbox;
use super::stats::StatsSnapshot;
use super::{extensions, invoke, runtime, EmulatorError};

/// A running emulator: the listener, the sandbox and its runtime.
pub struct Emulator {
    addr: SocketAddr,
    sandbox: Arc<Sandbox>,
    accept: JoinHandle<()>,
}

impl Emulator {
    /// Listens, then starts the runtime (the init phase) with the emulator's own environment
    /// under the Lambda variables.
    pub async fn start(options: EmulatorOptions) -> Result<Self, EmulatorError> {
        let own_env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        let listener = TcpListener::bind(options.listen).await.map_err(|source| EmulatorError::Bind {
            addr: options.listen,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| EmulatorError::Bind {
            addr: options.listen,
            source,
        })?;
        // A runtime reaches a wildcard listener through loopback.
        let runtime_api = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let sandbox = Sandbox::new(options, runtime_api, own_env);
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&sandbox)));
        if let Err(err) = sandbox.ensure_runtime() {
            accept.abort();
            return Err(err);
        }
        Ok(Self { addr, sandbox, accept })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where to `POST` an event.
    pub fn invoke_url(&self) -> String {
        format!(
            "http://{}/2015-03-31/functions/{}/invocations",
            self.addr,
            self.sandbox.options().function.name
        )
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.sandbox.stats_snapshot()
    }

    /// Lambda's shutdown of the sandbox (see [`Sandbox::shutdown`]), then stops listening.
    pub async fn shutdown(self) {
        self.sandbox.shutdown().await;
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, sandbox: Arc<Sandbox>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let sandbox = Arc::clone(&sandbox);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let sandbox = Arc::clone(&sandbox);
                // An `Err` (an injected fault) makes hyper close the connection unanswered.
                async move { route(sandbox, request).await }
            });
            // A client that hangs up mid-request is routine (a killed runtime); nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(sandbox: Arc<Sandbox>, request: Request<Incoming>) -> Result<Response<ResponseBody>, DropConnection> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = request.method().clone();
    let response = match (&method, segments.as_slice()) {
        (&Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => return runtime::next(&sandbox).await,
        (&Method::POST, ["2018-06-01", "runtime", "invocation", id, "response"]) => return runtime::respond(&sandbox, id, request).await,
        (&Method::POST, ["2018-06-01", "runtime", "invocation", id, "error"]) => return runtime::error(&sandbox, id, request).await,
        (&Method::POST, ["2015-03-31", "functions", _, "invocations"]) => invoke::handle(sandbox, request).await,
        (&Method::GET, ["2015-03-31", "emulator", "stats"]) => {
            let stats = serde_json::to_value(sandbox.stats_snapshot()).unwrap_or_default();
            json(StatusCode::OK, &stats)
        }
        (&Method::POST, ["2018-06-01", "runtime", "init", "error"]) => runtime::init_error(&sandbox, request).await,
        (&Method::POST, ["2020-01-01", "extension", "register"]) => extensions::register(&sandbox, request).await,
        (&Method::GET, ["2020-01-01", "extension", "event", "next"]) => extensions::next_event(&sandbox, request).await,
        (&Method::POST, ["2020-01-01", "extension", kind @ ("init" | "exit"), "error"]) => extensions::report_error(kind, request).await,
        (&Method::PUT | &Method::POST, ["2022-07-01", "telemetry"]) => extensions::not_supported("Telemetry"),
        (&Method::PUT | &Method::POST, ["2020-08-15", "logs"]) => extensions::not_supported("Logs"),
        _ => api_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!("no route for {method} {path} on the Lambda emulator"),
        ),
    };
    Ok(response)
}
