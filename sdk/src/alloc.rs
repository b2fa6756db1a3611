//! A global allocator that tells the `bootstrap` when an allocation fails.
//!
//! On stable Rust an allocation failure cannot be caught: `handle_alloc_error` prints
//! `memory allocation of N bytes failed` and aborts the process (the hook and `-Zoom=panic`
//! that would change this are unstable). A handler library shares the bootstrap's process, so
//! that abort ends the bootstrap too. The bootstrap catches the abort (`SIGABRT`) to answer the
//! invocation before the process ends; [`Reporting`] lets it tell *why* it aborted: just before
//! the failed allocation returns null, the size is handed to the bootstrap, which then reports
//! the invocation as `Runtime.OutOfMemory` and counts `aws.lambda.enhanced.out_of_memory`.
//!
//! [`crate::export_abi!`] installs `Reporting<System>` as the library's global allocator, so a
//! handler library needs no code for this. A library with its own global allocator calls
//! `sdk::export_abi!(own_global_allocator)` instead, and may wrap its allocator to keep the
//! reports:
//!
//! ```
//! use std::alloc::System; // or mimalloc::MiMalloc, tikv_jemallocator::Jemalloc...
//!
//! #[global_allocator]
//! static ALLOCATOR: sdk::alloc::Reporting<System> = sdk::alloc::Reporting::new(System);
//!
//! sdk::export_abi!(own_global_allocator);
//! # fn main() {}
//! ```
//!
//! The wrapper costs one null check per allocation; an allocation that fails without ending
//! the process (`try_reserve`) is reported too, and the bootstrap only acts on a report when
//! the process then aborts.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicPtr, Ordering};

use crate::abi::AllocFailureFn;

/// A [`GlobalAlloc`] that forwards to `A` and reports every allocation `A` refuses (returns
/// null for) to the reporter set with [`set_failure_reporter`], before returning the null.
///
/// ```
/// use std::alloc::{GlobalAlloc, Layout, System};
///
/// let allocator = sdk::alloc::Reporting::new(System);
/// let layout = Layout::from_size_align(64, 8).unwrap();
/// let ptr = unsafe { allocator.alloc(layout) };
/// assert!(!ptr.is_null());
/// unsafe { allocator.dealloc(ptr, layout) };
/// ```
#[derive(Debug, Default)]
pub struct Reporting<A = System> {
    inner: A,
}

impl<A> Reporting<A> {
    /// Wraps `inner`.
    ///
    /// ```
    /// static ALLOCATOR: sdk::alloc::Reporting<std::alloc::System> = sdk::alloc::Reporting::new(std::alloc::System);
    /// ```
    pub const fn new(inner: A) -> Self {
        Self { inner }
    }
}

impl Reporting<System> {
    /// The system allocator (Rust's default), reporting.
    ///
    /// ```
    /// static ALLOCATOR: sdk::alloc::Reporting = sdk::alloc::Reporting::system();
    /// ```
    pub const fn system() -> Self {
        Self::new(System)
    }
}

// SAFETY: every call is forwarded to `inner` with the same arguments and its result returned
// unchanged; the report in between neither allocates nor touches the memory.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Reporting<A> {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees.
        let ptr = unsafe { self.inner.alloc(layout) };
        if ptr.is_null() {
            report(layout.size(), layout.align());
        }
        ptr
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded under the caller's guarantees.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if ptr.is_null() {
            report(layout.size(), layout.align());
        }
        ptr
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded under the caller's guarantees.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if new.is_null() {
            report(new_size, layout.align());
        }
        new
    }
}

/// The reporter, as a type-erased function pointer (null: none). Process-wide by nature: the
/// global allocator has no other way to reach it.
static REPORTER: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());

/// Sets (or, with `None`, clears) the function [`Reporting`] calls with the size and alignment
/// of a failed allocation. The bootstrap sets it through the ABI
/// ([`crate::abi::ATTACH_ALLOC_REPORTER_SYMBOL`]); the reporter must not allocate, lock or unwind.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
///
/// static LAST_FAILED: AtomicUsize = AtomicUsize::new(0);
/// unsafe extern "C" fn remember(size: usize, _align: usize) {
///     LAST_FAILED.store(size, Ordering::Relaxed);
/// }
/// sdk::alloc::set_failure_reporter(Some(remember));
/// sdk::alloc::set_failure_reporter(None);
/// ```
pub fn set_failure_reporter(reporter: Option<AllocFailureFn>) {
    let raw = reporter.map_or(std::ptr::null_mut(), |f| f as *mut ());
    REPORTER.store(raw, Ordering::Release);
}

/// Out of line and cold: every allocation site gets only the null check, not this call's code
/// (inlined at each of them, it made the bootstrap 50 KB larger).
#[cold]
#[inline(never)]
fn report(size: usize, align: usize) {
    let raw = REPORTER.load(Ordering::Acquire);
    if raw.is_null() {
        return;
    }
    // SAFETY: a non-null value was stored from an `AllocFailureFn` by `set_failure_reporter`.
    let reporter = unsafe { std::mem::transmute::<*mut (), AllocFailureFn>(raw) };
    // SAFETY: the reporter's contract (no allocation, no unwinding) is the setter's promise.
    unsafe { reporter(size, align) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Refuses anything above 1 MiB, as an exhausted allocator would.
    struct Refusing;

    // SAFETY: forwards to the system allocator, or refuses with null.
    unsafe impl GlobalAlloc for Refusing {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.size() > 1 << 20 {
                std::ptr::null_mut()
            } else {
                unsafe { System.alloc(layout) }
            }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    static FAILED_SIZE: AtomicUsize = AtomicUsize::new(0);
    static FAILED_ALIGN: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn remember(size: usize, align: usize) {
        FAILED_SIZE.store(size, Ordering::SeqCst);
        FAILED_ALIGN.store(align, Ordering::SeqCst);
    }

    // One test touches the process-wide reporter, so tests cannot race on it.
    #[test]
    fn refused_allocations_are_reported_with_their_size_and_others_are_not() {
        let allocator = Reporting::new(Refusing);
        set_failure_reporter(Some(remember));
        let small = Layout::from_size_align(1024, 16).unwrap();
        let ptr = unsafe { allocator.alloc(small) };
        assert!(!ptr.is_null());
        assert_eq!(FAILED_SIZE.load(Ordering::SeqCst), 0, "a served allocation is not reported");
        let grown = unsafe { allocator.realloc(ptr, small, 4 << 20) };
        assert!(grown.is_null());
        assert_eq!(
            FAILED_SIZE.load(Ordering::SeqCst),
            4 << 20,
            "a refused realloc reports the new size"
        );
        assert_eq!(FAILED_ALIGN.load(Ordering::SeqCst), 16);
        unsafe { allocator.dealloc(ptr, small) };

        let huge = Layout::from_size_align(3 << 20, 8).unwrap();
        assert!(unsafe { allocator.alloc_zeroed(huge) }.is_null());
        assert_eq!(FAILED_SIZE.load(Ordering::SeqCst), 3 << 20);
        assert!(unsafe { allocator.alloc(Layout::from_size_align(5 << 20, 64).unwrap()) }.is_null());
        assert_eq!(
            (FAILED_SIZE.load(Ordering::SeqCst), FAILED_ALIGN.load(Ordering::SeqCst)),
            (5 << 20, 64)
        );

        set_failure_reporter(None);
        assert!(
            unsafe { allocator.alloc(huge) }.is_null(),
            "without a reporter the null is still returned"
        );
        assert_eq!(FAILED_SIZE.load(Ordering::SeqCst), 5 << 20, "and nothing is reported");
    }
}
