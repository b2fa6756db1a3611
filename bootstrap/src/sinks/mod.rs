//! Where telemetry leaves the process: forwarder log lines, the Datadog API, the Extension.
pub mod datadog_api;
pub mod dogstatsd;
pub mod extension_flush;
pub mod forwarder_lines;
pub mod io_runtime;
pub mod trace_agent;
pub mod xray;
