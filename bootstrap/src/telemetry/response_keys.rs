//! Whether a handler's response can hold a given top-level key, answered without parsing it.
//!
//! Metrics look for `statusCode` and `batchItemFailures` in every response, traces for
//! `statusCode`; most responses (an echo, a queue consumer's result, a page of HTML in a JSON
//! string) carry neither, and parsing them whole only to learn that was a large share of what
//! telemetry cost per invocation. A vectorised substring search answers "certainly not there"
//! for them; only a response that may hold the key is parsed.

/// `false` only when `body` cannot hold `"<key>"` as a JSON object key: neither the quoted key
/// nor a `\u` escape (with which a key can be spelled without its plain letters) appears in it.
pub fn may_hold_key(body: &[u8], key: &str) -> bool {
    contains_quoted(body, key) || memchr::memmem::find(body, br"\u").is_some()
}

fn contains_quoted(body: &[u8], key: &str) -> bool {
    let mut pos = 0;
    let finder = memchr::memmem::Finder::new(key.as_bytes());
    while let Some(found) = finder.find(&body[pos..]) {
        let start = pos + found;
        let end = start + key.len();
        if start > 0 && body[start - 1] == b'"' && body.get(end) == Some(&b'"') {
            return true;
        }
        pos = start + 1;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_key_or_an_escape_may_be_the_key() {
        assert!(may_hold_key(br#"{"statusCode": 200}"#, "statusCode"));
        assert!(may_hold_key(br#"{"body": "{\"a\": 1}", "statusCode": 1}"#, "statusCode"));
        assert!(may_hold_key(br#"{"\u0073tatusCode": 500}"#, "statusCode"));
        assert!(may_hold_key(br#"{"a": 1, "batchItemFailures": []}"#, "batchItemFailures"));
    }

    #[test]
    fn a_response_without_the_quoted_key_cannot_hold_it() {
        assert!(!may_hold_key(br#"{"body": "hello"}"#, "statusCode"));
        assert!(!may_hold_key(br#"{"mystatusCode": 1, "statusCodes": 2}"#, "statusCode"));
        assert!(!may_hold_key(b"", "statusCode"));
        // Inside a string the key is escaped, `\"statusCode\"`: not a key of the object.
        assert!(!may_hold_key(br#"{"body": "{\"statusCode\": 1}"}"#, "statusCode"));
        assert!(!may_hold_key(b"statusCode", "statusCode"));
    }
}
