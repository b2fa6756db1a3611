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
        let context = (&*services as *const Arc<dyn HostServices>).cast::<c_void>();
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
        &*self.api
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
        let Some(active) = services.trace_context(request_id) else {
            return abi::HOST_NO_TRACE;
        };
        let raw = RawTraceContext {
            trace_id_high: active.trace_id_high,
            trace_id_low: active.trace_id_low,
            span_id: active.span_id,
            sampling_priority: active.sampling_priority,
        };
        // SAFETY: non-null and writable, as the ABI requires of `out`.
        unsafe { out.write(raw) };
        abi::HOST_OK
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
                )
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
        span.resource = name.to_owned();
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
