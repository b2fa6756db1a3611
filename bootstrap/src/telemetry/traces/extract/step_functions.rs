//! Step Functions context (§5.10): trace and parent ids derived from the execution by
//! SHA-256, or carried from a Lambda root in `_datadog`.
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::context::TraceContext;
use crate::telemetry::traces::json;
use crate::telemetry::traces::span::TraceId;

/// The first (`high`) or second (`low`) 8 bytes of SHA-256(`text`), big-endian, top bit
/// cleared; 0 becomes 1.
pub fn hash64(text: &str, high: bool) -> u64 {
    let digest = Sha256::digest(text.as_bytes());
    let range = if high { 0..8 } else { 8..16 };
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[range]);
    let id = u64::from_be_bytes(bytes) & 0x7FFF_FFFF_FFFF_FFFF;
    id.max(1)
}

/// `x-datadog-trace-id` (+ `_dd.p.tid` from `x-datadog-tags`) of a `_datadog` object.
fn datadog_trace_id(data: &Value) -> Option<Result<(u64, Option<String>), ()>> {
    let raw = json::get(data, "x-datadog-trace-id")?;
    let Some(trace_id) = json::text(raw).and_then(|t| t.trim().parse::<u64>().ok()) else {
        return Some(Err(()));
    };
    let tid = json::get(data, "x-datadog-tags")
        .and_then(Value::as_str)
        .and_then(|tags| tags.split(',').find(|t| t.contains("_dd.p.tid=")))
        .and_then(|t| t.split('=').nth(1))
        .map(str::to_owned);
    Some(Ok((trace_id, tid)))
}

/// HIGH64(`<Execution.Id>#<State.Name>#<State.EnteredTime>[#<RetryCount>#<RedriveCount>]`).
fn parent_id(context: &Value) -> Option<u64> {
    let execution_id = json::str_at(context, &["Execution", "Id"])?;
    let state_name = json::py_str(json::path(context, &["State", "Name"]));
    let entered = json::py_str(json::path(context, &["State", "EnteredTime"]));
    let count = |keys: &[&str]| json::path(context, keys).map_or_else(|| "0".to_owned(), |v| json::py_str(Some(v)));
    let retry = count(&["State", "RetryCount"]);
    let redrive = count(&["Execution", "RedriveCount"]);
    let suffix = if retry == "0" && redrive == "0" {
        String::new()
    } else {
        format!("#{retry}#{redrive}")
    };
    Some(hash64(&format!("{execution_id}#{state_name}#{entered}{suffix}"), true))
}

/// The context of a Step Functions invocation (the event or a `_datadog` object), or `None`
/// when it is not one.
pub fn extract(event: &Value) -> Option<TraceContext> {
    let event = json::get(event, "Payload").unwrap_or(event);
    let context = json::get(event, "_datadog").unwrap_or(event);
    if !context.is_object() {
        return None;
    }
    let (trace_id, tid) = if json::get(context, "serverless-version").and_then(Value::as_str) == Some("v1") {
        if let Some(found) = datadog_trace_id(context) {
            found.ok()?
        } else {
            let root = json::str_at(context, &["RootExecutionId"])?;
            (hash64(root, false), Some(format!("{:x}", hash64(root, true))))
        }
    } else {
        let input = json::path(context, &["Execution", "Input", "_datadog"]).filter(|d| json::truthy(Some(d)));
        if let Some(found) = input.and_then(datadog_trace_id) {
            found.ok()?
        } else {
            let execution_id = json::str_at(context, &["Execution", "Id"])?;
            (hash64(execution_id, false), Some(format!("{:x}", hash64(execution_id, true))))
        }
    };
    let parent = parent_id(context)?;
    // `_dd.p.tid` from a hash is not zero-padded (§11), so it is kept verbatim as a tag; the
    // high half of the id is what it parses to.
    let high = tid.as_deref().and_then(|t| u64::from_str_radix(t, 16).ok()).unwrap_or(0);
    let mut ctx = TraceContext::new(TraceId::new(high, trace_id), parent, Some(1));
    ctx.tags.remove("_dd.p.tid");
    if let Some(tid) = tid {
        ctx.tags.insert("_dd.p.tid".to_owned(), tid);
    }
    Some(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_vectors() {
        assert_eq!(hash64("some_testing_random_string", false), 7456137785171041414);
        assert_eq!(
            hash64(
                "arn:aws:states:sa-east-1:425362996713:stateMachine:MyStateMachine-b276uka1j#lambda#1",
                true
            ),
            3711631873188331089
        );
        assert_eq!(
            hash64(
                "arn:aws:states:sa-east-1:425362996713:stateMachine:MyStateMachine-b276uka1j#lambda#2",
                true
            ),
            5759173372325510050
        );
    }

    fn legacy(retry: u64, redrive: u64) -> Value {
        json!({
            "Execution": {"Id": "arn:aws:states:sa-east-1:425362996713:execution:abhinav-activity-state-machine:72a7ca3e-901c-41bb-b5a3-5f279b92a316",
                          "RedriveCount": redrive},
            "StateMachine": {},
            "State": {"Name": "Lambda Invoke", "EnteredTime": "2024-12-04T19:38:04.118Z", "RetryCount": retry}
        })
    }

    #[test]
    fn legacy_vectors() {
        for (retry, redrive, parent) in [
            (0, 0, 3929055471293792800u64),
            (1, 0, 5324109749361013132),
            (0, 1, 8782364156266188026),
        ] {
            let ctx = extract(&legacy(retry, redrive)).unwrap();
            assert_eq!(ctx.trace_id.low, 435175499815315247);
            assert_eq!(ctx.parent_id, parent);
            assert_eq!(ctx.tags["_dd.p.tid"], "3e7a89d1b7310603");
            assert_eq!(ctx.sampling_priority, Some(1));
        }
    }

    #[test]
    fn legacy_with_datadog_input_and_v1_roots() {
        let mut event = legacy(0, 0);
        event["Execution"]["Input"] =
            json!({"_datadog": {"x-datadog-trace-id": "12766418539254701015", "x-datadog-tags": "_dd.p.tid=69f4ed3a00000000"}});
        let ctx = extract(&json!({"Payload": event})).unwrap();
        assert_eq!(ctx.trace_id.low, 12766418539254701015);
        assert_eq!(ctx.tags["_dd.p.tid"], "69f4ed3a00000000");

        let v1 = json!({"_datadog": {
            "Execution": {"Id": "arn:aws:states:sa-east-1:425362996713:execution:abhinav-activity-state-machine:72a7ca3e-901c-41bb-b5a3-5f279b92a316", "RedriveCount": 0},
            "StateMachine": {}, "State": {"Name": "Lambda Invoke", "EnteredTime": "2024-12-04T19:38:04.118Z", "RetryCount": 0},
            "RootExecutionId": "4875aba4-ae31-4a4c-bf8a-63e9eee31dad", "serverless-version": "v1"}});
        let ctx = extract(&v1).unwrap();
        assert_eq!(ctx.trace_id.low, 4521899030418994483);
        assert_eq!(ctx.tags["_dd.p.tid"], "12d1270d99cc5e03");
    }

    #[test]
    fn not_a_step_functions_context() {
        assert!(extract(&json!({"x-datadog-trace-id": "1"})).is_none());
        assert!(extract(&json!([1])).is_none());
        let mut bad = legacy(0, 0);
        bad["Execution"]["Input"] = json!({"_datadog": {"x-datadog-trace-id": "not a number"}});
        assert!(extract(&bad).is_none());
    }
}
