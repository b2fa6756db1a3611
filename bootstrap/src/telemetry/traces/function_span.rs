//! The `aws.lambda` span (§5.6), its error and timeout marks (§5.14) and the cold-start
//! `aws.lambda.load` span (§5.12).
use super::arn::function_arn_and_version;
use super::config::TraceConfig;
use super::span::{random_id, Span, TraceId};
use super::trigger::Tags;
use crate::runtime_api::ErrorBody;

/// This runtime's version, in the `datadog_lambda` and `dd_trace` tags.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub const TIMEOUT_MESSAGE: &str = "Datadog detected an Impending Timeout";
pub const TIMEOUT_TYPE: &str = "Impending Timeout";

/// What the function span needs to know about the function.
#[derive(Clone, Debug, Default)]
pub struct FunctionInfo {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub name: String,
    /// `AWS_LAMBDA_INITIALIZATION_TYPE`.
    pub initialization_type: String,
    /// When the handler's init ran (dylib load + init, or child start to its first `/next`),
    /// in epoch nanoseconds: the `aws.lambda.load` span of the first invocation.
    pub init_window_ns: Option<(i64, i64)>,
    /// `DD_LAMBDA_HANDLER` (else `_HANDLER`): names the span of a handler that failed to load.
    pub handler: Option<String>,
}

impl FunctionInfo {
    pub fn from_config(function: &crate::config::FunctionConfig) -> Self {
        Self {
            name: function.name.clone(),
            initialization_type: function.initialization_type.clone(),
            init_window_ns: None,
            handler: None,
        }
    }

    /// Adds the configured handler value (`crate::config::Config::handler`).
    #[must_use]
    pub fn with_handler(mut self, handler: Option<String>) -> Self {
        self.handler = handler;
        self
    }

    /// What names the handler's code, as the seed names the module it failed to import: the
    /// library of `libapp.so:name`, the program of an exec command line, else the function.
    pub fn handler_resource(&self) -> String {
        let first = self.handler.as_deref().and_then(|h| h.split_whitespace().next());
        match first {
            Some(value) => match value.rsplit_once(':') {
                Some((file, _)) if std::path::Path::new(file).extension().is_some_and(|e| e == "so") => file.to_owned(),
                _ => value.to_owned(),
            },
            None => self.display_name().to_owned(),
        }
    }

    /// Adds the init window of the process (from the lifecycle's `InitReport`).
    #[must_use]
    pub fn with_init(mut self, init: &crate::lifecycle::InitReport) -> Self {
        self.init_window_ns = Some((init.started.epoch_ns(), init.finished.epoch_ns()));
        self
    }

    /// The span's resource and default service: the function name, `function` when unknown.
    pub fn display_name(&self) -> &str {
        if self.name.is_empty() {
            "function"
        } else {
            &self.name
        }
    }

    /// `DD_SERVICE`, else `aws.lambda` when AWS service representation is off, else the
    /// function name.
    pub fn service(&self, config: &TraceConfig) -> String {
        match (&config.service, config.aws_service_representation) {
            (Some(service), _) => service.clone(),
            (None, false) => "aws.lambda".to_owned(),
            (None, true) => self.display_name().to_owned(),
        }
    }
}

/// What is known of the invocation when its span is started.
pub struct FunctionSpanStart<'a> {
    pub trace_id: TraceId,
    pub span_id: u64,
    pub parent_id: u64,
    pub start_ns: i64,
    pub request_id: &'a str,
    pub invoked_function_arn: &'a str,
    pub cold_start: bool,
    pub proactive_initialization: bool,
    /// X-Ray context merged as the parent (`_dd.parent_source: xray`).
    pub parent_is_xray: bool,
    pub trigger_tags: &'a Tags,
    pub durable_tags: &'a Tags,
}

pub fn start_function_span(start: &FunctionSpanStart<'_>, function: &FunctionInfo, config: &TraceConfig) -> Span {
    let mut span = Span::new("aws.lambda", start.trace_id, start.span_id, start.parent_id);
    "serverless".clone_into(&mut span.span_type);
    function.display_name().clone_into(&mut span.resource);
    span.service = function.service(config);
    span.start_ns = start.start_ns;
    for (key, value) in &config.tags {
        span.set_meta(key.clone(), value.clone());
    }
    if let Some(env) = &config.env {
        span.set_meta("env", env.clone());
    }
    if let Some(version) = &config.version {
        span.set_meta("version", version.clone());
    }
    let (function_arn, function_version) = function_arn_and_version(start.invoked_function_arn);
    span.set_meta("span.kind", "server");
    span.set_meta("span.name", "aws.lambda");
    span.set_meta("cold_start", if start.cold_start { "true" } else { "false" });
    if start.proactive_initialization {
        span.set_meta("proactive_initialization", "true");
    }
    span.set_meta("function_arn", function_arn);
    span.set_meta("function_version", function_version);
    span.set_meta("request_id", start.request_id);
    span.set_meta("resource_names", function.name.clone());
    span.set_meta("functionname", function.name.to_lowercase());
    span.set_meta("datadog_lambda", VERSION);
    span.set_meta("dd_trace", VERSION);
    if start.parent_is_xray {
        span.set_meta("_dd.parent_source", "xray");
    }
    span.meta.extend(start.trigger_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    span.meta.extend(start.durable_tags.iter().map(|(k, v)| (k.clone(), v.clone())));
    span.set_meta("_dd.origin", "lambda");
    span
}

/// Error tags from the handler's error body (errorType/errorMessage/stackTrace).
pub fn mark_error(span: &mut Span, error: &ErrorBody) {
    let stack = error.stack_trace.join("\n");
    span.set_error(&error.error_type, &error.error_message, Some(&stack));
}

/// The mark of an invocation that reached its deadline (§5.14).
pub fn mark_timeout(span: &mut Span) {
    span.set_error(TIMEOUT_TYPE, TIMEOUT_MESSAGE, None);
}

/// A 5xx status code fails the span (set before it is finished, unlike the library, §11).
pub fn mark_status(span: &mut Span, status_code: &str) {
    span.set_meta("http.status_code", status_code);
    if status_code.len() == 3 && status_code.starts_with('5') {
        span.error = 1;
    }
}

/// The `aws.lambda.load` span (§5.12) under the function span: the handler's init, ending no
/// later than the function span's start.
pub fn cold_start_span(function_span: &Span, function: &FunctionInfo, init_start_ns: i64, init_end_ns: i64) -> Span {
    let mut span = Span::new("aws.lambda.load", function_span.trace_id, random_id(), function_span.span_id);
    "aws.lambda".clone_into(&mut span.service);
    function.display_name().clone_into(&mut span.resource);
    "aws.lambda.load".clone_into(&mut span.span_type);
    span.start_ns = init_start_ns;
    span.finish_at(init_end_ns.min(function_span.start_ns));
    span.set_meta("resource_names", function.display_name());
    span.set_meta("resource.name", function.display_name());
    span.set_meta("operation_name", "aws.lambda.load");
    span.set_meta("_dd.origin", "lambda");
    span
}

/// The span of a handler that failed to load (§5.14, the seed's handler import error): a
/// finished, failed `aws.lambda` root span covering init, in a trace of its own.
pub fn init_error_span(function: &FunctionInfo, config: &TraceConfig, error: &ErrorBody, start_ns: i64, end_ns: i64) -> Span {
    let epoch_seconds = u64::try_from(start_ns / 1_000_000_000).unwrap_or(0);
    let mut span = Span::new("aws.lambda", TraceId::generate(epoch_seconds), random_id(), 0);
    "aws.lambda".clone_into(&mut span.service);
    span.resource = function.handler_resource();
    "serverless".clone_into(&mut span.span_type);
    span.start_ns = start_ns;
    span.finish_at(end_ns.max(start_ns));
    for (key, value) in &config.tags {
        span.set_meta(key.clone(), value.clone());
    }
    if let Some(env) = &config.env {
        span.set_meta("env", env.clone());
    }
    if let Some(version) = &config.version {
        span.set_meta("version", version.clone());
    }
    mark_error(&mut span, error);
    // ddtrace files the seed's integer `error.status` tag as a metric.
    span.set_metric("error.status", 500.0);
    span.set_meta("status", "error");
    span.set_meta("operation_name", "aws.lambda");
    span.set_meta("resource_names", span.resource.clone());
    span.set_meta("resource.name", span.resource.clone());
    span.set_meta("_dd.origin", "lambda");
    // A trace started and kept here: the default sampler's decision.
    span.set_metric("_sampling_priority_v1", 1.0);
    span.set_metric("_dd.top_level", 1.0);
    span.set_meta("_dd.p.dm", "-0");
    if let Some(tid) = span.trace_id.tid_tag() {
        span.set_meta("_dd.p.tid", tid);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn start<'a>(tags: &'a Tags, empty: &'a Tags) -> FunctionSpanStart<'a> {
        FunctionSpanStart {
            trace_id: TraceId::new(0, 1),
            span_id: 2,
            parent_id: 3,
            start_ns: 10,
            request_id: "req-1",
            invoked_function_arn: "arn:aws:lambda:us-east-1:123456789012:function:My-Fn:Prod",
            cold_start: true,
            proactive_initialization: false,
            parent_is_xray: false,
            trigger_tags: tags,
            durable_tags: empty,
        }
    }

    #[test]
    fn tags_of_the_function_span() {
        let mut tags = Tags::new();
        tags.insert("function_trigger.event_source".into(), "sqs".into());
        let empty = Tags::new();
        let function = FunctionInfo {
            name: "My-Fn".into(),
            ..Default::default()
        };
        let config = TraceConfig::from_env(&Environment::from_pairs([("DD_ENV", "prod"), ("DD_TAGS", "team:x")]));
        let span = start_function_span(&start(&tags, &empty), &function, &config);
        assert_eq!(
            (
                span.name.as_str(),
                span.span_type.as_str(),
                span.resource.as_str(),
                span.service.as_str()
            ),
            ("aws.lambda", "serverless", "My-Fn", "My-Fn")
        );
        assert_eq!(span.meta["function_arn"], "arn:aws:lambda:us-east-1:123456789012:function:my-fn");
        assert_eq!(span.meta["function_version"], "prod");
        assert_eq!(span.meta["cold_start"], "true");
        assert_eq!(span.meta["resource_names"], "My-Fn");
        assert_eq!(span.meta["functionname"], "my-fn");
        assert_eq!(span.meta["request_id"], "req-1");
        assert_eq!(span.meta["span.kind"], "server");
        assert_eq!(span.meta["_dd.origin"], "lambda");
        assert_eq!(span.meta["function_trigger.event_source"], "sqs");
        assert_eq!(span.meta["env"], "prod");
        assert_eq!(span.meta["team"], "x");
        assert!(!span.meta.contains_key("proactive_initialization"));
        assert!(!span.meta.contains_key("_dd.parent_source"));
    }

    #[test]
    fn service_rules() {
        let function = FunctionInfo::default();
        assert_eq!(function.service(&TraceConfig::default()), "function");
        let off = TraceConfig::from_env(&Environment::from_pairs([("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED", "false")]));
        assert_eq!(function.service(&off), "aws.lambda");
        let named = TraceConfig::from_env(&Environment::from_pairs([("DD_SERVICE", "svc")]));
        assert_eq!(function.service(&named), "svc");
    }

    #[test]
    fn errors_status_and_timeouts() {
        let mut span = Span::new("aws.lambda", TraceId::new(0, 1), 2, 0);
        mark_status(&mut span, "404");
        assert_eq!(span.error, 0);
        mark_status(&mut span, "502");
        assert_eq!((span.error, span.meta["http.status_code"].as_str()), (1, "502"));
        let mut span = Span::new("aws.lambda", TraceId::new(0, 1), 2, 0);
        let mut body = ErrorBody::new("RuntimeError", "requested failure");
        body.stack_trace = vec!["at a".into(), "at b".into()];
        mark_error(&mut span, &body);
        assert_eq!(span.meta["error.type"], "RuntimeError");
        assert_eq!(span.meta["error.message"], "requested failure");
        assert_eq!(span.meta["error.stack"], "at a\nat b");
        mark_timeout(&mut span);
        assert_eq!(span.meta["error.type"], "Impending Timeout");
        assert_eq!(span.meta["error.message"], "Datadog detected an Impending Timeout");
    }

    #[test]
    fn cold_start_span_ends_by_the_function_start() {
        let mut function_span = Span::new("aws.lambda", TraceId::new(0, 1), 2, 0);
        function_span.start_ns = 1_000;
        let function = FunctionInfo {
            name: "f".into(),
            ..Default::default()
        };
        let load = cold_start_span(&function_span, &function, 100, 5_000);
        assert_eq!((load.parent_id, load.start_ns, load.duration_ns), (2, 100, 900));
        assert_eq!(
            (load.service.as_str(), load.span_type.as_str(), load.resource.as_str()),
            ("aws.lambda", "aws.lambda.load", "f")
        );
        assert_eq!(load.meta["operation_name"], "aws.lambda.load");
    }

    #[test]
    fn an_init_error_span_names_the_handlers_code() {
        let library = FunctionInfo::default().with_handler(Some("/var/task/libapp.so:echo".into()));
        assert_eq!(library.handler_resource(), "/var/task/libapp.so");
        let bare = FunctionInfo::default().with_handler(Some("libapp.so".into()));
        assert_eq!(bare.handler_resource(), "libapp.so");
        let command = FunctionInfo::default().with_handler(Some("python3 handler.py".into()));
        assert_eq!(command.handler_resource(), "python3");
        let unset = FunctionInfo {
            name: "my-fn".into(),
            ..Default::default()
        };
        assert_eq!(unset.handler_resource(), "my-fn");

        let config = TraceConfig::from_env(&Environment::from_pairs([("DD_TRACE_ENABLED", "true"), ("DD_ENV", "prod")]));
        let error = ErrorBody::new("Runtime.HandlerNotFound", "handler library not found");
        let span = init_error_span(&library, &config, &error, 1_700_000_000_000_000_000, 1_700_000_000_005_000_000);
        assert_eq!(
            (
                span.name.as_str(),
                span.service.as_str(),
                span.resource.as_str(),
                span.span_type.as_str()
            ),
            ("aws.lambda", "aws.lambda", "/var/task/libapp.so", "serverless")
        );
        assert_eq!((span.error, span.parent_id, span.duration_ns), (1, 0, 5_000_000));
        assert_eq!(span.meta["error.type"], "Runtime.HandlerNotFound");
        assert_eq!(span.meta["error.message"], "handler library not found");
        assert_eq!(span.meta["status"], "error");
        assert_eq!(span.meta["resource.name"], "/var/task/libapp.so");
        assert_eq!(span.meta["env"], "prod");
        assert_eq!(span.metrics["error.status"], 500.0);
        assert_eq!(span.metrics["_sampling_priority_v1"], 1.0);
        assert_eq!(span.meta["_dd.p.tid"], format!("{:08x}00000000", 1_700_000_000u64));
    }
}
