//! The child process: spawned in its own process group, with its output pumped to ours, and
//! its end described in Lambda's words.
//!
//! The process group lets one signal reach everything the runtime started (a bash runtime's
//! `curl`, a Python runtime's workers), both for SIGTERM at shutdown and for the SIGKILL that
//! clears a crashed runtime's leftovers before it is started again.
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;

use super::command::CommandLine;
use super::output::{OutputConfig, OutputStream, Pump};
use super::output_watch::OutputWatch;

/// How long a dead child's pipes may take to drain: its last lines must reach our output
/// before its invocation is reported, but a grandchild that left the process group must not
/// hold us forever.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// The child could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start handler command {given:?} ({program}): {source}")]
pub struct SpawnError {
    given: String,
    program: String,
    #[source]
    source: std::io::Error,
}

/// A started child.
pub struct RunningChild {
    process: tokio::process::Child,
    /// Also the process group id.
    pid: libc::pid_t,
    pumps: Vec<Pump>,
    exited: bool,
    watch: Option<Arc<OutputWatch>>,
}

impl RunningChild {
    /// Starts `command` with the bootstrap's environment, except `AWS_LAMBDA_RUNTIME_API`,
    /// which points at the proxy (`runtime_api` is `host:port`).
    pub fn spawn(command: &CommandLine, runtime_api: &str, output: &OutputConfig) -> Result<Self, SpawnError> {
        let spawn_error = |source| SpawnError {
            given: command.given.clone(),
            program: command.program.display().to_string(),
            source,
        };
        let inherited_fd = inherited_telemetry_fd();
        let mut builder = Command::new(&command.program);
        builder
            .args(&command.args)
            .current_dir(&command.working_dir)
            .envs(output.child_env().iter().map(|(k, v)| (k, v)))
            .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // system calls (prctl / close_range / fcntl); it allocates nothing.
        unsafe {
            builder.pre_exec(move || {
                // If the bootstrap dies without cleaning up (SIGKILL), the runtime dies with it
                // rather than living on unsupervised. Children are spawned from the async
                // runtime's worker threads, which live as long as the process.
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                close_inherited_fds_on_exec(inherited_fd);
                Ok(())
            });
        }
        let mut process = builder.spawn().map_err(spawn_error)?;
        let pid = process.id().and_then(|id| libc::pid_t::try_from(id).ok()).unwrap_or(0);
        let mut pumps = Vec::with_capacity(2);
        if let Some(stdout) = process.stdout.take() {
            let fd = stdout.into_owned_fd().map_err(spawn_error)?;
            pumps.push(Pump::start(fd, OutputStream::Stdout, output.clone()).map_err(spawn_error)?);
        }
        if let Some(stderr) = process.stderr.take() {
            let fd = stderr.into_owned_fd().map_err(spawn_error)?;
            pumps.push(Pump::start(fd, OutputStream::Stderr, output.clone()).map_err(spawn_error)?);
        }
        Ok(Self {
            process,
            pid,
            pumps,
            exited: false,
            watch: output.watch().cloned(),
        })
    }

    /// Waits for the child to exit; then clears its process group and waits for its output to
    /// drain, so its last lines are out before anyone reports its death.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = self.wait_exit().await;
        self.drain().await;
        status
    }

    /// Waits for the child itself to exit, then kills what is left of its group. Cancel-safe.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let status = loop {
            match self.process.wait().await {
                Ok(status) => break status,
                // Only fails when interrupted; that does not last.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        };
        if !self.exited {
            self.signal_group(libc::SIGKILL);
            self.exited = true;
        }
        status
    }

    /// Waits for the child's output to be written out (after it exited), and so looked at by
    /// the output watch before anyone reports the death.
    pub async fn drain(&mut self) {
        for pump in std::mem::take(&mut self.pumps) {
            if !pump.finished(DRAIN_LIMIT).await {
                tracing::warn!("the handler's output pipe stayed open after it exited; some output may be missing");
            }
        }
        if let Some(watch) = &self.watch {
            watch.child_exited();
        }
    }

    /// Sends `signal` to the child's whole process group.
    pub fn signal_group(&self, signal: libc::c_int) {
        if self.pid > 0 {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe { libc::kill(-self.pid, signal) };
        }
    }

    /// SIGTERM to the group, `grace` to exit, then SIGKILL. Returns how it ended.
    pub async fn terminate(&mut self, grace: Duration) -> ExitStatus {
        if !self.exited {
            self.signal_group(libc::SIGTERM);
        }
        let status = if let Ok(status) = tokio::time::timeout(grace, self.wait_exit()).await {
            status
        } else {
            self.signal_group(libc::SIGKILL);
            self.wait_exit().await
        };
        self.drain().await;
        status
    }
}

impl Drop for RunningChild {
    fn drop(&mut self) {
        if self.exited {
            // The group was cleared when the child exited; its id may belong to others now.
            return;
        }
        // The handler going away (init failed, bootstrap exiting) must not leave the runtime
        // running unsupervised.
        self.signal_group(libc::SIGKILL);
    }
}

/// `_LAMBDA_TELEMETRY_LOG_FD` is the one descriptor Lambda hands the runtime on purpose; the
/// child, as the real runtime, keeps it.
fn inherited_telemetry_fd() -> Option<libc::c_int> {
    std::env::var("_LAMBDA_TELEMETRY_LOG_FD")
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|fd| *fd > 2)
}

/// Marks every descriptor above stderr close-on-exec, so none of the bootstrap's sockets,
/// files or inherited descriptors reach the child (Rust opens its own with CLOEXEC already;
/// this also covers what a loaded library or our parent left open).
fn close_inherited_fds_on_exec(keep: Option<libc::c_int>) {
    // SAFETY (all calls): plain system calls on descriptor numbers, async-signal-safe.
    let done = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) } == 0;
    if !done {
        // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: walk the descriptor table instead.
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } == 0 {
            limit.rlim_cur.min(65_536) as libc::c_int
        } else {
            1024
        };
        for fd in 3..max {
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
    if let Some(fd) = keep {
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
}

pub use crate::process_exit::{describe_exit, exit_message};

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;

    use super::*;

    fn status_of(script: &str) -> ExitStatus {
        std::process::Command::new("sh").args(["-c", script]).status().unwrap()
    }

    #[test]
    fn exit_codes_and_signals_in_lambdas_words() {
        assert_eq!(exit_message(status_of("exit 1")), "Runtime exited with error: exit status 1");
        assert_eq!(exit_message(status_of("exit 0")), "Runtime exited without providing a reason");
        assert_eq!(describe_exit(status_of("kill -KILL $$")), "signal: killed");
        assert_eq!(describe_exit(ExitStatus::from_raw(libc::SIGSEGV)), "signal: segmentation fault");
        assert_eq!(
            describe_exit(ExitStatus::from_raw(libc::SIGABRT | 0x80)),
            "signal: aborted (core dumped)"
        );
        assert_eq!(describe_exit(ExitStatus::from_raw(60)), "signal: signal 60");
    }
}
