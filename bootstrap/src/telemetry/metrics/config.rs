//! Every `DD_*` variable that shapes metrics, with the names, parsing rules and defaults of
//! Datadog's Python library (its `config.py`, `api.py`, `metric.py`), plus the transport choice
//! it makes once at start.
use std::path::Path;

use super::flush_strategy::{FlushStrategy, InvalidFlushStrategy};
use crate::config::Environment;

/// Where Datadog's Lambda Extension lives when its layer is installed; its presence alone
/// selects the Extension transport (an HTTP probe gave false positives upstream).
pub const EXTENSION_PATH: &str = "/opt/extensions/datadog-agent";

/// `DD_SITE` when unset.
pub const DEFAULT_SITE: &str = "datadoghq.com";

/// DogStatsD's port, as Datadog's Agent and Extension default it (`DD_DOGSTATSD_PORT`).
pub const DEFAULT_DOGSTATSD_PORT: u16 = 8125;

/// Every Datadog site a function can send to (docs.datadoghq.com/getting_started/site).
pub const KNOWN_SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
];

/// Where metrics go, chosen once at start in the seed's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `/opt/extensions/datadog-agent` exists: custom metrics to DogStatsD on 127.0.0.1:8125.
    Extension,
    /// `DD_FLUSH_TO_LOG=true`: one JSON line per point on stdout, for the Datadog Forwarder.
    Forwarder,
    /// FIPS mode without the Extension or the Forwarder: the seed drops custom metrics.
    NoMetrics,
    /// The seed's default: `POST /api/v1/distribution_points` with an API key.
    DatadogApi,
}

impl Transport {
    /// The seed's order (§3.2): Extension, then `DD_FLUSH_TO_LOG`, then FIPS, then the API.
    pub fn choose(extension_present: bool, flush_to_log: bool, fips_mode: bool) -> Self {
        if extension_present {
            Transport::Extension
        } else if flush_to_log {
            Transport::Forwarder
        } else if fips_mode {
            Transport::NoMetrics
        } else {
            Transport::DatadogApi
        }
    }
}

/// The metrics configuration, read once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `DD_ENHANCED_METRICS`, default true.
    pub enhanced_metrics: bool,
    /// `DD_FLUSH_TO_LOG`, default false.
    pub flush_to_log: bool,
    /// `DD_SITE`, default `datadoghq.com`.
    pub site: String,
    /// `DATADOG_HOST`: the whole API base URL, scheme included.
    pub datadog_host: Option<String>,
    /// `DD_LAMBDA_FIPS_MODE`: only `true` (any case) turns it on; default on in `us-gov-*`.
    pub fips_mode: bool,
    /// `DD_LOCAL_TEST`: with the Extension, POST its flush endpoint after every invocation.
    pub local_test: bool,
    /// `DD_TAGS` (and the legacy `DATADOG_TAGS`), split on commas and spaces.
    pub global_tags: Vec<String>,
    /// `DD_ENV`, `DD_SERVICE`, `DD_VERSION`.
    pub env: Option<String>,
    pub service: Option<String>,
    pub version: Option<String>,
    /// Whether `/opt/extensions/datadog-agent` exists.
    pub extension_present: bool,
    pub transport: Transport,
    /// `AWS_REGION`.
    pub region: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, `function` when unset (the seed's default, used for the KMS
    /// encryption context).
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION`, `$LATEST` when unset.
    pub function_version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, 128 when unset.
    pub memory_mb: u32,
    /// `AWS_EXECUTION_ENV` (managed runtimes only; a custom runtime has none).
    pub execution_env: Option<String>,
    /// `DD_DOGSTATSD_PORT` (default 8125): where the bootstrap's DogStatsD listener binds on
    /// 127.0.0.1 when no Extension owns that port.
    pub dogstatsd_port: u16,
    /// An exec child's tracer tells the Datadog Extension of each invocation
    /// (`DD_UNIVERSAL_INSTRUMENTATION`, see `telemetry::exec`): the Extension then counts an HTTP
    /// trigger's 5xx answer in `errors` itself, so the bootstrap does not. Set by the caller;
    /// `false` from the environment alone.
    pub http_errors_counted_by_extension: bool,
    /// `DD_SERVERLESS_FLUSH_STRATEGY` (the Extension's variable): when custom metrics are posted
    /// to the Datadog API. A value the Extension would refuse is kept as the error, logged once
    /// by the processor, which then uses the default.
    pub flush_strategy: Result<FlushStrategy, InvalidFlushStrategy>,
}

impl MetricsConfig {
    /// Reads the environment; the Extension is looked for at [`EXTENSION_PATH`].
    pub fn from_env(env: &Environment) -> Self {
        Self::from_env_with_extension_path(env, Path::new(EXTENSION_PATH))
    }

    /// As [`MetricsConfig::from_env`], with the Extension looked for at `extension_path`.
    pub fn from_env_with_extension_path(env: &Environment, extension_path: &Path) -> Self {
        let region = env.non_empty("AWS_REGION").unwrap_or_default().to_owned();
        let fips_mode = match env.non_empty("DD_LAMBDA_FIPS_MODE") {
            // Unlike every other Datadog boolean, `1` is false here.
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => region.starts_with("us-gov-"),
        };
        let flush_to_log = env.flag("DD_FLUSH_TO_LOG", false);
        let extension_present = extension_path.exists();
        let mut global_tags = split_tags(env.get("DD_TAGS").unwrap_or_default());
        for tag in split_tags(env.get("DATADOG_TAGS").unwrap_or_default()) {
            if !global_tags.contains(&tag) {
                global_tags.push(tag);
            }
        }
        Self {
            enhanced_metrics: env.flag("DD_ENHANCED_METRICS", true),
            flush_to_log,
            site: env.non_empty("DD_SITE").unwrap_or(DEFAULT_SITE).to_owned(),
            datadog_host: env.non_empty("DATADOG_HOST").map(|h| h.trim_end_matches('/').to_owned()),
            fips_mode,
            local_test: env.flag("DD_LOCAL_TEST", false),
            global_tags,
            env: env.non_empty("DD_ENV").map(str::to_owned),
            service: env.non_empty("DD_SERVICE").map(str::to_owned),
            version: env.non_empty("DD_VERSION").map(str::to_owned),
            extension_present,
            transport: Transport::choose(extension_present, flush_to_log, fips_mode),
            function_name: env.non_empty("AWS_LAMBDA_FUNCTION_NAME").unwrap_or("function").to_owned(),
            function_version: env.non_empty("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or("$LATEST").to_owned(),
            memory_mb: env
                .non_empty("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|v| v.parse().ok())
                .unwrap_or(128),
            execution_env: env.non_empty("AWS_EXECUTION_ENV").map(str::to_owned),
            dogstatsd_port: env
                .non_empty("DD_DOGSTATSD_PORT")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_DOGSTATSD_PORT),
            http_errors_counted_by_extension: false,
            flush_strategy: env
                .non_empty("DD_SERVERLESS_FLUSH_STRATEGY")
                .map_or(Ok(FlushStrategy::Default), FlushStrategy::parse),
            region,
        }
    }

    /// The loopback address of the bootstrap's DogStatsD listener.
    pub fn dogstatsd_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.dogstatsd_port))
    }

    /// The API base URL: `DATADOG_HOST`, else `https://api.<DD_SITE>`.
    pub fn api_base_url(&self) -> String {
        match &self.datadog_host {
            Some(host) => host.clone(),
            None => format!("https://api.{}", self.site),
        }
    }

    /// Whether `DD_SITE` names a site Datadog runs (an unknown one is still used, as the seed does).
    pub fn site_is_known(&self) -> bool {
        KNOWN_SITES.contains(&self.site.as_str())
    }

    /// Tags every point sent to the Datadog API carries after its own, as datadogpy's
    /// ThreadStats adds them: `env:`, `service:`, `version:`, then `DD_TAGS`.
    pub fn api_constant_tags(&self) -> Vec<String> {
        let mut tags = Vec::new();
        if let Some(env) = &self.env {
            tags.push(format!("env:{env}"));
        }
        if let Some(service) = &self.service {
            tags.push(format!("service:{service}"));
        }
        if let Some(version) = &self.version {
            tags.push(format!("version:{version}"));
        }
        for tag in &self.global_tags {
            if !tags.contains(tag) {
                tags.push(tag.clone());
            }
        }
        tags
    }
}

/// `DD_TAGS` is `key:value` items separated by commas or spaces (both forms are documented).
fn split_tags(raw: &str) -> Vec<String> {
    raw.split([',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> MetricsConfig {
        MetricsConfig::from_env_with_extension_path(
            &Environment::from_pairs(pairs.iter().copied()),
            Path::new("/nonexistent/datadog-agent"),
        )
    }

    #[test]
    fn defaults_are_the_seeds() {
        let c = config(&[]);
        assert!(c.enhanced_metrics);
        assert!(!c.flush_to_log);
        assert_eq!(c.site, "datadoghq.com");
        assert_eq!(c.api_base_url(), "https://api.datadoghq.com");
        assert!(!c.fips_mode);
        assert_eq!(c.transport, Transport::DatadogApi);
        assert_eq!(c.function_name, "function");
        assert_eq!(c.function_version, "$LATEST");
        assert_eq!(c.memory_mb, 128);
        assert!(c.api_constant_tags().is_empty());
        assert_eq!(c.flush_strategy, Ok(FlushStrategy::Default));
    }

    #[test]
    fn flush_strategy_is_read_and_a_bad_one_kept_as_its_error() {
        let c = config(&[("DD_SERVERLESS_FLUSH_STRATEGY", "periodically,60000")]);
        assert_eq!(c.flush_strategy, Ok(FlushStrategy::Periodically(std::time::Duration::from_mins(1))));
        let c = config(&[("DD_SERVERLESS_FLUSH_STRATEGY", "often")]);
        assert_eq!(c.flush_strategy, Err(InvalidFlushStrategy("often".into())));
    }

    #[test]
    fn dogstatsd_port_defaults_to_8125_and_ignores_garbage() {
        assert_eq!(config(&[]).dogstatsd_addr().to_string(), "127.0.0.1:8125");
        assert_eq!(
            config(&[("DD_DOGSTATSD_PORT", "18125")]).dogstatsd_addr().to_string(),
            "127.0.0.1:18125"
        );
        assert_eq!(config(&[("DD_DOGSTATSD_PORT", "udp")]).dogstatsd_port, 8125);
        assert_eq!(config(&[("DD_DOGSTATSD_PORT", "70000")]).dogstatsd_port, 8125);
    }

    #[test]
    fn booleans_follow_datadogs_rule() {
        assert!(!config(&[("DD_ENHANCED_METRICS", "false")]).enhanced_metrics);
        assert!(!config(&[("DD_ENHANCED_METRICS", "yes")]).enhanced_metrics);
        assert!(config(&[("DD_ENHANCED_METRICS", "")]).enhanced_metrics);
        assert!(config(&[("DD_FLUSH_TO_LOG", "1")]).flush_to_log);
        assert!(config(&[("DD_FLUSH_TO_LOG", "True")]).flush_to_log);
    }

    #[test]
    fn every_site_gives_its_api_host() {
        for site in KNOWN_SITES {
            let c = config(&[("DD_SITE", site)]);
            assert!(c.site_is_known());
            assert_eq!(c.api_base_url(), format!("https://api.{site}"));
        }
        let c = config(&[("DD_SITE", "datadoghq.eu"), ("DATADOG_HOST", "http://127.0.0.1:9/")]);
        assert_eq!(c.api_base_url(), "http://127.0.0.1:9");
        assert!(!config(&[("DD_SITE", "example.com")]).site_is_known());
    }

    #[test]
    fn fips_accepts_only_true_and_defaults_on_in_gov_regions() {
        assert!(config(&[("DD_LAMBDA_FIPS_MODE", "TRUE")]).fips_mode);
        assert!(!config(&[("DD_LAMBDA_FIPS_MODE", "1")]).fips_mode);
        assert!(config(&[("AWS_REGION", "us-gov-west-1")]).fips_mode);
        assert!(!config(&[("AWS_REGION", "us-gov-west-1"), ("DD_LAMBDA_FIPS_MODE", "false")]).fips_mode);
    }

    #[test]
    fn transport_is_chosen_in_the_seeds_order() {
        assert_eq!(Transport::choose(true, true, true), Transport::Extension);
        assert_eq!(Transport::choose(false, true, true), Transport::Forwarder);
        assert_eq!(Transport::choose(false, false, true), Transport::NoMetrics);
        assert_eq!(Transport::choose(false, false, false), Transport::DatadogApi);
        assert_eq!(config(&[("DD_FLUSH_TO_LOG", "true")]).transport, Transport::Forwarder);
        assert_eq!(config(&[("DD_LAMBDA_FIPS_MODE", "true")]).transport, Transport::NoMetrics);
    }

    #[test]
    fn extension_is_detected_by_its_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datadog-agent");
        std::fs::write(&path, b"").unwrap();
        let c = MetricsConfig::from_env_with_extension_path(&Environment::from_pairs([("DD_FLUSH_TO_LOG", "true")]), &path);
        assert!(c.extension_present);
        assert_eq!(c.transport, Transport::Extension);
    }

    #[test]
    fn constant_tags_for_the_api() {
        let c = config(&[
            ("DD_ENV", "prod"),
            ("DD_SERVICE", "svc"),
            ("DD_VERSION", "1.2"),
            ("DD_TAGS", "team:a, env:prod tier:web,,"),
            ("DATADOG_TAGS", "legacy:1,team:a"),
        ]);
        assert_eq!(c.global_tags, ["team:a", "env:prod", "tier:web", "legacy:1"]);
        assert_eq!(
            c.api_constant_tags(),
            ["env:prod", "service:svc", "version:1.2", "team:a", "tier:web", "legacy:1"]
        );
    }
}
