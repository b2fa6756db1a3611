//! The DogStatsD listener's parser on arbitrary datagrams: never panics, and every point it
//! accepts is named, finite, within the tag limit (plus the layer tag) and not older than the
//! 4 hours Datadog takes.
#![no_main]

use bootstrap::telemetry::metrics::dogstatsd::{parse_datagram, DogStatsDStats, MAX_TAGS};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000;
const FOUR_HOURS: i64 = 4 * 3600;

fuzz_target!(|data: &[u8]| {
    let stats = DogStatsDStats::default();
    let points = parse_datagram(data, NOW, &stats);
    for point in &points {
        assert!(!point.name.trim().is_empty(), "a point without a name was accepted");
        assert!(point.value.is_finite(), "a non-finite value was accepted: {point:?}");
        assert!(point.tags.len() <= MAX_TAGS + 1, "more than {MAX_TAGS} tags were accepted");
        assert!(
            point.timestamp >= NOW - FOUR_HOURS,
            "a point older than 4 hours was accepted: {point:?}"
        );
    }
    let _ = stats.refusals();
});
