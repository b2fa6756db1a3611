//! Datadog metrics, flowing source -> transform -> sink:
//!
//! * sources: the lifecycle's reports ([`enhanced`], [`usage`] over [`proc`]), the handler's
//!   `lambda_metric` calls ([`custom`]) and exec children's DogStatsD datagrams ([`dogstatsd`]);
//! * transforms: tags ([`tags`]), the routing that avoids double counting ([`enhanced`]'s
//!   table), 10 s aggregation for the API ([`aggregation`]) and when it is posted
//!   ([`flush_strategy`]);
//! * sinks (in `crate::sinks`): Forwarder stdout lines, the Datadog API, the Extension's DogStatsD.
//!
//! [`MetricsProcessor`] ties them together as a [`crate::lifecycle::LifecycleObserver`];
//! [`config`] reads every variable, once.
pub mod aggregation;
pub mod config;
pub mod custom;
pub mod dogstatsd;
pub mod enhanced;
pub mod flush_strategy;
pub mod point;
pub mod proc;
mod processor;
pub mod tags;
pub mod usage;

pub use config::{MetricsConfig, Transport};
pub use point::{MetricPoint, MetricValue};
pub use processor::{FlushStats, MetricsOutputs, MetricsProcessor};
