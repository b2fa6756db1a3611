//! Logs injection for exec children (§7): each line of the child's stdout and stderr gets the
//! `dd.trace_id` / `dd.span_id` of the invocation it belongs to, as [`super::logs::inject_line`]
//! places them. Installed only when `DD_LOGS_INJECTION` is on: the ids come from the trace
//! processor with tracing on, from [`CorrelationOnly`] with tracing off.
//!
//! Which invocation a line belongs to ([`TraceProcessor::log_correlation`]): the one the line
//! names (the Lambda text format's request id field), else the only one in flight, else, with
//! none in flight, the one answered last (a child's last lines may still be in the pipe after
//! its answer). With several invocations in flight (`AWS_LAMBDA_MAX_CONCURRENCY` > 1) a line
//! that names none of them cannot be attributed and is left as it is, as are lines printed
//! before the first invocation.
use std::borrow::Cow;
use std::sync::Arc;

use super::correlation_only::CorrelationOnly;
use super::logs::{inject_line, Correlation};
use super::processor::TraceProcessor;
use crate::handler::exec::output::{LineRewriter, OutputStream};

/// Where a line's ids come from: the ids of the invocation a line belongs to (`request_id`:
/// the one the line names), `None` when the line is to be left as it is.
pub trait CorrelationSource: Send + Sync + 'static {
    fn log_correlation(&self, request_id: Option<&str>) -> Option<Correlation>;
}

impl CorrelationSource for TraceProcessor {
    fn log_correlation(&self, request_id: Option<&str>) -> Option<Correlation> {
        TraceProcessor::log_correlation(self, request_id)
    }
}

impl CorrelationSource for CorrelationOnly {
    fn log_correlation(&self, request_id: Option<&str>) -> Option<Correlation> {
        CorrelationOnly::log_correlation(self, request_id)
    }
}

/// The [`LineRewriter`] of logs injection.
pub struct TraceLogRewriter {
    traces: Arc<dyn CorrelationSource>,
}

impl TraceLogRewriter {
    pub fn new(traces: Arc<dyn CorrelationSource>) -> Self {
        Self { traces }
    }
}

impl LineRewriter for TraceLogRewriter {
    fn rewrite<'a>(&self, _stream: OutputStream, line: &'a [u8]) -> Cow<'a, [u8]> {
        // Metric and trace lines for the Forwarder: recognised by their start, before any lookup.
        if line.starts_with(b"{\"m\":") || line.starts_with(b"{\"traces\"") || line.is_empty() {
            return Cow::Borrowed(line);
        }
        match self.traces.log_correlation(lambda_format_request_id(line)) {
            Some(ids) => inject_line(line, &ids),
            None => Cow::Borrowed(line),
        }
    }
}

/// The request id of a line in the Lambda runtimes' text format
/// (`[LEVEL]\t<time>\t<request id>\t<message>`), as awslambdaric and the Node runtime print.
fn lambda_format_request_id(line: &[u8]) -> Option<&str> {
    if line.first() != Some(&b'[') {
        return None;
    }
    let mut fields = line.splitn(4, |b| *b == b'\t');
    let level = fields.next()?;
    let _time = fields.next()?;
    let request_id = fields.next()?;
    fields.next()?;
    if !level.ends_with(b"]") || request_id.is_empty() || request_id.len() > 64 {
        return None;
    }
    std::str::from_utf8(request_id).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_from_the_lambda_format() {
        assert_eq!(
            lambda_format_request_id(b"[INFO]\t2024-01-01T12:00:00.5Z\treq-1\tmessage"),
            Some("req-1")
        );
        assert_eq!(lambda_format_request_id(b"[INFO] no tabs"), None);
        assert_eq!(lambda_format_request_id(b"plain\ta\tb\tc"), None);
        assert_eq!(lambda_format_request_id(b"[INFO]\tt\treq-1"), None, "no message field");
    }
}
