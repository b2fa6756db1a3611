//! Exec mode end to end with this suite's own child runtimes (`tests/fixtures/exec/`: bash +
//! curl, and Python's standard library), which can misbehave in every way a runtime can.
//!
//! cargo-lambda answers 500 to every streamed response on its invoke API whoever sends it, and
//! has no invoke timeout that resets the runtime, so streaming and timeouts are tested on
//! `lambda-emulator` only.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod exec_support;

use exec_support::{contains, curl, text, Emulator, Function, EMULATORS};

const BASH: &str = "./bash_runtime.sh";
const PYTHON: &str = "python3 python_runtime.py";

#[test]
fn echo_error_and_crashes_through_both_runtimes() {
    for emulator in EMULATORS {
        for handler in [BASH, PYTHON] {
            let function = Function::start(emulator, handler, &[]);
            let event = r#"{"hello": "wörld", "list": [1, 2]}"#;
            assert_eq!(function.invoke(event).ok_body(), event.as_bytes(), "{emulator:?} {handler}");
        }

        // The error body reaches the caller exactly as the child posted it.
        let function = Function::start(emulator, BASH, &[]);
        let answer = function.invoke(r#"{"action":"error"}"#);
        assert!(answer.is_function_error());
        assert_eq!(
            text(&answer.body),
            r#"{"errorMessage":"the event asked for an error","errorType":"HandlerError","stackTrace":["runtime.sh:42"]}"#
        );

        for (event, wording) in [
            (r#"{"action":"exit1"}"#, "Runtime exited with error: exit status 1"),
            (r#"{"action":"segv"}"#, "Runtime exited with error: signal: segmentation fault"),
            (r#"{"action":"sigkill"}"#, "Runtime exited with error: signal: killed"),
        ] {
            let error = function.invoke(event).error();
            assert_eq!(error["errorType"], "Runtime.ExitError", "{emulator:?}");
            let message = error["errorMessage"].as_str().unwrap();
            assert!(
                message.starts_with("RequestId: ") && message.ends_with(&format!(" Error: {wording}")),
                "{message}"
            );
            // The child was started again: the next invoke works.
            assert_eq!(function.invoke(r#""again""#).ok_body(), br#""again""#);
        }
        // The child's last lines are relayed by the bootstrap and, under our emulator, by the
        // emulator too, each on its own schedule: waited for, not assumed.
        for line in ["last stdout line before exit 1\n", "partial line before SIGSEGV\n"] {
            let stdout = function.wait_for_stdout(line.as_bytes());
            assert!(
                contains(&stdout, line.as_bytes()),
                "{emulator:?}: no {line:?} on stdout:\n{}",
                text(&stdout)
            );
        }
        let stderr = function.wait_for_stderr("last stderr line before exit 1\n");
        assert!(stderr.contains("last stderr line before exit 1\n"), "{emulator:?}: {stderr}");
    }
}

#[test]
fn output_lines_of_a_megabyte_and_raw_bytes_reach_stdout() {
    for emulator in EMULATORS {
        // The lines as the child wrote them: logs injection, on by default even with tracing off,
        // would put the invocation's ids in front (exec_telemetry tests that).
        let function = Function::start(emulator, BASH, &[("DD_LOGS_INJECTION", "false")]);
        function.invoke(r#"{"action":"bigline"}"#).ok_body();
        function.invoke(r#"{"action":"nonutf8"}"#).ok_body();
        function.wait_for_stdout_line(&vec![b'x'; 1024 * 1024 + 1]);
        function.wait_for_stdout_line(b"bytes \xff\xfe\x80 end");
    }
}

#[test]
fn bad_requests_from_the_child_get_400_and_invocations_one_answer() {
    for emulator in EMULATORS {
        // Its summary line as the child wrote it (see above).
        let function = Function::start(emulator, BASH, &[("DD_LOGS_INJECTION", "false")]);
        assert_eq!(
            function.invoke(r#"{"action":"unknown-id"}"#).ok_body(),
            br#"{"unknown_id_status":400}"#
        );
        assert_eq!(function.invoke(r#"{"action":"twice"}"#).ok_body(), br#""first answer""#);
        assert_eq!(
            function.invoke(r#"{"action":"garbage"}"#).ok_body(),
            br#"{"garbage_answer":"HTTP/1.1 400 Bad Request"}"#
        );
        assert_eq!(function.invoke("3").ok_body(), b"3");
        function.wait_for_stdout_line(b"bash runtime: answer statuses 202 400");
    }
}

#[test]
fn max_concurrency_reaches_the_child_and_invocations_run_together() {
    for emulator in EMULATORS {
        let function = Function::start(emulator, PYTHON, &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
        // Each waits at a barrier for all four: they only finish if all four are in flight at once.
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let url = function.url();
                std::thread::spawn(move || curl(&url, r#"{"action":"barrier"}"#))
            })
            .collect();
        for call in calls {
            let answer = call.join().unwrap();
            assert_eq!(answer.ok_body(), br#"{"together": 4}"#, "{emulator:?}: {}", function.stderr());
        }
    }
}

#[test]
fn an_init_failure_is_reported_and_the_bootstrap_exits() {
    let mut function = Function::start(Emulator::CargoLambda, &format!("{BASH} init-error"), &[]);
    assert!(!function.wait_exit().success());
    let stderr = function.stderr();
    assert!(
        stderr.contains("Runtime.ConfigError") && stderr.contains("missing configuration"),
        "{stderr}"
    );
    assert!(stderr.contains("bash runtime: init is failing"), "{stderr}");

    let mut function = Function::start(Emulator::CargoLambda, "./no-such-runtime", &[]);
    assert!(!function.wait_exit().success());
    assert!(function.stderr().contains("no-such-runtime"), "{}", function.stderr());

    // Lambda's Invoke answers with the init error the child posted, as it is.
    let function = Function::start(Emulator::Ours, &format!("{PYTHON} --init-error"), &[]);
    let error = function.invoke("{}").error();
    assert_eq!(error["errorType"], "Runtime.ConfigError");
    assert_eq!(error["errorMessage"], "no config");
}

#[test]
fn streamed_responses_are_relayed_with_their_error_trailers() {
    let function = Function::start(Emulator::Ours, PYTHON, &[]);
    let answer = function.invoke(r#"{"action":"stream"}"#);
    let body = answer.ok_body();
    let prelude_end = body.windows(8).position(|w| w == [0u8; 8]).expect("the metadata prelude");
    let prelude: serde_json::Value = serde_json::from_slice(&body[..prelude_end]).unwrap();
    assert_eq!(prelude["statusCode"], 200);
    assert_eq!(&body[prelude_end + 8..], b"one two three");
    assert!(
        answer.headers.to_ascii_lowercase().contains("transfer-encoding: chunked"),
        "{}",
        answer.headers
    );

    // A mid-stream error: what was sent arrives, and the emulator saw the error trailers.
    let answer = function.invoke(r#"{"action":"stream-error"}"#);
    assert!(contains(&answer.body, b"partial "));
    assert!(function.stderr().contains("StreamFailed"), "{}", function.stderr());
    assert_eq!(function.invoke(r#""after""#).ok_body(), br#""after""#);
}

#[test]
fn a_timed_out_invocation_resets_the_function() {
    let function = Function::start_with(Emulator::Ours, PYTHON, &[], 1);
    let error = function.invoke(r#"{"action":"sleep","seconds":5}"#).error();
    assert_eq!(error["errorType"], "Sandbox.Timedout", "{error}");
    assert_eq!(function.invoke(r#""after the timeout""#).ok_body(), br#""after the timeout""#);
}
