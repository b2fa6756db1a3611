//! Datadog tracing for every invocation: what triggered it (`trigger`), which trace it
//! continues (`extract`), the spans inferred for the managed service that called it
//! (`inferred`), the `aws.lambda` function span (`function_span`), and the forwarder line.
pub mod arn;
pub mod config;
pub mod extract;
pub mod inferred;
pub mod json;
pub mod span;
pub mod trigger;

pub use config::{PropagationStyle, TraceConfig};
pub use extract::{ContextSource, TraceContext};
pub use span::{Span, SpanLink, TraceId};
pub use trigger::{EventSource, EventSubtype, EventType};
