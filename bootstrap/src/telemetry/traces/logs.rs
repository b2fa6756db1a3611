//! Log correlation (§7): the active `dd.trace_id` / `dd.span_id` put on each log line of the
//! function, so Datadog links logs to the trace. Pure functions over one line; the caller
//! decides which lines are the function's.
use std::borrow::Cow;

use serde_json::Value;

use super::span::TraceId;

/// Which in-flight invocation a log line (or a child's call) belongs to: the one `request_id`
/// names when it is in flight, else the only one in flight; `None` when several are and nothing
/// tells them apart (a wrong id would be worse than none). Shared by tracing and the
/// correlation-only mode, so both attribute lines alike.
pub fn attributed_in_flight<T: Clone, S: std::hash::BuildHasher>(
    in_flight: &std::collections::HashMap<String, T, S>,
    request_id: Option<&str>,
) -> Option<T> {
    if let Some(entry) = request_id.and_then(|id| in_flight.get(id)) {
        return Some(entry.clone());
    }
    (in_flight.len() == 1).then(|| in_flight.values().next().cloned()).flatten()
}

/// The ids (and unified service tags) a line is stamped with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Correlation {
    pub trace_id: String,
    pub span_id: String,
    pub service: String,
    pub env: String,
    pub version: String,
}

impl Correlation {
    /// `dd.trace_id` is the decimal low 64 bits when the id fits in 64 bits, else all 128 bits
    /// as 32 lower-case hex digits; `dd.span_id` is decimal (§7).
    pub fn new(trace_id: TraceId, span_id: u64, service: &str, env: &str, version: &str) -> Self {
        let trace_id = if trace_id.high == 0 {
            trace_id.low.to_string()
        } else {
            format!("{:032x}", trace_id.as_u128())
        };
        Self {
            trace_id,
            span_id: span_id.to_string(),
            service: service.to_owned(),
            env: env.to_owned(),
            version: version.to_owned(),
        }
    }

    /// No active span: both ids are `0`.
    pub fn none() -> Self {
        Self::new(TraceId::default(), 0, "", "", "")
    }

    fn text_marker(&self) -> String {
        format!("[dd.trace_id={} dd.span_id={}]", self.trace_id, self.span_id)
    }
}

/// Stamps one line (without its newline). Metric and trace lines for the Forwarder are left
/// unchanged; a JSON object gets fields and stays valid JSON; anything else (including bytes
/// that are not UTF-8) is text.
pub fn inject_line<'a>(line: &'a [u8], ids: &Correlation) -> Cow<'a, [u8]> {
    if let Ok(text) = std::str::from_utf8(line) {
        let trimmed = text.trim();
        if trimmed.starts_with('{') && trimmed.ends_with('}') {
            if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed) {
                if is_forwarder_line(&map) || map.contains_key("dd.trace_id") {
                    return Cow::Borrowed(line);
                }
                return Cow::Owned(inject_into_json_line(text, ids).into_bytes());
            }
        }
        if text.contains("[dd.trace_id=") {
            return Cow::Borrowed(line);
        }
        return Cow::Owned(inject_into_text_line(text, ids).into_bytes());
    }
    let mut out = ids.text_marker().into_bytes();
    out.push(b' ');
    out.extend_from_slice(line);
    Cow::Owned(out)
}

/// Datadog Forwarder metric (`m`,`v`,`e`,`t`) and trace (`traces`) lines are never rewritten.
fn is_forwarder_line(map: &serde_json::Map<String, Value>) -> bool {
    map.contains_key("traces") || ["m", "v", "e", "t"].iter().all(|k| map.contains_key(*k))
}

/// A text line: in the Lambda runtime's format (`[LEVEL]\t<time>\t<request id>\t<message>`)
/// the marker goes where Datadog's formatter puts it, before the message; any other line gets
/// it in front.
pub fn inject_into_text_line(line: &str, ids: &Correlation) -> String {
    let marker = ids.text_marker();
    let fields: Vec<&str> = line.splitn(4, '\t').collect();
    if fields.len() == 4 && fields[0].starts_with('[') && fields[0].ends_with(']') {
        return format!("{}\t{}\t{}\t{marker}\t{}", fields[0], fields[1], fields[2], fields[3]);
    }
    format!("{marker} {line}")
}

/// A JSON object line: `"dd.trace_id"`, `"dd.span_id"`, `"dd.service"`, `"dd.env"`,
/// `"dd.version"` appended before the closing brace, leaving the rest of the line as it was.
pub fn inject_into_json_line(line: &str, ids: &Correlation) -> String {
    let Some(close) = line.rfind('}') else { return line.to_owned() };
    let head = &line[..close];
    let empty = head.trim_end().ends_with('{');
    let fields = [
        ("dd.trace_id", &ids.trace_id),
        ("dd.span_id", &ids.span_id),
        ("dd.service", &ids.service),
        ("dd.env", &ids.env),
        ("dd.version", &ids.version),
    ];
    let added: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\":{}", Value::String((*v).clone())))
        .collect();
    format!(
        "{}{}{}{}",
        head.trim_end(),
        if empty { "" } else { "," },
        added.join(","),
        &line[close..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Correlation {
        Correlation::new(TraceId::new(0, 8460795402960033906), 5837228094213247506, "svc", "", "")
    }

    #[test]
    fn id_formats() {
        assert_eq!(ids().trace_id, "8460795402960033906");
        let wide = Correlation::new(TraceId::new(0x6b05765000000000, 0xf29b8da6a6f8431e), 1, "", "", "");
        assert_eq!(wide.trace_id, "6b05765000000000f29b8da6a6f8431e");
        assert_eq!(Correlation::none().trace_id, "0");
    }

    #[test]
    fn lambda_text_format_gets_the_marker_before_the_message() {
        let line = "[INFO]\t2024-01-01T12:00:00.5Z\treq-1\tmy message\twith tab";
        assert_eq!(
            inject_line(line.as_bytes(), &ids()).as_ref(),
            "[INFO]\t2024-01-01T12:00:00.5Z\treq-1\t[dd.trace_id=8460795402960033906 dd.span_id=5837228094213247506]\tmy message\twith tab"
                .as_bytes()
        );
        assert_eq!(
            inject_line(b"plain", &ids()).as_ref(),
            b"[dd.trace_id=8460795402960033906 dd.span_id=5837228094213247506] plain"
        );
    }

    #[test]
    fn json_lines_stay_json() {
        let out = inject_line(br#"{"level": "info", "msg": "hi"}"#, &ids());
        let parsed: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["dd.trace_id"], "8460795402960033906");
        assert_eq!(parsed["dd.span_id"], "5837228094213247506");
        assert_eq!(parsed["dd.service"], "svc");
        assert_eq!(parsed["msg"], "hi");
        assert!(std::str::from_utf8(&out)
            .unwrap()
            .starts_with(r#"{"level": "info", "msg": "hi","dd.trace_id""#));
        let empty: Value = serde_json::from_slice(&inject_line(b"{ }", &ids())).unwrap();
        assert_eq!(empty["dd.span_id"], "5837228094213247506");
    }

    #[test]
    fn forwarder_lines_and_stamped_lines_are_untouched() {
        for line in [
            &br#"{"m":"peer.test.count","v":1,"e":1795524692,"t":["k:v"]}"#[..],
            br#"{"traces": [[{"trace_id": "C942FC180BC8B4B4"}]]}"#,
            br#"{"dd.trace_id": "1", "msg": "x"}"#,
            b"[dd.trace_id=1 dd.span_id=2] already",
        ] {
            assert!(matches!(inject_line(line, &ids()), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn non_utf8_lines_keep_their_bytes() {
        let out = inject_line(&[0xff, b'x', 0xfe], &ids());
        assert!(out.ends_with(&[0xff, b'x', 0xfe]));
        assert!(out.starts_with(b"[dd.trace_id=8460795402960033906 "));
    }
}
