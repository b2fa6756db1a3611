//! Every `DD_*` variable of tracing, with Datadog's names and defaults (§1.2, §1.4).
use std::collections::HashMap;

use crate::config::Environment;

/// A header format trace context can be read from or written in
/// (`DD_TRACE_PROPAGATION_STYLE_EXTRACT` / `_INJECT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PropagationStyle {
    /// `x-datadog-*` headers.
    Datadog,
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// Zipkin's single `b3` header.
    B3Single,
    /// Zipkin's `x-b3-*` headers.
    B3Multi,
}

impl PropagationStyle {
    /// ddtrace's defaults when nothing is configured.
    pub const DEFAULT: [PropagationStyle; 3] = [PropagationStyle::Datadog, PropagationStyle::TraceContext, PropagationStyle::Baggage];

    /// ddtrace's style names (case-insensitive); `None` for an unknown name or `none`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "datadog" => Some(Self::Datadog),
            "tracecontext" => Some(Self::TraceContext),
            "baggage" => Some(Self::Baggage),
            "b3" | "b3 single header" | "b3single" => Some(Self::B3Single),
            "b3multi" => Some(Self::B3Multi),
            _ => None,
        }
    }

    /// Reads a style list; `none` alone means no style, and unknown names are skipped.
    pub fn parse_list(list: &str) -> Vec<Self> {
        let mut styles = Vec::new();
        for style in list.split(',').filter_map(Self::parse) {
            if !styles.contains(&style) {
                styles.push(style);
            }
        }
        styles
    }
}

/// Tracing configuration, read once at start.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceConfig {
    /// `DD_TRACE_ENABLED`, default `false` (the documented default of the library we follow).
    pub enabled: bool,
    /// `DD_MERGE_XRAY_TRACES`, default `false`.
    pub merge_xray_traces: bool,
    /// `DD_COLD_START_TRACING`, default `true`, off when tracing is off.
    pub cold_start_tracing: bool,
    /// `DD_MIN_COLD_START_DURATION` (ms), default 3.
    pub min_cold_start_duration_ms: i64,
    /// `DD_CAPTURE_LAMBDA_PAYLOAD`, default `false`.
    pub capture_payload: bool,
    /// `DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH`, default 10.
    pub capture_payload_max_depth: i64,
    /// `DD_TRACE_MANAGED_SERVICES`, default `true`, off when tracing is off.
    pub managed_services: bool,
    /// `DD_ENCODE_AUTHORIZER_CONTEXT`, default `true`, off when tracing is off.
    pub encode_authorizer_context: bool,
    /// `DD_DECODE_AUTHORIZER_CONTEXT`, default `true`, off when tracing is off.
    pub decode_authorizer_context: bool,
    /// `DD_BOTOCORE_ADD_SPAN_POINTERS`, default `true`.
    pub span_pointers: bool,
    /// `DD_SERVICE`.
    pub service: Option<String>,
    /// `DD_ENV`.
    pub env: Option<String>,
    /// `DD_VERSION`.
    pub version: Option<String>,
    /// `DD_TAGS`: `key:value` pairs separated by commas or spaces, added to the function span.
    pub tags: Vec<(String, String)>,
    /// `DD_SERVICE_MAPPING` (§5.9).
    pub service_mapping: HashMap<String, String>,
    /// `DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED`: only `false`/`0` disable it.
    pub aws_service_representation: bool,
    /// `DD_TRACE_PROPAGATION_STYLE_EXTRACT`, else `DD_TRACE_PROPAGATION_STYLE`, else
    /// `datadog,tracecontext,baggage`.
    pub propagation_extract: Vec<PropagationStyle>,
    /// `DD_TRACE_PROPAGATION_STYLE_INJECT`, else `DD_TRACE_PROPAGATION_STYLE`, else the default.
    pub propagation_inject: Vec<PropagationStyle>,
    /// `DD_LOGS_INJECTION`, default `true`.
    pub logs_injection: bool,
    /// `DD_FLUSH_TO_LOG`, default `false`.
    pub flush_to_log: bool,
    /// `DD_TRACE_AGENT_URL`.
    pub trace_agent_url: Option<String>,
    /// `DD_AGENT_HOST`.
    pub agent_host: Option<String>,
    /// `DD_APM_FLUSH_DEADLINE_MILLISECONDS`, default 100 (negative values become 100): how long
    /// before the deadline the impending-timeout span is finished (§5.14).
    pub apm_flush_deadline_ms: u64,
    /// `AWS_LAMBDA_FUNCTION_NAME` is set: the X-Ray fallback of §5.3 applies only then.
    pub running_in_lambda: bool,
    /// `AWS_XRAY_DAEMON_ADDRESS`.
    pub xray_daemon_address: Option<String>,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE == lambda-managed-instances` turns cold-start tracing off.
    pub managed_instances: bool,
}

impl Default for TraceConfig {
    fn default() -> Self {
        Self::from_env(&Environment::default())
    }
}

impl TraceConfig {
    pub fn from_env(env: &Environment) -> Self {
        let enabled = env.flag("DD_TRACE_ENABLED", false);
        // Flags that "depend on tracing" (§1.1) are false whenever tracing is off.
        let with_tracing = |name: &str, default: bool| enabled && env.flag(name, default);
        let owned = |name: &str| env.non_empty(name).map(str::to_owned);
        let styles = |specific: &str| {
            env.non_empty(specific)
                .or_else(|| env.non_empty("DD_TRACE_PROPAGATION_STYLE"))
                .map_or_else(|| PropagationStyle::DEFAULT.to_vec(), PropagationStyle::parse_list)
        };
        let deadline = integer(env, "DD_APM_FLUSH_DEADLINE_MILLISECONDS", 100);
        Self {
            enabled,
            merge_xray_traces: env.flag("DD_MERGE_XRAY_TRACES", false),
            cold_start_tracing: with_tracing("DD_COLD_START_TRACING", true),
            min_cold_start_duration_ms: integer(env, "DD_MIN_COLD_START_DURATION", 3),
            capture_payload: env.flag("DD_CAPTURE_LAMBDA_PAYLOAD", false),
            capture_payload_max_depth: integer(env, "DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", 10),
            managed_services: with_tracing("DD_TRACE_MANAGED_SERVICES", true),
            encode_authorizer_context: with_tracing("DD_ENCODE_AUTHORIZER_CONTEXT", true),
            decode_authorizer_context: with_tracing("DD_DECODE_AUTHORIZER_CONTEXT", true),
            span_pointers: env.flag("DD_BOTOCORE_ADD_SPAN_POINTERS", true),
            service: owned("DD_SERVICE"),
            env: owned("DD_ENV"),
            version: owned("DD_VERSION"),
            tags: env.get("DD_TAGS").map(parse_tags).unwrap_or_default(),
            service_mapping: env.get("DD_SERVICE_MAPPING").map(parse_service_mapping).unwrap_or_default(),
            aws_service_representation: !env
                .get("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED")
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "false" | "0")),
            propagation_extract: styles("DD_TRACE_PROPAGATION_STYLE_EXTRACT"),
            propagation_inject: styles("DD_TRACE_PROPAGATION_STYLE_INJECT"),
            logs_injection: env.flag("DD_LOGS_INJECTION", true),
            flush_to_log: env.flag("DD_FLUSH_TO_LOG", false),
            trace_agent_url: owned("DD_TRACE_AGENT_URL"),
            agent_host: owned("DD_AGENT_HOST"),
            apm_flush_deadline_ms: if deadline < 0 { 100 } else { deadline as u64 },
            running_in_lambda: env.non_empty("AWS_LAMBDA_FUNCTION_NAME").is_some(),
            xray_daemon_address: owned("AWS_XRAY_DAEMON_ADDRESS"),
            managed_instances: env
                .get("AWS_LAMBDA_INITIALIZATION_TYPE")
                .is_some_and(|v| v == "lambda-managed-instances"),
        }
    }
}

/// Datadog's integer rule: base 10, anything unparsable is the default.
fn integer(env: &Environment, name: &str, default: i64) -> i64 {
    env.get(name).and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// `DD_SERVICE_MAPPING="key1:svc1,key2:svc2"`: entries without exactly one `:`, with an empty
/// side, or mapping a name to itself are ignored.
pub fn parse_service_mapping(value: &str) -> HashMap<String, String> {
    value
        .split(',')
        .filter_map(|entry| {
            let mut parts = entry.split(':');
            let (key, service) = (parts.next()?.trim(), parts.next()?.trim());
            (parts.next().is_none() && !key.is_empty() && !service.is_empty() && key != service)
                .then(|| (key.to_owned(), service.to_owned()))
        })
        .collect()
}

/// `DD_TAGS`: `k:v` items separated by commas or spaces; an item without `:` is skipped.
fn parse_tags(value: &str) -> Vec<(String, String)> {
    value
        .split([',', ' '])
        .filter_map(|item| {
            let (k, v) = item.trim().split_once(':')?;
            (!k.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> TraceConfig {
        TraceConfig::from_env(&Environment::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults() {
        let c = config(&[]);
        assert!(!c.enabled);
        assert!(!c.cold_start_tracing && !c.managed_services && !c.decode_authorizer_context);
        assert!(c.logs_injection && c.span_pointers && c.aws_service_representation);
        assert_eq!(c.capture_payload_max_depth, 10);
        assert_eq!(c.apm_flush_deadline_ms, 100);
        assert_eq!(c.propagation_extract, PropagationStyle::DEFAULT.to_vec());
        assert!(!c.running_in_lambda);
    }

    #[test]
    fn tracing_dependent_flags_follow_tracing() {
        let c = config(&[("DD_TRACE_ENABLED", "true"), ("DD_TRACE_MANAGED_SERVICES", "false")]);
        assert!(c.enabled && c.cold_start_tracing && !c.managed_services && c.encode_authorizer_context);
    }

    #[test]
    fn numbers_and_lists() {
        let c = config(&[
            ("DD_CAPTURE_LAMBDA_PAYLOAD_MAX_DEPTH", "2.5"),
            ("DD_APM_FLUSH_DEADLINE_MILLISECONDS", "-1"),
            ("DD_TRACE_PROPAGATION_STYLE", "b3multi, tracecontext"),
            ("DD_TRACE_PROPAGATION_STYLE_EXTRACT", "B3,bogus,datadog"),
            ("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED", "FALSE"),
            ("DD_TAGS", "team:a, owner:b nocolon"),
        ]);
        assert_eq!(c.capture_payload_max_depth, 10);
        assert_eq!(c.apm_flush_deadline_ms, 100);
        assert_eq!(c.propagation_extract, vec![PropagationStyle::B3Single, PropagationStyle::Datadog]);
        assert_eq!(
            c.propagation_inject,
            vec![PropagationStyle::B3Multi, PropagationStyle::TraceContext]
        );
        assert!(!c.aws_service_representation);
        assert_eq!(c.tags, vec![("team".into(), "a".into()), ("owner".into(), "b".into())]);
    }

    #[test]
    fn service_mapping_rules() {
        let m = parse_service_mapping(" api1 : svc1 ,bad,a:b:c,:x,y:,same:same,lambda_sqs:queues");
        assert_eq!(m.len(), 2);
        assert_eq!(m["api1"], "svc1");
        assert_eq!(m["lambda_sqs"], "queues");
    }
}
