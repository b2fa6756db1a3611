//! W3C baggage: `key=value[;props],…`, percent-encoded.
use std::collections::BTreeMap;

use super::Carrier;
use crate::telemetry::traces::extract::context::TraceContext;

/// Datadog's tracers keep at most this many items and bytes of baggage.
const MAX_ITEMS: usize = 64;
const MAX_BYTES: usize = 8192;

pub(super) fn extract(carrier: &Carrier) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    let Some(raw) = carrier.get("baggage") else { return items };
    if raw.len() > MAX_BYTES {
        return items;
    }
    for member in raw.split(',') {
        let pair = member.split(';').next().unwrap_or_default();
        let Some((key, value)) = pair.split_once('=') else {
            // A malformed member makes ddtrace drop the whole header.
            return BTreeMap::new();
        };
        let (key, value) = (percent_decode(key.trim()), percent_decode(value.trim()));
        if key.is_empty() {
            return BTreeMap::new();
        }
        if items.len() < MAX_ITEMS {
            items.insert(key, value);
        }
    }
    items
}

pub(super) fn inject(context: &TraceContext) -> Vec<(String, String)> {
    if context.baggage.is_empty() {
        return Vec::new();
    }
    let items: Vec<String> = context
        .baggage
        .iter()
        .take(MAX_ITEMS)
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    vec![("baggage".to_owned(), items.join(","))]
}

fn percent_decode(s: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_decodes() {
        let items = extract(&Carrier::from_pairs([("baggage", "user.id=alice%20b, team=x;prop=1")]));
        assert_eq!(items["user.id"], "alice b");
        assert_eq!(items["team"], "x");
        assert!(extract(&Carrier::from_pairs([("baggage", "novalue")])).is_empty());
        assert!(extract(&Carrier::from_pairs([("baggage", "a=%zz%")])).contains_key("a"));
        let huge = "k=v,".repeat(3000);
        assert!(extract(&Carrier::from_pairs([("baggage", huge.as_str())])).is_empty());
    }
}
