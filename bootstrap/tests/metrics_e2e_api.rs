//! End to end, API mode: the real `bootstrap` under the real `lambda-emulator`, its API key
//! decrypted by KMS (moto's server), custom metrics (DogStatsD, the test playing the exec child)
//! delivered to a recording intake on 127.0.0.1 after the invocation's response, an intake
//! outage that loses nothing, and a key that cannot be decrypted.
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/intake.rs"]
mod intake;

#[path = "common/moto.rs"]
mod moto;

use std::time::Duration;

use base64::Engine;
use function::{has_tag, name, Function};
use intake::{points, Intake, IntakeOptions, Journal};

const KEY: &str = "0123456789abcdef0123456789abcdef";
/// How long the held intake keeps the flush waiting once the test has the response: the flush's
/// cost must show in post_runtime_duration (a lower bound the bootstrap cannot undercut).
const HELD_FOR: Duration = Duration::from_millis(300);

/// `KEY` encrypted by moto's KMS as Lambda's console does it: with the function name as
/// encryption context, so the bootstrap's first Decrypt (without context) fails and the second
/// (with it) succeeds.
async fn kms_encrypted_key(endpoint: &str) -> String {
    let kms = aws_sdk_kms::Client::new(&moto::sdk(endpoint, "us-east-1").await);
    let key_id = kms.create_key().send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    let blob = kms
        .encrypt()
        .key_id(key_id)
        .plaintext(aws_sdk_kms::primitives::Blob::new(KEY.as_bytes()))
        .encryption_context("LambdaFunctionName", function::FUNCTION)
        .send()
        .await
        .unwrap()
        .ciphertext_blob()
        .unwrap()
        .clone()
        .into_inner();
    base64::engine::general_purpose::STANDARD.encode(blob)
}

fn aws_env(endpoint: &str) -> [(&str, &str); 3] {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_key_and_points_reach_the_intake_after_the_response() {
    let moto = moto::moto();
    let ciphertext = kms_encrypted_key(&moto.endpoint).await;
    let journal = Journal::default();
    let intake = Intake::start(
        IntakeOptions {
            hold_first: usize::MAX,
            ..IntakeOptions::default()
        },
        journal.clone(),
    )
    .await;
    let host = intake.url();
    let mut env = vec![
        ("DD_KMS_API_KEY", ciphertext.as_str()),
        ("DATADOG_HOST", host.as_str()),
        ("DD_LOG_LEVEL", "debug"),
    ];
    env.extend(aws_env(&moto.endpoint));
    let function = Function::start("sleep", &env, &[]);

    // The handler runs 300 ms; the child's metric arrives meanwhile.
    let reply = function.emulator.spawn_invoke(r#"{"ms":300}"#);
    function.wait_for_handoffs(1);
    function.statsd(b"e2e.kms:1|d|#k:v");
    let reply = reply.await.unwrap();
    journal.note("invoke response 1");
    assert_eq!(reply.json()["slept_ms"], 300);

    // The flush goes out after the response, and the response never waited for the intake:
    // it arrived while the intake was still holding the flush's request unanswered.
    assert!(
        intake.wait_for_requests(1, Duration::from_secs(20)).await,
        "no request reached the intake; stderr:\n{}",
        function.stderr()
    );
    assert_eq!(journal.position("intake answered 1"), None, "{:?}", journal.entries());
    tokio::time::sleep(HELD_FOR).await;
    intake.release();

    let requests = intake.requests();
    let request = &requests[0];
    assert_eq!(request.path, "/api/v1/distribution_points");
    assert_eq!(request.headers["dd-api-key"], KEY, "the key KMS decrypted");
    assert_eq!(request.headers["content-encoding"], "deflate");
    assert_eq!(request.headers["content-type"], "application/json");
    let sent = points(&requests);
    assert_eq!(sent.len(), 1, "{sent:?}");
    let (metric, value, tags) = &sent[0];
    assert_eq!((metric.as_str(), *value), ("e2e.kms", 1.0));
    assert_eq!(tags[0], "k:v");
    assert!(tags[1].starts_with("dd_lambda_layer:"), "{tags:?}");

    // The next invocation's flush prints the first one's post_runtime_duration (enhanced metrics
    // go to stdout in API mode, as the seed prints them): it includes the held flush.
    function.invoke(r#"{"ms":0}"#).await;
    let post_runtime = function.wait_for_metric("the first invocation's post_runtime_duration", |l| {
        name(l) == "aws.lambda.enhanced.post_runtime_duration" && has_tag(l, "cold_start:true")
    });
    let held_ms = HELD_FOR.as_secs_f64() * 1000.0;
    assert!(
        post_runtime["v"].as_f64().unwrap() >= held_ms,
        "post_runtime_duration must include the {held_ms} ms the intake held the flush: {post_runtime}"
    );
    assert!(
        !function.metric_lines().iter().any(|l| name(l) == "e2e.kms"),
        "custom metrics go to the API, not stdout"
    );

    // The key never shows, even at debug level.
    let output = format!("{}{}", function.emulator.stdout.text(), function.stderr());
    assert!(!output.contains(KEY), "the API key leaked into the output:\n{output}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_kms_cannot_decrypt_is_one_clear_error_and_the_function_keeps_serving() {
    let moto = moto::moto();
    let journal = Journal::default();
    let intake = Intake::start(IntakeOptions::default(), journal).await;
    let host = intake.url();
    let garbage = base64::engine::general_purpose::STANDARD.encode(b"not a KMS ciphertext blob");
    let mut env = vec![("DD_KMS_API_KEY", garbage.as_str()), ("DATADOG_HOST", host.as_str())];
    env.extend(aws_env(&moto.endpoint));
    let function = Function::start("echo", &env, &[]);
    for i in 0..3 {
        function.statsd(format!("e2e.dropped:{i}|d").as_bytes());
        let reply = function.invoke(&format!(r#"{{"i":{i}}}"#)).await;
        assert_eq!(reply.json()["i"], i, "the function keeps serving");
    }
    function.wait_for_metric("the third invocation", |l| {
        name(l) == "aws.lambda.enhanced.invocations" && {
            let lines = function.metric_lines();
            lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.invocations").count() == 3
        }
    });
    assert!(intake.requests().is_empty(), "nothing is sent without a key");
    let stderr = function.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("DD_KMS_API_KEY")).collect();
    assert_eq!(errors.len(), 1, "one error line, however many flushes:\n{stderr}");
    assert!(
        errors[0].contains("InvalidCiphertextException"),
        "names the AWS error code: {}",
        errors[0]
    );
    assert!(errors[0].contains("ERROR"), "{}", errors[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intake_outage_loses_nothing_and_the_shutdown_flush_delivers_it() {
    let journal = Journal::default();
    // Every attempt of the first flush (three) answers 500; then the intake recovers.
    let intake = Intake::start(
        IntakeOptions {
            fail_first: 3,
            fail_status: 500,
            ..IntakeOptions::default()
        },
        journal,
    )
    .await;
    let host = intake.url();
    let mut function = Function::start("echo", &[("DD_API_KEY", KEY), ("DATADOG_HOST", host.as_str())], &[]);
    function.statsd(b"e2e.outage:5|d|#k:v");
    let reply = function.invoke(r#"{"ok":true}"#).await;
    assert_eq!(reply.json()["ok"], true, "a failing intake never fails the invocation");
    assert!(intake.wait_for_requests(3, Duration::from_secs(20)).await);

    // Nothing else would flush: the sandbox's shutdown does, within Lambda's grace period.
    let status = function.emulator.terminate();
    assert!(status.success(), "{status:?}");
    let requests = intake.requests();
    assert_eq!(requests.len(), 4, "three failed attempts, then the shutdown flush");
    let sent = points(&requests[3..]);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!((sent[0].0.as_str(), sent[0].1), ("e2e.outage", 5.0));
    assert!(
        function
            .stderr()
            .contains(r#"runtime exited at shutdown description="exit status 0""#),
        "{}",
        function.stderr()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_sends_the_points_before_the_sandbox_is_killed() {
    let journal = Journal::default();
    let intake = Intake::start(IntakeOptions::default(), journal.clone()).await;
    let host = intake.url();
    let function = Function::start(
        "sleep",
        &[("DD_API_KEY", KEY), ("DATADOG_HOST", host.as_str())],
        &["--timeout", "1"],
    );
    let reply = function.emulator.spawn_invoke(r#"{"ms":5000}"#);
    function.wait_for_handoffs(1);
    function.statsd(b"e2e.before.timeout:1|d");
    let reply = reply.await.unwrap();
    journal.note("invoke answered");
    assert_eq!(reply.json()["errorType"], "Sandbox.Timedout", "{}", reply.text());
    // Sent by the flush the deadline watch starts shortly before the kill, so it was answered
    // before the emulator killed the runtime and answered the invoke.
    let requests = intake.requests();
    assert_eq!(points(&requests).len(), 1, "{:?}", journal.entries());
    assert_eq!(points(&requests)[0].0, "e2e.before.timeout");
    let (answered, timed_out) = (journal.position("intake answered 1"), journal.position("invoke answered"));
    assert!(answered.is_some() && answered < timed_out, "{:?}", journal.entries());
}
