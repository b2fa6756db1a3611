//! Zipkin B3: the single `b3` header (`<trace>-<span>[-<sampled>[-<parent>]]`) and the
//! `x-b3-*` multi headers. Ids are hex (16 or 32 digits for traces).
use super::Carrier;
use crate::telemetry::traces::extract::context::TraceContext;
use crate::telemetry::traces::span::TraceId;

fn hex_trace_id(raw: &str) -> Option<TraceId> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let id = TraceId::from_u128(u128::from_str_radix(raw, 16).ok()?);
    (!id.is_zero()).then_some(id)
}

fn hex_span_id(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 16 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(raw, 16).ok().filter(|id| *id != 0)
}

/// `1`/`true` keep, `0`/`false` reject, `d` (debug) is a user keep.
fn sampling(raw: &str) -> Option<i32> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Some(1),
        "0" | "false" => Some(0),
        "d" => Some(2),
        _ => None,
    }
}

pub(super) fn extract_multi(carrier: &Carrier) -> Option<TraceContext> {
    let trace_id = hex_trace_id(carrier.get("x-b3-traceid")?)?;
    let span_id = carrier.get("x-b3-spanid").and_then(hex_span_id).unwrap_or(0);
    let priority = if carrier.get("x-b3-flags").map(str::trim) == Some("1") {
        Some(2)
    } else {
        carrier.get("x-b3-sampled").and_then(sampling)
    };
    Some(TraceContext::new(trace_id, span_id, priority))
}

pub(super) fn extract_single(carrier: &Carrier) -> Option<TraceContext> {
    let parts: Vec<&str> = carrier.get("b3")?.split('-').collect();
    if parts.len() < 2 {
        // `b3: 0|1|d` alone carries only a decision, no trace to continue.
        return None;
    }
    let trace_id = hex_trace_id(parts[0])?;
    let span_id = hex_span_id(parts[1])?;
    let priority = parts.get(2).and_then(|s| sampling(s));
    Some(TraceContext::new(trace_id, span_id, priority))
}

fn ids(context: &TraceContext) -> (String, String) {
    let trace = if context.trace_id.high == 0 {
        format!("{:016x}", context.trace_id.low)
    } else {
        format!("{:032x}", context.trace_id.as_u128())
    };
    (trace, format!("{:016x}", context.parent_id))
}

pub(super) fn inject_multi(context: &TraceContext) -> Vec<(String, String)> {
    let (trace, span) = ids(context);
    let mut headers = vec![("x-b3-traceid".to_owned(), trace), ("x-b3-spanid".to_owned(), span)];
    match context.sampling_priority {
        Some(p) if p >= 2 => headers.push(("x-b3-flags".to_owned(), "1".to_owned())),
        Some(p) => headers.push(("x-b3-sampled".to_owned(), if p > 0 { "1" } else { "0" }.to_owned())),
        None => {}
    }
    headers
}

pub(super) fn inject_single(context: &TraceContext) -> Vec<(String, String)> {
    let (trace, span) = ids(context);
    let value = match context.sampling_priority {
        Some(p) if p >= 2 => format!("{trace}-{span}-d"),
        Some(p) => format!("{trace}-{span}-{}", if p > 0 { "1" } else { "0" }),
        None => format!("{trace}-{span}"),
    };
    vec![("b3".to_owned(), value)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_headers() {
        let ctx = extract_multi(&Carrier::from_pairs([
            ("X-B3-TraceId", "463ac35c9f6413ad48485a3953bb6124"),
            ("X-B3-SpanId", "a2fb4a1d1a96d312"),
            ("X-B3-Sampled", "1"),
        ]))
        .unwrap();
        assert_eq!(ctx.trace_id.as_u128(), 0x463ac35c9f6413ad48485a3953bb6124);
        assert_eq!(ctx.parent_id, 0xa2fb4a1d1a96d312);
        assert_eq!(ctx.sampling_priority, Some(1));
        assert_eq!(ctx.tags["_dd.p.tid"], "463ac35c9f6413ad");
        let debug = extract_multi(&Carrier::from_pairs([
            ("x-b3-traceid", "1"),
            ("x-b3-spanid", "2"),
            ("x-b3-flags", "1"),
        ]))
        .unwrap();
        assert_eq!(debug.sampling_priority, Some(2));
    }

    #[test]
    fn single_header() {
        let ctx = extract_single(&Carrier::from_pairs([(
            "b3",
            "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-d-05e3ac9a4f6e3b90",
        )]))
        .unwrap();
        assert_eq!(ctx.parent_id, 0xe457b5a2e4d86bd1);
        assert_eq!(ctx.sampling_priority, Some(2));
        assert!(extract_single(&Carrier::from_pairs([("b3", "1")])).is_none());
    }

    #[test]
    fn malformed_b3() {
        for bad in [
            "zz-e457b5a2e4d86bd1-1",
            "0-e457b5a2e4d86bd1-1",
            "80f198ee56343ba8-0-1",
            "80f198ee56343ba864fe8b2a57d3eff7aa-1-1",
        ] {
            assert!(extract_single(&Carrier::from_pairs([("b3", bad)])).is_none(), "{bad}");
        }
        assert!(extract_multi(&Carrier::from_pairs([("x-b3-traceid", "not-hex")])).is_none());
    }
}
