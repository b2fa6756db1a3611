//! End to end, Forwarder mode (`DD_FLUSH_TO_LOG=true`): the real `bootstrap` serving the example
//! dylib under the real `lambda-emulator`, its stdout compared with what Datadog's Python library
//! printed for the same invocations (`reference-output/datadog_lambda_flush_to_log.txt`), custom
//! metrics arriving over DogStatsD (the test plays the exec child that sends them), the flush
//! before a timeout kill and the final flush at the emulator's shutdown.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
#[path = "emulator_support/mod.rs"]
mod emulator_support;

#[path = "common/function.rs"]
mod function;

#[path = "common/metrics.rs"]
mod metrics;

use function::{expected_runtime_tag, has_tag, metric_lines, name, tags, Function};
use serde_json::Value;

/// The Forwarder's `extract_metric` rule: a JSON object with m, v, e, t; t a list; v a number.
fn forwarder_accepts(line: &str) -> bool {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) else {
        return false;
    };
    ["m", "v", "e", "t"].iter().all(|k| map.contains_key(*k)) && map["t"].is_array() && map["v"].is_number()
}

/// The seed's self-naming tags mapped to placeholders, so its lines and ours compare.
fn normalise(tag: &str) -> String {
    match tag.split_once(':') {
        Some(("runtime", _)) => "runtime:<runtime>".into(),
        Some(("datadog_lambda" | "datadog_lambda_bootstrap", _)) => "<library-version>".into(),
        Some(("dd_lambda_layer", _)) => "<layer>".into(),
        _ => tag.to_owned(),
    }
}

fn normalised_tags(line: &Value) -> Vec<String> {
    tags(line).into_iter().map(normalise).collect()
}

fn forwarder() -> [(&'static str, &'static str); 1] {
    [("DD_FLUSH_TO_LOG", "true")]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_matches_the_seeds_lines_and_the_shutdown_flushes_the_rest() {
    // `sleep` answers `{"ms":300}` and fails on `{}` (no `ms`): the seed's echo, echo, error. The
    // custom metric is sent while the handler runs, as the seed's handler calls lambda_metric;
    // the failing handler returns at once, so its metric is sent just before it is invoked (the
    // flush reads every datagram already sent, so it lands in that invocation's flush).
    let mut function = Function::start("sleep", &forwarder(), &[]);
    let events = [r#"{"ms":300}"#, r#"{"ms":300}"#, "{}"];
    for (i, event) in events.iter().enumerate() {
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
        // The flush follows the answer: wait for this invocation's lines.
        function.wait_for_metric("the invocation's flush", |_| {
            let lines = function.metric_lines();
            lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.response_latency").count() == i + 1
        });
    }
    let stdout = function.emulator.stdout.text();
    for line in stdout.lines().filter(|l| l.starts_with('{')) {
        assert!(forwarder_accepts(line), "the Forwarder would take this for a log: {line}");
        assert!(line.starts_with(r#"{"m":"#), "keys in the seed's order: {line}");
        let v = line.find(r#","v":"#).unwrap();
        let e = line.find(r#","e":"#).unwrap();
        let t = line.find(r#","t":["#).unwrap();
        assert!(v < e && e < t, "keys in the seed's order m, v, e, t: {line}");
        assert!(!line.contains("\\/"), "slashes must not be escaped: {line}");
        assert!(!line.contains(": ") && !line.contains(", "), "compact: {line}");
    }
    let ours = metric_lines(&stdout);

    // Each reference line, in order, has a line of ours with the same name, tags and value type.
    let reference = metrics::reference("datadog_lambda_flush_to_log.txt");
    let reference: Vec<Value> = reference
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reference.len(), 7);
    let mut cursor = 0;
    for expected in &reference {
        let found = ours[cursor..]
            .iter()
            .position(|got| got["m"] == expected["m"] && normalised_tags(got) == normalised_tags(expected))
            .unwrap_or_else(|| panic!("no line of ours after line {cursor} matches {expected}; ours:\n{stdout}"));
        let got = &ours[cursor + found];
        assert_eq!(got["v"], expected["v"], "same value, same JSON number type: {got}");
        assert!(got["e"].is_i64(), "integer epoch seconds: {got}");
        cursor += found + 1;
    }

    // The tags name the real runtime and this project, as the issue asks.
    let first = &ours[0];
    assert_eq!(name(first), "aws.lambda.enhanced.invocations");
    assert!(has_tag(first, &expected_runtime_tag()), "{first}");
    let version = format!("datadog_lambda_bootstrap:v{}", env!("CARGO_PKG_VERSION"));
    assert!(has_tag(first, &version), "{first}");
    let invocations: Vec<&Value> = ours.iter().filter(|l| name(l) == "aws.lambda.enhanced.invocations").collect();
    assert_eq!(invocations.len(), 3);
    let cold: Vec<bool> = invocations.iter().map(|l| has_tag(l, "cold_start:true")).collect();
    assert_eq!(cold, [true, false, false]);
    let produced = ours.iter().find(|l| name(l) == "aws.lambda.enhanced.produced_bytes").unwrap();
    assert_eq!(produced["v"], r#"{"slept_ms":300}"#.len(), "the response's size: {produced}");

    // Left to the Forwarder, which derives them from Lambda's REPORT line: never printed here.
    for derived in [
        "duration",
        "billed_duration",
        "max_memory_used",
        "memorysize",
        "estimated_cost",
        "init_duration",
        "timeouts",
    ] {
        let metric = format!("aws.lambda.enhanced.{derived}");
        assert!(!ours.iter().any(|l| name(l) == metric), "{metric} would be counted twice");
    }

    // post_runtime_duration is known once an invocation's flush ends: the third one's only goes
    // out with the final flush, which the emulator's SIGTERM (and SHUTDOWN event) triggers.
    let post_runtime = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| name(l) == "aws.lambda.enhanced.post_runtime_duration")
            .count()
    };
    assert_eq!(post_runtime(&ours), 2);
    function.statsd(b"after.last.invoke:7|c|#k:v");
    let status = function.emulator.terminate();
    assert!(status.success(), "{status:?}");
    // The emulator has exited, but our pipe reader may not have read its last lines yet.
    function.wait_for_metric("the final flush's lines", |_| {
        let lines = function.metric_lines();
        post_runtime(&lines) >= 3 && lines.iter().any(|l| name(l) == "after.last.invoke")
    });
    let after = metric_lines(&function.emulator.stdout.text());
    assert_eq!(
        post_runtime(&after),
        3,
        "the final flush sends the last invocation's post-runtime metrics"
    );
    let late = after
        .iter()
        .find(|l| name(l) == "after.last.invoke")
        .unwrap_or_else(|| panic!("a custom metric sent after the last invoke is lost at shutdown:\n{after:?}"));
    assert_eq!(late["v"], 7);
    let exited = r#"runtime exited at shutdown description="exit status 0""#;
    let stderr = function.wait_for_stderr(exited);
    assert!(stderr.contains(exited), "the bootstrap exits 0 within the grace period:\n{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_5xx_and_batch_item_failures_come_from_the_response() {
    let function = Function::start("echo", &forwarder(), &[]);
    // An API Gateway event (`requestContext.stage`) echoed back with a 500: Lambda sees a success,
    // the seed counts an error.
    let api_gateway_500 =
        r#"{"resource":"/","path":"/","httpMethod":"GET","requestContext":{"stage":"prod","requestId":"x"},"statusCode":500}"#;
    let reply = function.invoke(api_gateway_500).await;
    assert!(reply.header("X-Amz-Function-Error").is_none());
    let errors = function.wait_for_metric("errors for the 5xx", |l| name(l) == "aws.lambda.enhanced.errors");
    assert_eq!(errors["v"], 1);

    // The same status on a non-HTTP event is just data.
    function.invoke(r#"{"statusCode":500}"#).await;
    let sqs_batch = r#"{"Records":[],"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]}"#;
    function.invoke(sqs_batch).await;
    let failures = function.wait_for_metric("batch_item_failures", |l| name(l) == "aws.lambda.enhanced.batch_item_failures");
    assert_eq!(failures["v"], 2);
    let lines = function.metric_lines();
    let count = |metric: &str| lines.iter().filter(|l| name(l) == metric).count();
    assert_eq!(count("aws.lambda.enhanced.invocations"), 3);
    assert_eq!(count("aws.lambda.enhanced.errors"), 1, "only the HTTP 500 is an error");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_init_failure_counts_an_error() {
    let function = Function::start("echo", &[("DD_FLUSH_TO_LOG", "true"), ("HANDLERS_EXAMPLE_INIT", "fail")], &[]);
    let reply = function.invoke("{}").await;
    assert_eq!(reply.header("X-Amz-Function-Error"), Some("Unhandled"));
    let errors = function.wait_for_metric("errors at init", |l| name(l) == "aws.lambda.enhanced.errors");
    assert_eq!(errors["v"], 1);
    // The seed has no Lambda context outside the handler: only cold_start, runtime, the library
    // version and the layer tag (§2.1).
    let version = format!("datadog_lambda_bootstrap:v{}", env!("CARGO_PKG_VERSION"));
    let expected = ["cold_start:true", &expected_runtime_tag(), &version];
    assert_eq!(tags(&errors)[..3], expected, "{errors}");
    assert!(tags(&errors)[3].starts_with("dd_lambda_layer:"), "{errors}");
    assert_eq!(tags(&errors).len(), 4, "{errors}");
    assert!(
        !function
            .metric_lines()
            .iter()
            .any(|l| name(l) == "aws.lambda.enhanced.init_duration"),
        "init_duration is the Forwarder's (REPORT line)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_flushes_before_the_sandbox_is_killed() {
    let function = Function::start("sleep", &forwarder(), &["--timeout", "1"]);
    function.invoke(r#"{"ms":0}"#).await;
    function.statsd(b"before.timeout:1|c");
    let reply = function.invoke(r#"{"ms":5000}"#).await;
    assert_eq!(reply.json()["errorType"], "Sandbox.Timedout", "{}", reply.text());

    // Printed ahead of the kill, so the runtime's death loses nothing.
    let lines = function.metric_lines();
    let invocations: Vec<&Value> = lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.invocations").collect();
    assert_eq!(invocations.len(), 2, "the timed-out invocation is counted: {lines:?}");
    assert!(has_tag(invocations[1], "cold_start:false"));
    assert!(
        lines.iter().any(|l| name(l) == "before.timeout"),
        "custom metrics flushed: {lines:?}"
    );
    assert!(
        !lines.iter().any(|l| name(l) == "aws.lambda.enhanced.timeouts"),
        "the Forwarder counts timeouts from Lambda's `Task timed out` line"
    );

    // The next invoke gets a fresh runtime, which counts a cold start again.
    let reply = function.invoke(r#"{"ms":0}"#).await;
    assert_eq!(reply.json()["slept_ms"], 0);
    function.wait_for_metric("the fresh runtime's invocation", |l| {
        name(l) == "aws.lambda.enhanced.invocations" && has_tag(l, "cold_start:true") && l != &lines[0]
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_garbage_and_oversized_datagrams_leave_good_lines_through() {
    let function = Function::start("echo", &forwarder(), &[]);
    function.statsd(b"\xff\xfe not utf-8");
    function.statsd(&vec![b'a'; 9000]);
    function.statsd(b"garbage without a type\nok.count:2|c|@0.5|#a:b\nok.gauge:1.5|g\nok.hist:3|h\nok.dist:1:2|d|#c:d");
    let reply = function.invoke("{}").await;
    assert_eq!(reply.text(), "{}");
    function.wait_for_metric("the DogStatsD lines", |l| name(l) == "ok.dist");
    let lines = function.metric_lines();
    let custom: Vec<(String, String)> = lines
        .iter()
        .filter(|l| name(l).starts_with("ok."))
        .map(|l| (name(l).to_owned(), l["v"].to_string()))
        .collect();
    // A count's value is divided by its sample rate; `h` is refused as the Extension refuses it.
    assert_eq!(
        custom,
        [
            ("ok.count".to_owned(), "4.0".to_owned()),
            ("ok.gauge".to_owned(), "1.5".to_owned()),
            ("ok.dist".to_owned(), "1".to_owned()),
            ("ok.dist".to_owned(), "2".to_owned()),
        ],
        "{lines:?}"
    );
    let dist = lines.iter().find(|l| name(l) == "ok.dist").unwrap();
    assert_eq!(tags(dist)[0], "c:d");
    // The refusals are told with their reasons, so the sender can learn what went wrong: each
    // once, in the flush that first saw it (the datagrams may straddle the init's flush and the
    // invocation's, as UDP delivers them), the last line with the reasons so far. They go to
    // stderr, relayed by the emulator apart from the metric lines on stdout waited for above:
    // the line with every reason is waited for itself (any earlier one comes before it).
    let stderr = function.wait_for_stderr("malformed: 1, unsupported type: 1, oversized or not UTF-8 datagram: 2");
    let refusals: Vec<&str> = stderr.lines().filter(|l| l.contains("DogStatsD: refused")).collect();
    let told: usize = refusals
        .iter()
        .map(|l| {
            let count = l.split("refused ").nth(1).and_then(|rest| rest.split(' ').next());
            count.and_then(|n| n.parse::<usize>().ok()).unwrap_or(0)
        })
        .sum();
    assert_eq!(told, 4, "{stderr}");
    let last = refusals.last().copied().unwrap_or_default();
    assert!(
        last.contains("malformed: 1, unsupported type: 1, oversized or not UTF-8 datagram: 2"),
        "{last}"
    );
    // The function kept serving, and says nothing more while nothing more is refused.
    assert_eq!(function.invoke(r#"{"still":"up"}"#).await.json()["still"], "up");
    function.wait_for_metric("the second invocation", |_| {
        let lines = function.metric_lines();
        lines.iter().filter(|l| name(l) == "aws.lambda.enhanced.invocations").count() == 2
    });
    assert_eq!(function.stderr().matches("DogStatsD: refused").count(), refusals.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enhanced_metrics_off_leaves_only_custom_metrics() {
    let function = Function::start("echo", &[("DD_FLUSH_TO_LOG", "true"), ("DD_ENHANCED_METRICS", "false")], &[]);
    function.statsd(b"still.custom:3|d");
    function.invoke("{}").await;
    function.invoke("{}").await;
    let custom = function.wait_for_metric("the custom metric", |l| name(l) == "still.custom");
    assert_eq!(custom["v"], 3);
    let lines = function.metric_lines();
    assert!(
        !lines.iter().any(|l| name(l).starts_with("aws.lambda.enhanced.")),
        "DD_ENHANCED_METRICS=false: {lines:?}"
    );
}
