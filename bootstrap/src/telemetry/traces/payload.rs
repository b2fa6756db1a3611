//! `DD_CAPTURE_LAMBDA_PAYLOAD` (§5.13): the request and response flattened into span tags
//! (`function.request.<path>`), with a depth limit and redaction of secrets.
use std::collections::BTreeMap;

use serde_json::Value;

use super::json;

/// Longest tag value kept.
const MAX_VALUE_CHARS: usize = 5000;
/// Most tags one payload may add: a 6 MB event must not turn into a million tags.
const MAX_TAGS: usize = 10_000;
/// Depth limit whatever the configuration says, so a hostile payload cannot recurse deeply.
const HARD_MAX_DEPTH: i64 = 64;

/// Flattens `value` under `prefix` into `tags`.
pub fn capture(tags: &mut BTreeMap<String, String>, prefix: &str, value: &Value, max_depth: i64) {
    let mut budget = MAX_TAGS;
    walk(tags, prefix.to_owned(), value, 0, max_depth.min(HARD_MAX_DEPTH), &mut budget);
}

/// The response body as a value: JSON when it parses, else its text.
pub fn response_value(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

fn walk(tags: &mut BTreeMap<String, String>, key: String, value: &Value, depth: i64, max_depth: i64, budget: &mut usize) {
    if *budget == 0 {
        return;
    }
    let mut set = |tags: &mut BTreeMap<String, String>, key: String, text: String| {
        *budget = budget.saturating_sub(1);
        let text = redact(&key, text);
        tags.insert(key, text);
    };
    if value.is_null() {
        set(tags, key, "None".to_owned());
        return;
    }
    if depth >= max_depth {
        let text = match value {
            Value::String(s) => s.clone(),
            other => json::py_repr(other, 0),
        };
        set(tags, key, truncate(&text));
        return;
    }
    match value {
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(parsed) => walk(tags, key, &parsed, depth + 1, max_depth, budget),
            Err(_) => set(tags, key, truncate(text)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(tags, format!("{key}.{i}"), item, depth + 1, max_depth, budget);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                walk(tags, format!("{key}.{k}"), item, depth + 1, max_depth, budget);
            }
        }
        other => set(tags, key, json::py_str(Some(other))),
    }
}

fn truncate(text: &str) -> String {
    text.chars().take(MAX_VALUE_CHARS).collect()
}

/// Values under a key whose last segment is a secret's name become `redacted`.
fn redact(key: &str, value: String) -> String {
    let last = key.rsplit('.').next().unwrap_or(key).to_ascii_lowercase();
    if matches!(last.as_str(), "authorization" | "x-authorization" | "password" | "token") {
        "redacted".to_owned()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags_of(value: &Value, depth: i64) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        capture(&mut tags, "function.request", value, depth);
        tags
    }

    #[test]
    fn flattens_with_python_spelling_and_redaction() {
        let event = json!({"a": [1, true, null], "body": "{\"x\": 2.5}", "headers": {"Authorization": "secret", "token": 1}, "s": "plain"});
        let tags = tags_of(&event, 10);
        assert_eq!(tags["function.request.a.0"], "1");
        assert_eq!(tags["function.request.a.1"], "True");
        assert_eq!(tags["function.request.a.2"], "None");
        assert_eq!(tags["function.request.body.x"], "2.5");
        assert_eq!(tags["function.request.headers.Authorization"], "redacted");
        assert_eq!(tags["function.request.headers.token"], "redacted");
        assert_eq!(tags["function.request.s"], "plain");
    }

    #[test]
    fn depth_limit_stringifies_the_rest() {
        let event = json!({"thing": {"thingOne": 1}});
        assert_eq!(tags_of(&event, 1)["function.request.thing"], "{'thingOne': 1}");
        assert_eq!(tags_of(&event, 0)["function.request"], "{'thing': {'thingOne': 1}}");
    }

    #[test]
    fn long_values_are_truncated_and_tag_count_is_bounded() {
        let tags = tags_of(&json!({"long": "x".repeat(6000)}), 10);
        assert_eq!(tags["function.request.long"].len(), 5000);
        let big: Vec<u32> = (0..20_000).collect();
        assert_eq!(tags_of(&json!(big), 10).len(), MAX_TAGS);
    }
}
