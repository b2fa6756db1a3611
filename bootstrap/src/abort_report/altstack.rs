//! A larger alternate signal stack for the threads that call handlers.
//!
//! A thread that overflowed its stack can only run a signal handler on its alternate stack.
//! std gives each of its threads one of `max(SIGSTKSZ, AT_MINSIGSTKSZ)` bytes (8 KiB on x86_64),
//! sized for std's own handler, which prints a line and aborts. The report of that abort runs
//! two signal frames deep on it (`SIGSEGV`, then `SIGABRT` from inside std's handler), and a
//! signal frame alone can take more than 3 KiB on a CPU with AVX-512 (the kernel's
//! `AT_MINSIGSTKSZ`): 8 KiB is not enough. The handler's own frames are small (the report
//! itself runs on another thread, `reporter`), so a fixed 64 KiB is ample. (Measured with std's
//! 8 KiB on a runtime worker, debug build: the invocation was answered, then the handler
//! overflowed the alternate stack and the process died of `SIGSEGV` instead of `SIGABRT`.)
//!
//! The main thread gets it at install; any other thread that calls handlers on its first
//! invocation (`watch`).
use std::io;

/// The usable size; one guard page below it catches an overflow of the alternate stack itself.
const SIZE: usize = 64 * 1024;

/// What [`enlarge_for_this_thread`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Enlarged {
    /// The calling thread now has a stack of [`SIZE`] bytes.
    Replaced,
    /// Its alternate stack was already that large.
    AlreadyLarge,
}

/// Gives the calling thread an alternate signal stack of [`SIZE`] bytes, unless it has one at
/// least that large. The previous one (std's) is left mapped: std may still refer to it.
/// Not on an invocation's path: once per thread, at start.
pub fn enlarge_for_this_thread() -> io::Result<Enlarged> {
    // SAFETY: sigaltstack reads into a zeroed stack_t; mmap and mprotect act on a new private
    // mapping of our own, whose bounds we pass exactly.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &raw mut current) != 0 {
            return Err(io::Error::last_os_error());
        }
        if current.ss_flags & libc::SS_DISABLE == 0 && current.ss_size >= SIZE {
            return Ok(Enlarged::AlreadyLarge);
        }
        let page = usize::try_from(libc::sysconf(libc::_SC_PAGESIZE)).unwrap_or(4096);
        let mapping = libc::mmap(
            std::ptr::null_mut(),
            SIZE + page,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if mapping == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        if libc::mprotect(mapping, page, libc::PROT_NONE) != 0 {
            let err = io::Error::last_os_error();
            libc::munmap(mapping, SIZE + page);
            return Err(err);
        }
        let stack = libc::stack_t {
            ss_sp: mapping.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: SIZE,
        };
        if libc::sigaltstack(&raw const stack, std::ptr::null_mut()) != 0 {
            // EPERM: the thread is running on its alternate stack right now.
            let err = io::Error::last_os_error();
            libc::munmap(mapping, SIZE + page);
            return Err(err);
        }
    }
    Ok(Enlarged::Replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_size() -> usize {
        // SAFETY: reads into a zeroed stack_t.
        unsafe {
            let mut current: libc::stack_t = std::mem::zeroed();
            assert_eq!(libc::sigaltstack(std::ptr::null(), &raw mut current), 0);
            if current.ss_flags & libc::SS_DISABLE == 0 {
                current.ss_size
            } else {
                0
            }
        }
    }

    #[test]
    fn a_thread_gets_the_larger_stack_once() {
        std::thread::spawn(|| {
            assert!(current_size() < SIZE, "std's own is smaller: {}", current_size());
            assert_eq!(enlarge_for_this_thread().unwrap(), Enlarged::Replaced);
            assert_eq!(current_size(), SIZE);
            assert_eq!(enlarge_for_this_thread().unwrap(), Enlarged::AlreadyLarge);
        })
        .join()
        .unwrap();
    }
}
