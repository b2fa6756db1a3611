//! The tokio runtime that runs async handlers, owned by the handler library.
//!
//! It is created on the first async call and lives as long as the process. It is multi-threaded
//! so several bootstrap threads can each wait on their own invocation at the same time
//! (`AWS_LAMBDA_MAX_CONCURRENCY`): each caller drives its handler's future with `block_on` on its
//! own thread, and whatever the handler spawns runs on the runtime's workers.
use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::Runtime;

use crate::Diagnostic;

/// Runs `future` to completion on the calling thread, inside the library's runtime.
///
/// The caller must not already be inside a runtime of this copy of tokio (tokio refuses nested
/// `block_on`). The bootstrap's threads never are: the library links its own tokio.
pub(crate) fn block_on<F: Future>(future: F) -> Result<F::Output, Diagnostic> {
    match runtime() {
        Ok(runtime) => Ok(runtime.block_on(future)),
        Err(reason) => Err(Diagnostic::new(
            "Runtime.AsyncRuntimeError",
            format!("cannot start the tokio runtime that runs async handlers: {reason}"),
        )),
    }
}

fn runtime() -> Result<&'static Runtime, &'static str> {
    // Written once, then only read: the one piece of process-wide state an async handler needs.
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name("dd-lambda-handler")
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_and_spawned_tasks_work_from_many_threads() {
        let results: Vec<u64> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..4u64)
                .map(|i| {
                    scope.spawn(move || {
                        block_on(async move {
                            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                            tokio::spawn(async move { i * 10 }).await.unwrap()
                        })
                        .unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(results, vec![0, 10, 20, 30]);
    }
}
