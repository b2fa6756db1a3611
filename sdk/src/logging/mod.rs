//! Logging for handler libraries, with Datadog's logs injection: a [`log`] crate logger that
//! writes each record as one stdout line carrying the invocation's request id and its
//! `dd.trace_id` / `dd.span_id`, so Datadog links the function's logs to its traces.
//!
//! The bootstrap injects the ids into an exec child's output as it passes through; a handler
//! library writes to the process's stdout itself, so its lines get them here. Install once, in
//! the library's init, then log through the `log` macros (add `log = "0.4"` to the library's
//! dependencies; records from the libraries it uses that log through `log` are written too):
//!
//! ```
//! use sdk::{Context, Diagnostic};
//!
//! sdk::export_abi!();
//!
//! fn init() -> Result<(), sdk::logging::LoggingError> {
//!     sdk::logging::init()
//! }
//!
//! fn checkout(order: serde_json::Value, context: Context) -> Result<serde_json::Value, Diagnostic> {
//!     log::info!("order {} received", order["id"]);
//!     Ok(order)
//! }
//!
//! sdk::init!(init);
//! sdk::handler!(checkout);
//! # fn main() {}
//! ```
//!
//! Under the bootstrap with tracing on (`DD_TRACE_ENABLED=true`), the record prints as
//! Datadog's Python library prints its logs in Lambda (§7), fields separated by tabs (`\t`):
//!
//! ```text
//! [INFO]\t2024-01-01T12:00:00.5Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\t[dd.trace_id=8460795402960033906 dd.span_id=5837228094213247506]\torder 42 received
//! ```
//!
//! # Configuration
//!
//! [`init`] reads the function's environment ([`Builder::from_env`]); a [`Builder`] sets each
//! choice in code instead.
//!
//! | variable | default | effect |
//! |---|---|---|
//! | `DD_LOGS_INJECTION` | `true` | `false`: no ids; text lines take AWS's runtime format instead |
//! | `AWS_LAMBDA_LOG_FORMAT` | `Text` | `JSON`: one JSON object per line (Lambda's JSON log format), ids as `"dd.trace_id"`/`"dd.span_id"` fields |
//! | `AWS_LAMBDA_LOG_LEVEL` | `INFO` | the most verbose level written: `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL` (Lambda's application log level) |
//! | `DD_SERVICE`, `DD_ENV`, `DD_VERSION` | | the `dd.service`/`dd.env`/`dd.version` fields of JSON lines |
//!
//! The ids are those of the invocation's `aws.lambda` span, the trace the bootstrap sends; `0`
//! when there is no trace (tracing off, or a record logged outside an invocation, e.g. in
//! init, whose request id is empty). Records logged inside [`in_span`] carry that child span's
//! id instead.
//!
//! # Which invocation a record belongs to
//!
//! The one running on the logging thread: the bootstrap calls the handler on one of its threads,
//! and an async handler is polled on it. Work the handler moves elsewhere takes its invocation
//! along with [`scope`] (a thread) or [`in_invocation`] (a spawned task); records from
//! anywhere else carry an empty request id and zero ids.
//!
//! # Guarantees
//!
//! Each record is one line, written with a single `write` to stdout when it is complete (on
//! Lambda's stdout pipe, lines up to 4096 bytes never mix with the bootstrap's lines or other
//! threads'). A message's newlines become `\r` in text (AWS's runtimes do the same, so a
//! multi-line message stays one CloudWatch event) and `\n` escapes in JSON. The line is built in
//! a buffer kept per thread, so a record costs no allocation once the buffer has grown to the
//! longest line. Logging never panics and never fails the handler: a closed or full stdout drops
//! the line.
mod clock;
mod current;
mod line;
mod output;

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::Poll;

pub use log::LevelFilter;
use log::{Log, Metadata, Record};

pub(crate) use current::{enter, Invocation};
use line::{Fields, Injection};

use crate::abi::RawTraceContext;
use crate::{Context, Span};

/// Why [`init`] or [`Builder::install`] could not install the logger.
///
/// ```
/// let error = sdk::logging::LoggingError::OtherLoggerInstalled;
/// assert!(error.to_string().contains("another logger"));
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoggingError {
    /// The `log` crate accepts one logger per library, and another one (env_logger,
    /// simple_logger...) was installed first.
    #[error(
        "another logger is already installed for the `log` crate in this handler library, so sdk::logging \
         cannot be: remove the other logger's initialisation (or call it only outside Lambda), or have it \
         forward records to an sdk::logging::Logger"
    )]
    OtherLoggerInstalled,
}

/// How records are written: Lambda's two log formats.
///
/// ```
/// use sdk::logging::LogFormat;
/// assert_eq!(LogFormat::from_aws_lambda_log_format(Some("json")), LogFormat::Json);
/// assert_eq!(LogFormat::from_aws_lambda_log_format(None), LogFormat::Text);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Tab-separated text lines (see the [module documentation](self)).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message`, `logger`, `requestId`, then
    /// with logs injection `dd.trace_id`, `dd.span_id`, `dd.service`, `dd.version`, `dd.env`.
    Json,
}

impl LogFormat {
    /// The format `AWS_LAMBDA_LOG_FORMAT` selects: `JSON` (any case) is [`LogFormat::Json`],
    /// anything else, or unset, [`LogFormat::Text`], as AWS's runtimes read it.
    ///
    /// ```
    /// use sdk::logging::LogFormat;
    /// assert_eq!(LogFormat::from_aws_lambda_log_format(Some("JSON")), LogFormat::Json);
    /// assert_eq!(LogFormat::from_aws_lambda_log_format(Some("Text")), LogFormat::Text);
    /// ```
    pub fn from_aws_lambda_log_format(value: Option<&str>) -> Self {
        match value {
            Some(value) if value.trim().eq_ignore_ascii_case("json") => Self::Json,
            _ => Self::Text,
        }
    }
}

/// The level `AWS_LAMBDA_LOG_LEVEL` selects (Lambda's names, any case; `WARNING` and
/// `CRITICAL` too, for Python habits); `None` when unset or unknown.
///
/// ```
/// use sdk::logging::{level_from_aws_lambda_log_level, LevelFilter};
/// assert_eq!(level_from_aws_lambda_log_level(Some("warn")), Some(LevelFilter::Warn));
/// assert_eq!(level_from_aws_lambda_log_level(Some("FATAL")), Some(LevelFilter::Error));
/// assert_eq!(level_from_aws_lambda_log_level(Some("loud")), None);
/// ```
pub fn level_from_aws_lambda_log_level(value: Option<&str>) -> Option<LevelFilter> {
    let value = value?.trim().to_ascii_uppercase();
    Some(match value.as_str() {
        "TRACE" => LevelFilter::Trace,
        "DEBUG" => LevelFilter::Debug,
        "INFO" => LevelFilter::Info,
        "WARN" | "WARNING" => LevelFilter::Warn,
        "ERROR" | "FATAL" | "CRITICAL" => LevelFilter::Error,
        "OFF" => LevelFilter::Off,
        _ => return None,
    })
}

/// The logger's configuration, read from the environment or set in code.
///
/// ```
/// use sdk::logging::{Builder, LevelFilter, LogFormat};
///
/// let logger = Builder::from_lookup(|_| None) // nothing set: the defaults
///     .format(LogFormat::Json)
///     .max_level(LevelFilter::Debug)
///     .build();
/// assert_eq!(logger.format(), LogFormat::Json);
/// assert_eq!(logger.max_level(), LevelFilter::Debug);
/// assert!(logger.logs_injection());
/// ```
#[must_use = "a builder does nothing until `build` or `install`"]
#[derive(Clone, Debug)]
pub struct Builder {
    format: LogFormat,
    max_level: LevelFilter,
    logs_injection: bool,
    service: String,
    env: String,
    version: String,
}

impl Builder {
    /// The configuration the function's environment gives (see the table in the
    /// [module documentation](self)).
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_env().build();
    /// assert!(logger.max_level() >= sdk::logging::LevelFilter::Error);
    /// ```
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The configuration a variable lookup gives, for tests and for functions that keep
    /// their configuration elsewhere. Booleans follow Datadog's rule (`true` in any case or
    /// `1`; empty is unset).
    ///
    /// ```
    /// use sdk::logging::{Builder, LevelFilter, LogFormat};
    ///
    /// let logger = Builder::from_lookup(|name| match name {
    ///     "DD_LOGS_INJECTION" => Some("false".to_owned()),
    ///     "AWS_LAMBDA_LOG_FORMAT" => Some("JSON".to_owned()),
    ///     "AWS_LAMBDA_LOG_LEVEL" => Some("WARN".to_owned()),
    ///     _ => None,
    /// })
    /// .build();
    /// assert!(!logger.logs_injection());
    /// assert_eq!((logger.format(), logger.max_level()), (LogFormat::Json, LevelFilter::Warn));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| lookup(name).filter(|value| !value.is_empty());
        let logs_injection = set("DD_LOGS_INJECTION").is_none_or(|v| v.eq_ignore_ascii_case("true") || v == "1");
        Self {
            format: LogFormat::from_aws_lambda_log_format(set("AWS_LAMBDA_LOG_FORMAT").as_deref()),
            max_level: level_from_aws_lambda_log_level(set("AWS_LAMBDA_LOG_LEVEL").as_deref()).unwrap_or(LevelFilter::Info),
            logs_injection,
            service: function_service(&set),
            env: set("DD_ENV").unwrap_or_default(),
            version: set("DD_VERSION").unwrap_or_default(),
        }
    }

    /// Text or JSON lines.
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).format(sdk::logging::LogFormat::Json).build();
    /// assert_eq!(logger.format(), sdk::logging::LogFormat::Json);
    /// ```
    pub fn format(mut self, format: LogFormat) -> Self {
        self.format = format;
        self
    }

    /// The most verbose level written; records below it cost one comparison in the `log`
    /// macros.
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).max_level(sdk::logging::LevelFilter::Trace).build();
    /// assert_eq!(logger.max_level(), sdk::logging::LevelFilter::Trace);
    /// ```
    pub fn max_level(mut self, level: LevelFilter) -> Self {
        self.max_level = level;
        self
    }

    /// Whether lines carry the trace ids (`DD_LOGS_INJECTION`).
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).logs_injection(false).build();
    /// assert!(!logger.logs_injection());
    /// ```
    pub fn logs_injection(mut self, on: bool) -> Self {
        self.logs_injection = on;
        self
    }

    /// The logger, to install yourself or to wrap in another [`Log`].
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).build();
    /// assert_eq!(logger.format(), sdk::logging::LogFormat::Text);
    /// ```
    pub fn build(self) -> Logger {
        Logger { config: self }
    }

    /// Installs the logger for the `log` crate in this library, with its level as `log`'s
    /// maximum. The first installation stays: later calls (this or [`init`]) return it
    /// unchanged, so a library may call it from more than one place.
    ///
    /// ```
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).install().unwrap();
    /// assert_eq!(log::max_level(), logger.max_level());
    /// log::info!("written to stdout");
    /// ```
    pub fn install(self) -> Result<&'static Logger, LoggingError> {
        static LOGGER: OnceLock<Logger> = OnceLock::new();
        static INSTALLED: OnceLock<Result<(), LoggingError>> = OnceLock::new();
        let logger = LOGGER.get_or_init(|| self.build());
        // `log` takes one logger, once: the outcome of the first attempt is final.
        let outcome = INSTALLED.get_or_init(|| match log::set_logger(logger) {
            Ok(()) => {
                log::set_max_level(logger.config.max_level);
                Ok(())
            }
            Err(_) => Err(LoggingError::OtherLoggerInstalled),
        });
        outcome.clone().map(|()| logger)
    }
}

/// `dd.service` as the bootstrap names the function's service on its spans and on exec
/// children's JSON lines: `DD_SERVICE`, else `aws.lambda` when
/// `DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED` is off, else the function's name.
fn function_service(set: &impl Fn(&str) -> Option<String>) -> String {
    if let Some(service) = set("DD_SERVICE") {
        return service;
    }
    let representation_off =
        set("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED").is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0");
    if representation_off {
        return "aws.lambda".to_owned();
    }
    set("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "function".to_owned())
}

/// Installs the logger configured by the function's environment ([`Builder::from_env`]).
/// Call it from the library's [`init!`](crate::init) function; calling it again is harmless.
///
/// ```
/// sdk::logging::init().unwrap();
/// log::warn!("this line goes to stdout as `[WARNING]\\t<time>\\t\\t[dd.trace_id=0 dd.span_id=0]\\t...`");
/// assert!(log::log_enabled!(log::Level::Info));
/// ```
pub fn init() -> Result<(), LoggingError> {
    Builder::from_env().install().map(|_| ())
}

/// The `log` logger of handler libraries (see the [module documentation](self)).
///
/// ```
/// use log::{Level, Record};
///
/// let logger = sdk::logging::Builder::from_lookup(|_| None).build();
/// let mut line = Vec::new();
/// logger.render(
///     &Record::builder().level(Level::Info).target("app").args(format_args!("hello")).build(),
///     &mut line,
/// );
/// let line = String::from_utf8(line).unwrap();
/// assert!(line.starts_with("[INFO]\t20"));
/// // Outside an invocation: no request id, zero ids.
/// assert!(line.ends_with("Z\t\t[dd.trace_id=0 dd.span_id=0]\thello\n"), "{line:?}");
/// ```
#[derive(Clone, Debug)]
pub struct Logger {
    config: Builder,
}

impl Logger {
    /// Text or JSON.
    ///
    /// ```
    /// assert_eq!(sdk::logging::Builder::from_lookup(|_| None).build().format(), sdk::logging::LogFormat::Text);
    /// ```
    pub fn format(&self) -> LogFormat {
        self.config.format
    }

    /// The most verbose level written.
    ///
    /// ```
    /// assert_eq!(sdk::logging::Builder::from_lookup(|_| None).build().max_level(), sdk::logging::LevelFilter::Info);
    /// ```
    pub fn max_level(&self) -> LevelFilter {
        self.config.max_level
    }

    /// Whether lines carry the trace ids.
    ///
    /// ```
    /// assert!(sdk::logging::Builder::from_lookup(|_| None).build().logs_injection());
    /// ```
    pub fn logs_injection(&self) -> bool {
        self.config.logs_injection
    }

    /// Appends `record`'s line (newline included) to `out`, with the request id and trace ids
    /// of the invocation current on this thread, whatever the record's level. What
    /// [`Log::log`] writes to stdout; for a logger of yours that sends lines elsewhere.
    ///
    /// ```
    /// use log::{Level, Record};
    ///
    /// let logger = sdk::logging::Builder::from_lookup(|_| None).format(sdk::logging::LogFormat::Json).build();
    /// let mut line = Vec::new();
    /// logger.render(&Record::builder().level(Level::Error).target("app").args(format_args!("a\nb")).build(), &mut line);
    /// let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
    /// assert_eq!((value["level"].as_str(), value["message"].as_str()), (Some("ERROR"), Some("a\nb")));
    /// assert_eq!(value["dd.trace_id"], "0");
    /// ```
    pub fn render(&self, record: &Record<'_>, out: &mut Vec<u8>) {
        let time = clock::UtcTime::now();
        current::with_current(|invocation| {
            let (request_id, trace) = match invocation {
                Some(invocation) => {
                    let trace = if self.config.logs_injection { invocation.trace() } else { None };
                    (invocation.request_id(), trace)
                }
                None => ("", None),
            };
            let injection = if self.config.logs_injection {
                Injection::On {
                    trace,
                    service: &self.config.service,
                    env: &self.config.env,
                    version: &self.config.version,
                }
            } else {
                Injection::Off
            };
            let fields = Fields {
                level: record.level(),
                time,
                request_id,
                logger: record.target(),
                injection,
                message: *record.args(),
            };
            match self.config.format {
                LogFormat::Text => line::render_text(out, &fields),
                LogFormat::Json => line::render_json(out, &fields),
            }
        });
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.config.max_level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // A `Display` that panics while the message is formatted loses its record, not the
        // invocation: logging never unwinds into the caller.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            output::with_line_buffer(|line| {
                self.render(record, line);
                output::write_line(line);
            });
        }));
    }

    fn flush(&self) {
        output::flush();
    }
}

/// Runs `f` as part of `context`'s invocation on this thread: records it logs carry that
/// invocation's request id and trace ids. For threads the handler starts (its own thread needs
/// nothing).
///
/// ```
/// fn handler(event: serde_json::Value, context: sdk::Context) -> Result<serde_json::Value, sdk::Diagnostic> {
///     let thread_context = context.clone();
///     let worker = std::thread::spawn(move || {
///         sdk::logging::scope(&thread_context, || log::info!("resizing on a worker thread"));
///     });
///     let _ = worker.join();
///     Ok(event)
/// }
/// # handler(serde_json::json!({}), sdk::Context::default()).unwrap();
/// ```
pub fn scope<R>(context: &Context, f: impl FnOnce() -> R) -> R {
    let mut slot = Some(Invocation::new(&context.request_id));
    let _entered = enter(&mut slot);
    f()
}

/// Runs `f` with `span` as the active span of this thread's records: they carry its id as
/// `dd.span_id` (and its invocation's request id), as records logged inside a span do with
/// Datadog's tracers. A span that is not recording (no trace) changes nothing.
///
/// ```
/// fn handler(event: serde_json::Value, context: sdk::Context) -> Result<serde_json::Value, sdk::Diagnostic> {
///     let span = context.span("inventory.reserve");
///     sdk::logging::in_span(&span, || log::info!("reserving 3 items")); // dd.span_id = the span's id
///     log::info!("reserved"); // dd.span_id = the aws.lambda span's id again
///     Ok(event)
/// }
/// # handler(serde_json::json!({}), sdk::Context::default()).unwrap();
/// ```
pub fn in_span<R>(span: &Span, f: impl FnOnce() -> R) -> R {
    let Some((request_id, trace)) = span.invocation_context() else {
        return f();
    };
    let raw = RawTraceContext {
        trace_id_high: trace.trace_id_high,
        trace_id_low: trace.trace_id_low,
        span_id: trace.span_id,
        sampling_priority: trace.sampling_priority,
    };
    let mut slot = Some(Invocation::with_trace(request_id, raw));
    let _entered = enter(&mut slot);
    f()
}

/// Wraps a future so that records it logs, wherever it is polled, carry `context`'s
/// invocation: for tasks an async handler spawns (its own future needs nothing).
///
/// ```
/// async fn handler(event: serde_json::Value, context: sdk::Context) -> Result<serde_json::Value, sdk::Diagnostic> {
///     let task = tokio::spawn(sdk::logging::in_invocation(&context, async {
///         log::info!("indexing in a spawned task");
///     }));
///     let _ = task.await;
///     Ok(event)
/// }
/// # tokio::runtime::Builder::new_current_thread().build().unwrap()
/// #     .block_on(handler(serde_json::json!({}), sdk::Context::default())).unwrap();
/// ```
pub fn in_invocation<F: Future>(context: &Context, future: F) -> InInvocation<F> {
    InInvocation {
        invocation: Some(Invocation::new(&context.request_id)),
        future,
    }
}

/// The future of [`in_invocation`]: `F`, polled with its invocation current.
///
/// ```
/// let context = sdk::Context::default();
/// let future: sdk::logging::InInvocation<_> = sdk::logging::in_invocation(&context, async { 42 });
/// # assert_eq!(tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future), 42);
/// ```
#[must_use = "futures do nothing unless polled"]
#[derive(Debug)]
pub struct InInvocation<F> {
    invocation: Option<Invocation>,
    future: F,
}

impl<F: Future> Future for InInvocation<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is pinned structurally: it is never moved out of `self`, and
        // `InInvocation` has no `Drop` and is `Unpin` only when `F` is. `invocation` is not
        // pinned; it is only swapped with the thread's slot and back.
        let this = unsafe { self.get_unchecked_mut() };
        let _entered = enter(&mut this.invocation);
        // SAFETY: as above.
        unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{BorrowedBytes, OwnedBuffer, RawInvocation, STATUS_OK};
    use log::Level;
    use std::fmt;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
    }

    fn rendered(logger: &Logger, message: fmt::Arguments<'_>) -> String {
        let mut line = Vec::new();
        logger.render(&Record::builder().level(Level::Info).target("t").args(message).build(), &mut line);
        String::from_utf8(line).unwrap()
    }

    #[test]
    fn the_handler_glue_makes_the_invocation_current_for_the_call() {
        let logger = Builder::from_lookup(|_| None).build();
        let invocation = RawInvocation {
            event: BorrowedBytes::from_slice(b"{}"),
            request_id: BorrowedBytes::from_slice(b"8476a536-e9f4-11e8-9739-2dfe598c3fcd"),
            deadline_ms: 0,
            invoked_function_arn: BorrowedBytes::empty(),
            xray_trace_id: BorrowedBytes::empty(),
            client_context: BorrowedBytes::empty(),
            cognito_identity: BorrowedBytes::empty(),
            tenant_id: BorrowedBytes::empty(),
        };
        let mut out = OwnedBuffer::empty();
        // SAFETY: a valid invocation and a writable output.
        let status = unsafe {
            crate::serve::json(&raw const invocation, &raw mut out, |_: serde_json::Value, _| {
                Ok::<_, crate::Diagnostic>(rendered(&logger, format_args!("inside")))
            })
        };
        assert_eq!(status, STATUS_OK);
        // SAFETY: the buffer came from this library.
        let line: String = serde_json::from_slice(&unsafe { out.into_vec() }).unwrap();
        assert!(
            line.ends_with("Z\t8476a536-e9f4-11e8-9739-2dfe598c3fcd\t[dd.trace_id=0 dd.span_id=0]\tinside\n"),
            "{line:?}"
        );
        // After the call the thread is outside any invocation again.
        assert!(rendered(&logger, format_args!("after")).ends_with("Z\t\t[dd.trace_id=0 dd.span_id=0]\tafter\n"));
    }

    #[test]
    fn scope_carries_the_request_id() {
        let logger = Builder::from_lookup(|_| None).logs_injection(false).build();
        let context = Context {
            request_id: "req-7".into(),
            ..Context::default()
        };
        let line = scope(&context, || rendered(&logger, format_args!("scoped")));
        assert!(line.ends_with("Z\treq-7\tscoped\n"), "{line:?}");
    }

    #[cfg(feature = "async")]
    #[test]
    fn in_invocation_carries_the_request_id_to_another_thread() {
        let logger = Builder::from_lookup(|_| None).logs_injection(false).build();
        let context = Context {
            request_id: "req-7".into(),
            ..Context::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let task = runtime.spawn(in_invocation(&context, {
            let logger = logger.clone();
            async move {
                tokio::task::yield_now().await;
                rendered(&logger, format_args!("task"))
            }
        }));
        let line = runtime.block_on(task).unwrap();
        assert!(line.ends_with("Z\treq-7\ttask\n"), "{line:?}");
    }

    #[test]
    fn in_span_makes_the_spans_ids_current_and_an_inert_span_changes_nothing() {
        let logger = Builder::from_lookup(|_| None).build();
        let trace = crate::TraceContext {
            trace_id_high: 0,
            trace_id_low: 11,
            span_id: 12,
            sampling_priority: 1,
        };
        let span = Span::recording_for_tests("req-9", trace, "child");
        let span_id = span.context().unwrap().span_id;
        let line = in_span(&span, || rendered(&logger, format_args!("in span")));
        assert!(
            line.ends_with(&format!("Z\treq-9\t[dd.trace_id=11 dd.span_id={span_id}]\tin span\n")),
            "{line:?}"
        );
        let context = Context {
            request_id: "req-10".into(),
            ..Context::default()
        };
        let inert = context.span("no trace here");
        let line = scope(&context, || in_span(&inert, || rendered(&logger, format_args!("inert"))));
        assert!(line.ends_with("Z\treq-10\t[dd.trace_id=0 dd.span_id=0]\tinert\n"), "{line:?}");
    }

    #[test]
    fn a_panicking_display_loses_its_record_not_the_caller() {
        struct Bomb;
        impl fmt::Display for Bomb {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("display exploded")
            }
        }
        let logger = Builder::from_lookup(|_| None).build();
        logger.log(&Record::builder().level(Level::Error).args(format_args!("{Bomb}")).build());
        // The thread's state survived: the next record renders.
        assert!(rendered(&logger, format_args!("still here")).ends_with("\tstill here\n"));
    }

    #[test]
    fn levels_below_the_maximum_are_not_enabled() {
        let logger = Builder::from_lookup(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "error")])).build();
        assert!(logger.enabled(&Metadata::builder().level(Level::Error).build()));
        assert!(!logger.enabled(&Metadata::builder().level(Level::Warn).build()));
        let unknown = Builder::from_lookup(lookup(&[("AWS_LAMBDA_LOG_LEVEL", "chatty")])).build();
        assert_eq!(unknown.max_level(), LevelFilter::Info);
    }

    #[test]
    fn configuration_follows_datadogs_and_awss_rules() {
        let defaults = Builder::from_lookup(|_| None).build();
        assert_eq!(
            (defaults.format(), defaults.max_level(), defaults.logs_injection()),
            (LogFormat::Text, LevelFilter::Info, true)
        );
        assert_eq!(defaults.config.service, "function");
        for (value, on) in [
            ("1", true),
            ("TRUE", true),
            ("", true),
            ("0", false),
            ("yes", false),
            ("false", false),
        ] {
            let pairs: &'static [(&str, &str)] = Box::leak(Box::new([("DD_LOGS_INJECTION", value)]));
            assert_eq!(Builder::from_lookup(lookup(pairs)).build().logs_injection(), on, "{value:?}");
        }
        let named = Builder::from_lookup(lookup(&[("AWS_LAMBDA_FUNCTION_NAME", "shop"), ("DD_ENV", "prod")])).build();
        assert_eq!((named.config.service.as_str(), named.config.env.as_str()), ("shop", "prod"));
        let generic = Builder::from_lookup(lookup(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "shop"),
            ("DD_TRACE_AWS_SERVICE_REPRESENTATION_ENABLED", "false"),
        ]))
        .build();
        assert_eq!(generic.config.service, "aws.lambda");
        let chosen = Builder::from_lookup(lookup(&[("AWS_LAMBDA_FUNCTION_NAME", "shop"), ("DD_SERVICE", "checkout")])).build();
        assert_eq!(chosen.config.service, "checkout");
    }

    #[test]
    fn the_first_installation_stays() {
        let first = Builder::from_lookup(|_| None).max_level(LevelFilter::Debug).install().unwrap();
        let second = Builder::from_lookup(|_| None).max_level(LevelFilter::Error).install().unwrap();
        assert!(std::ptr::eq(first, second));
        assert_eq!(second.max_level(), LevelFilter::Debug);
        assert_eq!(log::max_level(), LevelFilter::Debug);
        init().unwrap();
    }
}
