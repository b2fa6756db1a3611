//! The bootstrap's own log lines: tracing-subscriber to stderr, level from `DD_LOG_LEVEL`,
//! JSON when `AWS_LAMBDA_LOG_FORMAT=JSON`.
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogConfig;

/// `DD_LOG_LEVEL` mapped as Datadog's libraries map it (case-insensitive; unset or blank is INFO).
/// Returns the level and, for an unknown name, the warning to log once the subscriber is up.
pub fn level_filter(level: Option<&str>) -> (LevelFilter, Option<String>) {
    let Some(raw) = level.map(str::trim).filter(|l| !l.is_empty()) else {
        return (LevelFilter::INFO, None);
    };
    let filter = match raw.to_ascii_lowercase().as_str() {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "info" => LevelFilter::INFO,
        "warn" | "warning" => LevelFilter::WARN,
        "error" | "critical" => LevelFilter::ERROR,
        "off" => LevelFilter::OFF,
        _ => return (LevelFilter::INFO, Some(format!("Invalid log level: {raw} Defaulting to INFO"))),
    };
    (filter, None)
}

/// Installs the subscriber once; later calls are no-ops.
pub fn init(config: &LogConfig) {
    let (filter, warning) = level_filter(config.level.as_deref());
    // The level applies to the bootstrap's own lines, as Datadog's libraries scope it to their
    // own logger; libraries underneath (hyper, the AWS SDK) only speak up for warnings.
    // A `Targets` filter rather than an `EnvFilter`: these two fixed directives need no
    // directive parser or regex engine in the binary.
    let targets = Targets::new()
        .with_default(filter.min(LevelFilter::WARN))
        .with_target("bootstrap", filter);
    // The builder's own level (INFO by default) would filter before `targets`: let all through.
    let builder = tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(false);
    let installed = if config.json {
        let subscriber = builder.json().flatten_event(true).with_current_span(false).finish();
        subscriber.with(targets).try_init().is_ok()
    } else {
        builder.finish().with(targets).try_init().is_ok()
    };
    if let (true, Some(warning)) = (installed, warning) {
        tracing::warn!("{warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datadog_level_names_any_case() {
        assert_eq!(level_filter(None).0, LevelFilter::INFO);
        assert_eq!(level_filter(Some("")).0, LevelFilter::INFO);
        assert_eq!(level_filter(Some("DEBUG")).0, LevelFilter::DEBUG);
        assert_eq!(level_filter(Some("Warning")).0, LevelFilter::WARN);
        assert_eq!(level_filter(Some("critical")).0, LevelFilter::ERROR);
        assert_eq!(level_filter(Some("OFF")).0, LevelFilter::OFF);
        let (filter, warning) = level_filter(Some("loud"));
        assert_eq!(filter, LevelFilter::INFO);
        assert_eq!(warning.as_deref(), Some("Invalid log level: loud Defaulting to INFO"));
    }
}
