//! The benchmark behind `target/release/bench` (see `src/main.rs` for the command) and the
//! pieces the `bare-loop` runtime shares with it.
//!
//! Data flow: [`cases`] says what runs (a runtime command, its environment, goals) ->
//! [`emulator`] starts `lambda-emulator` with it -> [`timing`] drives invocations through it, in
//! interleaved rounds, keeping every sample -> [`cold_start`] and [`memory`] add the start-up
//! and RSS figures -> [`summary`] turns samples into figures -> [`report`] prints the table and
//! writes `results.json` (and the raw samples, for plots).
pub mod cases;
pub mod cold_start;
pub mod emulator;
pub mod error;
pub mod http1;
pub mod intake;
pub mod machine;
pub mod memory;
pub mod plot;
pub mod report;
pub mod summary;
pub mod timing;

pub use error::BenchError;
