//! `sdk::logging` writes a record without allocating once its thread's line buffer has grown:
//! counted with an allocator that tallies this thread's allocations. A binary of its own, so
//! the counting allocator sees nothing but this test.
//!
//! The records go to the test's real stdout (three short lines in the test output).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    // `const` and without a destructor: usable from inside the allocator.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the count is a side effect.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn a_record_costs_no_allocation_once_the_buffer_is_warm() {
    for format in [sdk::logging::LogFormat::Text, sdk::logging::LogFormat::Json] {
        let logger = sdk::logging::Builder::from_lookup(|_| None).format(format).build();
        // `Context` is non-exhaustive: built as a handler would receive it, then named.
        let mut context = sdk::Context::default();
        "8476a536-e9f4-11e8-9739-2dfe598c3fcd".clone_into(&mut context.request_id);
        sdk::logging::scope(&context, || {
            let order = 42;
            let record = |message: std::fmt::Arguments<'_>| {
                log::Log::log(
                    &logger,
                    &log::Record::builder()
                        .level(log::Level::Info)
                        .target("allocation_test")
                        .args(message)
                        .build(),
                );
            };
            // Warm up: the line buffer, stdout's buffer, the trace lookup of the invocation.
            record(format_args!("warming up with a message longer than the ones measured below"));
            let before = allocations();
            record(format_args!("order {order} placed"));
            record(format_args!("order {order} shipped\nin two parts"));
            assert_eq!(allocations() - before, 0, "{format:?}");
        });
    }
}
