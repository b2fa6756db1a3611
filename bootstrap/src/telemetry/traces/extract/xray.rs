//! X-Ray trace headers (§6.1): `Root=1-<8 hex>-<24 hex>;Parent=<16 hex>;Sampled=<0|1>[;…]`.
use super::context::{ContextSource, TraceContext};
use crate::telemetry::traces::span::TraceId;

/// The three fields Datadog reads, kept as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XrayHeader {
    pub root: String,
    pub parent: String,
    pub sampled: String,
}

/// Positional and strict, as Datadog's library parses it: at least three `;` parts, the
/// first three being `Root=`, `Parent=` and `Sampled=` in that order.
pub fn parse_header(raw: &str) -> Option<XrayHeader> {
    let parts: Vec<&str> = raw.split(';').collect();
    if raw.is_empty() || parts.len() < 3 {
        return None;
    }
    let field = |part: &str, prefix: &str| part.strip_prefix(prefix).map(str::to_owned);
    Some(XrayHeader {
        root: field(parts[0], "Root=")?,
        parent: field(parts[1], "Parent=")?,
        sampled: field(parts[2], "Sampled=")?,
    })
}

/// The Datadog trace id of an X-Ray root: its last 16 hex digits, top bit cleared.
pub fn trace_id_of_root(root: &str) -> Option<u64> {
    let tail = root.get(root.len().checked_sub(16)?..)?;
    Some(u64::from_str_radix(tail, 16).ok()? & 0x7FFF_FFFF_FFFF_FFFF)
}

/// The Datadog span id of an X-Ray segment id.
pub fn span_id_of_entity(entity: &str) -> Option<u64> {
    if entity.is_empty() || entity.len() > 16 {
        return None;
    }
    u64::from_str_radix(entity, 16).ok()
}

/// The invocation's X-Ray context as a Datadog context. Sampling priority is always 2:
/// the library tests the raw `Sampled` string for truth, so `Sampled=0` is "sampled" too
/// (a quirk reproduced on purpose, §11).
pub fn context_from_header(raw: &str) -> Option<TraceContext> {
    let header = parse_header(raw)?;
    let mut context = TraceContext::new(
        TraceId::new(0, trace_id_of_root(&header.root)?),
        span_id_of_entity(&header.parent)?,
        Some(if header.sampled.is_empty() { -1 } else { 2 }),
    );
    context.source = ContextSource::Xray;
    Some(context)
}

/// SQS `AWSTraceHeader` written by a Datadog tracer (e.g. Java): the root's third part starts
/// with eight zeros and the rest is the Datadog trace id.
pub fn datadog_context_from_aws_trace_header(raw: &str) -> Option<TraceContext> {
    let header = parse_header(raw)?;
    let third = header.root.split('-').nth(2)?;
    let id = third.strip_prefix("00000000")?;
    let trace_id = u64::from_str_radix(id, 16).ok()?;
    let parent_id = u64::from_str_radix(&header.parent, 16).ok()?;
    let sampled: f64 = header.sampled.trim().parse().ok()?;
    Some(TraceContext::new(TraceId::new(0, trace_id), parent_id, Some(sampled as i32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_ids_as_datadog_does() {
        let ctx =
            context_from_header("Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1;Lineage=c6c5b1b9:0").unwrap();
        assert_eq!(ctx.trace_id.low, 3995693151288333088);
        assert_eq!(ctx.parent_id, 10713633173203262661);
        assert_eq!(ctx.sampling_priority, Some(2));
        assert_eq!(ctx.source, ContextSource::Xray);
        let ctx = context_from_header("Root=1-5e272390-ffffffffffffffffffffffff;Parent=94ae789b969f1cc5;Sampled=0").unwrap();
        assert_eq!(ctx.trace_id.low, 9223372036854775807);
        assert_eq!(ctx.sampling_priority, Some(2), "Sampled=0 is still priority 2 (quirk)");
    }

    #[test]
    fn strict_positional_parsing() {
        for bad in [
            "",
            "Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5",
            "Parent=94ae789b969f1cc5;Root=1-5e272390-8c398be037738dc042009320;Sampled=1",
            "Root=1-5e272390-8c398be037738dc04200932z;Parent=94ae789b969f1cc5;Sampled=1",
            "Root=1-5e272390-8c398be037738dc042009320;Parent=nothex;Sampled=1",
            "Root=short;Parent=94ae789b969f1cc5;Sampled=1",
        ] {
            assert!(context_from_header(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn datadog_ids_inside_aws_trace_header() {
        let ctx =
            datadog_context_from_aws_trace_header("Root=1-65eb7350-000000006dfd06bf489aa4e5;Parent=48cc02b6aafae897;Sampled=1").unwrap();
        assert_eq!(ctx.trace_id.low, 7925498337868555493);
        assert_eq!(ctx.parent_id, 5245570649555658903);
        assert_eq!(ctx.sampling_priority, Some(1));
        assert!(
            datadog_context_from_aws_trace_header("Root=1-64cc2edd-112fbf1701d1355973a11d57;Parent=7d5a9776024b2d42;Sampled=0").is_none()
        );
    }
}
