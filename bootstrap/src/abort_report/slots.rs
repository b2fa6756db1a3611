//! The invocations in flight, as the fatal-signal report needs them: fixed slots in a static, each
//! holding a copy of the request id (and Lambda Managed Instances' invocation id) and the
//! invocation's pre-serialised metric tags, plus the invocation itself ([`Pending`]) for the
//! telemetry that runs after the signal-safe part ([`super::last_words`]).
//!
//! A signal handler cannot be handed anything, so this is process-wide state, written only
//! through [`arm`] and the [`Armed`] guard. Each slot's `state` says who may touch its bytes:
//! the arming thread while `WRITING`, the signal handler once it moved it from `ARMED` to
//! `REPORTING`. Arming costs a compare-and-swap and a copy of a few dozen bytes.
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use super::cause::Cause;

use crate::handler::Invocation;
use crate::lifecycle::Timestamp;

/// More invocations at once than this (`AWS_LAMBDA_MAX_CONCURRENCY`) go unwatched.
pub const SLOT_COUNT: usize = 32;
/// Request ids are UUIDs (36 bytes); anything longer than this goes unwatched.
pub const ID_CAPACITY: usize = 128;

const FREE: u8 = 0;
const WRITING: u8 = 1;
const ARMED: u8 = 2;
const REPORTING: u8 = 3;

pub struct Slot {
    state: AtomicU8,
    /// The kernel thread that calls the handler.
    thread: AtomicI32,
    /// The cause the signal handler answered with, as [`Cause::encode`] makes it (0: none yet).
    cause_kind: AtomicU8,
    cause_size: AtomicUsize,
    request_id: UnsafeCell<[u8; ID_CAPACITY]>,
    request_id_len: AtomicUsize,
    invocation_id: UnsafeCell<[u8; ID_CAPACITY]>,
    invocation_id_len: AtomicUsize,
    /// The tags' JSON (leaked: the slot outlives any invocation).
    tags: UnsafeCell<&'static [u8]>,
    /// Never touched by the signal handler (dropping it is not signal-safe).
    pending: UnsafeCell<Option<Pending>>,
}

/// A watched invocation as the lifecycle would report it, for the telemetry of its abort.
#[derive(Clone, Debug)]
pub struct Pending {
    pub invocation: Arc<Invocation>,
    pub cold_start: bool,
    /// When the handler was called.
    pub started: Timestamp,
}

// SAFETY: the cells are only written by the thread that moved `state` to WRITING and only read
// by the one that moved it from ARMED to REPORTING (see the module's documentation).
unsafe impl Sync for Slot {}

impl Slot {
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(FREE),
            thread: AtomicI32::new(0),
            cause_kind: AtomicU8::new(0),
            cause_size: AtomicUsize::new(0),
            request_id: UnsafeCell::new([0; ID_CAPACITY]),
            request_id_len: AtomicUsize::new(0),
            invocation_id: UnsafeCell::new([0; ID_CAPACITY]),
            invocation_id_len: AtomicUsize::new(0),
            tags: UnsafeCell::new(&[]),
            pending: UnsafeCell::new(None),
        }
    }
}

static SLOTS: [Slot; SLOT_COUNT] = [const { Slot::new() }; SLOT_COUNT];

/// An invocation being watched; dropping the guard stops watching it.
#[derive(Debug)]
pub struct Armed {
    index: usize,
}

impl Drop for Armed {
    fn drop(&mut self) {
        let slot = &SLOTS[self.index];
        // Fails only when the signal handler is reporting this slot: the process is ending, and
        // the slot is left as it is.
        if slot
            .state
            .compare_exchange(ARMED, WRITING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread moved the slot to WRITING.
            let pending = unsafe { (*slot.pending.get()).take() };
            slot.state.store(FREE, Ordering::Release);
            drop(pending);
        }
    }
}

/// Whether `id` can go into a request path and a JSON string as it is: visible ASCII, none of
/// the characters that would end or escape either.
pub fn is_plain_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= ID_CAPACITY
        && id
            .iter()
            .all(|&b| b.is_ascii_graphic() && !matches!(b, b'/' | b'?' | b'#' | b'%' | b'"' | b'\\'))
}

/// Watches an invocation: from now until the guard drops, an abort answers it. `None` when
/// every slot is taken or an id is not plain ([`is_plain_id`]); the invocation then goes
/// unwatched, as before this module existed.
pub fn arm(request_id: &str, invocation_id: Option<&str>, tags: &'static [u8], thread: i32, pending: Pending) -> Option<Armed> {
    let invocation_id = invocation_id.unwrap_or_default().as_bytes();
    if !is_plain_id(request_id.as_bytes()) || !(invocation_id.is_empty() || is_plain_id(invocation_id)) {
        return None;
    }
    let index = SLOTS.iter().position(|slot| {
        slot.state
            .compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    })?;
    let slot = &SLOTS[index];
    // SAFETY: this thread moved the slot to WRITING: nobody else reads or writes its cells.
    unsafe {
        (&mut *slot.request_id.get())[..request_id.len()].copy_from_slice(request_id.as_bytes());
        (&mut *slot.invocation_id.get())[..invocation_id.len()].copy_from_slice(invocation_id);
        *slot.tags.get() = tags;
        *slot.pending.get() = Some(pending);
    }
    slot.thread.store(thread, Ordering::Relaxed);
    slot.cause_kind.store(0, Ordering::Relaxed);
    slot.request_id_len.store(request_id.len(), Ordering::Relaxed);
    slot.invocation_id_len.store(invocation_id.len(), Ordering::Relaxed);
    slot.state.store(ARMED, Ordering::Release);
    Some(Armed { index })
}

/// One watched invocation, claimed by the signal handler.
pub struct Claimed<'a> {
    pub request_id: &'a [u8],
    /// Empty when `/next` sent none.
    pub invocation_id: &'a [u8],
    /// The tags' JSON array for its metric lines.
    pub tags: &'static [u8],
    /// The kernel thread that calls its handler.
    pub thread: i32,
    slot: &'static Slot,
}

impl Claimed<'_> {
    /// Records the cause it is answered with, for the telemetry task (signal-safe).
    pub fn decide(&self, cause: Cause) {
        let (kind, detail) = cause.encode();
        self.slot.cause_size.store(detail, Ordering::Relaxed);
        self.slot.cause_kind.store(kind, Ordering::Release);
    }

    /// The cause recorded by [`Claimed::decide`]; aborted if none was.
    pub fn cause(&self) -> Cause {
        cause_of(self.slot)
    }
}

fn cause_of(slot: &Slot) -> Cause {
    let kind = slot.cause_kind.load(Ordering::Acquire);
    Cause::decode(kind, slot.cause_size.load(Ordering::Relaxed))
}

/// A claimed slot's fields.
///
/// # Safety
/// The slot must be claimed (REPORTING): never written again.
unsafe fn claimed(slot: &'static Slot) -> Claimed<'static> {
    // SAFETY: guaranteed by the caller; the writer published the cells before its Release store
    // of ARMED, which the claim's Acquire saw.
    unsafe {
        Claimed {
            request_id: &(&*slot.request_id.get())[..slot.request_id_len.load(Ordering::Relaxed)],
            invocation_id: &(&*slot.invocation_id.get())[..slot.invocation_id_len.load(Ordering::Relaxed)],
            tags: *slot.tags.get(),
            thread: slot.thread.load(Ordering::Relaxed),
            slot,
        }
    }
}

/// Calls `report` for every watched invocation, each claimed for good: its guard no longer
/// frees it, so nothing rewrites it while it is read (the process is ending).
pub fn claim_all(mut report: impl FnMut(Claimed<'_>)) {
    for slot in &SLOTS {
        if slot
            .state
            .compare_exchange(ARMED, REPORTING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread just claimed the slot.
            report(unsafe { claimed(slot) });
        }
    }
}

/// Calls `visit` for every invocation [`claim_all`] claimed, again (signal-safe).
pub fn for_each_claimed(mut visit: impl FnMut(Claimed<'_>)) {
    for slot in &SLOTS {
        if slot.state.load(Ordering::Acquire) == REPORTING {
            // SAFETY: the slot is claimed.
            visit(unsafe { claimed(slot) });
        }
    }
}

/// The invocations [`claim_all`] claimed, for the telemetry of their abort (not signal-safe:
/// it clones; run by the last-words task, off the aborting thread).
pub fn claimed_pending() -> Vec<(Pending, Cause)> {
    SLOTS
        .iter()
        .filter(|slot| slot.state.load(Ordering::Acquire) == REPORTING)
        // SAFETY: a claimed slot is never written again, and only read here besides.
        .filter_map(|slot| unsafe { (*slot.pending.get()).clone() }.map(|pending| (pending, cause_of(slot))))
        .collect()
}

/// Gives back every claimed slot (tests only: a real claim ends with the process).
#[cfg(test)]
pub fn release_claimed() {
    for slot in &SLOTS {
        if slot
            .state
            .compare_exchange(REPORTING, WRITING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            // SAFETY: this thread moved the slot to WRITING.
            drop(unsafe { (*slot.pending.get()).take() });
            slot.state.store(FREE, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(request_id: &str) -> Pending {
        Pending {
            invocation: Arc::new(Invocation {
                context: crate::runtime_api::InvocationContext {
                    request_id: request_id.to_owned(),
                    ..Default::default()
                },
                headers: http::HeaderMap::new(),
                event: bytes::Bytes::new(),
            }),
            cold_start: false,
            started: Timestamp::now(),
        }
    }

    fn armed(request_id: &str, invocation_id: Option<&str>, tags: &'static [u8]) -> Option<Armed> {
        arm(request_id, invocation_id, tags, 7, pending(request_id))
    }

    fn claimed() -> Vec<(String, String, String)> {
        let text = |c: &Claimed<'_>| {
            (
                String::from_utf8_lossy(c.request_id).into_owned(),
                String::from_utf8_lossy(c.invocation_id).into_owned(),
                String::from_utf8_lossy(c.tags).into_owned(),
            )
        };
        let mut seen = Vec::new();
        claim_all(|c| seen.push(text(&c)));
        let mut again = Vec::new();
        for_each_claimed(|c| again.push(text(&c)));
        assert_eq!(seen, again, "a claimed slot reads the same the second time");
        for_each_claimed(|c| assert_eq!((c.thread, c.cause()), (7, Cause::Aborted), "nothing decided yet"));
        for_each_claimed(|c| c.decide(Cause::OutOfMemory { size: c.request_id.len() }));
        let pending = claimed_pending();
        for (p, cause) in &pending {
            let size = p.invocation.context.request_id.len();
            assert_eq!(*cause, Cause::OutOfMemory { size }, "the decided cause reaches the task");
        }
        let ids: Vec<String> = pending.iter().map(|(p, _)| p.invocation.context.request_id.clone()).collect();
        let mut seen_ids: Vec<String> = seen.iter().map(|(id, _, _)| id.clone()).collect();
        seen_ids.sort();
        let mut ids = ids;
        ids.sort();
        assert_eq!(ids, seen_ids, "the pending invocations are the claimed ones");
        release_claimed();
        seen
    }

    // The slots are process-wide: one test, so no other test races them.
    #[test]
    fn armed_invocations_are_claimed_once_and_disarmed_ones_never() {
        assert!(is_plain_id(b"8476a536-e9f4-11e8-9739-2dfe598c3fcd"));
        for bad in [&b""[..], b"a b", b"a/b", b"a\"b", b"a\\b", b"a\r\nb", &[b'x'; ID_CAPACITY + 1]] {
            assert!(!is_plain_id(bad), "{bad:?}");
        }
        assert!(armed("bad id", None, b"[]").is_none());
        assert!(armed("ok", Some("bad/id"), b"[]").is_none());

        let first = armed("8476a536-e9f4-11e8-9739-2dfe598c3fcd", None, b"[\"a:b\"]").unwrap();
        let second = armed("second", Some("inv-1"), b"[]").unwrap();
        drop(armed("gone", None, b"[]").unwrap());
        let mut seen = claimed();
        seen.sort();
        assert_eq!(
            seen,
            [
                (
                    "8476a536-e9f4-11e8-9739-2dfe598c3fcd".to_owned(),
                    String::new(),
                    "[\"a:b\"]".to_owned()
                ),
                ("second".to_owned(), "inv-1".to_owned(), "[]".to_owned()),
            ]
        );
        drop((first, second));
        assert!(claimed().is_empty(), "disarmed after the guards dropped");

        let all: Vec<_> = (0..SLOT_COUNT).map(|i| armed(&format!("r{i}"), None, b"[]").unwrap()).collect();
        assert!(armed("one-too-many", None, b"[]").is_none(), "no free slot: unwatched, not blocked");
        drop(all);
        assert!(armed("again", None, b"[]").is_some());
    }
}
