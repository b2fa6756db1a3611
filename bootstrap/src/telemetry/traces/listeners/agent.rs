//! A trace-agent endpoint for the child's tracer, as the Datadog Extension serves it on
//! 127.0.0.1:8126: `/v0.4/traces` and `/v0.5/traces` (msgpack), `/info`. Received spans join
//! the invocation's trace (see `children`).
use std::sync::Arc;

use http::{Method, StatusCode};

use super::http::{reply, Received, Reply};
use super::msgpack::{decode_v04, decode_v05};
use super::placeholder::drop_placeholders;
use crate::telemetry::traces::TraceProcessor;

/// The Extension's limit for one trace payload.
pub const BODY_LIMIT: usize = 50 * 1024 * 1024;

/// What `/info` advertises: the endpoints served here and no client-side stats.
const INFO: &str =
    r#"{"version":"bootstrap","endpoints":["/v0.4/traces","/v0.5/traces","/info"],"client_drop_p0s":false,"span_meta_structs":false}"#;

/// The answer tracers expect to a trace payload: keep everything.
const RATES: &str = r#"{"rate_by_service":{"service:,env:":1}}"#;

pub async fn handle(traces: Arc<TraceProcessor>, request: Received) -> Reply {
    let is_upload = request.method == Method::PUT || request.method == Method::POST;
    let decoded = match (request.path.as_str(), is_upload) {
        ("/info", false) => return reply(StatusCode::OK, INFO),
        ("/v0.4/traces", true) => decode_v04(&request.body),
        ("/v0.5/traces", true) => decode_v05(&request.body),
        // A tracer's own telemetry and stats: accepted and discarded, so it does not retry.
        (path, true) if path.starts_with("/telemetry/") || path == "/v0.6/stats" => return reply(StatusCode::OK, "{}"),
        _ => return reply(StatusCode::NOT_FOUND, "not an endpoint of this runtime"),
    };
    match decoded {
        Ok(mut chunks) => {
            drop_placeholders(&mut chunks);
            let dropped = traces.receive_child_chunks(chunks).await;
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    path = %request.path,
                    "spans from the function's tracer belong to no invocation of this sandbox; dropped"
                );
            }
            reply(StatusCode::OK, RATES)
        }
        Err(err) => {
            tracing::warn!(path = %request.path, bytes = request.body.len(), "a trace payload from the function's tracer was refused: {err}");
            reply(StatusCode::BAD_REQUEST, err.to_string())
        }
    }
}
