//! `lambda_metric(name, value, tags, timestamp)`: the seed's custom-metric call (§3.1),
//! validated so that nothing a handler passes can panic the runtime. A rejected metric is a
//! [`CustomMetricError`] the caller logs once; an accepted one is a [`MetricPoint`] with the
//! layer tag appended.
use super::point::{MetricPoint, MetricValue};
use super::tags::layer_tag;

/// Datadog's intake refuses points older than this; the seed drops them with a warning.
pub const MAX_AGE_SECONDS: i64 = 4 * 60 * 60;

/// A timestamp above this is in milliseconds (year ~5138 in seconds); the Forwarder's own
/// check uses the same bound.
const MILLISECONDS_THRESHOLD: f64 = 1e11;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CustomMetricError {
    #[error("Ignoring metric submission. Invalid metric name: {0:?} (a metric name must be a non-empty string)")]
    InvalidName(String),
    #[error("Ignoring metric submission for metric {name:?} because the value is not numeric: {value}")]
    NotNumeric { name: String, value: String },
    #[error("Ignoring metric submission for metric {name:?}: the value {value} is not finite (NaN and infinity cannot be sent)")]
    NotFinite { name: String, value: f64 },
    #[error("Timestamp {timestamp} is older than 4 hours, not submitting metric {name:?}")]
    TooOld { name: String, timestamp: i64 },
    #[error("Ignoring metric submission for metric {name:?}: timestamp {timestamp} is not Unix epoch seconds")]
    InvalidTimestamp { name: String, timestamp: String },
    #[error("Ignoring metric submission: {0}")]
    Malformed(String),
}

/// Validates one `lambda_metric` call. `timestamp` is epoch seconds (a float is truncated;
/// one in milliseconds is recognised and converted, with a warning, rather than sent into
/// the year 58000); `None` or `0` means `now`.
pub fn lambda_metric(
    name: &str,
    value: MetricValue,
    tags: &[String],
    timestamp: Option<f64>,
    now: i64,
) -> Result<MetricPoint, CustomMetricError> {
    if name.trim().is_empty() {
        return Err(CustomMetricError::InvalidName(name.to_owned()));
    }
    if let MetricValue::Float(f) = value {
        if !f.is_finite() {
            return Err(CustomMetricError::NotFinite {
                name: name.to_owned(),
                value: f,
            });
        }
    }
    let timestamp = resolve_timestamp(name, timestamp, now)?;
    let mut all_tags: Vec<String> = tags.iter().filter(|t| !t.is_empty()).cloned().collect();
    all_tags.push(layer_tag());
    Ok(MetricPoint::new(name, value, timestamp, all_tags))
}

fn resolve_timestamp(name: &str, timestamp: Option<f64>, now: i64) -> Result<i64, CustomMetricError> {
    let Some(mut ts) = timestamp.filter(|t| *t != 0.0) else {
        return Ok(now);
    };
    if !ts.is_finite() || ts < 0.0 {
        return Err(CustomMetricError::InvalidTimestamp {
            name: name.to_owned(),
            timestamp: ts.to_string(),
        });
    }
    if ts > MILLISECONDS_THRESHOLD {
        tracing::warn!(
            "metric {name:?}: timestamp {ts} looks like milliseconds; using it as {} seconds",
            (ts / 1000.0) as i64
        );
        ts /= 1000.0;
    }
    let ts = ts as i64;
    if ts < now - MAX_AGE_SECONDS {
        return Err(CustomMetricError::TooOld {
            name: name.to_owned(),
            timestamp: ts,
        });
    }
    Ok(ts)
}

/// The same call from loosely typed input (a handler in another language, the sdk's ABI):
/// `{"name": .., "value": .., "tags": [..], "timestamp": ..}`. Numeric strings are accepted
/// as the seed accepts them (`"3"` is 3); anything else is a clear error.
pub fn lambda_metric_from_json(call: &serde_json::Value, now: i64) -> Result<MetricPoint, CustomMetricError> {
    use serde_json::Value;
    let Some(fields) = call.as_object() else {
        return Err(CustomMetricError::Malformed(format!("expected a JSON object, got {call}")));
    };
    let name = match fields.get("name") {
        Some(Value::String(s)) => s.as_str(),
        other => {
            return Err(CustomMetricError::InvalidName(
                other.map_or_else(|| "<missing>".to_owned(), Value::to_string),
            ))
        }
    };
    let not_numeric = |v: &Value| CustomMetricError::NotNumeric {
        name: name.to_owned(),
        value: v.to_string(),
    };
    let value = match fields.get("value").unwrap_or(&Value::Null) {
        Value::Number(n) => match n.as_i64() {
            Some(i) => MetricValue::Integer(i),
            None => MetricValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => parse_numeric(s.trim()).ok_or_else(|| not_numeric(&Value::String(s.clone())))?,
        other => return Err(not_numeric(other)),
    };
    let tags: Vec<String> = match fields.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match t {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        Some(other) => {
            return Err(CustomMetricError::Malformed(format!(
                "tags of {name:?} must be a list of strings, got {other}"
            )))
        }
    };
    let timestamp = match fields.get("timestamp") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(other) => {
            return Err(CustomMetricError::InvalidTimestamp {
                name: name.to_owned(),
                timestamp: other.to_string(),
            })
        }
    };
    lambda_metric(name, value, &tags, timestamp, now)
}

/// A number written as text, kept an integer when it is one.
pub fn parse_numeric(text: &str) -> Option<MetricValue> {
    if let Ok(i) = text.parse::<i64>() {
        return Some(MetricValue::Integer(i));
    }
    text.parse::<f64>().ok().map(MetricValue::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_795_524_688;

    #[test]
    fn accepted_metric_gets_the_layer_tag_and_now() {
        let p = lambda_metric("peer.test.count", 1.into(), &["k:v".into()], None, NOW).unwrap();
        assert_eq!(p.name, "peer.test.count");
        assert_eq!(p.value, MetricValue::Integer(1));
        assert_eq!(p.timestamp, NOW);
        assert_eq!(*p.tags, ["k:v".to_owned(), layer_tag()]);
    }

    #[test]
    fn empty_name_is_rejected() {
        assert_eq!(
            lambda_metric("", 1.into(), &[], None, NOW),
            Err(CustomMetricError::InvalidName(String::new()))
        );
        assert!(matches!(
            lambda_metric("  ", 1.into(), &[], None, NOW),
            Err(CustomMetricError::InvalidName(_))
        ));
    }

    #[test]
    fn nan_and_infinity_are_rejected() {
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = lambda_metric("m", v.into(), &[], None, NOW).unwrap_err();
            assert!(matches!(err, CustomMetricError::NotFinite { .. }), "{err}");
        }
    }

    #[test]
    fn millisecond_timestamps_are_converted() {
        let p = lambda_metric("m", 1.into(), &[], Some((NOW * 1000 + 123) as f64), NOW).unwrap();
        assert_eq!(p.timestamp, NOW);
        let p = lambda_metric("m", 1.into(), &[], Some(NOW as f64 - 10.7), NOW).unwrap();
        assert_eq!(p.timestamp, NOW - 11, "float seconds are truncated");
    }

    #[test]
    fn timestamps_older_than_four_hours_are_rejected() {
        let err = lambda_metric("m", 1.into(), &[], Some((NOW - MAX_AGE_SECONDS - 1) as f64), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Timestamp {} is older than 4 hours, not submitting metric \"m\"",
                NOW - MAX_AGE_SECONDS - 1
            )
        );
        assert!(lambda_metric("m", 1.into(), &[], Some((NOW - MAX_AGE_SECONDS) as f64), NOW).is_ok());
        assert!(matches!(
            lambda_metric("m", 1.into(), &[], Some(-5.0), NOW),
            Err(CustomMetricError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn json_calls_with_bad_types() {
        assert!(matches!(
            lambda_metric_from_json(&json!({"name": 5, "value": 1}), NOW),
            Err(CustomMetricError::InvalidName(_))
        ));
        assert!(matches!(
            lambda_metric_from_json(&json!({"value": 1}), NOW),
            Err(CustomMetricError::InvalidName(_))
        ));
        let err = lambda_metric_from_json(&json!({"name": "m", "value": "abc"}), NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Ignoring metric submission for metric \"m\" because the value is not numeric: \"abc\""
        );
        assert!(matches!(
            lambda_metric_from_json(&json!({"name": "m", "value": null}), NOW),
            Err(CustomMetricError::NotNumeric { .. })
        ));
        assert!(matches!(
            lambda_metric_from_json(&json!({"name": "m", "value": 1, "timestamp": "2024-01-01T00:00:00Z"}), NOW),
            Err(CustomMetricError::InvalidTimestamp { .. })
        ));
        assert!(matches!(
            lambda_metric_from_json(&json!([1]), NOW),
            Err(CustomMetricError::Malformed(_))
        ));
        let p = lambda_metric_from_json(&json!({"name": "m", "value": "3", "tags": ["a:b"], "timestamp": NOW}), NOW).unwrap();
        assert_eq!(p.value, MetricValue::Integer(3));
        assert_eq!(p.tags[0], "a:b");
        let p = lambda_metric_from_json(&json!({"name": "m", "value": 2.5}), NOW).unwrap();
        assert_eq!(p.value, MetricValue::Float(2.5));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_input(name in ".*", value in proptest::num::f64::ANY, ts in proptest::option::of(proptest::num::f64::ANY), tags in proptest::collection::vec(".*", 0..4)) {
            let result = lambda_metric(&name, value.into(), &tags, ts, NOW);
            if let Ok(point) = result {
                prop_assert!(point.value.is_finite());
                prop_assert!(!point.name.trim().is_empty());
                prop_assert!(point.timestamp >= NOW - MAX_AGE_SECONDS);
            }
        }
    }
}
