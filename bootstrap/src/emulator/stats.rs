//! Counters for the reliability suite, served at `GET /2015-03-31/emulator/stats`.
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Live counters; every field only grows.
#[derive(Debug, Default)]
pub struct Stats {
    invokes_received: AtomicU64,
    answers_delivered: AtomicU64,
    answers_refused: AtomicU64,
    function_errors: AtomicU64,
    timeouts: AtomicU64,
    runtime_starts: AtomicU64,
    runtime_exits: AtomicU64,
    init_errors: AtomicU64,
    responses_too_large: AtomicU64,
    faults_injected: AtomicU64,
}

/// One reading of the counters, as the stats endpoint serves it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Invoke API requests received.
    pub invokes_received: u64,
    /// Runtime answers (`/response` or `/error`) accepted and handed to an invoke.
    pub answers_delivered: u64,
    /// `/response` or `/error` refused with 400: an unknown, already answered or timed-out id.
    pub answers_refused: u64,
    /// Invokes answered with `X-Amz-Function-Error` (function errors, timeouts, exits, init errors).
    pub function_errors: u64,
    pub timeouts: u64,
    pub runtime_starts: u64,
    /// Runtime exits that were not asked for (a crash, `exit`, an OOM kill).
    pub runtime_exits: u64,
    pub init_errors: u64,
    pub responses_too_large: u64,
    /// Faults injected on purpose (`--fault`).
    #[serde(default)]
    pub faults_injected: u64,
    /// The current runtime's process id (its process group leader); `None` when none runs.
    #[serde(default)]
    pub runtime_pid: Option<u32>,
    /// Microseconds from spawning the current runtime to its first `/next`: its cold start as
    /// the Runtime API sees it. `None` until that `/next` arrives.
    #[serde(default)]
    pub first_next_after_start_us: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub enum Counter {
    InvokesReceived,
    AnswersDelivered,
    AnswersRefused,
    FunctionErrors,
    Timeouts,
    RuntimeStarts,
    RuntimeExits,
    InitErrors,
    ResponsesTooLarge,
    FaultsInjected,
}

impl Stats {
    pub fn add(&self, counter: Counter) {
        self.cell(counter).fetch_add(1, Ordering::Relaxed);
    }

    fn cell(&self, counter: Counter) -> &AtomicU64 {
        match counter {
            Counter::InvokesReceived => &self.invokes_received,
            Counter::AnswersDelivered => &self.answers_delivered,
            Counter::AnswersRefused => &self.answers_refused,
            Counter::FunctionErrors => &self.function_errors,
            Counter::Timeouts => &self.timeouts,
            Counter::RuntimeStarts => &self.runtime_starts,
            Counter::RuntimeExits => &self.runtime_exits,
            Counter::InitErrors => &self.init_errors,
            Counter::ResponsesTooLarge => &self.responses_too_large,
            Counter::FaultsInjected => &self.faults_injected,
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let read = |c: Counter| self.cell(c).load(Ordering::Relaxed);
        StatsSnapshot {
            invokes_received: read(Counter::InvokesReceived),
            answers_delivered: read(Counter::AnswersDelivered),
            answers_refused: read(Counter::AnswersRefused),
            function_errors: read(Counter::FunctionErrors),
            timeouts: read(Counter::Timeouts),
            runtime_starts: read(Counter::RuntimeStarts),
            runtime_exits: read(Counter::RuntimeExits),
            init_errors: read(Counter::InitErrors),
            responses_too_large: read(Counter::ResponsesTooLarge),
            faults_injected: read(Counter::FaultsInjected),
            runtime_pid: None,
            first_next_after_start_us: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_independent() {
        let stats = Stats::default();
        stats.add(Counter::InvokesReceived);
        stats.add(Counter::InvokesReceived);
        stats.add(Counter::AnswersRefused);
        let snap = stats.snapshot();
        assert_eq!(snap.invokes_received, 2);
        assert_eq!(snap.answers_refused, 1);
        assert_eq!(snap.answers_delivered, 0);
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["invokes_received"], 2);
    }
}
