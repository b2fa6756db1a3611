//! The glue the export macros expand to: one ABI call, from raw pointers to the user's function
//! and back to a buffer. Not a public API: reached through [`crate::handler!`],
//! [`crate::init!`] and [`crate::export_abi!`] only.
//!
//! Every entry point catches panics (in decoding, the handler, an async handler's polling, and
//! encoding) so none crosses the C boundary, and answers with an [`OwnedBuffer`] that only
//! [`free`] (the library's `dd_lambda_free`) may release.
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::abi::{OwnedBuffer, RawInvocation, STATUS_ERROR, STATUS_OK};
use crate::diagnostic::{MARSHAL_ERROR_TYPE, UNMARSHAL_ERROR_TYPE};
use crate::{Context, Diagnostic};

/// A JSON handler: `fn(E, Context) -> Result<R, Er>`.
///
/// # Safety
/// `invocation` and `out` come from the bootstrap as the ABI describes: `invocation` points to a
/// valid [`RawInvocation`] whose borrowed fields outlive the call; `out` is writable.
pub unsafe fn json<E, R, Er, F>(invocation: *const RawInvocation, out: *mut OwnedBuffer, handler: F) -> i32
where
    E: DeserializeOwned,
    R: Serialize,
    Er: Into<Diagnostic>,
    F: FnOnce(E, Context) -> Result<R, Er>,
{
    // SAFETY: forwarded from our caller.
    unsafe {
        serve(invocation, out, |event, context| {
            let event = decode::<E>(event)?;
            let response = handler(event, context).map_err(Into::into)?;
            encode(&response)
        })
    }
}

/// An async JSON handler: `async fn(E, Context) -> Result<R, Er>`.
///
/// # Safety
/// As [`json`].
#[cfg(feature = "async")]
pub unsafe fn json_async<E, R, Er, Fut, F>(invocation: *const RawInvocation, out: *mut OwnedBuffer, handler: F) -> i32
where
    E: DeserializeOwned,
    R: Serialize,
    Er: Into<Diagnostic>,
    Fut: std::future::Future<Output = Result<R, Er>>,
    F: FnOnce(E, Context) -> Fut,
{
    // SAFETY: forwarded from our caller.
    unsafe {
        serve(invocation, out, |event, context| {
            let event = decode::<E>(event)?;
            let response = crate::executor::block_on(handler(event, context))?.map_err(Into::into)?;
            encode(&response)
        })
    }
}

/// A raw handler: `fn(&[u8] or Vec<u8>, Context) -> Result<impl Into<Vec<u8>>, Er>`; the event
/// and the response are the Runtime API's bytes, untouched.
///
/// # Safety
/// As [`json`].
pub unsafe fn raw<'a, I, R, Er, F>(invocation: *const RawInvocation, out: *mut OwnedBuffer, handler: F) -> i32
where
    I: RawEvent<'a>,
    R: Into<Vec<u8>>,
    Er: Into<Diagnostic>,
    F: FnOnce(I, Context) -> Result<R, Er>,
{
    // SAFETY: forwarded from our caller.
    unsafe {
        serve(invocation, out, |event, context| {
            handler(I::from_event(event), context).map(Into::into).map_err(Into::into)
        })
    }
}

/// An async raw handler.
///
/// # Safety
/// As [`json`].
#[cfg(feature = "async")]
pub unsafe fn raw_async<'a, I, R, Er, Fut, F>(invocation: *const RawInvocation, out: *mut OwnedBuffer, handler: F) -> i32
where
    I: RawEvent<'a>,
    R: Into<Vec<u8>>,
    Er: Into<Diagnostic>,
    Fut: std::future::Future<Output = Result<R, Er>>,
    F: FnOnce(I, Context) -> Fut,
{
    // SAFETY: forwarded from our caller.
    unsafe {
        serve(invocation, out, |event, context| {
            crate::executor::block_on(handler(I::from_event(event), context))?
                .map(Into::into)
                .map_err(Into::into)
        })
    }
}

/// The library's init: `fn() -> Result<(), Er>`. On failure `out` receives the error body.
///
/// # Safety
/// `out` is writable, as the ABI describes.
pub unsafe fn init<Er, F>(out: *mut OwnedBuffer, init: F) -> i32
where
    Er: Into<Diagnostic>,
    F: FnOnce() -> Result<(), Er>,
{
    let result = catching_panics(|| init().map_err(Into::into));
    // SAFETY: forwarded from our caller.
    unsafe { finish_init(out, result) }
}

/// The library's async init: `async fn() -> Result<(), Er>`, run on the library's runtime.
///
/// # Safety
/// As [`init`].
#[cfg(feature = "async")]
pub unsafe fn init_async<Er, Fut, F>(out: *mut OwnedBuffer, init: F) -> i32
where
    Er: Into<Diagnostic>,
    Fut: std::future::Future<Output = Result<(), Er>>,
    F: FnOnce() -> Fut,
{
    let result = catching_panics(|| crate::executor::block_on(init())?.map_err(Into::into));
    // SAFETY: forwarded from our caller.
    unsafe { finish_init(out, result) }
}

/// Keeps the bootstrap's host API (the body of `dd_lambda_attach_host`).
///
/// # Safety
/// `host` is null or valid while the library is loaded.
pub unsafe fn attach_host(host: *const crate::abi::HostApi) {
    // SAFETY: forwarded from our caller.
    unsafe { crate::host::attach(host) }
}

/// Releases a buffer this library returned (the body of `dd_lambda_free`).
///
/// # Safety
/// `buffer` was returned by this library and is not used again.
pub unsafe fn free(buffer: OwnedBuffer) {
    // SAFETY: the buffer came from `OwnedBuffer::from_vec` in this library (see `write`).
    drop(unsafe { buffer.into_vec() });
}

/// An event type a raw handler can take: the borrowed bytes, or an owned copy.
pub trait RawEvent<'a> {
    /// Builds the handler's argument from the event bytes.
    fn from_event(event: &'a [u8]) -> Self;
}

impl<'a> RawEvent<'a> for &'a [u8] {
    fn from_event(event: &'a [u8]) -> Self {
        event
    }
}

impl RawEvent<'_> for Vec<u8> {
    fn from_event(event: &[u8]) -> Self {
        event.to_vec()
    }
}

/// Reads the invocation, runs `call` with panics caught, and writes its answer to `out`.
///
/// # Safety
/// As [`json`]. `'a` is the call's duration: the event must not escape `call`.
unsafe fn serve<'a>(
    invocation: *const RawInvocation,
    out: *mut OwnedBuffer,
    call: impl FnOnce(&'a [u8], Context) -> Result<Vec<u8>, Diagnostic>,
) -> i32 {
    let result = catching_panics(|| {
        // SAFETY: the bootstrap passes a valid invocation, or null which we refuse.
        let invocation = unsafe { invocation.as_ref() }
            .ok_or_else(|| Diagnostic::new("Runtime.InvalidInvocation", "the bootstrap passed no invocation"))?;
        let context = Context::from_raw(invocation)?;
        // The call is the invocation: records logged on this thread meanwhile carry its ids.
        let mut logging_invocation = Some(crate::logging::Invocation::new(&context.request_id));
        let _current = crate::logging::enter(&mut logging_invocation);
        // SAFETY: the event is borrowed for this call, which `'a` stands for.
        let event = unsafe { invocation.event.as_slice() };
        call(event, context)
    });
    let (status, body) = match result {
        Ok(response) => (STATUS_OK, response),
        Err(diagnostic) => (STATUS_ERROR, diagnostic.to_json()),
    };
    // SAFETY: forwarded from our caller.
    unsafe { write(out, body) };
    status
}

/// Writes an init's answer: nothing on success, the error body on failure.
///
/// # Safety
/// As [`init`].
unsafe fn finish_init(out: *mut OwnedBuffer, result: Result<(), Diagnostic>) -> i32 {
    match result {
        Ok(()) => STATUS_OK,
        Err(diagnostic) => {
            // SAFETY: forwarded from our caller.
            unsafe { write(out, diagnostic.to_json()) };
            STATUS_ERROR
        }
    }
}

/// Hands `bytes` to the bootstrap, which gives them back through `dd_lambda_free`.
///
/// # Safety
/// `out` is null (nothing is written) or writable.
unsafe fn write(out: *mut OwnedBuffer, bytes: Vec<u8>) {
    if out.is_null() {
        return;
    }
    // SAFETY: `out` is writable; `write` does not read (or drop) whatever it held.
    unsafe { out.write(OwnedBuffer::from_vec(bytes)) };
}

/// Runs `f`, turning a panic into the error AWS's `lambda_runtime` reports for one.
fn catching_panics<T>(f: impl FnOnce() -> Result<T, Diagnostic>) -> Result<T, Diagnostic> {
    // AssertUnwindSafe: nothing `f` touches is used after a panic except the payload.
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| Err(Diagnostic::from_panic(&payload)))
}

/// Deserialises an event. An empty event is an error, as with `lambda_runtime`: zero bytes are
/// not JSON (handlers that accept anything take raw bytes).
fn decode<E: DeserializeOwned>(event: &[u8]) -> Result<E, Diagnostic> {
    // Tracking the path of every key costs more than the parse itself (an allocation per key),
    // and only a failure needs it: a good event is parsed once, plainly; a bad one again, for
    // the error message that names where it went wrong.
    serde_json::from_slice(event).or_else(|_| decode_for_diagnostic(event))
}

/// [`decode`]'s second pass over an event that failed: the same parse, with the path of the
/// failing field and the payload type named in the error.
#[cold]
fn decode_for_diagnostic<E: DeserializeOwned>(event: &[u8]) -> Result<E, Diagnostic> {
    let what = format!(
        "failed to deserialize the incoming data into the function's payload type `{}`",
        std::any::type_name::<E>()
    );
    if event.is_empty() {
        return Err(Diagnostic::new(
            UNMARSHAL_ERROR_TYPE,
            format!("{what}: the event is empty (0 bytes), which is not JSON"),
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(event);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let message = if path == "." {
            format!("{what}: {}", e.inner())
        } else {
            format!("{what}: [{path}] {}", e.inner())
        };
        Diagnostic::new(UNMARSHAL_ERROR_TYPE, message)
    })?;
    // Trailing bytes after the value are an error too, as with `serde_json::from_slice`.
    deserializer
        .end()
        .map_err(|e| Diagnostic::new(UNMARSHAL_ERROR_TYPE, format!("{what}: {e}")))?;
    Ok(value)
}

fn encode<R: Serialize>(response: &R) -> Result<Vec<u8>, Diagnostic> {
    serde_json::to_vec(response).map_err(|e| Diagnostic::new(MARSHAL_ERROR_TYPE, format!("Unable to marshal response: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: u32,
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        sku: String,
    }

    #[test]
    fn decode_names_the_type_and_the_failing_field() {
        let error = decode::<Order>(br#"{"id": 1, "items": [{"sku": "a"}, {"sku": 2}]}"#).unwrap_err();
        assert_eq!(error.error_type, "Runtime.UnmarshalError");
        assert!(
            error.error_message.contains("`sdk::serve::tests::Order`"),
            "{}",
            error.error_message
        );
        assert!(
            error.error_message.contains("[items[1].sku] invalid type: integer `2`"),
            "{}",
            error.error_message
        );
    }

    #[test]
    fn decode_refuses_empty_and_trailing_bytes() {
        let empty = decode::<serde_json::Value>(b"").unwrap_err();
        assert!(
            empty.error_message.ends_with("the event is empty (0 bytes), which is not JSON"),
            "{}",
            empty.error_message
        );
        let trailing = decode::<serde_json::Value>(b"{} x").unwrap_err();
        assert!(trailing.error_message.contains("trailing characters"), "{}", trailing.error_message);
        assert_eq!(decode::<Option<u8>>(b"null").unwrap(), None);
    }

    #[test]
    fn encode_failure_is_a_marshal_error() {
        let map: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into_iter().collect();
        let error = encode(&map).unwrap_err();
        assert_eq!(error.error_type, "Runtime.MarshalError");
        assert_eq!(error.error_message, "Unable to marshal response: key must be a string");
    }

    #[test]
    fn a_null_invocation_is_refused_without_crashing() {
        let mut out = OwnedBuffer::empty();
        // SAFETY: null is the case under test; `out` is writable.
        let status = unsafe { json(std::ptr::null(), &raw mut out, |e: u8, _| Ok::<_, Diagnostic>(e)) };
        assert_eq!(status, STATUS_ERROR);
        // SAFETY: the buffer came from this library.
        let body: serde_json::Value = serde_json::from_slice(&unsafe { out.into_vec() }).unwrap();
        assert_eq!(body["errorType"], "Runtime.InvalidInvocation");
    }

    fn error_body(out: OwnedBuffer) -> Diagnostic {
        // SAFETY: the buffer came from this library.
        serde_json::from_slice(&unsafe { out.into_vec() }).unwrap()
    }

    #[test]
    fn init_success_writes_nothing_and_failures_write_an_error_body() {
        let mut out = OwnedBuffer::empty();
        // SAFETY: `out` is writable.
        assert_eq!(unsafe { init(&raw mut out, || Ok::<(), Diagnostic>(())) }, STATUS_OK);
        assert!(out.ptr.is_null());

        // SAFETY: as above.
        assert_eq!(unsafe { init(&raw mut out, || Err("no table configured")) }, STATUS_ERROR);
        assert_eq!(error_body(out), Diagnostic::new("&str", "no table configured"));

        let mut out = OwnedBuffer::empty();
        // SAFETY: as above.
        let status = unsafe { init(&raw mut out, || -> Result<(), Diagnostic> { panic!("config missing") }) };
        assert_eq!(status, STATUS_ERROR);
        assert_eq!(error_body(out).error_message, "Lambda panicked: config missing");
    }

    #[cfg(feature = "async")]
    #[test]
    fn async_init_and_async_raw_handlers_run_on_the_library_runtime() {
        let mut out = OwnedBuffer::empty();
        // SAFETY: `out` is writable.
        let status = unsafe {
            init_async(&raw mut out, || async {
                tokio::task::yield_now().await;
                Err::<(), _>(Diagnostic::new("InitError", "late failure"))
            })
        };
        assert_eq!(status, STATUS_ERROR);
        assert_eq!(error_body(out), Diagnostic::new("InitError", "late failure"));

        let event = b"\x00raw\xff";
        let invocation = RawInvocation {
            event: crate::abi::BorrowedBytes::from_slice(event),
            request_id: crate::abi::BorrowedBytes::from_slice(b"req"),
            deadline_ms: 0,
            invoked_function_arn: crate::abi::BorrowedBytes::empty(),
            xray_trace_id: crate::abi::BorrowedBytes::empty(),
            client_context: crate::abi::BorrowedBytes::empty(),
            cognito_identity: crate::abi::BorrowedBytes::empty(),
            tenant_id: crate::abi::BorrowedBytes::empty(),
        };
        let mut out = OwnedBuffer::empty();
        // SAFETY: a valid invocation and a writable output.
        let status = unsafe {
            raw_async(&raw const invocation, &raw mut out, |event: Vec<u8>, context: Context| async move {
                tokio::task::yield_now().await;
                let mut answer = context.request_id.into_bytes();
                answer.extend(event);
                Ok::<_, Diagnostic>(answer)
            })
        };
        assert_eq!(status, STATUS_OK);
        // SAFETY: the buffer came from this library.
        assert_eq!(unsafe { out.into_vec() }, b"req\x00raw\xff");
    }
}
