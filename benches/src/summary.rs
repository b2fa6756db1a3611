//! Figures from raw samples: latency percentiles, cold-start medians, the RSS slope.
use std::time::Duration;

use serde::Serialize;

/// Per-invoke latency, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Latency {
    pub count: usize,
    pub mean_us: f64,
    pub stddev_us: f64,
    pub min_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

/// Summarises nanosecond samples (any order).
pub fn latency(samples_ns: &[u64]) -> Latency {
    if samples_ns.is_empty() {
        return Latency::default();
    }
    let mut sorted = samples_ns.to_vec();
    sorted.sort_unstable();
    let count = sorted.len();
    let us = |ns: u64| ns as f64 / 1_000.0;
    let mean = sorted.iter().map(|&ns| us(ns)).sum::<f64>() / count as f64;
    let variance = sorted.iter().map(|&ns| (us(ns) - mean).powi(2)).sum::<f64>() / count as f64;
    Latency {
        count,
        mean_us: mean,
        stddev_us: variance.sqrt(),
        min_us: us(sorted[0]),
        p50_us: us(percentile(&sorted, 0.50)),
        p90_us: us(percentile(&sorted, 0.90)),
        p99_us: us(percentile(&sorted, 0.99)),
        p999_us: us(percentile(&sorted, 0.999)),
        max_us: us(sorted[count - 1]),
    }
}

/// Nearest-rank percentile of sorted, non-empty samples: the smallest sample with at least
/// `q` of all samples at or below it.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Cold starts over fresh runtimes, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ColdStart {
    pub count: usize,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub samples_ms: Vec<f64>,
}

pub fn cold_start(samples: &[Duration]) -> ColdStart {
    let samples_ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1_000.0).collect();
    let mut sorted = samples_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    };
    ColdStart {
        count: sorted.len(),
        median_ms: median,
        min_ms: sorted.first().copied().unwrap_or(0.0),
        max_ms: sorted.last().copied().unwrap_or(0.0),
        samples_ms,
    }
}

/// Least-squares slope of `(x, y)` points, `None` with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let spread: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if points.len() < 2 || spread == 0.0 {
        return None;
    }
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    Some(covariance / spread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.50), 50);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&sorted, 1.0), 100);
        assert_eq!(percentile(&sorted, 0.0), 1);
        assert_eq!(percentile(&[7], 0.99), 7);
    }

    #[test]
    fn latency_is_in_microseconds_whatever_the_order() {
        let samples = [3_000, 1_000, 2_000, 4_000];
        let summary = latency(&samples);
        assert_eq!(summary.count, 4);
        assert_eq!(summary.mean_us, 2.5);
        assert_eq!(summary.p50_us, 2.0);
        assert_eq!(summary.p99_us, 4.0);
        assert_eq!(summary.min_us, 1.0);
        assert_eq!(summary.max_us, 4.0);
        assert!((summary.stddev_us - 1.118).abs() < 0.001);
        assert_eq!(latency(&[]).count, 0);
    }

    #[test]
    fn cold_start_median_of_even_and_odd_counts() {
        let ms = |v: u64| Duration::from_micros(v * 1_000);
        assert_eq!(cold_start(&[ms(5), ms(1), ms(3)]).median_ms, 3.0);
        let even = cold_start(&[ms(4), ms(1), ms(2), ms(3)]);
        assert_eq!(even.median_ms, 2.5);
        assert_eq!((even.min_ms, even.max_ms), (1.0, 4.0));
        assert_eq!(even.samples_ms, vec![4.0, 1.0, 2.0, 3.0]);
    }

    #[test]
    fn slope_of_a_line_and_of_nothing() {
        assert_eq!(slope(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]), Some(2.0));
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }
}
