//! Watches each in-flight invocation's deadline from a task of its own, so the watch fires
//! even while a dylib handler blocks its thread.
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio::time::Instant;

use super::{LifecycleEvent, Observers, Timestamp};
use crate::handler::Invocation;

/// What the watch needs to know about the invocation in flight.
#[derive(Clone)]
struct Watched {
    fires_at: Instant,
    invocation: Arc<Invocation>,
    received: Timestamp,
    cold_start: bool,
}

/// One per lifecycle worker: arm it when an invocation starts, disarm it when it is answered.
pub struct DeadlineWatch {
    sender: watch::Sender<Option<Watched>>,
    fired: Arc<std::sync::atomic::AtomicBool>,
    margin: Duration,
}

impl DeadlineWatch {
    /// Starts the watch task. `margin` is how long before the deadline it fires
    /// (`DD_APM_FLUSH_DEADLINE_MILLISECONDS`).
    pub fn spawn(margin: Duration, observers: Observers) -> Self {
        let (sender, mut receiver) = watch::channel::<Option<Watched>>(None);
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fired_flag = fired.clone();
        tokio::spawn(async move {
            loop {
                let current = receiver.borrow_and_update().clone();
                match current {
                    None => {
                        if receiver.changed().await.is_err() {
                            return;
                        }
                    }
                    Some(watched) => {
                        tokio::select! {
                            changed = receiver.changed() => if changed.is_err() { return },
                            () = tokio::time::sleep_until(watched.fires_at) => {
                                fired_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                                tracing::warn!(request_id = %watched.invocation.context.request_id, "the invocation is about to time out; flushing telemetry now");
                                let event = LifecycleEvent::TimeoutApproaching {
                                    invocation: watched.invocation.clone(),
                                    received: watched.received,
                                    at: Timestamp::now(),
                                    cold_start: watched.cold_start,
                                };
                                observers.notify(&event).await;
                                // Wait for the next invocation before watching again.
                                if receiver.changed().await.is_err() { return }
                            }
                        }
                    }
                }
            }
        });
        Self { sender, fired, margin }
    }

    /// Watches `invocation` until [`DeadlineWatch::disarm`]. A deadline that is unknown (0) or
    /// already past when the invocation arrives is not watched.
    pub fn arm(&self, invocation: &Arc<Invocation>, received: Timestamp, cold_start: bool) {
        self.fired.store(false, std::sync::atomic::Ordering::SeqCst);
        let deadline_ms = invocation.context.deadline_ms;
        if deadline_ms == 0 {
            return;
        }
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        if deadline_ms <= now_ms {
            // Not a real deadline (cargo-lambda's emulator sends a constant 600000): the platform
            // enforces its own timeout, and a watch that fires at once would only add noise.
            return;
        }
        let remaining = Duration::from_millis(deadline_ms - now_ms);
        let fires_at = Instant::now() + remaining.saturating_sub(self.margin);
        self.sender.send_replace(Some(Watched {
            fires_at,
            invocation: invocation.clone(),
            received,
            cold_start,
        }));
    }

    /// Stops watching; returns whether the watch fired for this invocation.
    pub fn disarm(&self) -> bool {
        self.sender.send_replace(None);
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}
