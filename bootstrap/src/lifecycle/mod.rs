//! The invocation lifecycle: init, the `/next` -> handler -> answer loop, deadlines,
//! shutdown, and the events telemetry consumes.
pub mod events;

pub use events::{InitReport, InvocationReport, LifecycleEvent, LifecycleObserver, Timestamp};
