//! The trace context an invocation continues.
use std::collections::BTreeMap;

use crate::telemetry::traces::span::TraceId;

/// Where the context came from (`_dd.parent_source` and the X-Ray merge rules depend on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextSource {
    /// The event, the client context or the authorizer context.
    Event,
    /// The invocation's X-Ray header (§6).
    Xray,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TraceContext {
    /// 128 bits; the high half came from `_dd.p.tid` or a 128-bit W3C/B3 id.
    pub trace_id: TraceId,
    /// The caller's span id.
    pub parent_id: u64,
    /// -1 (user reject), 0 (auto reject), 1 (auto keep), 2 (user keep).
    pub sampling_priority: Option<i32>,
    /// `_dd.origin` (e.g. `rum`).
    pub origin: Option<String>,
    /// Propagated trace tags (`_dd.p.*`, and `_dd.propagation_error` when headers were bad).
    pub tags: BTreeMap<String, String>,
    /// W3C baggage items.
    pub baggage: BTreeMap<String, String>,
    pub source: ContextSource,
}

impl TraceContext {
    pub fn new(trace_id: TraceId, parent_id: u64, sampling_priority: Option<i32>) -> Self {
        let mut tags = BTreeMap::new();
        if let Some(tid) = trace_id.tid_tag() {
            tags.insert("_dd.p.tid".to_owned(), tid);
        }
        Self {
            trace_id,
            parent_id,
            sampling_priority,
            origin: None,
            tags,
            baggage: BTreeMap::new(),
            source: ContextSource::Event,
        }
    }

    /// Datadog's rule (§5.3): a context is usable only with a trace id, a parent id and a
    /// sampling priority.
    pub fn is_complete(&self) -> bool {
        !self.trace_id.is_zero() && self.parent_id != 0 && self.sampling_priority.is_some()
    }

    /// The tags this context puts on the spans that continue it: trace tags and `_dd.origin`.
    pub fn meta(&self) -> BTreeMap<String, String> {
        let mut meta = self.tags.clone();
        if let Some(origin) = &self.origin {
            meta.insert("_dd.origin".to_owned(), origin.clone());
        }
        meta
    }
}
