//! Write AWS Lambda handlers as shared libraries served by the Datadog-instrumented `bootstrap`
//! runtime.
//!
//! The `bootstrap` is a custom Lambda runtime: it talks to the Runtime API, loads your library
//! once, calls your handler for each invocation and sends Datadog metrics, traces and logs around
//! it, with no Datadog code in your handler. This crate is everything the library needs:
//!
//! - [`export_abi!`] once at the crate root, [`handler!`] once per handler (sync or async, JSON
//!   or raw bytes) and optionally [`init!`] for work done once at load;
//! - [`Context`]: the invocation's request id, deadline, ARN, X-Ray trace id, client context,
//!   Cognito identity and tenant id, and the function's configuration;
//! - [`Diagnostic`]: the error Lambda reports, typed by your error's type name unless you choose;
//! - Datadog telemetry from inside the handler: [`lambda_metric`] (custom distribution
//!   metrics), [`set_api_key`], and, on the [`Context`], the trace ([`Context::trace`]), child
//!   spans ([`Context::span`]), propagation headers for outgoing calls
//!   ([`Context::trace_headers`]) and log-correlation ids ([`Context::log_correlation`]);
//! - [`logging`]: a logger for the `log` crate whose lines carry the invocation's request id
//!   and, with Datadog's logs injection, its `dd.trace_id` / `dd.span_id`.
//!
//! # A complete handler library
//!
//! `Cargo.toml`:
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! sdk = { path = "../sdk" }
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//! ```
//! use serde::{Deserialize, Serialize};
//! use sdk::{Context, Diagnostic};
//!
//! sdk::export_abi!();
//!
//! #[derive(Deserialize)]
//! struct Greeting {
//!     name: String,
//! }
//!
//! #[derive(Serialize)]
//! struct Reply {
//!     message: String,
//!     request_id: String,
//! }
//!
//! fn greet(event: Greeting, context: Context) -> Result<Reply, Diagnostic> {
//!     if event.name.is_empty() {
//!         return Err(Diagnostic::new("ValidationError", "name is empty"));
//!     }
//!     Ok(Reply {
//!         message: format!("hello, {}", event.name),
//!         request_id: context.request_id,
//!     })
//! }
//!
//! fn load_config() -> Result<(), std::io::Error> {
//!     Ok(())
//! }
//!
//! sdk::handler!(greet as handler); // the default name: `DD_LAMBDA_HANDLER=libgreet.so`
//! sdk::handler!(greet);            // also `DD_LAMBDA_HANDLER=libgreet.so:greet`
//! sdk::init!(load_config);
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release`, ship `libgreet.so` beside the `bootstrap` in the function's
//! package (or in a layer under `/opt`) and set `DD_LAMBDA_HANDLER=libgreet.so` (or
//! `libgreet.so:<name>` for another handler).
//!
//! # Errors and panics
//!
//! A handler's `Err` is reported to Lambda as `{"errorType", "errorMessage", "stackTrace"}`: see
//! [`Diagnostic`] for how the `errorType` is chosen. Events that do not deserialize fail with
//! [`UNMARSHAL_ERROR_TYPE`] before the handler runs (an empty event is not JSON, as in AWS's
//! `lambda_runtime`: take raw bytes to accept anything); responses that do not serialize fail
//! with [`MARSHAL_ERROR_TYPE`]. Panics are caught in the library and reported as errors
//! (`Lambda panicked: ...`, as `lambda_runtime` words it), so the runtime keeps serving; keep
//! `panic = "unwind"` (the default) in your profile.
//!
//! # Allocation failures
//!
//! On stable Rust a failed allocation aborts the process, and a handler library shares the
//! `bootstrap`'s process. [`export_abi!`] installs [`alloc::Reporting`] as the library's global
//! allocator (the system allocator, plus one null check per allocation): it tells the bootstrap
//! the size of the allocation that failed, and the bootstrap answers the invocation as
//! `Runtime.OutOfMemory` (`... signal: aborted (memory allocation of N bytes failed)`), counts
//! `aws.lambda.enhanced.out_of_memory` and `errors`, sends the invocation's trace, and lets the
//! process end so that Lambda starts a new one. Any other abort is answered as
//! `Runtime.ExitError`. A library with its own `#[global_allocator]` writes
//! `sdk::export_abi!(own_global_allocator)` (see [`alloc`]).
//!
//! # Features
//!
//! - `async` (default): async handlers and init, run on a tokio runtime the library owns.
//!
//!
//! # Telemetry from the handler
//!
//! The `bootstrap` hands the library its host API when it loads it (before init), so these calls
//! work from the init, sync and async handlers, and threads the handler spawns:
//!
//! ```
//! use sdk::{Context, Diagnostic};
//!
//! sdk::export_abi!();
//!
//! fn place_order(order: serde_json::Value, context: Context) -> Result<serde_json::Value, Diagnostic> {
//!     // A distribution point, tagged; sent after the response (here: no bootstrap, so an Err).
//!     let _ = sdk::lambda_metric("orders.placed", 1, ["shop:eu"], None);
//!     // A child span of the invocation's `aws.lambda` span, finished when dropped.
//!     let span = context.span("inventory.reserve").resource("reserve").tag("items", "3");
//!     // Headers for an outgoing call that continues the trace under that span.
//!     let _headers = span.trace_headers();
//!     println!("[{}] order reserved", span.log_correlation());
//!     Ok(order)
//! }
//! sdk::handler!(place_order);
//! # fn main() {}
//! ```
//!
//! Outside the bootstrap (unit tests, these doctests) there is no host: metrics return
//! [`TelemetryError::NotAttached`], the trace context is `None`, headers are empty and spans
//! record nothing. With `DD_TRACE_ENABLED` off, the tracing calls behave the same way.
#![warn(missing_docs)]

pub mod abi;
pub mod alloc;
mod context;
mod diagnostic;
#[cfg(feature = "async")]
mod executor;
mod host;
pub mod logging;
mod macros;
mod metrics;
mod serve;
mod trace;

pub use context::{ClientApplication, ClientContext, CognitoIdentity, Context, FunctionConfig};
pub use diagnostic::{Diagnostic, MARSHAL_ERROR_TYPE, UNMARSHAL_ERROR_TYPE};
pub use metrics::{lambda_metric, set_api_key, MetricValue, TelemetryError, NO_TAGS};
pub use trace::{LogCorrelation, Span, TraceContext};

/// What the export macros expand to. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::serve::*;
}
