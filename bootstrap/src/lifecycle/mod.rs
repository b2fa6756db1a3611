//! The invocation lifecycle: init, the `/next` -> handler -> answer loop, deadlines,
//! shutdown, and the events telemetry consumes.
//!
//! One worker serves one invocation at a time; `AWS_LAMBDA_MAX_CONCURRENCY=N` runs N workers
//! (Lambda Managed Instances). Between `/next` and the answer a worker only parses headers,
//! arms the deadline watch and calls the handler; telemetry hears of the invocation once the
//! answer has left (while Lambda acknowledges it) and again once it is acknowledged, and
//! finishes before the worker asks `/next` again.
mod deadline;
pub mod events;
mod observers;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use deadline::DeadlineWatch;
pub use events::{InitReport, InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
pub use observers::Observers;

use crate::handler::{Handler, HandlerOutcome, Invocation, TimedOutcome};
use bytes::Bytes;

use crate::runtime_api::{header_names, BodySent, ClientError, ErrorBody, RuntimeApiClient, MAX_RESPONSE_BYTES};

/// How long before the deadline the timeout watch fires, unless configured
/// (`DD_APM_FLUSH_DEADLINE_MILLISECONDS`, as Datadog's tracer uses it).
pub const DEFAULT_TIMEOUT_MARGIN: Duration = Duration::from_millis(100);

const NEXT_ERROR_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Attempts at posting one answer when its connection drops, and the pause before the n-th retry (n times this).
const ANSWER_ATTEMPTS: u32 = 3;
const ANSWER_RETRY_PAUSE: Duration = Duration::from_millis(10);

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct LifecycleOptions {
    /// Invocations in flight at once (`AWS_LAMBDA_MAX_CONCURRENCY`).
    pub concurrency: usize,
    /// How long before the deadline telemetry is told the invocation is about to time out.
    pub timeout_margin: Duration,
    /// Stop after this many invocations (all workers together); `None` serves forever.
    pub max_invocations: Option<u64>,
    /// Where the deadline watch runs: a runtime whose thread no dylib handler blocks (the
    /// telemetry thread's when the loop runs on a current-thread runtime); `None`: the loop's own.
    pub watch_runtime: Option<tokio::runtime::Handle>,
}

impl Default for LifecycleOptions {
    fn default() -> Self {
        Self {
            concurrency: 1,
            timeout_margin: DEFAULT_TIMEOUT_MARGIN,
            max_invocations: None,
            watch_runtime: None,
        }
    }
}

/// The invocation loop around one ready handler.
pub struct Lifecycle {
    client: RuntimeApiClient,
    handler: Arc<dyn Handler>,
    observers: Observers,
    options: LifecycleOptions,
    cold_start: AtomicBool,
    served: std::sync::atomic::AtomicU64,
    /// Workers between `/next`'s answer and the end of their telemetry flush.
    busy: tokio::sync::watch::Sender<usize>,
}

impl Lifecycle {
    pub fn new(client: RuntimeApiClient, handler: Arc<dyn Handler>, observers: Observers, options: LifecycleOptions) -> Arc<Self> {
        Arc::new(Self {
            client,
            handler,
            observers,
            options,
            cold_start: AtomicBool::new(true),
            served: std::sync::atomic::AtomicU64::new(0),
            busy: tokio::sync::watch::Sender::new(0),
        })
    }

    /// Serves invocations with `concurrency` workers until `max_invocations` (or forever).
    pub async fn run(self: Arc<Self>) {
        let workers: Vec<_> = (0..self.options.concurrency.max(1))
            .map(|_| {
                let lifecycle = self.clone();
                tokio::spawn(async move { lifecycle.worker().await })
            })
            .collect();
        for worker in workers {
            if let Err(err) = worker.await {
                tracing::error!(error = %err, "a lifecycle worker stopped unexpectedly");
            }
        }
    }

    async fn worker(self: Arc<Self>) {
        let watch = DeadlineWatch::spawn(
            self.options.timeout_margin,
            self.observers.clone(),
            self.options.watch_runtime.as_ref(),
        );
        let mut backoff = Duration::from_millis(10);
        loop {
            if let Some(max) = self.options.max_invocations {
                if self.served.fetch_add(1, Ordering::SeqCst) >= max {
                    return;
                }
            }
            if let Some(reinit) = self.handler.before_next().await {
                // The handler had to start afresh (an exec child that died): the next invocation
                // is a cold start again, after an init telemetry hears about.
                self.cold_start.store(true, Ordering::SeqCst);
                self.observers.notify(&LifecycleEvent::Init(Arc::new(reinit))).await;
            }
            let next = match self.client.next().await {
                Ok(next) => {
                    backoff = Duration::from_millis(10);
                    next
                }
                Err(err) => {
                    tracing::error!(error = %err, retry_in_ms = backoff.as_millis() as u64, "Runtime API /next failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(NEXT_ERROR_BACKOFF_MAX);
                    continue;
                }
            };
            let received = Timestamp::now();
            let _busy = BusyGuard::enter(&self.busy);
            let context = match next.context() {
                Ok(context) => context,
                Err(err) => {
                    let invocation_id = next.headers.get(header_names::INVOCATION_ID).and_then(|v| v.to_str().ok());
                    if let Some(request_id) = err.request_id() {
                        tracing::error!(request_id, error = %err, "cannot serve this invocation; reporting it as an error");
                        let body = ErrorBody::new(err.error_type(), err.to_string());
                        if let Err(post) = self.client.error(request_id, invocation_id, &body, &BodySent::default()).await {
                            tracing::error!(request_id, error = %post, "the Runtime API refused the invocation error");
                        }
                    } else {
                        tracing::error!(error = %err, "cannot serve a /next answer");
                    }
                    continue;
                }
            };
            let invocation = Arc::new(Invocation {
                context,
                headers: next.headers,
                event: next.event,
            });
            let report = self.serve(invocation, received, &watch).await;
            // After the answer is posted, so even at debug level nothing is written in front of it.
            tracing::debug!(
                request_id = %report.invocation.context.request_id,
                function_error = report.outcome.is_error(),
                "invocation answered"
            );
            self.observers.notify(&LifecycleEvent::Invocation(Arc::new(report))).await;
        }
    }

    /// Passes the shutdown on to the handler (an exec child gets SIGTERM and `grace` to exit).
    pub async fn shutdown_handler(&self, grace: Duration) {
        self.handler.shutdown(grace).await;
    }

    /// Waits until no invocation is being served or flushed (every worker is back at `/next`), so
    /// a shutdown does not cut an invocation's telemetry short.
    pub async fn idle(&self) {
        let mut busy = self.busy.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = busy.wait_for(|count| *count == 0).await;
    }

    /// From a received invocation to its posted answer.
    async fn serve(&self, invocation: Arc<Invocation>, received: Timestamp, watch: &DeadlineWatch) -> InvocationReport {
        let cold_start = self.cold_start.swap(false, Ordering::SeqCst);
        watch.arm(&invocation, received, cold_start);
        self.observers.invocation_started(&invocation, Timestamp::now());
        let TimedOutcome {
            outcome,
            handler_started,
            handler_finished,
        } = self.handler.invoke_timed(invocation.clone()).await;
        let timed_out = watch.disarm();
        let outcome = match outcome {
            HandlerOutcome::Response(body) => refuse_oversized(self.observers.rewrite_response(&invocation, body)),
            other => other,
        };
        let sent = BodySent::default();
        // Telemetry starts once the answer is on its way and runs while Lambda acknowledges it:
        // the answer never waits for it, and `/next` waits for both.
        let answer_sent = async {
            if self.observers.is_empty() {
                return;
            }
            sent.wait().await;
            let report = InvocationReport {
                invocation: invocation.clone(),
                cold_start,
                received,
                handler_started,
                handler_finished,
                answered: Timestamp::now(),
                outcome: outcome.clone(),
                answer_error: None,
                timed_out,
            };
            self.observers.notify(&LifecycleEvent::AnswerSent(Arc::new(report))).await;
        };
        let (answer_error, ()) = tokio::join!(self.answer(&invocation, &outcome, &sent), answer_sent);
        let answered = Timestamp::now();
        InvocationReport {
            invocation,
            cold_start,
            received,
            handler_started,
            handler_finished,
            answered,
            outcome,
            answer_error,
            timed_out,
        }
    }

    /// Posts the outcome: exactly one `/response` or `/error` per invocation. `sent` is told
    /// when the answer has left (at once when there is nothing to post). Returns why the Runtime
    /// API refused it, when it did.
    async fn answer(&self, invocation: &Invocation, outcome: &HandlerOutcome, sent: &BodySent) -> Option<String> {
        let context = &invocation.context;
        let request_id = context.request_id.as_str();
        let invocation_id = context.invocation_id.as_deref();
        let result = match outcome {
            HandlerOutcome::Response(body) => {
                post_answer(request_id, || self.client.respond(request_id, invocation_id, body.clone(), sent)).await
            }
            HandlerOutcome::Error(error) => post_answer(request_id, || self.client.error(request_id, invocation_id, error, sent)).await,
            HandlerOutcome::Answered { .. } => {
                sent.notify();
                Ok(())
            }
        };
        result.err().map(|e| describe(request_id, e))
    }
}

/// A response Lambda would refuse with 413 becomes the function's own error, which says why.
fn refuse_oversized(body: Bytes) -> HandlerOutcome {
    if body.len() <= MAX_RESPONSE_BYTES {
        return HandlerOutcome::Response(body);
    }
    HandlerOutcome::Error(ErrorBody::new(
        "Function.ResponseSizeTooLarge",
        format!(
            "Response payload size ({} bytes) exceeded maximum allowed payload size ({MAX_RESPONSE_BYTES} bytes).",
            body.len()
        ),
    ))
}

/// Posts an answer, again on a new connection when the one it went out on dropped before
/// Lambda's answer came (a reset, a keep-alive connection closed under it): the invocation
/// would otherwise wait for its timeout. Lambda accepts one answer per request id, so a retry
/// can only be accepted when the first attempt was lost.
async fn post_answer<F, Fut>(request_id: &str, mut post: F) -> Result<(), ClientError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut attempt = 1;
    loop {
        match post().await {
            Err(err) if err.is_connection_failure() && attempt < ANSWER_ATTEMPTS => {
                tracing::warn!(request_id, attempt, error = %err, "the connection dropped while the answer was posted; posting it again");
                tokio::time::sleep(ANSWER_RETRY_PAUSE * attempt).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

fn describe(request_id: &str, error: ClientError) -> String {
    let text = error.to_string();
    tracing::error!(request_id, error = %text, "the Runtime API did not accept the invocation's answer");
    text
}

/// Counts a worker as busy for as long as it lives.
struct BusyGuard<'a>(&'a tokio::sync::watch::Sender<usize>);

impl<'a> BusyGuard<'a> {
    fn enter(busy: &'a tokio::sync::watch::Sender<usize>) -> Self {
        busy.send_modify(|count| *count += 1);
        Self(busy)
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        self.0.send_modify(|count| *count = count.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;
    use crate::handler::BoxFuture;
    use crate::test_support::{HoldingRuntimeApi, HELD_EVENT};

    struct Echo;

    impl Handler for Echo {
        fn invoke(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome> {
            Box::pin(async move { HandlerOutcome::Response(invocation.event.clone()) })
        }
    }

    /// Which events came, and whether the Runtime API had acknowledged the answer by then.
    #[derive(Default)]
    struct Recorder {
        acknowledged: std::sync::atomic::AtomicBool,
        seen: Mutex<Vec<(&'static str, bool, Option<Bytes>)>>,
        answer_sent: Notify,
    }

    impl LifecycleObserver for Recorder {
        fn observe<'a>(&'a self, event: &'a LifecycleEvent) -> BoxFuture<'a, ()> {
            let acknowledged = self.acknowledged.load(Ordering::SeqCst);
            let entry = match event {
                LifecycleEvent::AnswerSent(report) => Some(("answer sent", report)),
                LifecycleEvent::Invocation(report) => Some(("invocation", report)),
                _ => None,
            };
            if let Some((kind, report)) = entry {
                let body = match &report.outcome {
                    HandlerOutcome::Response(body) => Some(body.clone()),
                    _ => None,
                };
                self.seen.lock().expect("not poisoned").push((kind, acknowledged, body));
                if kind == "answer sent" {
                    self.answer_sent.notify_one();
                }
            }
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn telemetry_hears_of_the_answer_before_lambda_acknowledges_it_and_again_after() {
        let HoldingRuntimeApi {
            endpoint,
            mut answers,
            release,
        } = HoldingRuntimeApi::start().await;
        let recorder = Arc::new(Recorder::default());
        let options = LifecycleOptions {
            max_invocations: Some(1),
            ..LifecycleOptions::default()
        };
        let observers = Observers::new(vec![recorder.clone() as Arc<dyn LifecycleObserver>]);
        let lifecycle = Lifecycle::new(RuntimeApiClient::new(endpoint), Arc::new(Echo), observers, options);
        let run = tokio::spawn(lifecycle.run());

        let wait = Duration::from_secs(10);
        let answer = tokio::time::timeout(wait, answers.recv()).await.expect("the answer is posted");
        assert_eq!(answer.map(|(_, body)| body).as_deref(), Some(HELD_EVENT));
        tokio::time::timeout(wait, recorder.answer_sent.notified())
            .await
            .expect("AnswerSent comes while the acknowledgement is held back");
        assert_eq!(
            recorder.seen.lock().expect("not poisoned").len(),
            1,
            "no Invocation before the acknowledgement"
        );

        recorder.acknowledged.store(true, Ordering::SeqCst);
        release.notify_one();
        tokio::time::timeout(wait, run).await.expect("the loop ends").expect("no panic");
        let seen = recorder.seen.lock().expect("not poisoned").clone();
        let body = Some(Bytes::from_static(HELD_EVENT));
        assert_eq!(
            seen,
            vec![("answer sent", false, body.clone()), ("invocation", true, body)],
            "one AnswerSent before the acknowledgement, one Invocation after"
        );
    }
}
