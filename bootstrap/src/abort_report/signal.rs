//! The `SIGABRT` handler: installed once at start, it answers every invocation in flight, gives
//! the telemetry task ([`super::last_words`]) its bounded time, prints the metric lines if that
//! task never took them on, logs what it did, then lets the default action end the process.
//!
//! Everything it runs is async-signal-safe: the abort may come from inside `malloc` (a heap
//! found corrupt) with its lock held, or from a thread holding any of our locks, so it
//! allocates nothing and locks nothing: atomics, stack buffers and system calls only.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::prepared::Prepared;
use super::report::{self, Cause};
use super::stack_buf::StackBuf;
use super::{alloc_failure, last_words, slots};

/// What the handler uses, set once by [`install`]. A signal handler cannot be handed anything,
/// so this is the one place it looks.
static PREPARED: OnceLock<Prepared> = OnceLock::new();
/// Set by the first thread into the handler; another thread aborting meanwhile waits for it.
static ENTERED: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);
/// How long a second aborting thread waits for the first one's report.
const WAIT_FOR_REPORT: Duration = Duration::from_secs(5);

/// `sigaction` refused the handler.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the SIGABRT handler (errno {0})")]
pub struct InstallError(i32);

/// Installs the handler with `prepared`; a second call keeps the first one's.
pub fn install(prepared: Prepared) -> Result<(), InstallError> {
    if PREPARED.set(prepared).is_err() {
        return Ok(());
    }
    let handler: extern "C" fn(libc::c_int) = on_abort;
    // SAFETY: a zeroed sigaction is valid; we fill in a handler of the right type and an empty
    // mask, and pass valid pointers.
    let installed = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as libc::sighandler_t;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(libc::SIGABRT, &raw const action, std::ptr::null_mut())
    };
    if installed == 0 {
        Ok(())
    } else {
        Err(InstallError(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)))
    }
}

extern "C" fn on_abort(_signal: libc::c_int) {
    if ENTERED.swap(true, Ordering::AcqRel) {
        // Another thread is reporting (maybe waiting for the task this thread ran): it stops
        // waiting, finishes with what is signal-safe, and the process goes.
        last_words::give_up();
        let step = libc::timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        };
        for _ in 0..WAIT_FOR_REPORT.as_millis() / 10 {
            if REPORTED.load(Ordering::Acquire) {
                break;
            }
            // SAFETY: sleeps; `step` is a valid timespec.
            unsafe { libc::nanosleep(&raw const step, std::ptr::null_mut()) };
        }
    } else {
        if let Some(prepared) = PREPARED.get() {
            report_in_flight(prepared);
        }
        REPORTED.store(true, Ordering::Release);
    }
    // SAFETY: restores the default action and raises the signal again. It is blocked while this
    // handler runs, so it is delivered, and ends the process, as the handler returns.
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        libc::raise(libc::SIGABRT);
    }
}

/// Answers every invocation in flight first (what matters most), then gives the telemetry task
/// its bounded time, prints the lines if it never took them on, and logs what happened.
///
/// A failed allocation is the cause of the invocation whose handler runs on the aborting
/// thread; the others in flight (`AWS_LAMBDA_MAX_CONCURRENCY`) merely end with the process.
/// When none runs there (a thread the handler spawned, the bootstrap's own), all share it.
fn report_in_flight(prepared: &Prepared) {
    let found = alloc_failure::failed_on_this_thread().map_or(Cause::Aborted, |size| Cause::OutOfMemory { size });
    let aborting = alloc_failure::current_thread();
    let mut count = 0;
    slots::claim_all(|_| count += 1);
    if count == 0 {
        let _ = report::write_all(
            libc::STDERR_FILENO,
            b"bootstrap: the process aborted (SIGABRT) while no invocation was in flight; nothing to answer\n",
        );
        return;
    }
    let mut on_this_thread = false;
    slots::for_each_claimed(|invocation| on_this_thread |= invocation.thread == aborting);
    let mut posted = [None; slots::SLOT_COUNT];
    let mut index = 0;
    slots::for_each_claimed(|invocation| {
        let cause = if !on_this_thread || invocation.thread == aborting {
            found
        } else {
            Cause::Aborted
        };
        invocation.decide(cause);
        if let Some(slot) = posted.get_mut(index) {
            *slot = Some(answer(prepared, invocation.request_id, invocation.invocation_id, cause));
        }
        index += 1;
    });
    last_words::wake_and_wait();
    let handler_lines = prepared.lines.any() && last_words::handler_prints_lines();
    let telemetry_sent = last_words::finished();
    let mut index = 0;
    slots::for_each_claimed(|invocation| {
        let cause = invocation.cause();
        let mut lines_written = false;
        if handler_lines {
            let mut lines = StackBuf::<4096>::new();
            report::metric_lines(&mut lines, prepared.lines, cause, report::epoch_seconds(), invocation.tags);
            lines_written = !lines.is_empty() && !lines.overflowed() && report::write_all(libc::STDOUT_FILENO, lines.as_bytes()).is_ok();
        }
        let telemetry = if telemetry_sent {
            Telemetry::Sent
        } else if lines_written {
            Telemetry::LinesOnly
        } else {
            Telemetry::Incomplete
        };
        let result = posted
            .get(index)
            .copied()
            .flatten()
            .unwrap_or(Err(report::PostError { step: "build", errno: 0 }));
        log(invocation.request_id, cause, result, telemetry);
        index += 1;
    });
}

/// Posts the invocation's `/error`; the Runtime API's status, or what failed.
fn answer(prepared: &Prepared, request_id: &[u8], invocation_id: &[u8], cause: Cause) -> Result<u16, report::PostError> {
    let mut body = StackBuf::<1024>::new();
    report::error_body(&mut body, request_id, cause);
    let mut request = StackBuf::<4096>::new();
    report::error_request(&mut request, prepared, request_id, invocation_id, cause, body.as_bytes());
    if request.overflowed() || body.overflowed() {
        return Err(report::PostError { step: "build", errno: 0 });
    }
    report::post(prepared, request.as_bytes())
}

/// What became of an aborted invocation's telemetry.
#[derive(Clone, Copy)]
enum Telemetry {
    /// The task reported it as any failed invocation: metrics, custom metrics, trace.
    Sent,
    /// Only the enhanced lines the signal handler printed.
    LinesOnly,
    /// The task started but did not finish in time (or nothing is printed in this mode).
    Incomplete,
}

/// One line on stderr saying what happened to the invocation and what could not be saved.
fn log(request_id: &[u8], cause: Cause, posted: Result<u16, report::PostError>, telemetry: Telemetry) {
    let mut line = StackBuf::<1024>::new();
    line.push(b"bootstrap: the process aborted (SIGABRT) during invocation ")
        .push(request_id);
    if let Cause::OutOfMemory { size } = cause {
        line.push(b" after an allocation of ").push_u64(size as u64).push(b" bytes failed");
    }
    line.push(b"; ");
    match posted {
        Ok(status) => {
            line.push(b"answered it as ")
                .push(cause.error_type().as_bytes())
                .push(b" (Runtime API status ")
                .push_u64(u64::from(status))
                .push(b")");
        }
        Err(err) => {
            line.push(b"could not answer it as ")
                .push(cause.error_type().as_bytes())
                .push(b" (")
                .push(err.step.as_bytes())
                .push(b" failed, errno ")
                .push_u64(err.errno.unsigned_abs().into())
                .push(b")");
        }
    }
    line.push(match telemetry {
        Telemetry::Sent => b"; its metrics and trace were sent as for any failed invocation" as &[u8],
        Telemetry::LinesOnly => b"; its enhanced metrics are printed, custom metrics and trace data not yet sent are lost",
        Telemetry::Incomplete => b"; custom metrics and trace data not yet sent may be lost",
    });
    line.push(b". The process ends; Lambda starts a new one.\n");
    let _ = report::write_all(libc::STDERR_FILENO, line.as_bytes());
}
