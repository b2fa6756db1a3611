//! `lambda-emulator [--listen ADDR] [--function-name NAME] ... -- COMMAND [ARGS...]`: runs
//! COMMAND as a Lambda runtime behind an emulated Invoke, Runtime and Extensions API.
use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;

use bootstrap::emulator::cli::{FaultArgs, FunctionArgs};
use bootstrap::emulator::log_writer::PrefixedStderr;
use bootstrap::emulator::{Emulator, EmulatorOptions, RuntimeCommand, StdoutTarget};
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Runs COMMAND as a Lambda runtime and serves Lambda's Invoke, Runtime and Extensions APIs.
#[derive(Parser, Debug)]
#[command(name = "lambda-emulator", version)]
struct Cli {
    /// Where to serve every API; the runtime gets it as AWS_LAMBDA_RUNTIME_API.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    #[command(flatten)]
    function: FunctionArgs,
    #[command(flatten)]
    faults: FaultArgs,
    /// `discard` sends the runtime's stdout to /dev/null instead of relaying it (benchmarks).
    #[arg(long, value_name = "relay|discard", default_value = "relay", value_parser = parse_runtime_stdout, hide = true)]
    runtime_stdout: StdoutTarget,
    /// The runtime command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // `target=level` directives separated by commas, or a bare level (the bootstrap's own
    // logging needs no `EnvFilter`, so the emulator does without it too).
    let filter = std::env::var("LAMBDA_EMULATOR_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::fmt()
        .with_max_level(LevelFilter::TRACE)
        .with_writer(PrefixedStderr)
        .with_ansi(false)
        .with_target(false)
        .finish()
        .with(filter)
        .init();

    let mut command = cli.command.into_iter();
    let Some(program) = command.next() else {
        tracing::error!("no runtime command given after --");
        return ExitCode::from(2);
    };
    let task_root = match std::env::current_dir() {
        Ok(dir) => dir,
        Err(err) => {
            tracing::error!("cannot read the current directory for LAMBDA_TASK_ROOT: {err}");
            return ExitCode::from(2);
        }
    };
    let options = EmulatorOptions {
        listen: cli.listen,
        function: cli.function.identity(),
        runtime: RuntimeCommand {
            program,
            args: command.collect(),
            extra_env: cli.function.env,
            task_root,
            stdout: cli.runtime_stdout,
        },
        faults: cli.faults.faults,
    };
    let (mut terminate, mut interrupt) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!("cannot listen for SIGTERM/SIGINT: {err}");
            return ExitCode::from(2);
        }
    };
    let emulator = match Emulator::start(options).await {
        Ok(emulator) => emulator,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::from(2);
        }
    };
    tracing::info!("listening on {} (invoke: POST {})", emulator.local_addr(), emulator.invoke_url());
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
    }
    emulator.shutdown().await;
    ExitCode::SUCCESS
}

fn parse_runtime_stdout(raw: &str) -> Result<StdoutTarget, String> {
    match raw {
        "relay" => Ok(StdoutTarget::Stdout),
        "discard" => Ok(StdoutTarget::Discard),
        _ => Err(format!("{raw:?} is neither relay nor discard")),
    }
}
