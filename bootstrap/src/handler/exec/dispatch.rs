//! Who holds which invocation: the queue of invocations waiting for the child's `/next`, and
//! the table of invocations handed to the child and not answered yet.
//!
//! Every change happens under one lock, so an invocation is always in exactly one place and
//! gets exactly one answer: from the child (`/response`, `/error`), or from the bootstrap when
//! the child dies holding it, or fails to start while it waits.
//!
//! Each child incarnation is a *generation*. A proxy connection belongs to the generation that
//! was current when it was accepted; when the child dies the generation moves on, and the dead
//! child's leftover `/next` polls stop without taking work meant for its successor.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{oneshot, Notify};

use crate::handler::{HandlerOutcome, Invocation};
use crate::lifecycle::Timestamp;
use crate::runtime_api::ErrorBody;

/// How an invocation ended, with the times the lifecycle reports.
#[derive(Debug)]
pub struct Answer {
    pub outcome: HandlerOutcome,
    /// The child received the event (its `/next` answered); `None` if it never did.
    pub delivered: Option<Timestamp>,
    /// The child's answer arrived (for a relayed answer: the relay finished).
    pub finished: Timestamp,
}

/// What a starting child did first.
#[derive(Debug)]
pub enum ChildSignal {
    /// It polled `/next`: its init is over.
    Polled,
    /// It posted `/init/error` with this body.
    InitError(ErrorBody),
}

/// The right to answer one invocation, taken by the child's `/response` or `/error`.
pub struct Answering {
    request_id: String,
    sender: oneshot::Sender<Answer>,
    delivered: Timestamp,
    generation: u64,
}

impl Answering {
    /// Ends the invocation with `outcome`.
    pub fn answer(self, outcome: HandlerOutcome, finished: Timestamp) {
        let _ = self.sender.send(Answer {
            outcome,
            delivered: Some(self.delivered),
            finished,
        });
    }
}

/// The same request id is already in flight.
#[derive(Debug, thiserror::Error)]
#[error("invocation {0} is already being handled by the child")]
pub struct DuplicateRequest(pub String);

/// Makes the error one invocation gets, from its request id.
type ErrorFor = dyn Fn(&str) -> ErrorBody + Send + Sync;

#[derive(Default)]
pub struct Dispatcher {
    state: Mutex<State>,
    /// Woken when work is queued or the generation changes.
    wake: Notify,
}

#[derive(Default)]
struct State {
    generation: u64,
    queue: VecDeque<String>,
    in_flight: HashMap<String, Pending>,
    init_watch: Option<oneshot::Sender<ChildSignal>>,
    /// The error the last dead child's invocations got, for answers that were cut short.
    last_death: Option<Arc<ErrorFor>>,
}

struct Pending {
    invocation: Arc<Invocation>,
    /// `None` once the child's answer is being taken.
    answer: Option<oneshot::Sender<Answer>>,
    /// Set when the child's `/next` took it.
    delivered: Option<Timestamp>,
}

impl Dispatcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current child generation (stamped on each accepted proxy connection).
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Queues an invocation for the child; the receiver gets its one answer.
    pub fn submit(&self, invocation: Arc<Invocation>) -> Result<oneshot::Receiver<Answer>, DuplicateRequest> {
        let (sender, receiver) = oneshot::channel();
        let request_id = invocation.context.request_id.clone();
        {
            let mut state = self.lock();
            if state.in_flight.contains_key(&request_id) {
                return Err(DuplicateRequest(request_id));
            }
            state.in_flight.insert(
                request_id.clone(),
                Pending {
                    invocation,
                    answer: Some(sender),
                    delivered: None,
                },
            );
            state.queue.push_back(request_id);
        }
        self.wake.notify_waiters();
        Ok(receiver)
    }

    /// Forgets an invocation (answered, or abandoned by the lifecycle): a later answer from
    /// the child for it is refused.
    pub fn withdraw(&self, request_id: &str) {
        let mut state = self.lock();
        state.in_flight.remove(request_id);
        state.queue.retain(|id| id != request_id);
    }

    /// A child's `/next` on a connection of `generation`: waits for an invocation. `None` when
    /// that generation is over (the child that polled is dead).
    pub async fn next(&self, generation: u64) -> Option<Arc<Invocation>> {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            // Registered before looking, so a submit between the look and the wait still wakes us.
            notified.as_mut().enable();
            {
                let mut state = self.lock();
                if state.generation != generation {
                    return None;
                }
                if let Some(watch) = state.init_watch.take() {
                    let _ = watch.send(ChildSignal::Polled);
                }
                while let Some(request_id) = state.queue.pop_front() {
                    if let Some(pending) = state.in_flight.get_mut(&request_id) {
                        pending.delivered = Some(Timestamp::now());
                        return Some(pending.invocation.clone());
                    }
                }
            }
            notified.await;
        }
    }

    /// The child answers `request_id`: `None` when that id is unknown, not handed to the child,
    /// or already answered (Lambda answers 400 to all three).
    pub fn begin_answer(&self, request_id: &str) -> Option<Answering> {
        let mut state = self.lock();
        let pending = state.in_flight.get_mut(request_id)?;
        let delivered = pending.delivered?;
        let sender = pending.answer.take()?;
        Some(Answering {
            request_id: request_id.to_owned(),
            sender,
            delivered,
            generation: state.generation,
        })
    }

    /// The answer never fully arrived (the child's connection broke): the invocation waits
    /// for another answer, or for the child's death to be reported; if the child already died,
    /// it gets the death's error now.
    pub fn give_back(&self, answering: Answering) {
        let mut state = self.lock();
        if state.generation != answering.generation {
            if let Some(error) = state.last_death.clone() {
                let outcome = HandlerOutcome::Error(error(&answering.request_id));
                drop(state);
                answering.answer(outcome, Timestamp::now());
            }
            return;
        }
        if let Some(pending) = state.in_flight.get_mut(&answering.request_id) {
            pending.answer = Some(answering.sender);
        }
    }

    /// A starting child's first move (`/next` or `/init/error`) will be sent on the receiver.
    pub fn watch_init(&self) -> oneshot::Receiver<ChildSignal> {
        let (sender, receiver) = oneshot::channel();
        self.lock().init_watch = Some(sender);
        receiver
    }

    /// The child posted `/init/error`; `false` when no init is being watched (already done).
    pub fn init_error(&self, generation: u64, body: ErrorBody) -> bool {
        let mut state = self.lock();
        if state.generation != generation {
            return false;
        }
        match state.init_watch.take() {
            Some(watch) => {
                let _ = watch.send(ChildSignal::InitError(body));
                true
            }
            None => false,
        }
    }

    /// The child died: every invocation it held gets `error(request_id)`; queued ones wait
    /// for the next child. Returns how many were failed.
    pub fn child_died(&self, error: impl Fn(&str) -> ErrorBody + Send + Sync + 'static) -> usize {
        let failed = {
            let mut state = self.lock();
            state.generation += 1;
            state.init_watch = None;
            let failed = fail_where(&mut state, |pending| pending.delivered.is_some(), &error);
            state.last_death = Some(Arc::new(error));
            failed
        };
        // Ends the dead generation's waiting `/next` polls.
        self.wake.notify_waiters();
        failed
    }

    /// A (re)started child never became ready: every queued invocation gets `error(request_id)`.
    pub fn start_failed(&self, error: impl Fn(&str) -> ErrorBody) -> usize {
        let failed = {
            let mut state = self.lock();
            state.generation += 1;
            state.init_watch = None;
            state.queue.clear();
            fail_where(&mut state, |_| true, &error)
        };
        self.wake.notify_waiters();
        failed
    }
}

fn fail_where(state: &mut State, which: impl Fn(&Pending) -> bool, error: &impl Fn(&str) -> ErrorBody) -> usize {
    let finished = Timestamp::now();
    let mut failed = 0;
    for (request_id, pending) in &mut state.in_flight {
        if !which(pending) {
            continue;
        }
        if let Some(sender) = pending.answer.take() {
            failed += 1;
            let _ = sender.send(Answer {
                outcome: HandlerOutcome::Error(error(request_id)),
                delivered: pending.delivered,
                finished,
            });
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http::HeaderMap;

    use super::*;
    use crate::runtime_api::InvocationContext;

    fn invocation(id: &str) -> Arc<Invocation> {
        Arc::new(Invocation {
            context: InvocationContext {
                request_id: id.into(),
                ..Default::default()
            },
            headers: HeaderMap::new(),
            event: Bytes::from_static(b"{}"),
        })
    }

    #[tokio::test]
    async fn one_answer_per_invocation() {
        let dispatcher = Dispatcher::default();
        let answer = dispatcher.submit(invocation("a")).unwrap();
        assert!(dispatcher.begin_answer("a").is_none(), "not delivered yet");
        assert_eq!(dispatcher.next(0).await.unwrap().context.request_id, "a");
        let answering = dispatcher.begin_answer("a").unwrap();
        assert!(dispatcher.begin_answer("a").is_none(), "second answer refused");
        assert!(dispatcher.begin_answer("unknown").is_none());
        answering.answer(HandlerOutcome::Response(Bytes::from_static(b"ok")), Timestamp::now());
        let answer = answer.await.unwrap();
        assert!(matches!(answer.outcome, HandlerOutcome::Response(ref b) if b == "ok"));
        assert!(answer.delivered.is_some());
    }

    #[tokio::test]
    async fn death_fails_held_invocations_and_keeps_queued_ones() {
        let dispatcher = Arc::new(Dispatcher::default());
        let held = dispatcher.submit(invocation("held")).unwrap();
        dispatcher.next(0).await.unwrap();
        let queued = dispatcher.submit(invocation("queued")).unwrap();
        let stale = tokio::spawn({
            let dispatcher = dispatcher.clone();
            async move { dispatcher.next(7).await.is_none() }
        });
        assert_eq!(dispatcher.child_died(|id| ErrorBody::new("Runtime.ExitError", id)), 1);
        let held = held.await.unwrap();
        assert!(matches!(held.outcome, HandlerOutcome::Error(ref e) if e.error_message == "held"));
        assert!(stale.await.unwrap(), "a dead generation's poll ends");
        assert_eq!(dispatcher.next(1).await.unwrap().context.request_id, "queued");
        drop(queued);
    }

    #[tokio::test]
    async fn waiting_poll_is_woken_by_submit_and_reports_init() {
        let dispatcher = Arc::new(Dispatcher::default());
        let init = dispatcher.watch_init();
        let poll = tokio::spawn({
            let dispatcher = dispatcher.clone();
            async move { dispatcher.next(0).await.map(|i| i.context.request_id.clone()) }
        });
        assert!(matches!(init.await.unwrap(), ChildSignal::Polled));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let _answer = dispatcher.submit(invocation("x")).unwrap();
        assert_eq!(poll.await.unwrap().as_deref(), Some("x"));
    }

    #[tokio::test]
    async fn an_answer_cut_short_waits_for_another_or_gets_the_death() {
        let dispatcher = Dispatcher::default();
        let answer = dispatcher.submit(invocation("a")).unwrap();
        dispatcher.next(0).await.unwrap();
        // The child's connection broke mid-body: the invocation can still be answered.
        dispatcher.give_back(dispatcher.begin_answer("a").unwrap());
        let answering = dispatcher.begin_answer("a").expect("answerable again");
        // Now the child dies while sending it: the death's error is the answer.
        dispatcher.child_died(|id| ErrorBody::new("Runtime.ExitError", format!("{id} died")));
        dispatcher.give_back(answering);
        let answer = answer.await.unwrap();
        assert!(matches!(answer.outcome, HandlerOutcome::Error(ref e) if e.error_message == "a died"));
    }

    #[tokio::test]
    async fn failed_start_fails_queued_invocations() {
        let dispatcher = Dispatcher::default();
        let queued = dispatcher.submit(invocation("q")).unwrap();
        assert!(dispatcher.submit(invocation("q")).is_err());
        assert_eq!(dispatcher.start_failed(|_| ErrorBody::new("Runtime.ExitError", "gone")), 1);
        assert!(queued.await.unwrap().delivered.is_none());
    }
}
