//! The trace agent's `/v0.4/traces` payload: msgpack, an array of traces, each an array of
//! span maps (the format the Datadog Agent and the Lambda Extension accept on port 8126).
use rmp::encode;

use super::io_runtime::IoRuntime;

use crate::telemetry::traces::{Span, SpanLink};

/// Content type of the payload.
pub const CONTENT_TYPE: &str = "application/msgpack";
/// Header telling the agent how many traces the payload holds.
pub const TRACE_COUNT_HEADER: &str = "X-Datadog-Trace-Count";

/// How long one send to the trace agent may take before its spans are counted as dropped.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Sending traces to a trace agent failed; the spans it carried are dropped.
#[derive(Debug, thiserror::Error)]
pub enum TraceAgentError {
    #[error("cannot reach the trace agent at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the trace agent at {url} answered {status}")]
    Rejected { url: String, status: reqwest::StatusCode },
    #[error("sending to the trace agent at {url} did not finish: {reason}")]
    Stopped { url: String, reason: String },
}

/// A client of a Datadog trace agent (the Datadog Extension's, or the one `DD_TRACE_AGENT_URL`
/// names) speaking `/v0.4/traces`.
#[derive(Clone, Debug)]
pub struct TraceAgentClient {
    http: reqwest::Client,
    traces_url: String,
    io: IoRuntime,
}

impl TraceAgentClient {
    /// `base` is the agent's URL, e.g. `http://127.0.0.1:8126`.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_default();
        Self {
            http,
            traces_url: format!("{}/v0.4/traces", base.trim_end_matches('/')),
            io: IoRuntime::current(),
        }
    }

    pub fn traces_url(&self) -> &str {
        &self.traces_url
    }

    /// Sends traces as one msgpack payload.
    pub async fn send(&self, traces: &[Vec<Span>]) -> Result<(), TraceAgentError> {
        let body = encode_v04(traces);
        let count = traces.len();
        let this = self.clone();
        match self.io.run(async move { this.put(body, count).await }).await {
            Ok(result) => result,
            Err(stopped) => Err(TraceAgentError::Stopped {
                url: self.traces_url.clone(),
                reason: stopped.to_string(),
            }),
        }
    }

    async fn put(&self, body: Vec<u8>, count: usize) -> Result<(), TraceAgentError> {
        let response = self
            .http
            .put(&self.traces_url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(TRACE_COUNT_HEADER, count.to_string())
            .header("Datadog-Meta-Lang", "rust")
            .header("Datadog-Meta-Tracer-Version", env!("CARGO_PKG_VERSION"))
            .body(body)
            .send()
            .await
            .map_err(|source| TraceAgentError::Transport {
                url: self.traces_url.clone(),
                source,
            })?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(TraceAgentError::Rejected {
                url: self.traces_url.clone(),
                status: response.status(),
            })
        }
    }
}

/// Encodes traces as a v0.4 payload.
pub fn encode_v04(traces: &[Vec<Span>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(traces.iter().map(|t| t.len() * 512).sum::<usize>() + 8);
    // Writing into a Vec cannot fail, so the results below are infallible.
    let _ = encode::write_array_len(&mut out, len32(traces.len()));
    for trace in traces {
        let _ = encode::write_array_len(&mut out, len32(trace.len()));
        for span in trace {
            write_span(&mut out, span);
        }
    }
    out
}

fn len32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

fn write_str(out: &mut Vec<u8>, value: &str) {
    let _ = encode::write_str(out, value);
}

fn write_span(out: &mut Vec<u8>, span: &Span) {
    let fields = if span.span_links.is_empty() { 12 } else { 13 };
    let _ = encode::write_map_len(out, fields);
    write_str(out, "trace_id");
    let _ = encode::write_uint(out, span.trace_id.low);
    write_str(out, "span_id");
    let _ = encode::write_uint(out, span.span_id);
    write_str(out, "parent_id");
    let _ = encode::write_uint(out, span.parent_id);
    for (key, value) in [
        ("name", &span.name),
        ("service", &span.service),
        ("resource", &span.resource),
        ("type", &span.span_type),
    ] {
        write_str(out, key);
        write_str(out, value);
    }
    write_str(out, "start");
    let _ = encode::write_sint(out, span.start_ns);
    write_str(out, "duration");
    let _ = encode::write_sint(out, span.duration_ns);
    write_str(out, "error");
    let _ = encode::write_sint(out, i64::from(span.error));
    write_str(out, "meta");
    let _ = encode::write_map_len(out, len32(span.meta.len()));
    for (key, value) in &span.meta {
        write_str(out, key);
        write_str(out, value);
    }
    write_str(out, "metrics");
    let finite: Vec<_> = span.metrics.iter().filter(|(_, v)| v.is_finite()).collect();
    let _ = encode::write_map_len(out, len32(finite.len()));
    for (key, value) in finite {
        write_str(out, key);
        let _ = encode::write_f64(out, *value);
    }
    if !span.span_links.is_empty() {
        write_str(out, "span_links");
        let _ = encode::write_array_len(out, len32(span.span_links.len()));
        for link in &span.span_links {
            write_link(out, link);
        }
    }
}

fn write_link(out: &mut Vec<u8>, link: &SpanLink) {
    let _ = encode::write_map_len(out, 4);
    write_str(out, "trace_id");
    let _ = encode::write_uint(out, link.trace_id.low);
    write_str(out, "trace_id_high");
    let _ = encode::write_uint(out, link.trace_id.high);
    write_str(out, "span_id");
    let _ = encode::write_uint(out, link.span_id);
    write_str(out, "attributes");
    let _ = encode::write_map_len(out, len32(link.attributes.len()));
    for (key, value) in &link.attributes {
        write_str(out, key);
        write_str(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::TraceId;

    #[test]
    fn layout() {
        let mut span = Span::new("aws.lambda", TraceId::new(0, 7), 8, 0);
        span.set_meta("k", "v");
        span.set_metric("m", 1.5);
        let bytes = encode_v04(&[vec![span]]);
        // [[{...}]]: fixarray(1), fixarray(1), fixmap(12), fixstr "trace_id", 7
        assert_eq!(&bytes[..4], &[0x91, 0x91, 0x8c, 0xa8]);
        assert_eq!(&bytes[4..12], b"trace_id");
        assert_eq!(bytes[12], 7);
        assert!(encode_v04(&[]).starts_with(&[0x90]));
    }
}
