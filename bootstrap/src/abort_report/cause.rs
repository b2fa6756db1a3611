//! Why the process aborts, as each watched invocation is answered.

/// The cause an invocation is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An allocation of `size` bytes failed just before, on the thread that aborts.
    OutOfMemory { size: usize },
    /// Anything else: a C library's `abort()`, a Rust double panic, `std::process::abort()`,
    /// or an invocation in flight beside the one whose allocation failed.
    Aborted,
}

impl Cause {
    /// The `errorType`: Lambda's for a runtime that ran out of memory (which Datadog's
    /// Extension counts as `out_of_memory`), else Lambda's for a runtime that exited.
    pub fn error_type(self) -> &'static str {
        match self {
            Cause::OutOfMemory { .. } => "Runtime.OutOfMemory",
            Cause::Aborted => "Runtime.ExitError",
        }
    }
}
