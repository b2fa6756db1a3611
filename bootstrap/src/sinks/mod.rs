//! Where telemetry leaves the process: forwarder log lines, the Datadog API, the Extension.
pub mod trace_agent;
