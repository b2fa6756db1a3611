//! Which invocation a log record belongs to: the one current on the logging thread.
//!
//! The bootstrap calls a handler on one of its own threads and that call is the invocation, so
//! the handler glue ([`crate::serve`]) makes the invocation current on that thread for the
//! call's duration. Threads and tasks the handler starts carry it with
//! [`super::scope`] and [`super::in_invocation`]. A thread-local rather than a process-wide
//! slot: with `AWS_LAMBDA_MAX_CONCURRENCY` above 1, several invocations run at once, each on
//! its thread.
//!
//! The invocation's trace ids are asked of the host once, on the first record that needs them,
//! and kept with the invocation (the host decides a trace once and never changes it).
use std::cell::RefCell;
use std::sync::Arc;

use crate::abi::RawTraceContext;
use crate::host::host;

/// One invocation as the logger sees it.
#[derive(Clone, Debug)]
pub(crate) struct Invocation {
    request_id: Arc<str>,
    trace: TraceLookup,
}

#[derive(Clone, Copy, Debug)]
enum TraceLookup {
    NotAsked,
    /// No host is attached, or the host has neither a trace nor correlation ids for the request.
    Absent,
    Present(RawTraceContext),
}

impl Invocation {
    pub fn new(request_id: &str) -> Self {
        Self {
            request_id: Arc::from(request_id),
            trace: TraceLookup::NotAsked,
        }
    }

    /// An invocation whose trace context is already known (a span's).
    pub fn with_trace(request_id: &str, trace: RawTraceContext) -> Self {
        Self {
            request_id: Arc::from(request_id),
            trace: TraceLookup::Present(trace),
        }
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The ids of the invocation's records (its trace context, or with tracing off the host's
    /// correlation ids), asked of the host on the first call only.
    pub fn trace(&mut self) -> Option<RawTraceContext> {
        if let TraceLookup::NotAsked = self.trace {
            self.trace = match host().and_then(|host| host.log_correlation(&self.request_id)) {
                Some(context) => TraceLookup::Present(context),
                None => TraceLookup::Absent,
            };
        }
        match self.trace {
            TraceLookup::Present(context) => Some(context),
            TraceLookup::NotAsked | TraceLookup::Absent => None,
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Invocation>> = const { RefCell::new(None) };
}

/// While alive, the invocation in the slot it was made from is the current one of this thread;
/// dropping it puts the previous one back and returns the invocation (with any trace ids
/// looked up meanwhile) to its slot. Swaps only: entering and leaving never allocate.
pub(crate) struct Entered<'a> {
    slot: &'a mut Option<Invocation>,
    swapped: bool,
}

/// Makes `slot`'s invocation current on this thread until the guard is dropped. Does nothing
/// (and never panics) if the thread is exiting or a log call on this thread is in progress.
pub(crate) fn enter(slot: &mut Option<Invocation>) -> Entered<'_> {
    let swapped = swap(slot);
    Entered { slot, swapped }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        if self.swapped {
            swap(self.slot);
        }
    }
}

fn swap(slot: &mut Option<Invocation>) -> bool {
    CURRENT
        .try_with(|current| match current.try_borrow_mut() {
            Ok(mut current) => {
                std::mem::swap(&mut *current, slot);
                true
            }
            Err(_) => false,
        })
        .unwrap_or(false)
}

/// Runs `f` with this thread's current invocation (`None` outside one, or when called from
/// inside `f` itself: a record formatted while another is being written on the same thread).
pub(crate) fn with_current<R>(mut f: impl FnMut(Option<&mut Invocation>) -> R) -> R {
    let result = CURRENT.try_with(|current| current.try_borrow_mut().ok().map(|mut current| f(current.as_mut())));
    match result {
        Ok(Some(result)) => result,
        Ok(None) | Err(_) => f(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current_request_id() -> Option<String> {
        with_current(|current| current.map(|c| c.request_id().to_owned()))
    }

    #[test]
    fn entering_nests_and_restores() {
        assert_eq!(current_request_id(), None);
        let mut outer = Some(Invocation::new("outer"));
        {
            let _outer = enter(&mut outer);
            assert_eq!(current_request_id().as_deref(), Some("outer"));
            let mut inner = Some(Invocation::new("inner"));
            {
                let _inner = enter(&mut inner);
                assert_eq!(current_request_id().as_deref(), Some("inner"));
            }
            assert_eq!(inner.unwrap().request_id(), "inner", "the slot gets its invocation back");
            assert_eq!(current_request_id().as_deref(), Some("outer"));
        }
        assert_eq!(current_request_id(), None);
        assert_eq!(outer.unwrap().request_id(), "outer");
    }

    #[test]
    fn other_threads_do_not_see_it() {
        let mut slot = Some(Invocation::new("here"));
        let _entered = enter(&mut slot);
        let elsewhere = std::thread::spawn(current_request_id).join().unwrap();
        assert_eq!(elsewhere, None);
    }

    #[test]
    fn reentrant_access_sees_none_instead_of_panicking() {
        let mut slot = Some(Invocation::new("busy"));
        let _entered = enter(&mut slot);
        let inner = with_current(|outer| {
            assert!(outer.is_some());
            current_request_id()
        });
        assert_eq!(inner, None);
    }

    #[test]
    fn without_a_host_there_is_no_trace() {
        let mut invocation = Invocation::new("r");
        assert_eq!(invocation.trace(), None);
        assert!(matches!(invocation.trace, TraceLookup::Absent));
    }
}
