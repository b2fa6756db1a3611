//! `/next` header parsing into `InvocationContext` on arbitrary header names and values
//! (input: `name: value` lines). Never panics; a context it accepts has a non-blank request id,
//! a deadline read from the header, and client context / cognito identity that parse as JSON;
//! a refusal names the request id whenever one was present.
#![no_main]

use bootstrap::runtime_api::{header_names, HeaderError, InvocationContext};
use bootstrap_fuzz::header_map;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let headers = header_map(data);
    match InvocationContext::from_headers(&headers) {
        Ok(context) => {
            assert!(!context.request_id.trim().is_empty());
            let raw_deadline = headers
                .get(header_names::DEADLINE_MS)
                .and_then(|v| std::str::from_utf8(v.as_bytes()).ok());
            match raw_deadline {
                Some(raw) => assert_eq!(Some(context.deadline_ms), raw.trim().parse::<u64>().ok()),
                None => assert_eq!(context.deadline_ms, 0),
            }
            for json in [&context.client_context, &context.cognito_identity].into_iter().flatten() {
                assert!(
                    serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok(),
                    "accepted a header that is not JSON: {json:?}"
                );
            }
            let _ = context.remaining_ms(u64::MAX);
            let _ = context.remaining_ms(0);
        }
        Err(HeaderError::MissingRequestId) => {}
        Err(err) => {
            assert!(err.request_id().is_some_and(|id| !id.trim().is_empty()));
            assert!(!err.to_string().is_empty());
        }
    }
});
