//! Why the process ends, as each watched invocation is answered.

/// The cause an invocation is answered with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// An allocation of `size` bytes failed just before, on the thread that aborts.
    OutOfMemory { size: usize },
    /// The thread overflowed its stack: std printed so and aborted (`SIGABRT`).
    StackOverflow,
    /// Anything else that aborts: a C library's `abort()`, a Rust double panic,
    /// `std::process::abort()`, or an invocation in flight beside the one whose allocation
    /// failed or whose stack overflowed.
    Aborted,
    /// A fault that kills the process with this signal: `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE`.
    Fault(Fault),
}

/// The faults reported besides `SIGABRT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Segmentation,
    Bus,
    IllegalInstruction,
    FloatingPoint,
}

impl Fault {
    pub const ALL: [Fault; 4] = [Fault::Segmentation, Fault::Bus, Fault::IllegalInstruction, Fault::FloatingPoint];

    pub fn from_signal(signal: libc::c_int) -> Option<Self> {
        Self::ALL.into_iter().find(|fault| fault.signal() == signal)
    }

    pub fn signal(self) -> libc::c_int {
        match self {
            Fault::Segmentation => libc::SIGSEGV,
            Fault::Bus => libc::SIGBUS,
            Fault::IllegalInstruction => libc::SIGILL,
            Fault::FloatingPoint => libc::SIGFPE,
        }
    }

    /// The signal as Lambda names it after `signal: ` (Go's names, as `process_exit` has them).
    pub fn description(self) -> &'static str {
        match self {
            Fault::Segmentation => "segmentation fault",
            Fault::Bus => "bus error",
            Fault::IllegalInstruction => "illegal instruction",
            Fault::FloatingPoint => "floating point exception",
        }
    }

    /// The signal's own name, for the log line.
    pub fn signal_name(self) -> &'static str {
        match self {
            Fault::Segmentation => "SIGSEGV",
            Fault::Bus => "SIGBUS",
            Fault::IllegalInstruction => "SIGILL",
            Fault::FloatingPoint => "SIGFPE",
        }
    }
}

impl Cause {
    /// The `errorType`: Lambda's for a runtime that ran out of memory (which Datadog's
    /// Extension counts as `out_of_memory`), else Lambda's for a runtime that exited.
    pub fn error_type(self) -> &'static str {
        match self {
            Cause::OutOfMemory { .. } => "Runtime.OutOfMemory",
            Cause::StackOverflow | Cause::Aborted | Cause::Fault(_) => "Runtime.ExitError",
        }
    }

    /// How the process dies, after `signal: ` in Lambda's message.
    pub fn signal_description(self) -> &'static str {
        match self {
            Cause::OutOfMemory { .. } | Cause::StackOverflow | Cause::Aborted => "aborted",
            Cause::Fault(fault) => fault.description(),
        }
    }

    /// The cause of an invocation in flight beside the one that failed: the process ends with
    /// the same signal, but the failed allocation or the overflowed stack is not its own.
    pub fn for_bystander(self) -> Self {
        match self {
            Cause::OutOfMemory { .. } | Cause::StackOverflow => Cause::Aborted,
            Cause::Aborted | Cause::Fault(_) => self,
        }
    }

    /// Two integers, for the atomics of a slot: `(kind, detail)`; kind 0 is taken by "none".
    pub fn encode(self) -> (u8, usize) {
        match self {
            Cause::Aborted => (1, 0),
            Cause::OutOfMemory { size } => (2, size),
            Cause::StackOverflow => (3, 0),
            Cause::Fault(fault) => (4, fault.signal() as usize),
        }
    }

    /// What [`Cause::encode`] made; `Aborted` for anything else.
    pub fn decode(kind: u8, detail: usize) -> Self {
        match kind {
            2 => Cause::OutOfMemory { size: detail },
            3 => Cause::StackOverflow,
            4 => libc::c_int::try_from(detail)
                .ok()
                .and_then(Fault::from_signal)
                .map_or(Cause::Aborted, Cause::Fault),
            _ => Cause::Aborted,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;
    use crate::process_exit::describe_exit;

    #[test]
    fn descriptions_are_the_ones_lambda_gives_a_process_killed_by_the_signal() {
        for fault in Fault::ALL {
            let status = std::process::ExitStatus::from_raw(fault.signal());
            assert_eq!(describe_exit(status), format!("signal: {}", fault.description()));
            assert_eq!(Fault::from_signal(fault.signal()), Some(fault));
        }
        let aborted = std::process::ExitStatus::from_raw(libc::SIGABRT);
        assert_eq!(
            describe_exit(aborted),
            format!("signal: {}", Cause::StackOverflow.signal_description())
        );
        assert_eq!(Fault::from_signal(libc::SIGABRT), None);
    }

    #[test]
    fn causes_survive_their_encoding_and_bystanders_die_of_the_signal() {
        let all = [
            Cause::Aborted,
            Cause::OutOfMemory { size: 1 << 40 },
            Cause::StackOverflow,
            Cause::Fault(Fault::Bus),
            Cause::Fault(Fault::FloatingPoint),
        ];
        for cause in all {
            let (kind, detail) = cause.encode();
            assert_eq!(Cause::decode(kind, detail), cause);
            assert_eq!(cause.for_bystander().signal_description(), cause.signal_description());
        }
        assert_eq!(Cause::decode(0, 0), Cause::Aborted);
        assert_eq!(Cause::decode(4, 9999), Cause::Aborted);
        assert_eq!(Cause::StackOverflow.for_bystander(), Cause::Aborted);
        assert_eq!(Cause::Fault(Fault::Segmentation).for_bystander(), Cause::Fault(Fault::Segmentation));
        assert_eq!(Cause::Fault(Fault::IllegalInstruction).error_type(), "Runtime.ExitError");
    }
}
