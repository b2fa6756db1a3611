//! Fault injection for test suites (the hidden `--fault KIND[@N]` flag): the emulator misbehaves
//! on purpose for one invocation, so a runtime's handling of a broken Runtime API can be tested
//! against the real emulator instead of a mock.
//!
//! `N` is the invocation's number in the order the runtime takes them from `/next`, counting
//! from 1 (the default) over the emulator's whole life. Each fault fires once.
//!
//! | kind | what the runtime sees |
//! |---|---|
//! | `next-missing-request-id` | one extra `/next` answer without `Lambda-Runtime-Aws-Request-Id` (it belongs to no invoke and cannot be answered), then invocation N intact on the following `/next` |
//! | `next-bad-deadline` | invocation N with `Lambda-Runtime-Deadline-Ms: soon` |
//! | `next-bad-client-context` | invocation N with a `Lambda-Runtime-Client-Context` that is not JSON |
//! | `reset-next` | the `/next` that would hand over invocation N is dropped without an answer; invocation N stays queued for the next `/next` |
//! | `reset-response` | the first `/response` or `/error` for invocation N is dropped without being read or answered; the invocation stays unanswered (a retry is accepted, else it times out) |
use std::fmt;
use std::str::FromStr;

/// One way of misbehaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    NextMissingRequestId,
    NextBadDeadline,
    NextBadClientContext,
    ResetNext,
    ResetResponse,
}

impl FaultKind {
    const ALL: [(FaultKind, &'static str); 5] = [
        (FaultKind::NextMissingRequestId, "next-missing-request-id"),
        (FaultKind::NextBadDeadline, "next-bad-deadline"),
        (FaultKind::NextBadClientContext, "next-bad-client-context"),
        (FaultKind::ResetNext, "reset-next"),
        (FaultKind::ResetResponse, "reset-response"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(kind, _)| *kind == self).map_or("", |(_, name)| name)
    }

    /// Faults that fire before the invocation leaves the queue (it is handed over later).
    pub fn before_dispatch(self) -> bool {
        matches!(self, FaultKind::NextMissingRequestId | FaultKind::ResetNext)
    }
}

/// A fault and the invocation it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// 1-based, in `/next` order.
    pub invocation: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.kind.name(), self.invocation)
    }
}

impl FromStr for Fault {
    type Err = String;

    /// `KIND` or `KIND@N`.
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let (name, number) = match raw.split_once('@') {
            Some((name, number)) => (name, Some(number)),
            None => (raw, None),
        };
        let kind = FaultKind::ALL
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
            .ok_or_else(|| {
                let known: Vec<&str> = FaultKind::ALL.iter().map(|(_, n)| *n).collect();
                format!("unknown fault {name:?}; known faults: {}", known.join(", "))
            })?;
        let invocation = match number {
            None => 1,
            Some(n) => match n.parse::<u64>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(format!("{raw:?}: the invocation number after @ must be 1 or more")),
            },
        };
        Ok(Fault { kind, invocation })
    }
}

/// Returned by a route instead of a response: hyper then closes the connection without
/// answering, which the client sees as a reset.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped on purpose (fault injection)")]
pub struct DropConnection;

/// The faults still to fire.
#[derive(Debug, Default)]
pub struct FaultPlan {
    pending: Vec<Fault>,
}

impl FaultPlan {
    pub fn new(faults: &[Fault]) -> Self {
        Self { pending: faults.to_vec() }
    }

    /// Removes and returns the first pending fault for `invocation` that `select` accepts.
    pub fn take(&mut self, invocation: u64, select: impl Fn(FaultKind) -> bool) -> Option<FaultKind> {
        let index = self
            .pending
            .iter()
            .position(|fault| fault.invocation == invocation && select(fault.kind))?;
        Some(self.pending.remove(index).kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kind_and_optional_invocation_number() {
        let fault: Fault = "reset-next".parse().unwrap();
        assert_eq!(
            fault,
            Fault {
                kind: FaultKind::ResetNext,
                invocation: 1
            }
        );
        let fault: Fault = "next-bad-deadline@3".parse().unwrap();
        assert_eq!((fault.kind, fault.invocation), (FaultKind::NextBadDeadline, 3));
        assert_eq!(fault.to_string(), "next-bad-deadline@3");
        assert!("next-bad-deadline@0".parse::<Fault>().unwrap_err().contains("1 or more"));
        let unknown = "explode".parse::<Fault>().unwrap_err();
        assert!(unknown.contains("explode") && unknown.contains("reset-response"), "{unknown}");
    }

    #[test]
    fn each_fault_fires_once_for_its_invocation() {
        let mut plan = FaultPlan::new(&["reset-next@2".parse().unwrap(), "next-bad-deadline@2".parse().unwrap()]);
        assert_eq!(plan.take(1, |_| true), None);
        assert_eq!(plan.take(2, FaultKind::before_dispatch), Some(FaultKind::ResetNext));
        assert_eq!(plan.take(2, FaultKind::before_dispatch), None);
        assert_eq!(plan.take(2, |k| !k.before_dispatch()), Some(FaultKind::NextBadDeadline));
        assert_eq!(plan.take(2, |_| true), None);
    }
}
