//! The handler of the signals that end the process: `SIGABRT`, and the faults `SIGSEGV`,
//! `SIGBUS`, `SIGILL`, `SIGFPE`. Installed once at start, it has every invocation in flight
//! answered and reported (by the reporter thread, [`super::reporter`]), then restores the
//! default action and raises the signal again, so the process ends by it and Lambda sees the
//! true cause.
//!
//! It chains to the handler it replaced. For `SIGSEGV` and `SIGBUS` that is std's: when the
//! fault is in a thread's stack guard page, std prints `thread '<name>' has overflowed its
//! stack` and aborts; the `SIGABRT` that follows, raised from inside std's handler, is reported
//! as a stack overflow. Any other fault std hands back (it restores the default action and
//! returns), and it is reported as the fault it is. A handler installed later (a handler
//! library's own) chains to this one the same way, or handles its faults itself.
//!
//! Everything it runs is async-signal-safe: the signal may come from inside `malloc` (a heap
//! found corrupt) with its lock held, or from a thread holding any of our locks, so it
//! allocates nothing and locks nothing: atomics and system calls only. It uses little stack,
//! since on a stack overflow it runs on the thread's alternate stack ([`super::altstack`]).
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use super::cause::{Cause, Fault};
use super::prepared::Prepared;
use super::{alloc_failure, altstack, in_flight, last_words, reporter};

/// The signals handled, `SIGABRT` first.
const SIGNALS: [libc::c_int; 5] = [libc::SIGABRT, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

/// What the handler uses, set once by [`install`]. A signal handler cannot be handed anything,
/// so this is the one place it looks.
static INSTALLED: OnceLock<Installed> = OnceLock::new();
/// Set by the first thread into the report; another thread dying meanwhile waits for it.
static ENTERED: AtomicBool = AtomicBool::new(false);
static REPORTED: AtomicBool = AtomicBool::new(false);
/// The thread running the replaced handler of `SIGSEGV` or `SIGBUS` (std's): an abort from
/// inside it is std's answer to a stack overflow.
static IN_PREVIOUS: AtomicI32 = AtomicI32::new(0);
/// How long a second dying thread waits for the first one's report.
const WAIT_FOR_REPORT: Duration = Duration::from_secs(5);

struct Installed {
    prepared: Prepared,
    /// The handlers replaced, by signal.
    previous: [Previous; SIGNALS.len()],
}

/// A replaced disposition: `SIG_DFL`, `SIG_IGN` or a function.
#[derive(Clone, Copy)]
struct Previous {
    signal: libc::c_int,
    handler: libc::sighandler_t,
    flags: libc::c_int,
}

impl Previous {
    fn is_function(self) -> bool {
        self.handler != libc::SIG_DFL && self.handler != libc::SIG_IGN
    }

    /// Calls the replaced handler as the kernel would have.
    ///
    /// # Safety
    /// In a signal handler for `self.signal`, with the kernel's `info` and `context`.
    unsafe fn call(self, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        // SAFETY: `handler` was installed by sigaction for this signal, with SA_SIGINFO telling
        // which of the two signatures it has.
        unsafe {
            if self.flags & libc::SA_SIGINFO != 0 {
                let handler = std::mem::transmute::<libc::sighandler_t, extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)>(
                    self.handler,
                );
                handler(self.signal, info, context);
            } else {
                let handler = std::mem::transmute::<libc::sighandler_t, extern "C" fn(libc::c_int)>(self.handler);
                handler(self.signal);
            }
        }
    }
}

/// `sigaction` refused the handler of a signal.
#[derive(Debug, thiserror::Error)]
#[error("cannot install the handler of signal {signal} (errno {errno})")]
pub struct InstallError {
    signal: libc::c_int,
    errno: i32,
}

/// Installs the handler with `prepared`; a second call keeps the first one's. Call it on the
/// thread that calls the handler library (its alternate stack is enlarged).
pub fn install(prepared: Prepared) -> Result<(), InstallError> {
    let mut previous = SIGNALS.map(|signal| Previous {
        signal,
        handler: libc::SIG_DFL,
        flags: 0,
    });
    for entry in &mut previous {
        // SAFETY: reads the current disposition into a zeroed sigaction.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(entry.signal, std::ptr::null(), &raw mut current) == 0 {
                entry.handler = current.sa_sigaction;
                entry.flags = current.sa_flags;
            }
        }
    }
    if INSTALLED.set(Installed { prepared, previous }).is_err() {
        return Ok(());
    }
    let Some(installed) = INSTALLED.get() else {
        return Ok(());
    };
    if let Err(err) = reporter::start(&installed.prepared) {
        tracing::warn!("cannot start the thread that reports a dying process ({err}): the signal handler reports itself, which a stack overflow may not leave it the stack for");
    }
    if let Err(err) = altstack::enlarge_for_this_thread() {
        tracing::warn!("cannot enlarge the alternate signal stack ({err}): a stack overflow in the handler may go unreported");
    }
    for signal in SIGNALS {
        if !set_action(signal, our_handler(), flags_for(signal)) {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            return Err(InstallError { signal, errno });
        }
    }
    Ok(())
}

/// `SA_SIGINFO`, and for a fault `SA_ONSTACK`: it may be a stack overflow, with only the
/// alternate stack left to run on.
fn flags_for(signal: libc::c_int) -> libc::c_int {
    if signal == libc::SIGABRT {
        libc::SA_SIGINFO
    } else {
        libc::SA_SIGINFO | libc::SA_ONSTACK
    }
}

/// Sets `signal`'s disposition, with an empty mask; whether `sigaction` took it. Signal-safe.
fn set_action(signal: libc::c_int, handler: libc::sighandler_t, flags: libc::c_int) -> bool {
    // SAFETY: a zeroed sigaction is valid; we fill in the handler, its flags and an empty mask,
    // and pass valid pointers.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        libc::sigemptyset(&raw mut action.sa_mask);
        libc::sigaction(signal, &raw const action, std::ptr::null_mut()) == 0
    }
}

extern "C" fn on_fatal(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(installed) = INSTALLED.get() else {
        die(signal);
        return;
    };
    let thread = alloc_failure::current_thread();
    if let Some(previous) = installed.previous.iter().find(|p| p.signal == signal && p.is_function()) {
        // Only std's handler of a memory fault aborts for a stack overflow.
        let may_overflow = signal == libc::SIGSEGV || signal == libc::SIGBUS;
        let outer = may_overflow.then(|| IN_PREVIOUS.swap(thread, Ordering::AcqRel));
        // SAFETY: in the handler of `signal`, with the kernel's arguments.
        unsafe { previous.call(info, context) };
        if let Some(outer) = outer {
            IN_PREVIOUS.store(outer, Ordering::Release);
        }
        if is_still_ours(signal) {
            // It handled the signal (std's restores the default action when it does not).
            return;
        }
        // It gave up; until the report is done, another thread's fault waits for it here
        // instead of ending the process by the default action.
        set_action(signal, our_handler(), flags_for(signal));
    }
    let found = match Fault::from_signal(signal) {
        Some(fault) => Cause::Fault(fault),
        None if IN_PREVIOUS.load(Ordering::Acquire) == thread => Cause::StackOverflow,
        None => alloc_failure::failed_on_this_thread().map_or(Cause::Aborted, |size| Cause::OutOfMemory { size }),
    };
    if ENTERED.swap(true, Ordering::AcqRel) {
        // Another thread is reporting (maybe waiting for the task this thread ran): it stops
        // waiting, finishes with what is signal-safe, and the process goes. The reporter
        // itself failing has nobody to wait for.
        last_words::give_up();
        if !reporter::is_current_thread() {
            wait_for_report();
        }
    } else {
        // On the reporter itself (a signal sent to the process landed there), report in place.
        if reporter::is_current_thread() || !reporter::hand_over(found) {
            in_flight::report(&installed.prepared, found, thread);
        }
        REPORTED.store(true, Ordering::Release);
    }
    die(signal);
}

/// [`on_fatal`]'s address, as `sigaction` holds it.
fn our_handler() -> libc::sighandler_t {
    let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = on_fatal;
    handler as libc::sighandler_t
}

/// Whether `signal` is still handled by [`on_fatal`].
fn is_still_ours(signal: libc::c_int) -> bool {
    // SAFETY: reads the current disposition into a zeroed sigaction.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signal, std::ptr::null(), &raw mut current) == 0 && current.sa_sigaction == our_handler()
    }
}

fn wait_for_report() {
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
}

/// Restores the default action and raises `signal` again. It is blocked while its handler runs,
/// so it is delivered, and ends the process, as the handler returns (a fault would also recur
/// when its instruction runs again).
fn die(signal: libc::c_int) {
    set_action(signal, libc::SIG_DFL, 0);
    // SAFETY: raises a signal in this thread.
    unsafe { libc::raise(signal) };
}
