//! Span pointers (§5.11): links from the span that consumed an S3 object or a DynamoDB item
//! to the span that wrote it, by a hash both sides can compute.
use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::telemetry::traces::json;
use crate::telemetry::traces::span::{SpanLink, TraceId};
use crate::telemetry::traces::trigger::{EventSource, EventType};

/// The first 32 hex digits of SHA-256 of the parts joined by `|`.
pub fn pointer_hash(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(b"|");
        }
        hasher.update(part);
    }
    hasher.finalize().iter().take(16).fold(String::with_capacity(32), |mut out, b| {
        let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{b:02x}"));
        out
    })
}

fn link(kind: &str, hash: String) -> SpanLink {
    let attributes = BTreeMap::from([
        ("ptr.kind".to_owned(), kind.to_owned()),
        ("ptr.dir".to_owned(), "u".to_owned()),
        ("ptr.hash".to_owned(), hash),
        ("link.kind".to_owned(), "span-pointer".to_owned()),
    ]);
    SpanLink {
        trace_id: TraceId::default(),
        span_id: 0,
        attributes,
    }
}

/// The pointers of an S3 or DynamoDB event, one per usable record.
pub fn span_pointers(event: &Value, source: &EventSource) -> Vec<SpanLink> {
    let records = json::get(event, "Records")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match source.event_type {
        EventType::S3 => records.iter().filter_map(s3_pointer).collect(),
        EventType::Dynamodb => records.iter().filter_map(dynamodb_pointer).collect(),
        _ => Vec::new(),
    }
}

fn s3_pointer(record: &Value) -> Option<SpanLink> {
    if !json::get(record, "eventName")?.as_str()?.starts_with("ObjectCreated:") {
        return None;
    }
    let bucket = json::str_at(record, &["s3", "bucket", "name"])?;
    let key = json::str_at(record, &["s3", "object", "key"])?;
    let etag = json::str_at(record, &["s3", "object", "eTag"])?;
    let etag = etag.strip_prefix('"').and_then(|e| e.strip_suffix('"')).unwrap_or(etag);
    if etag.contains('"') {
        return None;
    }
    Some(link(
        "aws.s3.object",
        pointer_hash(&[bucket.as_bytes(), key.as_bytes(), etag.as_bytes()]),
    ))
}

/// The table of `arn:aws:dynamodb:<region>:<account>:table/<T>/stream/<time>`.
fn table_name(arn: &str) -> Option<&str> {
    let resource = arn.splitn(6, ':').nth(5)?;
    let parts: Vec<&str> = resource.split('/').collect();
    match parts.as_slice() {
        ["table", table, "stream", _] => Some(table),
        _ => None,
    }
}

/// A key attribute's single `S`, `N` or `B` (base64) value, as bytes.
fn key_value(value: &Value) -> Option<Vec<u8>> {
    let map = value.as_object().filter(|m| m.len() == 1)?;
    let (kind, inner) = map.iter().next()?;
    let text = inner.as_str()?;
    match kind.as_str() {
        "S" | "N" => Some(text.as_bytes().to_vec()),
        "B" => base64::engine::general_purpose::STANDARD.decode(text).ok(),
        _ => None,
    }
}

fn dynamodb_pointer(record: &Value) -> Option<SpanLink> {
    let table = table_name(json::get(record, "eventSourceARN")?.as_str()?)?;
    let keys = json::path(record, &["dynamodb", "Keys"])?.as_object()?;
    if keys.is_empty() || keys.len() > 2 {
        return None;
    }
    let mut sorted: Vec<(&String, Vec<u8>)> = keys.iter().map(|(k, v)| Some((k, key_value(v)?))).collect::<Option<_>>()?;
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let (k1, v1) = (sorted[0].0.as_bytes(), sorted[0].1.as_slice());
    // A one-attribute key hashes with an empty second attribute.
    let (k2, v2) = sorted.get(1).map_or((&b""[..], &b""[..]), |(k, v)| (k.as_bytes(), v.as_slice()));
    let hash = pointer_hash(&[table.as_bytes(), k1, v1, k2, v2]);
    Some(link("aws.dynamodb.item", hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn s3_vector() {
        let event = json!({"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "mybucket"}, "object": {"key": "mykey", "eTag": "123abc"}}},
                                       {"eventName": "ObjectRemoved:Delete", "s3": {"bucket": {"name": "b"}, "object": {"key": "k", "eTag": "e"}}}]});
        let links = span_pointers(&event, &EventSource::of(EventType::S3));
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].attributes["ptr.hash"], "8d49f5b0b742484159d4cd572bae1ce5");
        assert_eq!(links[0].attributes["ptr.kind"], "aws.s3.object");
        assert_eq!(links[0].attributes["ptr.dir"], "u");
        assert_eq!(links[0].attributes["link.kind"], "span-pointer");
    }

    #[test]
    fn dynamodb_vector() {
        let event = json!({"Records": [{"eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/some-table/stream/2015-06-27T00:48:05.899",
                                        "dynamodb": {"Keys": {"some-key": {"S": "some-value"}}}}]});
        let links = span_pointers(&event, &EventSource::of(EventType::Dynamodb));
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].attributes["ptr.hash"], "7f1aee721472bcb48701d45c7c7f7821");
        assert!(span_pointers(&json!({"Records": "x"}), &EventSource::of(EventType::Dynamodb)).is_empty());
    }
}
