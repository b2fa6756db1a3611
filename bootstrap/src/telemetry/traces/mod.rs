//! Datadog tracing for every invocation: what triggered it (`trigger`), which trace it
//! continues (`extract`), the spans inferred for the managed service that called it
//! (`inferred`), the `aws.lambda` function span (`function_span`), and the forwarder line.
pub mod arn;
pub mod children;
pub mod config;
pub mod correlation_only;
pub mod durable;
pub mod event;
pub mod extract;
pub mod forwarder;
pub mod function_span;
pub mod inferred;
pub mod invocation;
pub mod json;
pub mod listeners;
pub mod log_rewriter;
pub mod logs;
pub mod payload;
pub mod processor;
pub mod span;
pub mod trigger;

pub use config::{PropagationStyle, TraceConfig};
pub use correlation_only::CorrelationOnly;
pub use extract::{ContextSource, TraceContext};
pub use forwarder::forwarder_line;
pub use function_span::FunctionInfo;
pub use invocation::{build_invocation_trace, finish_invocation_trace, Completion, InvocationResult, InvocationTrace};
pub use processor::{TraceProcessor, TraceSink};
pub use span::{Span, SpanLink, TraceId};
pub use trigger::detect;
pub use trigger::{EventSource, EventSubtype, EventType};
