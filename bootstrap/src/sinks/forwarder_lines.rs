//! Metrics as stdout lines for the Datadog Forwarder, byte-compatible with what Datadog's
//! Python library prints with `DD_FLUSH_TO_LOG=true`:
//! `{"m":"<name>","v":<value>,"e":<epoch seconds>,"t":["tag",...]}` — compact, keys in that
//! order, slashes not escaped, integer seconds, the value as given (`1`, `0.25`).
use std::io::Write;

use serde::Serialize;

use crate::telemetry::metrics::point::{MetricPoint, MetricValue};

#[derive(Serialize)]
struct Line<'a> {
    m: &'a str,
    v: JsonNumber,
    e: i64,
    t: &'a [String],
}

#[derive(Serialize)]
#[serde(untagged)]
enum JsonNumber {
    Integer(i64),
    Float(f64),
}

/// One point as its line, without the newline.
pub fn format_line(point: &MetricPoint) -> String {
    let v = match point.value {
        MetricValue::Integer(i) => JsonNumber::Integer(i),
        MetricValue::Float(f) => JsonNumber::Float(f),
    };
    let line = Line {
        m: &point.name,
        v,
        e: point.timestamp,
        t: &point.tags,
    };
    // A struct of strings and finite numbers always serialises (points are validated finite;
    // serde_json would print a non-finite float as `null`, which the Forwarder treats as a log).
    serde_json::to_string(&line).unwrap_or_default()
}

/// Writes every point as one line each, in a single write so lines from other threads cannot
/// interleave with them.
pub fn write_lines(out: &mut impl Write, points: &[MetricPoint]) -> std::io::Result<()> {
    if points.is_empty() {
        return Ok(());
    }
    let mut buffer = Vec::with_capacity(points.len() * 400);
    // An invocation's enhanced metrics share one tag set: serialise it once for the run of
    // points that carry it (the same bytes `format_line` prints).
    let mut tags_of: Option<&[String]> = None;
    let mut tags_json = Vec::new();
    for point in points {
        let same_tags = tags_of.is_some_and(|tags| std::ptr::eq(tags.as_ptr(), point.tags.as_ptr()) || *tags == *point.tags);
        if !same_tags {
            tags_json.clear();
            if serde_json::to_writer(&mut tags_json, &*point.tags).is_err() {
                tags_json.clear();
                tags_json.extend_from_slice(b"[]");
            }
            tags_of = Some(&point.tags);
        }
        push_line(&mut buffer, point, &tags_json);
        buffer.push(b'\n');
    }
    out.write_all(&buffer)?;
    out.flush()
}

/// `{"m":<name>,"v":<value>,"e":<seconds>,"t":<tags>}`, the keys in the order `format_line` prints.
fn push_line(buffer: &mut Vec<u8>, point: &MetricPoint, tags_json: &[u8]) {
    let value = match point.value {
        MetricValue::Integer(i) => JsonNumber::Integer(i),
        MetricValue::Float(f) => JsonNumber::Float(f),
    };
    // Writing into a Vec cannot fail, and a string and a finite number always serialise.
    buffer.extend_from_slice(b"{\"m\":");
    let _ = serde_json::to_writer(&mut *buffer, &point.name);
    buffer.extend_from_slice(b",\"v\":");
    let _ = serde_json::to_writer(&mut *buffer, &value);
    buffer.extend_from_slice(b",\"e\":");
    buffer.extend_from_slice(itoa::Buffer::new().format(point.timestamp).as_bytes());
    buffer.extend_from_slice(b",\"t\":");
    buffer.extend_from_slice(tags_json);
    buffer.push(b'}');
}

/// Writes to the process's stdout, where Lambda collects it into the function's log group.
pub fn write_to_stdout(points: &[MetricPoint]) -> std::io::Result<()> {
    write_lines(&mut std::io::stdout().lock(), points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_ordered_and_slashes_unescaped() {
        let p = MetricPoint::new("my.metric", 5, 1795520249, vec!["a:b".into(), "url:http://x/y".into()]);
        assert_eq!(
            format_line(&p),
            r#"{"m":"my.metric","v":5,"e":1795520249,"t":["a:b","url:http://x/y"]}"#
        );
        let p = MetricPoint::new("d", 0.25, 1, vec![]);
        assert_eq!(format_line(&p), r#"{"m":"d","v":0.25,"e":1,"t":[]}"#);
    }

    #[test]
    fn lines_written_together_are_the_lines_formatted_alone() {
        let shared = vec!["region:us-east-1".to_owned(), "cold_start:false".into(), "q:\"quoted\" \\ é".into()];
        let points = vec![
            MetricPoint::new("a.b", 1, 10, shared.clone()),
            MetricPoint::new("a.c", 0.1 + 0.2, 10, shared.clone()),
            MetricPoint::new("odd \"name\"", -3, 11, vec![]),
            MetricPoint::new("a.d", 1e-7, 12, shared),
        ];
        let mut out = Vec::new();
        write_lines(&mut out, &points).unwrap();
        let expected: String = points.iter().map(|p| format_line(p) + "\n").collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn one_line_per_point() {
        let mut out = Vec::new();
        let points = [MetricPoint::new("a", 1, 1, vec![]), MetricPoint::new("b", 2, 2, vec![])];
        write_lines(&mut out, &points).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"m\":\"a\",\"v\":1,\"e\":1,\"t\":[]}\n{\"m\":\"b\",\"v\":2,\"e\":2,\"t\":[]}\n"
        );
    }
}
