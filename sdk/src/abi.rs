//! The C ABI between the `bootstrap` runtime and a handler shared library.
//!
//! This module is the contract both sides compile against; users never touch it directly
//! ([`crate::export_abi!`], [`crate::handler!`] and [`crate::init!`] write the exports). The rules:
//!
//! - The library exports [`ABI_VERSION_SYMBOL`] returning [`ABI_VERSION`]; the bootstrap refuses
//!   to load a library whose version differs, naming both.
//! - Each handler is one export named [`HANDLER_SYMBOL_PREFIX`] + its name, of type
//!   [`HandlerFn`]. `libapp.so:NAME` picks `NAME`; a bare `libapp.so` picks [`DEFAULT_HANDLER_NAME`].
//! - An optional [`INIT_SYMBOL`] of type [`InitFn`] runs once at load; its time is the init duration.
//! - Input buffers belong to the bootstrap and are only borrowed for the call. Output buffers are
//!   allocated by the library and handed back through [`FREE_SYMBOL`] ([`FreeFn`]), so each side
//!   frees what it allocated, whatever allocator each uses.
//! - Panics never cross the boundary: the library catches them and returns [`STATUS_ERROR`].
//! - Version 2 adds the host API: the bootstrap calls [`ATTACH_HOST_SYMBOL`] ([`AttachHostFn`])
//!   once, before init, with a [`HostApi`] the library uses for custom metrics, the trace
//!   context, child spans, propagation headers and the API key. Everything the library passes to
//!   the host is borrowed for the call; nothing the host hands back needs freeing (headers come
//!   through a callback, borrowed for the callback's call). The host's functions are thread-safe
//!   and never unwind.
//! - Optional additions that need no version bump, because each side checks for the other's
//!   part and goes without it: [`ATTACH_ALLOC_REPORTER_SYMBOL`] (the library's allocator tells
//!   the bootstrap of an allocation failure before the process aborts), and the
//!   [`HOST_CORRELATION_ONLY`] status of [`TraceContextFn`] (log correlation ids with tracing
//!   off; a library that does not know it sees no trace).

/// Version of this ABI. Bumped on any change of the types or rules in this module.
///
/// ```
/// assert_eq!(sdk::abi::ABI_VERSION, 2);
/// ```
pub const ABI_VERSION: u32 = 2;

/// Export returning the ABI version the library was built against: `extern "C" fn() -> u32`.
///
/// ```
/// assert_eq!(sdk::abi::ABI_VERSION_SYMBOL, "dd_lambda_abi_version");
/// ```
pub const ABI_VERSION_SYMBOL: &str = "dd_lambda_abi_version";

/// Optional export run once at load, of type [`InitFn`].
///
/// ```
/// assert_eq!(sdk::abi::INIT_SYMBOL, "dd_lambda_init");
/// ```
pub const INIT_SYMBOL: &str = "dd_lambda_init";

/// Export that frees an [`OwnedBuffer`] the library returned, of type [`FreeFn`].
///
/// ```
/// assert_eq!(sdk::abi::FREE_SYMBOL, "dd_lambda_free");
/// ```
pub const FREE_SYMBOL: &str = "dd_lambda_free";

/// Prefix of every handler export; the handler `echo` is exported as `dd_lambda_handler_echo`.
///
/// ```
/// assert_eq!(format!("{}echo", sdk::abi::HANDLER_SYMBOL_PREFIX), "dd_lambda_handler_echo");
/// ```
pub const HANDLER_SYMBOL_PREFIX: &str = "dd_lambda_handler_";

/// The handler picked when `DD_LAMBDA_HANDLER` names a library without `:NAME`.
///
/// ```
/// assert_eq!(sdk::abi::DEFAULT_HANDLER_NAME, "handler");
/// ```
pub const DEFAULT_HANDLER_NAME: &str = "handler";

/// The handler succeeded: the output buffer holds the response body.
///
/// ```
/// assert_ne!(sdk::abi::STATUS_OK, sdk::abi::STATUS_ERROR);
/// ```
pub const STATUS_OK: i32 = 0;
/// The handler failed (error or panic): the output buffer holds a JSON error body
/// `{"errorType", "errorMessage", "stackTrace"}` ready for the Runtime API's `/error`.
///
/// ```
/// assert_eq!(sdk::abi::STATUS_ERROR, 1);
/// ```
pub const STATUS_ERROR: i32 = 1;

/// Bytes borrowed from the caller for the duration of one call. `ptr` may be null when `len` is 0.
///
/// ```
/// let bytes = sdk::abi::BorrowedBytes::from_slice(b"{}");
/// assert_eq!(bytes.len, 2);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BorrowedBytes {
    /// Start of the bytes.
    pub ptr: *const u8,
    /// Number of bytes.
    pub len: usize,
}

impl BorrowedBytes {
    /// Borrows a slice for an ABI call.
    ///
    /// ```
    /// let bytes = sdk::abi::BorrowedBytes::from_slice(b"abc");
    /// assert_eq!(unsafe { bytes.as_slice() }, b"abc");
    /// ```
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            len: bytes.len(),
        }
    }

    /// An empty value, for absent optional fields.
    ///
    /// ```
    /// assert_eq!(unsafe { sdk::abi::BorrowedBytes::empty().as_slice() }, b"");
    /// ```
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null(),
            len: 0,
        }
    }

    /// Views the bytes.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive the returned slice (or be null with `len` 0).
    ///
    /// ```
    /// let data = vec![1u8, 2];
    /// let bytes = sdk::abi::BorrowedBytes::from_slice(&data);
    /// assert_eq!(unsafe { bytes.as_slice() }, &[1, 2]);
    /// ```
    pub unsafe fn as_slice<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// One invocation as the bootstrap passes it to a handler. Every field is borrowed for the call;
/// absent optional headers are empty.
///
/// ```
/// use sdk::abi::{BorrowedBytes, RawInvocation};
///
/// let invocation = RawInvocation {
///     event: BorrowedBytes::from_slice(br#"{"id": 1}"#),
///     request_id: BorrowedBytes::from_slice(b"8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
///     deadline_ms: 1_700_000_000_000,
///     invoked_function_arn: BorrowedBytes::from_slice(b"arn:aws:lambda:us-east-1:123456789012:function:f"),
///     xray_trace_id: BorrowedBytes::empty(),
///     client_context: BorrowedBytes::empty(),
///     cognito_identity: BorrowedBytes::empty(),
///     tenant_id: BorrowedBytes::empty(),
/// };
/// assert_eq!(unsafe { invocation.event.as_slice() }, br#"{"id": 1}"#);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawInvocation {
    /// The event body, exactly as the Runtime API sent it.
    pub event: BorrowedBytes,
    /// `Lambda-Runtime-Aws-Request-Id`.
    pub request_id: BorrowedBytes,
    /// `Lambda-Runtime-Deadline-Ms`: the deadline in milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`.
    pub invoked_function_arn: BorrowedBytes,
    /// `Lambda-Runtime-Trace-Id` (X-Ray), empty when absent.
    pub xray_trace_id: BorrowedBytes,
    /// `Lambda-Runtime-Client-Context` (JSON), empty when absent.
    pub client_context: BorrowedBytes,
    /// `Lambda-Runtime-Cognito-Identity` (JSON), empty when absent.
    pub cognito_identity: BorrowedBytes,
    /// `Lambda-Runtime-Aws-Tenant-Id`, empty when absent.
    pub tenant_id: BorrowedBytes,
}

/// A buffer allocated by the library and returned to the bootstrap, which must hand it back to
/// [`FREE_SYMBOL`] once done.
///
/// ```
/// let buffer = sdk::abi::OwnedBuffer::from_vec(Vec::with_capacity(8));
/// assert_eq!((buffer.len, buffer.cap), (0, 8));
/// drop(unsafe { buffer.into_vec() });
/// ```
#[repr(C)]
#[derive(Debug)]
pub struct OwnedBuffer {
    /// Start of the bytes (from a `Vec<u8>`'s allocation).
    pub ptr: *mut u8,
    /// Number of initialised bytes.
    pub len: usize,
    /// Capacity of the allocation.
    pub cap: usize,
}

impl OwnedBuffer {
    /// An empty buffer that owns nothing.
    ///
    /// ```
    /// let empty = sdk::abi::OwnedBuffer::empty();
    /// assert!(empty.ptr.is_null());
    /// ```
    pub const fn empty() -> Self {
        Self {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }

    /// Leaks a vector into a buffer for the other side of the ABI.
    ///
    /// ```
    /// let buf = sdk::abi::OwnedBuffer::from_vec(b"hi".to_vec());
    /// assert_eq!(unsafe { buf.into_vec() }, b"hi");
    /// ```
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        let mut bytes = std::mem::ManuallyDrop::new(bytes);
        Self {
            ptr: bytes.as_mut_ptr(),
            len: bytes.len(),
            cap: bytes.capacity(),
        }
    }

    /// Takes the vector back. Only the side that built the buffer may call this.
    ///
    /// # Safety
    /// The buffer must come from [`OwnedBuffer::from_vec`] in the same allocator's world and
    /// must not be used again.
    ///
    /// ```
    /// let buf = sdk::abi::OwnedBuffer::from_vec(vec![7u8]);
    /// assert_eq!(unsafe { buf.into_vec() }, vec![7u8]);
    /// ```
    pub unsafe fn into_vec(self) -> Vec<u8> {
        if self.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: guaranteed by the caller.
            unsafe { Vec::from_raw_parts(self.ptr, self.len, self.cap) }
        }
    }
}

/// `extern "C" fn() -> u32`: see [`ABI_VERSION_SYMBOL`].
///
/// ```
/// extern "C" fn version() -> u32 { sdk::abi::ABI_VERSION }
/// let f: sdk::abi::AbiVersionFn = version;
/// assert_eq!(unsafe { f() }, 2);
/// ```
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `extern "C" fn(*mut OwnedBuffer) -> i32`: runs the library's init; on [`STATUS_ERROR`] the
/// buffer holds a JSON error body.
///
/// ```
/// unsafe extern "C" fn init(_error_out: *mut sdk::abi::OwnedBuffer) -> i32 { sdk::abi::STATUS_OK }
/// let f: sdk::abi::InitFn = init;
/// assert_eq!(unsafe { f(std::ptr::null_mut()) }, sdk::abi::STATUS_OK);
/// ```
pub type InitFn = unsafe extern "C" fn(error_out: *mut OwnedBuffer) -> i32;
/// `extern "C" fn(*const RawInvocation, *mut OwnedBuffer) -> i32`: runs one invocation; the
/// buffer holds the response body ([`STATUS_OK`]) or a JSON error body ([`STATUS_ERROR`]).
///
/// ```
/// use sdk::abi::{OwnedBuffer, RawInvocation};
/// unsafe extern "C" fn refuse(_: *const RawInvocation, _: *mut OwnedBuffer) -> i32 { sdk::abi::STATUS_ERROR }
/// let f: sdk::abi::HandlerFn = refuse;
/// assert_eq!(unsafe { f(std::ptr::null(), std::ptr::null_mut()) }, sdk::abi::STATUS_ERROR);
/// ```
pub type HandlerFn = unsafe extern "C" fn(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
/// `extern "C" fn(OwnedBuffer)`: frees a buffer the library returned.
///
/// ```
/// unsafe extern "C" fn free(buffer: sdk::abi::OwnedBuffer) { drop(unsafe { buffer.into_vec() }) }
/// let f: sdk::abi::FreeFn = free;
/// unsafe { f(sdk::abi::OwnedBuffer::from_vec(vec![1, 2, 3])) };
/// ```
pub type FreeFn = unsafe extern "C" fn(buffer: OwnedBuffer);

// ---------------------------------------------------------------------------------------------
// Version 2: the host API, what the library may ask of the bootstrap.
// ---------------------------------------------------------------------------------------------

/// Export the bootstrap calls once, after the version check and before [`INIT_SYMBOL`], with the
/// host API: `extern "C" fn(*const HostApi)`, of type [`AttachHostFn`]. Optional for the
/// bootstrap (a library without it simply has no host); [`crate::export_abi!`] writes it.
///
/// ```
/// assert_eq!(sdk::abi::ATTACH_HOST_SYMBOL, "dd_lambda_attach_host");
/// ```
pub const ATTACH_HOST_SYMBOL: &str = "dd_lambda_attach_host";

/// The host did what was asked.
///
/// ```
/// assert_eq!(sdk::abi::HOST_OK, 0);
/// ```
pub const HOST_OK: i32 = 0;
/// No trace for this request: tracing is off (`DD_TRACE_ENABLED` is false), the request id is
/// not an invocation in flight, or its trace was already sent (a timeout).
///
/// ```
/// assert_ne!(sdk::abi::HOST_NO_TRACE, sdk::abi::HOST_OK);
/// ```
pub const HOST_NO_TRACE: i32 = 1;
/// A pointer was null, or bytes that must be UTF-8 were not.
///
/// ```
/// assert_eq!(sdk::abi::HOST_INVALID_ARGUMENT, 2);
/// ```
pub const HOST_INVALID_ARGUMENT: i32 = 2;
/// The metric name is empty, blank or not UTF-8; the metric was dropped.
///
/// ```
/// assert_eq!(sdk::abi::HOST_INVALID_METRIC_NAME, 3);
/// ```
pub const HOST_INVALID_METRIC_NAME: i32 = 3;
/// The metric value is NaN or infinite; the metric was dropped.
///
/// ```
/// assert_eq!(sdk::abi::HOST_METRIC_VALUE_NOT_FINITE, 4);
/// ```
pub const HOST_METRIC_VALUE_NOT_FINITE: i32 = 4;
/// The metric timestamp is negative or not finite; the metric was dropped.
///
/// ```
/// assert_eq!(sdk::abi::HOST_INVALID_TIMESTAMP, 5);
/// ```
pub const HOST_INVALID_TIMESTAMP: i32 = 5;
/// The metric timestamp is more than 4 hours old, which Datadog refuses; the metric was dropped.
///
/// ```
/// assert_eq!(sdk::abi::HOST_TIMESTAMP_TOO_OLD, 6);
/// ```
pub const HOST_TIMESTAMP_TOO_OLD: i32 = 6;
/// The host failed on its side (a bug, reported in its own log); nothing was recorded.
///
/// ```
/// assert_eq!(sdk::abi::HOST_INTERNAL_ERROR, 7);
/// ```
pub const HOST_INTERNAL_ERROR: i32 = 7;
/// From [`TraceContextFn`] only: there is no trace (tracing is off), but logs injection is on
/// and `out` holds the ids the invocation's log lines carry (Datadog's correlation ids without
/// a trace, §5.16): for log lines only, not a context to continue or to parent spans on. A
/// library that does not know this status treats it as [`HOST_NO_TRACE`].
///
/// ```
/// assert_eq!(sdk::abi::HOST_CORRELATION_ONLY, 8);
/// ```
pub const HOST_CORRELATION_ONLY: i32 = 8;

/// [`RawMetric::value_kind`]: the value is [`RawMetric::float_value`].
///
/// ```
/// assert_eq!(sdk::abi::METRIC_VALUE_FLOAT, 0);
/// ```
pub const METRIC_VALUE_FLOAT: u32 = 0;
/// [`RawMetric::value_kind`]: the value is [`RawMetric::integer_value`] (printed without a
/// decimal point, as Datadog's libraries print integers).
///
/// ```
/// assert_eq!(sdk::abi::METRIC_VALUE_INTEGER, 1);
/// ```
pub const METRIC_VALUE_INTEGER: u32 = 1;

/// One custom metric sample (a distribution point), borrowed for the [`MetricFn`] call.
///
/// ```
/// use sdk::abi::{BorrowedBytes, RawMetric, METRIC_VALUE_FLOAT};
///
/// let tags = [BorrowedBytes::from_slice(b"tag:a")];
/// let metric = RawMetric {
///     name: BorrowedBytes::from_slice(b"example.metric"),
///     value_kind: METRIC_VALUE_FLOAT,
///     float_value: 1.5,
///     integer_value: 0,
///     tags: tags.as_ptr(),
///     tags_len: tags.len(),
///     timestamp: f64::NAN, // now
/// };
/// assert_eq!(metric.tags_len, 1);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawMetric {
    /// The metric name, UTF-8.
    pub name: BorrowedBytes,
    /// [`METRIC_VALUE_FLOAT`] or [`METRIC_VALUE_INTEGER`].
    pub value_kind: u32,
    /// The value when `value_kind` is [`METRIC_VALUE_FLOAT`].
    pub float_value: f64,
    /// The value when `value_kind` is [`METRIC_VALUE_INTEGER`].
    pub integer_value: i64,
    /// `tags_len` tags (`key:value`, UTF-8); may be null when `tags_len` is 0.
    pub tags: *const BorrowedBytes,
    /// Number of tags.
    pub tags_len: usize,
    /// Epoch seconds; NaN (or 0) means now.
    pub timestamp: f64,
}

/// The trace context of an invocation in flight, written by [`TraceContextFn`].
///
/// ```
/// let context = sdk::abi::RawTraceContext::default();
/// assert_eq!((context.trace_id_high, context.trace_id_low, context.span_id), (0, 0, 0));
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawTraceContext {
    /// High 64 bits of the 128-bit trace id (0 for a 64-bit trace id).
    pub trace_id_high: u64,
    /// Low 64 bits of the trace id: the classic Datadog trace id.
    pub trace_id_low: u64,
    /// The `aws.lambda` span's id: the parent of spans the handler creates.
    pub span_id: u64,
    /// -1 (user reject), 0 (auto reject), 1 (auto keep), 2 (user keep).
    pub sampling_priority: i32,
}

/// A string tag of a [`RawSpan`].
///
/// ```
/// let tag = sdk::abi::RawTag {
///     key: sdk::abi::BorrowedBytes::from_slice(b"db.system"),
///     value: sdk::abi::BorrowedBytes::from_slice(b"dynamodb"),
/// };
/// assert_eq!(tag.key.len, 9);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawTag {
    /// UTF-8.
    pub key: BorrowedBytes,
    /// UTF-8.
    pub value: BorrowedBytes,
}

/// A numeric tag (a span "metric") of a [`RawSpan`].
///
/// ```
/// let tag = sdk::abi::RawNumericTag { key: sdk::abi::BorrowedBytes::from_slice(b"rows"), value: 3.0 };
/// assert_eq!(tag.value, 3.0);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawNumericTag {
    /// UTF-8.
    pub key: BorrowedBytes,
    /// A finite number (others are dropped by the host).
    pub value: f64,
}

/// A finished span the library created, borrowed for the [`FinishSpanFn`] call. The host puts
/// it in the invocation's trace (the trace id is the host's).
///
/// ```
/// use sdk::abi::{BorrowedBytes, RawSpan};
///
/// let span = RawSpan {
///     span_id: 7,
///     parent_id: 0, // the aws.lambda span
///     name: BorrowedBytes::from_slice(b"db.query"),
///     resource: BorrowedBytes::empty(), // the name
///     service: BorrowedBytes::empty(),  // the function's service
///     span_type: BorrowedBytes::empty(),
///     start_ns: 1_700_000_000_000_000_000,
///     duration_ns: 1_000,
///     error: 0,
///     meta: std::ptr::null(),
///     meta_len: 0,
///     metrics: std::ptr::null(),
///     metrics_len: 0,
/// };
/// assert_eq!(span.span_id, 7);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RawSpan {
    /// Non-zero id chosen by the library.
    pub span_id: u64,
    /// The parent span's id; 0 means the invocation's `aws.lambda` span.
    pub parent_id: u64,
    /// The operation name, UTF-8, not empty.
    pub name: BorrowedBytes,
    /// The resource; empty means the name.
    pub resource: BorrowedBytes,
    /// The service; empty means the function's service.
    pub service: BorrowedBytes,
    /// The span type (`web`, `db`, `http`...); may be empty.
    pub span_type: BorrowedBytes,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_ns: i64,
    /// Duration in nanoseconds (negative is taken as 0).
    pub duration_ns: i64,
    /// 1 when the span failed (see the `error.*` tags), else 0.
    pub error: i32,
    /// `meta_len` string tags; may be null when `meta_len` is 0.
    pub meta: *const RawTag,
    /// Number of string tags.
    pub meta_len: usize,
    /// `metrics_len` numeric tags; may be null when `metrics_len` is 0.
    pub metrics: *const RawNumericTag,
    /// Number of numeric tags.
    pub metrics_len: usize,
}

/// The host's metric function: `metric(context, metric) -> status`. [`HOST_OK`] or the reason
/// the metric was dropped.
pub type MetricFn = unsafe extern "C" fn(context: *const std::ffi::c_void, metric: *const RawMetric) -> i32;
/// The host's trace-context function: writes the context of `request_id` to `out`; [`HOST_OK`]
/// or [`HOST_NO_TRACE`], or [`HOST_CORRELATION_ONLY`] (`out` holds log correlation ids, no
/// trace). The trace (or the ids) is decided on the first call and never changes after.
pub type TraceContextFn =
    unsafe extern "C" fn(context: *const std::ffi::c_void, request_id: BorrowedBytes, out: *mut RawTraceContext) -> i32;
/// Receives one propagation header (name, value), both borrowed for this call only.
pub type HeaderVisitorFn = unsafe extern "C" fn(visitor: *mut std::ffi::c_void, name: BorrowedBytes, value: BorrowedBytes);
/// The host's propagation-header function: calls `visit(visitor, name, value)` for each header
/// to put on an outgoing call continuing `request_id`'s trace, in the styles the function
/// configured (`DD_TRACE_PROPAGATION_STYLE_INJECT`), parented on `parent_span_id` (0: the
/// `aws.lambda` span). [`HOST_OK`], [`HOST_NO_TRACE`] (no call made) or
/// [`HOST_INVALID_ARGUMENT`] (no `visit`).
pub type TraceHeadersFn = unsafe extern "C" fn(
    context: *const std::ffi::c_void,
    request_id: BorrowedBytes,
    parent_span_id: u64,
    visit: Option<HeaderVisitorFn>,
    visitor: *mut std::ffi::c_void,
) -> i32;
/// The host's span function: adds a finished span to `request_id`'s trace; [`HOST_OK`],
/// [`HOST_NO_TRACE`] (the span is dropped) or [`HOST_INVALID_ARGUMENT`].
pub type FinishSpanFn = unsafe extern "C" fn(context: *const std::ffi::c_void, request_id: BorrowedBytes, span: *const RawSpan) -> i32;
/// The host's API-key function: replaces the Datadog API key used from the next flush on.
/// [`HOST_OK`] or [`HOST_INVALID_ARGUMENT`] (empty or not UTF-8).
pub type SetApiKeyFn = unsafe extern "C" fn(context: *const std::ffi::c_void, key: BorrowedBytes) -> i32;

/// What the library may ask of the bootstrap: `context` is the host's opaque state, passed back
/// as the first argument of every function. The bootstrap keeps the struct and its context
/// alive as long as the library is loaded; the library may copy the struct.
///
/// ```
/// use std::ffi::c_void;
/// use sdk::abi::*;
///
/// unsafe extern "C" fn metric(_: *const c_void, _: *const RawMetric) -> i32 { HOST_OK }
/// unsafe extern "C" fn trace_context(_: *const c_void, _: BorrowedBytes, _: *mut RawTraceContext) -> i32 { HOST_NO_TRACE }
/// unsafe extern "C" fn trace_headers(_: *const c_void, _: BorrowedBytes, _: u64, _: Option<HeaderVisitorFn>, _: *mut c_void) -> i32 { HOST_NO_TRACE }
/// unsafe extern "C" fn finish_span(_: *const c_void, _: BorrowedBytes, _: *const RawSpan) -> i32 { HOST_NO_TRACE }
/// unsafe extern "C" fn set_api_key(_: *const c_void, _: BorrowedBytes) -> i32 { HOST_OK }
///
/// let host = HostApi { context: std::ptr::null(), metric, trace_context, trace_headers, finish_span, set_api_key };
/// let mut out = RawTraceContext::default();
/// assert_eq!(unsafe { (host.trace_context)(host.context, BorrowedBytes::empty(), &mut out) }, HOST_NO_TRACE);
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HostApi {
    /// The host's state; opaque to the library.
    pub context: *const std::ffi::c_void,
    /// See [`MetricFn`].
    pub metric: MetricFn,
    /// See [`TraceContextFn`].
    pub trace_context: TraceContextFn,
    /// See [`TraceHeadersFn`].
    pub trace_headers: TraceHeadersFn,
    /// See [`FinishSpanFn`].
    pub finish_span: FinishSpanFn,
    /// See [`SetApiKeyFn`].
    pub set_api_key: SetApiKeyFn,
}

/// `extern "C" fn(*const HostApi)`: see [`ATTACH_HOST_SYMBOL`]. A null pointer attaches nothing.
///
/// ```
/// unsafe extern "C" fn attach(_host: *const sdk::abi::HostApi) {}
/// let f: sdk::abi::AttachHostFn = attach;
/// unsafe { f(std::ptr::null()) };
/// ```
pub type AttachHostFn = unsafe extern "C" fn(host: *const HostApi);

// ---------------------------------------------------------------------------------------------
// Optional, within version 2: an older bootstrap never calls these exports, an older library
// does not have them, and both then work as before.
// ---------------------------------------------------------------------------------------------

/// Optional export the bootstrap calls once, right after the version check, with the function
/// the library's allocator calls when an allocation fails ([`AllocFailureFn`]); of type
/// [`AttachAllocReporterFn`]. [`crate::export_abi!`] writes it, and its global allocator
/// ([`crate::alloc::Reporting`]) makes the calls.
///
/// ```
/// assert_eq!(sdk::abi::ATTACH_ALLOC_REPORTER_SYMBOL, "dd_lambda_attach_alloc_reporter");
/// ```
pub const ATTACH_ALLOC_REPORTER_SYMBOL: &str = "dd_lambda_attach_alloc_reporter";

/// The host's allocation-failure function: `report(size, align)` of the allocation the
/// library's allocator just refused, called on the allocating thread before the null is
/// returned (after which Rust's `handle_alloc_error` usually aborts the process). It is called
/// from inside an allocator, maybe with the process out of memory: it must not allocate, take
/// a lock or unwind; it records and returns.
pub type AllocFailureFn = unsafe extern "C" fn(size: usize, align: usize);

/// `extern "C" fn(Option<AllocFailureFn>)`: see [`ATTACH_ALLOC_REPORTER_SYMBOL`]. `None` detaches.
///
/// ```
/// unsafe extern "C" fn attach(_report: Option<sdk::abi::AllocFailureFn>) {}
/// let f: sdk::abi::AttachAllocReporterFn = attach;
/// unsafe { f(None) };
/// ```
pub type AttachAllocReporterFn = unsafe extern "C" fn(report: Option<AllocFailureFn>);
