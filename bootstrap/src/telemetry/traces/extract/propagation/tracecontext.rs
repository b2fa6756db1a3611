//! W3C Trace Context: `traceparent` (`00-<32 hex trace>-<16 hex parent>-<2 hex flags>`) and
//! the `dd=` member of `tracestate` (`s:` priority, `o:` origin, `p:` last Datadog parent,
//! `t.*` trace tags).
use super::Carrier;
use crate::telemetry::traces::extract::context::TraceContext;
use crate::telemetry::traces::span::TraceId;

/// ddtrace ignores a `tracestate` longer than this many list members.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Parses a `traceparent` value into (trace id, parent id, sampled flag).
pub fn traceparent(value: &str) -> Option<(TraceId, u64, bool)> {
    let value = value.trim().to_ascii_lowercase();
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace, parent, flags, ..] = parts.as_slice() else {
        return None;
    };
    let is_hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !is_hex(version, 2) || *version == "ff" || (*version == "00" && parts.len() != 4) {
        return None;
    }
    if !is_hex(trace, 32) || !is_hex(parent, 16) || !is_hex(flags, 2) {
        return None;
    }
    let trace_id = TraceId::from_u128(u128::from_str_radix(trace, 16).ok()?);
    let parent_id = u64::from_str_radix(parent, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    if trace_id.is_zero() || parent_id == 0 {
        return None;
    }
    Some((trace_id, parent_id, flags & 1 == 1))
}

pub(super) fn extract(carrier: &Carrier) -> Option<TraceContext> {
    let (trace_id, parent_id, sampled) = traceparent(carrier.get("traceparent")?)?;
    let mut context = TraceContext::new(trace_id, parent_id, Some(i32::from(sampled)));
    let Some(state) = carrier.get("tracestate") else {
        return Some(context);
    };
    let members: Vec<&str> = state.split(',').collect();
    if members.len() > MAX_TRACESTATE_MEMBERS {
        return Some(context);
    }
    let Some(dd) = members.iter().find_map(|m| m.trim().strip_prefix("dd=")) else {
        return Some(context);
    };
    for field in dd.split(';') {
        let Some((key, value)) = field.split_once(':') else { continue };
        let value = value.replace('~', "=");
        match key {
            // The state's priority counts only when it agrees with the sampled flag.
            "s" => {
                if let Ok(priority) = value.parse::<i32>() {
                    if (priority > 0) == sampled {
                        context.sampling_priority = Some(priority);
                    }
                }
            }
            "o" => context.origin = Some(value),
            "p" => {
                context.tags.insert("_dd.parent_id".to_owned(), value);
            }
            _ => {
                if let Some(tag) = key.strip_prefix("t.") {
                    // The trace id itself is authoritative for the high bits.
                    if tag != "tid" {
                        context.tags.insert(format!("_dd.p.{tag}"), value);
                    }
                }
            }
        }
    }
    Some(context)
}

pub(super) fn inject(context: &TraceContext) -> Vec<(String, String)> {
    let sampled = context.sampling_priority.is_some_and(|p| p > 0);
    let parent = format!(
        "00-{:032x}-{:016x}-{}",
        context.trace_id.as_u128(),
        context.parent_id,
        if sampled { "01" } else { "00" }
    );
    let mut dd = Vec::new();
    if let Some(priority) = context.sampling_priority {
        dd.push(format!("s:{priority}"));
    }
    if let Some(origin) = &context.origin {
        dd.push(format!("o:{}", origin.replace('=', "~")));
    }
    for (key, value) in context
        .tags
        .iter()
        .filter(|(k, _)| k.starts_with("_dd.p.") && k.as_str() != "_dd.p.tid")
    {
        dd.push(format!("t.{}:{}", &key["_dd.p.".len()..], value.replace('=', "~")));
    }
    if let Some(tid) = context.trace_id.tid_tag() {
        dd.push(format!("t.tid:{tid}"));
    }
    vec![
        ("traceparent".to_owned(), parent),
        ("tracestate".to_owned(), format!("dd={}", dd.join(";"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_traceparent() {
        let (trace, parent, sampled) = traceparent("00-0000000000000000d9f454c80b9a529a-73ac6ca3427073a3-01").unwrap();
        assert_eq!(trace.low, 15705271018712617626);
        assert_eq!(trace.high, 0);
        assert_eq!(parent, 8335156458806080419);
        assert!(sampled);
        let (trace, _, sampled) = traceparent("00-66BCB5EB00000000000000000000007B-0000000000000005-00").unwrap();
        assert_eq!(trace, TraceId::new(0x66bcb5eb00000000, 123));
        assert!(!sampled);
    }

    #[test]
    fn rejects_malformed_traceparents() {
        for bad in [
            "",
            "00-abc-def-01",
            "00-00000000000000000000000000000000-0000000000000005-01",
            "00-0000000000000000000000000000abcd-0000000000000000-01",
            "00-0000000000000000000000000000abcg-000000000000004d-01",
            "00-0000000000000000000000000000abcd-000000000000004d-01-extra",
            "ff-0000000000000000000000000000abcd-000000000000004d-01",
            "00-0000000000000000000000000000abcd-000000000000004d",
            "00-0000000000000000000000000000abcd0-00000000000004d-01",
        ] {
            assert!(traceparent(bad).is_none(), "{bad}");
        }
        assert!(traceparent("01-0000000000000000000000000000abcd-000000000000004d-01-future").is_some());
    }

    #[test]
    fn reads_the_dd_tracestate_member() {
        let carrier = Carrier::from_pairs([
            ("traceparent", "00-0000000000000000000000000000abcd-000000000000004d-01"),
            ("tracestate", "foo=bar,dd=s:2;o:rum;p:0000000000000005;t.dm:-4;t.usr.id:a~b"),
        ]);
        let ctx = extract(&carrier).unwrap();
        assert_eq!(ctx.sampling_priority, Some(2));
        assert_eq!(ctx.origin.as_deref(), Some("rum"));
        assert_eq!(ctx.tags["_dd.p.dm"], "-4");
        assert_eq!(ctx.tags["_dd.p.usr.id"], "a=b");
        assert_eq!(ctx.tags["_dd.parent_id"], "0000000000000005");
    }

    #[test]
    fn a_state_priority_that_contradicts_the_flag_is_ignored() {
        let carrier = Carrier::from_pairs([
            ("traceparent", "00-0000000000000000000000000000abcd-000000000000004d-00"),
            ("tracestate", "dd=s:2"),
        ]);
        assert_eq!(extract(&carrier).unwrap().sampling_priority, Some(0));
    }
}
