//! Keeps one child running: starts it, waits for its first `/next`, reports its death to the
//! invocations it held, and starts it again. A small service owning the child; the handler
//! talks to it through a command channel and reads its status from a watch.
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::child::{exit_message, RunningChild, SpawnError};
use super::command::CommandLine;
use super::dispatch::{ChildSignal, Dispatcher};
use super::output::OutputConfig;
use crate::handler::InitError;
use crate::lifecycle::{InitReport, Timestamp};
use crate::runtime_api::ErrorBody;

/// After `/init/error`, how long the child may take to exit by itself before it is stopped.
const INIT_ERROR_EXIT_WAIT: Duration = Duration::from_millis(500);

/// The child's state, as the handler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// Started, its first `/next` not seen yet.
    Starting,
    /// Polling `/next` or handling invocations.
    Ready,
    /// The last start failed; the next invocation starts it again.
    Failed,
    /// Shut down for good.
    Stopped,
}

/// What the handler asks of the supervisor.
pub enum Command {
    /// Start the child again if its last start failed.
    Restart,
    /// Kill the child now (e.g. after a timeout); it is started again as after a crash.
    Kill,
    /// SIGTERM the child, give it `grace`, then SIGKILL; then stop supervising.
    Shutdown {
        grace: Duration,
        done: oneshot::Sender<Option<ExitStatus>>,
    },
}

/// A start of the child, from spawn to its first `/next`.
#[derive(Clone, Copy, Debug)]
pub struct ChildStart {
    pub spawned: Timestamp,
    pub ready: Timestamp,
}

impl ChildStart {
    pub fn duration(&self) -> Duration {
        self.ready.duration_since(&self.spawned)
    }
}

/// Why a start failed.
enum StartFailure {
    Spawn(SpawnError),
    /// Exited before its first `/next`.
    Exited(ExitStatus),
    /// Posted `/init/error`.
    Reported(ErrorBody),
}

impl StartFailure {
    fn into_init_error(self) -> InitError {
        match self {
            StartFailure::Spawn(e) => InitError::Exec(e.to_string()),
            StartFailure::Exited(status) => InitError::Reported(ErrorBody::new("Runtime.ExitError", exit_message(status))),
            StartFailure::Reported(body) => InitError::Reported(body),
        }
    }

    /// The error, as reported for the (re)start itself.
    fn error_body(&self) -> ErrorBody {
        match self {
            StartFailure::Spawn(e) => ErrorBody::new("Runtime.InvalidEntrypoint", e.to_string()),
            StartFailure::Exited(status) => ErrorBody::new("Runtime.ExitError", exit_message(*status)),
            StartFailure::Reported(body) => body.clone(),
        }
    }

    /// The error an invocation that waited for this start gets: an exit is worded against the
    /// request, as Lambda words it.
    fn invocation_error(&self) -> impl Fn(&str) -> ErrorBody {
        let body = self.error_body();
        let exited = matches!(self, StartFailure::Exited(_));
        move |request_id: &str| {
            if exited {
                exit_error(request_id, &body.error_message)
            } else {
                body.clone()
            }
        }
    }
}

/// Lambda's error for an invocation whose runtime died under it.
pub fn exit_error(request_id: &str, message: &str) -> ErrorBody {
    ErrorBody::new("Runtime.ExitError", format!("RequestId: {request_id} Error: {message}"))
}

pub struct Supervisor {
    pub command: CommandLine,
    /// `host:port` of the proxy.
    pub runtime_api: String,
    pub output: OutputConfig,
    pub dispatcher: Arc<Dispatcher>,
    pub commands: mpsc::UnboundedReceiver<Command>,
    pub status: watch::Sender<ChildStatus>,
    /// The last restart's report, until the lifecycle takes it.
    pub restarts: Arc<Mutex<Option<InitReport>>>,
    pub initialization_type: String,
}

impl Supervisor {
    /// Runs until shutdown. The first start's result goes to `first`; if it failed, the
    /// supervisor stops (the bootstrap reports `/init/error` and exits).
    pub async fn run(mut self, first: oneshot::Sender<Result<ChildStart, InitError>>) {
        let mut first = Some(first);
        loop {
            self.status.send_replace(ChildStatus::Starting);
            let started = Timestamp::now();
            match self.start_once().await {
                Ok((mut child, start)) => {
                    match first.take() {
                        Some(reply) => {
                            if reply.send(Ok(start)).is_err() {
                                return;
                            }
                        }
                        None => self.report_restart(start.spawned, start.ready, None),
                    }
                    self.status.send_replace(ChildStatus::Ready);
                    if !self.serve(&mut child).await {
                        return;
                    }
                }
                Err(failure) => {
                    if let Some(reply) = first.take() {
                        let _ = reply.send(Err(failure.into_init_error()));
                        return;
                    }
                    self.report_restart(started, Timestamp::now(), Some(failure.error_body()));
                    // Status first: an invocation submitted after `start_failed` sees it and
                    // asks for a restart; one submitted before is failed by it.
                    self.status.send_replace(ChildStatus::Failed);
                    self.dispatcher.start_failed(failure.invocation_error());
                    if !self.wait_for_restart().await {
                        return;
                    }
                }
            }
        }
    }

    /// Spawns the child and waits for its first `/next`, its `/init/error` or its exit.
    async fn start_once(&self) -> Result<(RunningChild, ChildStart), StartFailure> {
        let init = self.dispatcher.watch_init();
        let spawned = Timestamp::now();
        let mut child = RunningChild::spawn(&self.command, &self.runtime_api, &self.output).map_err(StartFailure::Spawn)?;
        tokio::select! {
            // An `/init/error` is signalled before the child hears its 202, so before it can
            // exit: looking at it first keeps the child's own error over its exit status.
            biased;
            signal = init => match signal {
                Ok(ChildSignal::Polled) => Ok((child, ChildStart { spawned, ready: Timestamp::now() })),
                Ok(ChildSignal::InitError(body)) => {
                    if tokio::time::timeout(INIT_ERROR_EXIT_WAIT, child.wait_exit()).await.is_err() {
                        child.terminate(INIT_ERROR_EXIT_WAIT).await;
                    }
                    child.drain().await;
                    Err(StartFailure::Reported(body))
                }
                Err(_) => Err(StartFailure::Exited(child.wait().await)),
            },
            status = child.wait_exit() => {
                child.drain().await;
                Err(StartFailure::Exited(status))
            }
        }
    }

    /// Serves while the child lives. Returns `false` when supervision is over (shutdown, or
    /// the handler is gone), `true` when the child died and must be started again.
    async fn serve(&mut self, child: &mut RunningChild) -> bool {
        loop {
            tokio::select! {
                status = child.wait_exit() => {
                    child.drain().await;
                    let message = exit_message(status);
                    let failed = self.dispatcher.child_died(move |request_id| exit_error(request_id, &message));
                    tracing::warn!(
                        exit = %super::child::describe_exit(status),
                        failed_invocations = failed,
                        "the handler's runtime process exited; starting it again"
                    );
                    return true;
                }
                command = self.commands.recv() => match command {
                    None => return false,
                    Some(Command::Restart) => {}
                    Some(Command::Kill) => child.signal_group(libc::SIGKILL),
                    Some(Command::Shutdown { grace, done }) => {
                        let status = child.terminate(grace).await;
                        self.status.send_replace(ChildStatus::Stopped);
                        let _ = done.send(Some(status));
                        return false;
                    }
                },
            }
        }
    }

    /// After a failed restart: waits for an invocation to ask for another. `false` on shutdown.
    async fn wait_for_restart(&mut self) -> bool {
        loop {
            match self.commands.recv().await {
                None => return false,
                Some(Command::Restart) => return true,
                Some(Command::Kill) => {}
                Some(Command::Shutdown { done, .. }) => {
                    self.status.send_replace(ChildStatus::Stopped);
                    let _ = done.send(None);
                    return false;
                }
            }
        }
    }

    fn report_restart(&self, started: Timestamp, finished: Timestamp, error: Option<ErrorBody>) {
        let report = InitReport {
            started,
            finished,
            handler_init: finished.duration_since(&started),
            initialization_type: self.initialization_type.clone(),
            error,
        };
        *self.restarts.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(report);
    }
}
