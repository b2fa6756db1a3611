//! Telemetry built from lifecycle events: metrics, traces and logs.
pub mod metrics;
pub mod traces;
