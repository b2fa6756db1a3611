//! `libhandlers_example.so` loaded with libloading, as the bootstrap loads it: the exported
//! names, the ABI version, a call, and the init's failure modes.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::path::PathBuf;
use std::process::Command;

use libloading::{Library, Symbol};
use sdk::abi::{self, AbiVersionFn, BorrowedBytes, FreeFn, HandlerFn, InitFn, OwnedBuffer, RawInvocation};

/// `handlers_example::INIT_MODE_VARIABLE`, spelled out so this test does not link the rlib (and
/// its copies of the exported symbols) beside the library it loads.
const INIT_MODE_VARIABLE: &str = "HANDLERS_EXAMPLE_INIT";

/// The cdylib cargo built beside this test's executable (`target/<profile>/`).
fn library_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("libhandlers_example.so")
}

fn load() -> Library {
    let path = library_path();
    // SAFETY: loading our own handler library runs only its (Rust) initialisers.
    unsafe { Library::new(&path) }.unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// Copies the library's buffer and hands it back to the library's free function.
fn take(library: &Library, buffer: OwnedBuffer) -> Vec<u8> {
    if buffer.ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the library returned `len` initialised bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(buffer.ptr, buffer.len) }.to_vec();
    // SAFETY: the ABI's free function, given a buffer the library returned, once.
    unsafe {
        let free: Symbol<FreeFn> = library.get(abi::FREE_SYMBOL.as_bytes()).unwrap();
        free(buffer);
    }
    bytes
}

fn run_init(library: &Library) -> (i32, Vec<u8>) {
    // SAFETY: the symbol has the ABI's init type.
    let init: Symbol<InitFn> = unsafe { library.get(abi::INIT_SYMBOL.as_bytes()) }.unwrap();
    let mut error = OwnedBuffer::empty();
    // SAFETY: a writable output.
    let status = unsafe { init(&raw mut error) };
    (status, take(library, error))
}

#[test]
fn exports_the_abi_and_every_handler() {
    let library = load();
    // SAFETY (all `get`s): the symbols have the ABI's types.
    let version: Symbol<AbiVersionFn> = unsafe { library.get(abi::ABI_VERSION_SYMBOL.as_bytes()) }.unwrap();
    // SAFETY: no arguments.
    assert_eq!(unsafe { version() }, abi::ABI_VERSION);
    let names = [
        "handler",
        "echo",
        "error",
        "panic",
        "sleep",
        "big",
        "typed",
        "unserializable",
        "raw_echo",
        "async_echo",
        "async_panic",
        "async_sleep",
        "metric",
        "traced",
        "logs",
        "async_logs",
    ];
    for name in names {
        let symbol = format!("{}{name}", abi::HANDLER_SYMBOL_PREFIX);
        assert!(unsafe { library.get::<HandlerFn>(symbol.as_bytes()) }.is_ok(), "no export {symbol}");
    }
    assert!(unsafe { library.get::<HandlerFn>(b"dd_lambda_handler_nope") }.is_err());
    assert!(unsafe { library.get::<abi::AttachHostFn>(abi::ATTACH_HOST_SYMBOL.as_bytes()) }.is_ok());
}

#[test]
fn default_handler_echoes_and_async_panics_are_caught_through_dlopen() {
    let library = load();
    let call = |name: &str, event: &[u8]| {
        let symbol = format!("{}{name}", abi::HANDLER_SYMBOL_PREFIX);
        // SAFETY: the symbol has the ABI's handler type.
        let handler: Symbol<HandlerFn> = unsafe { library.get(symbol.as_bytes()) }.unwrap();
        let raw = RawInvocation {
            event: BorrowedBytes::from_slice(event),
            request_id: BorrowedBytes::from_slice(b"req-1"),
            deadline_ms: 4_102_444_800_000,
            invoked_function_arn: BorrowedBytes::from_slice(b"arn:aws:lambda:us-east-1:123456789012:function:f"),
            xray_trace_id: BorrowedBytes::empty(),
            client_context: BorrowedBytes::empty(),
            cognito_identity: BorrowedBytes::empty(),
            tenant_id: BorrowedBytes::empty(),
        };
        let mut out = OwnedBuffer::empty();
        // SAFETY: a valid invocation borrowed for the call and a writable output.
        let status = unsafe { handler(&raw const raw, &raw mut out) };
        (status, take(&library, out))
    };
    assert_eq!(
        call(abi::DEFAULT_HANDLER_NAME, br#"{"a":[1,2]}"#),
        (abi::STATUS_OK, br#"{"a":[1,2]}"#.to_vec())
    );
    let (status, body) = call("async_panic", b"{}");
    assert_eq!(status, abi::STATUS_ERROR);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["errorMessage"], "Lambda panicked: the async_panic handler always panics");
    assert_eq!(call("async_echo", b"[true]"), (abi::STATUS_OK, b"[true]".to_vec()));

    // No host attached (this test is not the bootstrap): telemetry calls say so, never crash.
    let (status, body) = call("metric", b"{}");
    assert_eq!(status, abi::STATUS_OK);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["sent"], false);
    assert!(body["error"].as_str().unwrap().contains("no host attached"), "{body}");
    let (status, body) = call("traced", b"{}");
    assert_eq!(status, abi::STATUS_OK);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["trace"], serde_json::Value::Null);
    assert_eq!(body["log_correlation"], "dd.trace_id=0 dd.span_id=0");
    for name in ["logs", "async_logs"] {
        let (status, body) = call(name, b"{}");
        assert_eq!(status, abi::STATUS_OK, "{name}");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["request_id"], "req-1", "{name}");
        assert_eq!(body["log_correlation"], "dd.trace_id=0 dd.span_id=0", "{name}");
    }
}

/// Runs the library's init with this process's environment and prints the outcome. The test
/// below runs it in child processes with `HANDLERS_EXAMPLE_INIT` set; run plainly, the variable
/// is unset and init succeeds.
#[test]
fn init_probe() {
    let (status, error) = run_init(&load());
    match std::env::var(INIT_MODE_VARIABLE) {
        // On a line of its own: the test harness prints `test init_probe ... ` first.
        Ok(mode) => println!("\nINIT_OUTCOME {mode} {status} {}", String::from_utf8_lossy(&error)),
        Err(_) => assert_eq!((status, error), (abi::STATUS_OK, Vec::new())),
    }
}

#[test]
fn init_fails_or_panics_as_the_environment_asks() {
    let expectations = [
        (
            "fail",
            "handlers_example::ExampleError",
            "init failed because HANDLERS_EXAMPLE_INIT=fail",
        ),
        (
            "panic",
            "&alloc::boxed::Box<dyn core::any::Any + core::marker::Send>",
            "Lambda panicked: init panicked because HANDLERS_EXAMPLE_INIT=panic",
        ),
    ];
    for (mode, error_type, message) in expectations {
        let output = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "init_probe", "--nocapture", "--test-threads=1"])
            .env(INIT_MODE_VARIABLE, mode)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout
            .lines()
            .find_map(|line| line.strip_prefix(&format!("INIT_OUTCOME {mode} ")))
            .unwrap_or_else(|| panic!("no outcome for {mode}: {stdout}"));
        let (status, body) = line.split_once(' ').unwrap();
        assert_eq!(status, abi::STATUS_ERROR.to_string());
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["errorType"], error_type, "{body}");
        assert_eq!(body["errorMessage"], message, "{body}");
    }
}
