//! One log record rendered as one stdout line, in the formats a Lambda function's logs have:
//!
//! - text, logs injection on: Datadog's Python library's format (§7), byte for byte:
//!   `[LEVEL]\t<UTC time>.<ms>Z\t<request id>\t[dd.trace_id=<t> dd.span_id=<s>]\t<message>\n`,
//!   its milliseconds printed without zero-padding as that library prints them (`%(msecs)d`);
//! - text, injection off: AWS's runtime format, the same without the ids and with the
//!   milliseconds zero-padded (`%(msecs)03d`), what a Python function prints without Datadog;
//! - JSON (`AWS_LAMBDA_LOG_FORMAT=JSON`): AWS's JSON log object (`timestamp`, `level`,
//!   `message`, `logger`, `requestId`) followed, with injection on, by the fields ddtrace adds to
//!   every record: `dd.trace_id`, `dd.span_id`, `dd.service`, `dd.version`, `dd.env`.
//!
//! A line is always one line: in text the message's newlines become carriage returns (as AWS's
//! runtimes do on stdout, so a multi-line message stays one CloudWatch event), in JSON they are
//! escaped. Rust messages are UTF-8 by construction; nothing here can fail or allocate beyond
//! the growth of `out`.
use std::fmt::{self, Write as _};
use std::io::Write as _;

use log::Level;

use super::clock::UtcTime;
use crate::abi::RawTraceContext;

/// What a line says about the trace.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Injection<'a> {
    /// `DD_LOGS_INJECTION=false`: no ids, no Datadog fields.
    Off,
    /// Ids of `trace` (zeros without one), and the unified service tags for JSON lines.
    On {
        trace: Option<RawTraceContext>,
        service: &'a str,
        env: &'a str,
        version: &'a str,
    },
}

/// Everything one line holds.
pub(crate) struct Fields<'a> {
    pub level: Level,
    pub time: UtcTime,
    pub request_id: &'a str,
    /// The record's target (its module path unless the caller chose one): JSON's `logger`.
    pub logger: &'a str,
    pub injection: Injection<'a>,
    pub message: fmt::Arguments<'a>,
}

/// Level names as Python's logging prints them (what Datadog's and AWS's pipelines parse);
/// Rust's `trace!` has no Python equivalent and keeps its own name.
pub(crate) fn level_name(level: Level) -> &'static str {
    match level {
        Level::Error => "ERROR",
        Level::Warn => "WARNING",
        Level::Info => "INFO",
        Level::Debug => "DEBUG",
        Level::Trace => "TRACE",
    }
}

pub(crate) fn render_text(out: &mut Vec<u8>, fields: &Fields<'_>) {
    let t = fields.time;
    let _ = write!(
        out,
        "[{}]\t{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
        level_name(fields.level),
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second
    );
    match fields.injection {
        Injection::Off => {
            let _ = write!(out, "{:03}Z\t{}\t", t.millisecond, fields.request_id);
        }
        Injection::On { trace, .. } => {
            let _ = write!(out, "{}Z\t{}\t[dd.trace_id=", t.millisecond, fields.request_id);
            write_trace_id(out, trace);
            out.extend_from_slice(b" dd.span_id=");
            write_span_id(out, trace);
            out.extend_from_slice(b"]\t");
        }
    }
    let _ = OneLine(out).write_fmt(fields.message);
    out.push(b'\n');
}

pub(crate) fn render_json(out: &mut Vec<u8>, fields: &Fields<'_>) {
    let t = fields.time;
    let _ = write!(
        out,
        "{{\"timestamp\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\"message\":\"",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.millisecond,
        level_name(fields.level)
    );
    let _ = JsonString(out).write_fmt(fields.message);
    out.extend_from_slice(b"\",\"logger\":\"");
    let _ = JsonString(out).write_str(fields.logger);
    out.extend_from_slice(b"\",\"requestId\":\"");
    let _ = JsonString(out).write_str(fields.request_id);
    out.push(b'"');
    if let Injection::On {
        trace,
        service,
        env,
        version,
    } = fields.injection
    {
        out.extend_from_slice(b",\"dd.trace_id\":\"");
        write_trace_id(out, trace);
        out.extend_from_slice(b"\",\"dd.span_id\":\"");
        write_span_id(out, trace);
        for (key, value) in [("dd.service", service), ("dd.version", version), ("dd.env", env)] {
            let _ = write!(out, "\",\"{key}\":\"");
            let _ = JsonString(out).write_str(value);
        }
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// `dd.trace_id` (§7): the low 64 bits in decimal when the id fits in them, else all 128 bits
/// as 32 lower-case hex digits; `0` without a trace.
fn write_trace_id(out: &mut Vec<u8>, trace: Option<RawTraceContext>) {
    let _ = match trace {
        None => write!(out, "0"),
        Some(t) if t.trace_id_high == 0 => write!(out, "{}", t.trace_id_low),
        Some(t) => write!(out, "{:016x}{:016x}", t.trace_id_high, t.trace_id_low),
    };
}

/// `dd.span_id`: the active span's id in decimal; `0` without a trace.
fn write_span_id(out: &mut Vec<u8>, trace: Option<RawTraceContext>) {
    let _ = write!(out, "{}", trace.map_or(0, |t| t.span_id));
}

/// Writes text with every `\n` turned into `\r`, keeping the record on one line.
struct OneLine<'a>(&'a mut Vec<u8>);

impl fmt::Write for OneLine<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut rest = text.as_bytes();
        while let Some(at) = rest.iter().position(|b| *b == b'\n') {
            self.0.extend_from_slice(&rest[..at]);
            self.0.push(b'\r');
            rest = &rest[at + 1..];
        }
        self.0.extend_from_slice(rest);
        Ok(())
    }
}

/// Writes text as the inside of a JSON string: quotes, backslashes and control characters
/// escaped as serde_json escapes them.
struct JsonString<'a>(&'a mut Vec<u8>);

impl fmt::Write for JsonString<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let bytes = text.as_bytes();
        let mut start = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            let escape: &[u8] = match byte {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0x00..=0x1f => b"",
                _ => continue,
            };
            self.0.extend_from_slice(&bytes[start..at]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{byte:04x}");
            } else {
                self.0.extend_from_slice(escape);
            }
            start = at + 1;
        }
        self.0.extend_from_slice(&bytes[start..]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIME: u64 = 1_704_110_400_005; // 2024-01-01T12:00:00.005Z

    fn trace() -> RawTraceContext {
        RawTraceContext {
            trace_id_high: 0,
            trace_id_low: 8460795402960033906,
            span_id: 5837228094213247506,
            sampling_priority: 1,
        }
    }

    fn on(trace: Option<RawTraceContext>) -> Injection<'static> {
        Injection::On {
            trace,
            service: "checkout",
            env: "prod",
            version: "1.2",
        }
    }

    fn text(level: Level, injection: Injection<'_>, message: fmt::Arguments<'_>) -> String {
        let mut out = Vec::new();
        render_text(
            &mut out,
            &Fields {
                level,
                time: UtcTime::from_unix_millis(TIME),
                request_id: "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
                logger: "app::orders",
                injection,
                message,
            },
        );
        String::from_utf8(out).unwrap()
    }

    fn json(injection: Injection<'_>, message: fmt::Arguments<'_>) -> String {
        let mut out = Vec::new();
        render_json(
            &mut out,
            &Fields {
                level: Level::Warn,
                time: UtcTime::from_unix_millis(TIME),
                request_id: "req-1",
                logger: "app::orders",
                injection,
                message,
            },
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn text_with_injection_is_the_seeds_format() {
        assert_eq!(
            text(Level::Info, on(Some(trace())), format_args!("my message")),
            "[INFO]\t2024-01-01T12:00:00.5Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\t\
             [dd.trace_id=8460795402960033906 dd.span_id=5837228094213247506]\tmy message\n"
        );
        assert_eq!(
            text(Level::Error, on(None), format_args!("no trace")),
            "[ERROR]\t2024-01-01T12:00:00.5Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\t[dd.trace_id=0 dd.span_id=0]\tno trace\n"
        );
    }

    #[test]
    fn text_without_injection_is_the_aws_runtime_format() {
        assert_eq!(
            text(Level::Warn, Injection::Off, format_args!("careful")),
            "[WARNING]\t2024-01-01T12:00:00.005Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\tcareful\n"
        );
    }

    #[test]
    fn wide_trace_ids_are_32_hex_digits() {
        let wide = Some(RawTraceContext {
            trace_id_high: 0x6b05765000000000,
            trace_id_low: 0x00f29b8da6a6f843,
            span_id: 7,
            sampling_priority: 1,
        });
        assert!(
            text(Level::Debug, on(wide), format_args!("x")).contains("\t[dd.trace_id=6b0576500000000000f29b8da6a6f843 dd.span_id=7]\tx\n")
        );
    }

    #[test]
    fn multi_line_messages_stay_one_line() {
        let line = text(Level::Info, Injection::Off, format_args!("first\nsecond\r\nthird\tcolumn\n"));
        assert!(line.ends_with("\tfirst\rsecond\r\rthird\tcolumn\r\n"), "{line:?}");
        assert_eq!(line.matches('\n').count(), 1);
    }

    #[test]
    fn json_lines_parse_with_every_field() {
        let line = json(on(Some(trace())), format_args!("say \"hi\"\n\u{1}\\ ünïcode \u{fffd}"));
        assert_eq!(line.matches('\n').count(), 1, "{line:?}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "timestamp": "2024-01-01T12:00:00.005Z",
                "level": "WARNING",
                "message": "say \"hi\"\n\u{1}\\ ünïcode \u{fffd}",
                "logger": "app::orders",
                "requestId": "req-1",
                "dd.trace_id": "8460795402960033906",
                "dd.span_id": "5837228094213247506",
                "dd.service": "checkout",
                "dd.version": "1.2",
                "dd.env": "prod",
            })
        );
        // The order of AWS's formatter, then ddtrace's record attributes.
        assert!(line.starts_with(r#"{"timestamp":"2024-01-01T12:00:00.005Z","level":"WARNING","message":"say \"hi\"\n\u0001\\"#));
        assert!(line.ends_with(",\"dd.service\":\"checkout\",\"dd.version\":\"1.2\",\"dd.env\":\"prod\"}\n"));
    }

    #[test]
    fn json_without_injection_has_no_datadog_fields() {
        let line = json(Injection::Off, format_args!("plain {}", 1));
        assert_eq!(
            line,
            "{\"timestamp\":\"2024-01-01T12:00:00.005Z\",\"level\":\"WARNING\",\"message\":\"plain 1\",\
             \"logger\":\"app::orders\",\"requestId\":\"req-1\"}\n"
        );
    }

    #[test]
    fn json_escapes_every_control_character() {
        let all: String = (0u8..0x20).map(char::from).collect();
        let mut out = Vec::new();
        let _ = JsonString(&mut out).write_str(&all);
        let quoted = format!("\"{}\"", String::from_utf8(out.clone()).unwrap());
        assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), all);
        assert_eq!(quoted, serde_json::to_string(&all).unwrap(), "escaped as serde_json escapes");
    }
}
