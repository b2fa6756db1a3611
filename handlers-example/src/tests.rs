//! The exported functions, called through their ABI symbols exactly as the bootstrap calls them.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use serde_json::{json, Value};

use sdk::abi::{BorrowedBytes, HandlerFn, OwnedBuffer, RawInvocation, STATUS_ERROR, STATUS_OK};

// The symbols `sdk::handler!` exported; linking against them proves their names.
extern "C" {
    fn dd_lambda_abi_version() -> u32;
    fn dd_lambda_free(buffer: OwnedBuffer);
    fn dd_lambda_init(error_out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_echo(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_handler(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_error(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_panic(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_sleep(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_big(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_typed(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_unserializable(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_raw_echo(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_async_echo(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_async_panic(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_async_sleep(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_context(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
    fn dd_lambda_handler_rendezvous(invocation: *const RawInvocation, out: *mut OwnedBuffer) -> i32;
}

/// Counts the bytes this thread holds, so a test can see every buffer come back.
struct CountingAllocator;

thread_local! {
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    let _ = LIVE_BYTES.try_with(|live| live.set(live.get() + delta));
}

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn live_bytes() -> isize {
    LIVE_BYTES.with(Cell::get)
}

const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";
const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:example";
const TRACE: &str = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

fn invocation(event: &[u8]) -> RawInvocation {
    RawInvocation {
        event: BorrowedBytes::from_slice(event),
        request_id: BorrowedBytes::from_slice(REQUEST_ID.as_bytes()),
        deadline_ms: 4_102_444_800_000, // 2100-01-01
        invoked_function_arn: BorrowedBytes::from_slice(ARN.as_bytes()),
        xray_trace_id: BorrowedBytes::from_slice(TRACE.as_bytes()),
        client_context: BorrowedBytes::empty(),
        cognito_identity: BorrowedBytes::empty(),
        tenant_id: BorrowedBytes::empty(),
    }
}

/// Calls a handler as the bootstrap does: copy the answer, hand the buffer back to the library.
fn call(handler: HandlerFn, event: &[u8]) -> (i32, Vec<u8>) {
    let raw = invocation(event);
    let mut out = OwnedBuffer::empty();
    // SAFETY: a valid invocation borrowed for the call and a writable output.
    let status = unsafe { handler(&raw const raw, &raw mut out) };
    // SAFETY: the library returned `len` initialised bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
    // SAFETY: the buffer came from this library and is not used again.
    unsafe { dd_lambda_free(out) };
    (status, bytes)
}

fn call_json(handler: HandlerFn, event: &Value) -> (i32, Value) {
    let (status, bytes) = call(handler, &serde_json::to_vec(event).unwrap());
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn assert_error_body(body: &Value, error_type: &str, message_part: &str) {
    assert_eq!(body["errorType"], error_type, "{body}");
    let message = body["errorMessage"].as_str().unwrap();
    assert!(message.contains(message_part), "{message:?} lacks {message_part:?}");
    assert_eq!(body["stackTrace"], json!([]), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 3, "{body}");
}

#[test]
fn abi_version_is_the_sdk_one() {
    // SAFETY: no arguments.
    assert_eq!(unsafe { dd_lambda_abi_version() }, sdk::abi::ABI_VERSION);
}

#[test]
fn echo_returns_the_event_bytes_unchanged() {
    let event = br#"{"b": [1, 2.5, "x"], "a": {"nested": null}}"#;
    for handler in [
        dd_lambda_handler_echo as HandlerFn,
        dd_lambda_handler_handler,
        dd_lambda_handler_async_echo,
    ] {
        let (status, body) = call(handler, event);
        assert_eq!(status, STATUS_OK);
        let expected: Value = serde_json::from_slice(event).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), expected);
    }
}

#[test]
fn raw_echo_returns_any_bytes_even_empty_or_not_json() {
    for event in [&b"not json \xff\x00"[..], b"", b"{\"k\": 1}"] {
        assert_eq!(call(dd_lambda_handler_raw_echo, event), (STATUS_OK, event.to_vec()));
    }
}

#[test]
fn error_is_typed_by_the_error_type_name() {
    let (status, body) = call_json(dd_lambda_handler_error, &json!({"message": "card declined"}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(&body, "handlers_example::ExampleError", "card declined");
    assert_eq!(body["errorMessage"], "card declined");
}

#[test]
fn panics_are_caught_sync_and_async() {
    let panic_type = "&alloc::boxed::Box<dyn core::any::Any + core::marker::Send>";
    let (status, body) = call_json(dd_lambda_handler_panic, &json!({}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(&body, panic_type, "Lambda panicked: the panic handler always panics");
    let (status, body) = call_json(dd_lambda_handler_async_panic, &json!({}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(&body, panic_type, "Lambda panicked: the async_panic handler always panics");
    // And the library still serves afterwards.
    assert_eq!(call_json(dd_lambda_handler_async_echo, &json!(1)), (STATUS_OK, json!(1)));
}

#[test]
fn typed_accepts_its_shape_and_refuses_others_before_running() {
    let (status, body) = call_json(dd_lambda_handler_typed, &json!({"id": 7, "items": ["a", "b"]}));
    assert_eq!((status, body), (STATUS_OK, json!({"id": 7, "item_count": 2})));

    let (status, body) = call_json(dd_lambda_handler_typed, &json!({"id": 7, "items": ["a", 2]}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(
        &body,
        "Runtime.UnmarshalError",
        "`handlers_example::Order`: [items[1]] invalid type: integer `2`",
    );

    let (status, body) = call_json(dd_lambda_handler_typed, &json!({"items": []}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(&body, "Runtime.UnmarshalError", "missing field `id`");
}

#[test]
fn empty_and_non_json_events_are_unmarshal_errors_for_json_handlers() {
    for handler in [dd_lambda_handler_echo as HandlerFn, dd_lambda_handler_async_echo] {
        let (status, body) = call(handler, b"");
        assert_eq!(status, STATUS_ERROR);
        assert_error_body(
            &serde_json::from_slice(&body).unwrap(),
            "Runtime.UnmarshalError",
            "the event is empty",
        );
        let (status, body) = call(handler, b"{oops");
        assert_eq!(status, STATUS_ERROR);
        assert_error_body(
            &serde_json::from_slice(&body).unwrap(),
            "Runtime.UnmarshalError",
            "key must be a string",
        );
    }
}

#[test]
fn unserializable_response_is_a_marshal_error() {
    let (status, body) = call_json(dd_lambda_handler_unserializable, &json!({}));
    assert_eq!(status, STATUS_ERROR);
    assert_error_body(&body, "Runtime.MarshalError", "Unable to marshal response: key must be a string");
}

#[test]
fn sleep_answers_how_long_it_slept() {
    let (status, body) = call_json(dd_lambda_handler_sleep, &json!({"ms": 20}));
    assert_eq!((status, body), (STATUS_OK, json!({"slept_ms": 20})));
    let (status, body) = call_json(dd_lambda_handler_async_sleep, &json!({"ms": 20}));
    assert_eq!((status, body), (STATUS_OK, json!({"slept_ms": 20})));
}

#[test]
fn big_answers_exactly_the_requested_number_of_bytes() {
    for size in [2usize, 3, 1000, 6 * 1024 * 1024] {
        let (status, body) = call(dd_lambda_handler_big, format!(r#"{{"bytes": {size}}}"#).as_bytes());
        assert_eq!(status, STATUS_OK);
        assert_eq!(body.len(), size);
        let text: String = serde_json::from_slice(&body).unwrap();
        assert!(text.bytes().all(|b| b == b'x'));
    }
    assert_eq!(call(dd_lambda_handler_big, br#"{"bytes": 0}"#), (STATUS_OK, b"\"\"".to_vec()));
}

#[test]
fn concurrent_async_calls_from_several_threads_overlap() {
    // Four short sleeps on four threads, side by side on the library's runtime. The
    // check is that all finish correctly; no timing assertion.
    let results: Vec<(i32, Value)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..4)
            .map(|i| scope.spawn(move || call_json(dd_lambda_handler_async_sleep, &json!({"ms": 30 + i}))))
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    for (i, result) in results.into_iter().enumerate() {
        assert_eq!(result, (STATUS_OK, json!({"slept_ms": 30 + i})));
    }
}

#[test]
fn every_answer_buffer_is_freed_by_dd_lambda_free() {
    let event = format!("\"{}\"", "7".repeat(256 * 1024)).into_bytes();
    // (handler, whether it panics)
    let handlers = [
        (dd_lambda_handler_echo as HandlerFn, false),
        (dd_lambda_handler_raw_echo, false),
        (dd_lambda_handler_error, false),
        (dd_lambda_handler_panic, true),
    ];
    // Warm up: the function configuration is read once for the process, and the first panic may
    // load the standard library's backtrace symbols, which it keeps.
    for (handler, _) in handlers {
        call(handler, &event);
    }

    for (handler, panics) in handlers {
        let before = live_bytes();
        let raw = invocation(&event);
        let mut out = OwnedBuffer::empty();
        // SAFETY: as in `call`.
        let status = unsafe { handler(&raw const raw, &raw mut out) };
        assert!(status == STATUS_OK || status == STATUS_ERROR);
        let held = live_bytes();
        let capacity = out.cap as isize;
        assert!(out.len > 0 && held - before >= capacity, "the answer is held until freed");
        // SAFETY: the buffer came from this library and is not used again.
        unsafe { dd_lambda_free(out) };
        assert_eq!(held - live_bytes(), capacity, "dd_lambda_free released the answer");
        // The panic hook may keep what it used to print the panic; nothing else may stay.
        if !panics {
            assert_eq!(live_bytes(), before, "everything the call allocated was released");
        }
    }
}

#[test]
fn init_succeeds_without_a_mode_and_reports_failures_as_error_bodies() {
    assert_eq!(crate::init_in_mode(None), Ok(()));
    assert_eq!(
        crate::init_in_mode(Some("fail")),
        Err(crate::ExampleError("init failed because HANDLERS_EXAMPLE_INIT=fail".into()))
    );
    if std::env::var(crate::INIT_MODE_VARIABLE).is_err() {
        let mut error = OwnedBuffer::empty();
        // SAFETY: a writable output.
        assert_eq!(unsafe { dd_lambda_init(&raw mut error) }, STATUS_OK);
        assert!(error.ptr.is_null(), "a successful init writes nothing");
    }
}

#[test]
fn context_answers_the_invocation_fields() {
    let (status, body) = call_json(dd_lambda_handler_context, &json!({}));
    assert_eq!(status, STATUS_OK, "{body}");
    assert_eq!(body["request_id"], REQUEST_ID);
    assert_eq!(body["deadline_ms"], 4_102_444_800_000u64);
    assert_eq!(body["invoked_function_arn"], ARN);
    assert_eq!(body["xray_trace_id"], TRACE);
    assert_eq!(body["client_context"], Value::Null);
    assert_eq!(body["identity"], Value::Null);
    assert_eq!(body["tenant_id"], Value::Null);
}

#[test]
fn rendezvous_meets_only_when_every_party_is_inside_at_once() {
    // Alone, a party of two never meets; it gives up after wait_ms.
    let (status, alone) = call_json(dd_lambda_handler_rendezvous, &json!({"parties": 2, "wait_ms": 0}));
    assert_eq!(status, STATUS_OK);
    assert_eq!(alone, json!({"met": false, "present": 1}));
    // Three threads inside at once meet, whatever order they arrive in.
    let threads: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(|| call_json(dd_lambda_handler_rendezvous, &json!({"parties": 3, "wait_ms": 60_000}))))
        .collect();
    for thread in threads {
        let (status, body) = thread.join().unwrap();
        assert_eq!(status, STATUS_OK);
        assert_eq!(body, json!({"met": true, "present": 3}));
    }
}
