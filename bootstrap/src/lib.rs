//! The `bootstrap` runtime: one invocation flows
//! Runtime API client -> invocation lifecycle -> handler -> telemetry -> sinks,
//! and each step is a module of that name.
pub mod abort_report;
pub mod api_key;
pub mod config;
pub mod emulator;
pub mod handler;
pub mod lifecycle;
pub mod logging;
pub mod process_exit;
pub mod runtime_api;
pub mod sinks;
pub mod telemetry;
#[cfg(test)]
mod test_support;
