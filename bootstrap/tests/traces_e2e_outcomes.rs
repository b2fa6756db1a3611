//! How each way an invocation can end shows in its trace, through the real `lambda-emulator` +
//! `bootstrap` + example dylib: the issue's acceptance (an API Gateway event carrying a Datadog
//! trace), cold start and `aws.lambda.load`, handler errors and panics (with the HTTP 502 rule),
//! 5xx responses, the impending-timeout span sent before the sandbox is killed, tracing off, and
//! the configuration that changes span shapes (service, mapping, managed services, X-Ray merge,
//! propagation styles).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

use emulator_support::Reply;
use serde_json::{json, Value};
use traces_support::*;

fn api_gateway_event() -> Value {
    serde_json::from_str(&fixture_text("api-gateway.json")).unwrap()
}

/// The `errorType`/`errorMessage`/`stackTrace` the invoke answered, as the span must carry them.
fn assert_error_tags_match_the_answer(lambda: &WireSpan, reply: &Reply) {
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"), "{}", reply.text());
    let body = reply.json();
    assert_eq!(lambda.error, 1, "{lambda:#?}");
    assert_eq!(lambda.meta("error.type"), body["errorType"].as_str(), "{lambda:#?}");
    assert_eq!(lambda.meta("error.message"), body["errorMessage"].as_str(), "{lambda:#?}");
    let stack: Vec<&str> = body["stackTrace"]
        .as_array()
        .map(|frames| frames.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let expected_stack = (!stack.is_empty()).then(|| stack.join("\n"));
    assert_eq!(lambda.meta("error.stack"), expected_stack.as_deref(), "{lambda:#?}");
}

#[tokio::test]
async fn an_api_gateway_trace_continues_under_the_inferred_span() {
    // The issue's acceptance: echo dylib, an API Gateway event with x-datadog-* headers.
    let emulator = start_traced("echo", &[], &[]);
    let event = api_gateway_event();
    assert_eq!(
        event["headers"]["X-Datadog-Trace-Id"], "12345",
        "the fixture carries a Datadog trace"
    );
    let reply = invoke(&emulator, event.to_string()).await;
    assert_eq!(reply.json(), event);
    let spans = trace_of(&emulator, &request_id(&reply));
    assert_well_formed(&spans);
    assert_eq!(trace_lines(&emulator).len(), 1, "one trace line");
    let inferred = span(&spans, "aws.apigateway");
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.trace_id, 12345);
    assert_eq!(inferred.parent_id, 67890, "the inferred span continues the caller's span");
    assert_eq!(lambda.parent_id, inferred.span_id, "aws.lambda under aws.apigateway");
    assert_eq!(inferred.metrics["_sampling_priority_v1"], 2.0, "the caller's decision is kept");
    assert_eq!(lambda.service, "function", "the function name is the default service");
    assert_eq!(lambda.resource, "function");
    assert_eq!(lambda.meta("functionname"), Some("function"));
    assert_eq!(lambda.meta("function_version"), Some("$LATEST"));
    assert_eq!(
        lambda.meta("function_arn"),
        Some("arn:aws:lambda:us-east-1:123456789012:function:function")
    );
    assert_eq!(lambda.meta("span.kind"), Some("server"));
    assert_eq!(lambda.meta("span.name"), Some("aws.lambda"));
    assert!(lambda.meta("datadog_lambda").is_some() && lambda.meta("dd_trace").is_some());
    assert!(
        lambda.start >= inferred.start && lambda.end() <= inferred.end(),
        "sync: inferred covers aws.lambda"
    );
}

#[tokio::test]
async fn the_first_invocation_is_a_cold_start_with_a_load_span() {
    let emulator = start_traced("echo", &[], &[]);
    let first = invoke(&emulator, r#"{"n":1}"#).await;
    let spans = trace_of(&emulator, &request_id(&first));
    assert_well_formed(&spans);
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.meta("cold_start"), Some("true"));
    assert_eq!(lambda.meta("proactive_initialization"), None);
    let load = span(&spans, "aws.lambda.load");
    assert_eq!(load.parent_id, lambda.span_id, "the load span is a child of aws.lambda");
    assert_eq!(load.service, "aws.lambda");
    assert_eq!(load.resource, "function");
    assert_eq!(load.span_type, "aws.lambda.load");
    assert_eq!(load.meta("operation_name"), Some("aws.lambda.load"));
    assert!(load.duration > 0, "the dylib load and init took time: {load:#?}");
    assert!(load.end() <= lambda.start, "init ends before the handler starts");
    assert_eq!(lambda.parent_id, 0, "no context and no X-Ray merge: a new trace");

    let second = invoke(&emulator, r#"{"n":2}"#).await;
    let spans = trace_of(&emulator, &request_id(&second));
    assert_eq!(span(&spans, "aws.lambda").meta("cold_start"), Some("false"));
    assert!(find(&spans, "aws.lambda.load").is_none(), "only the first invocation: {spans:#?}");
    assert_ne!(spans[0].trace_id, lambda.trace_id, "every invocation is a trace of its own");
}

#[tokio::test]
async fn cold_start_tracing_off_sends_no_load_span() {
    let emulator = start_traced("echo", &[], &[("DD_COLD_START_TRACING", "false")]);
    let reply = invoke(&emulator, "{}").await;
    let spans = trace_of(&emulator, &request_id(&reply));
    assert_eq!(span(&spans, "aws.lambda").meta("cold_start"), Some("true"));
    assert_eq!(spans.len(), 1, "{spans:#?}");
}

#[tokio::test]
async fn a_handler_error_marks_the_function_span() {
    let emulator = start_traced("error", &[], &[]);
    let reply = invoke(&emulator, r#"{"message":"the order was refused"}"#).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    assert_well_formed(&spans);
    let lambda = span(&spans, "aws.lambda");
    assert_error_tags_match_the_answer(lambda, &reply);
    assert_eq!(lambda.meta("error.message"), Some("the order was refused"));
    assert_eq!(lambda.meta("http.status_code"), None, "not an HTTP trigger");
}

#[tokio::test]
async fn a_panic_marks_the_function_span_and_the_next_invocation_is_clean() {
    let emulator = start_traced("panic", &[], &[]);
    let reply = invoke(&emulator, "{}").await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_error_tags_match_the_answer(lambda, &reply);
    assert!(
        lambda
            .meta("error.message")
            .unwrap_or_default()
            .contains("the panic handler always panics"),
        "{lambda:#?}"
    );

    let again = invoke(&emulator, "{}").await;
    let spans = trace_of(&emulator, &request_id(&again));
    let lambda = span(&spans, "aws.lambda");
    assert_error_tags_match_the_answer(lambda, &again);
    assert_eq!(lambda.meta("cold_start"), Some("false"), "the same process served both");
    assert_eq!(emulator.stats().await["runtime_starts"], 1);
}

#[tokio::test]
async fn an_error_behind_api_gateway_is_a_502_on_both_spans() {
    let emulator = start_traced("error", &[], &[]);
    let mut event = api_gateway_event();
    event["message"] = json!("upstream failed");
    let reply = invoke(&emulator, event.to_string()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_error_tags_match_the_answer(lambda, &reply);
    assert_eq!(lambda.meta("http.status_code"), Some("502"));
    let inferred = span(&spans, "aws.apigateway");
    assert_eq!(inferred.meta("http.status_code"), Some("502"));
    assert_eq!(inferred.trace_id, 12345, "the caller's trace is kept on failure too");
}

#[tokio::test]
async fn a_5xx_response_fails_the_function_span_and_a_2xx_does_not() {
    let emulator = start_traced("echo", &[], &[]);
    let mut event = api_gateway_event();
    event["statusCode"] = json!(503);
    let reply = invoke(&emulator, event.to_string()).await;
    assert_eq!(reply.header("x-amz-function-error"), None);
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.meta("http.status_code"), Some("503"));
    assert_eq!(lambda.error, 1, "a 5xx status fails aws.lambda: {lambda:#?}");
    assert_eq!(span(&spans, "aws.apigateway").meta("http.status_code"), Some("503"));

    event["statusCode"] = json!(201);
    let reply = invoke(&emulator, event.to_string()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.meta("http.status_code"), Some("201"));
    assert_eq!(lambda.error, 0);
}

#[tokio::test]
async fn an_impending_timeout_sends_the_span_before_the_sandbox_is_killed() {
    let emulator = start_traced("sleep", &["--timeout", "1"], &[]);
    let reply = invoke(&emulator, r#"{"ms": 5000}"#).await;
    let body = reply.json();
    assert_eq!(body["errorType"], "Sandbox.Timedout", "{body}");
    let spans = trace_of(&emulator, &request_id(&reply));
    assert_well_formed(&spans);
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.error, 1);
    assert_eq!(lambda.meta("error.type"), Some("Impending Timeout"));
    assert_eq!(lambda.meta("error.message"), Some("Datadog detected an Impending Timeout"));
    assert_eq!(lambda.meta("cold_start"), Some("true"));
    // Sent at the deadline less DD_APM_FLUSH_DEADLINE_MILLISECONDS, not at the handler's end.
    assert!(lambda.duration < 1_000_000_000, "ends before the 1 s timeout: {lambda:#?}");

    // The emulator killed the sandbox; the next invocation is a new cold start, traced.
    let next = invoke(&emulator, r#"{"ms": 1}"#).await;
    assert_eq!(next.json()["slept_ms"], 1);
    let spans = trace_of(&emulator, &request_id(&next));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.error, 0);
    assert_eq!(lambda.meta("cold_start"), Some("true"));
    assert_eq!(emulator.stats().await["runtime_starts"], 2);
}

#[tokio::test]
async fn tracing_off_by_default_prints_no_trace() {
    // Everything as in the other tests but DD_TRACE_ENABLED, which defaults to false.
    let emulator = emulator_support::EmulatorProcess::start(
        &[
            "--env",
            &format!("DD_LAMBDA_HANDLER={}", handler("echo")),
            "--env",
            "DD_FLUSH_TO_LOG=true",
        ],
        &[env!("CARGO_BIN_EXE_bootstrap")],
    );
    let first = invoke(&emulator, api_gateway_event().to_string()).await;
    assert_eq!(first.json(), api_gateway_event());
    // The lifecycle flushes an invocation's telemetry before it asks for the next one, so once
    // the second is answered the first one's output is complete.
    let second = invoke(&emulator, "{}").await;
    assert_eq!(second.json(), json!({}));
    let first_metrics = emulator
        .stdout
        .wait_for("aws.lambda.enhanced.invocations", std::time::Duration::from_secs(10));
    let stdout = first_metrics.unwrap_or_else(|text| panic!("the metrics of the first invocation never came:\n{text}"));
    assert!(!stdout.contains("\"traces\""), "tracing is off by default:\n{stdout}");
}

#[tokio::test]
async fn dd_service_and_service_mapping_name_the_spans() {
    let emulator = start_traced(
        "echo",
        &[],
        &[
            ("DD_SERVICE", "checkout"),
            ("DD_ENV", "staging"),
            ("DD_VERSION", "1.2.3"),
            ("DD_SERVICE_MAPPING", "lambda_api_gateway:gateway"),
        ],
    );
    let reply = invoke(&emulator, api_gateway_event().to_string()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.service, "checkout");
    assert_eq!(lambda.meta("env"), Some("staging"));
    assert_eq!(lambda.meta("version"), Some("1.2.3"));
    let inferred = span(&spans, "aws.apigateway");
    assert_eq!(inferred.service, "gateway", "the generic mapping key applies");
    assert_eq!(inferred.meta("peer.service"), Some("checkout"));
}

#[tokio::test]
async fn managed_services_off_parents_the_function_span_on_the_caller() {
    let emulator = start_traced("echo", &[], &[("DD_TRACE_MANAGED_SERVICES", "false")]);
    let reply = invoke(&emulator, api_gateway_event().to_string()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    assert!(find(&spans, "aws.apigateway").is_none(), "{spans:#?}");
    let lambda = span(&spans, "aws.lambda");
    assert_eq!((lambda.trace_id, lambda.parent_id), (12345, 67890));
    assert_eq!(
        lambda.meta("function_trigger.event_source"),
        Some("api-gateway"),
        "trigger tags stay"
    );
}

#[tokio::test]
async fn merging_xray_traces_parents_an_untraced_event_on_the_xray_segment() {
    let emulator = start_traced("echo", &[], &[("DD_MERGE_XRAY_TRACES", "true")]);
    let reply = invoke(&emulator, r#"{"untraced":true}"#).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    assert_well_formed(&spans);
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(lambda.trace_id, XRAY_TRACE_ID, "the X-Ray root, converted (§6.1)");
    assert_eq!(lambda.parent_id, XRAY_PARENT_ID, "the X-Ray segment");
    assert_eq!(lambda.meta("_dd.parent_source"), Some("xray"));
    assert_eq!(
        lambda.metrics["_sampling_priority_v1"], 2.0,
        "the seed reads any Sampled= as keep (§6.1)"
    );

    // An event context still wins; with merging its parent becomes the X-Ray segment (§5.4).
    let reply = invoke(&emulator, api_gateway_event().to_string()).await;
    let spans = trace_of(&emulator, &request_id(&reply));
    let inferred = span(&spans, "aws.apigateway");
    assert_eq!(inferred.trace_id, 12345);
    assert_eq!(inferred.parent_id, XRAY_PARENT_ID);
    assert_eq!(span(&spans, "aws.lambda").meta("_dd.parent_source"), None);
}

/// An API Gateway event carrying only the given headers.
fn api_gateway_with_headers(headers: Value) -> String {
    let mut event = api_gateway_event();
    event["headers"] = headers;
    event.as_object_mut().unwrap().remove("multiValueHeaders");
    event.to_string()
}

#[tokio::test]
async fn propagation_styles_choose_which_headers_are_read() {
    let traceparent = json!({"traceparent": "00-0000000000000000000000000000abcd-00000000000000ef-01"});
    let b3 = json!({"b3": "000000000000abce-00000000000000f0-1"});

    // Defaults (datadog, tracecontext, baggage): W3C is read, B3 is not.
    let emulator = start_traced("echo", &[], &[]);
    let reply = invoke(&emulator, api_gateway_with_headers(traceparent.clone())).await;
    let inferred = span(&trace_of(&emulator, &request_id(&reply)), "aws.apigateway").clone();
    assert_eq!((inferred.trace_id, inferred.parent_id), (0xabcd, 0xef));
    let reply = invoke(&emulator, api_gateway_with_headers(b3.clone())).await;
    let inferred = span(&trace_of(&emulator, &request_id(&reply)), "aws.apigateway").clone();
    assert_eq!(inferred.parent_id, 0, "b3 is not a default style");
    drop(emulator);

    let emulator = start_traced("echo", &[], &[("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "b3")]);
    let reply = invoke(&emulator, api_gateway_with_headers(b3)).await;
    let inferred = span(&trace_of(&emulator, &request_id(&reply)), "aws.apigateway").clone();
    assert_eq!((inferred.trace_id, inferred.parent_id), (0xabce, 0xf0));
    let reply = invoke(&emulator, api_gateway_with_headers(traceparent)).await;
    let inferred = span(&trace_of(&emulator, &request_id(&reply)), "aws.apigateway").clone();
    assert_eq!(inferred.parent_id, 0, "tracecontext is not in the configured styles");
}

#[tokio::test]
async fn concurrent_invocations_keep_their_own_traces() {
    let emulator = start_traced("sleep", &[], &[("AWS_LAMBDA_MAX_CONCURRENCY", "4")]);
    let invokes: Vec<_> = (1..=4u64)
        .map(|n| {
            let event = json!({
                "ms": 300,
                "headers": {
                    "x-datadog-trace-id": (1000 + n).to_string(),
                    "x-datadog-parent-id": (2000 + n).to_string(),
                    "x-datadog-sampling-priority": "1",
                },
            });
            let url = emulator.invoke_url();
            tokio::spawn(async move {
                let reply = emulator_support::post(&url, event.to_string().into_bytes(), &[("X-Amzn-Trace-Id", XRAY_HEADER)]).await;
                (n, reply)
            })
        })
        .collect();
    for invoke in invokes {
        let (n, reply) = invoke.await.unwrap();
        assert_eq!(reply.json()["slept_ms"], 300);
        let spans = trace_of(&emulator, &request_id(&reply));
        let lambda = span(&spans, "aws.lambda");
        assert_eq!(
            (lambda.trace_id, lambda.parent_id),
            (1000 + n, 2000 + n),
            "each invocation continues its own caller's trace"
        );
    }
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
    assert_eq!(trace_lines(&emulator).len(), 4);
    let cold: usize = trace_lines(&emulator)
        .iter()
        .filter(|line| line.contains("\"cold_start\": \"true\""))
        .count();
    assert_eq!(cold, 1, "one cold start among the four");
}

#[tokio::test]
async fn an_init_error_is_traced_like_the_seeds_handler_import_error() {
    // §5.14: a handler that cannot be loaded still gives a finished, failed `aws.lambda` span.
    let missing = "/nonexistent/libapp.so";
    let emulator = emulator_support::EmulatorProcess::start(
        &[
            "--env",
            &format!("DD_LAMBDA_HANDLER={missing}:handler"),
            "--env",
            "DD_TRACE_ENABLED=true",
            "--env",
            "DD_FLUSH_TO_LOG=true",
        ],
        &[env!("CARGO_BIN_EXE_bootstrap")],
    );
    let reply = invoke(&emulator, "{}").await;
    assert_eq!(reply.header("x-amz-function-error"), Some("Unhandled"));
    let body = reply.json();
    let stdout = emulator
        .stdout
        .wait_for("{\"traces\"", std::time::Duration::from_secs(20))
        .unwrap_or_else(|text| panic!("no trace of the init error:\n{text}\nstderr:\n{}", emulator.stderr.text()));
    let lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("{\"traces\"")).collect();
    let spans = parse_trace_line(lines[0]);
    assert_well_formed(&spans);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let lambda = &spans[0];
    assert_eq!(lambda.name, "aws.lambda");
    assert_eq!(lambda.service, "aws.lambda");
    assert_eq!(lambda.resource, missing, "the handler's library, as the seed names the module");
    assert_eq!(lambda.span_type, "serverless");
    assert_eq!(lambda.parent_id, 0);
    assert_eq!(lambda.error, 1);
    assert_eq!(lambda.meta("error.type"), body["errorType"].as_str(), "{body}");
    assert_eq!(lambda.meta("error.message"), body["errorMessage"].as_str(), "{body}");
    assert_eq!(lambda.meta("status"), Some("error"));
    assert_eq!(lambda.meta("operation_name"), Some("aws.lambda"));
    assert_eq!(lambda.meta("resource_names"), Some(missing));
    assert_eq!(lambda.meta("resource.name"), Some(missing));
    assert_eq!(lambda.metrics.get("error.status"), Some(&500.0));
    assert!(lambda.duration >= 0);
}

#[tokio::test]
async fn an_authorizer_response_carries_the_trace_to_the_request_it_authorizes() {
    use base64::Engine;
    let emulator = start_traced("echo", &[], &[]);
    // The echo answers this event, which is shaped as an authorizer's answer.
    let event = json!({
        "type": "TOKEN",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/test/GET/request",
        "principalId": "user",
        "policyDocument": {"Version": "2012-10-17", "Statement": []},
        "context": {"kept": "yes"},
    });
    let reply = invoke(&emulator, event.to_string()).await;
    let answer = reply.json();
    let spans = trace_of(&emulator, &request_id(&reply));
    let lambda = span(&spans, "aws.lambda");
    assert_eq!(answer["context"]["kept"], "yes", "other context keys stay: {answer}");
    let encoded = answer["context"]["_datadog"]
        .as_str()
        .unwrap_or_else(|| panic!("no context._datadog: {answer}"));
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let headers: Value = serde_json::from_slice(&decoded).unwrap();
    assert_eq!(headers["x-datadog-trace-id"], lambda.trace_id.to_string());
    assert_eq!(headers["x-datadog-parent-id"], lambda.span_id.to_string());
    assert!(headers["x-datadog-parent-span-finish-time"].is_i64(), "{headers}");
}
