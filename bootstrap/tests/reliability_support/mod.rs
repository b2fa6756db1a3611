//! The reliability suite's own tools: a fault-injecting Datadog intake, a throttling proxy in
//! front of moto, `/proc` readings, and a function harness for long runs that tallies stdout
//! instead of keeping it. Test files declare `mod emulator_support;` beside this module.
#![allow(dead_code)]
pub mod intake;
pub mod long_run;
pub mod proc;
pub mod tally;
pub mod throttle;
