//! The telemetry of an aborted invocation beyond what a signal handler can do: the metrics
//! processor's full report (every enhanced metric, the custom metrics waiting for their flush,
//! the Datadog API in API mode) and the invocation's trace, marked with the error.
//!
//! A task waits on the telemetry runtime for one byte on a pipe. The `SIGABRT` handler, once
//! the invocations are answered, writes that byte (signal-safe) and waits a bounded time while
//! the task hands each aborted invocation to the observers as an answered one. The task runs
//! on another thread with ordinary code, so it cannot take a lock the aborting thread holds
//! without stalling; the bounded wait is what keeps that from stalling the process, and the
//! handler then prints the signal-safe lines itself if the task never got to the metrics.
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::report::{self, Cause};
use super::slots::{self, Pending};
use super::stack_buf::StackBuf;
use crate::handler::HandlerOutcome;
use crate::lifecycle::{InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
use crate::runtime_api::ErrorBody;

/// How long the task may take (a slow Datadog API included).
const BUDGET: Duration = Duration::from_secs(2);
/// How long the signal handler waits for the task to wake before it stops waiting: the task's
/// runtime may be the aborting thread, or stuck.
const WAKE_LIMIT: Duration = Duration::from_millis(300);
/// The signal handler's polling step.
const STEP: Duration = Duration::from_millis(5);

/// The pipe's write end; -1 until the task waits.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
static STARTED: AtomicBool = AtomicBool::new(false);
static FINISHED: AtomicBool = AtomicBool::new(false);
/// Another thread aborted meanwhile (the task's own allocation failing, say): stop waiting.
static GIVE_UP: AtomicBool = AtomicBool::new(false);
/// Who prints the aborted invocations' metric lines: nobody yet, the task, the handler.
static LINES_OWNER: AtomicU8 = AtomicU8::new(NOBODY);
const NOBODY: u8 = 0;
const TASK: u8 = 1;
const HANDLER: u8 = 2;

/// The pipe could not be made, or the runtime refused it; the signal-safe report still works.
#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the telemetry of an aborted invocation: {0}")]
pub struct LastWordsError(#[from] std::io::Error);

/// Spawns the task on `runtime` (the telemetry thread's): `metrics` first (it prints the lines),
/// then `others` (the traces).
pub fn spawn(
    runtime: &tokio::runtime::Handle,
    metrics: Arc<dyn LifecycleObserver>,
    others: Vec<Arc<dyn LifecycleObserver>>,
) -> Result<(), LastWordsError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: the read end was just created and is owned by nobody else.
    let read_end = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    let receiver = {
        let _runtime = runtime.enter();
        tokio::net::unix::pipe::Receiver::from_owned_fd(read_end)?
    };
    // The write end stays open for the process's life: the signal handler may write at any time.
    WAKE_FD.store(fds[1], Ordering::Release);
    runtime.spawn(async move {
        if woken(&receiver).await {
            STARTED.store(true, Ordering::Release);
            let _ = tokio::time::timeout(BUDGET, report_aborted(&*metrics, &others)).await;
            FINISHED.store(true, Ordering::Release);
        }
    });
    Ok(())
}

async fn woken(receiver: &tokio::net::unix::pipe::Receiver) -> bool {
    let mut byte = [0u8; 1];
    loop {
        if receiver.readable().await.is_err() {
            return false;
        }
        match receiver.try_read(&mut byte) {
            Ok(1) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            _ => return false,
        }
    }
}

/// Tells the observers about every claimed invocation, as if it had been answered with its error.
async fn report_aborted(metrics: &dyn LifecycleObserver, others: &[Arc<dyn LifecycleObserver>]) {
    let now = Timestamp::now();
    let events: Vec<LifecycleEvent> = slots::claimed_pending()
        .into_iter()
        .map(|(pending, cause)| LifecycleEvent::Invocation(Arc::new(aborted_report(pending, cause, now))))
        .collect();
    if LINES_OWNER
        .compare_exchange(NOBODY, TASK, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
    {
        for event in &events {
            metrics.observe(event).await;
        }
    }
    for observer in others {
        for event in &events {
            observer.observe(event).await;
        }
    }
}

/// The report the lifecycle would have made had the handler returned the abort as its error.
fn aborted_report(pending: Pending, cause: Cause, now: Timestamp) -> InvocationReport {
    let mut body = StackBuf::<1024>::new();
    report::error_body(&mut body, pending.invocation.context.request_id.as_bytes(), cause);
    InvocationReport {
        invocation: pending.invocation,
        cold_start: pending.cold_start,
        received: pending.started,
        handler_started: pending.started,
        handler_finished: now,
        answered: now,
        outcome: HandlerOutcome::Error(ErrorBody::from_handler_bytes(body.as_bytes())),
        answer_error: None,
        timed_out: false,
    }
}

/// From the signal handler, once every claimed invocation has its cause decided: wakes the task
/// and waits until it finished, gave no sign of waking, or ran out of time. Signal-safe.
pub fn wake_and_wait() {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    if report::write_all(fd, b"!").is_err() {
        return;
    }
    let step = libc::timespec {
        tv_sec: 0,
        tv_nsec: STEP.as_nanos() as libc::c_long,
    };
    let mut waited = Duration::ZERO;
    while waited < BUDGET + WAKE_LIMIT {
        if FINISHED.load(Ordering::Acquire) || GIVE_UP.load(Ordering::Acquire) {
            return;
        }
        if waited >= WAKE_LIMIT && !STARTED.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: sleeps; `step` is a valid timespec.
        unsafe { libc::nanosleep(&raw const step, std::ptr::null_mut()) };
        waited += STEP;
    }
}

/// From a second aborting thread: the first one's wait ends now.
pub fn give_up() {
    GIVE_UP.store(true, Ordering::Release);
}

/// Whether the signal handler prints the lines itself: the task never took them on. Signal-safe.
pub fn handler_prints_lines() -> bool {
    LINES_OWNER
        .compare_exchange(NOBODY, HANDLER, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
}

/// Whether the task finished its whole report in time. Signal-safe.
pub fn finished() -> bool {
    FINISHED.load(Ordering::Acquire)
}
