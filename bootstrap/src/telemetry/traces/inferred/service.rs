//! The service name of an inferred span (§5.9).
use crate::telemetry::traces::config::TraceConfig;

/// `DD_SERVICE_MAPPING` by the specific key, then the generic one; else, with AWS service
/// representation disabled, the fallback; else the name taken from the event (trimmed, when
/// not blank) or the fallback. `None` means "the tracer's default service".
pub fn service_name(
    config: &TraceConfig,
    specific: Option<&str>,
    generic: &str,
    extracted: Option<&str>,
    fallback: Option<&str>,
) -> Option<String> {
    let mapped = specific
        .and_then(|key| config.service_mapping.get(key))
        .or_else(|| config.service_mapping.get(generic));
    if let Some(mapped) = mapped {
        return Some(mapped.clone());
    }
    if !config.aws_service_representation {
        return fallback.map(str::to_owned);
    }
    match extracted.map(str::trim).filter(|e| !e.is_empty()) {
        Some(name) => Some(name.to_owned()),
        None => fallback.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    #[test]
    fn mapping_then_representation_then_extracted() {
        let env = Environment::from_pairs([("DD_SERVICE_MAPPING", "q1:mapped,lambda_sqs:all-queues")]);
        let config = TraceConfig::from_env(&env);
        assert_eq!(
            service_name(&config, Some("q1"), "lambda_sqs", Some("q1"), Some("sqs")).as_deref(),
            Some("mapped")
        );
        assert_eq!(
            service_name(&config, Some("q2"), "lambda_sqs", Some("q2"), Some("sqs")).as_deref(),
            Some("all-queues")
        );
        let config = TraceConfig::default();
        assert_eq!(
            service_name(&config, Some("q2"), "lambda_sqs", Some(" q2 "), Some("sqs")).as_deref(),
            Some("q2")
        );
        assert_eq!(
            service_name(&config, None, "lambda_sqs", Some("  "), Some("sqs")).as_deref(),
            Some("sqs")
        );
        let env = Environment::from_pairs([("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED", "0")]);
        let config = TraceConfig::from_env(&env);
        assert_eq!(
            service_name(&config, Some("q2"), "lambda_sqs", Some("q2"), Some("sqs")).as_deref(),
            Some("sqs")
        );
        assert_eq!(service_name(&config, Some("api"), "lambda_api_gateway", Some("d.com"), None), None);
    }
}
