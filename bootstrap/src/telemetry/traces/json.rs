//! Small, panic-free readers over `serde_json::Value`, with Python's spelling where Datadog's
//! library turns a JSON value into a tag (`None`, `True`, `1.5`), since tag values must match.
use serde_json::{Map, Value};

/// `value[key]` when `value` is an object.
pub fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.as_object()?.get(key)
}

/// Follows a path of object keys.
pub fn path<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(value, |v, k| get(v, k))
}

pub fn str_at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    path(value, keys)?.as_str()
}

pub fn obj_at<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a Map<String, Value>> {
    path(value, keys)?.as_object()
}

/// Python truthiness: null, false, 0, "", [] and {} are false.
pub fn truthy(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// `event["Records"][0]` when it is there.
pub fn first_record(event: &Value) -> Option<&Value> {
    get(event, "Records")?.as_array()?.first()
}

/// Python's `str(value)` for a JSON value: what `f"{value}"` and ddtrace's `set_tag` produce.
pub fn py_str(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(true)) => "True".to_owned(),
        Some(Value::Bool(false)) => "False".to_owned(),
        Some(Value::Number(n)) => py_number(n),
        Some(other) => py_repr(other, 0),
    }
}

fn py_number(n: &serde_json::Number) -> String {
    if n.is_f64() {
        n.as_f64().map_or_else(|| n.to_string(), py_float)
    } else {
        n.to_string()
    }
}

/// Python's `repr(float)`: always shows a fractional part or an exponent.
pub fn py_float(f: f64) -> String {
    if !f.is_finite() {
        return if f.is_nan() {
            "nan".into()
        } else if f > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let s = format!("{f:?}");
    s.replace('e', "e+").replace("e+-", "e-")
}

/// Python's `repr()` of a dict/list built from JSON (`{'a': 1, 'b': [True, None]}`), used
/// when payload capture stringifies what lies below its depth limit. Nesting is bounded so
/// that a hostile document cannot exhaust the stack.
pub fn py_repr(value: &Value, depth: usize) -> String {
    const MAX_REPR_DEPTH: usize = 64;
    if depth > MAX_REPR_DEPTH {
        return "...".to_owned();
    }
    match value {
        Value::String(s) => py_quote(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(|v| py_repr(v, depth + 1)).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_quote(k), py_repr(v, depth + 1)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => py_str(Some(other)),
    }
}

fn py_quote(s: &str) -> String {
    if s.contains('\'') && !s.contains('"') {
        format!("\"{s}\"")
    } else {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    }
}

/// A header-like value as text: strings as they are, numbers in decimal, anything else absent.
pub fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_spelling() {
        assert_eq!(py_str(None), "None");
        assert_eq!(py_str(Some(&json!(null))), "None");
        assert_eq!(py_str(Some(&json!(true))), "True");
        assert_eq!(py_str(Some(&json!(403))), "403");
        assert_eq!(py_str(Some(&json!(1.5))), "1.5");
        assert_eq!(py_str(Some(&json!(2.0))), "2.0");
        // serde_json keeps keys sorted, so the repr lists them in that order.
        assert_eq!(
            py_repr(&json!({"thingOne": 1, "b": [true, null, "x"]}), 0),
            "{'b': [True, None, 'x'], 'thingOne': 1}"
        );
    }

    #[test]
    fn truthiness() {
        assert!(!truthy(Some(&json!(""))));
        assert!(!truthy(Some(&json!({}))));
        assert!(!truthy(Some(&json!(0))));
        assert!(truthy(Some(&json!("dev"))));
    }
}
