//! Every variable the bootstrap reads, read once at start into typed values.
//!
//! Names, defaults and meanings are Datadog's and AWS's own, so a function moving from
//! Datadog's Lambda libraries keeps its configuration unchanged.
use std::collections::HashMap;
use std::path::PathBuf;

/// The process environment, captured once. Tests build one from pairs instead of touching the
/// real environment.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

/// Variable names whose values are secrets: never printed, even in Debug output.
fn is_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["API_KEY", "SECRET", "TOKEN", "PASSWORD", "CREDENTIAL"]
        .iter()
        .any(|part| upper.contains(part))
}

impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        let mut map = f.debug_map();
        for name in names {
            let value = if is_secret(name) { "<redacted>" } else { self.vars[name].as_str() };
            map.entry(name, &value);
        }
        map.finish()
    }
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self {
            vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// A set, non-blank value.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Datadog's boolean rule: `true` or `1` (any case) is true, anything else set is false,
    /// unset or blank is `default`.
    pub fn flag(&self, name: &str, default: bool) -> bool {
        match self.non_empty(name) {
            None => default,
            Some(v) => v.eq_ignore_ascii_case("true") || v == "1",
        }
    }
}

/// Where the bootstrap's own log lines go and how they look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `DD_LOG_LEVEL` as given (Datadog's level names, any case); `None` when unset.
    pub level: Option<String>,
    /// `AWS_LAMBDA_LOG_FORMAT=JSON`.
    pub json: bool,
}

/// What the function is, as Lambda describes it in the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionConfig {
    pub name: String,
    pub version: String,
    pub memory_mb: u32,
    pub region: String,
    pub log_group: String,
    pub log_stream: String,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE`: `on-demand`, `provisioned-concurrency`, `snap-start`, `lambda-managed-instances`.
    pub initialization_type: String,
}

/// The bootstrap's configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// `AWS_LAMBDA_RUNTIME_API`.
    pub runtime_api: Option<String>,
    /// `DD_LAMBDA_HANDLER`, else `_HANDLER`.
    pub handler: Option<String>,
    /// `LAMBDA_TASK_ROOT`, default `/var/task`.
    pub task_root: PathBuf,
    /// `AWS_LAMBDA_MAX_CONCURRENCY`, default 1.
    pub max_concurrency: usize,
    pub log: LogConfig,
    pub function: FunctionConfig,
    /// The whole environment, for the telemetry modules that read their own `DD_*` variables.
    pub env: Environment,
}

impl Config {
    pub fn from_env(env: Environment) -> Self {
        let handler = env
            .non_empty("DD_LAMBDA_HANDLER")
            .or_else(|| env.non_empty("_HANDLER"))
            .map(str::to_owned);
        let max_concurrency = env
            .non_empty("AWS_LAMBDA_MAX_CONCURRENCY")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            .unwrap_or(1);
        let function = FunctionConfig {
            name: env.non_empty("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default().to_owned(),
            version: env.non_empty("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or("$LATEST").to_owned(),
            memory_mb: env
                .non_empty("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|v| v.parse().ok())
                .unwrap_or(128),
            region: env
                .non_empty("AWS_REGION")
                .or_else(|| env.non_empty("AWS_DEFAULT_REGION"))
                .unwrap_or_default()
                .to_owned(),
            log_group: env.non_empty("AWS_LAMBDA_LOG_GROUP_NAME").unwrap_or_default().to_owned(),
            log_stream: env.non_empty("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_default().to_owned(),
            initialization_type: env.non_empty("AWS_LAMBDA_INITIALIZATION_TYPE").unwrap_or("on-demand").to_owned(),
        };
        Self {
            runtime_api: env.non_empty("AWS_LAMBDA_RUNTIME_API").map(str::to_owned),
            handler,
            task_root: PathBuf::from(env.non_empty("LAMBDA_TASK_ROOT").unwrap_or("/var/task")),
            max_concurrency,
            log: LogConfig {
                level: env.non_empty("DD_LOG_LEVEL").map(str::to_owned),
                json: env
                    .non_empty("AWS_LAMBDA_LOG_FORMAT")
                    .is_some_and(|v| v.eq_ignore_ascii_case("json")),
            },
            function,
            env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dd_lambda_handler_wins_over_handler() {
        let config = Config::from_env(Environment::from_pairs([("DD_LAMBDA_HANDLER", "libapp.so"), ("_HANDLER", "other")]));
        assert_eq!(config.handler.as_deref(), Some("libapp.so"));
        let config = Config::from_env(Environment::from_pairs([("DD_LAMBDA_HANDLER", " "), ("_HANDLER", "other")]));
        assert_eq!(config.handler.as_deref(), Some("other"));
    }

    #[test]
    fn defaults_follow_lambda() {
        let config = Config::from_env(Environment::default());
        assert_eq!(config.task_root, PathBuf::from("/var/task"));
        assert_eq!(config.max_concurrency, 1);
        assert_eq!(config.function.version, "$LATEST");
        assert_eq!(config.function.initialization_type, "on-demand");
        assert!(!config.log.json);
    }

    #[test]
    fn concurrency_and_log_format() {
        let config = Config::from_env(Environment::from_pairs([
            ("AWS_LAMBDA_MAX_CONCURRENCY", "8"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("DD_LOG_LEVEL", "debug"),
        ]));
        assert_eq!(config.max_concurrency, 8);
        assert!(config.log.json);
        assert_eq!(config.log.level.as_deref(), Some("debug"));
        let config = Config::from_env(Environment::from_pairs([("AWS_LAMBDA_MAX_CONCURRENCY", "0")]));
        assert_eq!(config.max_concurrency, 1);
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let env = Environment::from_pairs([
            ("DD_API_KEY", "abc123secretvalue"),
            ("AWS_SECRET_ACCESS_KEY", "awssecretvalue"),
            ("AWS_SESSION_TOKEN", "tokenvalue"),
            ("DD_SERVICE", "shown"),
        ]);
        let printed = format!("{:?}", Config::from_env(env));
        assert!(
            !printed.contains("abc123secretvalue") && !printed.contains("awssecretvalue") && !printed.contains("tokenvalue"),
            "{printed}"
        );
        assert!(printed.contains("shown") && printed.contains("DD_API_KEY"), "{printed}");
    }

    #[test]
    fn datadog_flags() {
        let env = Environment::from_pairs([("A", "TRUE"), ("B", "1"), ("C", "no"), ("D", "")]);
        assert!(env.flag("A", false));
        assert!(env.flag("B", false));
        assert!(!env.flag("C", true));
        assert!(env.flag("D", true));
        assert!(!env.flag("E", false));
    }
}
