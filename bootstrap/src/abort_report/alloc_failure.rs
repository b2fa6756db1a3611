//! The last allocation failure of this process, as the reporting allocators tell it: the
//! handler library's (through `sdk::abi::ATTACH_ALLOC_REPORTER_SYMBOL`) and the bootstrap's own.
//!
//! Written from inside an allocator and read from a signal handler, so it is two atomics and
//! nothing else: no allocation, no lock.
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The refused size, valid while `FAILED_THREAD` is not 0.
static FAILED_SIZE: AtomicUsize = AtomicUsize::new(0);
/// The kernel thread id that saw the failure; 0: none since the invocation started.
static FAILED_THREAD: AtomicI32 = AtomicI32::new(0);

/// The host's [`sdk::abi::AllocFailureFn`]: records `size` for the abort that usually follows
/// on this thread (Rust's `handle_alloc_error`).
pub extern "C" fn record_alloc_failure(size: usize, _align: usize) {
    FAILED_SIZE.store(size, Ordering::Relaxed);
    FAILED_THREAD.store(current_thread(), Ordering::Release);
}

/// Forgets a failure that did not end the process (a `try_reserve` that was handled), so it
/// cannot be taken for the cause of a later, unrelated abort. Called as an invocation starts.
pub fn forget() {
    if FAILED_THREAD.load(Ordering::Relaxed) != 0 {
        FAILED_THREAD.store(0, Ordering::Relaxed);
    }
}

/// The size whose allocation failed on the calling thread since the last [`forget`]: in the
/// `SIGABRT` handler, which runs on the aborting thread, the allocation that made it abort.
pub fn failed_on_this_thread() -> Option<usize> {
    let thread = FAILED_THREAD.load(Ordering::Acquire);
    (thread != 0 && thread == current_thread()).then(|| FAILED_SIZE.load(Ordering::Relaxed))
}

/// The kernel's id of the calling thread (`gettid`, a plain system call: signal-safe).
pub fn current_thread() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The record is process-wide: one test, so no other test races it.
    #[test]
    fn a_failure_belongs_to_its_thread_until_forgotten() {
        forget();
        assert_eq!(failed_on_this_thread(), None);
        record_alloc_failure(1 << 40, 8);
        assert_eq!(failed_on_this_thread(), Some(1 << 40));
        let elsewhere = std::thread::spawn(failed_on_this_thread).join().unwrap();
        assert_eq!(elsewhere, None, "another thread's abort is not this allocation's");
        forget();
        assert_eq!(failed_on_this_thread(), None);
        assert_ne!(std::thread::spawn(current_thread).join().unwrap(), current_thread());
    }
}
