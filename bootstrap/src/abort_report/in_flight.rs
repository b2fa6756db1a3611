//! The report itself: every invocation in flight answered, the telemetry task given its bounded
//! time, the metric lines printed if that task never took them on, one log line each.
//!
//! Run by the reporter thread (or, without one, by the signal handler) while the process dies:
//! async-signal-safe only (atomics, stack buffers, system calls), since the dying thread may
//! hold any lock, the allocator's included.
use super::cause::Cause;
use super::prepared::Prepared;
use super::report;
use super::stack_buf::StackBuf;
use super::{last_words, slots};

/// Answers every invocation in flight first (what matters most), then gives the telemetry task
/// its bounded time, prints the lines if it never took them on, and logs what happened.
///
/// `found` is the cause seen on `dying_thread`, and is the cause of the invocation whose handler
/// runs there; the others in flight (`AWS_LAMBDA_MAX_CONCURRENCY`) merely end with the process
/// ([`Cause::for_bystander`]). When none runs there (a thread the handler spawned, the
/// bootstrap's own), all share it.
pub fn report(prepared: &Prepared, found: Cause, dying_thread: i32) {
    let mut count = 0;
    slots::claim_all(|_| count += 1);
    if count == 0 {
        if super::init_running() {
            report_init(prepared, found);
            return;
        }
        let mut line = StackBuf::<256>::new();
        line.push(b"bootstrap: ");
        push_what_happened(&mut line, found);
        line.push(b" while no invocation was in flight; nothing to answer\n");
        let _ = report::write_all(libc::STDERR_FILENO, line.as_bytes());
        return;
    }
    let mut on_dying_thread = false;
    slots::for_each_claimed(|invocation| on_dying_thread |= invocation.thread == dying_thread);
    let mut posted = [None; slots::SLOT_COUNT];
    let mut index = 0;
    slots::for_each_claimed(|invocation| {
        let cause = if !on_dying_thread || invocation.thread == dying_thread {
            found
        } else {
            found.for_bystander()
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
        log(invocation.request_id, found, cause, result, telemetry);
        index += 1;
    });
}

/// The handler's init died: its cause goes to `/init/error`, and one line says so.
fn report_init(prepared: &Prepared, cause: Cause) {
    let mut body = StackBuf::<1024>::new();
    report::init_error_body(&mut body, cause);
    let mut request = StackBuf::<4096>::new();
    report::init_error_request(&mut request, prepared, cause, body.as_bytes());
    let posted = if request.overflowed() || body.overflowed() {
        Err(report::PostError { step: "build", errno: 0 })
    } else {
        report::post(prepared, request.as_bytes())
    };
    let mut line = StackBuf::<512>::new();
    line.push(b"bootstrap: ");
    push_what_happened(&mut line, cause);
    line.push(b" during the handler's init");
    push_cause_detail(&mut line, cause);
    line.push(b"; ");
    push_outcome(&mut line, (b"reported", b"report"), cause, posted);
    line.push(b"\n");
    let _ = report::write_all(libc::STDERR_FILENO, line.as_bytes());
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

/// What became of a dead invocation's telemetry.
#[derive(Clone, Copy)]
enum Telemetry {
    /// The task reported it as any failed invocation: metrics, custom metrics, trace.
    Sent,
    /// Only the enhanced lines the report printed.
    LinesOnly,
    /// The task started but did not finish in time (or nothing is printed in this mode).
    Incomplete,
}

/// `the process aborted (SIGABRT)` / `the process got a fault (SIGSEGV: segmentation fault)`.
fn push_what_happened<const N: usize>(line: &mut StackBuf<N>, found: Cause) {
    match found {
        Cause::Fault(fault) => line
            .push(b"the process got a fault (")
            .push(fault.signal_name().as_bytes())
            .push(b": ")
            .push(fault.description().as_bytes())
            .push(b")"),
        Cause::OutOfMemory { .. } | Cause::StackOverflow | Cause::Aborted => line.push(b"the process aborted (SIGABRT)"),
    };
}

/// ` after an allocation of N bytes failed` / ` after its handler overflowed its stack`, or nothing.
fn push_cause_detail<const N: usize>(line: &mut StackBuf<N>, cause: Cause) {
    match cause {
        Cause::OutOfMemory { size } => {
            line.push(b" after an allocation of ").push_u64(size as u64).push(b" bytes failed");
        }
        Cause::StackOverflow => {
            line.push(b" after its handler overflowed its stack");
        }
        Cause::Aborted | Cause::Fault(_) => {}
    }
}

/// `answered it as Runtime.ExitError (Runtime API status 202)`, or `could not answer it as ...`
/// and what failed (`done`/`to_do`: `answered`/`answer` for an invocation, `reported`/`report`
/// for the init).
fn push_outcome<const N: usize>(
    line: &mut StackBuf<N>,
    (done, to_do): (&[u8], &[u8]),
    cause: Cause,
    posted: Result<u16, report::PostError>,
) {
    match posted {
        Ok(status) => {
            line.push(done)
                .push(b" it as ")
                .push(cause.error_type().as_bytes())
                .push(b" (Runtime API status ")
                .push_u64(u64::from(status))
                .push(b")");
        }
        Err(err) => {
            line.push(b"could not ")
                .push(to_do)
                .push(b" it as ")
                .push(cause.error_type().as_bytes())
                .push(b" (")
                .push(err.step.as_bytes())
                .push(b" failed, errno ")
                .push_u64(err.errno.unsigned_abs().into())
                .push(b")");
        }
    }
}

/// One line on stderr saying what happened to the invocation and what could not be saved.
fn log(request_id: &[u8], found: Cause, cause: Cause, posted: Result<u16, report::PostError>, telemetry: Telemetry) {
    let mut line = StackBuf::<1024>::new();
    line.push(b"bootstrap: ");
    push_what_happened(&mut line, found);
    line.push(b" during invocation ").push(request_id);
    push_cause_detail(&mut line, cause);
    line.push(b"; ");
    push_outcome(&mut line, (b"answered", b"answer"), cause, posted);
    line.push(match telemetry {
        Telemetry::Sent => b"; its metrics and trace were sent as for any failed invocation" as &[u8],
        Telemetry::LinesOnly => b"; its enhanced metrics are printed, custom metrics and trace data not yet sent are lost",
        Telemetry::Incomplete => b"; custom metrics and trace data not yet sent may be lost",
    });
    line.push(b". The process ends; Lambda starts a new one.\n");
    let _ = report::write_all(libc::STDERR_FILENO, line.as_bytes());
}
