//! Exec mode: the function is any program that speaks the Lambda Runtime API (a
//! `lambda_runtime` binary, `python3 -m awslambdaric app.handler`, a bash+curl script). It
//! runs as a child process whose `AWS_LAMBDA_RUNTIME_API` points at a loopback proxy; the
//! lifecycle keeps the upstream `/next` and hands each invocation to the child through it.
//!
//! - [`command`]: the command line, split like a shell and resolved like Lambda's `bootstrap`.
//! - [`child`]: the process (group, signals, exit wording).
//! - [`output`]: its stdout/stderr, line by line, to ours; [`output_watch`]: the lines of
//!   interest in them (out-of-memory messages), per invocation.
//! - [`proxy`] and [`dispatch`]: the Runtime API it talks to, and who holds which invocation.
//! - [`supervisor`]: start, death, restart, shutdown.
pub mod child;
pub mod command;
mod dispatch;
pub mod output;
pub mod output_watch;
mod proxy;
mod supervisor;

use std::net::SocketAddr;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::command::CommandLine;
use self::dispatch::Dispatcher;
use self::output::OutputConfig;
use self::output_watch::OutputWatch;
use self::proxy::Proxy;
use self::supervisor::{Command, Supervisor};
use super::{BoxFuture, Handler, HandlerOutcome, InitError, Invocation, TimedOutcome};
use crate::config::Config;
use crate::lifecycle::{InitReport, Timestamp};
use crate::runtime_api::{ErrorBody, RuntimeApiClient};

pub use self::supervisor::{ChildStart, ChildStatus};

/// A handler that runs invocations in a child process behind a loopback Runtime API.
pub struct ExecHandler {
    dispatcher: Arc<Dispatcher>,
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<ChildStatus>,
    restarts: Arc<Mutex<Option<InitReport>>>,
    supervisor: JoinHandle<()>,
    proxy: Proxy,
    /// Told which invocation the child holds, so the lines it watches for are attributed.
    watch: Option<Arc<OutputWatch>>,
}

impl Drop for ExecHandler {
    fn drop(&mut self) {
        // Dropping the supervisor drops the child, which kills its process group.
        self.supervisor.abort();
    }
}

impl ExecHandler {
    /// Starts `command` (the `DD_LAMBDA_HANDLER` value) and waits for its first `/next`.
    /// Returns the handler and the child's init time (spawn to first `/next`). The child's
    /// output goes to the bootstrap's stdout and stderr.
    pub async fn start(command: &str, config: &Config, client: RuntimeApiClient) -> Result<(ExecHandler, Duration), InitError> {
        Self::start_with_output(command, config, client, OutputConfig::default()).await
    }

    /// [`ExecHandler::start`], with the child's output sent through `output` (a line
    /// rewriter, or other destinations).
    pub async fn start_with_output(
        command: &str,
        config: &Config,
        client: RuntimeApiClient,
        output: OutputConfig,
    ) -> Result<(ExecHandler, Duration), InitError> {
        if command.trim().is_empty() {
            return Err(InitError::NotConfigured);
        }
        let command = CommandLine::parse(command, &config.task_root, config.env.get("PATH")).map_err(|e| InitError::Exec(e.to_string()))?;
        let dispatcher = Arc::new(Dispatcher::default());
        let proxy = Proxy::start(dispatcher.clone(), client)
            .await
            .map_err(|e| InitError::Exec(format!("cannot serve the Runtime API to the handler on 127.0.0.1: {e}")))?;
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let (status_sender, status) = watch::channel(ChildStatus::Starting);
        let restarts = Arc::new(Mutex::new(None));
        let watch = output.watch().cloned();
        let supervisor = Supervisor {
            command,
            runtime_api: proxy.address().to_string(),
            output,
            dispatcher: dispatcher.clone(),
            commands: command_receiver,
            status: status_sender,
            restarts: restarts.clone(),
            initialization_type: config.function.initialization_type.clone(),
        };
        let (first_sender, first) = oneshot::channel();
        let supervisor = tokio::spawn(supervisor.run(first_sender));
        let handler = ExecHandler {
            dispatcher,
            commands,
            status,
            restarts,
            supervisor,
            proxy,
            watch,
        };
        match first.await {
            Ok(Ok(start)) => Ok((handler, start.duration())),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(InitError::Exec("the handler's supervisor stopped during init".into())),
        }
    }

    /// The proxy's address, the child's `AWS_LAMBDA_RUNTIME_API`.
    pub fn runtime_api(&self) -> SocketAddr {
        self.proxy.address()
    }

    /// The child's state now.
    pub fn child_status(&self) -> ChildStatus {
        *self.status.borrow()
    }

    /// Runs one invocation: queued for the child's `/next`, answered by its `/response` or
    /// `/error` (or by its death). Times are the child's: when it got the event, when its
    /// answer arrived. Never times out by itself: the lifecycle's deadline applies.
    pub async fn run(&self, invocation: Arc<Invocation>) -> TimedOutcome {
        let request_id = invocation.context.request_id.clone();
        if let Some(watch) = &self.watch {
            watch.invocation_submitted(&request_id);
        }
        let answer = match self.dispatcher.submit(invocation) {
            Ok(answer) => answer,
            Err(duplicate) => return immediate(ErrorBody::new("Runtime.DuplicateRequestId", duplicate.to_string())),
        };
        // Forgets the invocation when answered, or when the lifecycle gives up on it.
        let _withdraw = Withdraw {
            dispatcher: &self.dispatcher,
            request_id: &request_id,
        };
        match self.child_status() {
            ChildStatus::Failed => {
                let _ = self.commands.send(Command::Restart);
            }
            ChildStatus::Stopped => {
                return immediate(ErrorBody::new(
                    "Runtime.ExitError",
                    format!("RequestId: {request_id} Error: the runtime was shut down"),
                ))
            }
            ChildStatus::Starting | ChildStatus::Ready => {}
        }
        match answer.await {
            Ok(answer) => TimedOutcome {
                outcome: answer.outcome,
                handler_started: answer.delivered.unwrap_or(answer.finished),
                handler_finished: answer.finished,
            },
            Err(_) => immediate(ErrorBody::new(
                "Runtime.ExitError",
                format!("RequestId: {request_id} Error: the runtime's supervisor stopped"),
            )),
        }
    }

    /// Call before each upstream `/next`: waits while a restarted child is starting, and
    /// returns that restart's init (once) so it can be reported like the first one.
    pub async fn wait_ready(&self) -> Option<InitReport> {
        let mut status = self.status.clone();
        let _ = status.wait_for(|s| *s != ChildStatus::Starting).await;
        self.restarts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Kills the child (e.g. after an invocation timed out: Lambda resets the runtime); the
    /// invocations it held get `Runtime.ExitError` and it is started again.
    pub fn kill_child(&self) {
        let _ = self.commands.send(Command::Kill);
    }

    /// Passes SIGTERM to the child's process group, gives it `grace`, then SIGKILL. Returns
    /// how it ended (`None` when no child was running).
    pub async fn shutdown(&self, grace: Duration) -> Option<ExitStatus> {
        let (done, ended) = oneshot::channel();
        self.commands.send(Command::Shutdown { grace, done }).ok()?;
        ended.await.ok().flatten()
    }
}

impl Handler for ExecHandler {
    fn invoke(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, HandlerOutcome> {
        Box::pin(async move { self.run(invocation).await.outcome })
    }

    fn invoke_timed(&self, invocation: Arc<Invocation>) -> BoxFuture<'_, TimedOutcome> {
        Box::pin(self.run(invocation))
    }

    fn before_next(&self) -> BoxFuture<'_, Option<InitReport>> {
        Box::pin(self.wait_ready())
    }

    fn shutdown(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(status) = ExecHandler::shutdown(self, grace).await {
                tracing::debug!(exit = %child::describe_exit(status), "the handler's runtime process stopped");
            }
        })
    }
}

fn immediate(error: ErrorBody) -> TimedOutcome {
    let now = Timestamp::now();
    TimedOutcome {
        outcome: HandlerOutcome::Error(error),
        handler_started: now,
        handler_finished: now,
    }
}

struct Withdraw<'a> {
    dispatcher: &'a Dispatcher,
    request_id: &'a str,
}

impl Drop for Withdraw<'_> {
    fn drop(&mut self) {
        self.dispatcher.withdraw(self.request_id);
    }
}
