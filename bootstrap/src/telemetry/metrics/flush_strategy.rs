//! When custom metrics are posted to the Datadog API: `DD_SERVERLESS_FLUSH_STRATEGY`, with the
//! values and the adaptive default of Datadog's Lambda Extension.
//!
//! The seed posts after every invocation, so a busy function pays one HTTP request per
//! invocation (in its billed duration, and before the next event can come in). The Extension
//! batches instead once invocations come often: after the response of the first 20 it flushes
//! each time, then, while the mean gap between the last 20 invocations stays under 120 s, only
//! when 20 s have passed since the last flush. Points keep their own timestamps (10 s
//! buckets), so a later post changes when they arrive, not what they say; a timeout or the
//! sandbox's shutdown always flushes.
//!
//! A runtime differs from the Extension in one way: a request still in flight when the runtime
//! asks `/next` may be frozen with the sandbox. So a flush is made either after the response
//! and before `/next` (the Extension's "blocking" kind), or, for `end,<ms>` and
//! `continuously,<ms>`, every `<ms>` *while an invocation runs*, from the telemetry thread (the
//! handler does not wait for it), and the end of the invocation waits for such a flush to finish
//! before `/next`. `end,<ms>` also flushes after every invocation; `continuously,<ms>` after an
//! invocation only when `<ms>` have passed since the last flush.
//!
//! Gaps and periods are measured in wall-clock time, as the Extension does: the monotonic clock
//! may not advance while the sandbox is frozen between invocations, and a function invoked
//! every ten minutes must not look busy.
use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// Invocations the default strategy looks back on (the Extension's `LOOKBACK_COUNT`).
pub const LOOKBACK_COUNT: usize = 20;
/// Mean gap under which the default strategy batches.
pub const FREQUENT_MEAN_GAP: Duration = Duration::from_mins(2);
/// How often the default strategy flushes once it batches.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(20);

/// `DD_SERVERLESS_FLUSH_STRATEGY`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushStrategy {
    /// Unset or `default`: after each invocation until [`LOOKBACK_COUNT`] are known, then every
    /// [`DEFAULT_PERIOD`] while their mean gap is under [`FREQUENT_MEAN_GAP`].
    #[default]
    Default,
    /// `end`: after every invocation (what the seed does).
    End,
    /// `end,<ms>`: after every invocation, and every `<ms>` while one runs.
    EndPeriodically(Duration),
    /// `periodically,<ms>`: after an invocation once `<ms>` have passed since the last flush.
    Periodically(Duration),
    /// `continuously,<ms>`: every `<ms>` while an invocation runs, and after one when `<ms>` have
    /// passed since the last flush.
    Continuously(Duration),
}

/// A `DD_SERVERLESS_FLUSH_STRATEGY` value that is none of the Extension's forms.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "DD_SERVERLESS_FLUSH_STRATEGY={0:?} is not one of default, end, end,<ms>, periodically,<ms>, continuously,<ms> (<ms> a whole number above 0); using default"
)]
pub struct InvalidFlushStrategy(pub String);

impl FlushStrategy {
    /// Parses the variable's value as the Extension does (case and spaces around the parts
    /// ignored).
    pub fn parse(value: &str) -> Result<Self, InvalidFlushStrategy> {
        let invalid = || InvalidFlushStrategy(value.to_owned());
        let mut parts = value.split(',').map(str::trim);
        let kind = parts.next().unwrap_or_default().to_ascii_lowercase();
        let interval = parts.next();
        if parts.next().is_some() {
            return Err(invalid());
        }
        let millis = || -> Result<Duration, InvalidFlushStrategy> {
            match interval.map(str::parse::<u64>) {
                Some(Ok(ms)) if ms > 0 => Ok(Duration::from_millis(ms)),
                _ => Err(invalid()),
            }
        };
        match (kind.as_str(), interval) {
            ("default", None) => Ok(Self::Default),
            ("end", None) => Ok(Self::End),
            ("end", Some(_)) => Ok(Self::EndPeriodically(millis()?)),
            ("periodically", Some(_)) => Ok(Self::Periodically(millis()?)),
            ("continuously", Some(_)) => Ok(Self::Continuously(millis()?)),
            _ => Err(invalid()),
        }
    }

    /// How often to flush while an invocation runs, for the strategies that do.
    pub fn during_invocations(self) -> Option<Duration> {
        match self {
            Self::EndPeriodically(period) | Self::Continuously(period) => Some(period),
            Self::Default | Self::End | Self::Periodically(_) => None,
        }
    }
}

/// Decides, after each invocation, whether the custom points go out now.
#[derive(Debug)]
pub struct FlushSchedule {
    strategy: FlushStrategy,
    /// When the last [`LOOKBACK_COUNT`] invocations were received, oldest first.
    recent: VecDeque<SystemTime>,
    /// Invocations noted so far (the first [`LOOKBACK_COUNT`] always flush).
    seen: u64,
    last_flush: Option<SystemTime>,
}

impl FlushSchedule {
    pub fn new(strategy: FlushStrategy) -> Self {
        Self {
            strategy,
            recent: VecDeque::with_capacity(LOOKBACK_COUNT),
            seen: 0,
            last_flush: None,
        }
    }

    /// Notes an invocation received at `at`.
    pub fn invocation(&mut self, at: SystemTime) {
        if self.recent.len() == LOOKBACK_COUNT {
            self.recent.pop_front();
        }
        self.recent.push_back(at);
        self.seen = self.seen.saturating_add(1);
    }

    /// How often to flush now; `None`: after every invocation.
    pub fn period(&self) -> Option<Duration> {
        match self.strategy {
            FlushStrategy::End | FlushStrategy::EndPeriodically(_) => None,
            FlushStrategy::Periodically(period) | FlushStrategy::Continuously(period) => Some(period),
            FlushStrategy::Default => self.is_frequent().then_some(DEFAULT_PERIOD),
        }
    }

    fn is_frequent(&self) -> bool {
        let (Some(first), Some(last)) = (self.recent.front(), self.recent.back()) else {
            return false;
        };
        if self.seen <= LOOKBACK_COUNT as u64 {
            return false;
        }
        let gaps = u32::try_from(self.recent.len() - 1).unwrap_or(u32::MAX);
        // A clock set back reads as no time at all.
        last.duration_since(*first).unwrap_or_default() / gaps < FREQUENT_MEAN_GAP
    }

    /// Whether the points should go out at `now` (after an invocation's response, or at init).
    pub fn is_due(&self, now: SystemTime) -> bool {
        match (self.period(), self.last_flush) {
            (None, _) | (_, None) => true,
            // A clock set back past the last flush: flush rather than wait for it to catch up.
            (Some(period), Some(last)) => now.duration_since(last).map_or(true, |since| since >= period),
        }
    }

    /// Notes a flush made at `at`.
    pub fn flushed(&mut self, at: SystemTime) {
        self.last_flush = Some(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_extensions_forms() {
        let ms = Duration::from_millis;
        assert_eq!(FlushStrategy::parse("default"), Ok(FlushStrategy::Default));
        assert_eq!(FlushStrategy::parse("end"), Ok(FlushStrategy::End));
        assert_eq!(FlushStrategy::parse(" End "), Ok(FlushStrategy::End));
        assert_eq!(FlushStrategy::parse("end,1000"), Ok(FlushStrategy::EndPeriodically(ms(1000))));
        assert_eq!(
            FlushStrategy::parse("periodically,60000"),
            Ok(FlushStrategy::Periodically(ms(60_000)))
        );
        assert_eq!(
            FlushStrategy::parse("continuously, 30000"),
            Ok(FlushStrategy::Continuously(ms(30_000)))
        );
        for bad in [
            "",
            "periodically",
            "periodically,",
            "periodically,0",
            "periodically,-5",
            "sometimes",
            "end,1,2",
            "default,10",
        ] {
            let err = FlushStrategy::parse(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    /// Invocations `gap` apart from `start`, each followed by the flush the schedule asks for;
    /// returns how many flushes there were.
    fn run(schedule: &mut FlushSchedule, start: SystemTime, gap: Duration, count: u32) -> (u32, SystemTime) {
        let mut flushes = 0;
        let mut now = start;
        for _ in 0..count {
            schedule.invocation(now);
            if schedule.is_due(now) {
                schedule.flushed(now);
                flushes += 1;
            }
            now += gap;
        }
        (flushes, now)
    }

    #[test]
    fn only_end_and_continuously_with_an_interval_flush_during_invocations() {
        let second = Duration::from_secs(1);
        assert_eq!(FlushStrategy::EndPeriodically(second).during_invocations(), Some(second));
        assert_eq!(FlushStrategy::Continuously(second).during_invocations(), Some(second));
        assert_eq!(FlushStrategy::Periodically(second).during_invocations(), None);
        assert_eq!(FlushStrategy::End.during_invocations(), None);
        assert_eq!(FlushStrategy::Default.during_invocations(), None);
        // After the invocation: `end,<ms>` each time, `continuously,<ms>` once per interval.
        assert_eq!(FlushSchedule::new(FlushStrategy::EndPeriodically(second)).period(), None);
        assert_eq!(FlushSchedule::new(FlushStrategy::Continuously(second)).period(), Some(second));
    }

    #[test]
    fn end_flushes_after_every_invocation() {
        let mut schedule = FlushSchedule::new(FlushStrategy::End);
        let (flushes, _) = run(&mut schedule, SystemTime::now(), Duration::from_millis(1), 100);
        assert_eq!(flushes, 100);
    }

    #[test]
    fn periodically_flushes_once_per_interval() {
        let mut schedule = FlushSchedule::new(FlushStrategy::Periodically(Duration::from_secs(10)));
        // 100 invocations 1 s apart: the first, then one every 10 s.
        let (flushes, _) = run(&mut schedule, SystemTime::now(), Duration::from_secs(1), 100);
        assert_eq!(flushes, 10);
    }

    #[test]
    fn the_default_batches_only_once_invocations_are_frequent() {
        let start = SystemTime::now();
        let mut schedule = FlushSchedule::new(FlushStrategy::Default);
        let (flushes, now) = run(&mut schedule, start, Duration::from_millis(100), 20);
        assert_eq!(flushes, 20, "the first 20 flush each time");
        assert_eq!(schedule.period(), None);
        // 400 more, 100 ms apart (40 s): one flush each 20 s.
        let (flushes, now) = run(&mut schedule, now, Duration::from_millis(100), 400);
        assert_eq!(schedule.period(), Some(DEFAULT_PERIOD));
        assert_eq!(flushes, 2);
        // Traffic slows to one every 5 minutes: once the last 20 are that far apart on average,
        // each flushes again.
        let (_, now) = run(&mut schedule, now, Duration::from_mins(5), 20);
        assert_eq!(schedule.period(), None);
        let (flushes, _) = run(&mut schedule, now, Duration::from_mins(5), 5);
        assert_eq!(flushes, 5);
    }

    #[test]
    fn a_clock_set_back_flushes() {
        let now = SystemTime::now();
        let mut schedule = FlushSchedule::new(FlushStrategy::Periodically(Duration::from_mins(1)));
        schedule.flushed(now);
        assert!(!schedule.is_due(now + Duration::from_secs(1)));
        assert!(schedule.is_due(now - Duration::from_secs(1)));
    }

    #[test]
    fn the_default_stays_per_invocation_for_rare_invocations() {
        let mut schedule = FlushSchedule::new(FlushStrategy::Default);
        let (flushes, _) = run(&mut schedule, SystemTime::now(), Duration::from_secs(150), 60);
        assert_eq!(flushes, 60);
    }
}
