//! Property tests for the parsers of untrusted input that `traces_props.rs` does not cover: the
//! DogStatsD parser, `/next` header parsing, propagation headers written and read back, and
//! the bodies of the 8124/8126 child-tracer endpoints. Each property checks what the parser
//! keeps (round trips, bounds) or why it refuses, not only that it does not panic. The same
//! parsers are fuzzed by `scripts/fuzz.sh`.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bootstrap::config::Environment;
use bootstrap::handler::Invocation;
use bootstrap::lifecycle::Timestamp;
use bootstrap::runtime_api::{header_names, HeaderError, InvocationContext};
use bootstrap::sinks::trace_agent::encode_v04;
use bootstrap::telemetry::metrics::dogstatsd::{parse_datagram, parse_line, DogStatsDStats, Rejection, MAX_DATAGRAM_BYTES, MAX_TAGS};
use bootstrap::telemetry::metrics::point::MetricValue;
use bootstrap::telemetry::traces::extract::propagation::{self, traceparent, Carrier};
use bootstrap::telemetry::traces::extract::xray;
use bootstrap::telemetry::traces::listeners::http::Received;
use bootstrap::telemetry::traces::listeners::msgpack::{decode_v04, decode_v05, DecodeError};
use bootstrap::telemetry::traces::listeners::{agent, universal};
use bootstrap::telemetry::traces::{FunctionInfo, PropagationStyle, Span, TraceConfig, TraceContext, TraceId, TraceProcessor, TraceSink};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

const NOW: i64 = 1_700_000_000;

// ---------------------------------------------------------------- DogStatsD

/// Metric names and tags as clients write them: no `:`, `|`, `,`, `#`, `@` or line breaks.
fn metric_name() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9_.]{0,30}"
}

fn tag() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_./-]{0,12}(:[a-zA-Z0-9_./-]{0,12})?"
}

fn metric_value() -> impl Strategy<Value = MetricValue> {
    prop_oneof![
        any::<i64>().prop_map(MetricValue::Integer),
        (-1e12f64..1e12f64).prop_map(MetricValue::Float),
    ]
}

fn text_of(value: MetricValue) -> String {
    match value {
        MetricValue::Integer(i) => i.to_string(),
        // `{:?}` keeps a `.0`, so a float stays a float when read back.
        MetricValue::Float(f) => format!("{f:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A well-formed line is read back as written, and each value becomes one point carrying the
    /// line's tags plus the layer tag.
    #[test]
    fn dogstatsd_lines_round_trip(
        name in metric_name(),
        values in prop::collection::vec(metric_value(), 1..4),
        kind in prop::sample::select(vec!['c', 'g', 'd']),
        tags in prop::collection::vec(tag(), 0..6),
        timestamp in prop::option::of(NOW - 3600..NOW + 60),
    ) {
        let mut line = format!("{name}:{}|{kind}", values.iter().map(|v| text_of(*v)).collect::<Vec<_>>().join(":"));
        if !tags.is_empty() {
            let _ = write!(line, "|#{}", tags.join(","));
        }
        if let Some(ts) = timestamp {
            let _ = write!(line, "|T{ts}");
        }
        let metric = parse_line(&line).unwrap();
        prop_assert_eq!(&metric.name, &name);
        prop_assert_eq!(&metric.values, &values);
        prop_assert_eq!(metric.kind, kind);
        prop_assert_eq!(&metric.tags, &tags);
        prop_assert_eq!(metric.timestamp, timestamp);

        let stats = DogStatsDStats::default();
        let points = parse_datagram(line.as_bytes(), NOW, &stats);
        prop_assert_eq!(points.len(), values.len());
        prop_assert_eq!(stats.accepted.load(Ordering::Relaxed), values.len() as u64);
        for (point, value) in points.iter().zip(&values) {
            prop_assert_eq!(point.value, *value);
            prop_assert_eq!(point.timestamp, timestamp.unwrap_or(NOW));
            prop_assert_eq!(&point.tags[..tags.len()], &tags[..]);
            prop_assert!(point.tags[tags.len()].starts_with("dd_lambda_layer:"));
        }
    }

    /// A sampled counter counts for 1/rate samples.
    #[test]
    fn dogstatsd_sampled_counters_are_scaled(value in 1i64..1_000_000, rate in 0.01f64..1.0) {
        let metric = parse_line(&format!("hits:{value}|c|@{rate}")).unwrap();
        let scaled = metric.values[0].as_f64();
        prop_assert!((scaled - value as f64 / rate).abs() <= 1e-9 * scaled.abs());
    }

    /// A sampled count too large to scale is a bad value (it was counted as a bad timestamp).
    #[test]
    fn dogstatsd_overflowing_sampled_counters_are_bad_values(mantissa in 1.0f64..9.9, rate in 0.0001f64..0.5) {
        let line = format!("hits:{mantissa}e308|c|@{rate}");
        prop_assume!(mantissa * 1e308 / rate == f64::INFINITY);
        prop_assert_eq!(parse_line(&line), Err(Rejection::BadValue));
        let stats = DogStatsDStats::default();
        prop_assert!(parse_datagram(line.as_bytes(), NOW, &stats).is_empty());
        prop_assert_eq!(stats.bad_value.load(Ordering::Relaxed), 1);
        prop_assert_eq!(stats.bad_timestamp.load(Ordering::Relaxed), 0);
    }

    /// Histograms, timers and sets are refused as unsupported, not as malformed.
    #[test]
    fn dogstatsd_unsupported_types_say_so(name in metric_name(), value in 0i64..1000, kind in prop::sample::select(vec!["h", "ms", "s"])) {
        prop_assert_eq!(parse_line(&format!("{name}:{value}|{kind}")), Err(Rejection::UnsupportedType));
    }

    /// Over the tag limit, the line is refused with that reason.
    #[test]
    fn dogstatsd_too_many_tags_say_so(extra in 1usize..20) {
        let tags: Vec<String> = (0..MAX_TAGS + extra).map(|i| format!("t{i}:v")).collect();
        prop_assert_eq!(parse_line(&format!("m:1|d|#{}", tags.join(","))), Err(Rejection::TooManyTags));
    }

    /// Any datagram: every line is accepted or counted under one reason; what is accepted is
    /// named, finite, within the tag limit and no older than 4 hours; an oversized or non-UTF-8
    /// datagram is one refusal and no point.
    #[test]
    fn dogstatsd_any_datagram_is_accounted_for(datagram in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        "([a-z.]{0,8}(:[-0-9.e]{0,6}){0,3}(\\|[a-zA-Z@#:,.0-9]{0,10}){0,4}\n?){0,5}".prop_map(String::into_bytes),
    ]) {
        let stats = DogStatsDStats::default();
        let points = parse_datagram(&datagram, NOW, &stats);
        prop_assert_eq!(stats.accepted.load(Ordering::Relaxed), points.len() as u64);
        for point in &points {
            prop_assert!(!point.name.trim().is_empty());
            prop_assert!(point.value.is_finite());
            prop_assert!(point.tags.len() <= MAX_TAGS + 1);
            prop_assert!(point.timestamp >= NOW - 4 * 3600);
        }
        match std::str::from_utf8(&datagram) {
            Err(_) => {
                prop_assert!(points.is_empty());
                prop_assert_eq!(stats.bad_datagram.load(Ordering::Relaxed), 1);
            }
            Ok(text) => {
                let lines = text.split('\n').filter(|l| !l.trim().is_empty()).count() as u64;
                // Each line is refused once or gives at least one point (or timestamp refusal).
                prop_assert!(stats.accepted.load(Ordering::Relaxed) + stats.rejected() >= lines);
            }
        }
    }

    #[test]
    fn dogstatsd_oversized_datagrams_are_refused(extra in 1usize..64) {
        let datagram = format!("m:1|c\n{}", "x".repeat(MAX_DATAGRAM_BYTES + extra));
        let stats = DogStatsDStats::default();
        prop_assert!(parse_datagram(datagram.as_bytes(), NOW, &stats).is_empty());
        prop_assert_eq!(stats.bad_datagram.load(Ordering::Relaxed), 1);
    }
}

// ---------------------------------------------------------------- Runtime API /next headers

fn header_text() -> impl Strategy<Value = String> {
    // Visible ASCII and spaces inside, as HTTP carries them (hyper trims the ends).
    "[!-~]([ -~]{0,40}[!-~])?"
}

fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[ -~]{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4).prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
    .prop_map(|v| v.to_string())
}

fn context_strategy() -> impl Strategy<Value = InvocationContext> {
    (
        header_text(),
        any::<u64>(),
        header_text(),
        prop::option::of(header_text()),
        prop::option::of(json_text()),
        prop::option::of(json_text()),
        prop::option::of(header_text()),
        prop::option::of(header_text()),
    )
        .prop_map(
            |(request_id, deadline_ms, arn, xray, client_context, cognito_identity, tenant_id, invocation_id)| InvocationContext {
                request_id,
                deadline_ms,
                invoked_function_arn: arn,
                xray_trace_id: xray,
                client_context,
                cognito_identity,
                tenant_id,
                invocation_id,
            },
        )
}

fn headers_of(context: &InvocationContext) -> HeaderMap {
    use header_names::*;
    let mut headers = HeaderMap::new();
    let mut put = |name: &'static str, value: &str| {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    };
    put(REQUEST_ID, &context.request_id);
    put(DEADLINE_MS, &context.deadline_ms.to_string());
    put(INVOKED_FUNCTION_ARN, &context.invoked_function_arn);
    for (name, value) in [
        (TRACE_ID, &context.xray_trace_id),
        (CLIENT_CONTEXT, &context.client_context),
        (COGNITO_IDENTITY, &context.cognito_identity),
        (TENANT_ID, &context.tenant_id),
        (INVOCATION_ID, &context.invocation_id),
    ] {
        if let Some(value) = value {
            put(name, value);
        }
    }
    headers
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every header AWS documents is read back as it was sent, unknown headers ignored.
    #[test]
    fn next_headers_round_trip(context in context_strategy(), noise in prop::collection::vec(("x-[a-z-]{1,12}", "[ -~]{0,20}"), 0..4)) {
        let mut headers = headers_of(&context);
        for (name, value) in &noise {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        prop_assert_eq!(InvocationContext::from_headers(&headers).unwrap(), context);
    }

    /// A deadline that is not a number of milliseconds fails that invocation, naming its request
    /// id and the value.
    #[test]
    fn next_headers_refuse_a_bad_deadline(context in context_strategy(), deadline in "[ -~]{0,20}".prop_filter("not a u64", |d| d.trim().parse::<u64>().is_err())) {
        let mut headers = headers_of(&context);
        headers.insert(header_names::DEADLINE_MS, HeaderValue::from_str(&deadline).unwrap());
        let error = InvocationContext::from_headers(&headers).unwrap_err();
        prop_assert_eq!(error.request_id(), Some(context.request_id.as_str()));
        let is_invalid_deadline = matches!(error, HeaderError::InvalidDeadline { .. });
        prop_assert!(is_invalid_deadline, "{:?}", error);
    }

    /// Client context or cognito identity that is not JSON fails that invocation with the
    /// header's name and the parser's reason.
    #[test]
    fn next_headers_refuse_bad_json(
        context in context_strategy(),
        garbage in "[ -~]{1,30}".prop_filter("not JSON", |g| serde_json::from_str::<serde::de::IgnoredAny>(g).is_err()),
        cognito in any::<bool>(),
    ) {
        let mut headers = headers_of(&context);
        let (name, label) = if cognito {
            (header_names::COGNITO_IDENTITY, "Lambda-Runtime-Cognito-Identity")
        } else {
            (header_names::CLIENT_CONTEXT, "Lambda-Runtime-Client-Context")
        };
        headers.insert(name, HeaderValue::from_str(&garbage).unwrap());
        match InvocationContext::from_headers(&headers) {
            Err(HeaderError::InvalidJson { request_id, header, reason }) => {
                prop_assert_eq!(request_id, context.request_id);
                prop_assert_eq!(header, label);
                prop_assert!(!reason.is_empty());
            }
            other => prop_assert!(false, "expected InvalidJson, got {:?}", other),
        }
    }

    /// A request id that is missing or blank cannot be answered: the answer is skipped.
    #[test]
    fn next_headers_need_a_request_id(context in context_strategy(), blank in prop::option::of(" {0,3}")) {
        let mut headers = headers_of(&context);
        headers.remove(header_names::REQUEST_ID);
        if let Some(blank) = blank {
            headers.insert(header_names::REQUEST_ID, HeaderValue::from_str(&blank).unwrap());
        }
        prop_assert_eq!(InvocationContext::from_headers(&headers), Err(HeaderError::MissingRequestId));
    }

    /// Bytes HTTP allows but that are not UTF-8 are refused with the header's name.
    #[test]
    fn next_headers_refuse_non_utf8(context in context_strategy(), byte in 0x80u8..=0xff, which in 0usize..3) {
        let mut headers = headers_of(&context);
        let name = [header_names::INVOKED_FUNCTION_ARN, header_names::TRACE_ID, header_names::TENANT_ID][which];
        // A lone byte >= 0x80 is never valid UTF-8.
        headers.insert(name, HeaderValue::from_bytes(&[b'a', byte, b'b']).unwrap());
        let error = InvocationContext::from_headers(&headers).unwrap_err();
        let is_not_text = matches!(error, HeaderError::NotText { .. });
        prop_assert!(is_not_text, "{:?}", error);
        prop_assert_eq!(error.request_id(), Some(context.request_id.as_str()));
    }
}

// ---------------------------------------------------------------- propagation headers

/// A complete context, with trace tags of any text (as `tracestate`'s `t.*` members bring them).
fn complete_context() -> impl Strategy<Value = TraceContext> {
    (
        any::<u64>(),
        1u64..,
        1u64..,
        prop::sample::select(vec![-1, 0, 1, 2]),
        prop::collection::btree_map("_dd\\.p\\.\\PC{1,12}", prop_oneof!["[ -+\\--~]{1,20}", "\\PC{0,200}"], 0..4),
    )
        .prop_map(|(high, low, parent, priority, tags)| {
            let mut context = TraceContext::new(TraceId::new(high, low), parent, Some(priority));
            context.tags.extend(tags.into_iter().filter(|(k, _)| k != "_dd.p.tid"));
            context
        })
}

/// The header lines of a fuzz input (`name: value` per line), as the fuzz targets read them.
fn fuzz_header_lines(input: &[u8]) -> Vec<(String, String)> {
    input
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let (name, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (line, &line[line.len()..]),
            };
            let value = &value[value.iter().position(|&b| b != b' ').unwrap_or(value.len())..];
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect()
}

/// Found by `scripts/fuzz.sh` (target `propagation`): `tracestate` trace tags that are not
/// printable ASCII, or that push `x-datadog-tags` past 512 bytes, made the Datadog headers we
/// inject unreadable, and the trace lost its high 64 bits downstream.
#[test]
fn fuzz_regression_tracestate_tags_keep_the_128_bit_trace_id() {
    let input = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/fuzz/propagation-tracestate-tags-lose-the-tid.bin"
    ))
    .unwrap();
    let pairs = fuzz_header_lines(&input);
    let carrier = Carrier::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let context = propagation::extract(&carrier, &[PropagationStyle::TraceContext]).unwrap();
    assert_eq!(context.trace_id.high, 0x640cfd8d00000000);
    let headers = propagation::inject(&context, &[PropagationStyle::Datadog]);
    let back = read_back(&headers, PropagationStyle::Datadog).unwrap();
    assert_eq!((back.trace_id, back.parent_id), (context.trace_id, context.parent_id));
    assert!(!back.tags.contains_key("_dd.propagation_error"), "{headers:?}");

    // The same, readable: a non-ASCII tag is left out, the others stay.
    let mut context = TraceContext::new(TraceId::new(7, 8), 9, Some(1));
    context.tags.insert("_dd.p.usr.id".into(), "café".into());
    context.tags.insert("_dd.p.dm".into(), "-4".into());
    let headers = propagation::inject(&context, &[PropagationStyle::Datadog]);
    let tags = headers.iter().find(|(k, _)| k == "x-datadog-tags").map(|(_, v)| v.as_str());
    assert_eq!(tags, Some("_dd.p.dm=-4,_dd.p.tid=0000000000000007"));
    // Too long for a reader: only the trace id's high half goes.
    context.tags.insert("_dd.p.long".into(), "x".repeat(600));
    let headers = propagation::inject(&context, &[PropagationStyle::Datadog]);
    let tags = headers.iter().find(|(k, _)| k == "x-datadog-tags").map(|(_, v)| v.as_str());
    assert_eq!(tags, Some("_dd.p.tid=0000000000000007"));
}

fn read_back(headers: &[(String, String)], style: PropagationStyle) -> Option<TraceContext> {
    propagation::extract(
        &Carrier::from_pairs(headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        &[style],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever style writes a context, the same style reads back the same 128-bit trace, the
    /// same parent and the same keep/drop decision.
    #[test]
    fn propagation_styles_round_trip(context in complete_context()) {
        for style in [PropagationStyle::Datadog, PropagationStyle::TraceContext, PropagationStyle::B3Single, PropagationStyle::B3Multi] {
            let headers = propagation::inject(&context, &[style]);
            let back = read_back(&headers, style);
            prop_assert!(back.is_some(), "{:?} could not read {:?}", style, headers);
            let back = back.unwrap();
            prop_assert_eq!(back.trace_id, context.trace_id, "{:?} {:?}", style, headers);
            prop_assert_eq!(back.parent_id, context.parent_id);
            let kept = |c: &TraceContext| c.sampling_priority.map(|p| p > 0);
            prop_assert_eq!(kept(&back), kept(&context), "{:?} {:?}", style, headers);
        }
    }

    /// Baggage of any text survives percent-encoding both ways (within ddtrace's 64 items).
    #[test]
    fn baggage_round_trips(items in prop::collection::btree_map("\\PC{1,12}", "\\PC{0,12}", 1..10)) {
        let mut context = TraceContext::new(TraceId::new(0, 1), 2, Some(1));
        context.baggage = items.into_iter().filter(|(k, _)| !k.trim().is_empty()).collect::<BTreeMap<_, _>>();
        prop_assume!(!context.baggage.is_empty());
        let headers = propagation::inject(&context, &[PropagationStyle::Baggage]);
        let back = read_back(&headers, PropagationStyle::Baggage).unwrap();
        prop_assert_eq!(back.baggage, context.baggage);
    }

    /// A `traceparent` is accepted only with non-zero ids, and then it is exactly what a
    /// canonical header with those ids says.
    #[test]
    fn traceparent_accepts_only_real_ids(value in "(0[0-9a-f]|[0-9a-fA-F]{0,3})-[0-9a-fA-F]{30,33}-[0-9a-fA-F]{15,17}-[0-9a-fA-F]{1,3}(-[0-9a-f]{0,4})?") {
        if let Some((trace, parent, sampled)) = traceparent(&value) {
            prop_assert!(!trace.is_zero() && parent != 0);
            let canonical = format!("00-{:032x}-{parent:016x}-{:02x}", trace.as_u128(), u8::from(sampled));
            prop_assert_eq!(traceparent(&canonical), Some((trace, parent, sampled)));
        }
    }

    /// X-Ray headers: the three positional fields are kept as text, the Datadog ids are the
    /// root's last 16 hex digits (top bit cleared) and the parent segment id.
    #[test]
    fn xray_headers_read_positionally(time in "[0-9a-f]{8}", random in "[0-9a-f]{24}", parent in "[0-9a-f]{16}", sampled in "[01]", rest in "(;[A-Za-z]{1,6}=[ -:<-~]{0,8}){0,2}") {
        let raw = format!("Root=1-{time}-{random};Parent={parent};Sampled={sampled}{rest}");
        let header = xray::parse_header(&raw).unwrap();
        prop_assert_eq!(&header.root, &format!("1-{time}-{random}"));
        prop_assert_eq!(&header.parent, &parent);
        prop_assert_eq!(&header.sampled, &sampled);
        let context = xray::context_from_header(&raw);
        let expected_trace = u64::from_str_radix(&random[8..], 16).unwrap() & 0x7FFF_FFFF_FFFF_FFFF;
        let expected_parent = u64::from_str_radix(&parent, 16).unwrap();
        match context {
            Some(context) => {
                prop_assert_eq!(context.trace_id, TraceId::new(0, expected_trace));
                prop_assert_eq!(context.parent_id, expected_parent);
                prop_assert_eq!(context.sampling_priority, Some(2));
            }
            None => prop_assert!(expected_parent == 0 || expected_trace == 0, "refused {}", raw),
        }
        // Fields out of order are not an X-Ray header.
        let shuffled = format!("Parent={parent};Root=1-{time}-{random};Sampled={sampled}");
        prop_assert!(xray::parse_header(&shuffled).is_none());
    }
}

// ---------------------------------------------------------------- 8126 and 8124 bodies

fn span_strategy() -> impl Strategy<Value = Span> {
    (
        ("[ -~]{0,16}", "[ -~]{0,16}", "[ -~]{0,16}", "[a-z]{0,6}"),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<i64>(), any::<i64>(), any::<i32>()),
        prop::collection::btree_map("[a-z.]{1,10}", "\\PC{0,10}", 0..4),
        prop::collection::btree_map("[a-z.]{1,10}", -1e9f64..1e9, 0..4),
    )
        .prop_map(
            |((name, service, resource, span_type), (high, low, span_id, parent_id), (start, duration, error), meta, metrics)| {
                let mut span = Span::new(name, TraceId::new(high, low), span_id, parent_id);
                span.service = service;
                span.resource = resource;
                span.span_type = span_type;
                span.start_ns = start;
                span.duration_ns = duration;
                span.error = error;
                span.meta = meta.into_iter().filter(|(k, _)| k != "_dd.p.tid").collect();
                span.metrics = metrics;
                if high != 0 {
                    span.set_meta("_dd.p.tid", format!("{high:016x}"));
                }
                span
            },
        )
}

/// A v0.5 payload as ddtrace lays it out: a string table, then 12-field spans indexing it.
fn encode_v05(strings: &[String], spans: &[[u32; 4]]) -> Vec<u8> {
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, 2).unwrap();
    rmp::encode::write_array_len(&mut out, strings.len() as u32).unwrap();
    for s in strings {
        rmp::encode::write_str(&mut out, s).unwrap();
    }
    rmp::encode::write_array_len(&mut out, 1).unwrap();
    rmp::encode::write_array_len(&mut out, spans.len() as u32).unwrap();
    for [service, name, resource, span_type] in spans {
        rmp::encode::write_array_len(&mut out, 12).unwrap();
        for index in [service, name, resource] {
            rmp::encode::write_uint(&mut out, u64::from(*index)).unwrap();
        }
        for id in [7u64, 8, 9] {
            rmp::encode::write_uint(&mut out, id).unwrap();
        }
        for number in [100i64, 5, 0] {
            rmp::encode::write_sint(&mut out, number).unwrap();
        }
        rmp::encode::write_map_len(&mut out, 0).unwrap();
        rmp::encode::write_map_len(&mut out, 0).unwrap();
        rmp::encode::write_uint(&mut out, u64::from(*span_type)).unwrap();
    }
    out
}

fn processor_with_invocation(event: &[u8]) -> Arc<TraceProcessor> {
    let config = TraceConfig::from_env(&Environment::from_pairs([
        ("DD_TRACE_ENABLED", "true"),
        ("AWS_LAMBDA_FUNCTION_NAME", "f"),
    ]));
    let function = FunctionInfo {
        name: "f".into(),
        ..Default::default()
    };
    let processor = Arc::new(TraceProcessor::new(
        config,
        function,
        TraceSink::Stdout(Mutex::new(Box::new(std::io::sink()))),
    ));
    let invocation = Arc::new(Invocation {
        context: InvocationContext {
            request_id: "r-1".into(),
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:f".into(),
            ..Default::default()
        },
        headers: HeaderMap::new(),
        event: Bytes::copy_from_slice(event),
    });
    processor.invocation_started(&invocation, Timestamp::now());
    processor
}

fn post(path: &str, body: &[u8]) -> Received {
    Received {
        method: Method::POST,
        path: path.to_owned(),
        headers: HeaderMap::new(),
        body: Bytes::copy_from_slice(body),
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Spans the sink writes as v0.4 are read back field for field, 128-bit ids included.
    #[test]
    fn v04_bodies_round_trip(traces in prop::collection::vec(prop::collection::vec(span_strategy(), 1..4), 0..3)) {
        let decoded = decode_v04(&encode_v04(&traces)).unwrap();
        prop_assert_eq!(decoded.len(), traces.len());
        for (got, sent) in decoded.iter().flatten().zip(traces.iter().flatten()) {
            prop_assert_eq!(got.trace_id, sent.trace_id);
            prop_assert_eq!((got.span_id, got.parent_id), (sent.span_id, sent.parent_id));
            prop_assert_eq!((&got.name, &got.service, &got.resource, &got.span_type), (&sent.name, &sent.service, &sent.resource, &sent.span_type));
            prop_assert_eq!((got.start_ns, got.duration_ns, got.error), (sent.start_ns, sent.duration_ns, sent.error));
            prop_assert_eq!(&got.meta, &sent.meta);
            prop_assert_eq!(&got.metrics, &sent.metrics);
        }
    }

    /// Every strict prefix of a valid payload is refused as truncated (or, for the empty
    /// prefix, not a payload), never taken as a shorter one.
    #[test]
    fn cut_bodies_are_refused(traces in prop::collection::vec(prop::collection::vec(span_strategy(), 1..3), 1..3), cut in any::<prop::sample::Index>()) {
        let body = encode_v04(&traces);
        let prefix = &body[..cut.index(body.len())];
        prop_assert_eq!(decode_v04(prefix).unwrap_err(), DecodeError::Truncated);
        let mut trailing = body.clone();
        trailing.push(0xc0);
        prop_assert_eq!(decode_v04(&trailing).unwrap_err(), DecodeError::Trailing(1));
    }

    /// v0.5 names its strings by index into the table; an index outside it is refused.
    #[test]
    fn v05_bodies_resolve_their_string_table(strings in prop::collection::vec("\\PC{0,10}", 1..8), picks in prop::collection::vec(any::<[prop::sample::Index; 4]>(), 1..4), bad in any::<bool>()) {
        let mut spans: Vec<[u32; 4]> = picks.iter().map(|p| p.map(|i| i.index(strings.len()) as u32)).collect();
        if bad {
            spans[0][1] = strings.len() as u32;
        }
        let decoded = decode_v05(&encode_v05(&strings, &spans));
        if bad {
            let is_shape = matches!(decoded, Err(DecodeError::Shape("v0.5", _)));
            prop_assert!(is_shape, "{:?}", decoded);
        } else {
            let decoded = decoded.unwrap();
            for (span, [service, name, resource, span_type]) in decoded[0].iter().zip(&spans) {
                prop_assert_eq!(&span.service, &strings[*service as usize]);
                prop_assert_eq!(&span.name, &strings[*name as usize]);
                prop_assert_eq!(&span.resource, &strings[*resource as usize]);
                prop_assert_eq!(&span.span_type, &strings[*span_type as usize]);
            }
        }
    }

    /// The trace agent answers any body with 200 (taken) or 400 with the decoder's reason.
    #[test]
    fn agent_answers_any_body_with_a_verdict(body in prop::collection::vec(any::<u8>(), 0..200), v05 in any::<bool>()) {
        let traces = processor_with_invocation(b"{}");
        let path = if v05 { "/v0.5/traces" } else { "/v0.4/traces" };
        let reply = block_on(agent::handle(traces, post(path, &body)));
        let verdict = if v05 { decode_v05(&body).map(drop) } else { decode_v04(&body).map(drop) };
        let expected = if verdict.is_ok() { StatusCode::OK } else { StatusCode::BAD_REQUEST };
        prop_assert_eq!(reply.status(), expected);
    }

    /// `/lambda/start-invocation` with any body, an invocation in flight: the tracer gets the
    /// context to continue, as numbers it can parse.
    #[test]
    fn start_invocation_answers_any_event_with_a_context(body in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        json_text().prop_map(String::into_bytes),
    ]) {
        let traces = processor_with_invocation(&body);
        let reply = universal::handle(&traces, &post("/lambda/start-invocation", &body));
        prop_assert_eq!(reply.status(), StatusCode::OK);
        let number = |name: &str| reply.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        prop_assert!(number("x-datadog-trace-id").is_some_and(|id| id != 0));
        prop_assert!(number("x-datadog-span-id").is_some_and(|id| id != 0));
        prop_assert_eq!(number("x-datadog-span-id"), number("x-datadog-parent-id"));
    }
}
