//! Tracing seen from outside: the real `bootstrap` serving `libhandlers_example.so` under the
//! real `lambda-emulator`, and the `{"traces": [[...]]}` lines it prints, parsed back.
//!
//! Test files include it beside `emulator_support` (`mod emulator_support; mod traces_support;`).
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::emulator_support::{post, EmulatorProcess, Reply};

/// The X-Ray header the tests send with every invoke (Lambda's own example values).
pub const XRAY_HEADER: &str = "Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1";
/// The X-Ray segment id of [`XRAY_HEADER`].
pub const XRAY_PARENT_ID: u64 = 0x94ae789b969f1cc5;
/// The Datadog trace id of [`XRAY_HEADER`]: the last 16 hex digits of its root (§6.1).
pub const XRAY_TRACE_ID: u64 = 0x37738dc042009320;

/// How long a trace line may take to appear once its invocation is answered.
const LINE_WAIT: Duration = Duration::from_secs(20);

/// `target/<profile>/`, where cargo put the bootstrap, the emulator and the example library.
pub fn profile_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_bootstrap")).parent().unwrap().to_owned()
}

/// `libhandlers_example.so:<handler>`, built by `cargo build --workspace` (scripts/test.sh).
pub fn handler(name: &str) -> String {
    let library = profile_dir().join("libhandlers_example.so");
    assert!(
        library.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, as scripts/test.sh does)",
        library.display()
    );
    format!("{}:{name}", library.display())
}

/// The shared fixtures: `../shared/fixtures` beside the clone (`SHARED_FIXTURES` overrides).
pub fn shared_fixtures() -> PathBuf {
    let dir = std::env::var_os("SHARED_FIXTURES").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures"),
        PathBuf::from,
    );
    assert!(
        dir.join("events-expected.json").exists(),
        "the shared fixtures are not at {} (set SHARED_FIXTURES)",
        dir.display()
    );
    dir
}

pub fn fixture_text(name: &str) -> String {
    let path = shared_fixtures().join("events").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Starts the emulator with the bootstrap serving `handler_name` of the example library, tracing
/// on and printed to stdout, plus `env` (K=V pairs, later ones win) and emulator `flags`.
pub fn start_traced(handler_name: &str, flags: &[&str], env: &[(&str, &str)]) -> EmulatorProcess {
    let mut pairs = vec![
        ("DD_LAMBDA_HANDLER".to_owned(), handler(handler_name)),
        ("DD_TRACE_ENABLED".to_owned(), "true".to_owned()),
        ("DD_FLUSH_TO_LOG".to_owned(), "true".to_owned()),
        // The tests read traces; enhanced metric lines would only add noise to stdout.
        ("DD_ENHANCED_METRICS".to_owned(), "false".to_owned()),
    ];
    pairs.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let env_flags: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut all_flags: Vec<&str> = flags.to_vec();
    for pair in &env_flags {
        all_flags.extend(["--env", pair.as_str()]);
    }
    EmulatorProcess::start(&all_flags, &[env!("CARGO_BIN_EXE_bootstrap")])
}

/// Invokes with the test X-Ray header.
pub async fn invoke(emulator: &EmulatorProcess, event: impl Into<Vec<u8>>) -> Reply {
    post(&emulator.invoke_url(), event.into(), &[("X-Amzn-Trace-Id", XRAY_HEADER)]).await
}

pub fn request_id(reply: &Reply) -> String {
    reply
        .header("x-amzn-requestid")
        .unwrap_or_else(|| panic!("no X-Amzn-RequestId on {reply:?}"))
        .to_owned()
}

/// One span as the Forwarder reads it from a trace line.
#[derive(Clone, Debug)]
pub struct WireSpan {
    pub trace_id: u64,
    pub parent_id: u64,
    pub span_id: u64,
    pub name: String,
    pub service: String,
    pub resource: String,
    pub span_type: String,
    pub error: i64,
    pub start: i64,
    pub duration: i64,
    pub meta: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub span_links: Option<Value>,
}

impl WireSpan {
    pub fn end(&self) -> i64 {
        self.start + self.duration
    }

    pub fn meta(&self, key: &str) -> Option<&str> {
        self.meta.get(key).map(String::as_str)
    }
}

/// An id as the Forwarder's trace forwarder expects it: 16 upper-case hex digits.
fn wire_id(span: &Value, key: &str) -> u64 {
    let text = span[key].as_str().unwrap_or_else(|| panic!("{key} is not a string: {span}"));
    assert!(
        text.len() == 16 && text.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)),
        "{key} is not 16 upper-case hex digits: {text:?}"
    );
    u64::from_str_radix(text, 16).unwrap()
}

/// Parses a `{"traces": [[...]]}` line, checking the shape the Forwarder decodes (§5.15):
/// one trace, ids as hex strings, integer times, string meta, numeric metrics.
pub fn parse_trace_line(line: &str) -> Vec<WireSpan> {
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("trace line is not JSON ({e}): {line}"));
    let traces = value["traces"].as_array().unwrap_or_else(|| panic!("no traces array: {line}"));
    assert_eq!(traces.len(), 1, "one trace per line: {line}");
    let spans = traces[0].as_array().unwrap_or_else(|| panic!("the trace is not an array: {line}"));
    spans
        .iter()
        .map(|span| {
            let text = |key: &str| {
                span[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("{key} is not a string: {span}"))
                    .to_owned()
            };
            let integer = |key: &str| span[key].as_i64().unwrap_or_else(|| panic!("{key} is not an integer: {span}"));
            let meta = span["meta"]
                .as_object()
                .unwrap_or_else(|| panic!("meta is not an object: {span}"))
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().unwrap_or_else(|| panic!("meta {k} is not a string: {span}")).to_owned(),
                    )
                })
                .collect();
            let metrics = span["metrics"]
                .as_object()
                .unwrap_or_else(|| panic!("metrics is not an object: {span}"))
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_f64().unwrap_or_else(|| panic!("metric {k} is not a number: {span}")),
                    )
                })
                .collect();
            WireSpan {
                trace_id: wire_id(span, "trace_id"),
                parent_id: wire_id(span, "parent_id"),
                span_id: wire_id(span, "span_id"),
                name: text("name"),
                service: text("service"),
                resource: text("resource"),
                span_type: text("type"),
                error: integer("error"),
                start: integer("start"),
                duration: integer("duration"),
                meta,
                metrics,
                span_links: span.get("span_links").cloned(),
            }
        })
        .collect()
}

/// Every trace line printed so far.
pub fn trace_lines(emulator: &EmulatorProcess) -> Vec<String> {
    emulator
        .stdout
        .text()
        .lines()
        .filter(|line| line.starts_with("{\"traces\""))
        .map(str::to_owned)
        .collect()
}

/// Waits for the trace line of `request_id` (its `aws.lambda` span's `request_id` tag) and
/// parses it; fails if there is none or more than one.
pub fn trace_of(emulator: &EmulatorProcess, request_id: &str) -> Vec<WireSpan> {
    let needle = format!("\"request_id\": \"{request_id}\"");
    if let Err(text) = emulator.stdout.wait_for(&needle, LINE_WAIT) {
        panic!(
            "no trace line for {request_id}; stdout:\n{text}\nstderr:\n{}",
            emulator.stderr.text()
        );
    }
    let lines: Vec<String> = trace_lines(emulator).into_iter().filter(|l| l.contains(&needle)).collect();
    assert_eq!(lines.len(), 1, "exactly one trace line for {request_id}: {lines:#?}");
    parse_trace_line(&lines[0])
}

/// The span called `name`; fails unless there is exactly one.
pub fn span<'a>(spans: &'a [WireSpan], name: &str) -> &'a WireSpan {
    let found: Vec<&WireSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "exactly one {name} span in {spans:#?}");
    found[0]
}

pub fn find<'a>(spans: &'a [WireSpan], name: &str) -> Option<&'a WireSpan> {
    spans.iter().find(|s| s.name == name)
}

/// The trace's local root: the span whose parent is not in the trace.
pub fn local_root(spans: &[WireSpan]) -> &WireSpan {
    let roots: Vec<&WireSpan> = spans.iter().filter(|s| !spans.iter().any(|p| p.span_id == s.parent_id)).collect();
    assert_eq!(roots.len(), 1, "one local root in {spans:#?}");
    roots[0]
}

/// Checks what holds for every trace: one trace id, distinct non-zero span ids, every span
/// `_dd.origin: lambda`, and the sampling decision on the local root.
pub fn assert_well_formed(spans: &[WireSpan]) {
    assert!(!spans.is_empty());
    let trace_id = spans[0].trace_id;
    assert_ne!(trace_id, 0, "{spans:#?}");
    for span in spans {
        assert_eq!(span.trace_id, trace_id, "one trace: {spans:#?}");
        assert_ne!(span.span_id, 0, "{span:#?}");
        assert_eq!(span.meta("_dd.origin"), Some("lambda"), "{span:#?}");
        assert!(span.duration >= 0, "{span:#?}");
    }
    let mut ids: Vec<u64> = spans.iter().map(|s| s.span_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), spans.len(), "distinct span ids: {spans:#?}");
    assert!(
        local_root(spans).metrics.contains_key("_sampling_priority_v1"),
        "the local root carries the sampling decision: {spans:#?}"
    );
}
