//! The bootstrap's [`HostApi`], as this library received it, and safe calls into it.
//!
//! The host is attached once per process, before the library's init, and never changes: it is
//! kept in a write-once cell rather than passed around, so that `lambda_metric` works from any
//! thread the handler spawns, sync or async, without a thread-local or a handle to carry.
use std::ffi::c_void;
use std::sync::OnceLock;

use crate::abi::{BorrowedBytes, HostApi, RawMetric, RawSpan, RawTraceContext, HOST_CORRELATION_ONLY, HOST_OK};

/// The host API. Its context is only ever used through the host's own thread-safe functions.
#[derive(Clone, Copy)]
pub(crate) struct Host(HostApi);

// SAFETY: the ABI requires the host's functions to be callable from any thread, and its context
// to stay valid while the library is loaded; we never dereference the context ourselves.
unsafe impl Send for Host {}
// SAFETY: as above.
unsafe impl Sync for Host {}

fn cell() -> &'static OnceLock<Host> {
    static HOST: OnceLock<Host> = OnceLock::new();
    &HOST
}

/// Keeps the host the bootstrap handed over (the body of `dd_lambda_attach_host`). The first
/// host wins: the bootstrap attaches once, and a second call cannot swap the functions under a
/// handler that is running.
///
/// # Safety
/// `api` is null or points to a [`HostApi`] whose functions and context stay valid while the
/// library is loaded.
pub(crate) unsafe fn attach(api: *const HostApi) {
    // SAFETY: guaranteed by the caller.
    if let Some(api) = unsafe { api.as_ref() } {
        let _ = cell().set(Host(*api));
    }
}

/// The attached host, `None` outside the bootstrap (tests, doctests, another loader).
pub(crate) fn host() -> Option<&'static Host> {
    cell().get()
}

impl Host {
    pub(crate) fn metric(&self, metric: &RawMetric) -> i32 {
        // SAFETY: a host function called as the ABI describes; `metric` and what it points to
        // are borrowed for the call.
        unsafe { (self.0.metric)(self.0.context, metric) }
    }

    pub(crate) fn trace_context(&self, request_id: &str) -> Option<RawTraceContext> {
        let (status, out) = self.raw_trace_context(request_id);
        (status == HOST_OK).then_some(out)
    }

    /// The ids a log line of `request_id` carries: its trace's, or, with tracing off and logs
    /// injection on, the correlation ids the host gives without a trace.
    pub(crate) fn log_correlation(&self, request_id: &str) -> Option<RawTraceContext> {
        let (status, out) = self.raw_trace_context(request_id);
        (status == HOST_OK || status == HOST_CORRELATION_ONLY).then_some(out)
    }

    fn raw_trace_context(&self, request_id: &str) -> (i32, RawTraceContext) {
        let mut out = RawTraceContext::default();
        // SAFETY: as in `metric`; `out` is writable.
        let status = unsafe { (self.0.trace_context)(self.0.context, BorrowedBytes::from_slice(request_id.as_bytes()), &raw mut out) };
        (status, out)
    }

    pub(crate) fn trace_headers(&self, request_id: &str, parent_span_id: u64) -> Vec<(String, String)> {
        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY: as in `metric`; the visitor receives `&mut headers`, alive for the whole call.
        unsafe {
            (self.0.trace_headers)(
                self.0.context,
                BorrowedBytes::from_slice(request_id.as_bytes()),
                parent_span_id,
                Some(collect_header),
                (&raw mut headers).cast::<c_void>(),
            )
        };
        headers
    }

    pub(crate) fn finish_span(&self, request_id: &str, span: &RawSpan) -> i32 {
        // SAFETY: as in `metric`.
        unsafe { (self.0.finish_span)(self.0.context, BorrowedBytes::from_slice(request_id.as_bytes()), span) }
    }

    pub(crate) fn set_api_key(&self, key: &str) -> i32 {
        // SAFETY: as in `metric`.
        unsafe { (self.0.set_api_key)(self.0.context, BorrowedBytes::from_slice(key.as_bytes())) }
    }
}

/// The [`crate::abi::HeaderVisitorFn`] given to the host: copies each header into the vector.
unsafe extern "C" fn collect_header(visitor: *mut c_void, name: BorrowedBytes, value: BorrowedBytes) {
    // SAFETY: `visitor` is the `&mut Vec` passed in `trace_headers`, alive during the host's
    // call, which is when the host calls us; name and value are borrowed for this call.
    let Some(headers) = (unsafe { visitor.cast::<Vec<(String, String)>>().as_mut() }) else {
        return;
    };
    // SAFETY: borrowed for this call, as the ABI says.
    let (name, value) = unsafe { (name.as_slice(), value.as_slice()) };
    headers.push((
        String::from_utf8_lossy(name).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collect_header_copies_and_ignores_a_null_visitor() {
        let mut headers: Vec<(String, String)> = Vec::new();
        // SAFETY: a live vector and borrowed bytes.
        unsafe {
            collect_header(
                (&raw mut headers).cast(),
                BorrowedBytes::from_slice(b"x-datadog-trace-id"),
                BorrowedBytes::from_slice(b"12345"),
            );
            collect_header(std::ptr::null_mut(), BorrowedBytes::empty(), BorrowedBytes::empty());
        }
        assert_eq!(headers, vec![("x-datadog-trace-id".to_owned(), "12345".to_owned())]);
    }

    #[test]
    fn a_null_host_attaches_nothing() {
        // SAFETY: null is allowed.
        unsafe { attach(std::ptr::null()) };
        assert!(host().is_none());
    }
}
