//! The run's results: `results.json` (everything a plotting step needs, raw samples aside), an
//! optional CSV of raw samples per case, and the table printed at the end.
//!
//! Sizes are in MB of 10^6 bytes, the stricter reading of the issues' "10 MB" and "7 MB".
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::cases::{CaseGoals, Comparison};
use crate::machine::{BinarySize, Machine};
use crate::summary::{ColdStart, Latency};
use crate::timing::{MemoryPoint, Plan};
use crate::BenchError;

/// Issue 7: the stripped `bootstrap` at most 7 MB.
pub const BOOTSTRAP_SIZE_GOAL_MB: f64 = 7.0;

#[derive(Clone, Debug, Serialize)]
pub struct Results {
    /// Bumped when a field changes meaning, for plotting scripts.
    pub schema_version: u32,
    pub date_utc: String,
    pub command: String,
    pub git_commit: Option<String>,
    pub machine: Machine,
    pub plan: Plan,
    pub cold_starts_per_case: usize,
    pub event_bytes: usize,
    pub cases: Vec<CaseResult>,
    pub skipped: Vec<SkippedCase>,
    pub ratios: Vec<Ratio>,
    pub bootstrap_binary: Option<BinarySize>,
    pub bootstrap_size_goal_max_mb: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    pub id: String,
    pub title: String,
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub latency: Latency,
    /// The latency of each pass apart (one process each), in order.
    pub pass_latency: Vec<Latency>,
    pub cold_start: ColdStart,
    /// Sum of `VmHWM` over the runtime's process group after the timed invokes.
    pub peak_rss_kb: u64,
    /// Sum of `VmRSS` at the same moment.
    pub rss_kb: u64,
    pub processes: usize,
    /// RSS after each round, for an RSS-over-invocations plot.
    pub memory_over_run: Vec<MemoryPoint>,
    /// Growth of RSS per 10 000 invokes over the run (least squares, warm-up excluded).
    pub rss_slope_kb_per_10k: Option<f64>,
    /// 1 unless the runtime crashed or timed out and was restarted during the run.
    pub runtime_starts: u64,
    /// Requests the case's local Datadog intake answered (API-mode cases only).
    pub intake_requests: Option<u64>,
    pub goals: CaseGoals,
    /// The CSV of raw samples, when `--samples` asked for it.
    pub samples_file: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SkippedCase {
    pub id: String,
    pub title: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Ratio {
    pub name: String,
    pub numerator: String,
    pub denominator: String,
    pub mean: f64,
    pub p50: f64,
    pub p99: f64,
    pub goal_max: Option<f64>,
    /// The goal judged on the mean ratio (sensitive to the machine's other work) ...
    pub met_mean: Option<bool>,
    /// ... and on the median ratio (robust to it).
    pub met_p50: Option<bool>,
    /// The mean ratio of each pass apart, when both cases ran the same passes: how far one
    /// pair of processes can stray from another.
    pub pass_means: Vec<f64>,
    pub meaning: String,
}

/// The ratios whose two cases both ran.
pub fn ratios(cases: &[CaseResult], comparisons: &[Comparison]) -> Vec<Ratio> {
    let find = |id: &str| cases.iter().find(|c| c.id == id);
    comparisons
        .iter()
        .filter_map(|c| {
            let (top, bottom) = (find(c.numerator)?, find(c.denominator)?);
            let ratio = |f: fn(&Latency) -> f64| f(&top.latency) / f(&bottom.latency);
            let mean = ratio(|l| l.mean_us);
            let p50 = ratio(|l| l.p50_us);
            let pass_means = if top.pass_latency.len() == bottom.pass_latency.len() {
                top.pass_latency
                    .iter()
                    .zip(&bottom.pass_latency)
                    .map(|(t, b)| t.mean_us / b.mean_us)
                    .collect()
            } else {
                Vec::new()
            };
            Some(Ratio {
                name: format!("{}/{}", c.numerator, c.denominator),
                numerator: c.numerator.to_owned(),
                denominator: c.denominator.to_owned(),
                mean,
                p50,
                p99: ratio(|l| l.p99_us),
                goal_max: c.goal_max,
                met_mean: c.goal_max.map(|goal| mean <= goal),
                met_p50: c.goal_max.map(|goal| p50 <= goal),
                pass_means,
                meaning: c.meaning.to_owned(),
            })
        })
        .collect()
}

pub fn kb_to_mb(kb: u64) -> f64 {
    kb as f64 * 1024.0 / 1_000_000.0
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// The table printed at the end of a run.
pub fn table(results: &Results) -> String {
    let mut out = String::new();
    let plan = &results.plan;
    let _ = writeln!(
        out,
        "\nPer-invoke wall time: {} sequential invokes per case, one keep-alive client, rounds of {} alternating between cases; {}",
        plan.invocations * plan.passes,
        plan.round_size,
        if plan.passes > 1 {
            format!(
                "{} passes of {}, each with every case's processes started afresh (memory: the first pass)",
                plan.passes, plan.invocations
            )
        } else {
            "one process per case".to_owned()
        }
    );
    let _ = writeln!(
        out,
        "{:<9} {:<48} {:>10} {:>10} {:>10} {:>12} {:>10}",
        "case", "runtime", "mean", "p50", "p99", "cold start", "peak RSS"
    );
    for case in &results.cases {
        let cold_start = if case.cold_start.count > 0 {
            format!("{:>9.2} ms", case.cold_start.median_ms)
        } else {
            format!("{:>12}", "-")
        };
        let _ = writeln!(
            out,
            "{:<9} {:<48} {:>7.1} µs {:>7.1} µs {:>7.1} µs {cold_start} {:>7.2} MB",
            case.id,
            case.title,
            case.latency.mean_us,
            case.latency.p50_us,
            case.latency.p99_us,
            kb_to_mb(case.peak_rss_kb)
        );
    }
    let _ = writeln!(
        out,
        "(cold start: median of {} fresh starts, process spawn to first /next; peak RSS: VmHWM of the runtime's process group after the run)",
        results.cold_starts_per_case
    );
    for skipped in &results.skipped {
        let _ = writeln!(
            out,
            "{:<9} {:<48} skipped: {}",
            skipped.id,
            skipped.title,
            first_line(&skipped.reason)
        );
    }

    if !results.ratios.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<18} {:>6} {:>6} {:>6}   {:<34} meaning",
            "ratio", "mean", "p50", "p99", "goal"
        );
        for ratio in &results.ratios {
            let goal = match (ratio.goal_max, ratio.met_mean, ratio.met_p50) {
                (Some(goal), Some(mean), Some(p50)) => format!("<= {goal:.2}: mean {}, p50 {}", verdict(mean), verdict(p50)),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:<18} {:>6.3} {:>6.3} {:>6.3}   {:<34} {}",
                ratio.name, ratio.mean, ratio.p50, ratio.p99, goal, ratio.meaning
            );
        }
        let by_pass: Vec<String> = results
            .ratios
            .iter()
            .filter(|r| r.goal_max.is_some() && r.pass_means.len() > 1)
            .map(|r| {
                let each: Vec<String> = r.pass_means.iter().map(|m| format!("{m:.3}")).collect();
                format!("{:<18} {}", r.name, each.join(" "))
            })
            .collect();
        if !by_pass.is_empty() {
            let _ = writeln!(
                out,
                "\nmean ratio of each pass apart (each pass a fresh pair of processes; the ratios above pool them):"
            );
            for line in by_pass {
                let _ = writeln!(out, "{line}");
            }
        }
    }

    let goal_lines: Vec<String> = results.cases.iter().flat_map(case_goal_lines).collect();
    if !goal_lines.is_empty() {
        let _ = writeln!(out);
        for line in goal_lines {
            let _ = writeln!(out, "{line}");
        }
    }
    if let Some(binary) = &results.bootstrap_binary {
        let bytes = binary.stripped_bytes.unwrap_or(binary.file_bytes);
        let mb = bytes as f64 / 1_000_000.0;
        let how = if binary.stripped_bytes.is_some() {
            "stripped"
        } else {
            "as built (strip not installed; the release profile strips)"
        };
        let _ = writeln!(
            out,
            "bootstrap binary: {mb:.2} MB {how} (goal <= {BOOTSTRAP_SIZE_GOAL_MB} MB: {})",
            verdict(mb <= BOOTSTRAP_SIZE_GOAL_MB)
        );
    }
    let restarted: Vec<&str> = results
        .cases
        .iter()
        .filter(|c| c.runtime_starts != 1)
        .map(|c| c.id.as_str())
        .collect();
    if !restarted.is_empty() {
        let _ = writeln!(out, "WARNING: the runtime restarted during the run for: {}", restarted.join(", "));
    }
    out
}

fn case_goal_lines(case: &CaseResult) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(goal), true) = (case.goals.cold_start_ms_max, case.cold_start.count > 0) {
        let got = case.cold_start.median_ms;
        lines.push(format!(
            "{}: cold start {got:.2} ms (goal <= {goal} ms: {})",
            case.id,
            verdict(got <= goal)
        ));
    }
    if let Some(goal) = case.goals.peak_rss_mb_max {
        let got = kb_to_mb(case.peak_rss_kb);
        lines.push(format!(
            "{}: peak RSS {got:.2} MB after {} invokes (goal <= {goal} MB: {})",
            case.id,
            // One process's: with several passes, the first pass's.
            case.memory_over_run.last().map_or(case.latency.count, |m| m.invocations),
            verdict(got <= goal)
        ));
    }
    if case.id == "a" {
        if let (Some(slope), Some(first), Some(last)) =
            (case.rss_slope_kb_per_10k, case.memory_over_run.first(), case.memory_over_run.last())
        {
            lines.push(format!(
                "{}: RSS slope {slope:+.1} KB per 10k invokes over {} samples ({:.2} MB after {} invokes, {:.2} MB after {})",
                case.id,
                case.memory_over_run.len(),
                kb_to_mb(first.rss_kb),
                first.invocations,
                kb_to_mb(last.rss_kb),
                last.invocations
            ));
        }
    }
    if let Some(requests) = case.intake_requests {
        lines.push(format!(
            "{}: the local intake answered {requests} requests ({} invokes)",
            case.id, case.latency.count
        ));
    }
    lines
}

/// The first line of `text`, cut to a table-friendly length (results.json keeps it whole).
fn first_line(text: &str) -> String {
    const SHOWN: usize = 160;
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

/// Writes `results.json` into `dir` (created if needed); returns its path.
pub fn write_json(dir: &Path, results: &Results) -> Result<PathBuf, BenchError> {
    let path = dir.join("results.json");
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let json = serde_json::to_vec_pretty(results).map_err(std::io::Error::other)?;
        fs::write(&path, json)
    };
    write().map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Writes one case's raw samples as `samples-<id>.csv` (`invocation,latency_ns`), in the order
/// they were taken; returns its path.
pub fn write_samples(dir: &Path, case_id: &str, samples_ns: &[u64]) -> Result<PathBuf, BenchError> {
    let path = dir.join(format!("samples-{case_id}.csv"));
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(dir)?;
        let mut file = std::io::BufWriter::new(fs::File::create(&path)?);
        writeln!(file, "invocation,latency_ns")?;
        for (index, ns) in samples_ns.iter().enumerate() {
            writeln!(file, "{index},{ns}")?;
        }
        file.flush()
    };
    write().map_err(|source| BenchError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::comparisons;

    fn case(id: &str, mean_us: f64) -> CaseResult {
        CaseResult {
            id: id.to_owned(),
            title: format!("case {id}"),
            command: vec![],
            env: BTreeMap::new(),
            latency: Latency {
                count: 10,
                mean_us,
                p50_us: mean_us,
                p99_us: mean_us * 2.0,
                ..Latency::default()
            },
            pass_latency: vec![],
            cold_start: ColdStart::default(),
            peak_rss_kb: 4096,
            rss_kb: 4000,
            processes: 1,
            memory_over_run: vec![],
            rss_slope_kb_per_10k: None,
            runtime_starts: 1,
            intake_requests: None,
            goals: CaseGoals {
                cold_start_ms_max: Some(5.0),
                peak_rss_mb_max: Some(10.0),
            },
            samples_file: None,
        }
    }

    #[test]
    fn each_pass_gets_its_own_ratio_and_the_table_lists_them_for_goals() {
        let latency = |mean_us: f64| Latency {
            count: 5,
            mean_us,
            p50_us: mean_us,
            p99_us: mean_us,
            ..Latency::default()
        };
        let mut a = case("a", 60.0);
        a.pass_latency = vec![latency(55.0), latency(66.0)];
        let mut c = case("c", 50.0);
        c.pass_latency = vec![latency(50.0), latency(50.0)];
        let ratios = ratios(&[a, c], &comparisons());
        let a_c = ratios.iter().find(|r| r.name == "a/c").unwrap();
        assert_eq!(a_c.pass_means, [1.1, 1.32]);
        // Cases that ran different numbers of passes have no per-pass ratio.
        let mut one_pass = case("a", 60.0);
        one_pass.pass_latency = vec![latency(60.0)];
        let mut c = case("c", 50.0);
        c.pass_latency = vec![latency(50.0), latency(50.0)];
        assert!(ratios_of(&[one_pass, c]).iter().all(|r| r.pass_means.is_empty()));
    }

    fn ratios_of(cases: &[CaseResult]) -> Vec<Ratio> {
        ratios(cases, &comparisons())
    }

    #[test]
    fn ratios_need_both_cases_and_judge_the_mean() {
        let cases = vec![case("a", 60.0), case("b", 50.0), case("c", 50.0)];
        let ratios = ratios(&cases, &comparisons());
        let names: Vec<&str> = ratios.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a/b", "a/c"]);
        assert!((ratios[0].mean - 1.2).abs() < 1e-9);
        assert_eq!(ratios[0].met_mean, Some(false));
        assert_eq!(ratios[0].met_p50, Some(false));
        assert_eq!(ratios[1].met_mean, Some(true));
    }

    #[test]
    fn samples_csv_keeps_the_order() {
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        let path = write_samples(&dir, "a", &[30, 10, 20]).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(text, "invocation,latency_ns\n0,30\n1,10\n2,20\n");
    }
}
