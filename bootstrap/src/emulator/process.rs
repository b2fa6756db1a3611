//! Starting the runtime in a process group of its own, relaying its output line by line, and
//! signalling or killing the whole group the way Lambda does.
use std::io::Write;
use std::process::Stdio;
use std::time::SystemTime;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::ids;
use super::options::{EmulatorOptions, StdoutTarget};
use super::EmulatorError;

/// The runtime's environment: the emulator's own, then Lambda's variables, then `--env` pairs
/// (later entries win, so a user can override anything on purpose).
pub fn runtime_environment(
    options: &EmulatorOptions,
    runtime_api: &str,
    own_env: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let f = &options.function;
    let now = SystemTime::now();
    let lambda = [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", f.name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", f.version.clone()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", f.memory_mb.to_string()),
        ("AWS_REGION", f.region.clone()),
        ("AWS_DEFAULT_REGION", f.region.clone()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{}", f.name)),
        ("AWS_LAMBDA_LOG_STREAM_NAME", ids::log_stream_name(now, &f.version)),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("LAMBDA_TASK_ROOT", options.runtime.task_root.to_string_lossy().into_owned()),
    ];
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: String, v: String| {
        env.retain(|(name, _)| *name != k);
        env.push((k, v));
    };
    for (k, v) in own_env {
        set(k, v);
    }
    for (k, v) in lambda {
        set(k.to_owned(), v);
    }
    for (k, v) in &options.runtime.extra_env {
        set(k.clone(), v.clone());
    }
    env
}

/// Starts the runtime as the leader of a new process group, so a timeout can kill everything
/// it started, with its output relayed line by line.
pub fn spawn(options: &EmulatorOptions, env: &[(String, String)]) -> Result<Child, EmulatorError> {
    let runtime = &options.runtime;
    let mut command = Command::new(&runtime.program);
    command
        .args(&runtime.args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&runtime.task_root)
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(match runtime.stdout {
            StdoutTarget::Discard => Stdio::null(),
            StdoutTarget::Stdout | StdoutTarget::Stderr => Stdio::piped(),
        })
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    let mut child = command.spawn().map_err(|source| EmulatorError::Spawn {
        program: runtime.program.to_string_lossy().into_owned(),
        source,
    })?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(relay_lines(out, runtime.stdout));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(relay_lines(err, StdoutTarget::Stderr));
    }
    Ok(child)
}

/// Copies whole lines, each in one locked write, so the emulator's own log lines (written the
/// same way) never land inside a runtime line.
async fn relay_lines(stream: impl AsyncRead + Unpin, target: StdoutTarget) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                // A closed stdout/stderr on our side leaves nowhere to report to: drop the line.
                let _ = match target {
                    StdoutTarget::Stdout => std::io::stdout().lock().write_all(&line),
                    StdoutTarget::Stderr => std::io::stderr().lock().write_all(&line),
                    StdoutTarget::Discard => Ok(()),
                };
            }
        }
    }
}

/// Signals a process group; a group that is already gone is not an error.
pub fn signal_group(pgid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// Signals one process; a process that is already gone is not an error.
pub fn signal_process(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

pub use crate::process_exit::describe_exit;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::options::{FunctionIdentity, RuntimeCommand};
    use std::path::PathBuf;

    fn options(extra_env: Vec<(String, String)>) -> EmulatorOptions {
        EmulatorOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            function: FunctionIdentity {
                name: "fn".into(),
                ..FunctionIdentity::default()
            },
            runtime: RuntimeCommand {
                program: "true".into(),
                args: vec![],
                extra_env,
                task_root: PathBuf::from("/srv/task"),
                stdout: StdoutTarget::Stdout,
            },
            faults: vec![],
        }
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn lambda_variables_override_own_env_and_flags_override_both() {
        let own = vec![
            ("PATH".to_owned(), "/bin".to_owned()),
            ("AWS_REGION".to_owned(), "eu-west-3".to_owned()),
        ];
        let env = runtime_environment(
            &options(vec![("AWS_REGION".into(), "ap-south-1".into())]),
            "127.0.0.1:9001",
            own.clone(),
        );
        assert_eq!(get(&env, "PATH"), Some("/bin"));
        assert_eq!(get(&env, "AWS_REGION"), Some("ap-south-1"));
        assert_eq!(get(&env, "AWS_DEFAULT_REGION"), Some("us-east-1"));
        assert_eq!(get(&env, "AWS_LAMBDA_RUNTIME_API"), Some("127.0.0.1:9001"));
        assert_eq!(get(&env, "AWS_LAMBDA_LOG_GROUP_NAME"), Some("/aws/lambda/fn"));
        assert_eq!(get(&env, "LAMBDA_TASK_ROOT"), Some("/srv/task"));
        assert_eq!(get(&env, "AWS_LAMBDA_INITIALIZATION_TYPE"), Some("on-demand"));
        assert_eq!(env.iter().filter(|(k, _)| k == "AWS_REGION").count(), 1);
        let env = runtime_environment(&options(vec![]), "127.0.0.1:9001", own);
        assert_eq!(get(&env, "AWS_REGION"), Some("us-east-1"));
    }
}
