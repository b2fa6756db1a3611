//! What the lifecycle tells telemetry, with the times it happened.
//!
//! Events are delivered to [`LifecycleObserver`]s *after* the invocation's answer is posted
//! (the received and answered times are carried inside), so nothing telemetry does sits
//! between `/next` and `/response`. Observers finish their work before the lifecycle asks
//! `/next` again, because Lambda may freeze the sandbox as soon as it does.
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::handler::{BoxFuture, HandlerOutcome, Invocation};
use crate::runtime_api::ErrorBody;

/// A moment, on both clocks: `monotonic` for durations, `wall` for timestamps sent to Datadog.
#[derive(Clone, Copy, Debug)]
pub struct Timestamp {
    pub monotonic: Instant,
    pub wall: SystemTime,
}

impl Timestamp {
    pub fn now() -> Self {
        Self {
            monotonic: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn epoch_ms(&self) -> u64 {
        self.wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    /// Nanoseconds since the Unix epoch (Datadog span start times).
    pub fn epoch_ns(&self) -> i64 {
        self.wall.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
    }

    pub fn duration_since(&self, earlier: &Timestamp) -> Duration {
        self.monotonic.saturating_duration_since(earlier.monotonic)
    }
}

/// How the handler became ready.
#[derive(Clone, Debug)]
pub struct InitReport {
    pub started: Timestamp,
    pub finished: Timestamp,
    /// Time spent in the handler's own init (dylib init function, or exec child start to its
    /// first `/next`).
    pub handler_init: Duration,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE`.
    pub initialization_type: String,
    /// Set when init failed (reported with `/init/error`).
    pub error: Option<ErrorBody>,
}

/// One invocation, from `/next` to its answer.
#[derive(Debug)]
pub struct InvocationReport {
    pub invocation: Arc<Invocation>,
    /// The first invocation after init in this process.
    pub cold_start: bool,
    /// `/next` answered.
    pub received: Timestamp,
    /// The handler was called (exec: the child received the event).
    pub handler_started: Timestamp,
    /// The handler returned (exec: the child's answer arrived).
    pub handler_finished: Timestamp,
    /// The answer was posted to the Runtime API (accepted or not).
    pub answered: Timestamp,
    pub outcome: HandlerOutcome,
    /// Why the Runtime API refused the answer, when it did (e.g. a response over 6 MB).
    pub answer_error: Option<String>,
    /// Set when the deadline watch fired for this invocation.
    pub timed_out: bool,
}

/// The events telemetry consumes.
#[derive(Clone, Debug)]
pub enum LifecycleEvent {
    /// The handler is ready, or failed to become ready.
    Init(Arc<InitReport>),
    /// An invocation's answer has left for the Runtime API and Lambda's acknowledgement is
    /// awaited: the handler's outcome is final. Work that needs no more than that (building and
    /// sending spans) is done here, while the connection waits. In this report `answered` is
    /// when the answer left and `answer_error` is always `None`; `Invocation` follows with both.
    /// Only the lifecycle sends it: an observer must also handle an `Invocation` that comes
    /// without it (an abort report).
    AnswerSent(Arc<InvocationReport>),
    /// An invocation was answered.
    Invocation(Arc<InvocationReport>),
    /// The deadline is near and the handler has not answered: flush now, the sandbox may be
    /// killed at the deadline.
    TimeoutApproaching {
        invocation: Arc<Invocation>,
        received: Timestamp,
        at: Timestamp,
        cold_start: bool,
    },
    /// The process is about to end (SIGTERM/SIGINT): final flush.
    Shutdown { at: Timestamp },
}

/// Receives lifecycle events; the returned future is awaited before the lifecycle moves on.
pub trait LifecycleObserver: Send + Sync + 'static {
    fn observe<'a>(&'a self, event: &'a LifecycleEvent) -> BoxFuture<'a, ()>;

    /// The handler is about to be called for `invocation` (`handler_started` is the report's
    /// `handler_started`). Runs between `/next` and the answer, so it must be cheap and must
    /// not block: record what is needed and do the work later (or when the handler asks).
    fn invocation_started(&self, _invocation: &Arc<Invocation>, _handler_started: Timestamp) {}

    /// The response body about to be posted for `invocation`; return a replacement (§5.8: an
    /// authorizer's response gets the trace context). On the answer's path: check cheaply
    /// whether there is anything to do before parsing anything.
    fn rewrite_response(&self, _invocation: &Invocation, _body: &bytes::Bytes) -> Option<bytes::Bytes> {
        None
    }
}
