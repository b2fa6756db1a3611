//! The `/proc`-based enhanced metrics of one invocation, all sampled by a background task on
//! the telemetry thread every 10 ms (the Extension's interval), so closing a window reads no
//! file: the invocation pays nothing for them.
//!
//! - CPU and network are deltas of `/proc/stat` and `/proc/net/dev` between the samples last
//!   taken when a window began and when it ended; each window starts where the last one ended,
//!   so over any run of invocations they add up to the sandbox's totals. A window shorter than
//!   the interval may see no new sample and shows zero (its share goes to the next window that
//!   crosses a sample): `/proc/stat` counts in 10 ms ticks anyway, so a sub-tick window had
//!   no CPU figure of its own to lose.
//! - fd/thread/`/tmp` peaks start at the levels last sampled, which held when the window began,
//!   so a window shorter than the interval still has them; memory is a sandbox-lifetime peak.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::enhanced::{EnhancedMetric, Measured, Reason};
use super::point::MetricValue;
use super::proc::{
    clock_ticks_per_second, parse_cpu_stat, parse_net_dev, parse_uptime, CpuStat, KeptFile, NetworkBytes, ProcReader, ProcessFiles,
};

/// How often the sampler looks at fds, threads, `/tmp` and memory.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);
/// How old the known process tree may be before a sample walks it again: children (an exec
/// handler, what a handler spawns) come and go far less often than samples are taken.
const TREE_MAX_AGE: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Peaks {
    fds: AtomicU64,
    threads: AtomicU64,
    tmp_used: AtomicU64,
    /// Sandbox-lifetime peak of the process tree's resident memory, as Lambda's `Max Memory Used`.
    memory: AtomicU64,
}

/// What the last sample saw.
#[derive(Default)]
struct Levels {
    fds: AtomicU64,
    threads: AtomicU64,
    tmp_used: AtomicU64,
    tmp_max: AtomicU64,
}

impl Peaks {
    /// Starts the window peaks at the levels last seen (memory is a sandbox-lifetime peak and stays).
    fn restart_window(&self, levels: &Levels) {
        self.fds.store(levels.fds.load(Ordering::Relaxed), Ordering::Relaxed);
        self.threads.store(levels.threads.load(Ordering::Relaxed), Ordering::Relaxed);
        self.tmp_used.store(levels.tmp_used.load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// The counters a window is measured between, as one sample saw them.
#[derive(Clone, Default)]
struct Counters {
    /// When they were read; `None` for a default (never read) set.
    taken: Option<Instant>,
    cpu: Option<CpuStat>,
    uptime: Option<f64>,
    network: Option<NetworkBytes>,
}

/// The kept-open files, and the process tree as last walked.
struct Files {
    stat: KeptFile,
    uptime: KeptFile,
    net_dev: KeptFile,
    processes: Vec<(u32, ProcessFiles)>,
    tree_walked: Option<Instant>,
    text: String,
}

/// Watches the process tree rooted at one pid.
pub struct UsageMonitor {
    reader: ProcReader,
    pid: u32,
    peaks: Peaks,
    levels: Levels,
    files: Mutex<Files>,
    baseline: Mutex<Counters>,
    /// The counters of the newest sample: a window's end.
    latest: Mutex<Counters>,
    limits: (u64, u64),
}

impl UsageMonitor {
    pub fn new(reader: ProcReader, pid: u32) -> Arc<Self> {
        let limits = reader.limits(pid);
        let files = Files {
            stat: reader.kept("stat"),
            uptime: reader.kept("uptime"),
            net_dev: reader.kept("net/dev"),
            processes: Vec::new(),
            tree_walked: None,
            text: String::with_capacity(4096),
        };
        let monitor = Arc::new(Self {
            reader,
            pid,
            peaks: Peaks::default(),
            levels: Levels::default(),
            files: Mutex::new(files),
            baseline: Mutex::new(Counters::default()),
            latest: Mutex::new(Counters::default()),
            limits,
        });
        monitor.sample();
        monitor.mark_baseline();
        monitor
    }

    /// Samples every [`SAMPLE_INTERVAL`] until the runtime shuts down. Lambda freezes the task
    /// with the sandbox between invocations, so it costs nothing then.
    pub fn spawn_sampler(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let monitor = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                // In place, on the telemetry thread: /proc and statfs answer from kernel memory
                // in microseconds, and handing each sample to a blocking-pool thread cost more
                // (two thread switches and a dozen futex, eventfd and epoll calls every 10 ms).
                monitor.sample();
            }
        })
    }

    /// Takes one sample of the peaks and of the CPU and network counters.
    pub fn sample(&self) {
        if let Ok(mut files) = self.files.lock() {
            self.sample_processes(&mut files);
            let counters = Self::counters(&mut files);
            if let Ok(mut latest) = self.latest.lock() {
                *latest = counters;
            }
        }
        if let Some((max, used)) = self.reader.tmp_usage() {
            self.levels.tmp_max.store(max, Ordering::Relaxed);
            self.levels.tmp_used.store(used, Ordering::Relaxed);
            self.peaks.tmp_used.fetch_max(used, Ordering::Relaxed);
        }
    }

    fn sample_processes(&self, files: &mut Files) {
        let stale = files.tree_walked.is_none_or(|at| at.elapsed() >= TREE_MAX_AGE);
        if stale {
            let tree = self.reader.process_tree(self.pid);
            files.processes.retain(|(pid, _)| tree.contains(pid));
            for pid in tree {
                if !files.processes.iter().any(|(known, _)| *known == pid) {
                    files.processes.push((pid, ProcessFiles::new(&self.reader, pid)));
                }
            }
            files.tree_walked = Some(Instant::now());
        }
        let Files { processes, text, .. } = files;
        let (mut fds, mut threads, mut rss, mut hwm) = (0, 0, 0, 0);
        processes.retain_mut(|(_, process)| match process.read(text) {
            Some(usage) => {
                fds += usage.fds;
                threads += usage.threads;
                rss += usage.rss;
                hwm = hwm.max(usage.hwm);
                true
            }
            None => false,
        });
        self.levels.fds.store(fds, Ordering::Relaxed);
        self.levels.threads.store(threads, Ordering::Relaxed);
        self.peaks.fds.fetch_max(fds, Ordering::Relaxed);
        self.peaks.threads.fetch_max(threads, Ordering::Relaxed);
        self.peaks.memory.fetch_max(rss.max(hwm), Ordering::Relaxed);
    }

    fn counters(files: &mut Files) -> Counters {
        let Files {
            stat,
            uptime,
            net_dev,
            text,
            ..
        } = files;
        Counters {
            taken: Some(Instant::now()),
            cpu: stat.read_into(text).then(|| parse_cpu_stat(text)).flatten(),
            uptime: boot_clock_seconds().or_else(|| uptime.read_into(text).then(|| parse_uptime(text)).flatten()),
            network: net_dev.read_into(text).then(|| parse_net_dev(text)),
        }
    }

    /// Starts a new measurement window at the newest sample: fd/thread/`/tmp` peaks restart.
    /// [`UsageMonitor::window_metrics`] starts the next window itself.
    pub fn mark_baseline(&self) {
        let counters = self.newest_counters();
        if let Ok(mut slot) = self.baseline.lock() {
            *slot = counters;
        }
        self.peaks.restart_window(&self.levels);
    }

    /// The counters of the newest sample; read now only when the sampler has fallen behind
    /// (not running, or its thread starved for more than two intervals), so that a window's
    /// end is never older than that.
    fn newest_counters(&self) -> Counters {
        if let Ok(latest) = self.latest.lock() {
            if latest.taken.is_some_and(|at| at.elapsed() <= 2 * SAMPLE_INTERVAL) {
                return latest.clone();
            }
        }
        let counters = match self.files.lock() {
            Ok(mut files) => Self::counters(&mut files),
            Err(_) => Counters::default(),
        };
        if let Ok(mut latest) = self.latest.lock() {
            if latest.taken < counters.taken {
                *latest = counters.clone();
            }
        }
        counters
    }

    /// The sandbox's peak memory so far, in bytes: the sampled peak of the process tree, or
    /// this process's own peak if that is higher (it may have grown since the last sample).
    pub fn max_memory_bytes(&self) -> u64 {
        let own = own_peak_rss_bytes();
        self.peaks.memory.fetch_max(own, Ordering::Relaxed).max(own)
    }

    /// Every `/proc` metric of the window since the last one (or [`UsageMonitor::mark_baseline`]),
    /// and the start of the next window.
    pub fn window_metrics(&self) -> Vec<Measured> {
        use EnhancedMetric::{
            CpuMaxUtilization, CpuMinUtilization, CpuSystemTime, CpuTotalTime, CpuTotalUtilization, CpuTotalUtilizationPct, CpuUserTime,
            FdMax, FdUse, NumCores, RxBytes, ThreadsMax, ThreadsUse, TmpFree, TmpMax, TmpUsed, TotalNetwork, TxBytes,
        };
        let after = self.newest_counters();
        let tmp_max = self.levels.tmp_max.load(Ordering::Relaxed);
        let before = match self.baseline.lock() {
            Ok(mut slot) => std::mem::replace(&mut *slot, after.clone()),
            Err(_) => Counters::default(),
        };
        let mut out = Vec::with_capacity(20);
        let mut push = |metric: EnhancedMetric, value: MetricValue| {
            out.push(Measured {
                metric,
                value,
                reason: Reason::Plain,
                extra_tags: Vec::new(),
            });
        };
        if let (Some(before_cpu), Some(after_cpu)) = (&before.cpu, &after.cpu) {
            let ms_per_tick = 1000.0 / clock_ticks_per_second();
            let user = (after_cpu.user - before_cpu.user).max(0.0) * ms_per_tick;
            let system = (after_cpu.system - before_cpu.system).max(0.0) * ms_per_tick;
            push(CpuUserTime, MetricValue::Float(user));
            push(CpuSystemTime, MetricValue::Float(system));
            push(CpuTotalTime, MetricValue::Float(user + system));
            let cores = after_cpu.per_core_idle.len();
            push(NumCores, MetricValue::Integer(cores as i64));
            if let (Some(up_before), Some(up_after)) = (before.uptime, after.uptime) {
                if let Some(u) = utilization(before_cpu, after_cpu, up_after - up_before) {
                    push(CpuTotalUtilizationPct, MetricValue::Float(u.total));
                    push(CpuTotalUtilization, MetricValue::Float(u.total / 100.0 * cores as f64));
                    push(CpuMaxUtilization, MetricValue::Float(u.max));
                    push(CpuMinUtilization, MetricValue::Float(u.min));
                }
            }
        }
        if let (Some(before_net), Some(after_net)) = (before.network, after.network) {
            let rx = after_net.rx.saturating_sub(before_net.rx);
            let tx = after_net.tx.saturating_sub(before_net.tx);
            push(RxBytes, MetricValue::Integer(rx as i64));
            push(TxBytes, MetricValue::Integer(tx as i64));
            push(TotalNetwork, MetricValue::Integer((rx + tx) as i64));
        }
        if tmp_max > 0 {
            let used = self.peaks.tmp_used.load(Ordering::Relaxed);
            push(TmpMax, MetricValue::Integer(tmp_max as i64));
            push(TmpUsed, MetricValue::Integer(used as i64));
            push(TmpFree, MetricValue::Integer(tmp_max.saturating_sub(used) as i64));
        }
        push(FdMax, MetricValue::Integer(self.limits.0 as i64));
        push(FdUse, MetricValue::Integer(self.peaks.fds.load(Ordering::Relaxed) as i64));
        push(ThreadsMax, MetricValue::Integer(self.limits.1 as i64));
        push(ThreadsUse, MetricValue::Integer(self.peaks.threads.load(Ordering::Relaxed) as i64));
        self.peaks.restart_window(&self.levels);
        out
    }
}

/// Seconds since boot from `CLOCK_BOOTTIME`, the clock `/proc/uptime` prints, without a syscall.
fn boot_clock_seconds() -> Option<f64> {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into `now`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut now) };
    (rc == 0).then(|| now.tv_sec as f64 + now.tv_nsec as f64 / 1e9)
}

/// This process's peak resident memory (`VmHWM`), from `getrusage`.
fn own_peak_rss_bytes() -> u64 {
    // SAFETY: getrusage fills one rusage struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut usage) } != 0 {
        return 0;
    }
    (usage.ru_maxrss.max(0) as u64) * 1024
}

/// CPU utilization in percent.
struct Utilization {
    total: f64,
    max: f64,
    min: f64,
}

/// The Extension's formulas: total `(uptime × cores − Δidle) / (uptime × cores)`, per core
/// `(uptime − Δidle_core) / uptime`, all in percent; idle ticks converted to seconds.
fn utilization(before: &CpuStat, after: &CpuStat, uptime_seconds: f64) -> Option<Utilization> {
    let cores = after.per_core_idle.len();
    if uptime_seconds <= 0.0 || cores == 0 || before.per_core_idle.len() != cores {
        return None;
    }
    let ticks = clock_ticks_per_second();
    let idle = (after.idle - before.idle).max(0.0) / ticks;
    let capacity = uptime_seconds * cores as f64;
    let total_pct = ((capacity - idle) / capacity * 100.0).clamp(0.0, 100.0);
    let per_core: Vec<f64> = before
        .per_core_idle
        .iter()
        .zip(&after.per_core_idle)
        .map(|(b, a)| ((uptime_seconds - (a - b).max(0.0) / ticks) / uptime_seconds * 100.0).clamp(0.0, 100.0))
        .collect();
    Some(Utilization {
        total: total_pct,
        max: per_core.iter().copied().fold(0.0, f64::max),
        min: per_core.iter().copied().fold(100.0, f64::min),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_formulas() {
        let ticks = clock_ticks_per_second();
        let before = CpuStat {
            idle: 0.0,
            per_core_idle: vec![0.0, 0.0],
            ..Default::default()
        };
        // Over 1 s: core 0 idle 0.25 s, core 1 idle 0.75 s.
        let after = CpuStat {
            idle: ticks,
            per_core_idle: vec![0.25 * ticks, 0.75 * ticks],
            ..Default::default()
        };
        let u = utilization(&before, &after, 1.0).unwrap();
        assert!((u.total - 50.0).abs() < 1e-9);
        assert!((u.max - 75.0).abs() < 1e-9);
        assert!((u.min - 25.0).abs() < 1e-9);
        assert!(utilization(&before, &after, 0.0).is_none());
    }

    #[test]
    fn window_of_this_process_sees_its_own_fds_and_threads() {
        let monitor = UsageMonitor::new(ProcReader::default(), std::process::id());
        let _file = tempfile::tempfile().unwrap();
        let metrics = monitor.window_metrics();
        let get = |m: EnhancedMetric| metrics.iter().find(|x| x.metric == m).map(|x| x.value.as_f64());
        assert!(get(EnhancedMetric::FdUse).unwrap() >= 4.0);
        assert!(get(EnhancedMetric::ThreadsUse).unwrap() >= 1.0);
        assert!(get(EnhancedMetric::NumCores).unwrap() >= 1.0);
        assert!(get(EnhancedMetric::CpuTotalTime).unwrap() >= 0.0);
        assert!(get(EnhancedMetric::TmpMax).unwrap() > 0.0);
        assert!(monitor.max_memory_bytes() > 0);
    }

    /// A fake `/proc` whose CPU and network counters the test moves.
    fn fake_proc(dir: &std::path::Path, user_ticks: u64, rx: u64) {
        std::fs::create_dir_all(dir.join("net")).unwrap();
        std::fs::write(
            dir.join("stat"),
            format!("cpu  {user_ticks} 0 0 100 0 0 0 0 0 0\ncpu0 {user_ticks} 0 0 100 0 0 0 0 0 0\nintr 1 2 3\n"),
        )
        .unwrap();
        std::fs::write(
            dir.join("net/dev"),
            format!(
                "Inter-|   Receive\n face |bytes\n  eth0: {rx} 1 0 0 0 0 0 0 500 1 0 0 0 0 0 0\n    lo: 9 1 0 0 0 0 0 0 9 1 0 0 0 0 0 0\n"
            ),
        )
        .unwrap();
    }

    #[test]
    fn a_window_ends_at_the_newest_sample_without_reading_proc() {
        let dir = tempfile::tempdir().unwrap();
        fake_proc(dir.path(), 10, 1000);
        let monitor = UsageMonitor::new(ProcReader::new(dir.path(), std::env::temp_dir()), 1);
        let get = |metrics: &[Measured], m: EnhancedMetric| metrics.iter().find(|x| x.metric == m).map(|x| x.value.as_f64());
        // The counters move, but no sample has seen them: the window ends at the last sample.
        fake_proc(dir.path(), 15, 1800);
        let unsampled = monitor.window_metrics();
        assert_eq!(get(&unsampled, EnhancedMetric::RxBytes), Some(0.0));
        assert_eq!(get(&unsampled, EnhancedMetric::CpuUserTime), Some(0.0));
        // The sampler's next tick carries them into the next window, counted once.
        monitor.sample();
        let sampled = monitor.window_metrics();
        assert_eq!(get(&sampled, EnhancedMetric::RxBytes), Some(800.0));
        let ms_per_tick = 1000.0 / clock_ticks_per_second();
        assert_eq!(get(&sampled, EnhancedMetric::CpuUserTime), Some(5.0 * ms_per_tick));
        assert_eq!(get(&monitor.window_metrics(), EnhancedMetric::RxBytes), Some(0.0));
        // A sampler that fell behind (here: none runs) no longer stands for "now": read then.
        fake_proc(dir.path(), 15, 2000);
        std::thread::sleep(3 * SAMPLE_INTERVAL);
        assert_eq!(get(&monitor.window_metrics(), EnhancedMetric::RxBytes), Some(200.0));
    }

    #[test]
    fn each_window_starts_where_the_last_one_ended() {
        let monitor = UsageMonitor::new(ProcReader::default(), std::process::id());
        let first = monitor.window_metrics();
        let cpu_of = |metrics: &[Measured]| {
            metrics
                .iter()
                .find(|m| m.metric == EnhancedMetric::CpuTotalTime)
                .map(|m| m.value.as_f64())
        };
        // Burn CPU in this window only: the next window must not see it again.
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(60) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let busy = monitor.window_metrics();
        let quiet = monitor.window_metrics();
        assert!(cpu_of(&first).is_some());
        assert!(cpu_of(&busy).unwrap() >= 10.0, "60 ms of work shows: {:?}", cpu_of(&busy));
        assert!(
            cpu_of(&quiet).unwrap() < cpu_of(&busy).unwrap(),
            "the busy window is not counted twice"
        );
    }
}
