// Shared by the metrics integration tests (included with `#[path]`).
#![allow(dead_code)]
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bootstrap::config::Environment;
use bootstrap::handler::{HandlerOutcome, Invocation};
use bootstrap::lifecycle::{InvocationReport, Timestamp};
use bootstrap::runtime_api::InvocationContext;
use bootstrap::telemetry::metrics::{MetricsConfig, MetricsOutputs, MetricsProcessor};
use bytes::Bytes;

/// A writer tests can read back.
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

pub const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:my-fn";

pub fn env(pairs: &[(&str, &str)]) -> Environment {
    let mut all = vec![
        ("AWS_REGION", "us-east-1"),
        ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
    ];
    all.extend_from_slice(pairs);
    Environment::from_pairs(all)
}

/// A processor whose stdout is `out`, without `/proc` metrics unless asked.
pub fn processor(env: &Environment, out: &SharedBuf, with_proc: bool) -> Arc<MetricsProcessor> {
    let config = MetricsConfig::from_env_with_extension_path(env, Path::new("/nonexistent/datadog-agent"));
    let outputs = MetricsOutputs {
        stdout: Box::new(out.clone()),
        proc: if with_proc { MetricsOutputs::default().proc } else { None },
        ..MetricsOutputs::default()
    };
    MetricsProcessor::new(config, env, outputs)
}

pub fn report(request_id: &str, cold_start: bool, outcome: HandlerOutcome) -> Arc<InvocationReport> {
    let received = Timestamp::now();
    let later = |ms| Timestamp {
        monotonic: received.monotonic + Duration::from_millis(ms),
        wall: received.wall + Duration::from_millis(ms),
    };
    Arc::new(InvocationReport {
        invocation: Arc::new(Invocation {
            context: InvocationContext {
                request_id: request_id.into(),
                invoked_function_arn: ARN.into(),
                deadline_ms: 0,
                ..Default::default()
            },
            headers: http::HeaderMap::default(),
            event: Bytes::from_static(b"{\"msg\":\"hi\"}"),
        }),
        cold_start,
        received,
        handler_started: later(1),
        handler_finished: later(3),
        answered: later(4),
        outcome,
        answer_error: None,
        timed_out: false,
    })
}

pub fn ok() -> HandlerOutcome {
    HandlerOutcome::Response(Bytes::from_static(b"{\"msg\":\"hi\"}"))
}

/// The reference output of Datadog's Python library.
pub fn reference(name: &str) -> String {
    let dir = std::env::var("DD_SPEC_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/spec/reference-output").to_owned());
    let path = Path::new(&dir).join(name);
    let fallback = Path::new("/work/shared/spec/reference-output").join(name);
    std::fs::read_to_string(&path)
        .or_else(|_| std::fs::read_to_string(&fallback))
        .unwrap_or_else(|e| panic!("reference output {name} not found at {} (set DD_SPEC_DIR): {e}", path.display()))
}
