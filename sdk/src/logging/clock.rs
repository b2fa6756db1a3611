//! The wall-clock time of a log record, in UTC, split into the fields the line formats print.
//! Hand-rolled (Howard Hinnant's `civil_from_days`) so handler libraries need no date crate.
use std::time::SystemTime;

/// A UTC instant at millisecond precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UtcTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
}

impl UtcTime {
    /// Now. A clock set before 1970 reads as the epoch rather than failing a log call.
    pub fn now() -> Self {
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self::from_unix_millis(millis)
    }

    pub fn from_unix_millis(millis: u64) -> Self {
        let seconds = millis / 1000;
        let days = (seconds / 86_400) as i64;
        let of_day = (seconds % 86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day % 3600 / 60,
            second: of_day % 60,
            millisecond: (millis % 1000) as u32,
        }
    }
}

/// Year, month (1-12), day (1-31) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(
            UtcTime::from_unix_millis(0),
            UtcTime {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                millisecond: 0
            }
        );
        // 2024-02-29T23:59:59.007Z, a leap day, checked with `date -u -d @1709251199`.
        assert_eq!(
            UtcTime::from_unix_millis(1_709_251_199_007),
            UtcTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 59,
                millisecond: 7
            }
        );
        let next = UtcTime::from_unix_millis(1_709_251_200_000);
        assert_eq!((next.year, next.month, next.day, next.hour), (2024, 3, 1, 0));
        let end_of_year = UtcTime::from_unix_millis(1_735_689_599_999);
        assert_eq!((end_of_year.year, end_of_year.month, end_of_year.day), (2024, 12, 31));
    }

    #[test]
    fn now_is_after_2024() {
        assert!(UtcTime::now().year >= 2024);
    }
}
