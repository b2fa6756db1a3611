//! Spans from the function's own tracer (an exec child running ddtrace, dd-trace-js, ...) and
//! which invocation's trace they join.
//!
//! A chunk (the spans of one trace, as a tracer sends them) joins the invocation whose trace
//! id it carries (the child continued our context, e.g. after `/lambda/start-invocation`).
//! A chunk with another trace id joins an invocation only when it holds the child tracer's
//! root (`parent_id` 0) and that root started while exactly one invocation ran: the root is
//! re-parented under that invocation's `aws.lambda` span. Anything else belongs to a trace
//! this sandbox does not own and is dropped (the caller logs the count).
use std::collections::VecDeque;

use super::invocation::InvocationTrace;
use super::logs::Correlation;
use super::span::{Span, TraceId};

/// How many answered invocations are remembered for late spans and log lines.
const RECENT_INVOCATIONS: usize = 16;

/// Clock slack when placing a child's root span in an invocation's time window: the child's
/// clock reading and ours are taken at slightly different moments.
const WINDOW_SLACK_NS: i64 = 5_000_000;

/// What a child's chunk may join: one invocation's trace.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub trace_id: TraceId,
    pub function_span_id: u64,
    pub start_ns: i64,
    /// `None` while the invocation runs.
    pub end_ns: Option<i64>,
}

impl Candidate {
    pub fn of(trace: &InvocationTrace) -> Self {
        Self {
            trace_id: trace.trace_id,
            function_span_id: trace.function_span_id,
            start_ns: trace.start_ns(),
            end_ns: None,
        }
    }

    fn contains(&self, at_ns: i64) -> bool {
        at_ns >= self.start_ns.saturating_sub(WINDOW_SLACK_NS) && self.end_ns.is_none_or(|end| at_ns <= end.saturating_add(WINDOW_SLACK_NS))
    }
}

/// Where a chunk went.
pub enum ChildChunkOutcome {
    /// Into an in-flight invocation's trace.
    Adopted,
    /// Its invocation's trace is already sent: these spans go out on their own.
    Late(Vec<Span>),
    /// This many spans had no invocation.
    Dropped(usize),
}

/// The candidate `chunk` joins, if any (see the module's rule).
pub fn choose(chunk: &[Span], candidates: &[Candidate]) -> Option<usize> {
    let first = chunk.first()?;
    if let Some(same) = candidates.iter().position(|c| c.trace_id.low == first.trace_id.low) {
        return Some(same);
    }
    let root = chunk.iter().find(|s| s.parent_id == 0)?;
    let mut containing = candidates.iter().enumerate().filter(|(_, c)| c.contains(root.start_ns));
    match (containing.next(), containing.next()) {
        (Some((index, _)), None) => Some(index),
        _ => None,
    }
}

/// The chunk in `target`'s trace: its root under the `aws.lambda` span, `_dd.origin: lambda`
/// as every span of a Lambda trace.
pub fn reparent(chunk: Vec<Span>, target: &Candidate) -> Vec<Span> {
    chunk
        .into_iter()
        .map(|mut span| {
            if span.trace_id.low != target.trace_id.low {
                // The child's own 128-bit high half no longer applies.
                span.meta.remove("_dd.p.tid");
                span.metrics.remove("_sampling_priority_v1");
            }
            span.trace_id = target.trace_id;
            if span.parent_id == 0 {
                span.parent_id = target.function_span_id;
            }
            span.meta.insert("_dd.origin".to_owned(), "lambda".to_owned());
            span
        })
        .collect()
}

/// A chunk arriving after its invocation's trace went out, ready to be sent on its own.
pub fn finish_late(chunk: Vec<Span>, target: &Candidate, default_service: &str) -> Vec<Span> {
    let tid = target.trace_id.tid_tag();
    reparent(chunk, target)
        .into_iter()
        .map(|mut span| {
            if span.service.is_empty() {
                default_service.clone_into(&mut span.service);
            }
            if let Some(tid) = &tid {
                span.meta.insert("_dd.p.tid".to_owned(), tid.clone());
            }
            span
        })
        .collect()
}

/// The cheap test before an answer is parsed for §5.8: a JSON object naming both keys.
pub fn looks_like_authorizer_response(body: &[u8]) -> bool {
    let starts_as_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    starts_as_object && contains(body, b"\"principalId\"") && contains(body, b"\"policyDocument\"")
}

/// Runs before every response is posted (authorizer context injection), over bodies up to
/// 6 MB: memchr's vectorised search, not a window-by-window comparison.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// An invocation whose trace was sent.
#[derive(Clone, Debug)]
pub struct FinishedInvocation {
    pub request_id: String,
    pub candidate: Candidate,
    pub end_ns: i64,
    pub correlation: Correlation,
}

/// The last [`RECENT_INVOCATIONS`] answered invocations, oldest first.
#[derive(Default)]
pub struct RecentInvocations(VecDeque<FinishedInvocation>);

impl RecentInvocations {
    pub fn push(&mut self, mut finished: FinishedInvocation) {
        finished.candidate.end_ns = Some(finished.end_ns);
        if self.0.len() == RECENT_INVOCATIONS {
            self.0.pop_front();
        }
        self.0.push_back(finished);
    }

    pub fn last(&self) -> Option<&FinishedInvocation> {
        self.0.back()
    }

    pub fn by_request_id(&self, request_id: &str) -> Option<&FinishedInvocation> {
        self.0.iter().rev().find(|f| f.request_id == request_id)
    }

    pub fn candidates(&self) -> Vec<Candidate> {
        self.0.iter().map(|f| f.candidate.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(low: u64, start_ns: i64, end_ns: Option<i64>) -> Candidate {
        Candidate {
            trace_id: TraceId::new(0x6b05765000000000, low),
            function_span_id: low * 10,
            start_ns,
            end_ns,
        }
    }

    fn span(trace_low: u64, span_id: u64, parent_id: u64, start_ns: i64) -> Span {
        let mut span = Span::new("child", TraceId::new(0, trace_low), span_id, parent_id);
        span.start_ns = start_ns;
        span
    }

    #[test]
    fn a_chunk_of_our_trace_joins_it_whatever_its_times() {
        let candidates = [candidate(1, 100, None), candidate(2, 0, Some(50))];
        assert_eq!(choose(&[span(2, 7, 20, 10_000_000_000)], &candidates), Some(1));
    }

    #[test]
    fn a_foreign_root_joins_the_only_invocation_running_when_it_started() {
        let candidates = [candidate(1, 1_000_000_000, Some(2_000_000_000)), candidate(2, 3_000_000_000, None)];
        let chunk = [span(99, 7, 0, 3_500_000_000), span(99, 8, 7, 3_600_000_000)];
        assert_eq!(choose(&chunk, &candidates), Some(1));
        let placed = reparent(chunk.to_vec(), &candidates[1]);
        assert_eq!(placed[0].parent_id, 20, "the root goes under aws.lambda");
        assert_eq!(placed[1].parent_id, 7, "the rest keep their parents");
        assert!(placed.iter().all(|s| s.trace_id == candidates[1].trace_id));
        assert!(placed.iter().all(|s| s.meta["_dd.origin"] == "lambda"));
    }

    #[test]
    fn spans_of_another_trace_without_a_root_or_time_match_join_nothing() {
        let candidates = [candidate(1, 1_000_000_000, None)];
        assert_eq!(choose(&[span(99, 7, 5, 1_500_000_000)], &candidates), None, "no root");
        assert_eq!(choose(&[span(99, 7, 0, 10)], &candidates), None, "started before");
        let two = [candidate(1, 0, None), candidate(2, 0, None)];
        assert_eq!(choose(&[span(99, 7, 0, 10)], &two), None, "ambiguous");
    }

    #[test]
    fn late_spans_carry_the_trace_id_high_half() {
        let target = candidate(1, 0, Some(10));
        let late = finish_late(vec![span(99, 7, 0, 5)], &target, "svc");
        assert_eq!(late[0].meta["_dd.p.tid"], "6b05765000000000");
        assert_eq!(late[0].service, "svc");
    }

    #[test]
    fn authorizer_check_is_cheap_and_strict() {
        assert!(looks_like_authorizer_response(br#" {"principalId":"u","policyDocument":{}}"#));
        assert!(!looks_like_authorizer_response(br#"{"principalId":"u"}"#));
        assert!(!looks_like_authorizer_response(br#"["principalId","policyDocument"]"#));
        assert!(!looks_like_authorizer_response(b""));
    }

    #[test]
    fn recent_keeps_the_last_ones() {
        let mut recent = RecentInvocations::default();
        for i in 0..20 {
            recent.push(FinishedInvocation {
                request_id: format!("r{i}"),
                candidate: candidate(i, 0, None),
                end_ns: 5,
                correlation: Correlation::none(),
            });
        }
        assert_eq!(recent.candidates().len(), RECENT_INVOCATIONS);
        assert_eq!(recent.last().unwrap().request_id, "r19");
        assert!(recent.by_request_id("r0").is_none());
        assert_eq!(recent.candidates()[0].end_ns, Some(5));
    }
}
