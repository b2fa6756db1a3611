//! The runtime network sinks do their I/O on.
//!
//! reqwest keeps each pooled connection's task on the runtime that opened it. The invocation
//! loop runs on the main thread, which a dylib handler blocks while it runs; a connection opened
//! there would stall a flush started from the telemetry thread (the deadline watch's timeout
//! flush) until the handler returns, which for a timeout is never. So a sink built on the
//! telemetry runtime sends from it, whichever thread asks.
use std::future::Future;

use tokio::runtime::Handle;

/// The runtime a sink was built on (none outside a runtime: sends then run where they are awaited).
#[derive(Clone, Debug, Default)]
pub struct IoRuntime(Option<Handle>);

/// The send task ended without an answer (it panicked, or the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the telemetry thread stopped before the send finished: {0}")]
pub struct IoRuntimeStopped(String);

impl IoRuntime {
    /// The runtime of the calling thread.
    pub fn current() -> Self {
        Self(Handle::try_current().ok())
    }

    /// Runs `send` on this runtime and waits for it.
    pub async fn run<F>(&self, send: F) -> Result<F::Output, IoRuntimeStopped>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.0 {
            Some(handle) => handle.spawn(send).await.map_err(|e| IoRuntimeStopped(e.to_string())),
            None => Ok(send.await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_runs_on_the_runtime_the_sink_was_built_on_while_the_caller_blocks_its_own() {
        let telemetry = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let io = {
            let _entered = telemetry.enter();
            IoRuntime::current()
        };
        let main = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let name = main
            .block_on(io.run(async { std::thread::current().name().map(str::to_owned) }))
            .unwrap();
        assert_ne!(name, std::thread::current().name().map(str::to_owned));
    }

    #[test]
    fn outside_a_runtime_the_send_runs_where_it_is_awaited() {
        let io = IoRuntime::current();
        let main = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let here = std::thread::current().id();
        assert_eq!(main.block_on(io.run(async move { std::thread::current().id() })).unwrap(), here);
    }
}
