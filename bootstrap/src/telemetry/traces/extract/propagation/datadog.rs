//! `x-datadog-*` headers: decimal ids, the sampling priority, the origin and `x-datadog-tags`
//! (`_dd.p.*` trace tags; `_dd.p.tid` carries the high 64 bits of a 128-bit trace id).
use std::collections::BTreeMap;

use super::Carrier;
use crate::telemetry::traces::extract::context::TraceContext;
use crate::telemetry::traces::span::TraceId;

/// ddtrace refuses `x-datadog-tags` longer than this.
const MAX_TAGS_HEADER_LEN: usize = 512;

pub(super) fn extract(carrier: &Carrier) -> Option<TraceContext> {
    let trace_id: u64 = carrier.get("x-datadog-trace-id")?.trim().parse().ok().filter(|id| *id != 0)?;
    let parent_id: u64 = match carrier.get("x-datadog-parent-id") {
        None => 0,
        Some(raw) => raw.trim().parse().ok()?,
    };
    let sampling_priority = match carrier.get("x-datadog-sampling-priority") {
        None => None,
        Some(raw) => Some(raw.trim().parse::<i32>().ok()?),
    };
    let (tags, error) = match carrier.get("x-datadog-tags") {
        None => (BTreeMap::new(), None),
        Some(raw) if raw.len() > MAX_TAGS_HEADER_LEN => (BTreeMap::new(), Some("extract_max_size".to_owned())),
        Some(raw) => decode_tags(raw),
    };
    let mut tags = tags;
    let mut high = 0;
    let mut error = error;
    if let Some(tid) = tags.get("_dd.p.tid").cloned() {
        if let Some(h) = parse_tid(&tid) {
            high = h;
        } else {
            tags.remove("_dd.p.tid");
            error = Some(format!("malformed_tid {tid}"));
        }
    }
    let mut context = TraceContext::new(TraceId::new(high, trace_id), parent_id, sampling_priority);
    context.tags.extend(tags);
    if let Some(error) = error {
        context.tags.insert("_dd.propagation_error".to_owned(), error);
    }
    context.origin = carrier.get("x-datadog-origin").filter(|o| !o.is_empty()).map(str::to_owned);
    Some(context)
}

/// `_dd.p.tid` must be exactly 16 lower-case hex digits.
fn parse_tid(tid: &str) -> Option<u64> {
    (tid.len() == 16 && tid.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| u64::from_str_radix(tid, 16).ok())
        .flatten()
}

/// `k=v,k=v`; only `_dd.p.*` keys are propagated. A malformed list yields no tags and a
/// `decoding_error`.
fn decode_tags(raw: &str) -> (BTreeMap<String, String>, Option<String>) {
    let mut tags = BTreeMap::new();
    for item in raw.split(',').filter(|i| !i.trim().is_empty()) {
        let Some((key, value)) = item.split_once('=') else {
            return (BTreeMap::new(), Some("decoding_error".to_owned()));
        };
        let key = key.trim();
        if key.is_empty() || value.is_empty() || key.contains(' ') {
            return (BTreeMap::new(), Some("decoding_error".to_owned()));
        }
        if key.starts_with("_dd.p.") {
            tags.insert(key.to_owned(), value.to_owned());
        }
    }
    (tags, None)
}

pub(super) fn inject(context: &TraceContext) -> Vec<(String, String)> {
    let mut headers = vec![
        ("x-datadog-trace-id".to_owned(), context.trace_id.low.to_string()),
        ("x-datadog-parent-id".to_owned(), context.parent_id.to_string()),
    ];
    if let Some(priority) = context.sampling_priority {
        headers.push(("x-datadog-sampling-priority".to_owned(), priority.to_string()));
    }
    if let Some(origin) = &context.origin {
        headers.push(("x-datadog-origin".to_owned(), origin.clone()));
    }
    let mut propagated: BTreeMap<&str, String> = context
        .tags
        .iter()
        .filter(|(k, v)| k.starts_with("_dd.p.") && is_encodable_tag(k, v))
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    if let Some(tid) = context.trace_id.tid_tag() {
        propagated.insert("_dd.p.tid", tid);
    }
    let encode = |tags: &BTreeMap<&str, String>| tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
    let mut joined = encode(&propagated);
    if joined.len() > MAX_TAGS_HEADER_LEN {
        // The reader would drop the whole header, and the trace's high 64 bits with it: the
        // other tags go, the trace id stays whole.
        propagated.retain(|k, _| *k == "_dd.p.tid");
        joined = encode(&propagated);
    }
    if !joined.is_empty() {
        headers.push(("x-datadog-tags".to_owned(), joined));
    }
    headers
}

/// A tag `x-datadog-tags` can carry and a reader takes back: printable ASCII, no `,`, no `=` or
/// space in the key. Trace tags read from `tracestate` (or a lax sender) may be anything.
fn is_encodable_tag(key: &str, value: &str) -> bool {
    let printable = |s: &str| !s.is_empty() && s.bytes().all(|b| (b' '..=b'~').contains(&b) && b != b',');
    printable(key) && printable(value) && !key.contains([' ', '='])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn carrier(pairs: &[(&str, &str)]) -> Carrier {
        Carrier::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn reads_ids_priority_origin_and_128_bits() {
        let ctx = extract(&carrier(&[
            ("x-datadog-trace-id", "12345"),
            ("x-datadog-parent-id", "67890"),
            ("x-datadog-sampling-priority", "2"),
            ("x-datadog-origin", "rum"),
            ("x-datadog-tags", "_dd.p.dm=-0,_dd.p.tid=66bcb5eb00000000,other=x"),
        ]))
        .unwrap();
        assert_eq!(ctx.trace_id, TraceId::new(0x66bcb5eb00000000, 12345));
        assert_eq!((ctx.parent_id, ctx.sampling_priority), (67890, Some(2)));
        assert_eq!(ctx.origin.as_deref(), Some("rum"));
        assert_eq!(ctx.tags.len(), 2);
        assert_eq!(ctx.tags["_dd.p.dm"], "-0");
    }

    #[test]
    fn malformed_ids_give_no_context() {
        for bad in ["abc", "-1", "0", "", "18446744073709551616", "0x10"] {
            assert!(
                extract(&carrier(&[("x-datadog-trace-id", bad), ("x-datadog-parent-id", "1")])).is_none(),
                "{bad}"
            );
        }
        assert!(extract(&carrier(&[("x-datadog-trace-id", "1"), ("x-datadog-parent-id", "zz")])).is_none());
        assert!(extract(&carrier(&[("x-datadog-trace-id", "1"), ("x-datadog-sampling-priority", "high")])).is_none());
    }

    #[test]
    fn missing_priority_or_parent_is_incomplete() {
        let ctx = extract(&carrier(&[("x-datadog-trace-id", "1"), ("x-datadog-parent-id", "2")])).unwrap();
        assert!(!ctx.is_complete());
        let ctx = extract(&carrier(&[
            ("x-datadog-trace-id", "1"),
            ("x-datadog-parent-id", "0"),
            ("x-datadog-sampling-priority", "1"),
        ]))
        .unwrap();
        assert!(!ctx.is_complete());
    }

    #[test]
    fn bad_tags_are_dropped_with_a_propagation_error() {
        let base = [
            ("x-datadog-trace-id", "1"),
            ("x-datadog-parent-id", "2"),
            ("x-datadog-sampling-priority", "1"),
        ];
        let with = |tags: &str| {
            let mut pairs = base.to_vec();
            pairs.push(("x-datadog-tags", tags));
            extract(&carrier(&pairs)).unwrap()
        };
        let huge = format!("_dd.p.dm=-0,{}", "_dd.p.x=y,".repeat(100));
        let ctx = with(&huge);
        assert_eq!(ctx.tags.get("_dd.propagation_error").map(String::as_str), Some("extract_max_size"));
        assert!(ctx.is_complete(), "the ids are still good");
        assert_eq!(with("no-equals-sign").tags["_dd.propagation_error"], "decoding_error");
        let ctx = with("_dd.p.tid=XYZ");
        assert_eq!(ctx.trace_id.high, 0);
        assert_eq!(ctx.tags["_dd.propagation_error"], "malformed_tid XYZ");
        assert_eq!(with("_dd.p.tid=66BCB5EB00000000").trace_id.high, 0, "upper-case tid is malformed");
    }
}
