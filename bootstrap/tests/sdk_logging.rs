//! The sdk's logging (`sdk::logging`) for handler libraries, end to end: the real `bootstrap`
//! under the real `lambda-emulator` serving the example library's `logs` / `async_logs`
//! handlers, whose `log` records must carry the ids of the `aws.lambda` span in the trace line
//! the bootstrap prints (`DD_FLUSH_TO_LOG=true`), in Datadog's Python library's format (§7).
//!
//! Needs `target/<profile>/libhandlers_example.so`: `scripts/test.sh` builds it first (or run
//! `cargo build -p handlers-example`).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use std::time::Duration;

use emulator_support::{post, EmulatorProcess, Reply};
use serde_json::Value;
use traces_support::{fixture_text, request_id, span, start_traced, trace_of, WireSpan};

/// The Datadog context the API Gateway event carries (a 64-bit trace id, as dd-trace-py sends
/// by default without `_dd.p.tid`).
const TRACE_ID: u64 = 4110911582297405551;
const PARENT_ID: u64 = 2336172166318291498;

/// An API Gateway REST event (the seed's fixture) whose headers carry [`TRACE_ID`].
fn api_gateway_event() -> Vec<u8> {
    let mut event: Value = serde_json::from_str(&fixture_text("api-gateway.json")).unwrap();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.insert("x-datadog-trace-id".into(), TRACE_ID.to_string().into());
    headers.insert("x-datadog-parent-id".into(), PARENT_ID.to_string().into());
    headers.insert("x-datadog-sampling-priority".into(), "1".into());
    serde_json::to_vec(&event).unwrap()
}

async fn invoke(emulator: &EmulatorProcess, event: impl Into<Vec<u8>>) -> Reply {
    let reply = post(&emulator.invoke_url(), event.into(), &[]).await;
    assert_eq!(reply.status, 200, "{}\nstderr:\n{}", reply.text(), emulator.stderr.text());
    reply
}

/// The stdout lines containing `needle`, once at least `count` of them are there.
fn lines_with(emulator: &EmulatorProcess, needle: &str, count: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines: Vec<String> = emulator
            .stdout
            .text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than {count} lines with {needle:?} on stdout:\n{}\nstderr:\n{}",
            emulator.stdout.text(),
            emulator.stderr.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The only stdout line containing `needle`.
fn line_with(emulator: &EmulatorProcess, needle: &str) -> String {
    let lines = lines_with(emulator, needle, 1);
    assert_eq!(lines.len(), 1, "one line with {needle:?}: {lines:#?}");
    lines.into_iter().next().unwrap()
}

/// A text line split into its five tab-separated fields: level, time, request id, ids, message.
fn text_fields(line: &str) -> [String; 5] {
    let fields: Vec<&str> = line.splitn(5, '\t').collect();
    assert_eq!(fields.len(), 5, "five tab-separated fields: {line:?}");
    std::array::from_fn(|i| fields[i].to_owned())
}

/// `<YYYY-MM-DD>T<HH:MM:SS>.<ms>Z`, UTC, within a minute of now; the milliseconds zero-padded
/// to 3 digits or, as Datadog's formatter prints them, not padded.
fn assert_recent_time(time: &str, padded_millis: bool) {
    let (seconds, millis) = time
        .strip_suffix('Z')
        .and_then(|t| t.split_once('.'))
        .unwrap_or_else(|| panic!("no .<ms>Z in {time}"));
    assert!(!millis.is_empty() && millis.chars().all(|c| c.is_ascii_digit()), "{time}");
    if padded_millis {
        assert_eq!(millis.len(), 3, "{time}");
    } else {
        assert!(millis.len() <= 3 && (millis == "0" || !millis.starts_with('0')), "{time}");
    }
    assert_eq!(seconds.len(), "2024-01-01T12:00:00".len(), "{time}");
    // GNU date reads the ISO 8601 form; compared with the test's clock in whole seconds.
    let output = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{seconds}Z"), "+%s"])
        .output()
        .unwrap();
    assert!(output.status.success(), "date cannot read {time}");
    let printed: u64 = String::from_utf8(output.stdout).unwrap().trim().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(printed) < 60, "{time} is not now ({now})");
}

/// `dd.trace_id` of a span as §7 prints it: decimal for a 64-bit trace, else 32 hex digits.
fn dd_trace_id(span: &WireSpan) -> String {
    match span.meta("_dd.p.tid") {
        Some(high) => format!("{high}{:016x}", span.trace_id),
        None => span.trace_id.to_string(),
    }
}

fn ids_marker(span: &WireSpan) -> String {
    format!("[dd.trace_id={} dd.span_id={}]", dd_trace_id(span), span.span_id)
}

#[tokio::test]
async fn a_records_line_carries_the_ids_of_the_aws_lambda_span() {
    let emulator = start_traced("logs", &["--function-name", "shop-api"], &[]);
    let reply = invoke(&emulator, api_gateway_event()).await;
    let request_id = request_id(&reply);

    let spans = trace_of(&emulator, &request_id);
    let function = span(&spans, "aws.lambda");
    assert_eq!(function.trace_id, TRACE_ID, "the trace continues the event's: {spans:#?}");
    assert_eq!(span(&spans, "aws.apigateway").span_id, function.parent_id);

    let line = line_with(&emulator, "logs handler invoked");
    let [level, time, line_request_id, ids, message] = text_fields(&line);
    assert_eq!(level, "[INFO]");
    assert_recent_time(&time, false);
    assert_eq!(line_request_id, request_id);
    assert_eq!(ids, ids_marker(function));
    assert_eq!(ids, format!("[dd.trace_id={TRACE_ID} dd.span_id={}]", function.span_id));
    assert_eq!(message, "logs handler invoked");
    // The sdk's own view of the ids agrees with the line.
    assert_eq!(format!("[{}]", reply.json()["log_correlation"].as_str().unwrap()), ids);
    // The log line is the function's, not a trace or metric line, and is never rewritten.
    assert!(!line.starts_with('{'));
}

#[tokio::test]
async fn threads_that_carry_the_invocation_get_its_ids_and_others_get_none() {
    let emulator = start_traced("logs", &[], &[]);
    let event = br#"{"message": "from threads", "level": "warn", "from_thread": true}"#;
    let reply = invoke(&emulator, event.to_vec()).await;
    let request_id = request_id(&reply);
    let spans = trace_of(&emulator, &request_id);
    let marker = ids_marker(span(&spans, "aws.lambda"));

    let lines = lines_with(&emulator, "from threads", 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let handler = lines.iter().find(|line| line.ends_with("\tfrom threads")).unwrap();
    let scoped = line_with(&emulator, "from threads (scoped thread)");
    let unscoped = line_with(&emulator, "from threads (unscoped thread)");
    for line in [handler, &scoped] {
        let [level, _, line_request_id, ids, _] = text_fields(line);
        assert_eq!(
            (level.as_str(), line_request_id.as_str()),
            ("[WARNING]", request_id.as_str()),
            "{line}"
        );
        assert_eq!(ids, marker, "{line}");
    }
    let [_, _, line_request_id, ids, _] = text_fields(&unscoped);
    assert_eq!(line_request_id, "", "a thread outside the invocation has no request id");
    assert_eq!(ids, "[dd.trace_id=0 dd.span_id=0]");
}

#[tokio::test]
async fn records_inside_a_child_span_carry_its_id() {
    let emulator = start_traced("logs", &[], &[]);
    let reply = invoke(&emulator, br#"{"message": "reserving", "in_span": true}"#.to_vec()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let (function, child) = (span(&spans, "aws.lambda"), span(&spans, "example.logged"));
    assert_eq!(child.parent_id, function.span_id);

    let lines = lines_with(&emulator, "reserving", 2);
    let outside = lines.iter().find(|line| line.ends_with("\treserving")).unwrap();
    let inside = lines.iter().find(|line| line.ends_with("\treserving (in span)")).unwrap();
    assert_eq!(text_fields(outside)[3], ids_marker(function));
    assert_eq!(text_fields(inside)[3], ids_marker(child));
    assert_eq!(text_fields(inside)[2], text_fields(outside)[2], "the same request id");
}

#[tokio::test]
async fn async_handlers_and_their_in_invocation_tasks_get_the_ids() {
    let emulator = start_traced("async_logs", &[], &[]);
    let reply = invoke(&emulator, br#"{"message": "async work"}"#.to_vec()).await;
    let request_id = request_id(&reply);
    let marker = ids_marker(span(&trace_of(&emulator, &request_id), "aws.lambda"));

    let lines = lines_with(&emulator, "async work", 3);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        let [_, _, line_request_id, ids, message] = text_fields(line);
        if message.ends_with("(plain task)") {
            assert_eq!((line_request_id.as_str(), ids.as_str()), ("", "[dd.trace_id=0 dd.span_id=0]"));
        } else {
            assert!(message == "async work" || message == "async work (in_invocation task)", "{line}");
            assert_eq!(
                (line_request_id.as_str(), ids.as_str()),
                (request_id.as_str(), marker.as_str()),
                "{line}"
            );
        }
    }
}

#[tokio::test]
async fn each_invocation_gets_its_own_ids() {
    let emulator = start_traced("logs", &[], &[]);
    let mut seen = Vec::new();
    for n in 0..3 {
        let reply = invoke(&emulator, format!(r#"{{"message": "invocation {n}"}}"#)).await;
        let request_id = request_id(&reply);
        let marker = ids_marker(span(&trace_of(&emulator, &request_id), "aws.lambda"));
        let [_, _, line_request_id, ids, _] = text_fields(&line_with(&emulator, &format!("\tinvocation {n}")));
        assert_eq!((line_request_id, ids.clone()), (request_id, marker));
        seen.push(ids);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "three traces, three sets of ids: {seen:?}");
}

#[tokio::test]
async fn concurrent_invocations_each_log_with_their_own_ids() {
    // AWS_LAMBDA_MAX_CONCURRENCY=4: four invocations on four bootstrap threads, which log only
    // once all four are inside the handler (the `meet` rendezvous), threads of theirs included.
    let emulator = start_traced("logs", &["--timeout", "60"], &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
    let pending: Vec<_> = (0..4)
        .map(|n| {
            let url = emulator.invoke_url();
            let event = format!(r#"{{"message": "concurrent {n}", "from_thread": true, "meet": 4}}"#);
            tokio::spawn(async move { post(&url, event.into_bytes(), &[]).await })
        })
        .collect();
    for (n, pending) in pending.into_iter().enumerate() {
        let reply = pending.await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["logged"], 3, "{}", reply.text());
        let request_id = request_id(&reply);
        let marker = ids_marker(span(&trace_of(&emulator, &request_id), "aws.lambda"));
        for suffix in ["", " (scoped thread)"] {
            let line = lines_with(&emulator, &format!("\tconcurrent {n}{suffix}"), 1)
                .into_iter()
                .find(|line| line.ends_with(&format!("\tconcurrent {n}{suffix}")))
                .unwrap();
            let [_, _, line_request_id, ids, _] = text_fields(&line);
            assert_eq!(
                (line_request_id.as_str(), ids.as_str()),
                (request_id.as_str(), marker.as_str()),
                "{line}"
            );
        }
    }
}

#[tokio::test]
async fn with_logs_injection_off_lines_have_the_aws_format_without_ids() {
    let emulator = start_traced("logs", &[], &[("DD_LOGS_INJECTION", "false")]);
    let reply = invoke(&emulator, api_gateway_event()).await;
    let request_id = request_id(&reply);
    // Tracing itself is untouched.
    let _ = trace_of(&emulator, &request_id);

    let line = line_with(&emulator, "logs handler invoked");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 4, "[LEVEL], time, request id, message: {line:?}");
    assert_eq!(fields[0], "[INFO]");
    assert_recent_time(fields[1], true);
    assert_eq!(fields[2], request_id);
    assert_eq!(fields[3], "logs handler invoked");
    assert!(!emulator.stdout.text().contains("dd.trace_id"), "{}", emulator.stdout.text());
}

/// Invokes with an `X-Amzn-Trace-Id` header (Lambda's `Lambda-Runtime-Trace-Id`, the
/// `_X_AMZN_TRACE_ID` Datadog's library reads).
async fn invoke_with_xray(emulator: &EmulatorProcess, event: impl Into<Vec<u8>>, xray: &str) -> Reply {
    let reply = post(&emulator.invoke_url(), event.into(), &[("X-Amzn-Trace-Id", xray)]).await;
    assert_eq!(reply.status, 200, "{}\nstderr:\n{}", reply.text(), emulator.stderr.text());
    reply
}

/// The `[dd.trace_id=<trace> dd.span_id=<span>]` of `request_id`'s record containing `needle`,
/// checked against the handler's own `ctx.log_correlation()` answer; returns `(trace, span)`.
fn record_ids(emulator: &EmulatorProcess, reply: &Reply, needle: &str) -> (String, String) {
    let request_id = request_id(reply);
    let line = lines_with(emulator, needle, 1)
        .into_iter()
        .find(|line| line.contains(&request_id))
        .unwrap_or_else(|| panic!("no {needle:?} line of {request_id}:\n{}", emulator.stdout.text()));
    let [_, _, _, ids, _] = text_fields(&line);
    assert_eq!(
        format!("[{}]", reply.json()["log_correlation"].as_str().unwrap()),
        ids,
        "the sdk agrees"
    );
    let ids = ids.strip_prefix("[dd.trace_id=").and_then(|i| i.strip_suffix(']')).unwrap();
    let (trace, span) = ids.split_once(" dd.span_id=").unwrap();
    (trace.to_owned(), span.to_owned())
}

#[tokio::test]
async fn with_tracing_off_records_carry_the_seeds_correlation_ids() {
    // Datadog's library with tracing off (§5.16): a `dummy.span` under the X-Ray context, keeping
    // the event's trace id when the event carried one; log lines carry its trace id and its own
    // (random) span id. No trace is sent.
    let emulator = start_traced("logs", &[], &[("DD_TRACE_ENABLED", "false")]);
    let xray = traces_support::XRAY_HEADER;

    let from_event = invoke_with_xray(&emulator, api_gateway_event(), xray).await;
    let (trace, span) = record_ids(&emulator, &from_event, "logs handler invoked");
    assert_eq!(trace, TRACE_ID.to_string(), "the event's trace id");
    let span: u64 = span.parse().unwrap();
    assert!(
        ![0, PARENT_ID, traces_support::XRAY_PARENT_ID].contains(&span),
        "the dummy span's own id: {span}"
    );

    let only_xray = invoke_with_xray(&emulator, br#"{"message": "no context"}"#.to_vec(), xray).await;
    let (trace, other_span) = record_ids(&emulator, &only_xray, "no context");
    assert_eq!(
        trace, "3995693151288333088",
        "X-Ray's trace id: the root's last 16 hex digits, top bit cleared"
    );
    assert_ne!(other_span, span.to_string(), "a dummy span per invocation");

    // A 128-bit trace id (`_dd.p.tid`) is written as 32 hex digits (§7).
    let mut wide: Value = serde_json::from_slice(&api_gateway_event()).unwrap();
    wide["headers"]["x-datadog-tags"] = "_dd.p.dm=-0,_dd.p.tid=66bcb5eb00000000".into();
    wide["message"] = "wide trace".into();
    let wide = invoke_with_xray(&emulator, serde_json::to_vec(&wide).unwrap(), xray).await;
    let (trace, _) = record_ids(&emulator, &wide, "wide trace");
    assert_eq!(trace, format!("66bcb5eb00000000{TRACE_ID:016x}"));

    // No X-Ray context: the seed starts no dummy span, whatever the event carries.
    let mut no_xray: Value = serde_json::from_slice(&api_gateway_event()).unwrap();
    no_xray["message"] = "no x-ray".into();
    let no_xray = invoke_with_xray(&emulator, serde_json::to_vec(&no_xray).unwrap(), "not an x-ray header").await;
    assert_eq!(record_ids(&emulator, &no_xray, "no x-ray"), ("0".to_owned(), "0".to_owned()));

    assert!(traces_support::trace_lines(&emulator).is_empty(), "nothing is traced");
}

#[tokio::test]
async fn with_tracing_off_the_ids_are_for_logs_only() {
    // The handler sees no trace to continue or to hang spans on; only its log correlation.
    let emulator = start_traced("traced", &[], &[("DD_TRACE_ENABLED", "false")]);
    let reply = invoke_with_xray(&emulator, api_gateway_event(), traces_support::XRAY_HEADER).await;
    let answer = reply.json();
    assert_eq!(answer["trace"], Value::Null, "{answer}");
    assert_eq!(answer["span_id"], Value::Null, "the span records nothing: {answer}");
    assert_eq!(answer["headers"], serde_json::json!({}), "{answer}");
    let correlation = answer["log_correlation"].as_str().unwrap();
    assert!(correlation.starts_with(&format!("dd.trace_id={TRACE_ID} dd.span_id=")), "{answer}");
    assert!(!correlation.ends_with("dd.span_id=0"), "{answer}");
    assert!(traces_support::trace_lines(&emulator).is_empty());
}

#[tokio::test]
async fn with_tracing_and_logs_injection_off_lines_have_no_ids() {
    let emulator = start_traced("logs", &[], &[("DD_TRACE_ENABLED", "false"), ("DD_LOGS_INJECTION", "false")]);
    let reply = invoke_with_xray(&emulator, api_gateway_event(), traces_support::XRAY_HEADER).await;
    let line = line_with(&emulator, "logs handler invoked");
    let fields: Vec<&str> = line.split('\t').collect();
    assert_eq!(fields.len(), 4, "[LEVEL], time, request id, message: {line:?}");
    assert_eq!(fields[2], request_id(&reply));
    assert_eq!(reply.json()["log_correlation"], "dd.trace_id=0 dd.span_id=0");
    assert!(!emulator.stdout.text().contains("dd.trace_id"), "{}", emulator.stdout.text());
}

#[tokio::test]
async fn multi_line_and_non_utf8_messages_stay_one_valid_line() {
    let emulator = start_traced("logs", &[], &[]);
    // Not JSON: the handler logs the bytes as text, decoded lossily (Rust messages are UTF-8).
    let reply = invoke(&emulator, b"first line\nsecond \xff\xfe line\r\nlast".to_vec()).await;
    let request_id = request_id(&reply);
    let marker = ids_marker(span(&trace_of(&emulator, &request_id), "aws.lambda"));

    let raw = emulator.stdout.raw();
    let lines: Vec<&[u8]> = raw
        .split(|b| *b == b'\n')
        .filter(|l| l.windows(10).any(|w| w == b"first line"))
        .collect();
    assert_eq!(lines.len(), 1, "one line: {:?}", String::from_utf8_lossy(&raw));
    let line = std::str::from_utf8(lines[0]).expect("the line is UTF-8");
    let [_, _, line_request_id, ids, message] = text_fields(line);
    assert_eq!((line_request_id, ids), (request_id, marker));
    assert_eq!(message, "first line\rsecond \u{fffd}\u{fffd} line\r\rlast");
    assert!(!emulator.stdout.text().contains("\nsecond"), "no line starts inside the record");
}

#[tokio::test]
async fn json_format_lines_are_json_objects_with_the_ids() {
    let emulator = start_traced(
        "logs",
        &["--function-name", "json-fn"],
        &[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("DD_ENV", "staging"), ("DD_VERSION", "7")],
    );
    let reply = invoke(&emulator, br#"{"message": "two\nlines \"quoted\"", "level": "error"}"#.to_vec()).await;
    let request_id = request_id(&reply);
    let function = span(&trace_of(&emulator, &request_id), "aws.lambda").clone();

    let line = line_with(&emulator, "lines \\\"quoted\\\"");
    let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(value["level"], "ERROR");
    assert_eq!(value["message"], "two\nlines \"quoted\"");
    assert_eq!(value["logger"], "handlers_example");
    assert_eq!(value["requestId"], request_id.as_str());
    assert_eq!(value["dd.trace_id"], dd_trace_id(&function).as_str());
    assert_eq!(value["dd.span_id"], function.span_id.to_string().as_str());
    assert_eq!(value["dd.service"], function.service.as_str(), "the service of the aws.lambda span");
    assert_eq!(
        (value["dd.env"].as_str(), value["dd.version"].as_str()),
        (Some("staging"), Some("7"))
    );
    let timestamp = value["timestamp"].as_str().unwrap();
    assert_eq!(timestamp.len(), "2024-01-01T12:00:00.000Z".len(), "{timestamp}");
    assert_recent_time(timestamp, true);
}

#[tokio::test]
async fn aws_lambda_log_level_filters_records() {
    let emulator = start_traced("logs", &[], &[("AWS_LAMBDA_LOG_LEVEL", "WARN")]);
    invoke(&emulator, br#"{"message": "quiet info", "level": "info"}"#.to_vec()).await;
    invoke(&emulator, br#"{"message": "loud warning", "level": "warn"}"#.to_vec()).await;
    let _ = line_with(&emulator, "loud warning");
    // The info record came first on the same thread: had it been written, it would be there.
    assert!(!emulator.stdout.text().contains("quiet info"), "{}", emulator.stdout.text());
}
