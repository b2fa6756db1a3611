//! The placeholder span of a universal-instrumentation tracer. dd-trace-java, dd-trace-dotnet,
//! dd-trace-rb and datadog-lambda-go open a span of resource `dd-tracer-serverless-span` around
//! the handler (dd-trace-rb even names it `aws.lambda`) only so that the handler's spans have a
//! parent. The Datadog Extension drops it (bottlecap's `filter_span_from_lambda_library_or_runtime`)
//! and gives its own `aws.lambda` span that span's id. Here the `aws.lambda` span is ours, with
//! an id of its own, so the placeholder is dropped and its children take its parent (our
//! `aws.lambda` span, which `/lambda/start-invocation` told the tracer to continue): one
//! function span per trace.
use std::collections::HashMap;

use crate::telemetry::traces::Span;

/// The resource Datadog's tracers give their placeholder span.
pub const PLACEHOLDER_RESOURCE: &str = "dd-tracer-serverless-span";

fn is_placeholder(span: &Span) -> bool {
    span.resource == PLACEHOLDER_RESOURCE
}

/// Removes the placeholder spans of `chunks`, re-parenting their children; a chunk left empty
/// is removed.
pub fn drop_placeholders(chunks: &mut Vec<Vec<Span>>) {
    for chunk in chunks.iter_mut() {
        if !chunk.iter().any(is_placeholder) {
            continue;
        }
        let parent_of: HashMap<u64, u64> = chunk
            .iter()
            .filter(|span| is_placeholder(span))
            .map(|span| (span.span_id, span.parent_id))
            .collect();
        chunk.retain(|span| !is_placeholder(span));
        for span in chunk.iter_mut() {
            // A placeholder under a placeholder: follow the chain, never longer than the map.
            for _ in 0..parent_of.len() {
                match parent_of.get(&span.parent_id) {
                    Some(&parent) => span.parent_id = parent,
                    None => break,
                }
            }
        }
    }
    chunks.retain(|chunk| !chunk.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::traces::TraceId;

    fn span(name: &str, resource: &str, span_id: u64, parent_id: u64) -> Span {
        let mut span = Span::new(name, TraceId::new(0, 7), span_id, parent_id);
        resource.clone_into(&mut span.resource);
        span
    }

    #[test]
    fn the_placeholders_children_take_its_parent() {
        // Our aws.lambda span is 100; dd-trace-rb's placeholder (named aws.lambda) continues it.
        let mut chunks = vec![
            vec![
                span("aws.lambda", PLACEHOLDER_RESOURCE, 1, 100),
                span("http.request", "GET /", 2, 1),
                span("db.query", "SELECT", 3, 2),
            ],
            vec![span("dd-tracer-serverless-span", PLACEHOLDER_RESOURCE, 9, 100)],
            vec![span("other", "other", 5, 0)],
        ];
        drop_placeholders(&mut chunks);
        assert_eq!(chunks.len(), 2, "a chunk holding only a placeholder goes");
        let ids: Vec<(u64, u64)> = chunks[0].iter().map(|s| (s.span_id, s.parent_id)).collect();
        assert_eq!(ids, [(2, 100), (3, 2)]);
        assert_eq!(chunks[1][0].parent_id, 0);
    }

    #[test]
    fn a_chain_of_placeholders_and_a_cycle_end() {
        let mut chunks = vec![vec![
            span("a", PLACEHOLDER_RESOURCE, 1, 100),
            span("b", PLACEHOLDER_RESOURCE, 2, 1),
            span("c", "work", 3, 2),
        ]];
        drop_placeholders(&mut chunks);
        assert_eq!(chunks[0][0].parent_id, 100);
        let mut cycle = vec![vec![
            span("a", PLACEHOLDER_RESOURCE, 1, 2),
            span("b", PLACEHOLDER_RESOURCE, 2, 1),
            span("c", "work", 3, 1),
        ]];
        drop_placeholders(&mut cycle);
        assert_eq!(cycle[0].len(), 1, "garbage ids end the walk");
    }
}
