//! The stdout trace line the Datadog Forwarder decodes (§5.15, `datadog-forwarder-format.md`):
//! `{"traces": [[span, …]]}`, ids as 16 upper-case hex digits of their low 64 bits, times as
//! integer nanoseconds, `meta` strings, `metrics` numbers — spelled as ddtrace's
//! flush-to-log writer spells it (Python's `json.dumps`: `", "` and `": "`, ASCII only).
use std::fmt::Write;

use super::span::{Span, SpanLink};

/// One line (without the newline) holding one trace.
pub fn forwarder_line(spans: &[Span]) -> String {
    let mut out = String::with_capacity(256 + spans.len() * 512);
    out.push_str("{\"traces\": [[");
    for (i, span) in spans.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_span(&mut out, span);
    }
    out.push_str("]]}");
    out
}

fn write_span(out: &mut String, span: &Span) {
    for (key, id) in [
        ("{\"trace_id\": \"", span.trace_id.low),
        ("\", \"parent_id\": \"", span.parent_id),
        ("\", \"span_id\": \"", span.span_id),
    ] {
        out.push_str(key);
        push_upper_hex(out, id);
    }
    out.push_str("\", ");
    for (key, value) in [("service", &span.service), ("resource", &span.resource), ("name", &span.name)] {
        write_string(out, key);
        out.push_str(": ");
        write_string(out, value);
        out.push_str(", ");
    }
    let mut number = itoa::Buffer::new();
    out.push_str("\"error\": ");
    out.push_str(number.format(span.error));
    out.push_str(", \"start\": ");
    out.push_str(number.format(span.start_ns));
    out.push_str(", \"duration\": ");
    out.push_str(number.format(span.duration_ns));
    out.push_str(", \"meta\": {");
    for (i, (key, value)) in span.meta.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_string(out, value);
    }
    out.push_str("}, \"metrics\": {");
    let finite = span.metrics.iter().filter(|(_, v)| v.is_finite());
    for (i, (key, value)) in finite.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_number(out, *value);
    }
    out.push_str("}, \"type\": ");
    write_string(out, &span.span_type);
    if !span.span_links.is_empty() {
        out.push_str(", \"span_links\": [");
        for (i, link) in span.span_links.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_link(out, link);
        }
        out.push(']');
    }
    out.push('}');
}

fn write_link(out: &mut String, link: &SpanLink) {
    let _ = write!(
        out,
        "{{\"trace_id\": \"{:032x}\", \"span_id\": \"{:016x}\", \"attributes\": {{",
        link.trace_id.as_u128(),
        link.span_id
    );
    for (i, (key, value)) in link.attributes.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_string(out, key);
        out.push_str(": ");
        write_string(out, value);
    }
    out.push_str("}}");
}

/// 16 upper-case hex digits, as `{:016X}` writes them, without the formatting machinery (six
/// ids per trace line).
fn push_upper_hex(out: &mut String, id: u64) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut hex = [0u8; 16];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[((id >> (60 - 4 * i)) & 0xf) as usize];
    }
    out.extend(hex.iter().map(|&d| char::from(d)));
}

/// Integral values as integers (`1`, as ddtrace writes `_sampling_priority_v1`), others in
/// their shortest form.
fn write_number(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value}");
    }
}

/// Bytes copied as they are: printable ASCII but `"` and `\`.
static PLAIN: [bool; 256] = {
    let mut plain = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        plain[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    plain
};

/// How many leading bytes of `bytes` are [`PLAIN`]. Eight are checked at once (nearly every
/// byte of a span is plain): a word has a byte to escape when one is below 0x20, `"`, `\`,
/// DEL or not ASCII, each found with the "has a zero byte" bit trick, which tells exactly
/// whether the word holds one (not which), so the byte itself is then found one at a time.
fn plain_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let has_zero_byte = |v: u64| v.wrapping_sub(ONES) & !v;
    let mut at = 0;
    for chunk in bytes.chunks_exact(8) {
        let Ok(word) = <[u8; 8]>::try_from(chunk).map(u64::from_le_bytes) else {
            break;
        };
        let control = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
        let delete = has_zero_byte(word ^ (ONES * 0x7f));
        if (control | quote | backslash | delete | word) & HIGH != 0 {
            break;
        }
        at += 8;
    }
    at + bytes[at..].iter().position(|&b| !PLAIN[usize::from(b)]).unwrap_or(bytes.len() - at)
}

/// A JSON string with every non-ASCII character escaped, as `json.dumps` does by default.
fn write_string(out: &mut String, value: &str) {
    out.push('"');
    // Runs of printable ASCII (nearly every byte of a span) are copied whole.
    let mut rest = value;
    loop {
        let at = plain_prefix(rest.as_bytes());
        if at == rest.len() {
            break;
        }
        out.push_str(&rest[..at]);
        let Some(c) = rest[at..].chars().next() else { break };
        rest = &rest[at + c.len_utf8()..];
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::span::TraceId;
    use serde_json::Value;

    /// The error span of `reference-output/datadog_lambda_flush_to_log_trace_enabled.txt`,
    /// rebuilt field by field.
    fn reference_span() -> Span {
        let mut span = Span::new(
            "aws.lambda",
            TraceId::new(0x6b05885400000000, 0x72D08371093FF908),
            0x41A5F0454816B89F,
            0,
        );
        span.service = "my-fn".into();
        span.resource = "my-fn".into();
        span.span_type = "serverless".into();
        span.error = 1;
        span.start_ns = 1795524692179889827;
        span.duration_ns = 387967;
        span.set_meta("error.message", "requested failure");
        span.set_meta(
            "error.stack",
            "Traceback (most recent call last):\n  File \"/var/task/handler.py\", line 13\n",
        );
        span.set_meta("_dd.p.tid", "6b05885400000000");
        span.set_metric("_sampling_priority_v1", 1.0);
        span.set_metric("_dd.top_level", 1.0);
        span
    }

    #[test]
    fn shape_matches_the_reference_line() {
        let line = forwarder_line(&[reference_span()]);
        assert!(line.starts_with(r#"{"traces": [[{"trace_id": "72D08371093FF908", "parent_id": "0000000000000000", "span_id": "41A5F0454816B89F", "service": "my-fn", "resource": "my-fn", "name": "aws.lambda", "error": 1, "start": 1795524692179889827, "duration": 387967, "meta": {"#), "{line}");
        assert!(
            line.ends_with(r#""metrics": {"_dd.top_level": 1, "_sampling_priority_v1": 1}, "type": "serverless"}]]}"#),
            "{line}"
        );
        assert!(!line.contains('\n'));

        // Same types as the reference line, key by key, as the Forwarder's Go model needs.
        let reference = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/spec/reference-output/datadog_lambda_flush_to_log_trace_enabled.txt"
        ));
        let ours: Value = serde_json::from_str(&line).unwrap();
        let ours = &ours["traces"][0][0];
        {
            let reference = reference.expect("the shared spec folder sits beside the repository");
            let theirs: Value = reference
                .lines()
                .rfind(|l| l.starts_with("{\"traces\""))
                .map(|l| serde_json::from_str(l).unwrap())
                .unwrap();
            let theirs = &theirs["traces"][0][0];
            for key in [
                "trace_id",
                "parent_id",
                "span_id",
                "service",
                "resource",
                "name",
                "error",
                "start",
                "duration",
                "type",
            ] {
                assert_eq!(ours[key], theirs[key], "{key}");
            }
            assert!(ours["meta"].as_object().unwrap().values().all(Value::is_string));
            assert!(ours["metrics"].as_object().unwrap().values().all(Value::is_number));
        }
    }

    #[test]
    fn the_plain_prefix_stops_at_the_first_byte_to_escape_wherever_it_is() {
        let specials = [0x00, 0x1f, b'"', b'\\', 0x7f, 0x80, 0xc3, 0xff];
        for len in 0..40 {
            let plain = vec![b'a'; len];
            assert_eq!(plain_prefix(&plain), len);
            for at in 0..len {
                for special in specials {
                    let mut bytes = plain.clone();
                    bytes[at] = special;
                    assert_eq!(plain_prefix(&bytes), at, "{special:#x} at {at} of {len}");
                    // A second special later does not move the first.
                    if at + 1 < len {
                        bytes[len - 1] = b'"';
                        assert_eq!(plain_prefix(&bytes), at, "{special:#x} at {at} of {len}, quote last");
                    }
                }
            }
        }
        // Every byte value on its own, at every offset of an 8-byte word.
        for byte in 0..=255u8 {
            for at in 0..16 {
                let mut bytes = vec![b'~'; 16];
                bytes[at] = byte;
                let expected = if PLAIN[usize::from(byte)] { 16 } else { at };
                assert_eq!(plain_prefix(&bytes), expected, "{byte:#x} at {at}");
            }
        }
    }

    #[test]
    fn escapes_like_python() {
        let mut span = reference_span();
        span.meta.clear();
        span.set_meta("msg", "é \"q\" \u{1F600}\t");
        span.set_meta("raw", "a\\b\u{7f}\u{1}end");
        span.set_metric("ratio", 0.25);
        span.set_metric("nan", f64::NAN);
        let line = forwarder_line(&[span]);
        assert!(line.contains(r#""msg": "\u00e9 \"q\" \ud83d\ude00\t""#), "{line}");
        assert!(line.contains(r#""raw": "a\\b\u007f\u0001end""#), "{line}");
        assert!(line.contains(r#""ratio": 0.25"#));
        assert!(!line.contains("nan"));
        assert!(line.is_ascii());
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["traces"][0][0]["meta"]["msg"], "é \"q\" \u{1F600}\t");
    }

    #[test]
    fn several_spans_and_links() {
        let mut a = reference_span();
        a.span_links.push(SpanLink {
            trace_id: TraceId::default(),
            span_id: 0,
            attributes: [("ptr.kind".to_owned(), "aws.s3.object".to_owned())].into(),
        });
        let b = reference_span();
        let parsed: Value = serde_json::from_str(&forwarder_line(&[a, b])).unwrap();
        assert_eq!(parsed["traces"][0].as_array().unwrap().len(), 2);
        assert_eq!(parsed["traces"][0][0]["span_links"][0]["attributes"]["ptr.kind"], "aws.s3.object");
        assert_eq!(parsed["traces"][0][0]["span_links"][0]["span_id"], "0000000000000000");
    }
}
