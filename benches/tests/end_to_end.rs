//! The bench's pipeline against the real `lambda-emulator` (built by `scripts/test.sh`'s
//! `cargo build --workspace --all-targets`) and the real `bare-loop` runtime.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::path::PathBuf;

use benches::cases::{Answer, Case, CaseGoals};
use benches::timing::{self, Plan, Subject};
use benches::{cold_start, BenchError};

/// `lambda-emulator` from the same target directory as this test's `bare-loop`.
fn emulator() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_BIN_EXE_bare-loop")).parent().unwrap().to_path_buf();
    let path = dir.join("lambda-emulator");
    assert!(
        path.exists(),
        "{} is missing; build it first: cargo build -p bootstrap --bin lambda-emulator",
        path.display()
    );
    path
}

fn case(id: &'static str, command: &str) -> Case {
    Case {
        id,
        title: "under test",
        command: vec![command.into()],
        env: Vec::new(),
        task_root: std::env::temp_dir(),
        goals: CaseGoals::default(),
        prerequisites: Vec::new(),
        answer: Answer::Echo,
        intake_delay_ms: None,
        paced: false,
    }
}

#[test]
fn two_cases_alternate_and_every_invoke_is_timed_and_counted() {
    let plan = Plan {
        invocations: 25,
        round_size: 10,
        warmup: 3,
        passes: 1,
    };
    let bare_loop = env!("CARGO_BIN_EXE_bare-loop");
    let mut subjects = vec![
        Subject::start(&emulator(), &case("x", bare_loop), &plan).unwrap(),
        Subject::start(&emulator(), &case("y", bare_loop), &plan).unwrap(),
    ];
    let mut seen = Vec::new();
    timing::run_interleaved(&mut subjects, &plan, |done, subjects| {
        seen.push((done, subjects.iter().map(|s| s.samples_ns.len()).collect::<Vec<_>>()));
    })
    .unwrap();
    assert_eq!(seen, vec![(1, vec![10, 10]), (2, vec![20, 20]), (3, vec![25, 25])]);

    for subject in subjects {
        let finished = subject.finish().unwrap();
        assert_eq!(finished.samples_ns.len(), 25);
        assert!(finished.samples_ns.iter().all(|&ns| ns > 0));
        assert_eq!(finished.stats.invokes_received, 28, "warm-up and timed invokes");
        assert_eq!(finished.stats.function_errors, 0);
        assert_eq!(finished.stats.runtime_starts, 1);
        assert_eq!(finished.final_memory.processes, 1);
        assert!(finished.final_memory.peak_kb > 0);
        // One point per round, plus the final reading.
        let counts: Vec<usize> = finished.memory.iter().map(|m| m.invocations).collect();
        assert_eq!(counts, vec![10, 20, 25, 25]);
    }
}

#[test]
fn a_second_pass_runs_a_fresh_process_and_pools_its_latencies() {
    let plan = Plan {
        invocations: 12,
        round_size: 6,
        warmup: 2,
        passes: 2,
    };
    let bare_loop = env!("CARGO_BIN_EXE_bare-loop");
    let mut passes = Vec::new();
    for _ in 0..plan.passes {
        let mut subjects = vec![Subject::start(&emulator(), &case("x", bare_loop), &plan).unwrap()];
        timing::run_interleaved(&mut subjects, &plan, |_, _| {}).unwrap();
        passes.push(subjects.pop().unwrap().finish().unwrap());
    }
    let second = passes.pop().unwrap();
    let mut first = passes.pop().unwrap();
    let (first_pid, second_pid) = (first.stats.runtime_pid, second.stats.runtime_pid);
    assert!(first_pid.is_some() && first_pid != second_pid, "{first_pid:?} {second_pid:?}");
    let first_memory: Vec<usize> = first.memory.iter().map(|m| m.invocations).collect();
    first.absorb(second);
    assert_eq!(first.samples_ns.len(), 24, "both passes' latencies");
    assert_eq!(first.pass_sizes, [12, 12]);
    assert_eq!(first.stats.runtime_starts, 1, "one start per process is no restart");
    let memory: Vec<usize> = first.memory.iter().map(|m| m.invocations).collect();
    assert_eq!(memory, first_memory, "memory stays the first process's");
}

#[test]
fn cold_starts_come_from_fresh_runtimes() {
    let samples = cold_start::measure(&emulator(), &[case("x", env!("CARGO_BIN_EXE_bare-loop"))], 3, |_| {}).unwrap();
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].len(), 3);
    assert!(samples[0].iter().all(|d| !d.is_zero()), "{samples:?}");
}

#[test]
fn a_runtime_that_does_not_echo_is_refused_with_the_answer() {
    // `true` exits at once: the warm-up invoke gets Runtime.ExitError.
    let plan = Plan {
        invocations: 1,
        round_size: 1,
        warmup: 1,
        passes: 1,
    };
    let Err(err) = Subject::start(&emulator(), &case("z", "true"), &plan) else {
        panic!("a runtime that exits was accepted");
    };
    assert!(matches!(err, BenchError::BadAnswer { .. }), "{err}");
    assert!(err.to_string().contains("Runtime.ExitError"), "{err}");
}
