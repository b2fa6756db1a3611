//! Watches each in-flight invocation's deadline from a task of its own, so the watch fires
//! even while a dylib handler blocks its thread.
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
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

/// What the worker and the watch task share. Arming and disarming only write here: the task is
/// woken only when it has nothing to wait for, or must fire sooner than it planned, so an
/// invocation costs no hand-off to the telemetry thread.
#[derive(Default)]
struct Shared {
    armed: Option<Watched>,
    /// Whether the timeout of the armed invocation was already reported.
    fired: bool,
    /// When the task will look next; `None` while it waits to be told.
    planned: Option<Instant>,
}

/// One per lifecycle worker: arm it when an invocation starts, disarm it when it is answered.
pub struct DeadlineWatch {
    shared: Arc<Mutex<Shared>>,
    wake: Arc<Notify>,
    margin: Duration,
}

impl DeadlineWatch {
    /// Starts the watch task on `runtime` (the current one when `None`): never the runtime whose
    /// thread a dylib handler blocks. `margin` is how long before the deadline it fires
    /// (`DD_APM_FLUSH_DEADLINE_MILLISECONDS`).
    pub fn spawn(margin: Duration, observers: Observers, runtime: Option<&tokio::runtime::Handle>) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let wake = Arc::new(Notify::new());
        let watch = watch_task(shared.clone(), wake.clone(), observers);
        match runtime {
            Some(runtime) => drop(runtime.spawn(watch)),
            None => drop(tokio::spawn(watch)),
        }
        Self { shared, wake, margin }
    }

    /// Watches `invocation` until [`DeadlineWatch::disarm`]. A deadline that is unknown (0) or
    /// already past when the invocation arrives is not watched.
    pub fn arm(&self, invocation: &Arc<Invocation>, received: Timestamp, cold_start: bool) {
        let deadline_ms = invocation.context.deadline_ms;
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let Ok(mut shared) = self.shared.lock() else { return };
        shared.fired = false;
        shared.armed = None;
        if deadline_ms == 0 || deadline_ms <= now_ms {
            // Not a real deadline (cargo-lambda's emulator sends a constant 600000): the platform
            // enforces its own timeout, and a watch that fires at once would only add noise.
            return;
        }
        let remaining = Duration::from_millis(deadline_ms - now_ms);
        let fires_at = Instant::now() + remaining.saturating_sub(self.margin);
        shared.armed = Some(Watched {
            fires_at,
            invocation: invocation.clone(),
            received,
            cold_start,
        });
        // With a fixed function timeout each deadline is later than the last, so the task,
        // asleep until an earlier one, needs no wake: it looks again then.
        if shared.planned.is_none_or(|planned| planned > fires_at) {
            shared.planned = Some(fires_at);
            drop(shared);
            self.wake.notify_one();
        }
    }

    /// Stops watching; returns whether the watch fired for this invocation.
    pub fn disarm(&self) -> bool {
        let Ok(mut shared) = self.shared.lock() else { return false };
        shared.armed = None;
        std::mem::take(&mut shared.fired)
    }
}

/// Sleeps until the planned time, then reports the armed invocation if its time has come.
async fn watch_task(shared: Arc<Mutex<Shared>>, wake: Arc<Notify>, observers: Observers) {
    loop {
        let planned = {
            let Ok(mut state) = shared.lock() else { return };
            let next = state.armed.as_ref().filter(|_| !state.fired).map(|w| w.fires_at);
            state.planned = next;
            next
        };
        match planned {
            None => wake.notified().await,
            Some(at) => {
                tokio::select! {
                    () = wake.notified() => continue,
                    () = tokio::time::sleep_until(at) => {}
                }
                let due = {
                    let Ok(mut state) = shared.lock() else { return };
                    let due = state.armed.clone().filter(|w| !state.fired && w.fires_at <= Instant::now());
                    if due.is_some() {
                        state.fired = true;
                    }
                    due
                };
                if let Some(watched) = due {
                    tracing::warn!(request_id = %watched.invocation.context.request_id, "the invocation is about to time out; flushing telemetry now");
                    let event = LifecycleEvent::TimeoutApproaching {
                        invocation: watched.invocation.clone(),
                        received: watched.received,
                        at: Timestamp::now(),
                        cold_start: watched.cold_start,
                    };
                    observers.notify(&event).await;
                }
            }
        }
    }
}
