//! The trace-agent path end to end: the real `bootstrap` under the real `lambda-emulator`, with
//! `DD_TRACE_AGENT_URL` naming Datadog's APM test agent (`ddapm-test-agent` from PyPI, in the
//! workspace's `.venv`, installed by `scripts/setup-peers.sh`; `DDAPM_TEST_AGENT` overrides the
//! path). The agent checks every payload (trace count header, tracer version header, content
//! length) and the test reads the spans back from it. Then an agent that is not there: the
//! invocations are still answered and the loss is logged.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;
mod traces_support;

#[path = "common/test_agent.rs"]
mod test_agent;

use std::time::Duration;

use emulator_support::get;
use serde_json::Value;
use test_agent::{free_port, TestAgent, AGENT_CHECKS};
use traces_support::*;

fn named<'a>(trace: &'a [Value], name: &str) -> &'a Value {
    let found: Vec<&Value> = trace.iter().filter(|s| s["name"] == name).collect();
    assert_eq!(found.len(), 1, "one {name} span in {trace:#?}");
    found[0]
}

#[tokio::test]
async fn the_test_agent_accepts_the_bootstraps_traces() {
    let agent = TestAgent::start();
    let agent_url = agent.url("");
    let emulator = start_traced("echo", &[], &[("DD_TRACE_AGENT_URL", &agent_url)]);

    let event: Value = serde_json::from_str(&fixture_text("api-gateway.json")).unwrap();
    let reply = invoke(&emulator, event.to_string()).await;
    assert_eq!(reply.json(), event);
    let trace = agent.trace_of(&request_id(&reply)).await;
    let inferred = named(&trace, "aws.apigateway");
    let lambda = named(&trace, "aws.lambda");
    assert_eq!(lambda["trace_id"], 12345);
    assert_eq!(inferred["trace_id"], 12345);
    assert_eq!(inferred["parent_id"], 67890, "the caller's span");
    assert_eq!(lambda["parent_id"], inferred["span_id"], "aws.lambda under the inferred span");
    assert_eq!(lambda["type"], "serverless");
    assert_eq!(lambda["meta"]["cold_start"], "true");
    assert_eq!(lambda["meta"]["_dd.origin"], "lambda");
    assert_eq!(lambda["meta"]["function_trigger.event_source"], "api-gateway");
    assert_eq!(inferred["metrics"]["_sampling_priority_v1"], 2.0);
    let load = named(&trace, "aws.lambda.load");
    assert_eq!(load["parent_id"], lambda["span_id"]);

    // A second invocation: its own trace, not a cold start.
    let reply = invoke(&emulator, r#"{"second":true}"#).await;
    let trace = agent.trace_of(&request_id(&reply)).await;
    let lambda = named(&trace, "aws.lambda");
    assert_eq!(lambda["meta"]["cold_start"], "false");
    assert_eq!(lambda["parent_id"], 0);
    assert_eq!(trace.len(), 1, "{trace:#?}");

    let failures = get(&agent.url("/test/trace_check/failures?return_all=true"), &[]).await;
    assert_eq!(failures.status, 200, "the agent's checks failed: {}", failures.text());
    let summary: Value = get(&agent.url("/test/trace_check/summary?return_all=true"), &[]).await.json();
    for check in AGENT_CHECKS.split(',') {
        assert!(
            summary[check]["Passed_Checks"].as_u64().unwrap_or(0) >= 2,
            "{check} did not pass on both payloads: {summary}"
        );
        assert_eq!(summary[check]["Failed_Checks"].as_u64().unwrap_or(0), 0, "{check}: {summary}");
    }
    assert!(trace_lines(&emulator).is_empty(), "traces go to the agent, not stdout");
}

#[tokio::test]
async fn an_unreachable_agent_loses_the_spans_but_not_the_invocations() {
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let emulator = start_traced("echo", &[], &[("DD_TRACE_AGENT_URL", &nobody)]);
    for n in 0..3 {
        let event = format!(r#"{{"n":{n}}}"#);
        let reply = invoke(&emulator, event.clone()).await;
        assert_eq!(reply.text(), event, "answered although the agent is not there");
    }
    let stderr = emulator
        .stderr
        .wait_for("spans are dropped", Duration::from_secs(20))
        .unwrap_or_else(|text| panic!("the lost spans were not reported:\n{text}"));
    assert!(stderr.contains(&nobody), "the message names the agent's URL:\n{stderr}");
    let stats = emulator.stats().await;
    assert_eq!(stats["runtime_starts"], 1, "{stats}");
    assert_eq!(stats["answers_delivered"], 3, "{stats}");
    assert!(trace_lines(&emulator).is_empty(), "no fallback to stdout");
}
