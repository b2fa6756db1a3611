//! The timing loop: N sequential invokes per case over one keep-alive connection each, in
//! interleaved rounds so machine noise hits every case alike, every sample kept.
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::cases::{Answer, Case};
use crate::emulator::{EmulatorProcess, EmulatorStats, INVOKE_PATH};
use crate::http1::Connection;
use crate::memory::{self, GroupMemory};
use crate::BenchError;

/// The event every case gets: AWS's API Gateway (REST, proxy) sample event, 2.7 KB, carrying
/// `x-datadog-*` headers, so telemetry extracts the trace context and infers an
/// `aws.apigateway` span, as a real HTTP-triggered function does.
pub const EVENT: &[u8] = include_bytes!("../events/api-gateway.json");

const FUNCTION_ERROR_HEADER: &str = "x-amz-function-error";

/// How many invokes, in rounds of how many.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Plan {
    /// Timed invokes per case.
    pub invocations: usize,
    /// Invokes per case per round; cases alternate between rounds.
    pub round_size: usize,
    /// Untimed invokes per case before the first round (checked to echo the event).
    pub warmup: usize,
    /// Times the timed run is repeated, every case's emulator and runtime started afresh for
    /// each: a process runs a few per cent faster or slower for its whole life (its memory
    /// layout, we suspect), which alternating rounds within one process cannot average out.
    pub passes: usize,
}

impl Plan {
    pub fn rounds(&self) -> usize {
        self.invocations.div_ceil(self.round_size.max(1))
    }

    /// Invokes per case in round `round` (the last one takes the remainder).
    pub fn round_len(&self, round: usize) -> usize {
        let done = round * self.round_size;
        self.round_size.min(self.invocations.saturating_sub(done))
    }
}

/// Memory of the runtime's process group after some number of timed invokes (for RSS plots).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct MemoryPoint {
    pub invocations: usize,
    pub rss_kb: u64,
    pub peak_kb: u64,
}

/// One case under test: its emulator, the bench's connection to it, and what was measured.
pub struct Subject {
    pub case: Case,
    emulator: EmulatorProcess,
    connection: Connection,
    /// Client-side wall time of each timed invoke, in order, in nanoseconds.
    pub samples_ns: Vec<u64>,
    pub memory: Vec<MemoryPoint>,
}

impl Finished {
    /// Pools a later pass of the same case into this one: its latencies are added; memory stays
    /// this pass's (one process after the plan's invokes).
    pub fn absorb(&mut self, later: Finished) {
        self.pass_sizes.push(later.samples_ns.len());
        self.samples_ns.extend(later.samples_ns);
        // Each pass's process starts once; more is a restart within one, which the report flags.
        self.stats.runtime_starts = self.stats.runtime_starts.max(later.stats.runtime_starts);
    }
}

/// What a subject leaves when its run is over.
pub struct Finished {
    pub case: Case,
    pub samples_ns: Vec<u64>,
    /// How many of `samples_ns` each pass took, in order (one entry per pass).
    pub pass_sizes: Vec<usize>,
    pub memory: Vec<MemoryPoint>,
    pub final_memory: GroupMemory,
    pub stats: EmulatorStats,
}

impl Subject {
    /// Starts the case's emulator and runtime, then warms it up, checking that it echoes.
    pub fn start(emulator: &Path, case: &Case, plan: &Plan) -> Result<Self, BenchError> {
        case.check_prerequisites()?;
        let process = EmulatorProcess::start(emulator, case)?;
        let connection = process.connect()?;
        let mut subject = Self {
            case: case.clone(),
            emulator: process,
            connection,
            samples_ns: Vec::with_capacity(plan.invocations),
            memory: Vec::with_capacity(plan.rounds() + 1),
        };
        subject.warm_up(plan.warmup.max(1))?;
        Ok(subject)
    }

    fn warm_up(&mut self, count: usize) -> Result<(), BenchError> {
        let expected: serde_json::Value = match self.case.answer {
            Answer::Echo => serde_json::from_slice(EVENT),
            Answer::Json(text) => serde_json::from_str(text),
        }
        .unwrap_or_default();
        for _ in 0..count {
            let response = self
                .connection
                .request("POST", INVOKE_PATH, EVENT)
                .map_err(|source| BenchError::Http {
                    case: self.case.id.to_owned(),
                    source,
                })?;
            let echoed: Option<serde_json::Value> = serde_json::from_slice(response.body).ok();
            let function_error = response.header(FUNCTION_ERROR_HEADER).is_some();
            if response.status != 200 || function_error || echoed.as_ref() != Some(&expected) {
                return Err(bad_answer(
                    self.case.id,
                    response.status,
                    response.header(FUNCTION_ERROR_HEADER),
                    response.body,
                ));
            }
        }
        Ok(())
    }

    /// `count` timed invokes. Only the request and its answer are inside the clock; the answer
    /// is checked (status, no function error) outside it, without allocating.
    pub fn run(&mut self, count: usize) -> Result<(), BenchError> {
        for _ in 0..count {
            let started = Instant::now();
            let response = self.connection.request("POST", INVOKE_PATH, EVENT);
            let elapsed = started.elapsed();
            let response = response.map_err(|source| BenchError::Http {
                case: self.case.id.to_owned(),
                source,
            })?;
            if response.status != 200 || response.header(FUNCTION_ERROR_HEADER).is_some() {
                return Err(bad_answer(
                    self.case.id,
                    response.status,
                    response.header(FUNCTION_ERROR_HEADER),
                    response.body,
                ));
            }
            self.samples_ns.push(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(())
    }

    /// Notes the runtime group's memory now.
    pub fn record_memory(&mut self) -> Result<GroupMemory, BenchError> {
        let stats = self.emulator.stats(&mut self.connection)?;
        let pid = stats
            .runtime_pid
            .ok_or_else(|| self.emulator.down("no runtime is running".to_owned()))?;
        let memory = memory::process_group(pid).map_err(|err| self.emulator.down(format!("cannot read /proc: {err}")))?;
        self.memory.push(MemoryPoint {
            invocations: self.samples_ns.len(),
            rss_kb: memory.rss_kb,
            peak_kb: memory.peak_kb,
        });
        Ok(memory)
    }

    /// Final memory and stats, then the emulator is stopped.
    pub fn finish(mut self) -> Result<Finished, BenchError> {
        let final_memory = self.record_memory()?;
        let stats = self.emulator.stats(&mut self.connection)?;
        self.emulator.stop();
        Ok(Finished {
            case: self.case,
            pass_sizes: vec![self.samples_ns.len()],
            samples_ns: self.samples_ns,
            memory: self.memory,
            final_memory,
            stats,
        })
    }
}

/// Runs the plan's rounds over every subject, rotating which case goes first each round;
/// `progress(rounds_done)` is called after each round.
pub fn run_interleaved(subjects: &mut [Subject], plan: &Plan, mut progress: impl FnMut(usize, &[Subject])) -> Result<(), BenchError> {
    let count = subjects.len();
    for round in 0..plan.rounds() {
        let len = plan.round_len(round);
        for offset in 0..count {
            subjects[(round + offset) % count].run(len)?;
        }
        for subject in subjects.iter_mut() {
            subject.record_memory()?;
        }
        progress(round + 1, subjects);
    }
    Ok(())
}

/// Issue 7's slow-intake pair: one invoke per subject in turn, `count` times, each subject's
/// invokes `gap` apart so the runtime's flush after each response is over before its next
/// invoke (the figure is then the caller's response latency alone, not the runtime's
/// throughput). The subjects share the gap: with two, one is invoked every `gap / 2`, so a
/// run of the same length holds twice the samples (a p50 of 100 invokes with this spread
/// moved by 10 % between runs).
pub fn run_paced(
    subjects: &mut [Subject],
    count: usize,
    gap: std::time::Duration,
    mut progress: impl FnMut(usize),
) -> Result<(), BenchError> {
    let step = count.div_ceil(10).max(1);
    let turn = gap / u32::try_from(subjects.len().max(1)).unwrap_or(1);
    for done in 1..=count {
        for subject in subjects.iter_mut() {
            std::thread::sleep(turn);
            subject.run(1)?;
        }
        if done % step == 0 || done == count {
            progress(done);
        }
    }
    Ok(())
}

fn bad_answer(case: &str, status: u16, function_error: Option<&[u8]>, body: &[u8]) -> BenchError {
    const SHOWN: usize = 2_000;
    let body = String::from_utf8_lossy(&body[..body.len().min(SHOWN)]).into_owned();
    BenchError::BadAnswer {
        case: case.to_owned(),
        status,
        function_error: function_error.map_or_else(
            || "(not a function error; the echo differs)".to_owned(),
            |v| format!("X-Amz-Function-Error: {}", String::from_utf8_lossy(v)),
        ),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_cover_every_invocation_once() {
        let plan = Plan {
            invocations: 1_050,
            round_size: 100,
            warmup: 0,
            passes: 1,
        };
        assert_eq!(plan.rounds(), 11);
        let total: usize = (0..plan.rounds()).map(|r| plan.round_len(r)).sum();
        assert_eq!(total, 1_050);
        assert_eq!(plan.round_len(10), 50);
    }

    #[test]
    fn the_event_is_json() {
        assert!(serde_json::from_slice::<serde_json::Value>(EVENT).is_ok());
    }
}
