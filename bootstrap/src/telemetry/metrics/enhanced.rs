//! The `aws.lambda.enhanced.*` metrics, computed from what the lifecycle reports, and which of
//! them the bootstrap itself sends in each transport mode.
//!
//! # Who emits which enhanced metric (no double counting)
//!
//! Lambda's `REPORT` and `Task timed out` lines are turned into metrics by the Datadog
//! Forwarder; Datadog's Extension emits its own set from the Telemetry API. The bootstrap
//! computes every metric below but sends only those no other Datadog component sends for the
//! same invocation. "Forwarder/API" covers `DD_FLUSH_TO_LOG=true` and the API mode, where the
//! seed prints enhanced metrics to stdout for the Forwarder in both cases.
//!
//! | metric | unit | Forwarder/API mode | Extension mode |
//! |---|---|---|---|
//! | `invocations` | count | bootstrap | Extension |
//! | `errors` | count | bootstrap (handler error, HTTP 5xx, init failure) | Extension (handler/init errors); bootstrap (HTTP 5xx answered as a success) |
//! | `batch_item_failures` | count | bootstrap | bootstrap |
//! | `timeouts` | count | Forwarder (`Task timed out` line) | Extension |
//! | `out_of_memory` | count | Forwarder (its 5 OOM log patterns); bootstrap (any other evidence) | Extension (its OOM patterns, `Runtime.OutOfMemory`); bootstrap (any other evidence) |
//! | `duration`, `billed_duration` | s | Forwarder (`REPORT`) | Extension |
//! | `init_duration` (`init_type` tag) | s | Forwarder (`REPORT`) | Extension |
//! | `max_memory_used`, `memorysize` | MB | Forwarder (`REPORT`) | Extension |
//! | `estimated_cost` | USD | Forwarder (`REPORT`) | Extension |
//! | `runtime_duration`, `post_runtime_duration` | ms | bootstrap | Extension |
//! | `produced_bytes` | bytes | bootstrap | Extension |
//! | `response_latency` | ms | bootstrap | bootstrap (the Extension never emits it) |
//! | `cpu_user_time`, `cpu_system_time`, `cpu_total_time` | ms | bootstrap | Extension |
//! | `cpu_total_utilization_pct`, `cpu_total_utilization`, `cpu_max_utilization`, `cpu_min_utilization`, `num_cores` | %, cores, count | bootstrap | Extension |
//! | `rx_bytes`, `tx_bytes`, `total_network` | bytes | bootstrap | Extension |
//! | `tmp_max`, `tmp_used`, `tmp_free` | bytes | bootstrap | Extension |
//! | `fd_max`, `fd_use`, `threads_max`, `threads_use` | count | bootstrap | Extension |
//!
//! With `DD_ENHANCED_METRICS=false` the bootstrap sends none of them.
//!
//! OOM evidence comes from the handler's error, an exec child's exit, and the lines an exec child
//! prints ([`oom_in_output`], watched by `handler::exec::output_watch`). All of it for one
//! invocation (or one init) counts once: [`merge_oom`] keeps the most widely seen piece, so a
//! `MemoryError` line the Forwarder counts is not counted again by us from the exit after it.
//! A child that prints an OOM message and still answers counts an `out_of_memory` (no error), as
//! the Extension counts any OOM log line of an invocation.
use crate::handler::HandlerOutcome;
use crate::lifecycle::{InitReport, InvocationReport};
use crate::telemetry::response_keys::may_hold_key;

use super::config::Transport;
use super::point::MetricValue;

/// Price per GB-second, by the architecture this binary was built for (as the Extension picks it).
pub const PRICE_PER_GB_SECOND_X86_64: f64 = 0.000_016_666_7;
pub const PRICE_PER_GB_SECOND_ARM64: f64 = 0.000_013_333_4;
/// Price per request.
pub const PRICE_PER_REQUEST: f64 = 0.000_000_2;

/// Every enhanced metric the bootstrap knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EnhancedMetric {
    Invocations,
    Errors,
    BatchItemFailures,
    Timeouts,
    OutOfMemory,
    Duration,
    BilledDuration,
    InitDuration,
    MaxMemoryUsed,
    MemorySize,
    EstimatedCost,
    RuntimeDuration,
    PostRuntimeDuration,
    ProducedBytes,
    ResponseLatency,
    CpuUserTime,
    CpuSystemTime,
    CpuTotalTime,
    CpuTotalUtilizationPct,
    CpuTotalUtilization,
    CpuMaxUtilization,
    CpuMinUtilization,
    NumCores,
    RxBytes,
    TxBytes,
    TotalNetwork,
    TmpMax,
    TmpUsed,
    TmpFree,
    FdMax,
    FdUse,
    ThreadsMax,
    ThreadsUse,
}

impl EnhancedMetric {
    /// The full Datadog metric name.
    pub fn name(self) -> &'static str {
        use EnhancedMetric::{
            BatchItemFailures, BilledDuration, CpuMaxUtilization, CpuMinUtilization, CpuSystemTime, CpuTotalTime, CpuTotalUtilization,
            CpuTotalUtilizationPct, CpuUserTime, Duration, Errors, EstimatedCost, FdMax, FdUse, InitDuration, Invocations, MaxMemoryUsed,
            MemorySize, NumCores, OutOfMemory, PostRuntimeDuration, ProducedBytes, ResponseLatency, RuntimeDuration, RxBytes, ThreadsMax,
            ThreadsUse, Timeouts, TmpFree, TmpMax, TmpUsed, TotalNetwork, TxBytes,
        };
        match self {
            Invocations => "aws.lambda.enhanced.invocations",
            Errors => "aws.lambda.enhanced.errors",
            BatchItemFailures => "aws.lambda.enhanced.batch_item_failures",
            Timeouts => "aws.lambda.enhanced.timeouts",
            OutOfMemory => "aws.lambda.enhanced.out_of_memory",
            Duration => "aws.lambda.enhanced.duration",
            BilledDuration => "aws.lambda.enhanced.billed_duration",
            InitDuration => "aws.lambda.enhanced.init_duration",
            MaxMemoryUsed => "aws.lambda.enhanced.max_memory_used",
            MemorySize => "aws.lambda.enhanced.memorysize",
            EstimatedCost => "aws.lambda.enhanced.estimated_cost",
            RuntimeDuration => "aws.lambda.enhanced.runtime_duration",
            PostRuntimeDuration => "aws.lambda.enhanced.post_runtime_duration",
            ProducedBytes => "aws.lambda.enhanced.produced_bytes",
            ResponseLatency => "aws.lambda.enhanced.response_latency",
            CpuUserTime => "aws.lambda.enhanced.cpu_user_time",
            CpuSystemTime => "aws.lambda.enhanced.cpu_system_time",
            CpuTotalTime => "aws.lambda.enhanced.cpu_total_time",
            CpuTotalUtilizationPct => "aws.lambda.enhanced.cpu_total_utilization_pct",
            CpuTotalUtilization => "aws.lambda.enhanced.cpu_total_utilization",
            CpuMaxUtilization => "aws.lambda.enhanced.cpu_max_utilization",
            CpuMinUtilization => "aws.lambda.enhanced.cpu_min_utilization",
            NumCores => "aws.lambda.enhanced.num_cores",
            RxBytes => "aws.lambda.enhanced.rx_bytes",
            TxBytes => "aws.lambda.enhanced.tx_bytes",
            TotalNetwork => "aws.lambda.enhanced.total_network",
            TmpMax => "aws.lambda.enhanced.tmp_max",
            TmpUsed => "aws.lambda.enhanced.tmp_used",
            TmpFree => "aws.lambda.enhanced.tmp_free",
            FdMax => "aws.lambda.enhanced.fd_max",
            FdUse => "aws.lambda.enhanced.fd_use",
            ThreadsMax => "aws.lambda.enhanced.threads_max",
            ThreadsUse => "aws.lambda.enhanced.threads_use",
        }
    }

    /// The routing table of this module's documentation: whether the bootstrap sends this
    /// metric in `transport` (given why, for the two metrics whose emitter depends on it).
    pub fn sent_by_bootstrap(self, transport: Transport, reason: Reason) -> bool {
        use EnhancedMetric::{
            BatchItemFailures, BilledDuration, CpuMaxUtilization, CpuMinUtilization, CpuSystemTime, CpuTotalTime, CpuTotalUtilization,
            CpuTotalUtilizationPct, CpuUserTime, Duration, Errors, EstimatedCost, FdMax, FdUse, InitDuration, Invocations, MaxMemoryUsed,
            MemorySize, NumCores, OutOfMemory, PostRuntimeDuration, ProducedBytes, ResponseLatency, RuntimeDuration, RxBytes, ThreadsMax,
            ThreadsUse, Timeouts, TmpFree, TmpMax, TmpUsed, TotalNetwork, TxBytes,
        };
        let extension = transport == Transport::Extension;
        match self {
            BatchItemFailures | ResponseLatency => true,
            Errors => !extension || reason == Reason::HttpServerError,
            OutOfMemory => match reason {
                // Every pattern the Forwarder recognises the Extension recognises too.
                Reason::OomSeenByForwarder => false,
                Reason::OomSeenByExtension => !extension,
                _ => true,
            },
            Timeouts | Duration | BilledDuration | InitDuration | MaxMemoryUsed | MemorySize | EstimatedCost => false,
            Invocations
            | RuntimeDuration
            | PostRuntimeDuration
            | ProducedBytes
            | CpuUserTime
            | CpuSystemTime
            | CpuTotalTime
            | CpuTotalUtilizationPct
            | CpuTotalUtilization
            | CpuMaxUtilization
            | CpuMinUtilization
            | NumCores
            | RxBytes
            | TxBytes
            | TotalNetwork
            | TmpMax
            | TmpUsed
            | TmpFree
            | FdMax
            | FdUse
            | ThreadsMax
            | ThreadsUse => !extension,
        }
    }
}

/// Why a metric was produced, where that decides who sends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Plain,
    /// The handler answered an HTTP trigger with a 5xx status: the platform saw a success.
    HttpServerError,
    /// OOM evidence in one of the log patterns the Forwarder recognises.
    OomSeenByForwarder,
    /// OOM evidence only the Extension recognises (its extra patterns, `Runtime.OutOfMemory`).
    OomSeenByExtension,
    /// OOM evidence no other component sees (Rust's allocation failure, a child killed by the kernel).
    OomSeenByNoOne,
}

/// One computed enhanced metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    pub metric: EnhancedMetric,
    pub value: MetricValue,
    pub reason: Reason,
    /// Tags this metric carries besides the invocation's (e.g. `init_type:`).
    pub extra_tags: Vec<String>,
}

impl Measured {
    fn new(metric: EnhancedMetric, value: impl Into<MetricValue>) -> Self {
        Self {
            metric,
            value: value.into(),
            reason: Reason::Plain,
            extra_tags: Vec::new(),
        }
    }

    fn because(mut self, reason: Reason) -> Self {
        self.reason = reason;
        self
    }
}

/// OOM messages the Forwarder turns into `out_of_memory` (its `enhanced_lambda_metrics.py`).
const FORWARDER_OOM_PATTERNS: &[&str] = &[
    "fatal error: runtime: out of memory",
    "java.lang.OutOfMemoryError",
    "JavaScript heap out of memory",
    "MemoryError",
    "failed to allocate memory (NoMemoryError)",
];

/// Further OOM messages Datadog's Extension recognises.
const EXTENSION_ONLY_OOM_PATTERNS: &[&str] = &["Runtime exited with error: signal: killed", "OutOfMemoryException"];

/// OOM messages only the bootstrap looks for: Rust's allocation failure (a dylib handler or a
/// Rust child) and a child killed by the kernel's OOM killer.
const BOOTSTRAP_OOM_PATTERNS: &[&str] = &["memory allocation of", "signal: killed", "SIGKILL", "Runtime.OutOfMemory"];

/// Whether `text` (a log line, an error message or type) shows an out-of-memory, and which
/// Datadog component would notice it. The lifecycle may also call this on an exec child's output.
pub fn oom_evidence(text: &str) -> Option<Reason> {
    if FORWARDER_OOM_PATTERNS.iter().any(|p| text.contains(p)) {
        Some(Reason::OomSeenByForwarder)
    } else if EXTENSION_ONLY_OOM_PATTERNS.iter().any(|p| text.contains(p)) {
        Some(Reason::OomSeenByExtension)
    } else if BOOTSTRAP_OOM_PATTERNS.iter().any(|p| text.contains(p)) {
        Some(Reason::OomSeenByNoOne)
    } else {
        None
    }
}

/// Needles an exec child's output chunk must contain to be looked at line by line: every OOM
/// message [`oom_in_output`] recognises contains one of them ("emory": memory, Memory).
pub const OUTPUT_OOM_NEEDLES: &[&str] = &["emory", "signal: killed"];

/// Whether a line of an exec child's output shows an out-of-memory, and which Datadog
/// component counts it from the logs: the Forwarder's 5 patterns, the Extension's further log
/// patterns, and Rust's allocation failure (`memory allocation of N bytes failed`, then abort),
/// which no one else recognises. Unlike [`oom_evidence`] (for exit and error messages), a line
/// that merely mentions SIGKILL or "memory allocation of" is not an OOM.
pub fn oom_in_output(line: &[u8]) -> Option<Reason> {
    let contains = |pattern: &str| memchr::memmem::find(line, pattern.as_bytes()).is_some();
    if FORWARDER_OOM_PATTERNS.iter().any(|p| contains(p)) {
        Some(Reason::OomSeenByForwarder)
    } else if EXTENSION_ONLY_OOM_PATTERNS.iter().any(|p| contains(p)) {
        Some(Reason::OomSeenByExtension)
    } else if is_rust_allocation_failure(line) {
        Some(Reason::OomSeenByNoOne)
    } else {
        None
    }
}

/// Rust's `handle_alloc_error` message: `memory allocation of <digits> bytes failed`.
fn is_rust_allocation_failure(line: &[u8]) -> bool {
    const START: &[u8] = b"memory allocation of ";
    let Some(at) = memchr::memmem::find(line, START) else {
        return false;
    };
    let rest = &line[at + START.len()..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && rest[digits..].starts_with(b" bytes failed")
}

impl Reason {
    /// How many Datadog components besides the bootstrap see this OOM evidence (the Forwarder's
    /// patterns are the Extension's too).
    fn visibility(self) -> u8 {
        match self {
            Reason::OomSeenByForwarder => 3,
            Reason::OomSeenByExtension => 2,
            Reason::OomSeenByNoOne => 1,
            Reason::Plain | Reason::HttpServerError => 0,
        }
    }
}

/// One OOM from two pieces of evidence of the same event: the most widely seen one decides who
/// counts it, so an OOM the Forwarder counts from its log line is not counted again by us from
/// the exit that followed.
pub fn merge_oom(a: Option<Reason>, b: Option<Reason>) -> Option<Reason> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.visibility() > a.visibility() { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// The OOM evidence in lines of a child's output (as [`crate::handler::exec::output_watch`] keeps them).
pub fn oom_in_output_lines(lines: &[Vec<u8>]) -> Option<Reason> {
    lines.iter().map(|l| oom_in_output(l)).fold(None, merge_oom)
}

/// The error type an OOM is reported with to the Runtime API; the Extension reads it.
const OOM_ERROR_TYPE: &str = "Runtime.OutOfMemory";

/// What an invocation's handler outcome says, read once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutcomeFacts {
    pub handler_error: bool,
    pub http_server_error: bool,
    pub batch_item_failures: Option<usize>,
    pub oom: Option<Reason>,
    pub produced_bytes: Option<usize>,
}

/// Reads the outcome of one invocation against its event.
pub fn outcome_facts(report: &InvocationReport) -> OutcomeFacts {
    let mut facts = OutcomeFacts {
        handler_error: report.outcome.is_error() || report.answer_error.is_some(),
        ..OutcomeFacts::default()
    };
    match &report.outcome {
        HandlerOutcome::Response(body) => {
            facts.produced_bytes = Some(body.len());
            let response = ResponseProbe::read(body);
            facts.batch_item_failures = response.batch_item_failures;
            // The seed answers an HTTP trigger whose handler returned nothing with a 502. The
            // event is read only when the response would be a server error for one.
            facts.http_server_error = (response.nothing || response.status_is_5xx) && is_http_trigger(&report.invocation.event);
        }
        HandlerOutcome::Error(body) | HandlerOutcome::Answered { error: Some(body), .. } => {
            facts.oom = if body.error_type == OOM_ERROR_TYPE {
                Some(Reason::OomSeenByExtension)
            } else {
                oom_evidence(&body.error_message).or_else(|| oom_evidence(&body.error_type))
            };
        }
        HandlerOutcome::Answered { error_type, error: None } => {
            facts.oom = error_type.as_deref().and_then(oom_evidence);
        }
    }
    facts
}

/// An HTTP trigger, as the seed detects one: API Gateway (REST, HTTP, WebSocket) and Function
/// URLs have `requestContext.stage`, ALB has `requestContext.elb`.
fn is_http_trigger(event: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(rename = "requestContext")]
        request_context: Option<RequestContext>,
    }
    #[derive(serde::Deserialize)]
    struct RequestContext {
        stage: Option<serde_json::Value>,
        elb: Option<serde_json::Value>,
    }
    let truthy = |v: &Option<serde_json::Value>| match v {
        None | Some(serde_json::Value::Null | serde_json::Value::Bool(false)) => false,
        Some(serde_json::Value::String(s)) => !s.is_empty(),
        Some(serde_json::Value::Object(o)) => !o.is_empty(),
        Some(_) => true,
    };
    if !event.trim_ascii_start().starts_with(b"{") {
        return false;
    }
    match serde_json::from_slice::<Event>(event) {
        Ok(Event {
            request_context: Some(ctx),
        }) => truthy(&ctx.stage) || truthy(&ctx.elb),
        _ => false,
    }
}

#[derive(Default)]
struct ResponseProbe {
    nothing: bool,
    status_is_5xx: bool,
    batch_item_failures: Option<usize>,
}

impl ResponseProbe {
    fn read(body: &[u8]) -> Self {
        #[derive(serde::Deserialize)]
        struct Response {
            #[serde(rename = "statusCode")]
            status_code: Option<serde_json::Value>,
            #[serde(rename = "batchItemFailures")]
            batch_item_failures: Option<serde_json::Value>,
        }
        let trimmed = body.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Self {
                nothing: true,
                ..Self::default()
            };
        }
        if !trimmed.starts_with(b"{") {
            return Self::default();
        }
        // Without either key, parsed or not, the probe has nothing to find.
        if !may_hold_key(trimmed, "statusCode") && !may_hold_key(trimmed, "batchItemFailures") {
            return Self::default();
        }
        let Ok(response) = serde_json::from_slice::<Response>(trimmed) else {
            return Self::default();
        };
        let status = match response.status_code {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s,
            _ => String::new(),
        };
        Self {
            nothing: false,
            status_is_5xx: status.len() == 3 && status.starts_with('5'),
            batch_item_failures: match response.batch_item_failures {
                Some(serde_json::Value::Array(items)) => Some(items.len()),
                _ => None,
            },
        }
    }
}

/// The metrics of one answered invocation that come from the lifecycle's own clock and the
/// handler's outcome (the `/proc` ones come from [`super::usage`]).
pub fn invocation_metrics(report: &InvocationReport, facts: &OutcomeFacts) -> Vec<Measured> {
    use EnhancedMetric::{BatchItemFailures, Errors, Invocations, OutOfMemory, ProducedBytes, ResponseLatency, RuntimeDuration, Timeouts};
    let mut out = vec![Measured::new(Invocations, 1)];
    if facts.handler_error {
        out.push(Measured::new(Errors, 1));
    } else if facts.http_server_error {
        out.push(Measured::new(Errors, 1).because(Reason::HttpServerError));
    }
    if let Some(failures) = facts.batch_item_failures {
        out.push(Measured::new(BatchItemFailures, failures as i64));
    }
    if report.timed_out {
        out.push(Measured::new(Timeouts, 1));
    }
    if let Some(reason) = facts.oom {
        out.push(Measured::new(OutOfMemory, 1).because(reason));
    }
    let runtime_ms = millis(report.answered.duration_since(&report.received));
    out.push(Measured::new(RuntimeDuration, runtime_ms));
    out.push(Measured::new(
        ResponseLatency,
        millis(report.handler_finished.duration_since(&report.received)),
    ));
    if let Some(bytes) = facts.produced_bytes {
        out.push(Measured::new(ProducedBytes, bytes as i64));
    }
    out
}

/// The metrics known once the sandbox is about to ask `/next` again: how long the invocation
/// really lasted (its flush included), what it is billed and what it costs.
pub fn post_runtime_metrics(
    runtime: std::time::Duration,
    total: std::time::Duration,
    memory_mb: u32,
    max_memory_bytes: u64,
) -> Vec<Measured> {
    use EnhancedMetric::{BilledDuration, Duration, EstimatedCost, MaxMemoryUsed, MemorySize, PostRuntimeDuration};
    let billed_ms = (total.as_nanos().div_ceil(1_000_000)) as u64;
    vec![
        Measured::new(PostRuntimeDuration, millis(total.saturating_sub(runtime))),
        Measured::new(Duration, total.as_secs_f64()),
        Measured::new(BilledDuration, billed_ms as f64 / 1000.0),
        Measured::new(MaxMemoryUsed, (max_memory_bytes / (1024 * 1024)) as i64),
        Measured::new(MemorySize, i64::from(memory_mb)),
        Measured::new(EstimatedCost, estimated_cost(billed_ms, memory_mb, std::env::consts::ARCH)),
    ]
}

/// `0.0000002 + billed s × GB × price`, rounded to 1e-12 as the Extension rounds it.
pub fn estimated_cost(billed_ms: u64, memory_mb: u32, arch: &str) -> f64 {
    let price = if arch == "aarch64" {
        PRICE_PER_GB_SECOND_ARM64
    } else {
        PRICE_PER_GB_SECOND_X86_64
    };
    let gb_seconds = (billed_ms as f64 / 1000.0) * (f64::from(memory_mb) / 1024.0);
    ((PRICE_PER_REQUEST + gb_seconds * price) * 1e12).round() / 1e12
}

/// The metrics of init: its duration (tagged `init_type`), when it failed an error, and an
/// out_of_memory when its error or `output_oom` (an exec child's output during init) shows one.
pub fn init_metrics(init: &InitReport, output_oom: Option<Reason>) -> Vec<Measured> {
    let init_type = match init.initialization_type.as_str() {
        "snap-start" => "SnapStart",
        "" => "on-demand",
        other => other,
    };
    let mut duration = Measured::new(
        EnhancedMetric::InitDuration,
        init.finished.duration_since(&init.started).as_secs_f64(),
    );
    duration.extra_tags.push(format!("init_type:{init_type}"));
    let mut out = vec![duration];
    let mut oom = output_oom;
    if let Some(error) = &init.error {
        out.push(Measured::new(EnhancedMetric::Errors, 1));
        oom = merge_oom(oom, oom_evidence(&error.error_message));
    }
    if let Some(reason) = oom {
        out.push(Measured::new(EnhancedMetric::OutOfMemory, 1).because(reason));
    }
    out
}

fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::Invocation;
    use crate::lifecycle::Timestamp;
    use crate::runtime_api::{ErrorBody, InvocationContext};
    use bytes::Bytes;
    use std::sync::Arc;
    use std::time::Duration as StdDuration;

    pub(crate) fn report(event: &str, outcome: HandlerOutcome) -> InvocationReport {
        let received = Timestamp::now();
        let later = |ms| Timestamp {
            monotonic: received.monotonic + StdDuration::from_millis(ms),
            wall: received.wall + StdDuration::from_millis(ms),
        };
        InvocationReport {
            invocation: Arc::new(Invocation {
                context: InvocationContext {
                    request_id: "r".into(),
                    invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:my-fn".into(),
                    ..Default::default()
                },
                headers: http::HeaderMap::default(),
                event: Bytes::from(event.to_owned()),
            }),
            cold_start: false,
            received,
            handler_started: later(1),
            handler_finished: later(11),
            answered: later(12),
            outcome,
            answer_error: None,
            timed_out: false,
        }
    }

    fn response(body: &str) -> HandlerOutcome {
        HandlerOutcome::Response(Bytes::from(body.to_owned()))
    }

    fn names(m: &[Measured]) -> Vec<&'static str> {
        m.iter()
            .map(|m| m.metric.name().trim_start_matches("aws.lambda.enhanced."))
            .collect()
    }

    const API_GATEWAY: &str = r#"{"resource":"/","requestContext":{"stage":"prod","apiId":"x"},"httpMethod":"GET"}"#;
    const ALB: &str = r#"{"requestContext":{"elb":{"targetGroupArn":"arn:x"}},"httpMethod":"GET"}"#;

    #[test]
    fn plain_success() {
        let r = report("{}", response(r#"{"ok":true}"#));
        let m = invocation_metrics(&r, &outcome_facts(&r));
        assert_eq!(names(&m), ["invocations", "runtime_duration", "response_latency", "produced_bytes"]);
        assert_eq!(m[1].value, MetricValue::Float(12.0));
        assert_eq!(m[2].value, MetricValue::Float(11.0));
        assert_eq!(m[3].value, MetricValue::Integer(11));
    }

    #[test]
    fn handler_error_counts_once() {
        let r = report(API_GATEWAY, HandlerOutcome::Error(ErrorBody::new("E", "boom")));
        let m = invocation_metrics(&r, &outcome_facts(&r));
        assert_eq!(m.iter().filter(|m| m.metric == EnhancedMetric::Errors).count(), 1);
        assert_eq!(m[1].reason, Reason::Plain);
    }

    #[test]
    fn http_5xx_is_an_error_only_for_http_triggers() {
        for event in [API_GATEWAY, ALB] {
            for body in [r#"{"statusCode":500}"#, r#"{"statusCode":"503"}"#, "null", ""] {
                let r = report(event, response(body));
                let facts = outcome_facts(&r);
                assert!(facts.http_server_error, "{event} {body}");
                let m = invocation_metrics(&r, &facts);
                assert_eq!(m[1].metric, EnhancedMetric::Errors);
                assert_eq!(m[1].reason, Reason::HttpServerError);
            }
            for body in [r#"{"statusCode":200}"#, r#"{"statusCode":"5000"}"#, r#"{"body":"x"}"#] {
                assert!(!outcome_facts(&report(event, response(body))).http_server_error, "{body}");
            }
        }
        assert!(!outcome_facts(&report(r#"{"Records":[]}"#, response(r#"{"statusCode":500}"#))).http_server_error);
        assert!(!outcome_facts(&report("[1,2]", response("null"))).http_server_error);
    }

    #[test]
    fn batch_item_failures_counts_the_list() {
        let r = report(
            "{}",
            response(r#"{"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}"#),
        );
        assert_eq!(outcome_facts(&r).batch_item_failures, Some(2));
        assert_eq!(
            outcome_facts(&report("{}", response(r#"{"batchItemFailures":[]}"#))).batch_item_failures,
            Some(0)
        );
        assert_eq!(
            outcome_facts(&report("{}", response(r#"{"batchItemFailures":"x"}"#))).batch_item_failures,
            None
        );
    }

    #[test]
    fn oom_evidence_and_who_sees_it() {
        use Transport::{DatadogApi, Extension, Forwarder};
        assert_eq!(oom_evidence("MemoryError"), Some(Reason::OomSeenByForwarder));
        assert_eq!(
            oom_evidence("Runtime exited with error: signal: killed"),
            Some(Reason::OomSeenByExtension)
        );
        assert_eq!(oom_evidence("memory allocation of 1024 bytes failed"), Some(Reason::OomSeenByNoOne));
        assert_eq!(oom_evidence("child exited: signal: killed"), Some(Reason::OomSeenByNoOne));
        assert_eq!(oom_evidence("all fine"), None);
        let r = report(
            "{}",
            HandlerOutcome::Error(ErrorBody::new("Runtime.ExitError", "memory allocation of 8 bytes failed")),
        );
        assert_eq!(outcome_facts(&r).oom, Some(Reason::OomSeenByNoOne));
        let r = report("{}", HandlerOutcome::Error(ErrorBody::new("Runtime.OutOfMemory", "x")));
        assert_eq!(outcome_facts(&r).oom, Some(Reason::OomSeenByExtension));
        let oom = EnhancedMetric::OutOfMemory;
        assert!(oom.sent_by_bootstrap(Forwarder, Reason::OomSeenByNoOne) && oom.sent_by_bootstrap(Extension, Reason::OomSeenByNoOne));
        assert!(
            oom.sent_by_bootstrap(DatadogApi, Reason::OomSeenByExtension) && !oom.sent_by_bootstrap(Extension, Reason::OomSeenByExtension)
        );
        assert!(
            !oom.sent_by_bootstrap(Forwarder, Reason::OomSeenByForwarder) && !oom.sent_by_bootstrap(Extension, Reason::OomSeenByForwarder)
        );
    }

    #[test]
    fn routing_leaves_report_metrics_to_others() {
        use EnhancedMetric::*;
        for transport in [
            Transport::Forwarder,
            Transport::DatadogApi,
            Transport::NoMetrics,
            Transport::Extension,
        ] {
            for m in [
                Timeouts,
                Duration,
                BilledDuration,
                InitDuration,
                MaxMemoryUsed,
                MemorySize,
                EstimatedCost,
            ] {
                assert!(!m.sent_by_bootstrap(transport, Reason::Plain), "{m:?} {transport:?}");
            }
            assert!(BatchItemFailures.sent_by_bootstrap(transport, Reason::Plain));
            assert!(Errors.sent_by_bootstrap(transport, Reason::HttpServerError));
        }
        assert!(Invocations.sent_by_bootstrap(Transport::Forwarder, Reason::Plain));
        assert!(!Invocations.sent_by_bootstrap(Transport::Extension, Reason::Plain));
        assert!(!Errors.sent_by_bootstrap(Transport::Extension, Reason::Plain));
        assert!(CpuTotalTime.sent_by_bootstrap(Transport::DatadogApi, Reason::Plain));
    }

    #[test]
    fn cost_formula_by_architecture() {
        // 1 s at 1024 MB on x86_64: 0.0000002 + 0.0000166667.
        assert_eq!(estimated_cost(1000, 1024, "x86_64"), 0.000_016_866_7);
        assert_eq!(estimated_cost(1000, 1024, "aarch64"), 0.000_013_533_4);
        assert_eq!(estimated_cost(0, 128, "x86_64"), 0.000_000_2);
    }

    #[test]
    fn post_runtime_and_billing() {
        let m = post_runtime_metrics(
            StdDuration::from_millis(10),
            StdDuration::from_micros(12_300),
            512,
            64 * 1024 * 1024,
        );
        assert_eq!(
            names(&m),
            [
                "post_runtime_duration",
                "duration",
                "billed_duration",
                "max_memory_used",
                "memorysize",
                "estimated_cost"
            ]
        );
        assert!((m[0].value.as_f64() - 2.3).abs() < 1e-9);
        assert_eq!(m[2].value, MetricValue::Float(0.013));
        assert_eq!(m[3].value, MetricValue::Integer(64));
        assert_eq!(m[4].value, MetricValue::Integer(512));
    }

    #[test]
    fn init_duration_and_init_failure() {
        let started = Timestamp::now();
        let finished = Timestamp {
            monotonic: started.monotonic + StdDuration::from_millis(250),
            wall: started.wall + StdDuration::from_millis(250),
        };
        let mut init = InitReport {
            started,
            finished,
            handler_init: StdDuration::from_millis(200),
            initialization_type: "snap-start".into(),
            error: None,
        };
        let m = init_metrics(&init, None);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].value, MetricValue::Float(0.25));
        assert_eq!(m[0].extra_tags, ["init_type:SnapStart"]);
        init.error = Some(ErrorBody::new("Runtime.InitError", "boom"));
        assert_eq!(names(&init_metrics(&init, None)), ["init_duration", "errors"]);
        // A child that printed Rust's allocation failure, then exited during init.
        let m = init_metrics(&init, oom_in_output(b"memory allocation of 8 bytes failed"));
        assert_eq!(names(&m), ["init_duration", "errors", "out_of_memory"]);
        assert_eq!(m[2].reason, Reason::OomSeenByNoOne);
        init.error = None;
        let m = init_metrics(&init, Some(Reason::OomSeenByForwarder));
        assert_eq!(names(&m), ["init_duration", "out_of_memory"], "an init that survived its OOM line");
    }

    #[test]
    fn oom_lines_in_an_exec_childs_output() {
        let cases: &[(&[u8], Option<Reason>)] = &[
            (b"memory allocation of 1099511627776 bytes failed", Some(Reason::OomSeenByNoOne)),
            (b"MemoryError", Some(Reason::OomSeenByForwarder)),
            (
                b"<--- JS stacktrace ---> FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
                Some(Reason::OomSeenByForwarder),
            ),
            (
                b"Exception in thread \"main\" java.lang.OutOfMemoryError: Java heap space",
                Some(Reason::OomSeenByForwarder),
            ),
            (b"fatal error: runtime: out of memory", Some(Reason::OomSeenByForwarder)),
            (
                b"Unhandled exception. System.OutOfMemoryException: Insufficient memory",
                Some(Reason::OomSeenByExtension),
            ),
            (b"memory allocation of buffers done", None),
            (b"memory allocation of  bytes failed", None),
            (b"sent SIGKILL to the worker", None),
            (b"memory usage: 12 MB", None),
            (b"\xff\xfe MemoryError \x80", Some(Reason::OomSeenByForwarder)),
        ];
        for (line, expected) in cases {
            assert_eq!(oom_in_output(line), *expected, "{}", String::from_utf8_lossy(line));
            if expected.is_some() {
                let needle = OUTPUT_OOM_NEEDLES
                    .iter()
                    .any(|n| memchr::memmem::find(line, n.as_bytes()).is_some());
                assert!(needle, "the prefilter lets it through: {}", String::from_utf8_lossy(line));
            }
        }
        // The Forwarder's pattern wins over the exit that followed it: it counts the OOM, we do not.
        let rust_then_python = [b"memory allocation of 8 bytes failed".to_vec(), b"MemoryError".to_vec()];
        assert_eq!(oom_in_output_lines(&rust_then_python), Some(Reason::OomSeenByForwarder));
        assert_eq!(
            merge_oom(Some(Reason::OomSeenByNoOne), Some(Reason::OomSeenByExtension)),
            Some(Reason::OomSeenByExtension)
        );
        assert_eq!(merge_oom(None, Some(Reason::OomSeenByNoOne)), Some(Reason::OomSeenByNoOne));
        assert_eq!(oom_in_output_lines(&[]), None);
    }
}
