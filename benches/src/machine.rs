//! Where and when the bench ran: the machine, the date, the commit, the binary's size.
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub logical_cpus: usize,
    pub kernel: Option<String>,
    pub memory_total_mb: Option<u64>,
    /// The 1-minute load average when the run started: a busy machine explains noisy figures.
    pub load_average_1m: Option<f64>,
}

pub fn describe() -> Machine {
    let read = |path: &str| fs::read_to_string(path).ok().map(|s| s.trim().to_owned());
    let cpu_model = read("/proc/cpuinfo").and_then(|info| {
        info.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    });
    let memory_total_mb = read("/proc/meminfo").and_then(|info| {
        let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb / 1024)
    });
    Machine {
        hostname: read("/proc/sys/kernel/hostname"),
        cpu_model,
        logical_cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        kernel: read("/proc/sys/kernel/osrelease"),
        memory_total_mb,
        load_average_1m: read("/proc/loadavg").and_then(|l| l.split_whitespace().next()?.parse().ok()),
    }
}

/// Now, as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let seconds = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    utc_timestamp(seconds)
}

fn utc_timestamp(epoch_seconds: u64) -> String {
    let at = i64::try_from(epoch_seconds)
        .ok()
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

/// The commit checked out in `repo`, with `-dirty` when the tree has changes.
pub fn git_commit(repo: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    let head = String::from_utf8(run(&["rev-parse", "HEAD"])?.stdout).ok()?.trim().to_owned();
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}

/// The size of a binary as shipped: the release profile strips it; `strip` (binutils) on a
/// copy confirms nothing is left to strip.
#[derive(Clone, Debug, Serialize)]
pub struct BinarySize {
    pub path: String,
    pub file_bytes: u64,
    /// Size after `strip` on a copy; `None` when `strip` is not installed.
    pub stripped_bytes: Option<u64>,
}

pub fn binary_size(path: &Path) -> Option<BinarySize> {
    let file_bytes = fs::metadata(path).ok()?.len();
    let copy = std::env::temp_dir().join(format!("bench-strip-{}", std::process::id()));
    let stripped_bytes = Command::new("strip")
        .arg("-o")
        .arg(&copy)
        .arg(path)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|_| fs::metadata(&copy).ok())
        .map(|m| m.len());
    let _ = fs::remove_file(&copy);
    Some(BinarySize {
        path: path.display().to_string(),
        file_bytes,
        stripped_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
