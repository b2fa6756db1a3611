//! The bodies an exec child's tracer sends: on the trace agent (127.0.0.1:8126) `/v0.4/traces`
//! and `/v0.5/traces` msgpack; on the universal-instrumentation API (127.0.0.1:8124)
//! `/lambda/start-invocation` (the event, JSON) and `/lambda/end-invocation` (the error in
//! `x-datadog-invocation-error*` headers). Each input goes through the endpoints' own handlers,
//! with an invocation in flight whose event is the input. Never panics; a payload is either
//! taken (200) or refused with a reason (400); the 8124 answers are always 200.
//!
//! Input: one selector byte, then the body.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use bootstrap::config::Environment;
use bootstrap::handler::Invocation;
use bootstrap::lifecycle::Timestamp;
use bootstrap::runtime_api::InvocationContext;
use bootstrap::telemetry::traces::listeners::http::{Received, Reply};
use bootstrap::telemetry::traces::listeners::{agent, msgpack, universal};
use bootstrap::telemetry::traces::{FunctionInfo, TraceConfig, TraceProcessor, TraceSink};
use bootstrap_fuzz::header_map;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use libfuzzer_sys::fuzz_target;

/// One runtime for the whole run: the handlers are async but never wait on I/O here.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fn processor_with_invocation(event: &[u8]) -> Arc<TraceProcessor> {
    let config = TraceConfig::from_env(&Environment::from_pairs([
        ("DD_TRACE_ENABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
        ("DD_CAPTURE_LAMBDA_PAYLOAD", "true"),
        ("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "datadog,tracecontext,b3,b3multi,baggage"),
    ]));
    let function = FunctionInfo {
        name: "f".into(),
        ..Default::default()
    };
    // Spans that leave the processor are written nowhere: only parsing is under test.
    let processor = Arc::new(TraceProcessor::new(
        config,
        function,
        TraceSink::Stdout(Mutex::new(Box::new(std::io::sink()))),
    ));
    let invocation = Arc::new(Invocation {
        context: InvocationContext {
            request_id: "fuzz-request".into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            ..Default::default()
        },
        headers: HeaderMap::new(),
        event: Bytes::copy_from_slice(event),
    });
    processor.invocation_started(&invocation, Timestamp::now());
    processor
}

fn request(method: Method, path: &str, headers: HeaderMap, body: &[u8]) -> Received {
    Received {
        method,
        path: path.to_owned(),
        headers,
        body: Bytes::copy_from_slice(body),
    }
}

fn agent_upload(traces: Arc<TraceProcessor>, path: &str, body: &[u8]) -> Reply {
    let reply = runtime().block_on(agent::handle(traces, request(Method::PUT, path, HeaderMap::new(), body)));
    assert!(
        matches!(reply.status(), StatusCode::OK | StatusCode::BAD_REQUEST),
        "{path} answered {}",
        reply.status()
    );
    reply
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let traces = processor_with_invocation(body);
    match selector % 4 {
        0 => {
            let reply = agent_upload(traces, "/v0.4/traces", body);
            // The handler's verdict is the decoder's.
            assert_eq!(reply.status() == StatusCode::OK, msgpack::decode_v04(body).is_ok());
        }
        1 => {
            let reply = agent_upload(traces, "/v0.5/traces", body);
            assert_eq!(reply.status() == StatusCode::OK, msgpack::decode_v05(body).is_ok());
        }
        2 => {
            let start = request(Method::POST, "/lambda/start-invocation", HeaderMap::new(), body);
            let reply = universal::handle(&traces, &start);
            assert_eq!(reply.status(), StatusCode::OK);
            assert!(
                reply.headers().contains_key("x-datadog-trace-id"),
                "the in-flight invocation got no context"
            );
        }
        _ => {
            let end = request(Method::POST, "/lambda/end-invocation", header_map(body), b"");
            let reply = universal::handle(&traces, &end);
            assert_eq!(reply.status(), StatusCode::OK);
        }
    }
    // The generic decoder under both: any bytes, a value or an error.
    let _ = msgpack::decode(body);
});
