//! Points for the Datadog API, bucketed to 10 s and grouped by (name, tag set) as datadogpy's
//! ThreadStats groups them (§3.5): one series per (name, sorted tags, bucket) listing every
//! value of the bucket. Memory is bounded: past the limits the oldest series are dropped and
//! counted, so a handler emitting unbounded tag sets cannot exhaust the sandbox.
use std::collections::{HashMap, VecDeque};

use super::point::MetricPoint;

/// Width of a bucket, the `interval` sent with every series.
pub const BUCKET_SECONDS: i64 = 10;
/// Distinct series kept at most (the Extension's aggregator keeps 10 240 contexts).
pub const DEFAULT_MAX_SERIES: usize = 10_240;
/// Values kept at most over all series.
pub const DEFAULT_MAX_VALUES: usize = 100_000;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SeriesKey {
    name: String,
    sorted_tags: Vec<String>,
    bucket: i64,
}

/// The values of one (name, tag set, bucket).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    /// The tags in the order the first point gave them.
    pub tags: Vec<String>,
    /// Start of the 10 s bucket, epoch seconds.
    pub bucket: i64,
    pub values: Vec<f64>,
}

/// The aggregation buffer.
#[derive(Debug)]
pub struct Aggregator {
    series: HashMap<SeriesKey, Series>,
    order: VecDeque<SeriesKey>,
    values: usize,
    max_series: usize,
    max_values: usize,
    dropped_points: u64,
}

impl Default for Aggregator {
    fn default() -> Self {
        Self::with_limits(DEFAULT_MAX_SERIES, DEFAULT_MAX_VALUES)
    }
}

impl Aggregator {
    pub fn with_limits(max_series: usize, max_values: usize) -> Self {
        Self {
            series: HashMap::new(),
            order: VecDeque::new(),
            values: 0,
            max_series: max_series.max(1),
            max_values: max_values.max(1),
            dropped_points: 0,
        }
    }

    /// The bucket a timestamp falls in: `t - (t mod 10)`.
    pub fn bucket_of(timestamp: i64) -> i64 {
        timestamp - timestamp.rem_euclid(BUCKET_SECONDS)
    }

    pub fn add(&mut self, point: &MetricPoint) {
        let mut sorted_tags = point.tags.to_vec();
        sorted_tags.sort();
        let key = SeriesKey {
            name: point.name.clone(),
            sorted_tags,
            bucket: Self::bucket_of(point.timestamp),
        };
        let value = point.value.as_f64();
        if let Some(series) = self.series.get_mut(&key) {
            series.values.push(value);
        } else {
            self.series.insert(
                key.clone(),
                Series {
                    name: point.name.clone(),
                    tags: point.tags.to_vec(),
                    bucket: key.bucket,
                    values: vec![value],
                },
            );
            self.order.push_back(key);
        }
        self.values += 1;
        self.evict_over_limits();
    }

    fn evict_over_limits(&mut self) {
        while self.series.len() > self.max_series || self.values > self.max_values {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(series) = self.series.remove(&oldest) {
                self.values -= series.values.len();
                self.dropped_points += series.values.len() as u64;
            }
        }
    }

    /// Every series, oldest first; the buffer is left empty.
    pub fn drain(&mut self) -> Vec<Series> {
        let mut out = Vec::with_capacity(self.order.len());
        for key in self.order.drain(..) {
            if let Some(series) = self.series.remove(&key) {
                out.push(series);
            }
        }
        self.values = 0;
        out
    }

    /// Points dropped to stay within the limits since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_points)
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(name: &str, v: f64, ts: i64, tags: &[&str]) -> MetricPoint {
        MetricPoint::new(name, v, ts, tags.iter().map(std::string::ToString::to_string).collect::<Vec<_>>())
    }

    #[test]
    fn groups_by_name_tag_set_and_bucket() {
        let mut agg = Aggregator::default();
        agg.add(&point("m", 5.0, 1795520241, &["a:b", "c:d"]));
        agg.add(&point("m", 7.0, 1795520249, &["c:d", "a:b"]));
        agg.add(&point("m", 3.0, 1700000000, &["a:b", "c:d"]));
        agg.add(&point("other", 1.0, 1795520241, &["a:b", "c:d"]));
        let series = agg.drain();
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].bucket, 1795520240);
        assert_eq!(series[0].values, [5.0, 7.0]);
        assert_eq!(series[0].tags, ["a:b", "c:d"]);
        assert_eq!(series[1].bucket, 1700000000);
        assert_eq!(series[2].name, "other");
        assert!(agg.is_empty());
    }

    #[test]
    fn bucket_floors_to_ten_seconds() {
        assert_eq!(Aggregator::bucket_of(1795524688), 1795524680);
        assert_eq!(Aggregator::bucket_of(1795524690), 1795524690);
        assert_eq!(Aggregator::bucket_of(-1), -10);
    }

    #[test]
    fn thousand_tag_sets_stay_bounded_and_drop_oldest() {
        let mut agg = Aggregator::with_limits(100, 1_000);
        for i in 0..1000 {
            agg.add(&point("m", 1.0, 1795520241, &[&format!("id:{i}")]));
        }
        assert_eq!(agg.len(), 100);
        assert_eq!(agg.take_dropped(), 900);
        assert_eq!(agg.take_dropped(), 0);
        let series = agg.drain();
        assert_eq!(series[0].tags, ["id:900"], "the newest are kept");
    }

    #[test]
    fn value_limit_drops_oldest_series() {
        let mut agg = Aggregator::with_limits(100, 5);
        for _ in 0..4 {
            agg.add(&point("old", 1.0, 10, &[]));
        }
        agg.add(&point("new", 1.0, 10, &[]));
        agg.add(&point("new", 1.0, 10, &[]));
        assert_eq!(agg.take_dropped(), 4);
        assert_eq!(agg.drain().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["new"]);
    }
}
