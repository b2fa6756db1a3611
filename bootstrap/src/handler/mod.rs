//! The user's code: a shared library loaded in-process ([`dylib`]) or an executable spawned
//! behind a loopback Runtime API (exec). Both answer the same [`Handler`] trait, so the
//! lifecycle and telemetry never care which one runs.
pub mod dylib;
pub mod exec;
mod host;
pub mod host_api;
mod resolve;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http::HeaderMap;

use crate::lifecycle::{InitReport, Timestamp};
use crate::runtime_api::{ErrorBody, InvocationContext};

pub use host::{ActiveTraceContext, HostServices};
pub use resolve::{resolve, HandlerSpec};

/// A boxed future, for the object-safe [`Handler`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One invocation as the lifecycle hands it to a handler.
#[derive(Debug)]
pub struct Invocation {
    pub context: InvocationContext,
    /// The `/next` answer's headers, unchanged (the exec proxy passes them on byte for byte).
    pub headers: HeaderMap,
    pub event: Bytes,
}

/// What a handler made of one invocation.
#[derive(Clone, Debug)]
pub enum HandlerOutcome {
    /// A response body for `/response`.
    Response(Bytes),
    /// An error for `/error`.
    Error(ErrorBody),
    /// The handler already answered the Runtime API itself (an exec child's streamed response
    /// relayed as it streams); `error_type` is set when the answer was an error.
    Answered {
        error_type: Option<String>,
        error: Option<ErrorBody>,
    },
}

impl HandlerOutcome {
    pub fn is_error(&self) -> bool {
        match self {
            HandlerOutcome::Response(_) => false,
            HandlerOutcome::Error(_) => true,
            HandlerOutcome::Answered { error_type, error } => error_type.is_some() || error.is_some(),
        }
    }
}

/// A handler's outcome with the handler's own times: for an exec child, when it received the
/// event and when its answer arrived (not when `invoke` was called and returned).
#[derive(Debug)]
pub struct TimedOutcome {
    pub outcome: HandlerOutcome,
    pub handler_started: Timestamp,
    pub handler_finished: Timestamp,
}

/// Runs invocations. Implementations must never panic: a failure is an [`HandlerOutcome::Error`].
pub trait Handler: Send + Sync + 'static {
    fn invoke(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome>;

    /// [`Handler::invoke`] with the handler's own start and finish times; by default the
    /// times around `invoke`.
    fn invoke_timed(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, TimedOutcome> {
        Box::pin(async move {
            let handler_started = Timestamp::now();
            let outcome = self.invoke(invocation).await;
            TimedOutcome {
                outcome,
                handler_started,
                handler_finished: Timestamp::now(),
            }
        })
    }

    /// Called by the lifecycle before each upstream `/next`. A handler that had to start its
    /// worker again (an exec child that died) waits here until it is ready and returns that
    /// new init, once, to be reported like the first.
    fn before_next(&self) -> BoxFuture<'_, Option<InitReport>> {
        Box::pin(async { None })
    }

    /// Called once at shutdown (SIGTERM): a handler with a worker process passes the signal on
    /// and gives it up to `grace` to exit.
    fn shutdown(&self, grace: std::time::Duration) -> BoxFuture<'_, ()> {
        let _ = grace;
        Box::pin(async {})
    }
}

/// The handler could not be made ready; reported with `/init/error`, then the process exits.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("no handler configured: set DD_LAMBDA_HANDLER (or _HANDLER) to `libapp.so[:name]` or to a command")]
    NotConfigured,
    #[error("handler library {spec:?} not found (looked in {looked_in})")]
    LibraryNotFound { spec: String, looked_in: String },
    #[error("cannot load {path} as a shared library: {reason}")]
    NotALibrary { path: String, reason: String },
    #[error("{path} was not built with the bootstrap's sdk crate: it exports no `{symbol}`")]
    NotAnSdkLibrary { path: String, symbol: &'static str },
    #[error("{path} speaks handler ABI version {library}, this bootstrap speaks version {bootstrap}: rebuild the library against a matching sdk")]
    AbiMismatch { path: String, library: u32, bootstrap: u32 },
    #[error("{path} has no handler named {name:?} (no export `{symbol}`)")]
    HandlerNotFound { path: String, name: String, symbol: String },
    #[error("{path} exports no `{symbol}`, which every sdk library must export")]
    MissingSymbol { path: String, symbol: &'static str },
    #[error("the handler's init failed: {}: {}", .0.error_type, .0.error_message)]
    HandlerInit(ErrorBody),
    #[error("{0}")]
    Exec(String),
    /// The handler's runtime reported its own init error (an exec child's `/init/error`, or
    /// its exit before its first `/next`): posted upstream exactly as it is.
    #[error("the handler's runtime failed to start: {}: {}", .0.error_type, .0.error_message)]
    Reported(ErrorBody),
}

impl InitError {
    /// The `errorType` for `/init/error`, in AWS's style.
    pub fn error_type(&self) -> &'static str {
        match self {
            InitError::NotConfigured | InitError::LibraryNotFound { .. } | InitError::HandlerNotFound { .. } => "Runtime.HandlerNotFound",
            InitError::NotALibrary { .. }
            | InitError::NotAnSdkLibrary { .. }
            | InitError::AbiMismatch { .. }
            | InitError::MissingSymbol { .. }
            | InitError::Exec(_) => "Runtime.InvalidEntrypoint",
            // A reported body carries its own type; see `to_error_body`.
            InitError::HandlerInit(_) | InitError::Reported(_) => "Runtime.InitError",
        }
    }

    pub fn to_error_body(&self) -> ErrorBody {
        if let InitError::Reported(body) = self {
            return body.clone();
        }
        let mut body = ErrorBody::new(self.error_type(), self.to_string());
        if let InitError::HandlerInit(inner) = self {
            body.stack_trace.clone_from(&inner.stack_trace);
        }
        body
    }
}

/// A handler made ready by [`load`], with the time its own init took.
pub struct Ready {
    pub handler: Arc<dyn Handler>,
    pub init_duration: std::time::Duration,
}

/// Resolves `DD_LAMBDA_HANDLER` and makes the handler ready: loads a library (and runs its
/// init) or starts an executable. `host` is what a library may ask of the bootstrap (custom
/// metrics, its trace, spans); it is attached before the library's init.
pub async fn load(
    config: &crate::config::Config,
    client: &crate::runtime_api::RuntimeApiClient,
    host: Arc<dyn HostServices>,
) -> Result<Ready, InitError> {
    load_with_output(config, client, host, exec::output::OutputConfig::default()).await
}

/// Whether `DD_LAMBDA_HANDLER` names a command (exec mode) rather than a library.
pub fn is_exec(config: &crate::config::Config) -> bool {
    matches!(resolve(config.handler.as_deref(), &config.task_root), Ok(HandlerSpec::Command(_)))
}

/// [`load`], with an exec child's output (and extra environment) set by `exec_output`.
pub async fn load_with_output(
    config: &crate::config::Config,
    client: &crate::runtime_api::RuntimeApiClient,
    host: Arc<dyn HostServices>,
    exec_output: exec::output::OutputConfig,
) -> Result<Ready, InitError> {
    match resolve(config.handler.as_deref(), &config.task_root)? {
        HandlerSpec::Library { path, name } => {
            // Loading runs the library's initialisers and init function: keep them off the
            // runtime's worker threads.
            let loaded = tokio::task::spawn_blocking(move || dylib::DylibHandler::load(&path, &name, Some(host)))
                .await
                .map_err(|e| InitError::HandlerInit(ErrorBody::new("Runtime.InitError", format!("the handler's init crashed: {e}"))))??;
            Ok(Ready {
                handler: Arc::new(loaded.handler),
                init_duration: loaded.init_duration,
            })
        }
        HandlerSpec::Command(command) => {
            let (handler, init_duration) = exec::ExecHandler::start_with_output(&command, config, client.clone(), exec_output).await?;
            Ok(Ready {
                handler: Arc::new(handler),
                init_duration,
            })
        }
    }
}
