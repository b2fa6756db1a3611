//! The `/proc`-based enhanced metrics of one invocation: CPU and network as deltas from a
//! baseline taken just before the sandbox asks `/next`, and fd/thread/`/tmp`/memory peaks
//! sampled by a background task every 10 ms (the Extension's interval), so measuring costs the
//! invocation nothing but a few atomic loads.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::enhanced::{EnhancedMetric, Measured, Reason};
use super::point::MetricValue;
use super::proc::{clock_ticks_per_second, CpuStat, NetworkBytes, ProcReader};

/// How often the sampler looks at fds, threads, `/tmp` and memory.
pub const SAMPLE_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Default)]
struct Peaks {
    fds: AtomicU64,
    threads: AtomicU64,
    tmp_used: AtomicU64,
    /// Sandbox-lifetime peak of the process tree's resident memory, as Lambda's `Max Memory Used`.
    memory: AtomicU64,
}

#[derive(Clone, Default)]
struct Baseline {
    cpu: Option<CpuStat>,
    uptime: Option<f64>,
    network: Option<NetworkBytes>,
}

/// Watches the process tree rooted at one pid.
pub struct UsageMonitor {
    reader: ProcReader,
    pid: u32,
    peaks: Peaks,
    baseline: Mutex<Baseline>,
    limits: (u64, u64),
}

impl UsageMonitor {
    pub fn new(reader: ProcReader, pid: u32) -> Arc<Self> {
        let limits = reader.limits(pid);
        let monitor = Arc::new(Self {
            reader,
            pid,
            peaks: Peaks::default(),
            baseline: Mutex::new(Baseline::default()),
            limits,
        });
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
                let sampler = Arc::clone(&monitor);
                // /proc reads are blocking file I/O: keep them off the async workers.
                if tokio::task::spawn_blocking(move || sampler.sample()).await.is_err() {
                    return;
                }
            }
        })
    }

    /// Takes one sample of the peaks.
    pub fn sample(&self) {
        let tree = self.reader.process_tree(self.pid);
        let (fds, threads) = self.reader.fds_and_threads(&tree);
        self.peaks.fds.fetch_max(fds, Ordering::Relaxed);
        self.peaks.threads.fetch_max(threads, Ordering::Relaxed);
        let (rss, hwm) = self.reader.memory(&tree);
        self.peaks.memory.fetch_max(rss.max(hwm), Ordering::Relaxed);
        if let Some((_, used)) = self.reader.tmp_usage() {
            self.peaks.tmp_used.fetch_max(used, Ordering::Relaxed);
        }
    }

    /// Starts a new measurement window (call just before `/next`): CPU and network counters
    /// are read now, fd/thread/`/tmp` peaks restart.
    pub fn mark_baseline(&self) {
        let baseline = Baseline {
            cpu: self.reader.cpu_stat(),
            uptime: self.reader.uptime(),
            network: self.reader.network(),
        };
        if let Ok(mut slot) = self.baseline.lock() {
            *slot = baseline;
        }
        self.peaks.fds.store(0, Ordering::Relaxed);
        self.peaks.threads.store(0, Ordering::Relaxed);
        self.peaks.tmp_used.store(0, Ordering::Relaxed);
    }

    /// The sandbox's peak memory so far, in bytes.
    pub fn max_memory_bytes(&self) -> u64 {
        self.peaks.memory.load(Ordering::Relaxed)
    }

    /// Every `/proc` metric of the window since the last [`UsageMonitor::mark_baseline`].
    pub fn window_metrics(&self) -> Vec<Measured> {
        use EnhancedMetric::{
            CpuMaxUtilization, CpuMinUtilization, CpuSystemTime, CpuTotalTime, CpuTotalUtilization, CpuTotalUtilizationPct, CpuUserTime,
            FdMax, FdUse, NumCores, RxBytes, ThreadsMax, ThreadsUse, TmpFree, TmpMax, TmpUsed, TotalNetwork, TxBytes,
        };
        // One last sample, so a window shorter than the interval still has its peaks.
        self.sample();
        let baseline = self.baseline.lock().map(|b| b.clone()).unwrap_or_default();
        let mut out = Vec::with_capacity(20);
        let mut push = |metric: EnhancedMetric, value: MetricValue| {
            out.push(Measured {
                metric,
                value,
                reason: Reason::Plain,
                extra_tags: Vec::new(),
            });
        };
        if let (Some(before), Some(after)) = (&baseline.cpu, self.reader.cpu_stat()) {
            let ms_per_tick = 1000.0 / clock_ticks_per_second();
            let user = (after.user - before.user).max(0.0) * ms_per_tick;
            let system = (after.system - before.system).max(0.0) * ms_per_tick;
            push(CpuUserTime, MetricValue::Float(user));
            push(CpuSystemTime, MetricValue::Float(system));
            push(CpuTotalTime, MetricValue::Float(user + system));
            let cores = after.per_core_idle.len();
            push(NumCores, MetricValue::Integer(cores as i64));
            if let (Some(up_before), Some(up_after)) = (baseline.uptime, self.reader.uptime()) {
                if let Some(u) = utilization(before, &after, up_after - up_before) {
                    push(CpuTotalUtilizationPct, MetricValue::Float(u.total));
                    push(CpuTotalUtilization, MetricValue::Float(u.total / 100.0 * cores as f64));
                    push(CpuMaxUtilization, MetricValue::Float(u.max));
                    push(CpuMinUtilization, MetricValue::Float(u.min));
                }
            }
        }
        if let (Some(before), Some(after)) = (baseline.network, self.reader.network()) {
            let rx = after.rx.saturating_sub(before.rx);
            let tx = after.tx.saturating_sub(before.tx);
            push(RxBytes, MetricValue::Integer(rx as i64));
            push(TxBytes, MetricValue::Integer(tx as i64));
            push(TotalNetwork, MetricValue::Integer((rx + tx) as i64));
        }
        if let Some((max, _)) = self.reader.tmp_usage() {
            let used = self.peaks.tmp_used.load(Ordering::Relaxed);
            push(TmpMax, MetricValue::Integer(max as i64));
            push(TmpUsed, MetricValue::Integer(used as i64));
            push(TmpFree, MetricValue::Integer(max.saturating_sub(used) as i64));
        }
        push(FdMax, MetricValue::Integer(self.limits.0 as i64));
        push(FdUse, MetricValue::Integer(self.peaks.fds.load(Ordering::Relaxed) as i64));
        push(ThreadsMax, MetricValue::Integer(self.limits.1 as i64));
        push(ThreadsUse, MetricValue::Integer(self.peaks.threads.load(Ordering::Relaxed) as i64));
        out
    }
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
}
