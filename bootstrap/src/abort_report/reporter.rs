//! The thread that reports a dying process, so the signal handler itself needs almost no stack.
//!
//! The handler may run on a small alternate stack (a stack overflow: std's 8 KiB one on a
//! thread the handler library spawned, two signal frames deep), where the report's buffers
//! (several KiB of request, lines and log text) do not fit. So the report runs on a thread of
//! its own, started at install with an ordinary stack, blocked in `read` on a pipe until then:
//! the handler writes the cause and the faulting thread into atomics, writes one byte, and waits
//! (bounded) until the thread says it is done. The thread follows the signal handler's rules
//! (no allocation, no lock: the dying thread may hold the allocator's), since it runs while the
//! rest of the process is in any state.
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use super::cause::Cause;
use super::prepared::Prepared;
use super::{alloc_failure, in_flight, report};

/// Its stack: ample for the report's stack buffers (some 10 KiB), unoptimised builds too.
const STACK_SIZE: usize = 256 * 1024;
/// How long the dying thread waits for the report: the posts (2 s timeouts each on loopback)
/// and the telemetry task's bounded time, with room to spare.
const WAIT_LIMIT: Duration = Duration::from_secs(8);
const STEP: Duration = Duration::from_millis(2);

/// The pipe's write end; -1 until the thread waits on the read end.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);
/// The reporter's kernel thread id.
static THREAD: AtomicI32 = AtomicI32::new(0);
/// The request, written before the byte: the cause found on the dying thread, and that thread.
static CAUSE_KIND: AtomicU8 = AtomicU8::new(0);
static CAUSE_DETAIL: AtomicUsize = AtomicUsize::new(0);
static DYING_THREAD: AtomicI32 = AtomicI32::new(0);
static DONE: AtomicBool = AtomicBool::new(false);

/// Starts the thread; the report then runs on it with `prepared`.
pub fn start(prepared: &'static Prepared) -> std::io::Result<()> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let [read_end, write_end] = fds;
    let started = std::thread::Builder::new()
        .name("bootstrap-abort-report".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            THREAD.store(alloc_failure::current_thread(), Ordering::Release);
            // Faulted in now: when the process dies of exhausted memory, a stack page it first
            // touches then may not be granted.
            touch_stack();
            // The write end is published only now, so a byte written is always read.
            WAKE_FD.store(write_end, Ordering::Release);
            if wait_for_byte(read_end) {
                let found = Cause::decode(CAUSE_KIND.load(Ordering::Acquire), CAUSE_DETAIL.load(Ordering::Acquire));
                in_flight::report(prepared, found, DYING_THREAD.load(Ordering::Acquire));
                DONE.store(true, Ordering::Release);
            }
        });
    if let Err(err) = started {
        // SAFETY: both descriptors were created above and are used by nobody.
        unsafe {
            libc::close(read_end);
            libc::close(write_end);
        }
        return Err(err);
    }
    Ok(())
}

fn wait_for_byte(fd: libc::c_int) -> bool {
    let mut byte = [0u8; 1];
    loop {
        // SAFETY: reads one byte into a local buffer.
        match unsafe { libc::read(fd, byte.as_mut_ptr().cast(), 1) } {
            1 => return true,
            n if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return false,
        }
    }
}

#[inline(never)]
#[expect(clippy::large_stack_arrays, reason = "the point is to fault in this much of the stack")]
fn touch_stack() {
    // The report's own buffers take some 12 KiB (request, body, lines); twice that is faulted
    // in, not the whole stack: every resident page counts in the function's memory.
    let mut pages = [0u8; 24 * 1024];
    for page in pages.chunks_mut(4096) {
        page[0] = 1;
    }
    std::hint::black_box(&mut pages);
}

/// From the signal handler of the dying thread: has the report made with `found` as the cause
/// on this thread, and waits until it is done (or [`WAIT_LIMIT`]). `false` when no reporter
/// runs (its thread could not be started): the caller reports itself. Signal-safe.
pub fn hand_over(found: Cause) -> bool {
    let fd = WAKE_FD.load(Ordering::Acquire);
    if fd < 0 {
        return false;
    }
    let (kind, detail) = found.encode();
    CAUSE_KIND.store(kind, Ordering::Release);
    CAUSE_DETAIL.store(detail, Ordering::Release);
    DYING_THREAD.store(alloc_failure::current_thread(), Ordering::Release);
    if report::write_all(fd, b"!").is_err() {
        return false;
    }
    let step = libc::timespec {
        tv_sec: 0,
        tv_nsec: STEP.as_nanos() as libc::c_long,
    };
    let mut waited = Duration::ZERO;
    while !DONE.load(Ordering::Acquire) && waited < WAIT_LIMIT {
        // SAFETY: sleeps; `step` is a valid timespec.
        unsafe { libc::nanosleep(&raw const step, std::ptr::null_mut()) };
        waited += STEP;
    }
    true
}

/// Whether the calling thread is the reporter (a fault in the report itself). Signal-safe.
pub fn is_current_thread() -> bool {
    let reporter = THREAD.load(Ordering::Acquire);
    reporter != 0 && reporter == alloc_failure::current_thread()
}
