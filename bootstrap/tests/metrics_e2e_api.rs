//! End to end, API mode: the real `bootstrap` under the real `lambda-emulator`, its API key
//! decrypted by KMS (moto's server), custom metrics (DogStatsD, the test playing the exec child)
//! delivered to a recording intake on 127.0.0.1 after the invocation's response, an intake
//! outage that loses nothing, and a key that cannot be decrypted.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/intake.rs"]
mod intake;

#[path = "common/moto.rs"]
mod moto;

#[path = "common/metrics.rs"]
mod metrics;

use std::time::Duration;

use base64::Engine;
use function::{has_tag, name, tags, Function};
use intake::{points, Intake, IntakeOptions, Journal};
use serde_json::Value;

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
    // The error goes to stderr, relayed by the emulator apart from the metric lines on stdout
    // waited for above: waited for itself.
    let stderr = function.wait_for_stderr("DD_KMS_API_KEY");
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
    // The emulator has exited, but our pipe reader may not have read its last lines yet.
    let exited = r#"runtime exited at shutdown description="exit status 0""#;
    function.assert_stderr_holds(exited);
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

/// The seed's self-naming tags mapped to placeholders, so its lines and ours compare.
fn normalised_tags<S: AsRef<str>>(tags: &[S]) -> Vec<String> {
    tags.iter()
        .map(|tag| match tag.as_ref().split_once(':') {
            Some(("runtime", _)) => "runtime:<runtime>".into(),
            Some(("datadog_lambda" | "datadog_lambda_bootstrap", _)) => "<library-version>".into(),
            Some(("dd_lambda_layer", _)) => "<layer>".into(),
            _ => tag.as_ref().to_owned(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_and_stdout_match_the_seeds_in_api_mode() {
    let intake = Intake::start(IntakeOptions::default(), Journal::default()).await;
    let host = intake.url();
    let function = Function::start("sleep", &[("DD_API_KEY", KEY), ("DATADOG_HOST", host.as_str())], &[]);
    // The seed's echo, echo, error, each calling lambda_metric once (see the Forwarder test).
    for (i, event) in [r#"{"ms":300}"#, r#"{"ms":300}"#, "{}"].iter().enumerate() {
        let reply = if i < 2 {
            let reply = function.emulator.spawn_invoke(event);
            function.wait_for_handoffs(i + 1);
            function.statsd(b"peer.test.count:1|d|#k:v");
            reply.await.unwrap()
        } else {
            function.statsd(b"peer.test.count:1|d|#k:v");
            function.invoke(event).await
        };
        assert_eq!(reply.header("X-Amz-Function-Error").is_some(), i == 2, "{}", reply.text());
        assert!(intake.wait_for_requests(i + 1, Duration::from_secs(20)).await);
    }

    // One request per invocation, as the seed's synchronous flush makes them.
    let ours = intake.requests();
    let reference = metrics::reference("datadog_lambda_api_requests.jsonl");
    let reference: Vec<Value> = reference.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(ours.len(), reference.len());
    for (got, expected) in ours.iter().zip(&reference) {
        assert_eq!(got.path, expected["path"]);
        for header in ["dd-api-key", "content-type", "content-encoding"] {
            assert_eq!(got.headers[header].to_str().unwrap(), expected["headers"][header], "{header}");
        }
        let (series, expected_series) = (&got.body["series"][0], &expected["body"]["series"][0]);
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(series), keys(expected_series));
        for field in ["metric", "type", "host", "device", "interval"] {
            assert_eq!(series[field], expected_series[field], "{field}");
        }
        let as_strs = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let (got_tags, expected_tags) = (as_strs(&series["tags"]), as_strs(&expected_series["tags"]));
        assert_eq!(normalised_tags(&got_tags), normalised_tags(&expected_tags));
        let point = &series["points"][0];
        assert!(point[0].as_f64().unwrap() % 10.0 == 0.0, "a 10 s bucket, as a float: {point}");
        assert_eq!(point[1], expected_series["points"][0][1], "values as floats");
    }

    // stdout: the seed prints its enhanced metrics for the Forwarder in API mode too.
    function.wait_for_metric("the error", |l| name(l) == "aws.lambda.enhanced.errors");
    let lines = function.metric_lines();
    let expected = metrics::reference("datadog_lambda_api_mode_stdout.txt");
    let mut cursor = 0;
    for expected in expected.lines().filter(|l| l.starts_with('{')) {
        let expected: Value = serde_json::from_str(expected).unwrap();
        let found = lines[cursor..]
            .iter()
            .position(|got| got["m"] == expected["m"] && normalised_tags(&tags(got)) == normalised_tags(&tags(&expected)))
            .unwrap_or_else(|| panic!("no line of ours after {cursor} matches {expected}: {lines:?}"));
        assert_eq!(lines[cursor + found]["v"], expected["v"]);
        cursor += found + 1;
    }
    assert!(
        !lines.iter().any(|l| name(l) == "peer.test.count"),
        "custom metrics go to the API only"
    );
}

/// `count` invocations of the `metric` handler, each sending one custom metric with
/// `sdk::lambda_metric` (so each point belongs to its invocation's flush); returns the number of
/// requests the intake had before the sandbox shut down, and all of them after.
async fn batched_run(strategy: Option<&str>, count: usize) -> (usize, Vec<intake::Recorded>) {
    let journal = Journal::default();
    let intake = Intake::start(IntakeOptions::default(), journal).await;
    let host = intake.url();
    let mut env = vec![("DD_API_KEY", KEY), ("DATADOG_HOST", host.as_str())];
    if let Some(strategy) = strategy {
        env.push(("DD_SERVERLESS_FLUSH_STRATEGY", strategy));
    }
    let mut function = Function::start("metric", &env, &[]);
    for i in 0..count {
        let reply = function.invoke(&format!(r#"{{"name":"e2e.batched","value":{i}}}"#)).await;
        assert_eq!(reply.json()["sent"], true, "{}", reply.text());
    }
    // One more answered invocation (no metric), so the flush decision of the last counted one
    // was made (it comes before the bootstrap asks /next again); then any wrong request has
    // had time to arrive.
    let reply = function.invoke(r#"{"name":"e2e.other","value":1}"#).await;
    assert_eq!(reply.json()["sent"], true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before_shutdown = intake.requests().len();
    let status = function.emulator.terminate();
    assert!(status.success(), "{status:?}\n{}", function.stderr());
    (before_shutdown, intake.requests())
}

fn batched_values(requests: &[intake::Recorded]) -> Vec<f64> {
    let mut values: Vec<f64> = points(requests)
        .into_iter()
        .filter(|(name, _, _)| name == "e2e.batched")
        .map(|(_, value, _)| value)
        .collect();
    values.sort_by(f64::total_cmp);
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_flush_strategy_batches_a_busy_functions_points_and_loses_none() {
    let count = 30;
    let (before_shutdown, requests) = batched_run(None, count).await;
    // The first 20 invocations flush each; the rest come faster than one per 120 s on average,
    // so their points wait for the next 20 s period, which the shutdown flush beats.
    assert_eq!(before_shutdown, 20, "requests before the shutdown");
    assert_eq!(requests.len(), 21, "then one at shutdown");
    let expected: Vec<f64> = (0..count).map(|i| i as f64).collect();
    assert_eq!(batched_values(&requests), expected, "every point, once");
    assert_eq!(batched_values(&requests[20..]).len(), count - 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_flushes_after_every_invocation_and_periodically_once_per_interval() {
    let (before_shutdown, requests) = batched_run(Some("end"), 25).await;
    assert_eq!(
        before_shutdown, 26,
        "as the seed does: one request per invocation (25 and the last)"
    );
    assert_eq!(batched_values(&requests).len(), 25);

    let (before_shutdown, requests) = batched_run(Some("periodically,60000"), 5).await;
    assert_eq!(before_shutdown, 1, "the first point goes out at once, the rest wait the minute");
    assert_eq!(requests.len(), 2, "the shutdown flush sends the rest");
    assert_eq!(batched_values(&requests), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_with_an_interval_sends_points_while_a_long_invocation_runs() {
    for strategy in ["end,200", "continuously,200"] {
        let journal = Journal::default();
        let intake = Intake::start(IntakeOptions::default(), journal.clone()).await;
        let host = intake.url();
        let env = [
            ("DD_API_KEY", KEY),
            ("DATADOG_HOST", host.as_str()),
            ("DD_SERVERLESS_FLUSH_STRATEGY", strategy),
        ];
        let mut function = Function::start("sleep", &env, &[]);
        let reply = function.emulator.spawn_invoke(r#"{"ms":1500}"#);
        function.wait_for_handoffs(1);
        function.statsd(b"e2e.during:1|d");
        // The timer's flush, from the telemetry thread, while the handler still sleeps.
        assert!(
            intake.wait_for_requests(1, Duration::from_secs(5)).await,
            "{strategy}: nothing sent during the invocation; stderr:\n{}",
            function.stderr()
        );
        // The handler sleeps 1.5 s; the timer's period is 0.2 s.
        assert!(!reply.is_finished(), "{strategy}: the invocation had already been answered");
        let reply = reply.await.unwrap();
        assert_eq!(reply.json()["slept_ms"], 1500, "{strategy}: {}", reply.text());
        assert_eq!(points(&intake.requests()[..1]).len(), 1, "{strategy}");
        assert_eq!(points(&intake.requests()[..1])[0].0, "e2e.during");

        // Between invocations the timer sends nothing (the sandbox may be frozen then). The
        // point goes out once the invocation's own end flush is done (milliseconds after the
        // answer), or that flush could take it, as `continuously,<ms>` rightly does.
        tokio::time::sleep(Duration::from_millis(500)).await;
        function.statsd(b"e2e.between:1|d");
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(intake.requests().len(), 1, "{strategy}: a request between invocations");
        let status = function.emulator.terminate();
        assert!(status.success(), "{status:?}");
        let names: Vec<String> = points(&intake.requests()).into_iter().map(|(name, _, _)| name).collect();
        assert_eq!(names, ["e2e.during", "e2e.between"], "{strategy}: the rest at shutdown");
    }
}
