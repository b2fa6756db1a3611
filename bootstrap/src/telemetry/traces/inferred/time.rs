//! The timestamps AWS puts in events, as nanoseconds since the epoch.

/// `%Y-%m-%dT%H:%M:%S.%fZ` (fraction of 1 to 6 digits required, as Python's `strptime`
/// demands with that format) or, with `fraction_required == false`, `%Y-%m-%dT%H:%M:%SZ`.
pub fn parse_utc(text: &str, fraction_required: bool) -> Option<i64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut date_parts = date.split('-');
    let year: i64 = digits(date_parts.next()?, 4)?;
    let month: i64 = digits(date_parts.next()?, 2)?;
    let day: i64 = digits(date_parts.next()?, 2)?;
    if date_parts.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let (clock, fraction) = match time.split_once('.') {
        Some((clock, fraction)) if fraction_required => (clock, fraction),
        None if !fraction_required => (time, ""),
        _ => return None,
    };
    let mut clock_parts = clock.split(':');
    let hour: i64 = digits(clock_parts.next()?, 2)?;
    let minute: i64 = digits(clock_parts.next()?, 2)?;
    let second: i64 = digits(clock_parts.next()?, 2)?;
    if clock_parts.next().is_some() || hour > 23 || minute > 59 || second > 61 {
        return None;
    }
    let fraction_ns = if fraction_required {
        if fraction.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let micros: i64 = format!("{fraction:0<6}").parse().ok()?;
        micros * 1_000
    } else {
        0
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    seconds.checked_mul(1_000_000_000)?.checked_add(fraction_ns)
}

fn digits(text: &str, len: usize) -> Option<i64> {
    (text.len() == len && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds (possibly fractional) to nanoseconds, as ddtrace does (`int(seconds * 1e9)`).
pub fn seconds_to_ns(seconds: f64) -> Option<i64> {
    let ns = seconds * 1e9;
    (ns.is_finite() && ns.abs() < 9.2e18).then_some(ns as i64)
}

/// Milliseconds to nanoseconds.
pub fn ms_to_ns(ms: i64) -> Option<i64> {
    ms.checked_mul(1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aws_timestamps() {
        assert_eq!(parse_utc("1970-01-01T00:00:00.000Z", true), Some(0));
        assert_eq!(parse_utc("2022-01-31T14:13:41.637Z", true), Some(1_643_638_421_637_000_000));
        assert_eq!(parse_utc("2021-11-04T01:37:45Z", false), Some(1_635_989_865_000_000_000));
        assert_eq!(parse_utc("2024-02-29T23:59:59.5Z", true), Some(1_709_251_199_500_000_000));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "1970-01-01T00:00:00Z",
            "1970-01-01T00:00:00.1234567Z",
            "1970-13-01T00:00:00.0Z",
            "x",
            "",
            "1970-01-01 00:00:00.0Z",
        ] {
            assert_eq!(parse_utc(bad, true), None, "{bad}");
        }
        assert_eq!(parse_utc("2021-11-04T01:37:45.1Z", false), None);
        assert_eq!(seconds_to_ns(f64::NAN), None);
        assert_eq!(ms_to_ns(i64::MAX), None);
    }
}
