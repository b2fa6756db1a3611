//! Lambda Function URL events: API-Gateway-v2-shaped, told apart by their domain.
use serde_json::Value;

use crate::telemetry::traces::arn::FunctionArn;

/// `<id>.lambda-url.<region>.on.aws` style domains: the second dot-label is `lambda-url`.
pub(super) fn is_function_url_domain(domain: Option<&Value>) -> bool {
    domain
        .and_then(Value::as_str)
        .is_some_and(|d| d.split('.').nth(1) == Some("lambda-url"))
}

/// `arn:aws:lambda:<region>:<account>:url:<function>[:<qualifier>]` (always partition `aws`,
/// as Datadog's library writes it).
pub(super) fn event_source_arn(function: &FunctionArn) -> String {
    let mut arn = format!("arn:aws:lambda:{}:{}:url:{}", function.region, function.account, function.name);
    if let Some(qualifier) = &function.qualifier {
        arn.push(':');
        arn.push_str(qualifier);
    }
    arn
}
