//! The sandbox: one runtime process at a time (a *generation*), the invocations waiting for it
//! (`queue`) and the ones it is running (`in_flight`).
//!
//! Every invocation is in exactly one place, and whoever takes it out of the state, under the
//! lock, owns its answer: the runtime's `/response` or `/error`, the timeout, a runtime exit,
//! an init error. So an invocation is answered once, and a second answer is refused.
//!
//! When a generation ends (exit, timeout kill, init error), every invocation assigned to it
//! fails, and the next invoke starts a fresh runtime: a cold start, as on Lambda.
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderValue;
use tokio::sync::{oneshot, watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::body::ChannelBody;
use super::extensions::ExtensionRegistry;
use super::faults::{FaultKind, FaultPlan};
use super::options::EmulatorOptions;
use super::stats::{Counter, Stats, StatsSnapshot};
use super::{ids, process, EmulatorError};

/// How long a killed runtime gets to be reaped before we stop waiting for it.
const REAP_WAIT: Duration = Duration::from_secs(2);
/// How long a runtime that reported an init error gets to exit on its own before it is killed.
const INIT_ERROR_EXIT_WAIT: Duration = Duration::from_secs(1);
/// Lambda gives the runtime 500 ms after SIGTERM when an internal extension is registered.
const SHUTDOWN_GRACE_WITH_EXTENSION: Duration = Duration::from_millis(500);
/// How many answered request ids are remembered, to tell "already answered" from "unknown".
const REMEMBERED_IDS: usize = 4096;

/// One invoke as the runtime will see it.
#[derive(Clone, Debug)]
pub struct InvokeRequest {
    pub request_id: String,
    pub event: Bytes,
    pub trace_id: String,
    /// Decoded `X-Amz-Client-Context` JSON.
    pub client_context: Option<String>,
}

/// How an invocation ended, for the invoke that waits on it.
#[derive(Debug)]
pub enum Answer {
    Response {
        body: Bytes,
    },
    /// A streamed response, relayed as the runtime sends it.
    Stream {
        content_type: Option<HeaderValue>,
        body: ChannelBody,
    },
    /// An error body, answered with `X-Amz-Function-Error: Unhandled`.
    Error {
        body: Bytes,
    },
}

/// What `/next` hands the runtime.
#[derive(Clone, Debug)]
pub struct Dispatched {
    pub request: InvokeRequest,
    pub deadline_ms: u64,
    pub function_arn: String,
    /// A fault to inject in this `/next` answer (see [`super::faults`]).
    pub fault: Option<FaultKind>,
}

/// How `/next` answers.
#[derive(Debug)]
pub enum NextAnswer {
    Dispatch(Dispatched),
    /// Fault injection: drop the connection without answering.
    Reset,
}

/// The invoke side's view of a submitted invocation.
pub struct Submitted {
    /// Fires with the deadline when the runtime takes the invocation from `/next`.
    pub picked_up: oneshot::Receiver<Instant>,
    pub answer: oneshot::Receiver<Answer>,
}

/// The right to answer one invocation, taken by `/response` or `/error`.
pub struct AnswerSlot {
    pending: Pending,
    stats: Weak<Sandbox>,
}

impl AnswerSlot {
    pub fn request_id(&self) -> &str {
        &self.pending.request.request_id
    }

    /// When the invocation times out.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.deadline
    }

    pub fn deliver(self, answer: Answer) {
        if let Some(sandbox) = self.stats.upgrade() {
            sandbox.stats.add(Counter::AnswersDelivered);
        }
        // The invoke may have gone (its client hung up); the answer then has nowhere to go.
        let _ = self.pending.answer.send(answer);
    }
}

/// Why `/response` or `/error` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    AlreadyAnswered,
}

struct Pending {
    request: InvokeRequest,
    answer: oneshot::Sender<Answer>,
    picked_up: Option<oneshot::Sender<Instant>>,
    /// Set when the runtime takes the invocation.
    deadline: Option<Instant>,
    /// Held until the invocation ends, so `AWS_LAMBDA_MAX_CONCURRENCY` bounds invocations, not clients.
    _permit: OwnedSemaphorePermit,
}

impl Pending {
    fn fail(self, body: Bytes) {
        let _ = self.answer.send(Answer::Error { body });
    }
}

struct RunningRuntime {
    generation: u64,
    pid: u32,
    exited: watch::Receiver<bool>,
    /// Taken just before the spawn, so the cold start includes exec and the dynamic loader.
    started: Instant,
    /// Set by this runtime's first `/next` (benches read it as the cold start).
    first_next_after_start: Option<Duration>,
}

#[derive(Default)]
struct RecentIds {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl RecentIds {
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
        }
        while self.order.len() > REMEMBERED_IDS {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }
}

#[derive(Default)]
struct State {
    generation: u64,
    runtime: Option<RunningRuntime>,
    shutting_down: bool,
    queue: VecDeque<Pending>,
    in_flight: HashMap<String, Pending>,
    answered: RecentIds,
    extensions: ExtensionRegistry,
    /// Invocations handed to a runtime so far (fault injection counts in this order).
    dispatched: u64,
    faults: FaultPlan,
    /// Invocations whose first answer is to be dropped (`reset-response`).
    reset_answer: HashSet<String>,
}

impl State {
    /// Every invocation assigned to the current runtime, taken out of the state.
    fn drain_assigned(&mut self) -> Vec<Pending> {
        let mut all: Vec<Pending> = self.queue.drain(..).collect();
        all.extend(self.in_flight.drain().map(|(_, p)| p));
        for p in &all {
            self.answered.insert(p.request.request_id.clone());
        }
        all
    }
}

pub struct Sandbox {
    options: EmulatorOptions,
    /// `127.0.0.1:PORT`, the runtime's `AWS_LAMBDA_RUNTIME_API`.
    runtime_api: String,
    own_env: Vec<(String, String)>,
    state: Mutex<State>,
    work: Notify,
    pub stats: Stats,
    pub concurrency: Arc<Semaphore>,
    this: Weak<Sandbox>,
}

impl Sandbox {
    pub fn new(options: EmulatorOptions, runtime_api: String, own_env: Vec<(String, String)>) -> Arc<Self> {
        let max = options.max_concurrency(|name| own_env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()));
        let state = State {
            faults: FaultPlan::new(&options.faults),
            ..State::default()
        };
        Arc::new_cyclic(|this| Sandbox {
            options,
            runtime_api,
            own_env,
            state: Mutex::new(state),
            work: Notify::new(),
            stats: Stats::default(),
            concurrency: Arc::new(Semaphore::new(max)),
            this: this.clone(),
        })
    }

    pub fn options(&self) -> &EmulatorOptions {
        &self.options
    }

    /// The runtime's environment value for `name` (flags first, then the emulator's own).
    pub fn runtime_env(&self, name: &str) -> Option<String> {
        let flags = self.options.runtime.extra_env.iter().rev();
        flags
            .chain(self.own_env.iter().rev())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind; keep serving.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts the runtime now unless one is running (the init phase before the first invoke).
    pub fn ensure_runtime(&self) -> Result<(), EmulatorError> {
        let mut state = self.lock();
        self.ensure_runtime_locked(&mut state)
    }

    fn ensure_runtime_locked(&self, state: &mut State) -> Result<(), EmulatorError> {
        if state.shutting_down {
            return Err(EmulatorError::ShuttingDown);
        }
        if state.runtime.is_some() {
            return Ok(());
        }
        // Bump the generation before spawning: a `/next` that arrived under an older one
        // belongs to a dead runtime and must not take this runtime's work.
        state.generation += 1;
        let generation = state.generation;
        state.extensions.clear();
        let env = process::runtime_environment(&self.options, &self.runtime_api, self.own_env.iter().cloned());
        let started = Instant::now();
        let mut child = process::spawn(&self.options, &env)?;
        let pid = child.id().ok_or_else(|| EmulatorError::Spawn {
            program: self.options.runtime.program.to_string_lossy().into_owned(),
            source: std::io::Error::other("the process ended before it could be tracked"),
        })?;
        let (exited_tx, exited) = watch::channel(false);
        state.runtime = Some(RunningRuntime {
            generation,
            pid,
            exited,
            started,
            first_next_after_start: None,
        });
        self.stats.add(Counter::RuntimeStarts);
        tracing::info!(pid, generation, "runtime started");
        let this = self.this.clone();
        tokio::spawn(async move {
            let description = match child.wait().await {
                Ok(status) => process::describe_exit(status),
                Err(err) => format!("unknown ({err})"),
            };
            // Children the runtime left behind would hold its pipes and connections open.
            process::signal_group(pid, libc::SIGKILL);
            if let Some(sandbox) = this.upgrade() {
                sandbox.runtime_exited(generation, &description);
            }
            let _ = exited_tx.send(true);
        });
        Ok(())
    }

    /// Queues an invocation for the runtime, starting one if none is running.
    pub fn submit(&self, request: InvokeRequest, permit: OwnedSemaphorePermit) -> Result<Submitted, EmulatorError> {
        let (picked_tx, picked_up) = oneshot::channel();
        let (answer_tx, answer) = oneshot::channel();
        {
            let mut state = self.lock();
            self.ensure_runtime_locked(&mut state)?;
            state.queue.push_back(Pending {
                request,
                answer: answer_tx,
                picked_up: Some(picked_tx),
                deadline: None,
                _permit: permit,
            });
        }
        self.work.notify_waiters();
        Ok(Submitted { picked_up, answer })
    }

    /// The counters, with the current runtime's pid and cold start.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let mut snapshot = self.stats.snapshot();
        let state = self.lock();
        if let Some(runtime) = &state.runtime {
            snapshot.runtime_pid = Some(runtime.pid);
            snapshot.first_next_after_start_us = runtime
                .first_next_after_start
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        }
        snapshot
    }

    /// `/next`: waits for an invocation and hands it over with its deadline (or, when a fault
    /// is planned for it, misbehaves as planned).
    pub async fn next(&self) -> NextAnswer {
        let arrived_under = {
            let mut state = self.lock();
            let generation = state.generation;
            if let Some(runtime) = state.runtime.as_mut().filter(|r| r.generation == generation) {
                runtime.first_next_after_start.get_or_insert_with(|| runtime.started.elapsed());
            }
            generation
        };
        loop {
            let notified = self.work.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let replaced = {
                let mut state = self.lock();
                if state.generation != arrived_under {
                    true
                } else if let Some(answer) = self.fault_before_dispatch(&mut state) {
                    return answer;
                } else if let Some(mut pending) = state.queue.pop_front() {
                    state.dispatched += 1;
                    let number = state.dispatched;
                    let fault = state.faults.take(number, |kind| !kind.before_dispatch());
                    if let Some(kind) = fault {
                        self.note_fault(kind, &pending.request.request_id);
                        if kind == FaultKind::ResetResponse {
                            state.reset_answer.insert(pending.request.request_id.clone());
                        }
                    }
                    let timeout = self.options.function.timeout;
                    let deadline = Instant::now() + timeout;
                    let deadline_ms = ids::epoch_ms(SystemTime::now() + timeout);
                    pending.deadline = Some(deadline);
                    if let Some(picked) = pending.picked_up.take() {
                        let _ = picked.send(deadline);
                    }
                    let dispatched = Dispatched {
                        request: pending.request.clone(),
                        deadline_ms,
                        function_arn: self.options.function.arn(),
                        fault,
                    };
                    state.extensions.broadcast_invoke(&dispatched);
                    state.in_flight.insert(pending.request.request_id.clone(), pending);
                    return NextAnswer::Dispatch(dispatched);
                } else {
                    false
                }
            };
            if replaced {
                // A poll from a runtime that has been replaced: it gets nothing, ever.
                return std::future::pending().await;
            }
            notified.await;
        }
    }

    /// A fault that fires while the next invocation is still queued: the invocation stays
    /// queued, and the following `/next` hands it over.
    fn fault_before_dispatch(&self, state: &mut State) -> Option<NextAnswer> {
        let request = state.queue.front()?.request.clone();
        let number = state.dispatched + 1;
        let kind = state.faults.take(number, FaultKind::before_dispatch)?;
        self.note_fault(kind, &request.request_id);
        Some(match kind {
            FaultKind::ResetNext => NextAnswer::Reset,
            // A copy that no runtime can answer; `fault` makes `/next` leave out its request id.
            _ => NextAnswer::Dispatch(Dispatched {
                request,
                deadline_ms: ids::epoch_ms(SystemTime::now() + self.options.function.timeout),
                function_arn: self.options.function.arn(),
                fault: Some(kind),
            }),
        })
    }

    fn note_fault(&self, kind: FaultKind, request_id: &str) {
        self.stats.add(Counter::FaultsInjected);
        tracing::info!(fault = kind.name(), request_id, "injecting a fault");
    }

    /// `reset-response`: whether this answer for `request_id` is to be dropped unread (once).
    pub fn reset_answer(&self, request_id: &str) -> bool {
        let dropped = self.lock().reset_answer.remove(request_id);
        if dropped {
            tracing::info!(request_id, "dropping the connection instead of accepting the answer");
        }
        dropped
    }

    /// `/response` or `/error` for `request_id`: the right to answer, once.
    pub fn take_for_answer(&self, request_id: &str) -> Result<AnswerSlot, Refusal> {
        let mut state = self.lock();
        if let Some(pending) = state.in_flight.remove(request_id) {
            state.answered.insert(request_id.to_owned());
            Ok(AnswerSlot {
                pending,
                stats: self.this.clone(),
            })
        } else {
            self.stats.add(Counter::AnswersRefused);
            if state.answered.set.contains(request_id) {
                Err(Refusal::AlreadyAnswered)
            } else {
                Err(Refusal::Unknown)
            }
        }
    }

    /// The invocation outlived its time: if it is still unanswered, the runtime's process
    /// group is killed (every other invocation it held fails) and `true` is returned.
    pub async fn time_out(&self, request_id: &str) -> bool {
        {
            let mut state = self.lock();
            let found = state.in_flight.remove(request_id).is_some() || {
                let before = state.queue.len();
                state.queue.retain(|p| p.request.request_id != request_id);
                state.queue.len() != before
            };
            if !found {
                return false;
            }
            state.answered.insert(request_id.to_owned());
        }
        self.kill_for_timeout(request_id).await;
        true
    }

    /// Kills the runtime because `request_id` timed out (already taken out of the state, or
    /// being answered by a stream that overran its deadline).
    pub async fn kill_for_timeout(&self, request_id: &str) {
        let (runtime, others) = {
            let mut state = self.lock();
            (state.runtime.take(), state.drain_assigned())
        };
        self.stats.add(Counter::Timeouts);
        tracing::warn!(request_id, "invocation timed out; killing the runtime");
        for pending in others {
            let body = exit_error_body(&pending.request.request_id, "signal: killed");
            pending.fail(body);
        }
        if let Some(runtime) = runtime {
            process::signal_group(runtime.pid, libc::SIGKILL);
            wait_exited(runtime.exited, REAP_WAIT).await;
        }
    }

    /// The answer Lambda gives for an invocation that timed out.
    pub fn timed_out_body(&self, request_id: &str) -> Bytes {
        error_body(
            "Sandbox.Timedout",
            &format!(
                "{request_id} Task timed out after {} seconds",
                self.options.function.timeout_seconds_text()
            ),
        )
    }

    /// `/init/error`: every waiting invocation gets the error, and the runtime is let go
    /// (killed if it does not exit by itself); the next invoke starts a fresh one.
    pub fn init_error(&self, body: &Bytes) {
        let (runtime, failed) = {
            let mut state = self.lock();
            (state.runtime.take(), state.drain_assigned())
        };
        self.stats.add(Counter::InitErrors);
        tracing::warn!(failed = failed.len(), "runtime reported an init error");
        for pending in failed {
            pending.fail(body.clone());
        }
        if let Some(runtime) = runtime {
            tokio::spawn(async move {
                if !wait_exited(runtime.exited.clone(), INIT_ERROR_EXIT_WAIT).await {
                    process::signal_group(runtime.pid, libc::SIGKILL);
                    wait_exited(runtime.exited, REAP_WAIT).await;
                }
            });
        }
    }

    fn runtime_exited(&self, generation: u64, description: &str) {
        let failed = {
            let mut state = self.lock();
            if state.runtime.as_ref().map(|r| r.generation) != Some(generation) {
                tracing::debug!(generation, description, "replaced runtime exited");
                return;
            }
            state.runtime = None;
            if state.shutting_down {
                tracing::info!(description, "runtime exited at shutdown");
            } else {
                self.stats.add(Counter::RuntimeExits);
                tracing::warn!(description, "runtime exited; the next invoke starts a new one");
            }
            state.drain_assigned()
        };
        for pending in failed {
            let body = exit_error_body(&pending.request.request_id, description);
            pending.fail(body);
        }
    }

    /// Registers an extension of the current runtime; returns its identifier.
    pub fn register_extension(&self, name: &str, invoke: bool, shutdown: bool) -> String {
        self.lock().extensions.register(name, invoke, shutdown)
    }

    pub fn extension_events(&self, id: &str) -> Option<super::extensions::EventReceiver> {
        self.lock().extensions.receiver(id)
    }

    /// Lambda's shutdown: SHUTDOWN to extensions, SIGTERM to the runtime, 500 ms of grace when
    /// an extension is registered, then SIGKILL to its process group.
    pub async fn shutdown(&self) {
        let (runtime, has_extensions) = {
            let mut state = self.lock();
            state.shutting_down = true;
            let deadline_ms = ids::epoch_ms(SystemTime::now() + Duration::from_secs(2));
            state.extensions.broadcast_shutdown(deadline_ms);
            let runtime = state.runtime.as_ref().map(|r| (r.pid, r.exited.clone()));
            (runtime, !state.extensions.is_empty())
        };
        let Some((pid, exited)) = runtime else { return };
        tracing::info!(pid, has_extensions, "shutting down the runtime");
        process::signal_process(pid, libc::SIGTERM);
        let grace = if has_extensions {
            SHUTDOWN_GRACE_WITH_EXTENSION
        } else {
            Duration::ZERO
        };
        if !wait_exited(exited.clone(), grace).await {
            process::signal_group(pid, libc::SIGKILL);
            wait_exited(exited, REAP_WAIT).await;
        }
    }
}

/// Waits up to `limit` for a runtime to be reaped; `true` when it was.
async fn wait_exited(mut exited: watch::Receiver<bool>, limit: Duration) -> bool {
    if *exited.borrow() {
        return true;
    }
    if limit.is_zero() {
        return false;
    }
    matches!(tokio::time::timeout(limit, exited.wait_for(|done| *done)).await, Ok(Ok(_)))
}

/// Lambda's answer when the runtime dies under an invocation.
pub fn exit_error_body(request_id: &str, description: &str) -> Bytes {
    error_body(
        "Runtime.ExitError",
        &format!("RequestId: {request_id} Error: Runtime exited with error: {description}"),
    )
}

pub fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorMessage": message, "errorType": error_type}).to_string())
}
