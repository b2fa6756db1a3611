//! Watches the child's output for a few lines of interest (the runtimes' out-of-memory
//! messages) and keeps them for telemetry, attributed to the invocation the child held when it
//! wrote them.
//!
//! The watch must cost nothing measurable on the copy path: each chunk the pumps copy is first
//! searched for a few short needles with `memchr::memmem` (SIMD), and only a chunk that
//! contains one is looked at line by line. What the lines mean is not decided here: telemetry
//! gives the needles and the line test, and classifies the lines it takes.
//!
//! Attribution, and why it is exact:
//! - an invocation is *open* from its submission to the child until telemetry takes its lines;
//!   a line seen while one is open belongs to the oldest open one;
//! - a line seen while none is open (the child's init, a restart, between invocations) waits
//!   for the next taker: an init's report or the next invocation's, so it is never lost;
//! - [`OutputWatch::take`] first reads whatever the child's pipes hold (the pumps' own copy
//!   step, under their lock), so a line the child wrote before answering is seen even if the
//!   pump thread had not been scheduled yet;
//! - a dead child's pipes are drained before its death is reported (see `child.rs`), and
//!   [`OutputWatch::child_exited`] closes its invocations, so a restarted child's lines never
//!   land on an invocation its predecessor held.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use memchr::memmem;

/// A kept line longer than this is cut (the start of a line says what it is).
const MAX_KEPT_LINE: usize = 1024;
/// Lines kept per invocation (and while none is open); more are not needed to classify it.
const MAX_KEPT_LINES: usize = 8;
/// Invocations tracked at once; the oldest is forgotten beyond (only if telemetry never takes).
const MAX_TRACKED: usize = 64;

/// Something that can copy out, right now, what a pipe holds (a pump).
pub(super) trait Drainable: Send + Sync {
    fn drain_available(&self);
}

/// The lines of interest seen in a child's output, per invocation. Shared by the pumps that
/// scan, the handler that opens invocations, and the telemetry that takes their lines.
pub struct OutputWatch {
    /// A chunk that contains none of these has no line of interest.
    prefilter: Vec<memmem::Finder<'static>>,
    /// Whether one line (without its newline) is of interest.
    wanted: fn(&[u8]) -> bool,
    state: Mutex<WatchState>,
    /// The running child's pumps, read from by [`OutputWatch::take`].
    pumps: Mutex<Vec<Weak<dyn Drainable>>>,
}

#[derive(Default)]
struct WatchState {
    /// Request ids the running child holds (submitted, lines not taken), oldest first.
    open: VecDeque<String>,
    /// Lines found, per request id, until taken.
    seen: VecDeque<(String, Vec<Vec<u8>>)>,
    /// Lines found while no invocation was open.
    unattributed: Vec<Vec<u8>>,
}

impl std::fmt::Debug for OutputWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputWatch")
            .field("needles", &self.prefilter.len())
            .finish_non_exhaustive()
    }
}

impl OutputWatch {
    /// Watches for lines that contain one of `needles` and pass `wanted`.
    pub fn new(needles: &[&str], wanted: fn(&[u8]) -> bool) -> Arc<Self> {
        Arc::new(Self {
            prefilter: needles.iter().map(|n| memmem::Finder::new(n.as_bytes()).into_owned()).collect(),
            wanted,
            state: Mutex::new(WatchState::default()),
            pumps: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Looks at `lines` (whole lines, as the pumps write them, or one piece of an oversized
    /// line) and keeps those of interest.
    pub(super) fn scan(&self, lines: &[u8]) {
        if !self.prefilter.iter().any(|f| f.find(lines).is_some()) {
            return;
        }
        for line in lines.split(|b| *b == b'\n') {
            if self.prefilter.iter().any(|f| f.find(line).is_some()) && (self.wanted)(line) {
                self.record(line);
            }
        }
    }

    fn record(&self, line: &[u8]) {
        let kept = line[..line.len().min(MAX_KEPT_LINE)].to_vec();
        let mut state = self.lock();
        let WatchState { open, seen, unattributed } = &mut *state;
        let Some(request_id) = open.front() else {
            if unattributed.len() < MAX_KEPT_LINES {
                unattributed.push(kept);
            }
            return;
        };
        match seen.iter_mut().find(|(id, _)| id == request_id) {
            Some((_, lines)) if lines.len() < MAX_KEPT_LINES => lines.push(kept),
            Some(_) => {}
            None => {
                if seen.len() >= MAX_TRACKED {
                    seen.pop_front();
                }
                seen.push_back((request_id.clone(), vec![kept]));
            }
        }
    }

    /// An invocation was handed to the child: lines seen from now on are its own.
    pub fn invocation_submitted(&self, request_id: &str) {
        let mut state = self.lock();
        if state.open.len() >= MAX_TRACKED {
            state.open.pop_front();
        }
        state.open.push_back(request_id.to_owned());
    }

    /// The child died and its pipes are drained: what it held gets no more lines.
    pub fn child_exited(&self) {
        self.lock().open.clear();
    }

    /// The lines of interest of `request_id`, with those seen while no invocation was open.
    /// Reads what the child's pipes hold first; ends the invocation's attribution.
    pub fn take(&self, request_id: &str) -> Vec<Vec<u8>> {
        self.drain_pumps();
        let mut state = self.lock();
        state.open.retain(|id| id != request_id);
        let mut lines = match state.seen.iter().position(|(id, _)| id == request_id) {
            Some(i) => state.seen.remove(i).map(|(_, lines)| lines).unwrap_or_default(),
            None => Vec::new(),
        };
        lines.append(&mut state.unattributed);
        lines
    }

    /// The lines of interest seen while no invocation was open (an init, a restart).
    pub fn take_unattributed(&self) -> Vec<Vec<u8>> {
        self.drain_pumps();
        std::mem::take(&mut self.lock().unattributed)
    }

    /// A pump of the running child; kept weakly (it ends with the child's pipe).
    pub(super) fn register_pump(&self, pump: Weak<dyn Drainable>) {
        let mut pumps = self.pumps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pumps.retain(|p| p.strong_count() > 0);
        pumps.push(pump);
    }

    fn drain_pumps(&self) {
        let live: Vec<Arc<dyn Drainable>> = {
            let pumps = self.pumps.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            pumps.iter().filter_map(Weak::upgrade).collect()
        };
        for pump in live {
            pump.drain_available();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch() -> Arc<OutputWatch> {
        OutputWatch::new(&["emory"], |line| line.windows(11).any(|w| w == b"MemoryError"))
    }

    #[test]
    fn only_wanted_lines_are_kept_whole() {
        let w = watch();
        w.scan(b"all fine\nmemory usage 12 MB\nTraceback\nMemoryError: out\nbye\n");
        assert_eq!(w.take_unattributed(), vec![b"MemoryError: out".to_vec()]);
        w.scan(b"nothing to see\n");
        assert!(w.take_unattributed().is_empty());
    }

    #[test]
    fn lines_belong_to_the_open_invocation_until_taken() {
        let w = watch();
        w.scan(b"MemoryError during init\n");
        w.invocation_submitted("a");
        w.scan(b"MemoryError in a\n");
        let taken = w.take("a");
        assert_eq!(taken, vec![b"MemoryError in a".to_vec(), b"MemoryError during init".to_vec()]);
        assert!(w.take("a").is_empty(), "taken once");
        w.scan(b"MemoryError between invocations\n");
        w.invocation_submitted("b");
        assert_eq!(w.take("b"), vec![b"MemoryError between invocations".to_vec()]);
    }

    #[test]
    fn a_dead_childs_invocations_get_no_lines_of_its_successor() {
        let w = watch();
        w.invocation_submitted("a");
        w.scan(b"MemoryError: a died\n");
        w.child_exited();
        w.scan(b"MemoryError: the restart\n");
        assert_eq!(
            w.take("a"),
            vec![b"MemoryError: a died".to_vec(), b"MemoryError: the restart".to_vec()]
        );
        w.invocation_submitted("b");
        w.scan(b"MemoryError: the restart again\n");
        w.child_exited();
        assert_eq!(w.take_unattributed(), Vec::<Vec<u8>>::new());
        assert_eq!(w.take("b").len(), 1);
    }

    #[test]
    fn memory_stays_bounded() {
        let w = watch();
        let long = [b"MemoryError ".as_slice(), &vec![b'x'; 10_000], b"\n"].concat();
        for _ in 0..100 {
            w.scan(&long);
        }
        let kept = w.take_unattributed();
        assert_eq!(kept.len(), MAX_KEPT_LINES);
        assert!(kept.iter().all(|l| l.len() == MAX_KEPT_LINE));
        for i in 0..1000 {
            w.invocation_submitted(&i.to_string());
            w.scan(b"MemoryError\n");
        }
        let state = w.lock();
        assert!(state.open.len() <= MAX_TRACKED && state.seen.len() <= MAX_TRACKED);
    }
}
