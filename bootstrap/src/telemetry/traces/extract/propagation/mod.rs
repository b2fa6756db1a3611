//! Reading (and writing) trace context in the header formats of
//! `DD_TRACE_PROPAGATION_STYLE_EXTRACT` / `_INJECT`, as Datadog's tracers do.
mod b3;
mod baggage;
mod datadog;
mod tracecontext;

use std::collections::HashMap;

use serde_json::Value;

use super::context::TraceContext;
use crate::telemetry::traces::config::PropagationStyle;

pub use tracecontext::traceparent;

/// Header names and values, names lower-cased (header names are case-insensitive).
#[derive(Clone, Debug, Default)]
pub struct Carrier {
    headers: HashMap<String, String>,
}

impl Carrier {
    /// A carrier from a JSON object of headers; values that are neither text nor numbers are
    /// ignored, and anything else than an object is an empty carrier.
    pub fn from_json(value: &Value) -> Self {
        value.as_object().map_or_else(Self::default, Self::from_json_map)
    }

    /// As [`Carrier::from_json`], from the object itself. Only the headers a propagation style
    /// reads are kept: an HTTP event carries dozens of others, and copying each of them would
    /// cost more than the extraction.
    pub fn from_json_map(map: &serde_json::Map<String, Value>) -> Self {
        let headers = map
            .iter()
            .filter(|(k, _)| is_propagation_header(k))
            .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), crate::telemetry::traces::json::text(v)?)))
            .collect();
        Self { headers }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self {
            headers: pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Whether any propagation style reads a header of this name (case-insensitive).
pub fn is_propagation_header(name: &str) -> bool {
    let starts = |prefix: &str| name.len() >= prefix.len() && name.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes());
    starts("x-datadog-")
        || starts("x-b3-")
        || ["traceparent", "tracestate", "baggage", "b3"]
            .iter()
            .any(|known| name.eq_ignore_ascii_case(known))
}

/// Extracts a context with the configured styles, in order. The first style that finds one
/// wins; a W3C context of the same trace re-parents it as ddtrace does; baggage is added to
/// whatever was found. The result may be incomplete: callers check [`TraceContext::is_complete`].
pub fn extract(carrier: &Carrier, styles: &[PropagationStyle]) -> Option<TraceContext> {
    let mut primary: Option<TraceContext> = None;
    let mut datadog_parent = None;
    for style in styles {
        let found = match style {
            PropagationStyle::Datadog => datadog::extract(carrier),
            PropagationStyle::TraceContext => tracecontext::extract(carrier),
            PropagationStyle::B3Single => b3::extract_single(carrier),
            PropagationStyle::B3Multi => b3::extract_multi(carrier),
            PropagationStyle::Baggage => continue,
        };
        let Some(found) = found else { continue };
        if *style == PropagationStyle::Datadog {
            datadog_parent = Some(found.parent_id);
        }
        match primary.as_mut() {
            None => primary = Some(found),
            Some(primary) => {
                if *style == PropagationStyle::TraceContext && primary.trace_id == found.trace_id && found.parent_id != 0 {
                    reparent_on_w3c(primary, &found, datadog_parent);
                }
            }
        }
    }
    if styles.contains(&PropagationStyle::Baggage) {
        let items = baggage::extract(carrier);
        if !items.is_empty() {
            let context = primary.get_or_insert_with(|| TraceContext::new(crate::telemetry::traces::span::TraceId::default(), 0, None));
            context.baggage = items;
        }
    }
    primary
}

/// When Datadog and W3C headers describe the same trace but different parents, the W3C parent
/// is the closer hop; the Datadog one is kept in `_dd.parent_id`.
fn reparent_on_w3c(primary: &mut TraceContext, w3c: &TraceContext, datadog_parent: Option<u64>) {
    let Some(dd_parent) = datadog_parent else { return };
    if w3c.parent_id == dd_parent {
        return;
    }
    let last_parent = w3c
        .tags
        .get("_dd.parent_id")
        .cloned()
        .unwrap_or_else(|| format!("{dd_parent:016x}"));
    primary.tags.insert("_dd.parent_id".to_owned(), last_parent);
    primary.parent_id = w3c.parent_id;
}

/// The headers that continue a trace in another process: `x-datadog-*` and/or
/// `traceparent`/`tracestate`, per the inject styles.
pub fn inject(context: &TraceContext, styles: &[PropagationStyle]) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    for style in styles {
        match style {
            PropagationStyle::Datadog => headers.extend(datadog::inject(context)),
            PropagationStyle::TraceContext => headers.extend(tracecontext::inject(context)),
            PropagationStyle::B3Multi => headers.extend(b3::inject_multi(context)),
            PropagationStyle::B3Single => headers.extend(b3::inject_single(context)),
            PropagationStyle::Baggage => headers.extend(baggage::inject(context)),
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::span::TraceId;

    const DEFAULT: &[PropagationStyle] = &PropagationStyle::DEFAULT;

    #[test]
    fn datadog_wins_over_a_different_w3c_trace() {
        let carrier = Carrier::from_pairs([
            ("X-Datadog-Trace-Id", "12345"),
            ("x-datadog-parent-id", "67890"),
            ("x-datadog-sampling-priority", "1"),
            ("x-datadog-origin", "rum"),
            ("traceparent", "00-0000000000000000d9f454c80b9a529a-73ac6ca3427073a3-01"),
            ("tracestate", "dd=s:1;o:rum"),
        ]);
        let ctx = extract(&carrier, DEFAULT).unwrap();
        assert_eq!(ctx.trace_id, TraceId::new(0, 12345));
        assert_eq!(ctx.parent_id, 67890);
        assert_eq!(ctx.origin.as_deref(), Some("rum"));
        assert!(ctx.is_complete());
    }

    #[test]
    fn w3c_parent_of_the_same_trace_reparents() {
        let carrier = Carrier::from_pairs([
            ("x-datadog-trace-id", "43981"),
            ("x-datadog-parent-id", "5"),
            ("x-datadog-sampling-priority", "1"),
            ("traceparent", "00-0000000000000000000000000000abcd-000000000000004d-01"),
        ]);
        let ctx = extract(&carrier, DEFAULT).unwrap();
        assert_eq!(ctx.parent_id, 0x4d);
        assert_eq!(ctx.tags["_dd.parent_id"], "0000000000000005");
    }

    #[test]
    fn only_w3c() {
        let carrier = Carrier::from_pairs([("traceparent", "00-0000000000000000000000000000abcd-000000000000004d-01")]);
        let ctx = extract(&carrier, DEFAULT).unwrap();
        assert_eq!((ctx.trace_id.low, ctx.parent_id, ctx.sampling_priority), (0xabcd, 0x4d, Some(1)));
    }

    #[test]
    fn styles_not_configured_are_not_read() {
        let carrier = Carrier::from_pairs([
            ("x-datadog-trace-id", "1"),
            ("x-datadog-parent-id", "2"),
            ("x-datadog-sampling-priority", "1"),
        ]);
        assert!(extract(&carrier, &[PropagationStyle::TraceContext]).is_none());
        assert!(extract(&carrier, &[]).is_none());
    }

    #[test]
    fn baggage_alone_is_not_a_complete_context() {
        let carrier = Carrier::from_pairs([("baggage", "user=alice")]);
        let ctx = extract(&carrier, DEFAULT).unwrap();
        assert_eq!(ctx.baggage["user"], "alice");
        assert!(!ctx.is_complete());
    }

    #[test]
    fn inject_round_trips() {
        let mut ctx = TraceContext::new(TraceId::new(0x66bcb5eb00000000, 123), 5, Some(1));
        ctx.tags.insert("_dd.p.dm".into(), "-0".into());
        let headers = inject(&ctx, &[PropagationStyle::Datadog, PropagationStyle::TraceContext]);
        let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("x-datadog-trace-id"), Some("123"));
        assert_eq!(get("x-datadog-parent-id"), Some("5"));
        assert_eq!(get("x-datadog-sampling-priority"), Some("1"));
        assert_eq!(get("x-datadog-tags"), Some("_dd.p.dm=-0,_dd.p.tid=66bcb5eb00000000"));
        assert_eq!(get("traceparent"), Some("00-66bcb5eb00000000000000000000007b-0000000000000005-01"));
        assert_eq!(get("tracestate"), Some("dd=s:1;t.dm:-0;t.tid:66bcb5eb00000000"));
        let back = extract(&Carrier::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))), DEFAULT).unwrap();
        assert_eq!(back.trace_id, ctx.trace_id);
        assert_eq!(back.parent_id, 5);
    }
}
