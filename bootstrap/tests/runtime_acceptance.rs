//! Issue 3's acceptance, as a user would try it: the real `bootstrap` under the real
//! `lambda-emulator`, with `libhandlers_example.so`.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod runtime_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use emulator_support::{runtime_fixture, wait_for_stat, EmulatorProcess};
use runtime_support::*;
use serde_json::json;

#[tokio::test]
async fn echo_answers_the_event_with_a_request_id() {
    let emulator = start(&example_handler("echo"), &["--timeout", RELAXED_TIMEOUT]);
    let event = json!({"order": {"id": 7, "items": ["a", "b"]}, "unicode": "été", "n": null});
    let first = emulator.invoke(&event.to_string()).await;
    assert_eq!(function_response(&first), event);
    let second = emulator.invoke(r#"[1, 2.5, "x"]"#).await;
    assert_eq!(function_response(&second), json!([1, 2.5, "x"]));
    let (first_id, second_id) = (
        first.header("x-amzn-requestid").unwrap(),
        second.header("x-amzn-requestid").unwrap(),
    );
    assert_eq!(first_id.len(), 36, "{first_id}");
    assert_ne!(first_id, second_id);
    assert_one_answer_each_from_one_process(&emulator, 2).await;
}

#[tokio::test]
async fn sync_and_async_panics_answer_an_error_and_the_process_serves_on() {
    for (handler, message) in [
        ("panic", "Lambda panicked: the panic handler always panics"),
        ("async_panic", "Lambda panicked: the async_panic handler always panics"),
    ] {
        let emulator = start(
            &example_handler(handler),
            &["--timeout", RELAXED_TIMEOUT, "--env", "RUST_BACKTRACE=0"],
        );
        for _ in 0..3 {
            let body = function_error(&emulator.invoke("{}").await);
            assert_eq!(body["errorMessage"], message, "{body}");
            assert!(body["errorType"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
        }
        // Three answers from the one process the emulator started: the panics did not end it.
        assert_one_answer_each_from_one_process(&emulator, 3).await;
    }
}

#[tokio::test]
async fn sleep_past_the_timeout_is_sandbox_timedout_and_the_next_invoke_works() {
    let emulator = start(&example_handler("sleep"), &["--timeout", "1"]);
    let reply = emulator.invoke(r#"{"ms": 5000}"#).await;
    let request_id = reply.header("x-amzn-requestid").unwrap().to_owned();
    let body = function_error(&reply);
    assert_eq!(body["errorType"], "Sandbox.Timedout");
    assert_eq!(body["errorMessage"], format!("{request_id} Task timed out after 1.00 seconds"));
    // The bootstrap saw the deadline coming and said so (its telemetry flush hook) before the kill.
    wait_for_runtime_line(&emulator, "the bootstrap's timeout warning", |line| {
        line.contains("WARN") && line.contains(&request_id)
    });

    let next = emulator.invoke(r#"{"ms": 1}"#).await;
    assert_eq!(function_response(&next), json!({"slept_ms": 1}));
    let stats = emulator.stats().await;
    assert_eq!(stats["timeouts"], 1, "{stats}");
    // A timeout kills the runtime; the next invoke was served by a fresh one (a cold start).
    assert_eq!(stats["runtime_starts"], 2, "{stats}");
    assert_eq!(stats["answers_delivered"], 1, "{stats}");
    assert_eq!(stats["answers_refused"], 0, "{stats}");
}

#[tokio::test]
async fn a_bare_library_name_resolves_in_the_task_root_and_picks_handler() {
    let task_root = tempfile::tempdir().unwrap();
    std::fs::copy(example_library(), task_root.path().join("libapp.so")).unwrap();
    let emulator = start_in(task_root.path(), "libapp.so", &["--timeout", RELAXED_TIMEOUT]);
    // `handler` is the example library's echo.
    let reply = emulator.invoke(r#"{"picked": "handler"}"#).await;
    assert_eq!(function_response(&reply), json!({"picked": "handler"}));
    assert_one_answer_each_from_one_process(&emulator, 1).await;
}

/// What a runtime that cannot start left behind.
struct InitFailure {
    /// The invoke's answer: the error the runtime posted to `/init/error`.
    error: serde_json::Value,
    /// The bootstrap's own ERROR lines, across every start.
    error_lines: Vec<String>,
    /// How each bootstrap process exited.
    exit_statuses: Vec<String>,
    stats: serde_json::Value,
}

/// Starts the bootstrap with `handler` (through a wrapper that records its exit status), lets
/// the init phase fail, then invokes: the invoke's runtime fails its init too.
async fn init_failure(task_root: &Path, handler: &str, extra_flags: &[&str]) -> InitFailure {
    let statuses = tempfile::NamedTempFile::new().unwrap();
    let status_env = format!("EXIT_STATUS_FILE={}", statuses.path().display());
    let handler_env = format!("DD_LAMBDA_HANDLER={handler}");
    let mut flags = vec!["--timeout", RELAXED_TIMEOUT, "--env", &status_env, "--env", &handler_env];
    flags.extend_from_slice(extra_flags);
    let recorder = runtime_fixture("exit_status_recorder.sh");
    let emulator = EmulatorProcess::start_in(task_root, &flags, &["/bin/sh", &recorder, bootstrap_binary()]);
    // The init phase's runtime reports its failure before any invoke...
    wait_for_stat(&emulator, "init_errors", 1).await;
    // ...so the invoke starts a second one, which fails the same way and answers the invoke.
    let reply = emulator.invoke("{}").await;
    let error = function_error(&reply);
    let read_statuses = || std::fs::read_to_string(statuses.path()).unwrap();
    wait_until(Duration::from_secs(20), "both runtimes to exit", || {
        (read_statuses().lines().count() >= 2).then_some(())
    });
    let stats = emulator.stats().await;
    // Both processes have exited, so their lines are written; wait for the relay to pass them on.
    let error_lines = wait_until(Duration::from_secs(20), "an ERROR line from each bootstrap", || {
        let lines: Vec<String> = runtime_stderr_lines(&emulator)
            .into_iter()
            .filter(|line| line.contains("ERROR"))
            .collect();
        (lines.len() >= 2).then_some(lines)
    });
    InitFailure {
        error,
        error_lines,
        exit_statuses: read_statuses().lines().map(str::to_owned).collect(),
        stats,
    }
}

/// The checks every init failure shares: `/init/error` reached the emulator for each start, the
/// invoke got that error, each process said it once on stderr and exited non-zero.
fn assert_init_failed(failure: &InitFailure, error_type: &str, mentions: &[&str]) {
    assert_eq!(failure.error["errorType"], error_type, "{}", failure.error);
    let message = failure.error["errorMessage"].as_str().unwrap();
    for needle in mentions {
        assert!(message.contains(needle), "{message:?} does not mention {needle:?}");
    }
    assert_eq!(failure.stats["init_errors"], 2, "{}", failure.stats);
    assert_eq!(failure.stats["runtime_starts"], 2, "{}", failure.stats);
    assert_eq!(failure.stats["answers_delivered"], 0, "{}", failure.stats);
    assert_eq!(failure.exit_statuses, vec!["1", "1"], "each bootstrap exits 1");
    assert_eq!(failure.error_lines.len(), 2, "one ERROR line per start: {:#?}", failure.error_lines);
    for line in &failure.error_lines {
        assert!(line.contains(error_type), "{line}");
        for needle in mentions {
            assert!(line.contains(needle), "{line:?} does not mention {needle:?}");
        }
    }
}

#[tokio::test]
async fn a_missing_library_is_an_init_error_naming_the_path() {
    let missing = "/nonexistent/dir/libmissing.so";
    let failure = init_failure(&std::env::temp_dir(), &format!("{missing}:echo"), &[]).await;
    assert_init_failed(&failure, "Runtime.HandlerNotFound", &[missing]);
}

#[tokio::test]
async fn a_missing_handler_name_is_handler_not_found() {
    let library = example_library();
    let failure = init_failure(&std::env::temp_dir(), &format!("{}:nope", library.display()), &[]).await;
    let library = library.display().to_string();
    assert_init_failed(
        &failure,
        "Runtime.HandlerNotFound",
        &[&library, "\"nope\"", "dd_lambda_handler_nope"],
    );
}

#[tokio::test]
async fn a_file_that_is_not_a_shared_library_is_an_invalid_entrypoint_with_the_dlopen_text() {
    let task_root = tempfile::tempdir().unwrap();
    let path = task_root.path().join("libnotalib.so");
    std::fs::write(
        &path,
        "this text file is long enough to have an ELF header's size, but none.\n".repeat(4),
    )
    .unwrap();
    // What dlopen itself says about this file, as the test's own process sees it.
    // SAFETY: the file is not a library, so nothing is loaded and no initialiser runs.
    let Err(dlopen_error) = (unsafe { libloading::Library::new(&path) }) else {
        panic!("a text file loaded as a library");
    };
    let dlopen_text = dlopen_error.to_string();
    let failure = init_failure(task_root.path(), "libnotalib.so", &[]).await;
    let shown = path.display().to_string();
    assert_init_failed(&failure, "Runtime.InvalidEntrypoint", &[&shown, &dlopen_text]);
}

/// A real shared library, compiled from C, that exports nothing of the handler ABI.
fn plain_c_library(dir: &Path) -> PathBuf {
    let source = dir.join("plain.c");
    std::fs::write(&source, "int plain_answer(void) { return 42; }\n").unwrap();
    let library = dir.join("libplain.so");
    // `cc` is the linker rustc itself uses, so it is there wherever these tests build.
    let status = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&source)
        .status()
        .expect("cc runs");
    assert!(status.success(), "cc could not build {}", library.display());
    library
}

#[tokio::test]
async fn a_library_without_the_abi_symbol_is_an_invalid_entrypoint() {
    let task_root = tempfile::tempdir().unwrap();
    let library = plain_c_library(task_root.path()).display().to_string();
    let failure = init_failure(task_root.path(), "libplain.so:handler", &[]).await;
    assert_init_failed(&failure, "Runtime.InvalidEntrypoint", &[&library, sdk::abi::ABI_VERSION_SYMBOL]);
}

#[tokio::test]
async fn a_failing_init_is_an_init_error() {
    let failure = init_failure(
        &std::env::temp_dir(),
        &example_handler("echo"),
        &["--env", "HANDLERS_EXAMPLE_INIT=fail"],
    )
    .await;
    assert_init_failed(&failure, "Runtime.InitError", &["init failed because HANDLERS_EXAMPLE_INIT=fail"]);
}

#[tokio::test]
async fn a_panicking_init_is_an_init_error() {
    let failure = init_failure(
        &std::env::temp_dir(),
        &example_handler("echo"),
        &["--env", "HANDLERS_EXAMPLE_INIT=panic", "--env", "RUST_BACKTRACE=0"],
    )
    .await;
    assert_init_failed(
        &failure,
        "Runtime.InitError",
        &["init panicked because HANDLERS_EXAMPLE_INIT=panic"],
    );
}

#[tokio::test]
async fn an_executable_handler_value_is_an_init_error_naming_it() {
    // Not `*.so`: an executable handler. The assertion holds for both "not supported yet" and
    // "cannot start it" (this path does not exist).
    let command = "/nonexistent/handler-binary";
    let failure = init_failure(&std::env::temp_dir(), command, &[]).await;
    assert_init_failed(&failure, "Runtime.InvalidEntrypoint", &[command]);
}

#[tokio::test]
async fn no_handler_configured_is_an_init_error() {
    // DD_LAMBDA_HANDLER set but blank, and no _HANDLER: nothing to run.
    let failure = init_failure(&std::env::temp_dir(), " ", &["--env", "_HANDLER="]).await;
    assert_init_failed(&failure, "Runtime.HandlerNotFound", &["DD_LAMBDA_HANDLER"]);
}
