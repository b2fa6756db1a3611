//! Propagation header parsing on arbitrary `name: value` lines: datadog (`x-datadog-*`),
//! tracecontext (`traceparent`/`tracestate`), b3 single and multi, baggage, and X-Ray
//! (`parse_header`, the invocation's and SQS's `AWSTraceHeader` readings). Never panics; a
//! complete context injected in a style and read back in that style is the same trace and parent.
#![no_main]

use bootstrap::telemetry::traces::extract::propagation::{self, traceparent, Carrier};
use bootstrap::telemetry::traces::extract::xray;
use bootstrap::telemetry::traces::PropagationStyle;
use bootstrap_fuzz::header_lines;
use libfuzzer_sys::fuzz_target;

const ALL: [PropagationStyle; 5] = [
    PropagationStyle::Datadog,
    PropagationStyle::TraceContext,
    PropagationStyle::B3Single,
    PropagationStyle::B3Multi,
    PropagationStyle::Baggage,
];

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = header_lines(data)
        .into_iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect();
    let carrier = Carrier::from_pairs(pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())));

    let mut reversed = ALL;
    reversed.reverse();
    for styles in [&ALL[..], &reversed[..]].into_iter().chain(ALL.iter().map(std::slice::from_ref)) {
        let Some(context) = propagation::extract(&carrier, styles) else {
            continue;
        };
        let _ = propagation::inject(&context, &ALL);
        if !context.is_complete() {
            continue;
        }
        for style in [
            PropagationStyle::Datadog,
            PropagationStyle::TraceContext,
            PropagationStyle::B3Single,
            PropagationStyle::B3Multi,
        ] {
            let injected = propagation::inject(&context, &[style]);
            let again = propagation::extract(
                &Carrier::from_pairs(injected.iter().map(|(n, v)| (n.as_str(), v.as_str()))),
                &[style],
            );
            let again = again.unwrap_or_else(|| panic!("{style:?} did not read back its own headers {injected:?} of {context:?}"));
            assert_eq!(
                (again.trace_id, again.parent_id),
                (context.trace_id, context.parent_id),
                "{style:?} round trip changed the ids: {injected:?}"
            );
        }
    }

    for (_, value) in &pairs {
        if let Some(header) = xray::parse_header(value) {
            let _ = xray::trace_id_of_root(&header.root);
            let _ = xray::span_id_of_entity(&header.parent);
        }
        let _ = xray::context_from_header(value);
        let _ = xray::datadog_context_from_aws_trace_header(value);
        if let Some((trace_id, parent_id, _)) = traceparent(value) {
            assert!(!trace_id.is_zero() && parent_id != 0, "traceparent accepted a zero id: {value:?}");
        }
    }
});
