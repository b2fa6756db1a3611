//! The Datadog span, as the trace agent and the Forwarder know it.
use std::collections::BTreeMap;

/// A 128-bit trace id. The low half is the classic Datadog trace id; the high half travels
/// as the `_dd.p.tid` tag (16 lower-case hex digits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TraceId {
    pub high: u64,
    pub low: u64,
}

impl TraceId {
    pub fn new(high: u64, low: u64) -> Self {
        Self { high, low }
    }

    pub fn from_u128(id: u128) -> Self {
        Self {
            high: (id >> 64) as u64,
            low: id as u64,
        }
    }

    pub fn as_u128(&self) -> u128 {
        (u128::from(self.high) << 64) | u128::from(self.low)
    }

    pub fn is_zero(&self) -> bool {
        self.high == 0 && self.low == 0
    }

    /// The `_dd.p.tid` value, when the id has a high half.
    pub fn tid_tag(&self) -> Option<String> {
        (self.high != 0).then(|| format!("{:016x}", self.high))
    }

    /// A new trace id the way Datadog's tracers make them: the high half starts with the
    /// epoch seconds (`<8 hex digits>00000000`) and the low half is random.
    pub fn generate(epoch_seconds: u64) -> Self {
        Self {
            high: (epoch_seconds & 0xFFFF_FFFF) << 32,
            low: random_id(),
        }
    }
}

/// A non-zero random 64-bit id.
pub fn random_id() -> u64 {
    loop {
        let id: u64 = rand::random();
        if id != 0 {
            return id;
        }
    }
}

/// A span link; used here for span pointers (§5.11).
#[derive(Clone, Debug, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: u64,
    pub attributes: BTreeMap<String, String>,
}

/// One span. `meta` holds string tags, `metrics` numeric ones; times are nanoseconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: u64,
    /// 0 for a root span.
    pub parent_id: u64,
    pub name: String,
    pub service: String,
    pub resource: String,
    pub span_type: String,
    /// Nanoseconds since the Unix epoch.
    pub start_ns: i64,
    pub duration_ns: i64,
    pub error: i32,
    pub meta: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    pub span_links: Vec<SpanLink>,
}

impl Span {
    pub fn new(name: impl Into<String>, trace_id: TraceId, span_id: u64, parent_id: u64) -> Self {
        Self {
            trace_id,
            span_id,
            parent_id,
            name: name.into(),
            service: String::new(),
            resource: String::new(),
            span_type: String::new(),
            start_ns: 0,
            duration_ns: 0,
            error: 0,
            meta: BTreeMap::new(),
            metrics: BTreeMap::new(),
            span_links: Vec::new(),
        }
    }

    pub fn set_meta(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.meta.insert(key.into(), value.into());
    }

    pub fn set_metric(&mut self, key: impl Into<String>, value: f64) {
        self.metrics.insert(key.into(), value);
    }

    /// Ends the span at `end_ns`; a span never has a negative duration.
    pub fn finish_at(&mut self, end_ns: i64) {
        self.duration_ns = end_ns.saturating_sub(self.start_ns).max(0);
    }

    pub fn end_ns(&self) -> i64 {
        self.start_ns.saturating_add(self.duration_ns)
    }

    /// Marks the span as failed with Datadog's error tags.
    pub fn set_error(&mut self, error_type: &str, message: &str, stack: Option<&str>) {
        self.error = 1;
        self.set_meta("error.type", error_type);
        self.set_meta("error.message", message);
        if let Some(stack) = stack.filter(|s| !s.is_empty()) {
            self.set_meta("error.stack", stack);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_id_halves() {
        let id = TraceId::from_u128(0x6b05765000000000_f29b8da6a6f8431e);
        assert_eq!(id.high, 0x6b05765000000000);
        assert_eq!(id.low, 0xf29b8da6a6f8431e);
        assert_eq!(id.tid_tag().as_deref(), Some("6b05765000000000"));
        assert_eq!(TraceId::new(0, 5).tid_tag(), None);
        assert_eq!(id.as_u128(), 0x6b05765000000000_f29b8da6a6f8431e);
    }

    #[test]
    fn generated_ids_carry_the_epoch_seconds() {
        let id = TraceId::generate(0x6b057650);
        assert_eq!(id.high, 0x6b05765000000000);
        assert_ne!(id.low, 0);
    }

    #[test]
    fn durations_never_go_negative() {
        let mut span = Span::new("x", TraceId::new(0, 1), 1, 0);
        span.start_ns = 100;
        span.finish_at(50);
        assert_eq!(span.duration_ns, 0);
        span.finish_at(160);
        assert_eq!(span.duration_ns, 60);
    }
}
