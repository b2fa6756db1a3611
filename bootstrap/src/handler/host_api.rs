//! The [`HostApi`] handed to a handler library: `extern "C"` trampolines into the bootstrap's
//! [`HostServices`].
//!
//! Every trampoline checks what the library passed (null pointers, lengths without data, bytes
//! that must be UTF-8) and answers a status, and none lets a panic unwind into the library's
//! frames: a bug on our side is [`abi::HOST_INTERNAL_ERROR`] and one log line.
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use sdk::abi::{self, BorrowedBytes, HeaderVisitorFn, HostApi, RawMetric, RawSpan, RawTraceContext};

use super::host::HostServices;
use crate::telemetry::metrics::custom::CustomMetricError;
use crate::telemetry::metrics::MetricValue;
use crate::telemetry::traces::span::random_id;
use crate::telemetry::traces::{Span, TraceId};

/// A [`HostApi`] and the services its context points to. Keep it alive as long as the library
/// that received [`HostBridge::api`] is loaded.
pub struct HostBridge {
    api: Box<HostApi>,
    // `api.context` points into this box (not at the `Arc` field of a movable struct), so the
    // bridge can move without invalidating what the library holds.
    _services: Box<Arc<dyn HostServices>>,
}

// SAFETY: the API's context points to an `Arc<dyn HostServices>`, which is Send + Sync, and the
// bridge only hands the pointer out; the trampolines are plain functions.
unsafe impl Send for HostBridge {}
// SAFETY: as above; nothing in the bridge is mutated after construction.
unsafe impl Sync for HostBridge {}

impl HostBridge {
    pub fn new(services: Arc<dyn HostServices>) -> Self {
        let services = Box::new(services);
        let context = (&raw const *services).cast::<c_void>();
        let api = Box::new(HostApi {
            context,
            metric,
            trace_context,
            trace_headers,
            finish_span,
            set_api_key,
        });
        Self { api, _services: services }
    }

    /// The pointer to pass to the library's `dd_lambda_attach_host`.
    pub fn api(&self) -> *const HostApi {
        &raw const *self.api
    }
}

/// Runs a trampoline body, turning a panic into [`abi::HOST_INTERNAL_ERROR`].
fn guarded(what: &str, body: impl FnOnce() -> i32) -> i32 {
    // AssertUnwindSafe: after a panic nothing the body touched is used again.
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        tracing::error!("the bootstrap failed while serving the handler's {what} call; the call did nothing");
        abi::HOST_INTERNAL_ERROR
    })
}

/// The services behind a [`HostApi::context`].
///
/// # Safety
/// `context` is null or the context of a live [`HostBridge`].
unsafe fn services<'a>(context: *const c_void) -> Option<&'a Arc<dyn HostServices>> {
    // SAFETY: guaranteed by the caller.
    unsafe { context.cast::<Arc<dyn HostServices>>().as_ref() }
}

/// `len` items at `ptr`; `None` when `ptr` is null but `len` is not 0.
///
/// # Safety
/// A non-null `ptr` points to `len` initialised items borrowed for `'a`.
unsafe fn items<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if len == 0 {
        Some(&[])
    } else if ptr.is_null() {
        None
    } else {
        // SAFETY: guaranteed by the caller.
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }
}

/// Borrowed bytes as UTF-8; `None` when they are not, or when the pointer is null with a length.
///
/// # Safety
/// As [`BorrowedBytes::as_slice`].
unsafe fn text<'a>(bytes: BorrowedBytes) -> Option<&'a str> {
    if bytes.ptr.is_null() && bytes.len != 0 {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    std::str::from_utf8(unsafe { bytes.as_slice() }).ok()
}

/// Borrowed bytes as text, invalid UTF-8 replaced (span tags: never worth refusing a span for).
///
/// # Safety
/// As [`BorrowedBytes::as_slice`].
unsafe fn lossy(bytes: BorrowedBytes) -> String {
    // SAFETY: guaranteed by the caller.
    String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
}

fn metric_status(error: &CustomMetricError) -> i32 {
    match error {
        CustomMetricError::InvalidName(_) => abi::HOST_INVALID_METRIC_NAME,
        CustomMetricError::NotFinite { .. } | CustomMetricError::NotNumeric { .. } => abi::HOST_METRIC_VALUE_NOT_FINITE,
        CustomMetricError::TooOld { .. } => abi::HOST_TIMESTAMP_TOO_OLD,
        CustomMetricError::InvalidTimestamp { .. } => abi::HOST_INVALID_TIMESTAMP,
        CustomMetricError::Malformed(_) => abi::HOST_INVALID_ARGUMENT,
    }
}

unsafe extern "C" fn metric(context: *const c_void, metric: *const RawMetric) -> i32 {
    guarded("lambda_metric", || {
        // SAFETY (every block below): the library calls as the ABI describes; pointers it
        // passes are null or valid for the call.
        let (Some(services), Some(metric)) = (unsafe { services(context) }, unsafe { metric.as_ref() }) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        let Some(name) = (unsafe { text(metric.name) }) else {
            return abi::HOST_INVALID_METRIC_NAME;
        };
        let value = match metric.value_kind {
            abi::METRIC_VALUE_INTEGER => MetricValue::Integer(metric.integer_value),
            abi::METRIC_VALUE_FLOAT => MetricValue::Float(metric.float_value),
            _ => return abi::HOST_INVALID_ARGUMENT,
        };
        let Some(raw_tags) = (unsafe { items(metric.tags, metric.tags_len) }) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        let mut tags = Vec::with_capacity(raw_tags.len());
        for tag in raw_tags {
            match unsafe { text(*tag) } {
                Some(tag) => tags.push(tag.to_owned()),
                None => return abi::HOST_INVALID_ARGUMENT,
            }
        }
        let timestamp = Some(metric.timestamp).filter(|t| !t.is_nan());
        match services.metric(name, value, &tags, timestamp) {
            Ok(()) => abi::HOST_OK,
            Err(error) => metric_status(&error),
        }
    })
}

unsafe extern "C" fn trace_context(context: *const c_void, request_id: BorrowedBytes, out: *mut RawTraceContext) -> i32 {
    guarded("trace context", || {
        // SAFETY: as in `metric`.
        let (Some(services), Some(request_id)) = (unsafe { services(context) }, unsafe { text(request_id) }) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        if out.is_null() {
            return abi::HOST_INVALID_ARGUMENT;
        }
        // No trace: the ids of log correlation alone, if any, with a status saying so (a library
        // built before that status treats it as no trace, as it did).
        let (active, status) = match services.trace_context(request_id) {
            Some(active) => (active, abi::HOST_OK),
            None => match services.log_correlation(request_id) {
                Some(ids) => (ids, abi::HOST_CORRELATION_ONLY),
                None => return abi::HOST_NO_TRACE,
            },
        };
        let raw = RawTraceContext {
            trace_id_high: active.trace_id_high,
            trace_id_low: active.trace_id_low,
            span_id: active.span_id,
            sampling_priority: active.sampling_priority,
        };
        // SAFETY: non-null and writable, as the ABI requires of `out`.
        unsafe { out.write(raw) };
        status
    })
}

unsafe extern "C" fn trace_headers(
    context: *const c_void,
    request_id: BorrowedBytes,
    parent_span_id: u64,
    visit: Option<HeaderVisitorFn>,
    visitor: *mut c_void,
) -> i32 {
    guarded("trace headers", || {
        // SAFETY: as in `metric`.
        let (Some(services), Some(request_id), Some(visit)) = (unsafe { services(context) }, unsafe { text(request_id) }, visit) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        let parent = (parent_span_id != 0).then_some(parent_span_id);
        let Some(headers) = services.trace_headers(request_id, parent) else {
            return abi::HOST_NO_TRACE;
        };
        for (name, value) in &headers {
            // SAFETY: the library's visitor, with its own pointer, and bytes borrowed for the call.
            unsafe {
                visit(
                    visitor,
                    BorrowedBytes::from_slice(name.as_bytes()),
                    BorrowedBytes::from_slice(value.as_bytes()),
                );
            };
        }
        abi::HOST_OK
    })
}

unsafe extern "C" fn finish_span(context: *const c_void, request_id: BorrowedBytes, span: *const RawSpan) -> i32 {
    guarded("finish span", || {
        // SAFETY: as in `metric`.
        let (Some(services), Some(request_id), Some(raw)) =
            (unsafe { services(context) }, unsafe { text(request_id) }, unsafe { span.as_ref() })
        else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        // SAFETY: as in `metric`.
        let Some(span) = (unsafe { span_from_raw(raw) }) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        if services.finish_span(request_id, span) {
            abi::HOST_OK
        } else {
            abi::HOST_NO_TRACE
        }
    })
}

/// The library's span as ours: `None` when its name is empty or not UTF-8, or a tag array is
/// null with a length. The trace id, and a missing parent or service, are filled by telemetry.
///
/// # Safety
/// The pointers in `raw` are null or valid for the call.
unsafe fn span_from_raw(raw: &RawSpan) -> Option<Span> {
    // SAFETY (every block below): guaranteed by the caller.
    let name = unsafe { text(raw.name) }.filter(|n| !n.trim().is_empty())?;
    let meta = unsafe { items(raw.meta, raw.meta_len) }?;
    let metrics = unsafe { items(raw.metrics, raw.metrics_len) }?;
    let span_id = if raw.span_id == 0 { random_id() } else { raw.span_id };
    let mut span = Span::new(name, TraceId::default(), span_id, raw.parent_id);
    span.resource = unsafe { lossy(raw.resource) };
    if span.resource.is_empty() {
        name.clone_into(&mut span.resource);
    }
    span.service = unsafe { lossy(raw.service) };
    span.span_type = unsafe { lossy(raw.span_type) };
    span.start_ns = raw.start_ns;
    span.duration_ns = raw.duration_ns.max(0);
    span.error = i32::from(raw.error != 0);
    for tag in meta {
        let key = unsafe { lossy(tag.key) };
        if !key.is_empty() {
            span.set_meta(key, unsafe { lossy(tag.value) });
        }
    }
    for tag in metrics.iter().filter(|t| t.value.is_finite()) {
        let key = unsafe { lossy(tag.key) };
        if !key.is_empty() {
            span.set_metric(key, tag.value);
        }
    }
    Some(span)
}

unsafe extern "C" fn set_api_key(context: *const c_void, key: BorrowedBytes) -> i32 {
    guarded("set_api_key", || {
        // SAFETY: as in `metric`.
        let (Some(services), Some(key)) = (unsafe { services(context) }, unsafe { text(key) }) else {
            return abi::HOST_INVALID_ARGUMENT;
        };
        if key.trim().is_empty() {
            return abi::HOST_INVALID_ARGUMENT;
        }
        services.set_api_key(key);
        abi::HOST_OK
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Mutex;
    use std::time::Duration;

    use bytes::Bytes;
    use sdk::abi::{RawNumericTag, RawTag};

    use super::*;
    use crate::config::Environment;
    use crate::handler::{HandlerOutcome, Invocation};
    use crate::lifecycle::{InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
    use crate::runtime_api::InvocationContext;
    use crate::telemetry::metrics::{MetricsConfig, MetricsOutputs, MetricsProcessor};
    use crate::telemetry::traces::{FunctionInfo, TraceConfig, TraceProcessor, TraceSink};
    use crate::telemetry::TelemetryHost;

    use crate::test_support::SharedOutput as Output;

    /// The real telemetry of a function with the Forwarder transport, printing to `out`.
    struct Fixture {
        out: Output,
        metrics: Arc<MetricsProcessor>,
        traces: Option<Arc<TraceProcessor>>,
        bridge: HostBridge,
    }

    fn fixture(tracing: bool) -> Fixture {
        let env = Environment::from_pairs([
            ("AWS_REGION", "us-east-1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
            ("DD_FLUSH_TO_LOG", "true"),
            ("DD_ENHANCED_METRICS", "false"),
            ("DD_TRACE_ENABLED", if tracing { "true" } else { "false" }),
        ]);
        let out = Output::default();
        let config = MetricsConfig::from_env_with_extension_path(&env, Path::new("/nonexistent/datadog-agent"));
        let outputs = MetricsOutputs {
            stdout: Box::new(out.clone()),
            proc: None,
            ..MetricsOutputs::default()
        };
        let metrics = MetricsProcessor::new(config, &env, outputs);
        let traces = tracing.then(|| {
            let function = FunctionInfo {
                name: "my-fn".into(),
                initialization_type: "on-demand".into(),
                init_window_ns: None,
                handler: None,
            };
            let sink = TraceSink::Stdout(Mutex::new(Box::new(out.clone())));
            Arc::new(TraceProcessor::new(TraceConfig::from_env(&env), function, sink))
        });
        let bridge = HostBridge::new(Arc::new(TelemetryHost::new(metrics.clone(), traces.clone())));
        Fixture {
            out,
            metrics,
            traces,
            bridge,
        }
    }

    impl Fixture {
        fn api(&self) -> HostApi {
            // SAFETY: the bridge is alive for the fixture's life.
            unsafe { *self.bridge.api() }
        }

        /// Tells telemetry the invocation was answered; its lines go to `out`.
        async fn answer(&self, invocation: &Arc<Invocation>, started: Timestamp) {
            let finished = Timestamp {
                monotonic: started.monotonic + Duration::from_millis(2),
                wall: started.wall + Duration::from_millis(2),
            };
            let report = Arc::new(InvocationReport {
                invocation: invocation.clone(),
                cold_start: false,
                received: started,
                handler_started: started,
                handler_finished: finished,
                answered: finished,
                outcome: HandlerOutcome::Response(Bytes::from_static(b"{}")),
                answer_error: None,
                timed_out: false,
            });
            let event = LifecycleEvent::Invocation(report);
            if let Some(traces) = &self.traces {
                traces.observe(&event).await;
            }
            self.metrics.observe(&event).await;
        }
    }

    fn invocation(request_id: &str) -> Arc<Invocation> {
        Arc::new(Invocation {
            context: InvocationContext {
                request_id: request_id.into(),
                invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:my-fn".into(),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{}"),
        })
    }

    fn bytes(text: &[u8]) -> BorrowedBytes {
        BorrowedBytes::from_slice(text)
    }

    fn raw_metric(name: &[u8], value: f64, tags: &[BorrowedBytes]) -> RawMetric {
        RawMetric {
            name: bytes(name),
            value_kind: abi::METRIC_VALUE_FLOAT,
            float_value: value,
            integer_value: 0,
            tags: tags.as_ptr(),
            tags_len: tags.len(),
            timestamp: f64::NAN,
        }
    }

    fn raw_span<'a>(name: &'a [u8], meta: &'a [RawTag], metrics: &'a [RawNumericTag]) -> RawSpan {
        RawSpan {
            span_id: 77,
            parent_id: 0,
            name: bytes(name),
            resource: BorrowedBytes::empty(),
            service: BorrowedBytes::empty(),
            span_type: bytes(b"db"),
            start_ns: 1,
            duration_ns: -5,
            error: 1,
            meta: meta.as_ptr(),
            meta_len: meta.len(),
            metrics: metrics.as_ptr(),
            metrics_len: metrics.len(),
        }
    }

    unsafe extern "C" fn collect(visitor: *mut c_void, name: BorrowedBytes, value: BorrowedBytes) {
        // SAFETY: the test passes a live vector; the host lends the bytes for this call.
        let headers = unsafe { &mut *visitor.cast::<Vec<(String, String)>>() };
        let (name, value) = unsafe { (name.as_slice(), value.as_slice()) };
        headers.push((
            String::from_utf8(name.to_vec()).unwrap(),
            String::from_utf8(value.to_vec()).unwrap(),
        ));
    }

    #[test]
    fn null_pointers_are_refused_not_dereferenced() {
        let fixture = fixture(true);
        let api = fixture.api();
        let null = std::ptr::null();
        let metric = raw_metric(b"m", 1.0, &[]);
        let mut out = RawTraceContext::default();
        let span = raw_span(b"s", &[], &[]);
        let dangling_length = BorrowedBytes {
            ptr: std::ptr::null(),
            len: 4,
        };
        // SAFETY (all calls): null pointers are the case under test; others are valid.
        unsafe {
            assert_eq!((api.metric)(null, &raw const metric), abi::HOST_INVALID_ARGUMENT);
            assert_eq!((api.metric)(api.context, std::ptr::null()), abi::HOST_INVALID_ARGUMENT);
            assert_eq!((api.trace_context)(null, bytes(b"r"), &raw mut out), abi::HOST_INVALID_ARGUMENT);
            assert_eq!(
                (api.trace_context)(api.context, bytes(b"r"), std::ptr::null_mut()),
                abi::HOST_INVALID_ARGUMENT
            );
            assert_eq!(
                (api.trace_context)(api.context, dangling_length, &raw mut out),
                abi::HOST_INVALID_ARGUMENT
            );
            assert_eq!(
                (api.trace_headers)(api.context, bytes(b"r"), 0, None, std::ptr::null_mut()),
                abi::HOST_INVALID_ARGUMENT
            );
            assert_eq!((api.finish_span)(null, bytes(b"r"), &raw const span), abi::HOST_INVALID_ARGUMENT);
            assert_eq!(
                (api.finish_span)(api.context, bytes(b"r"), std::ptr::null()),
                abi::HOST_INVALID_ARGUMENT
            );
            assert_eq!((api.set_api_key)(null, bytes(b"key")), abi::HOST_INVALID_ARGUMENT);
            assert_eq!((api.set_api_key)(api.context, dangling_length), abi::HOST_INVALID_ARGUMENT);
        }
        let mut with_null_tags = raw_metric(b"m", 1.0, &[]);
        with_null_tags.tags = std::ptr::null();
        with_null_tags.tags_len = 3;
        // SAFETY: a null array with a length is the case under test.
        assert_eq!(
            unsafe { (api.metric)(api.context, &raw const with_null_tags) },
            abi::HOST_INVALID_ARGUMENT
        );
        let mut with_null_meta = raw_span(b"s", &[], &[]);
        with_null_meta.meta = std::ptr::null();
        with_null_meta.meta_len = 2;
        // SAFETY: as above.
        assert_eq!(
            unsafe { (api.finish_span)(api.context, bytes(b"r"), &raw const with_null_meta) },
            abi::HOST_INVALID_ARGUMENT
        );
    }

    #[tokio::test]
    async fn metrics_are_validated_and_the_accepted_one_is_flushed() {
        let fixture = fixture(false);
        let api = fixture.api();
        let call = |metric: &RawMetric| {
            // SAFETY: a live bridge and a valid metric.
            unsafe { (api.metric)(api.context, metric) }
        };
        assert_eq!(call(&raw_metric(b"bad\xff", 1.0, &[])), abi::HOST_INVALID_METRIC_NAME);
        assert_eq!(call(&raw_metric(b"", 1.0, &[])), abi::HOST_INVALID_METRIC_NAME);
        assert_eq!(call(&raw_metric(b"m", f64::NAN, &[])), abi::HOST_METRIC_VALUE_NOT_FINITE);
        assert_eq!(call(&raw_metric(b"m", 1.0, &[bytes(b"k:\xfe")])), abi::HOST_INVALID_ARGUMENT);
        let mut unknown_kind = raw_metric(b"m", 1.0, &[]);
        unknown_kind.value_kind = 9;
        assert_eq!(call(&unknown_kind), abi::HOST_INVALID_ARGUMENT);
        let mut too_old = raw_metric(b"m", 1.0, &[]);
        too_old.timestamp = 1_000_000.0;
        assert_eq!(call(&too_old), abi::HOST_TIMESTAMP_TOO_OLD);
        let mut negative = raw_metric(b"m", 1.0, &[]);
        negative.timestamp = -1.0;
        assert_eq!(call(&negative), abi::HOST_INVALID_TIMESTAMP);

        let tags = [bytes(b"tag:a"), bytes(b"")];
        let mut integer = raw_metric(b"example.metric", 0.0, &tags);
        integer.value_kind = abi::METRIC_VALUE_INTEGER;
        integer.integer_value = 3;
        assert_eq!(call(&integer), abi::HOST_OK);

        let started = Timestamp::now();
        fixture.answer(&invocation("r1"), started).await;
        let lines = fixture.out.json_lines();
        assert_eq!(lines.len(), 1, "only the accepted metric: {lines:?}");
        assert_eq!(lines[0]["m"], "example.metric");
        assert_eq!(lines[0]["v"], serde_json::json!(3));
        let tags = lines[0]["t"].as_array().unwrap();
        assert_eq!(tags.len(), 2, "the empty tag is skipped, the layer tag added: {tags:?}");
        assert_eq!(tags[0], "tag:a");
    }

    #[tokio::test]
    async fn trace_calls_follow_the_invocation_in_flight() {
        let fixture = fixture(true);
        let api = fixture.api();
        let traces = fixture.traces.clone().unwrap();
        let trace_context = |request_id: &[u8]| {
            let mut out = RawTraceContext::default();
            // SAFETY: a live bridge, borrowed bytes and a writable output.
            let status = unsafe { (api.trace_context)(api.context, bytes(request_id), &raw mut out) };
            (status, out)
        };
        assert_eq!(trace_context(b"r1").0, abi::HOST_NO_TRACE, "not in flight yet");

        let invocation = invocation("r1");
        let started = Timestamp::now();
        traces.invocation_started(&invocation, started);
        let (status, first) = trace_context(b"r1");
        assert_eq!(status, abi::HOST_OK);
        assert_eq!(trace_context(b"r1").1, first, "decided once");
        assert_ne!(first.span_id, 0);
        assert_eq!(first.sampling_priority, 1);
        assert_eq!(trace_context(b"r1\xff").0, abi::HOST_INVALID_ARGUMENT);

        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY: a live bridge and a visitor writing into a live vector.
        let status = unsafe { (api.trace_headers)(api.context, bytes(b"r1"), 0, Some(collect), (&raw mut headers).cast()) };
        assert_eq!(status, abi::HOST_OK);
        let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(header("x-datadog-trace-id"), Some(first.trace_id_low.to_string()));
        assert_eq!(header("x-datadog-parent-id"), Some(first.span_id.to_string()));

        let meta = [
            RawTag {
                key: bytes(b"db.system"),
                value: bytes(b"dynamodb\xff"),
            },
            RawTag {
                key: bytes(b""),
                value: bytes(b"dropped"),
            },
        ];
        let metrics = [
            RawNumericTag {
                key: bytes(b"rows"),
                value: 2.0,
            },
            RawNumericTag {
                key: bytes(b"nan"),
                value: f64::NAN,
            },
        ];
        // SAFETY (both): a live bridge and valid spans.
        let status = unsafe { (api.finish_span)(api.context, bytes(b"r1"), &raw_span(b"db.query", &meta, &metrics)) };
        assert_eq!(status, abi::HOST_OK);
        let status = unsafe { (api.finish_span)(api.context, bytes(b"r1"), &raw_span(b"\xff", &[], &[])) };
        assert_eq!(status, abi::HOST_INVALID_ARGUMENT, "a span name must be UTF-8");

        fixture.answer(&invocation, started).await;
        let lines = fixture.out.json_lines();
        let trace = lines.iter().find(|l| l.get("traces").is_some()).expect("a trace line");
        let spans = trace["traces"][0].as_array().unwrap();
        let lambda = spans.iter().find(|s| s["name"] == "aws.lambda").unwrap();
        let query = spans.iter().find(|s| s["name"] == "db.query").unwrap();
        assert_eq!(lambda["span_id"], format!("{:016X}", first.span_id));
        assert_eq!(lambda["trace_id"], format!("{:016X}", first.trace_id_low));
        assert_eq!(query["span_id"], format!("{:016X}", 77));
        assert_eq!(query["parent_id"], lambda["span_id"]);
        assert_eq!(query["trace_id"], lambda["trace_id"]);
        assert_eq!((query["resource"].as_str(), query["type"].as_str()), (Some("db.query"), Some("db")));
        assert_eq!(query["service"], lambda["service"]);
        assert_eq!((query["error"].as_i64(), query["duration"].as_i64()), (Some(1), Some(0)));
        assert_eq!(query["meta"]["db.system"], "dynamodb\u{fffd}");
        assert_eq!(query["metrics"]["rows"], 2.0);
        assert!(query["metrics"].get("nan").is_none());

        assert_eq!(trace_context(b"r1").0, abi::HOST_NO_TRACE, "its trace went out");
        // SAFETY: as above.
        let late = unsafe { (api.finish_span)(api.context, bytes(b"r1"), &raw_span(b"late", &[], &[])) };
        assert_eq!(late, abi::HOST_NO_TRACE);
    }

    #[test]
    fn with_tracing_off_there_is_no_trace_and_no_header() {
        let fixture = fixture(false);
        let api = fixture.api();
        let mut out = RawTraceContext::default();
        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY (all): a live bridge, valid arguments.
        unsafe {
            assert_eq!((api.trace_context)(api.context, bytes(b"r1"), &raw mut out), abi::HOST_NO_TRACE);
            let status = (api.trace_headers)(api.context, bytes(b"r1"), 0, Some(collect), (&raw mut headers).cast());
            assert_eq!(status, abi::HOST_NO_TRACE);
            assert_eq!(
                (api.finish_span)(api.context, bytes(b"r1"), &raw_span(b"s", &[], &[])),
                abi::HOST_NO_TRACE
            );
            assert_eq!((api.set_api_key)(api.context, bytes(b"  ")), abi::HOST_INVALID_ARGUMENT);
            assert_eq!((api.set_api_key)(api.context, bytes(b"0123456789abcdef")), abi::HOST_OK);
        }
        assert!(headers.is_empty());
    }

    #[test]
    fn with_tracing_off_and_logs_injection_on_the_ids_are_correlation_only() {
        use crate::telemetry::traces::CorrelationOnly;
        let fixture = fixture(false);
        let env = Environment::from_pairs([("AWS_LAMBDA_FUNCTION_NAME", "my-fn")]);
        let correlation = Arc::new(CorrelationOnly::new(TraceConfig::from_env(&env), "my-fn".into()));
        let host = TelemetryHost::new(fixture.metrics.clone(), None).with_correlation(Some(correlation.clone()));
        let bridge = HostBridge::new(Arc::new(host));
        // SAFETY: the bridge is alive for the test.
        let api = unsafe { *bridge.api() };
        let invocation = Arc::new(Invocation {
            context: InvocationContext {
                request_id: "r1".into(),
                xray_trace_id: Some("Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1".into()),
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{}"),
        });
        let mut out = RawTraceContext::default();
        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY (all): a live bridge, valid arguments.
        unsafe {
            assert_eq!(
                (api.trace_context)(api.context, bytes(b"r1"), &raw mut out),
                abi::HOST_NO_TRACE,
                "not in flight"
            );
            correlation.invocation_started(&invocation, Timestamp::now());
            assert_eq!(
                (api.trace_context)(api.context, bytes(b"r1"), &raw mut out),
                abi::HOST_CORRELATION_ONLY
            );
            assert_eq!(
                (out.trace_id_high, out.trace_id_low),
                (0, 3995693151288333088),
                "the X-Ray trace id"
            );
            assert_ne!(out.span_id, 0);
            let first = out;
            (api.trace_context)(api.context, bytes(b"r1"), &raw mut out);
            assert_eq!(out, first, "decided once");
            let status = (api.trace_headers)(api.context, bytes(b"r1"), 0, Some(collect), (&raw mut headers).cast());
            assert_eq!(status, abi::HOST_NO_TRACE, "nothing to continue");
            assert_eq!(
                (api.finish_span)(api.context, bytes(b"r1"), &raw_span(b"s", &[], &[])),
                abi::HOST_NO_TRACE
            );
        }
        assert!(headers.is_empty());
    }

    /// Services with a bug: every call panics.
    struct Panicking;

    impl HostServices for Panicking {
        fn metric(&self, _: &str, _: MetricValue, _: &[String], _: Option<f64>) -> Result<(), CustomMetricError> {
            panic!("metric bug")
        }
        fn trace_context(&self, _: &str) -> Option<crate::handler::ActiveTraceContext> {
            panic!("trace bug")
        }
        fn trace_headers(&self, _: &str, _: Option<u64>) -> Option<Vec<(String, String)>> {
            panic!("headers bug")
        }
        fn finish_span(&self, _: &str, _: Span) -> bool {
            panic!("span bug")
        }
        fn set_api_key(&self, _: &str) {
            panic!("key bug")
        }
    }

    #[test]
    fn a_panic_in_the_host_is_a_status_not_an_unwind_into_the_library() {
        let bridge = HostBridge::new(Arc::new(Panicking));
        // SAFETY: the bridge is alive for the test.
        let api = unsafe { *bridge.api() };
        let mut out = RawTraceContext::default();
        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY (all): a live bridge, valid arguments.
        unsafe {
            assert_eq!((api.metric)(api.context, &raw_metric(b"m", 1.0, &[])), abi::HOST_INTERNAL_ERROR);
            assert_eq!(
                (api.trace_context)(api.context, bytes(b"r"), &raw mut out),
                abi::HOST_INTERNAL_ERROR
            );
            let status = (api.trace_headers)(api.context, bytes(b"r"), 0, Some(collect), (&raw mut headers).cast());
            assert_eq!(status, abi::HOST_INTERNAL_ERROR);
            assert_eq!(
                (api.finish_span)(api.context, bytes(b"r"), &raw_span(b"s", &[], &[])),
                abi::HOST_INTERNAL_ERROR
            );
            assert_eq!((api.set_api_key)(api.context, bytes(b"k")), abi::HOST_INTERNAL_ERROR);
        }
    }
}
