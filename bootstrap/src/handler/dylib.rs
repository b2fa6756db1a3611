//! Handlers in a shared library built with the `sdk` crate, loaded once with libloading.
//!
//! The ABI is `sdk::abi`: the library's version is checked at load, each call borrows the
//! invocation's bytes, and every buffer the library returns goes back to its own free function.
//! The host API ([`HostBridge`]) is attached before the library's init and lives as long as
//! the library.
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libloading::Library;
use sdk::abi::{
    self, AbiVersionFn, AttachAllocReporterFn, AttachHostFn, BorrowedBytes, FreeFn, HandlerFn, InitFn, OwnedBuffer, RawInvocation,
};

use super::host_api::HostBridge;
use super::{BoxFuture, Handler, HandlerOutcome, HostServices, InitError, Invocation};
use crate::runtime_api::ErrorBody;

/// A loaded handler library and the handler picked in it.
pub struct DylibHandler {
    handler: HandlerFn,
    free: FreeFn,
    // Dropped after the fields above: the function pointers point into it.
    _library: Library,
    // Dropped after the library: the library may hold the host API until it is unloaded.
    _host: Option<HostBridge>,
}

/// The handler is ready; `init_duration` is the time its init function took (zero without one).
pub struct Loaded {
    pub handler: DylibHandler,
    pub init_duration: Duration,
}

impl DylibHandler {
    /// Loads `path`, checks its ABI version, finds handler `name`, attaches `host` (when the
    /// library takes one), and runs its init function.
    pub fn load(path: &Path, name: &str, host: Option<Arc<dyn HostServices>>) -> Result<Loaded, InitError> {
        let shown = path.display().to_string();
        // SAFETY: loading a library runs its initialisers; that is the point of a handler library,
        // which the user asked us to load.
        let library = unsafe { Library::new(path) }.map_err(|e| InitError::NotALibrary {
            path: shown.clone(),
            reason: e.to_string(),
        })?;

        // SAFETY: the symbol's type is fixed by the ABI this library claims to export.
        let version_fn =
            unsafe { library.get::<AbiVersionFn>(abi::ABI_VERSION_SYMBOL.as_bytes()) }.map_err(|_| InitError::NotAnSdkLibrary {
                path: shown.clone(),
                symbol: abi::ABI_VERSION_SYMBOL,
            })?;
        // SAFETY: `extern "C" fn() -> u32`, no arguments.
        let version = unsafe { version_fn() };
        if version != abi::ABI_VERSION {
            return Err(InitError::AbiMismatch {
                path: shown,
                library: version,
                bootstrap: abi::ABI_VERSION,
            });
        }

        // SAFETY (all `get`s below): the ABI version matched, so the exports have the ABI's types.
        let free = *unsafe { library.get::<FreeFn>(abi::FREE_SYMBOL.as_bytes()) }.map_err(|_| InitError::MissingSymbol {
            path: shown.clone(),
            symbol: abi::FREE_SYMBOL,
        })?;
        let symbol = format!("{}{}", abi::HANDLER_SYMBOL_PREFIX, name);
        let handler = *unsafe { library.get::<HandlerFn>(symbol.as_bytes()) }.map_err(|_| InitError::HandlerNotFound {
            path: shown.clone(),
            name: name.to_owned(),
            symbol: symbol.clone(),
        })?;
        let init = unsafe { library.get::<InitFn>(abi::INIT_SYMBOL.as_bytes()) }.ok().map(|f| *f);
        let attach = unsafe { library.get::<AttachHostFn>(abi::ATTACH_HOST_SYMBOL.as_bytes()) }
            .ok()
            .map(|f| *f);

        // The library's allocator tells us of an allocation failure before Rust aborts the
        // process, so the abort is answered as an out-of-memory (an optional export: libraries
        // built with an older sdk simply abort as `Runtime.ExitError`).
        // SAFETY: the export has the ABI's type; the function we pass lives as long as the process.
        if let Ok(attach) = unsafe { library.get::<AttachAllocReporterFn>(abi::ATTACH_ALLOC_REPORTER_SYMBOL.as_bytes()) } {
            unsafe { attach(Some(crate::abort_report::record_alloc_failure)) };
        }

        // Before init, so the init can send metrics too.
        let host = match (host, attach) {
            (Some(services), Some(attach)) => {
                let bridge = HostBridge::new(services);
                // SAFETY: ABI call; the bridge outlives the library (see the field order).
                unsafe { attach(bridge.api()) };
                Some(bridge)
            }
            _ => None,
        };

        let started = Instant::now();
        if let Some(init) = init {
            let mut error = OwnedBuffer::empty();
            // SAFETY: ABI call; the library fills `error` on failure and catches its own panics.
            let status = unsafe { init(&raw mut error) };
            let bytes = take(free, error);
            if status != abi::STATUS_OK {
                return Err(InitError::HandlerInit(ErrorBody::from_handler_bytes(&bytes)));
            }
        }
        let init_duration = started.elapsed();
        Ok(Loaded {
            handler: DylibHandler {
                handler,
                free,
                _library: library,
                _host: host,
            },
            init_duration,
        })
    }

    /// Runs one invocation on the calling thread.
    pub fn call(&self, invocation: &Invocation) -> HandlerOutcome {
        let context = &invocation.context;
        let optional = |value: &Option<String>| {
            value
                .as_deref()
                .map_or(BorrowedBytes::empty(), |v| BorrowedBytes::from_slice(v.as_bytes()))
        };
        let raw = RawInvocation {
            event: BorrowedBytes::from_slice(&invocation.event),
            request_id: BorrowedBytes::from_slice(context.request_id.as_bytes()),
            deadline_ms: context.deadline_ms,
            invoked_function_arn: BorrowedBytes::from_slice(context.invoked_function_arn.as_bytes()),
            xray_trace_id: optional(&context.xray_trace_id),
            client_context: optional(&context.client_context),
            cognito_identity: optional(&context.cognito_identity),
            tenant_id: optional(&context.tenant_id),
        };
        let mut out = OwnedBuffer::empty();
        // SAFETY: ABI call; every borrowed field outlives the call.
        let status = unsafe { (self.handler)(&raw const raw, &raw mut out) };
        let bytes = take(self.free, out);
        if status == abi::STATUS_OK {
            HandlerOutcome::Response(Bytes::from(bytes))
        } else {
            HandlerOutcome::Error(ErrorBody::from_handler_bytes(&bytes))
        }
    }
}

impl Handler for DylibHandler {
    fn invoke(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome> {
        Box::pin(async move {
            match tokio::runtime::Handle::current().runtime_flavor() {
                // Several invocations in flight: the handler blocks its thread, so hand the
                // worker's other tasks to another thread meanwhile.
                tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(|| self.call(&invocation)),
                // One invocation at a time on the main thread's own runtime: nothing else runs on
                // it that cannot wait (the deadline watch lives on the telemetry thread), and
                // calling in place saves two thread hand-offs per invocation.
                _ => self.call(&invocation),
            }
        })
    }
}

/// Copies the library's buffer into our allocator's world and hands it back to the library.
fn take(free: FreeFn, buffer: OwnedBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the library returned `len` initialised bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec();
    // SAFETY: the buffer came from this library and is not used again.
    unsafe { free(buffer) };
    bytes
}
