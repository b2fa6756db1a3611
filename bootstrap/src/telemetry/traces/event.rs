//! The invocation's event as the trace code reads it.
//!
//! Trigger detection, extraction and inferred spans read a few keys of an event, but an HTTP
//! event carries whole request parts they never look at: the body (up to 6 MB), query and path
//! parameters, stage variables, and `multiValueHeaders` beside `headers`. Building those into
//! JSON values was the largest single cost of tracing an API Gateway invocation, so at the top
//! level of an object they are only skimmed: the key stays (its presence is what some checks
//! read) with a `null` value. `multiValueHeaders` is built after all when `headers` is missing
//! or empty, the one case the header code reads it. With `DD_CAPTURE_LAMBDA_PAYLOAD` the whole
//! event is built: the captured payload shows every field.
use serde::de::{Deserializer, MapAccess, Visitor};
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_parts_are_skimmed_and_the_rest_built() {
        let event = br#"{"headers": {"h": "1"}, "multiValueHeaders": {"h": ["1"]}, "body": "{\"x\": 1}",
            "queryStringParameters": {"q": "v"}, "requestContext": {"stage": "prod"}, "Records": [1]}"#;
        let parsed = parse_event(event, false);
        assert_eq!(
            parsed,
            json!({"headers": {"h": "1"}, "multiValueHeaders": null, "body": null, "queryStringParameters": null,
                "requestContext": {"stage": "prod"}, "Records": [1]})
        );
        assert_eq!(parse_event(event, true), serde_json::from_slice::<Value>(event).unwrap());
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
