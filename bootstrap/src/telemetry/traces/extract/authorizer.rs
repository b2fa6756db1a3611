//! Trace context a Lambda authorizer injected into the API Gateway request (§5.8):
//! `requestContext.authorizer._datadog` (REST, WebSocket) or
//! `requestContext.authorizer.lambda._datadog` (HTTP API), base64 of a JSON header map.
use base64::Engine;
use serde_json::Value;

use crate::telemetry::traces::json;

pub const PARENT_SPAN_FINISH_TIME: &str = "x-datadog-parent-span-finish-time";
pub const AUTHORIZING_REQUEST_ID: &str = "x-datadog-authorizing-requestid";

/// The injected header map, when present and not a cached authorizer result: it counts only
/// when `integrationLatency > 0` or the request id matches the one the authorizer saw.
/// Anything undecodable is no data.
pub fn injected_data(event: &Value, is_http_api: bool) -> Option<Value> {
    let request_context = json::get(event, "requestContext").filter(|rc| json::truthy(Some(rc)))?;
    let authorizer = json::get(request_context, "authorizer").filter(|a| json::truthy(Some(a)))?;
    let raw = if is_http_api {
        let lambda = json::get(authorizer, "lambda").filter(|l| json::truthy(Some(l)))?;
        json::get(lambda, "_datadog")
    } else {
        json::get(authorizer, "_datadog")
    }?
    .as_str()
    .filter(|s| !s.is_empty())?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
    let data: Value = serde_json::from_slice(&decoded).ok()?;
    if !data.is_object() {
        return None;
    }
    let latency = json::get(authorizer, "integrationLatency").and_then(Value::as_f64).unwrap_or(0.0);
    if latency > 0.0 {
        return Some(data);
    }
    let request_id = json::get(request_context, "requestId");
    (request_id.is_some() && request_id == json::get(&data, AUTHORIZING_REQUEST_ID)).then_some(data)
}

/// The authorizer span's end, as injected: nanoseconds, possibly written as a float or text.
pub fn parent_span_finish_time_ns(data: &Value) -> Option<i64> {
    let value = json::get(data, PARENT_SPAN_FINISH_TIME)?;
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f.trunc() as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encoded(data: &Value) -> String {
        base64::engine::general_purpose::STANDARD.encode(data.to_string())
    }

    #[test]
    fn cached_results_are_ignored() {
        let data = json!({"x-datadog-trace-id": "1", "x-datadog-authorizing-requestid": "other"});
        let event = json!({"requestContext": {"requestId": "abc", "authorizer": {"_datadog": encoded(&data), "integrationLatency": 0}}});
        assert!(injected_data(&event, false).is_none());
        let event = json!({"requestContext": {"requestId": "other", "authorizer": {"_datadog": encoded(&data)}}});
        assert!(injected_data(&event, false).is_some());
        let event = json!({"requestContext": {"authorizer": {"lambda": {"_datadog": encoded(&data)}, "integrationLatency": 5}}});
        assert!(injected_data(&event, true).is_some());
    }

    #[test]
    fn undecodable_data_is_ignored() {
        for raw in ["not base64 !!", "bm90IGpzb24=" /* "not json" */, "WzEsMl0=" /* [1,2] */] {
            let event = json!({"requestContext": {"authorizer": {"_datadog": raw, "integrationLatency": 5}}});
            assert!(injected_data(&event, false).is_none(), "{raw}");
        }
    }

    #[test]
    fn finish_time_in_any_spelling() {
        assert_eq!(
            parent_span_finish_time_ns(&json!({PARENT_SPAN_FINISH_TIME: 1663295021827521000u64})),
            Some(1663295021827521000)
        );
        assert_eq!(
            parent_span_finish_time_ns(&json!({PARENT_SPAN_FINISH_TIME: 1663721602440.8286})),
            Some(1663721602440)
        );
        assert_eq!(parent_span_finish_time_ns(&json!({PARENT_SPAN_FINISH_TIME: "12"})), Some(12));
        assert_eq!(parent_span_finish_time_ns(&json!({PARENT_SPAN_FINISH_TIME: [1]})), None);
    }
}
