//! Answering the invocation when the process dies of a signal.
//!
//! A handler library runs inside the bootstrap's process. When it aborts (`SIGABRT`: Rust's
//! allocation failure, `std::process::abort()`, a double panic, a C library's `abort()`, std's
//! answer to a stack overflow) or faults (`SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`), the bootstrap
//! dies with it, and the invocation would get no answer from us, no `errors` metric, nothing.
//! Here, a handler of those signals (`signal`) has every invocation in flight answered with
//! `/error` before the process ends, as Lambda words a runtime that exited:
//!
//! - after a failed allocation on the aborting thread (told by the reporting allocators,
//!   [`record_alloc_failure`]): `Runtime.OutOfMemory`, `... signal: aborted (memory allocation
//!   of N bytes failed)`, and `aws.lambda.enhanced.out_of_memory` counted;
//! - after a stack overflow (std's handler aborts): `Runtime.ExitError`, `... signal: aborted
//!   (stack overflow)`;
//! - a fault: `Runtime.ExitError`, `RequestId: <id> Error: Runtime exited with error: signal:
//!   segmentation fault` (`bus error`, `illegal instruction`, `floating point exception`);
//! - otherwise: `Runtime.ExitError`, `... signal: aborted`.
//!
//! The report runs on a thread of its own (`reporter`), so the signal handler needs almost no
//! stack (a stack overflow leaves it only the alternate stack, `altstack`). Then, with a
//! bounded wait, a task on the telemetry thread reports the invocation to the metrics and trace
//! processors as an answered error (`last_words`): every enhanced metric (`errors`,
//! `out_of_memory` by the routing table), the custom metrics waiting for their flush, the trace
//! with the error. Should that task not get to the metrics (its thread stuck, or the one dying),
//! the report prints the `invocations`, `errors` and `out_of_memory` lines itself where the
//! processor would have (stdout; the Extension counts them itself from the error type). Then the
//! signal's default action ends the process and Lambda starts a new sandbox. One line on stderr
//! says what was answered and what was lost. During the handler's init ([`InitWatch`]) the
//! cause is posted to `/init/error` instead (`Runtime.OutOfMemory` for a failed allocation),
//! so the init error names it. With nothing in flight (between invocations) nothing is
//! answered: one line says so and the process ends as it would have.
//!
//! With several invocations in flight, the failed allocation (or overflowed stack) is the cause
//! of the one whose handler runs on the dying thread; the others are answered with the signal
//! that ends the process.
//!
//! Per invocation the cost is a slot armed and disarmed (`slots`): two compare-and-swaps, a
//! copy of the request id, an `Arc` clone and a clock read (the wrapper future aside);
//! everything else is prepared at start (`prepared`, the reporter thread, the alternate stack)
//! or once per tag set (`watch`).
mod alloc_failure;
mod altstack;
mod cause;
mod in_flight;
mod last_words;
mod prepared;
mod report;
mod reporter;
mod signal;
mod slots;
mod stack_buf;
mod watch;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use alloc_failure::record_alloc_failure;
pub use last_words::LastWordsError;
pub use prepared::{LineSet, PrepareError};
pub use signal::InstallError as SignalError;

use crate::handler::Handler;
use crate::lifecycle::LifecycleObserver;
use crate::runtime_api::Endpoint;
use crate::telemetry::metrics::tags::{resolve_runtime, StaticTags};
use crate::telemetry::metrics::MetricsConfig;

/// The handler of aborts could not be set up; the function serves without it.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    #[error(transparent)]
    Signal(#[from] SignalError),
}

/// The handler of fatal signals is installed; [`AbortReporting::watch`] the handler so its
/// invocations are answered.
pub struct AbortReporting {
    statics: Option<StaticTags>,
}

/// Installs the handler of `SIGABRT`, `SIGSEGV`, `SIGBUS`, `SIGILL` and `SIGFPE` for the Runtime
/// API at `endpoint`, printing the metric lines `metrics` asks for. Call once at start, before
/// the handler is loaded, on the thread that calls it (its alternate signal stack is enlarged).
pub fn install(endpoint: &Endpoint, metrics: &MetricsConfig) -> Result<AbortReporting, InstallError> {
    let lines = LineSet::for_config(metrics);
    signal::install(prepared::Prepared::new(endpoint, lines)?)?;
    // Only when lines are printed are their tags needed (the runtime tag reads a file).
    let statics = lines.any().then(|| StaticTags {
        memory_mb: metrics.memory_mb,
        function_version: metrics.function_version.clone(),
        runtime: resolve_runtime(metrics.execution_env.as_deref(), Path::new("/etc/os-release")),
    });
    Ok(AbortReporting { statics })
}

/// Whether the handler's init is running: a signal then ends the init, not an invocation.
static INIT_RUNNING: AtomicBool = AtomicBool::new(false);

/// While alive, an abort or fault is the init's failure, posted to `/init/error`.
#[must_use = "the init is watched only while the guard lives"]
pub struct InitWatch(());

impl Drop for InitWatch {
    fn drop(&mut self) {
        INIT_RUNNING.store(false, Ordering::SeqCst);
    }
}

fn init_running() -> bool {
    INIT_RUNNING.load(Ordering::SeqCst)
}

impl AbortReporting {
    /// Watches the handler's init (load and init function, or an exec child's start) until the
    /// guard is dropped.
    pub fn watch_init(&self) -> InitWatch {
        INIT_RUNNING.store(true, Ordering::SeqCst);
        InitWatch(())
    }

    /// `handler`, with each invocation watched while it runs.
    pub fn watch(&self, handler: Arc<dyn Handler>) -> Arc<dyn Handler> {
        Arc::new(watch::Watched::new(handler, self.statics.clone()))
    }

    /// Lets an aborted invocation be reported to `metrics` and `others` (the traces) like any
    /// failed one, by a task on `runtime` (one whose thread no handler blocks: the telemetry
    /// thread's). Without it, only the answer and the signal-safe lines are sent.
    pub fn report_through(
        &self,
        runtime: &tokio::runtime::Handle,
        metrics: Arc<dyn LifecycleObserver>,
        others: Vec<Arc<dyn LifecycleObserver>>,
    ) -> Result<(), LastWordsError> {
        last_words::spawn(runtime, metrics, others)
    }
}
