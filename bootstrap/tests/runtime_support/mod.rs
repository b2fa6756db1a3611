//! Runs the real `bootstrap` binary as the runtime of the real `lambda-emulator`, with the
//! example handler library. Builds on `emulator_support` (every test file that uses this module
//! also declares `mod emulator_support;`).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::emulator_support::{EmulatorProcess, Reply};

/// A function timeout long enough that only the timeout tests ever reach it, even on a loaded
/// machine running debug builds.
pub const RELAXED_TIMEOUT: &str = "60";

pub fn bootstrap_binary() -> &'static str {
    env!("CARGO_BIN_EXE_bootstrap")
}

/// The directory cargo put the workspace's artifacts in (`target/debug`, or under
/// `CARGO_TARGET_DIR`): the one holding the `bootstrap` binary under test.
pub fn artifacts_dir() -> PathBuf {
    Path::new(bootstrap_binary()).parent().map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
        Path::to_path_buf,
    )
}

/// `libhandlers_example.so`, which `cargo test -p bootstrap` alone does not build.
pub fn example_library() -> PathBuf {
    let library = artifacts_dir().join("libhandlers_example.so");
    assert!(
        library.is_file(),
        "{} is missing: build the whole workspace first (`cargo build --workspace`, as scripts/test.sh does)",
        library.display()
    );
    library
}

/// `DD_LAMBDA_HANDLER` for one handler of the example library, by absolute path.
pub fn example_handler(name: &str) -> String {
    format!("{}:{name}", example_library().display())
}

/// `lambda-emulator FLAGS --env DD_LAMBDA_HANDLER=HANDLER -- bootstrap`, run in `task_root`.
pub fn start_in(task_root: &Path, handler: &str, flags: &[&str]) -> EmulatorProcess {
    let handler_env = format!("DD_LAMBDA_HANDLER={handler}");
    let mut all_flags: Vec<&str> = flags.to_vec();
    all_flags.extend(["--env", &handler_env]);
    EmulatorProcess::start_in(task_root, &all_flags, &[bootstrap_binary()])
}

/// As [`start_in`], in the system's temporary directory.
pub fn start(handler: &str, flags: &[&str]) -> EmulatorProcess {
    start_in(&std::env::temp_dir(), handler, flags)
}

/// The lines the runtime wrote to stderr (the emulator's own lines carry its prefix).
pub fn runtime_stderr_lines(emulator: &EmulatorProcess) -> Vec<String> {
    emulator
        .stderr
        .text()
        .lines()
        .filter(|line| !line.starts_with("[lambda-emulator]") && !line.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Waits for a runtime stderr line that `matches`: the emulator relays the runtime's output
/// on its own schedule, so a line may arrive after the invoke's answer.
pub fn wait_for_runtime_line(emulator: &EmulatorProcess, what: &str, matches: impl Fn(&str) -> bool) -> String {
    wait_until(Duration::from_secs(20), what, || {
        runtime_stderr_lines(emulator).into_iter().find(|line| matches(line))
    })
}

/// An invoke that the function answered with an error: asserts Lambda's shape and returns the
/// error body.
pub fn function_error(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"), "{}", reply.text());
    assert!(reply.header("x-amzn-requestid").is_some_and(|id| !id.is_empty()));
    reply.json()
}

/// An invoke that the function answered without error: returns the body.
pub fn function_response(reply: &Reply) -> serde_json::Value {
    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.text());
    assert_eq!(reply.header("x-amz-function-error"), None, "{}", reply.text());
    assert!(reply.header("x-amzn-requestid").is_some_and(|id| !id.is_empty()));
    reply.json()
}

/// Every invoke got exactly one answer from the runtime, and no answer was refused (so none
/// was sent twice), all from one runtime process.
pub async fn assert_one_answer_each_from_one_process(emulator: &EmulatorProcess, invokes: u64) {
    let stats = emulator.stats().await;
    assert_eq!(stats["invokes_received"], invokes, "{stats}");
    assert_eq!(stats["answers_delivered"], invokes, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
    assert_eq!(stats["runtime_exits"], 0, "{stats}");
    assert_eq!(stats["timeouts"], 0, "{stats}");
}

/// Polls `read` until it returns `Some`, for at most `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut read: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = read() {
            return value;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
