//! One metric sample, the unit every source produces and every sink consumes.
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A sample's value, kept as it was given so the Forwarder line prints `1` for an integer
/// and `0.25` for a float, exactly as Datadog's Python library prints them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue {
    Integer(i64),
    Float(f64),
}

impl MetricValue {
    pub fn as_f64(self) -> f64 {
        match self {
            MetricValue::Integer(i) => i as f64,
            MetricValue::Float(f) => f,
        }
    }

    /// Only finite values can be sent: JSON has no NaN or infinity.
    pub fn is_finite(self) -> bool {
        match self {
            MetricValue::Integer(_) => true,
            MetricValue::Float(f) => f.is_finite(),
        }
    }
}

impl From<i64> for MetricValue {
    fn from(value: i64) -> Self {
        MetricValue::Integer(value)
    }
}

impl From<f64> for MetricValue {
    fn from(value: f64) -> Self {
        MetricValue::Float(value)
    }
}

/// A distribution sample: Datadog's Lambda libraries submit every metric as one.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricPoint {
    pub name: String,
    pub value: MetricValue,
    /// Unix epoch seconds.
    pub timestamp: i64,
    /// `key:value` strings in the order they are printed; shared, because every enhanced
    /// point of an invocation carries the same set.
    pub tags: Arc<[String]>,
}

impl MetricPoint {
    pub fn new(name: impl Into<String>, value: impl Into<MetricValue>, timestamp: i64, tags: impl Into<Arc<[String]>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            timestamp,
            tags: tags.into(),
        }
    }
}

/// Now, in whole Unix epoch seconds (truncated, as the seed's `int(time.time())`).
pub fn now_epoch_seconds() -> i64 {
    epoch_seconds(SystemTime::now())
}

pub fn epoch_seconds(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
