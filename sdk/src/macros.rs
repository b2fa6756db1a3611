//! The export macros: they write the C functions of [`crate::abi`] around plain Rust functions.

/// Exports the ABI's library-wide functions, `dd_lambda_abi_version`, `dd_lambda_free`,
/// `dd_lambda_attach_host` (which gives [`lambda_metric`](crate::lambda_metric) and the tracing
/// calls their way to the bootstrap) and `dd_lambda_attach_alloc_reporter`, and installs
/// [`sdk::alloc::Reporting`](crate::alloc::Reporting) over the system allocator as the library's
/// global allocator.
///
/// Call it exactly once, at the root of the handler library's crate (`src/lib.rs`). It is a
/// macro rather than part of the `sdk` crate itself so those symbols exist only in handler
/// libraries, never in the `bootstrap` binary that also depends on `sdk`. Forgetting it is a
/// compile error in every [`handler!`](crate::handler) and [`init!`](crate::init) (they name
/// `SDK_EXPORT_ABI_MUST_BE_CALLED_AT_THE_CRATE_ROOT`); calling it twice is a duplicate
/// definition.
///
/// # The global allocator
///
/// With the reporting allocator, an allocation that fails inside the handler (Rust then aborts
/// the process) is answered as `Runtime.OutOfMemory` naming the failed size, and counted in
/// `aws.lambda.enhanced.out_of_memory`; without it the bootstrap still answers the invocation,
/// as `Runtime.ExitError` (`signal: aborted`). It behaves as Rust's default allocator (it is
/// the system allocator) plus one null check per allocation. It is left out of the crate's own
/// `cargo test` builds (`cfg(test)`), where tests often count allocations with an allocator of
/// their own.
///
/// A library with its own `#[global_allocator]` (two are a compile error: "cannot define
/// multiple global allocators") writes `sdk::export_abi!(own_global_allocator)`, and wraps its
/// allocator in [`Reporting`](crate::alloc::Reporting) to keep the reports (see
/// [`crate::alloc`]).
///
/// ```
/// sdk::export_abi!();
///
/// fn echo(event: serde_json::Value, _: sdk::Context) -> Result<serde_json::Value, sdk::Diagnostic> {
///     Ok(event)
/// }
/// sdk::handler!(echo);
/// # fn main() {}
/// ```
///
/// Without it, exporting a handler does not compile:
///
/// ```compile_fail,E0425
/// fn echo(event: serde_json::Value, _: sdk::Context) -> Result<serde_json::Value, sdk::Diagnostic> {
///     Ok(event)
/// }
/// sdk::handler!(echo); // error: cannot find value `SDK_EXPORT_ABI_MUST_BE_CALLED_AT_THE_CRATE_ROOT`
/// # fn main() {}
/// ```
///
/// With an allocator of the library's own:
///
/// ```
/// #[global_allocator]
/// static ALLOCATOR: sdk::alloc::Reporting<std::alloc::System> = sdk::alloc::Reporting::new(std::alloc::System);
///
/// sdk::export_abi!(own_global_allocator);
/// # fn main() {}
/// ```
///
/// and forgetting to say so is the compiler's error:
///
/// ```compile_fail
/// #[global_allocator]
/// static ALLOCATOR: std::alloc::System = std::alloc::System;
///
/// sdk::export_abi!(); // error: cannot define multiple global allocators
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! export_abi {
    () => {
        $crate::export_abi!(own_global_allocator);

        // Not in the crate's unit tests, which may count allocations with their own allocator.
        #[cfg(not(test))]
        #[global_allocator]
        static SDK_REPORTING_ALLOCATOR: $crate::alloc::Reporting = $crate::alloc::Reporting::system();
    };
    (own_global_allocator) => {
        /// Proof for the `sdk` macros that `sdk::export_abi!()` was called at the crate root.
        #[doc(hidden)]
        #[allow(dead_code)]
        pub(crate) const SDK_EXPORT_ABI_MUST_BE_CALLED_AT_THE_CRATE_ROOT: () = ();

        const _: () = {
            #[unsafe(export_name = "dd_lambda_abi_version")]
            extern "C" fn dd_lambda_abi_version() -> u32 {
                $crate::abi::ABI_VERSION
            }

            #[unsafe(export_name = "dd_lambda_free")]
            unsafe extern "C" fn dd_lambda_free(buffer: $crate::abi::OwnedBuffer) {
                // SAFETY: the ABI says the bootstrap only hands back buffers this library returned.
                unsafe { $crate::__private::free(buffer) }
            }

            #[unsafe(export_name = "dd_lambda_attach_host")]
            unsafe extern "C" fn dd_lambda_attach_host(host: *const $crate::abi::HostApi) {
                // SAFETY: the bootstrap passes a host API valid while the library is loaded.
                unsafe { $crate::__private::attach_host(host) }
            }

            #[unsafe(export_name = "dd_lambda_attach_alloc_reporter")]
            unsafe extern "C" fn dd_lambda_attach_alloc_reporter(report: ::core::option::Option<$crate::abi::AllocFailureFn>) {
                $crate::alloc::set_failure_reporter(report)
            }

            // The symbols above must have the ABI's types.
            let _: $crate::abi::AbiVersionFn = dd_lambda_abi_version;
            let _: $crate::abi::FreeFn = dd_lambda_free;
            let _: $crate::abi::AttachHostFn = dd_lambda_attach_host;
            let _: $crate::abi::AttachAllocReporterFn = dd_lambda_attach_alloc_reporter;
        };
    };
}

/// Exports a handler function as `dd_lambda_handler_<name>`, which `DD_LAMBDA_HANDLER=libapp.so:<name>`
/// picks (a bare `libapp.so` picks the handler named `handler`).
///
/// Forms, one line each:
///
/// | invocation | function |
/// |---|---|
/// | `handler!(f)` | `fn f(E, Context) -> Result<R, Er>` |
/// | `handler!(async f)` | `async fn f(E, Context) -> Result<R, Er>` |
/// | `handler!(raw f)` | `fn f(&[u8] or Vec<u8>, Context) -> Result<impl Into<Vec<u8>>, Er>` |
/// | `handler!(async raw f)` | the async raw form |
/// | `handler!(f as name)`, `handler!(async path::to::f as name)`, ... | exports under `name` |
///
/// where `E: DeserializeOwned`, `R: Serialize` and `Er: Into<`[`Diagnostic`](crate::Diagnostic)`>`
/// (any `Display` error, or a `Diagnostic` to choose the `errorType`).
///
/// What the export does on each call:
/// - JSON forms parse the event with `serde_json`; an event that does not parse (including an
///   empty one, as with AWS's `lambda_runtime`) fails with `Runtime.UnmarshalError` naming the
///   type and the failing field, and the function is not called. A response that does not
///   serialise fails with `Runtime.MarshalError`.
/// - An `Err` becomes the error body `{"errorType", "errorMessage", "stackTrace"}`.
/// - A panic (in the function or while an async function is polled) is caught and reported as
///   `lambda_runtime` reports it (`Lambda panicked: <message>`); the bootstrap keeps serving.
///   This needs `panic = "unwind"`, Rust's default, in the library's profile.
/// - Async functions run on a multi-threaded tokio runtime owned by the library, created on
///   first use, so concurrent calls from several bootstrap threads each make progress.
///
/// Requires [`export_abi!`](crate::export_abi) once at the crate root.
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sdk::{Context, Diagnostic};
///
/// sdk::export_abi!();
///
/// #[derive(Deserialize)]
/// struct Order { id: u32 }
/// #[derive(Serialize)]
/// struct Receipt { id: u32, request_id: String }
///
/// fn checkout(order: Order, context: Context) -> Result<Receipt, Diagnostic> {
///     Ok(Receipt { id: order.id, request_id: context.request_id })
/// }
/// async fn ping(_: serde_json::Value, _: Context) -> Result<&'static str, std::io::Error> {
///     Ok("pong")
/// }
/// fn bytes(event: &[u8], _: Context) -> Result<Vec<u8>, Diagnostic> {
///     Ok(event.to_vec())
/// }
///
/// mod admin {
///     pub async fn bytes_later(event: &[u8], _: sdk::Context) -> Result<Vec<u8>, String> {
///         Ok(event.to_vec())
///     }
/// }
///
/// sdk::handler!(checkout);              // dd_lambda_handler_checkout
/// sdk::handler!(checkout as handler);   // dd_lambda_handler_handler: what `libapp.so` picks
/// sdk::handler!(async ping);            // dd_lambda_handler_ping
/// sdk::handler!(raw bytes);             // dd_lambda_handler_bytes
/// sdk::handler!(async raw admin::bytes_later as later); // dd_lambda_handler_later
/// # fn main() {}
/// ```
#[macro_export]
// `crate::` on purpose: the proof of `export_abi!` lives in the calling crate.
#[allow(clippy::crate_in_macro_def)]
macro_rules! handler {
    (async raw $($target:tt)+) => {
        $crate::handler!(@target raw_async; $($target)+);
    };
    (async $($target:tt)+) => {
        $crate::handler!(@target json_async; $($target)+);
    };
    (raw $($target:tt)+) => {
        $crate::handler!(@target raw; $($target)+);
    };
    (@target $serve:ident; $name:ident) => {
        $crate::handler!(@export $serve; $name; $name);
    };
    (@target $serve:ident; $function:path as $name:ident) => {
        $crate::handler!(@export $serve; $function; $name);
    };
    (@export $serve:ident; $function:path; $name:ident) => {
        const _: () = {
            #[unsafe(export_name = concat!("dd_lambda_handler_", stringify!($name)))]
            unsafe extern "C" fn dd_lambda_handler(
                invocation: *const $crate::abi::RawInvocation,
                out: *mut $crate::abi::OwnedBuffer,
            ) -> i32 {
                // SAFETY: the bootstrap calls this export as the ABI describes.
                unsafe { $crate::__private::$serve(invocation, out, $function) }
            }

            let _: $crate::abi::HandlerFn = dd_lambda_handler;
            crate::SDK_EXPORT_ABI_MUST_BE_CALLED_AT_THE_CRATE_ROOT
        };
    };
    ($($target:tt)+) => {
        $crate::handler!(@target json; $($target)+);
    };
}

/// Exports the library's init function as `dd_lambda_init`, run once when the bootstrap loads
/// the library (its time is the function's init duration).
///
/// `init!(f)` takes `fn f() -> Result<(), Er>`, `init!(async f)` an `async fn`, with
/// `Er: Into<`[`Diagnostic`](crate::Diagnostic)`>`. An error or a panic fails the function's
/// init: the bootstrap reports it to `/init/error` as `Runtime.InitError`. At most one per
/// library; requires [`export_abi!`](crate::export_abi).
///
/// ```
/// sdk::export_abi!();
///
/// fn init() -> Result<(), std::env::VarError> {
///     // Read configuration, open connections, warm caches...
///     let _table = std::env::var("PATH")?;
///     Ok(())
/// }
/// sdk::init!(init);
/// # fn main() {}
/// ```
#[macro_export]
// `crate::` on purpose: the proof of `export_abi!` lives in the calling crate.
#[allow(clippy::crate_in_macro_def)]
macro_rules! init {
    (async $function:path) => {
        $crate::init!(@export init_async; $function);
    };
    (@export $serve:ident; $function:path) => {
        const _: () = {
            #[unsafe(export_name = "dd_lambda_init")]
            unsafe extern "C" fn dd_lambda_init(error_out: *mut $crate::abi::OwnedBuffer) -> i32 {
                // SAFETY: the bootstrap calls this export as the ABI describes.
                unsafe { $crate::__private::$serve(error_out, $function) }
            }

            let _: $crate::abi::InitFn = dd_lambda_init;
            crate::SDK_EXPORT_ABI_MUST_BE_CALLED_AT_THE_CRATE_ROOT
        };
    };
    ($function:path) => {
        $crate::init!(@export init; $function);
    };
}
