//! Datadog's universal-instrumentation endpoints, as the Datadog Extension serves them on
//! 127.0.0.1:8124: a tracer in the child asks which trace its spans continue
//! (`/lambda/start-invocation`) and reports the invocation's error (`/lambda/end-invocation`).
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::http::{reply, Received, Reply};
use crate::runtime_api::ErrorBody;
use crate::telemetry::traces::{TraceContext, TraceProcessor};

/// The extension takes events up to Lambda's 6 MiB payload limit.
pub const BODY_LIMIT: usize = 6 * 1024 * 1024;

pub fn handle(traces: &TraceProcessor, request: &Received) -> Reply {
    match (&request.method, request.path.as_str()) {
        (&Method::GET, "/lambda/hello") => reply(StatusCode::OK, ""),
        (&Method::POST, "/lambda/start-invocation") => start_invocation(traces, request),
        (&Method::POST, "/lambda/end-invocation") => {
            if !traces.universal_end(reported_error(&request.headers)) {
                tracing::debug!("/lambda/end-invocation outside any invocation; ignored");
            }
            reply(StatusCode::OK, "")
        }
        _ => reply(StatusCode::NOT_FOUND, "not an endpoint of this runtime"),
    }
}

fn start_invocation(traces: &TraceProcessor, request: &Received) -> Reply {
    let mut response = reply(StatusCode::OK, "");
    if let Some(context) = traces.universal_start(&request.body) {
        context_headers(&context, response.headers_mut());
    } else {
        tracing::debug!("/lambda/start-invocation outside any invocation; answered without a context");
    }
    response
}

/// The extracted context as the Extension answers it: the trace, the span to continue (the
/// `aws.lambda` span, as `x-datadog-span-id` and `x-datadog-parent-id`), the sampling decision
/// and the 128-bit high half.
fn context_headers(context: &TraceContext, headers: &mut HeaderMap) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    };
    set("x-datadog-trace-id", context.trace_id.low.to_string());
    set("x-datadog-span-id", context.parent_id.to_string());
    set("x-datadog-parent-id", context.parent_id.to_string());
    if let Some(priority) = context.sampling_priority {
        set("x-datadog-sampling-priority", priority.to_string());
    }
    if let Some(tid) = context.trace_id.tid_tag() {
        set("x-datadog-tags", format!("_dd.p.tid={tid}"));
    }
}

/// `x-datadog-invocation-error: true` with `-msg`, `-type` and `-stack` (base64, or plain).
fn reported_error(headers: &HeaderMap) -> Option<ErrorBody> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if !text("x-datadog-invocation-error").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return None;
    }
    let mut error = ErrorBody::new(
        text("x-datadog-invocation-error-type").unwrap_or_else(|| "Error".to_owned()),
        text("x-datadog-invocation-error-msg").unwrap_or_default(),
    );
    if let Some(stack) = text("x-datadog-invocation-error-stack") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(stack.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or(stack);
        error.stack_trace = decoded.lines().map(str::to_owned).collect();
    }
    Some(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::TraceId;

    #[test]
    fn error_headers_make_an_error_body() {
        let mut headers = HeaderMap::new();
        assert!(reported_error(&headers).is_none());
        headers.insert("x-datadog-invocation-error", HeaderValue::from_static("true"));
        headers.insert("x-datadog-invocation-error-type", HeaderValue::from_static("ValueError"));
        headers.insert("x-datadog-invocation-error-msg", HeaderValue::from_static("bad"));
        let stack = base64::engine::general_purpose::STANDARD.encode("at a\nat b");
        headers.insert("x-datadog-invocation-error-stack", HeaderValue::from_str(&stack).unwrap());
        let error = reported_error(&headers).unwrap();
        assert_eq!((error.error_type.as_str(), error.error_message.as_str()), ("ValueError", "bad"));
        assert_eq!(error.stack_trace, ["at a", "at b"]);
    }

    #[test]
    fn context_as_headers() {
        let context = TraceContext::new(TraceId::new(0x6b05765000000000, 42), 7, Some(2));
        let mut headers = HeaderMap::new();
        context_headers(&context, &mut headers);
        assert_eq!(headers["x-datadog-trace-id"], "42");
        assert_eq!(headers["x-datadog-span-id"], "7");
        assert_eq!(headers["x-datadog-parent-id"], "7");
        assert_eq!(headers["x-datadog-sampling-priority"], "2");
        assert_eq!(headers["x-datadog-tags"], "_dd.p.tid=6b05765000000000");
    }
}
