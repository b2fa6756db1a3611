//! The handler decorator that watches each invocation while the handler runs: the request id
//! and the invocation's metric tags are put where the handler of fatal signals finds them, and
//! taken away as soon as the handler returns.
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use super::{alloc_failure, altstack, slots};
use crate::handler::{BoxFuture, Handler, HandlerOutcome, Invocation, TimedOutcome};
use crate::lifecycle::{InitReport, Timestamp};
use crate::telemetry::metrics::tags::{enhanced_tags, layer_tag, StaticTags};

/// Tag sets kept (a sandbox sees one ARN, two with an alias, each cold and warm); past this,
/// invocations of further ARNs get the tags that need no ARN.
const TAG_SETS_LIMIT: usize = 16;

/// The tags' JSON for each (ARN, cold start), serialised once and kept for the process's life:
/// the signal handler may read it at any time, so it is never freed.
struct TagJson {
    statics: StaticTags,
    known: Mutex<Vec<(String, bool, &'static [u8])>>,
    without_arn: [&'static [u8]; 2],
}

impl TagJson {
    fn new(statics: StaticTags) -> Self {
        let without_arn = [false, true].map(|cold| serialise(enhanced_tags(&statics, None, cold)));
        Self {
            statics,
            known: Mutex::new(Vec::new()),
            without_arn,
        }
    }

    fn get(&self, arn: &str, cold_start: bool) -> &'static [u8] {
        let Ok(mut known) = self.known.lock() else {
            return self.without_arn[usize::from(cold_start)];
        };
        if let Some((_, _, json)) = known.iter().find(|(a, c, _)| a == arn && *c == cold_start) {
            return json;
        }
        if known.len() >= TAG_SETS_LIMIT {
            return self.without_arn[usize::from(cold_start)];
        }
        let json = serialise(enhanced_tags(&self.statics, Some(arn), cold_start));
        known.push((arn.to_owned(), cold_start, json));
        json
    }
}

/// The tags as the metrics processor prints them: the enhanced set, then the layer tag.
fn serialise(mut tags: Vec<String>) -> &'static [u8] {
    tags.push(layer_tag());
    let json = serde_json::to_vec(&tags).unwrap_or_else(|_| b"[]".to_vec());
    Box::leak(json.into_boxed_slice())
}

thread_local! {
    /// [`calling_thread`]'s answer (0: not asked yet on this thread).
    static CALLING_THREAD: Cell<i32> = const { Cell::new(0) };
}

/// The kernel id of the thread that calls the handler, asked once per thread. That first time
/// the thread also gets the larger alternate signal stack, so that a stack overflow in a handler
/// it calls can be reported (`altstack`): the main thread has it from `install`, a multi-thread
/// runtime's workers get it here, at no cost to the invocations that follow.
fn calling_thread() -> i32 {
    CALLING_THREAD.with(|id| {
        if id.get() == 0 {
            if let Err(err) = altstack::enlarge_for_this_thread() {
                tracing::debug!(
                    "cannot enlarge this thread's alternate signal stack ({err}): a stack overflow in a handler it calls may go unreported"
                );
            }
            id.set(alloc_failure::current_thread());
        }
        id.get()
    })
}

/// A handler whose invocations are answered even if the process aborts while it runs.
pub struct Watched {
    inner: Arc<dyn Handler>,
    tags: Option<TagJson>,
    /// As the lifecycle counts it: the first invocation after an init.
    cold_start: AtomicBool,
}

impl Watched {
    /// `statics` is `None` when no metric lines are printed (so no tags are prepared).
    pub fn new(inner: Arc<dyn Handler>, statics: Option<StaticTags>) -> Self {
        Self {
            inner,
            tags: statics.map(TagJson::new),
            cold_start: AtomicBool::new(true),
        }
    }

    fn arm(&self, invocation: &Arc<Invocation>) -> Option<slots::Armed> {
        alloc_failure::forget();
        let cold_start = self.cold_start.swap(false, Ordering::Relaxed);
        let context = &invocation.context;
        let tags = self
            .tags
            .as_ref()
            .map_or(&b"[]"[..], |t| t.get(&context.invoked_function_arn, cold_start));
        let pending = slots::Pending {
            invocation: Arc::clone(invocation),
            cold_start,
            started: Timestamp::now(),
        };
        let thread = calling_thread();
        slots::arm(&context.request_id, context.invocation_id.as_deref(), tags, thread, pending)
    }
}

impl Handler for Watched {
    fn invoke(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome> {
        let armed = self.arm(&invocation);
        let outcome = self.inner.invoke(invocation);
        Box::pin(async move {
            let outcome = outcome.await;
            drop(armed);
            outcome
        })
    }

    fn invoke_timed(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, TimedOutcome> {
        let armed = self.arm(&invocation);
        let outcome = self.inner.invoke_timed(invocation);
        Box::pin(async move {
            let outcome = outcome.await;
            drop(armed);
            outcome
        })
    }

    fn before_next(&self) -> BoxFuture<'_, Option<InitReport>> {
        Box::pin(async move {
            let reinit = self.inner.before_next().await;
            if reinit.is_some() {
                self.cold_start.store(true, Ordering::Relaxed);
            }
            reinit
        })
    }

    fn shutdown(&self, grace: std::time::Duration) -> BoxFuture<'_, ()> {
        self.inner.shutdown(grace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statics() -> StaticTags {
        StaticTags {
            memory_mb: 512,
            function_version: "$LATEST".into(),
            runtime: "provided.al2023".into(),
        }
    }

    #[test]
    fn tag_json_is_the_processors_tag_set_built_once() {
        let tags = TagJson::new(statics());
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:my-fn";
        let cold = tags.get(arn, true);
        let parsed: Vec<String> = serde_json::from_slice(cold).unwrap();
        let mut expected = enhanced_tags(&statics(), Some(arn), true);
        expected.push(layer_tag());
        assert_eq!(parsed, expected);
        assert!(std::ptr::eq(cold, tags.get(arn, true)), "served from the cache");
        assert!(String::from_utf8_lossy(tags.get(arn, false)).contains("cold_start:false"));
        for i in 0..TAG_SETS_LIMIT {
            tags.get(&format!("{arn}:alias{i}"), false);
        }
        let past_limit: Vec<String> = serde_json::from_slice(tags.get("arn:aws:lambda:eu-west-1:1:function:other", true)).unwrap();
        assert!(!past_limit.iter().any(|t| t.starts_with("region:")), "{past_limit:?}");
        assert!(past_limit.contains(&"cold_start:true".to_owned()));
    }
}
