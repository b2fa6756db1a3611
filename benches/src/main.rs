//! `bench`: our `bootstrap` against what a user would pick instead, side by side in one run.
//!
//! ```text
//! cargo build --release --workspace && target/release/bench [--invocations N] [--quick] [--out bench-results]
//! # or, once the workspace is built:
//! cargo run --release -p benches --bin bench -- [--invocations N] [--quick] [--out bench-results]
//! ```
//!
//! It builds nothing itself (so it measures exactly the binaries you built): it needs
//! `target/release/{lambda-emulator, bootstrap, libhandlers_example.so, lambda-runtime-echo,
//! bare-loop}` and says which is missing. Everything runs on 127.0.0.1.
//!
//! For each case (default: all of them; see `--cases` and `src/cases.rs`), a `lambda-emulator`
//! runs the case's runtime (its stdout, the telemetry lines, straight to /dev/null), and the
//! bench sends N sequential invokes (default 10 000, `--quick` 1 000) of AWS's API Gateway
//! sample event (2.7 KB, with `x-datadog-*` headers, so tracing infers an `aws.apigateway`
//! span) over one keep-alive connection, after an untimed warm-up that checks the answer:
//! - (a) `bootstrap` + the `echo` export of `libhandlers_example.so`, all telemetry on
//!   (Forwarder mode: enhanced metrics, tracing, logs injection); `a-off` all off; `a-raw` the
//!   `raw_echo` export (the event's bytes back, no JSON parse in the handler), all on;
//!   `a-metrics` enhanced metrics only; `a-tracing` tracing only; `a-custom` the `metric`
//!   export (one custom metric per invoke, tags rotating over 100 sets) with all on; `a-api`
//!   enhanced metrics in Datadog API mode against a local intake (run with the others);
//!   `a-api-custom` the same with the `metric` export (one custom metric per invoke, posted to
//!   the intake as `DD_SERVERLESS_FLUSH_STRATEGY` says);
//! - (b) `lambda-runtime-echo`, AWS's `lambda_runtime` crate, run directly by the emulator;
//! - (c) `bare-loop`, a runtime that only does `/next` -> `/response` (the floor);
//! - (d) `lambda-runtime-echo` behind our bootstrap (exec mode), telemetry on;
//! - (e) the awslambdaric echo behind our bootstrap, telemetry on; `e-direct` run directly;
//!   (f) the same handler wrapped by datadog-lambda, telemetry on (needs `.venv`,
//!   `scripts/setup-peers.sh`, or `--python`);
//! - `api-fast` / `api-slow`: the `metric` export in Datadog API mode, `DATADOG_HOST` pointing
//!   at a local intake the bench starts, answering at once / after 200 ms. These two run
//!   apart, paced (each case's invokes 300 ms apart, the two cases in turn,
//!   `--paced-invocations`, default 200), so the figure is the caller's response latency alone.
//!
//! The cases alternate in rounds of N/10 invokes (the first case rotates each round), so
//! machine noise hits them alike; a progress line goes to stderr after each round, and RSS is
//! sampled after each. `--long`: 100 000 invokes of case a in 100 rounds, the RSS slope
//! reported (KB per 10k invokes).
//!
//! Printed (stdout) and written to `<out>/results.json`: per case the client-side mean, p50 and
//! p99 per invoke; the ratios (see `cases::comparisons`) judged on the mean and on the p50
//! against the issues' goals; the cold start, median over `--cold-starts` fresh runtimes
//! (default 20, `--quick` 5) of the time from the runtime's spawn to its first `/next`, measured
//! by the emulator (`first_next_after_start_us` in its stats); the peak RSS (VmHWM summed over
//! the runtime's process group) after the N invokes; and the stripped size of
//! `target/release/bootstrap`. Plots (SVG) go to `<out>/` too (see `src/plot.rs`). `--samples`
//! also writes every per-invoke time, `<out>/samples-<case>.csv`.
//!
//! A case that fails to start or to answer is skipped with its reason; the others still run.
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use benches::cases::{self, Layout};
use benches::intake::Intake;
use benches::report::{self, CaseResult, Results, SkippedCase};
use benches::timing::{self, Finished, Plan, Subject, EVENT};
use benches::{cold_start, machine, plot, summary, BenchError};

/// The pause before each invoke of the slow-intake pair: longer than the slow intake's 200 ms,
/// so the previous invoke's flush is over.
const PACING_GAP: Duration = Duration::from_millis(300);
use clap::Parser;

/// Side-by-side Lambda runtime benchmark through lambda-emulator (see the crate docs).
#[derive(Parser, Debug)]
#[command(name = "bench")]
struct Cli {
    /// Timed invokes per case [default: 10000; with --quick: 1000].
    #[arg(long)]
    invocations: Option<usize>,
    /// A short run: 1 000 invokes and 5 cold starts per case (unless given explicitly).
    #[arg(long)]
    quick: bool,
    /// Where results.json (and the samples) go.
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// Cases to run, comma separated [default: every case; with --long: a]. Known: a, a-off,
    /// a-raw, a-metrics, a-tracing, a-custom, a-api, a-api-custom, b, c, d, d-off, d-relay, e, e-direct, f, api-fast, api-slow.
    #[arg(long, value_delimiter = ',')]
    cases: Option<Vec<String>>,
    /// The memory-growth run: 100 000 invokes of case a (unless --cases / --invocations say
    /// otherwise), RSS sampled every 1 000, the slope reported.
    #[arg(long)]
    long: bool,
    /// Rounds the invokes are split into (RSS is sampled after each) [default: 10; --long: 100].
    #[arg(long)]
    rounds: Option<usize>,
    /// Times the timed run is repeated with every case's processes started afresh; latencies
    /// are pooled over the passes, memory is the first pass's [default: 3; --quick, --long: 1].
    #[arg(long)]
    passes: Option<usize>,
    /// Invokes per case of the paced slow-intake pair (api-fast, api-slow) [default: 200;
    /// --quick: 20]; each case's invokes are 300 ms apart, the two cases in turn.
    #[arg(long)]
    paced_invocations: Option<usize>,
    /// Write no plots.
    #[arg(long)]
    no_plots: bool,
    /// Fresh starts per case for the cold start (0 skips it).
    #[arg(long)]
    cold_starts: Option<usize>,
    /// Untimed invokes per case before timing.
    #[arg(long)]
    warmup: Option<usize>,
    /// Write every per-invoke time to <out>/samples-<case>.csv.
    #[arg(long)]
    samples: bool,
    /// The directory of the built binaries [default: the directory of this bench binary].
    #[arg(long)]
    release_dir: Option<PathBuf>,
    /// The Python with awslambdaric (cases e, e-direct, f) [default: <repo>/.venv/bin/python].
    #[arg(long)]
    python: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), BenchError> {
    let default_invocations = match (cli.long, cli.quick) {
        (true, _) => 100_000,
        (false, true) => 1_000,
        (false, false) => 10_000,
    };
    let invocations = cli.invocations.unwrap_or(default_invocations);
    let rounds = cli.rounds.unwrap_or(if cli.long { 100 } else { 10 }).max(1);
    let plan = Plan {
        invocations,
        round_size: invocations.div_ceil(rounds).max(1),
        warmup: cli.warmup.unwrap_or(if cli.quick { 50 } else { 200 }),
        passes: cli.passes.unwrap_or(if cli.quick || cli.long { 1 } else { 3 }).max(1),
    };
    let paced_invocations = cli.paced_invocations.unwrap_or(if cli.quick { 20 } else { 200 });
    let case_ids: Vec<String> = cli.cases.clone().unwrap_or_else(|| {
        let ids: &[&str] = if cli.long { &["a"] } else { cases::DEFAULT_CASES };
        ids.iter().map(|s| (*s).to_owned()).collect()
    });
    let cold_starts = cli.cold_starts.unwrap_or(if cli.quick || cli.long { 5 } else { 20 });
    let layout = layout(cli);
    let emulator = layout.emulator();
    if !emulator.exists() {
        return Err(BenchError::MissingBinary { path: emulator });
    }
    let selected = cases::select(&cases::catalogue(&layout), &case_ids)?;
    let machine = machine::describe();
    let date_utc = machine::utc_now();

    eprintln!("[bench] starting {} case(s): {}", selected.len(), case_ids.join(", "));
    let mut intakes = Vec::new();
    let mut prepared = Vec::new();
    for case in &selected {
        let mut case = case.clone();
        if let Some(delay_ms) = case.intake_delay_ms {
            let intake = Intake::start(Duration::from_millis(delay_ms)).map_err(BenchError::Intake)?;
            case.env.push(("DATADOG_HOST".to_owned(), intake.url()));
            intakes.push((case.id, intake));
        }
        prepared.push(case);
    }

    let mut skipped = Vec::new();
    let mut finished: Vec<Finished> = Vec::new();
    let started = Instant::now();
    let rounds = plan.rounds();
    for pass in 0..plan.passes {
        let mut subjects = Vec::new();
        let mut paced = Vec::new();
        for case in &prepared {
            // The paced pair measures latency alone, once; a case that could not start is out.
            if (case.paced && pass > 0) || skipped.iter().any(|s: &SkippedCase| s.id == case.id) {
                continue;
            }
            match Subject::start(&emulator, case, &plan) {
                Ok(subject) if case.paced => paced.push(subject),
                Ok(subject) => subjects.push(subject),
                Err(err) if pass == 0 => {
                    eprintln!("[bench] skipping case {}: {err}", case.id);
                    skipped.push(SkippedCase {
                        id: case.id.to_owned(),
                        title: case.title.to_owned(),
                        reason: err.to_string(),
                    });
                }
                Err(err) => return Err(err),
            }
        }
        timing::run_interleaved(&mut subjects, &plan, |done, subjects| {
            let p50s: Vec<String> = subjects
                .iter()
                .map(|s| {
                    let last = &s.samples_ns[s.samples_ns.len().saturating_sub(plan.round_size)..];
                    format!("{} {:.1} µs", s.case.id, summary::latency(last).p50_us)
                })
                .collect();
            eprintln!(
                "[bench] pass {}/{} {:>3}% {} invokes per case, {:.1} s (last round p50: {})",
                pass + 1,
                plan.passes,
                done * 100 / rounds.max(1),
                subjects.first().map_or(0, |s| s.samples_ns.len()),
                started.elapsed().as_secs_f64(),
                p50s.join(", ")
            );
        })?;
        if !paced.is_empty() {
            eprintln!(
                "[bench] slow-intake pair: {paced_invocations} paced invokes per case, each case's {} ms apart",
                PACING_GAP.as_millis()
            );
            timing::run_paced(&mut paced, paced_invocations, PACING_GAP, |done| {
                eprintln!("[bench] paced {done}/{paced_invocations}");
            })?;
        }
        for run in subjects.into_iter().chain(paced) {
            let run = run.finish()?;
            match finished.iter_mut().find(|f| f.case.id == run.case.id) {
                Some(first) => first.absorb(run),
                None => finished.push(run),
            }
        }
    }

    // The API-mode cases start as case a does: their cold start adds nothing.
    let ran: Vec<cases::Case> = finished
        .iter()
        .filter(|f| f.case.intake_delay_ms.is_none())
        .map(|f| f.case.clone())
        .collect();
    let cold = if cold_starts > 0 && !ran.is_empty() {
        eprintln!("[bench] cold starts: {cold_starts} fresh runtime(s) per case");
        let step = cold_starts.div_ceil(10);
        cold_start::measure(&emulator, &ran, cold_starts, |done| {
            if done % step == 0 || done == cold_starts {
                eprintln!("[bench] cold starts {done}/{cold_starts}");
            }
        })?
    } else {
        vec![Vec::new(); ran.len()]
    };

    let mut cold = ran.iter().map(|c| c.id).zip(cold).collect::<std::collections::HashMap<_, _>>();
    let mut results_cases = Vec::new();
    let mut samples = Vec::new();
    for run in finished {
        let cold = cold.remove(run.case.id).unwrap_or_default();
        samples.push((run.case.id.to_owned(), run.samples_ns.clone()));
        let samples_file = if cli.samples {
            Some(report::write_samples(&cli.out, run.case.id, &run.samples_ns)?.display().to_string())
        } else {
            None
        };
        let slope_points: Vec<(f64, f64)> = run.memory.iter().map(|m| (m.invocations as f64, m.rss_kb as f64)).collect();
        results_cases.push(CaseResult {
            id: run.case.id.to_owned(),
            title: run.case.title.to_owned(),
            command: run.case.command.iter().map(|a| a.to_string_lossy().into_owned()).collect(),
            env: run.case.env.iter().cloned().collect(),
            latency: summary::latency(&run.samples_ns),
            pass_latency: {
                let mut rest = run.samples_ns.as_slice();
                run.pass_sizes
                    .iter()
                    .map(|&size| {
                        let (pass, later) = rest.split_at(size.min(rest.len()));
                        rest = later;
                        summary::latency(pass)
                    })
                    .collect()
            },
            cold_start: summary::cold_start(&cold),
            peak_rss_kb: run.final_memory.peak_kb,
            rss_kb: run.final_memory.rss_kb,
            processes: run.final_memory.processes,
            memory_over_run: run.memory,
            rss_slope_kb_per_10k: summary::slope(&slope_points).map(|s| s * 10_000.0),
            runtime_starts: run.stats.runtime_starts,
            intake_requests: intakes
                .iter()
                .find(|(id, _)| *id == run.case.id)
                .map(|(_, intake)| intake.requests()),
            goals: run.case.goals,
            samples_file,
        });
    }

    let results = Results {
        schema_version: 1,
        date_utc,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        git_commit: machine::git_commit(&layout.repo_root),
        machine,
        plan,
        cold_starts_per_case: cold_starts,
        event_bytes: EVENT.len(),
        ratios: report::ratios(&results_cases, &cases::comparisons()),
        cases: results_cases,
        skipped,
        bootstrap_binary: machine::binary_size(&layout.release("bootstrap")),
        bootstrap_size_goal_max_mb: report::BOOTSTRAP_SIZE_GOAL_MB,
    };
    print!("{}", report::table(&results));
    let path = report::write_json(&cli.out, &results)?;
    eprintln!("[bench] wrote {}", path.display());
    if !cli.no_plots {
        for path in plot::write_all(&cli.out, &results, &samples)? {
            eprintln!("[bench] wrote {}", path.display());
        }
    }
    Ok(())
}

/// The built binaries sit next to this one (`target/release/bench`) unless told otherwise; the
/// repository is the one this crate was built from.
fn layout(cli: &Cli) -> Layout {
    let release_dir = cli.release_dir.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("target/release"))
    });
    let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let python = cli.python.clone().unwrap_or_else(|| repo_root.join(".venv/bin/python"));
    Layout {
        release_dir,
        repo_root,
        python,
    }
}
