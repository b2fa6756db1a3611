//! The invocation's event as the trace code reads it.
//!
//! Trigger detection, extraction and inferred spans read a few keys of an event, but an HTTP
//! event carries whole request parts they never look at: the body (up to 6 MB), query and path
//! parameters, stage variables, and `multiValueHeaders` beside `headers`. Building those into
//! JSON values was the largest single cost of tracing an API Gateway invocation, so at the top
//! level of an object they are only skimmed: the key stays (its presence is what some checks
//! read) with a `null` value. `multiValueHeaders` is built after all when `headers` is missing
//! or empty, the one case the header code reads it. Of `headers`, only the ones some trace code
//! reads are built (see [`READ_HEADERS`]), and of `requestContext` only its read keys (see
//! [`REQUEST_CONTEXT_KEYS`]). With `DD_CAPTURE_LAMBDA_PAYLOAD` the whole event is built: the
//! captured payload shows every field.
use std::borrow::Cow;

use serde::de::{Deserialize, DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Top-level keys no trace code reads the value of.
const SKIMMED: &[&str] = &[
    "body",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "rawQueryString",
    "cookies",
];
const MULTI_VALUE_HEADERS: &str = "multiValueHeaders";
const HEADERS: &str = "headers";
const REQUEST_CONTEXT: &str = "requestContext";

/// What is built of an object's value: all of it, or only some of its keys.
#[derive(Clone, Copy)]
enum Keep {
    All,
    Only(&'static [(&'static str, Keep)]),
}

/// The keys of an HTTP event's `requestContext` that trace code reads (detection, trigger
/// tags, inferred spans, the authorizer context): a REST request's context holds as many
/// again that it never reads (`identity`'s dozen Cognito and caller fields, `extendedRequestId`,
/// `requestTime`, …). Reading another key means adding it here; the fixture tests compare
/// every tag with Datadog's own library.
const REQUEST_CONTEXT_KEYS: Keep = Keep::Only(&[
    ("apiId", Keep::All),
    ("authorizer", Keep::All),
    ("connectionId", Keep::All),
    ("domainName", Keep::All),
    ("elb", Keep::All),
    ("eventType", Keep::All),
    ("http", Keep::All),
    ("httpMethod", Keep::All),
    ("identity", Keep::Only(&[("userAgent", Keep::All)])),
    ("messageDirection", Keep::All),
    ("path", Keep::All),
    ("requestId", Keep::All),
    ("requestTimeEpoch", Keep::All),
    ("resourcePath", Keep::All),
    ("routeKey", Keep::All),
    ("stage", Keep::All),
    ("timeEpoch", Keep::All),
]);

/// The request headers trace code reads besides the propagation headers (compared without
/// case): the ALB URL and user agent, the referer tag, API Gateway's asynchronous invocation.
/// A request carries dozens more (cookies, `sec-*`, `cloudfront-*`, `x-amzn-*`), and building
/// each into the event's JSON cost more than all the header code that reads it.
const READ_HEADERS: &[&str] = &["host", "x-forwarded-proto", "user-agent", "referer", "x-amz-invocation-type"];

/// The first letters (lower case) of every read header and every propagation header
/// (`x-datadog-*`, `x-b3-*`, `traceparent`, `tracestate`, `baggage`, `b3`): most of a request's
/// headers (`accept*`, `cloudfront-*`, `cookie`, `sec-*`) are passed over on their first byte.
const READ_HEADER_FIRST_LETTERS: &[u8] = b"bhrtux";

fn is_read_header(name: &[u8]) -> bool {
    let Some(first) = name.first() else { return false };
    if !READ_HEADER_FIRST_LETTERS.contains(&first.to_ascii_lowercase()) {
        return false;
    }
    std::str::from_utf8(name).is_ok_and(|name| {
        crate::telemetry::traces::extract::propagation::is_propagation_header(name)
            || READ_HEADERS.iter().any(|read| name.eq_ignore_ascii_case(read))
    })
}

/// The event's JSON, `null` when it is not JSON (as Datadog's library treats it).
pub fn parse_event(bytes: &[u8], whole: bool) -> Value {
    if whole || !bytes.trim_ascii_start().starts_with(b"{") {
        return serde_json::from_slice(bytes).unwrap_or(Value::Null);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let parsed = deserializer
        .deserialize_map(SkimmingVisitor)
        .and_then(|top| deserializer.end().map(|()| top));
    match parsed {
        Ok((mut map, multi_value_headers)) => {
            let headers_present = map.get("headers").and_then(Value::as_object).is_some_and(|h| !h.is_empty());
            if let (false, Some(raw)) = (headers_present, multi_value_headers) {
                map.insert(
                    MULTI_VALUE_HEADERS.to_owned(),
                    serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                );
            }
            Value::Object(map)
        }
        Err(_) => Value::Null,
    }
}

/// The top-level object with the skimmed values left `null`, and `multiValueHeaders` unbuilt.
struct SkimmingVisitor;

impl<'de> Visitor<'de> for SkimmingVisitor {
    type Value = (Map<String, Value>, Option<&'de RawValue>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = Map::new();
        let mut multi_value_headers = None;
        while let Some(key) = access.next_key::<String>()? {
            if key == MULTI_VALUE_HEADERS {
                multi_value_headers = Some(access.next_value::<&RawValue>()?);
                map.insert(key, Value::Null);
            } else if key == HEADERS {
                let headers = access.next_value_seed(ReadHeaders)?;
                map.insert(key, headers);
            } else if key == REQUEST_CONTEXT {
                let context = access.next_value_seed(REQUEST_CONTEXT_KEYS)?;
                map.insert(key, context);
            } else if SKIMMED.contains(&key.as_str()) {
                access.next_value::<serde::de::IgnoredAny>()?;
                map.insert(key, Value::Null);
            } else {
                let value = access.next_value::<Value>()?;
                map.insert(key, value);
            }
        }
        Ok((map, multi_value_headers))
    }
}

impl<'de> DeserializeSeed<'de> for Keep {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        match self {
            Keep::All => Value::deserialize(deserializer),
            Keep::Only(keys) => deserializer.deserialize_any(KeptKeys(keys)),
        }
    }
}

/// An object with only `.0`'s keys built; any other value whole (the code reading it checks
/// its type).
struct KeptKeys(&'static [(&'static str, Keep)]);

impl<'de> Visitor<'de> for KeptKeys {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut kept = Map::new();
        while let Some(name) = access.next_key_seed(KeyBytes)? {
            match self.0.iter().find(|(key, _)| key.as_bytes() == &*name) {
                Some((key, keep)) => {
                    kept.insert((*key).to_owned(), access.next_value_seed(*keep)?);
                }
                None => {
                    access.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(kept))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = access.next_element::<Value>()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// `headers` with only the read ones built. The first header is kept whatever its name, so a
/// non-empty `headers` stays non-empty: the header code falls back to `multiValueHeaders` only
/// for an empty one. Anything but an object is left `null`: the code reading headers takes
/// objects only, and a `headers` key of any value is still there.
struct ReadHeaders;

impl<'de> DeserializeSeed<'de> for ReadHeaders {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ReadHeaders {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut headers = Map::new();
        let mut first = true;
        while let Some(name) = access.next_key_seed(KeyBytes)? {
            if first || is_read_header(&name) {
                let name = String::from_utf8(name.into_owned()).map_err(|_| A::Error::custom("a header name that is not UTF-8"))?;
                headers.insert(name, access.next_value::<Value>()?);
            } else {
                access.next_value::<IgnoredAny>()?;
            }
            first = false;
        }
        Ok(Value::Object(headers))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        while access.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// An object key as bytes, borrowed from the event unless it has escapes. Most keys are only
/// compared with the few that are read, so they are not checked for UTF-8 (a key that is kept
/// is, when it becomes a `String`): that check was a tenth of the parse.
struct KeyBytes;

impl<'de> DeserializeSeed<'de> for KeyBytes {
    type Value = Cow<'de, [u8]>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for KeyBytes {
    type Value = Cow<'de, [u8]>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_bytes<E>(self, name: &'de [u8]) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name))
    }

    fn visit_bytes<E>(self, name: &[u8]) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.to_owned()))
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(name.as_bytes()))
    }

    fn visit_str<E>(self, name: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(name.as_bytes().to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_parts_are_skimmed_and_the_rest_built() {
        let event = br#"{"headers": {"h": "1", "Cookie": "c", "X-Datadog-Trace-Id": "1", "Host": "h", "referer": "r",
            "sec-fetch-mode": "cors", "b3": "x"}, "multiValueHeaders": {"h": ["1"]}, "body": "{\"x\": 1}",
            "queryStringParameters": {"q": "v"}, "requestContext": {"stage": "prod"}, "Records": [1]}"#;
        let parsed = parse_event(event, false);
        assert_eq!(
            parsed,
            json!({"headers": {"h": "1", "X-Datadog-Trace-Id": "1", "Host": "h", "referer": "r", "b3": "x"},
                "multiValueHeaders": null, "body": null, "queryStringParameters": null,
                "requestContext": {"stage": "prod"}, "Records": [1]})
        );
        assert_eq!(parse_event(event, true), serde_json::from_slice::<Value>(event).unwrap());
    }

    #[test]
    fn request_context_keeps_the_read_keys_and_any_value_that_is_not_an_object() {
        let event = br#"{"requestContext": {"stage": "prod", "accountId": "1", "identity": {"caller": null,
            "userAgent": "curl", "sourceIp": "1.2.3.4"}, "http": {"method": "GET", "path": "/"},
            "authorizer": {"lambda": {"_datadog": "e30="}}, "extendedRequestId": "x", "elb": [1, {"a": 2.5}]}}"#;
        assert_eq!(
            parse_event(event, false),
            json!({"requestContext": {"stage": "prod", "identity": {"userAgent": "curl"},
                "http": {"method": "GET", "path": "/"}, "authorizer": {"lambda": {"_datadog": "e30="}},
                "elb": [1, {"a": 2.5}]}})
        );
        for context in ["null", "[1, \"a\"]", "\"text\"", "3", "-1", "2.5", "true", "{}"] {
            let event = format!(r#"{{"requestContext": {context}}}"#);
            assert_eq!(
                parse_event(event.as_bytes(), false),
                serde_json::from_str::<Value>(&event).unwrap(),
                "{context}"
            );
        }
        // Without the key of a kept object, the object is still there (some checks read its type).
        assert_eq!(
            parse_event(br#"{"requestContext": {"identity": {"caller": "c"}}}"#, false),
            json!({"requestContext": {"identity": {}}})
        );
    }

    #[test]
    fn every_read_and_propagation_header_passes_the_first_letter_filter() {
        let read = READ_HEADERS.iter().copied();
        let propagation = [
            "x-datadog-trace-id",
            "X-B3-TraceId",
            "traceparent",
            "tracestate",
            "baggage",
            "b3",
            "B3",
        ];
        for name in read.chain(propagation) {
            assert!(is_read_header(name.as_bytes()), "{name}");
            assert!(is_read_header(name.to_ascii_uppercase().as_bytes()), "{name}");
        }
        for name in [
            "accept",
            "cookie",
            "sec-fetch-mode",
            "cloudfront-is-mobile-viewer",
            "x-amzn-trace-id",
            "",
            "\u{e9}",
        ] {
            assert!(!is_read_header(name.as_bytes()), "{name}");
        }
    }

    #[test]
    fn multi_value_headers_are_built_when_headers_are_missing_or_empty() {
        for event in [
            &br#"{"multiValueHeaders": {"h": ["1", "2"]}}"#[..],
            br#"{"multiValueHeaders": {"h": ["1", "2"]}, "headers": {}}"#,
            br#"{"headers": null, "multiValueHeaders": {"h": ["1", "2"]}}"#,
        ] {
            assert_eq!(parse_event(event, false)["multiValueHeaders"], json!({"h": ["1", "2"]}));
        }
    }

    #[test]
    fn headers_keep_the_first_entry_and_any_value_that_is_not_an_object_is_null() {
        assert_eq!(
            parse_event(br#"{"headers": {"Cookie": "c", "Accept": "a"}}"#, false),
            json!({"headers": {"Cookie": "c"}})
        );
        assert_eq!(parse_event(br#"{"headers": {}}"#, false), json!({"headers": {}}));
        for headers in ["null", "[1, {\"a\": 2}]", "\"text\"", "3", "-1", "2.5", "true"] {
            let event = format!(r#"{{"headers": {headers}, "a": 1}}"#);
            assert_eq!(parse_event(event.as_bytes(), false), json!({"headers": null, "a": 1}), "{headers}");
        }
        // An escaped name is read like any other.
        assert_eq!(
            parse_event(br#"{"headers": {"a": "1", "x-datadog-\u0074race-id": "7"}}"#, false),
            json!({"headers": {"a": "1", "x-datadog-trace-id": "7"}})
        );
    }

    #[test]
    fn anything_else_parses_as_before() {
        for event in [
            &b"[1, 2]"[..],
            b"\"text\"",
            b"12",
            b"null",
            b"not json",
            b"{\"a\": 1} trailing",
            b"{\"a\": ",
            b"",
        ] {
            assert_eq!(
                parse_event(event, false),
                serde_json::from_slice::<Value>(event).unwrap_or(Value::Null),
                "{}",
                String::from_utf8_lossy(event)
            );
        }
        // The last of duplicate keys wins, as in a full parse.
        assert_eq!(parse_event(br#"{"a": 1, "a": 2}"#, false), json!({"a": 2}));
    }
}
