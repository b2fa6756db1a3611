use std::sync::Arc;

use super::{LifecycleEvent, LifecycleObserver, Timestamp};
use crate::handler::Invocation;

/// The telemetry consumers of lifecycle events, notified in order.
#[derive(Clone, Default)]
pub struct Observers(Vec<Arc<dyn LifecycleObserver>>);

impl Observers {
    pub fn new(observers: Vec<Arc<dyn LifecycleObserver>>) -> Self {
        Self(observers)
    }

    pub fn push(&mut self, observer: Arc<dyn LifecycleObserver>) {
        self.0.push(observer);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Tells every observer the handler is about to run (synchronous and cheap, see
    /// [`LifecycleObserver::invocation_started`]).
    pub fn invocation_started(&self, invocation: &Arc<Invocation>, handler_started: Timestamp) {
        for observer in &self.0 {
            observer.invocation_started(invocation, handler_started);
        }
    }

    /// The response body to post: `body`, or what an observer replaced it with.
    pub fn rewrite_response(&self, invocation: &Invocation, body: bytes::Bytes) -> bytes::Bytes {
        self.0
            .iter()
            .fold(body, |body, observer| observer.rewrite_response(invocation, &body).unwrap_or(body))
    }

    /// Delivers one event to every observer and waits until each has dealt with it.
    pub async fn notify(&self, event: &LifecycleEvent) {
        for observer in &self.0 {
            observer.observe(event).await;
        }
    }
}
