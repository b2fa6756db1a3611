//! Custom metrics and the API key, sent through the bootstrap (the host).
use std::time::{Duration, SystemTime};

use crate::abi::{self, BorrowedBytes, RawMetric};
use crate::host::host;

/// Datadog refuses points older than this (the seed drops them with a warning).
const MAX_AGE: Duration = Duration::from_hours(4);

/// Why a telemetry call did nothing. Every failure is one of these: the calls never panic.
///
/// ```
/// let error = sdk::lambda_metric("", 1, ["tag:a"], None).unwrap_err();
/// assert_eq!(error, sdk::TelemetryError::InvalidMetricName(String::new()));
/// assert!(error.to_string().contains("Invalid metric name"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub enum TelemetryError {
    /// The library is not running under the `bootstrap` (a unit test, a doctest, another
    /// loader): there is nowhere to send the metric, so it is dropped.
    NotAttached,
    /// The metric name is empty or blank.
    InvalidMetricName(String),
    /// The value is NaN or infinite, which Datadog cannot store.
    NotFinite {
        /// The metric's name.
        name: String,
        /// The value given.
        value: f64,
    },
    /// The timestamp is before the Unix epoch.
    InvalidTimestamp {
        /// The metric's name.
        name: String,
    },
    /// The timestamp is more than 4 hours old, which Datadog refuses.
    TimestampTooOld {
        /// The metric's name.
        name: String,
        /// How old the timestamp is.
        age: Duration,
    },
    /// An argument the host refused (an empty API key, say).
    InvalidArgument(&'static str),
    /// The bootstrap failed on its side (see its log); nothing was recorded.
    HostFailure(i32),
}

impl std::fmt::Display for TelemetryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TelemetryError::NotAttached => f.write_str(
                "not running under the Datadog bootstrap (no host attached): the telemetry was dropped; \
                 run the library with DD_LAMBDA_HANDLER under the bootstrap",
            ),
            TelemetryError::InvalidMetricName(name) => write!(
                f,
                "Ignoring metric submission. Invalid metric name: {name:?} (a metric name must be a non-empty string)"
            ),
            TelemetryError::NotFinite { name, value } => write!(
                f,
                "Ignoring metric submission for metric {name:?}: the value {value} is not finite (NaN and infinity cannot be sent)"
            ),
            TelemetryError::InvalidTimestamp { name } => write!(
                f,
                "Ignoring metric submission for metric {name:?}: the timestamp is before the Unix epoch"
            ),
            TelemetryError::TimestampTooOld { name, age } => write!(
                f,
                "Timestamp is older than 4 hours ({} s ago), not submitting metric {name:?}",
                age.as_secs()
            ),
            TelemetryError::InvalidArgument(what) => write!(f, "refused by the bootstrap: {what}"),
            TelemetryError::HostFailure(status) => write!(f, "the bootstrap failed to record the telemetry (status {status}); see its log"),
        }
    }
}

impl std::error::Error for TelemetryError {}

/// A metric value, kept as given: Datadog's Forwarder line prints an integer as `1` and a float
/// as `1.0`, as the Python library does.
///
/// ```
/// assert_eq!(sdk::MetricValue::from(3), sdk::MetricValue::Integer(3));
/// assert_eq!(sdk::MetricValue::from(2.5), sdk::MetricValue::Float(2.5));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricValue {
    /// A whole number.
    Integer(i64),
    /// A floating-point number; must be finite.
    Float(f64),
}

macro_rules! metric_value_from {
    ($variant:ident as $target:ty: $($source:ty),+) => {$(
        impl From<$source> for MetricValue {
            fn from(value: $source) -> Self {
                MetricValue::$variant(<$target>::from(value))
            }
        }
    )+};
}
metric_value_from!(Integer as i64: i64, i32, i16, i8, u32, u16, u8);
metric_value_from!(Float as f64: f64, f32);

/// No tags, for [`lambda_metric`] (an empty array literal has no element type to infer).
///
/// A refused metric is an error like any other, so `?` turns it into the handler's
/// [`Diagnostic`](crate::Diagnostic) when failing the invocation is what you want:
///
/// ```
/// fn handler(_: serde_json::Value, _: sdk::Context) -> Result<(), sdk::Diagnostic> {
///     sdk::lambda_metric("jobs.done", 1, sdk::NO_TAGS, None)?;
///     Ok(())
/// }
/// let error = handler(serde_json::Value::Null, sdk::Context::default()).unwrap_err();
/// assert_eq!(error.error_type, "sdk::metrics::TelemetryError"); // no bootstrap here
/// ```
pub const NO_TAGS: [&str; 0] = [];

/// Sends a custom metric, a **distribution** point, as Datadog's `lambda_metric` does: the
/// bootstrap adds the `dd_lambda_layer` tag and sends it the way the function is configured
/// (`DD_FLUSH_TO_LOG` stdout line, Datadog API, or the Datadog Extension), after the
/// invocation's response.
///
/// - `tags`: `key:value` strings (empty ones are skipped).
/// - `timestamp`: `None` for now; at most 4 hours old.
///
/// Callable from sync and async handlers, from the init, and from any thread the handler
/// spawns. It validates before sending and never panics: a metric that cannot be sent is an
/// `Err` saying why (and is dropped).
///
/// Outside the bootstrap (as in this doctest) a valid metric has nowhere to go:
///
/// ```
/// use sdk::{lambda_metric, TelemetryError};
///
/// assert_eq!(lambda_metric("orders.placed", 1, ["shop:eu"], None), Err(TelemetryError::NotAttached));
/// assert!(matches!(lambda_metric("latency", f64::NAN, sdk::NO_TAGS, None), Err(TelemetryError::NotFinite { .. })));
/// let old = std::time::SystemTime::now() - std::time::Duration::from_secs(5 * 3600);
/// assert!(matches!(lambda_metric("late", 2.5, vec!["a:b".to_string()], Some(old)), Err(TelemetryError::TimestampTooOld { .. })));
/// ```
pub fn lambda_metric<T>(
    name: &str,
    value: impl Into<MetricValue>,
    tags: impl IntoIterator<Item = T>,
    timestamp: Option<SystemTime>,
) -> Result<(), TelemetryError>
where
    T: AsRef<str>,
{
    let value = value.into();
    let seconds = validate(name, value, timestamp, SystemTime::now())?;
    let host = host().ok_or(TelemetryError::NotAttached)?;
    let tags: Vec<T> = tags.into_iter().collect();
    let raw_tags: Vec<BorrowedBytes> = tags.iter().map(|t| BorrowedBytes::from_slice(t.as_ref().as_bytes())).collect();
    let (value_kind, float_value, integer_value) = match value {
        MetricValue::Integer(i) => (abi::METRIC_VALUE_INTEGER, i as f64, i),
        MetricValue::Float(f) => (abi::METRIC_VALUE_FLOAT, f, 0),
    };
    let metric = RawMetric {
        name: BorrowedBytes::from_slice(name.as_bytes()),
        value_kind,
        float_value,
        integer_value,
        tags: raw_tags.as_ptr(),
        tags_len: raw_tags.len(),
        timestamp: seconds.unwrap_or(f64::NAN),
    };
    match host.metric(&metric) {
        abi::HOST_OK => Ok(()),
        abi::HOST_INVALID_METRIC_NAME => Err(TelemetryError::InvalidMetricName(name.to_owned())),
        abi::HOST_METRIC_VALUE_NOT_FINITE => Err(TelemetryError::NotFinite {
            name: name.to_owned(),
            value: float_value,
        }),
        abi::HOST_INVALID_TIMESTAMP => Err(TelemetryError::InvalidTimestamp { name: name.to_owned() }),
        abi::HOST_TIMESTAMP_TOO_OLD => Err(TelemetryError::TimestampTooOld {
            name: name.to_owned(),
            age: timestamp.and_then(|t| SystemTime::now().duration_since(t).ok()).unwrap_or_default(),
        }),
        abi::HOST_INVALID_ARGUMENT => Err(TelemetryError::InvalidArgument("a tag is not UTF-8 or a pointer is null")),
        status => Err(TelemetryError::HostFailure(status)),
    }
}

/// The seed's checks (§3.1), done here so the caller learns at once why a metric is refused.
/// Returns the timestamp in epoch seconds, `None` for now.
fn validate(name: &str, value: MetricValue, timestamp: Option<SystemTime>, now: SystemTime) -> Result<Option<f64>, TelemetryError> {
    if name.trim().is_empty() {
        return Err(TelemetryError::InvalidMetricName(name.to_owned()));
    }
    if let MetricValue::Float(f) = value {
        if !f.is_finite() {
            return Err(TelemetryError::NotFinite {
                name: name.to_owned(),
                value: f,
            });
        }
    }
    let Some(timestamp) = timestamp else { return Ok(None) };
    let since_epoch = timestamp
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| TelemetryError::InvalidTimestamp { name: name.to_owned() })?;
    if let Ok(age) = now.duration_since(timestamp) {
        if age > MAX_AGE {
            return Err(TelemetryError::TimestampTooOld {
                name: name.to_owned(),
                age,
            });
        }
    }
    Ok(Some(since_epoch.as_secs() as f64))
}

/// Replaces the Datadog API key the bootstrap sends metrics with, from the next flush on (the
/// seed lets a handler do this, e.g. after reading it from its own secret store). The key is
/// never logged. Only the Datadog API transport uses a key; with the Forwarder or the
/// Extension the call succeeds and changes nothing.
///
/// ```
/// assert_eq!(sdk::set_api_key("0123456789abcdef"), Err(sdk::TelemetryError::NotAttached));
/// assert!(matches!(sdk::set_api_key("  "), Err(sdk::TelemetryError::InvalidArgument(_))));
/// ```
pub fn set_api_key(key: &str) -> Result<(), TelemetryError> {
    if key.trim().is_empty() {
        return Err(TelemetryError::InvalidArgument("the API key is empty"));
    }
    let host = host().ok_or(TelemetryError::NotAttached)?;
    match host.set_api_key(key) {
        abi::HOST_OK => Ok(()),
        abi::HOST_INVALID_ARGUMENT => Err(TelemetryError::InvalidArgument("the API key is empty")),
        status => Err(TelemetryError::HostFailure(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn names_values_and_timestamps_are_checked_as_the_seed_checks_them() {
        assert_eq!(
            validate(" ", MetricValue::Integer(1), None, now()),
            Err(TelemetryError::InvalidMetricName(" ".into()))
        );
        assert!(matches!(
            validate("m", MetricValue::Float(f64::INFINITY), None, now()),
            Err(TelemetryError::NotFinite { .. })
        ));
        assert_eq!(validate("m", MetricValue::Float(0.5), None, now()), Ok(None));
        let recent = now() - Duration::from_hours(3);
        assert_eq!(
            validate("m", MetricValue::Integer(1), Some(recent), now()),
            Ok(Some((NOW.as_secs() - 3 * 3600) as f64))
        );
        let future = now() + Duration::from_mins(1);
        assert_eq!(
            validate("m", MetricValue::Integer(1), Some(future), now()),
            Ok(Some((NOW.as_secs() + 60) as f64))
        );
        let old = now() - Duration::from_secs(4 * 3600 + 1);
        assert_eq!(
            validate("m", MetricValue::Integer(1), Some(old), now()),
            Err(TelemetryError::TimestampTooOld {
                name: "m".into(),
                age: Duration::from_secs(4 * 3600 + 1)
            })
        );
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(
            validate("m", MetricValue::Integer(1), Some(before_epoch), now()),
            Err(TelemetryError::InvalidTimestamp { name: "m".into() })
        );
    }

    #[test]
    fn errors_say_what_to_do() {
        assert!(TelemetryError::NotAttached.to_string().contains("DD_LAMBDA_HANDLER"));
        let too_old = TelemetryError::TimestampTooOld {
            name: "m".into(),
            age: Duration::from_secs(20_000),
        };
        assert_eq!(
            too_old.to_string(),
            "Timestamp is older than 4 hours (20000 s ago), not submitting metric \"m\""
        );
    }
}
