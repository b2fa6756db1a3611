//! `bootstrap`: the Lambda custom runtime. Lambda starts it with no arguments;
//! `bootstrap invoke ...` runs a handler locally.
use std::process::ExitCode;
use std::sync::Arc;

use bootstrap::config::{Config, Environment};
use bootstrap::handler::{self, InitError};
use bootstrap::lifecycle::{InitReport, Lifecycle, LifecycleEvent, LifecycleObserver, LifecycleOptions, Observers, Timestamp};
use bootstrap::runtime_api::extensions::{ExtensionEvent, RegisteredExtension};
use bootstrap::runtime_api::{Endpoint, RuntimeApiClient};
use bootstrap::telemetry::{ExecAddresses, Telemetry};

/// How long a shutdown waits for the invocation in flight to finish its telemetry.
const SHUTDOWN_WAIT_FOR_IDLE: std::time::Duration = std::time::Duration::from_millis(200);

/// How long an exec child gets to exit after the SIGTERM passed on to it; Lambda's whole
/// shutdown phase is 500 ms with an internal extension.
const CHILD_SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(150);

/// mimalloc, telling `abort_report` of an allocation failure before Rust aborts the process.
#[global_allocator]
static GLOBAL: sdk::alloc::Reporting<mimalloc::MiMalloc> = sdk::alloc::Reporting::new(mimalloc::MiMalloc);

/// The AWS Lambda runtime with Datadog observability. Started with no arguments, it serves
/// invocations from the Runtime API (`AWS_LAMBDA_RUNTIME_API`).
#[derive(clap::Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Run a handler locally on an event file, through the whole lifecycle, and print the responses.
    Invoke(bootstrap::emulator::local_invoke::LocalInvokeArgs),
}

fn main() -> ExitCode {
    let process_started = Timestamp::now();
    sdk::alloc::set_failure_reporter(Some(bootstrap::abort_report::record_alloc_failure));
    let huge_pages = disable_transparent_huge_pages();
    let config = Config::from_env(Environment::from_process());
    bootstrap::logging::init(&config.log);
    if let Err(err) = huge_pages {
        // Kernels before 3.15 lack the option: the runtime works the same, with more memory.
        tracing::debug!("cannot disable transparent huge pages: {err}");
    }
    // Lambda starts the runtime without arguments: skip argument parsing on that path.
    let command = if std::env::args_os().len() > 1 {
        <Cli as clap::Parser>::parse().command
    } else {
        None
    };
    let runtimes = match command {
        None => Runtimes::build(config.max_concurrency),
        // The local emulator serves the runtime it starts: the plain multi-thread runtime.
        Some(_) => Runtimes::build(usize::MAX),
    };
    let runtimes = match runtimes {
        Ok(runtimes) => runtimes,
        Err(err) => {
            eprintln!("bootstrap: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let telemetry_thread = runtimes.telemetry.handle().clone();
    let code = match command {
        None => runtimes.main.block_on(serve(config, process_started, telemetry_thread)),
        Some(Command::Invoke(args)) => runtimes.main.block_on(bootstrap::emulator::local_invoke::run_and_print(args)),
    };
    // Dropping a runtime waits for its blocking tasks (a `/proc` sample, a handler under
    // `block_in_place`); the final flush is done by now, so leave them behind.
    runtimes.main.shutdown_background();
    runtimes.telemetry.shutdown_background();
    code
}

/// The two tokio runtimes of the process.
///
/// With one invocation at a time (Lambda's default), the invocation loop runs on a
/// current-thread runtime of the main thread: the Runtime API connection, the handler call and the
/// telemetry that is computed after each answer all stay on one thread, with no hand-off
/// between threads on the invocation path. What must go on while a dylib handler blocks that
/// thread (the deadline watch, the `/proc` sampler, DogStatsD and the trace listeners, network
/// sends to Datadog) runs on a one-worker runtime of its own: the telemetry thread. With
/// `AWS_LAMBDA_MAX_CONCURRENCY` above 1, the loop runs on a multi-thread runtime instead.
struct Runtimes {
    main: tokio::runtime::Runtime,
    telemetry: tokio::runtime::Runtime,
}

impl Runtimes {
    fn build(concurrency: usize) -> std::io::Result<Self> {
        let main = if concurrency <= 1 {
            tokio::runtime::Builder::new_current_thread().enable_all().build()?
        } else {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?
        };
        let telemetry = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bootstrap-telemetry")
            .enable_all()
            .build()?;
        Ok(Self { main, telemetry })
    }
}

/// Opts this process out of transparent huge pages. With THP in `madvise` mode (Amazon Linux's
/// and most distributions' default), mimalloc madvises its arenas for huge pages, so a few small
/// allocations fault in whole 2 MB pages: the bench measured the echo dylib's RSS at 33 MB with
/// THP and 11 MB without. The setting is inherited by an exec-mode child, as it would be from
/// mimalloc's own `MIMALLOC_ALLOW_THP=0`.
fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl(2) with integer arguments only; it touches no memory of ours.
    match unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

async fn serve(config: Config, process_started: Timestamp, telemetry_thread: tokio::runtime::Handle) -> ExitCode {
    let endpoint = match Endpoint::parse(config.runtime_api.as_deref().unwrap_or_default()) {
        Ok(endpoint) => endpoint,
        Err(err) => {
            tracing::error!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let client = RuntimeApiClient::new(endpoint.clone());
    // Built on the telemetry thread, so the tasks and sockets telemetry starts live there.
    let telemetry = {
        let _on_telemetry_thread = telemetry_thread.enter();
        Telemetry::from_config(&config)
    };
    let observers = telemetry.observers();
    // Before the handler loads: from then on, an abort (a failed allocation) answers the invocation.
    let abort_reporting = match bootstrap::abort_report::install(&endpoint, telemetry.metrics.config()) {
        Ok(reporting) => Some(reporting),
        Err(err) => {
            tracing::warn!("{err}: an invocation whose handler aborts the process goes unanswered until Lambda sees the process end");
            None
        }
    };

    // DogStatsD and an exec child's tracer endpoints listen before the handler starts; kept
    // alive as long as the process serves.
    let listeners = telemetry_thread.spawn({
        let telemetry = telemetry.clone();
        let env = config.env.clone();
        let is_exec = handler::is_exec(&config);
        async move {
            telemetry.start_dogstatsd();
            if is_exec {
                Some(telemetry.start_exec(&env, ExecAddresses::from_env(&env)).await)
            } else {
                None
            }
        }
    });
    let exec_telemetry = match listeners.await {
        Ok(exec_telemetry) => exec_telemetry,
        Err(err) => {
            tracing::error!("the telemetry thread failed while starting its listeners: {err}");
            None
        }
    };
    let exec_output = exec_telemetry.as_ref().map(|exec| exec.output.clone()).unwrap_or_default();

    // Registered during init, beside the handler's own init, as Lambda requires of extensions.
    // From the telemetry thread, with a client of its own: its long poll for SHUTDOWN must go on
    // while a dylib handler holds the main thread.
    let extension_client = RuntimeApiClient::new(endpoint.clone());
    let registration = telemetry_thread.spawn(async move { register_extension(&extension_client).await });
    let init_watch = abort_reporting.as_ref().map(bootstrap::abort_report::AbortReporting::watch_init);
    let (extension, ready) = tokio::join!(
        registration,
        handler::load_with_output(&config, &client, telemetry.host_services(), exec_output)
    );
    drop(init_watch);
    let extension = extension.ok().flatten();
    let init_finished = Timestamp::now();
    let report = InitReport {
        started: process_started,
        finished: init_finished,
        handler_init: ready.as_ref().map(|r| r.init_duration).unwrap_or_default(),
        initialization_type: config.function.initialization_type.clone(),
        error: None,
    };
    let ready = match ready {
        Ok(ready) => ready,
        Err(err) => return fail_init(&client, &observers, report, err).await,
    };
    observers.notify(&LifecycleEvent::Init(Arc::new(report.clone()))).await;

    let options = LifecycleOptions {
        concurrency: config.max_concurrency,
        timeout_margin: timeout_margin(&config.env),
        max_invocations: None,
        watch_runtime: Some(telemetry_thread.clone()),
    };
    let handler = match &abort_reporting {
        Some(reporting) => {
            let traces = telemetry
                .traces
                .iter()
                .map(|t| Arc::clone(t) as Arc<dyn LifecycleObserver>)
                .collect();
            if let Err(err) = reporting.report_through(&telemetry_thread, telemetry.metrics.clone(), traces) {
                tracing::warn!("{err}");
            }
            reporting.watch(ready.handler)
        }
        None => ready.handler,
    };
    let lifecycle = Lifecycle::new(client, handler, observers.clone(), options);
    // The end of the sandbox is watched from the telemetry thread, which also runs the final
    // flush and ends the process: a dylib handler may hold the main thread until Lambda's grace
    // period is long over.
    let shutdown_watch = telemetry_thread.spawn({
        let lifecycle = lifecycle.clone();
        async move {
            let reason = shutdown(extension).await;
            tracing::debug!(reason, "shutting down");
            // Let an invocation in flight finish its flush first; Lambda's grace period is short.
            let _ = tokio::time::timeout(SHUTDOWN_WAIT_FOR_IDLE, lifecycle.idle()).await;
            lifecycle.shutdown_handler(CHILD_SHUTDOWN_GRACE).await;
            observers.notify(&LifecycleEvent::Shutdown { at: Timestamp::now() }).await;
            drop(exec_telemetry);
            // std's exit flushes stdout; the main thread may be inside a handler that never returns.
            std::process::exit(0);
        }
    });
    lifecycle.run().await;
    shutdown_watch.abort();
    ExitCode::SUCCESS
}

/// Reports an init failure as AWS's runtimes do: `/init/error`, one line on stderr, a non-zero exit.
async fn fail_init(client: &RuntimeApiClient, observers: &Observers, mut report: InitReport, err: InitError) -> ExitCode {
    let body = err.to_error_body();
    tracing::error!(error_type = %body.error_type, "init failed: {}", body.error_message);
    if let Err(post) = client.init_error(&body).await {
        tracing::error!(error = %post, "the Runtime API did not accept the init error");
    }
    report.error = Some(body);
    observers.notify(&LifecycleEvent::Init(Arc::new(report))).await;
    ExitCode::FAILURE
}

/// `DD_APM_FLUSH_DEADLINE_MILLISECONDS` (default 100; negative or invalid -> 100), as Datadog's tracer reads it.
fn timeout_margin(env: &Environment) -> std::time::Duration {
    let millis = env
        .non_empty("DD_APM_FLUSH_DEADLINE_MILLISECONDS")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|m| *m >= 0);
    millis.map_or(bootstrap::lifecycle::DEFAULT_TIMEOUT_MARGIN, |m| {
        std::time::Duration::from_millis(m as u64)
    })
}

/// Registers the internal extension that makes Lambda announce the shutdown; without it (an
/// emulator without the Extensions API) the bootstrap still flushes on SIGTERM/SIGINT.
async fn register_extension(client: &RuntimeApiClient) -> Option<RegisteredExtension> {
    match tokio::time::timeout(std::time::Duration::from_secs(2), RegisteredExtension::register(client)).await {
        Ok(Ok(extension)) => Some(extension),
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "no internal extension: the final flush relies on SIGTERM alone");
            None
        }
        Err(_) => {
            tracing::debug!("the Extensions API did not answer the registration; the final flush relies on SIGTERM alone");
            None
        }
    }
}

/// Resolves when the sandbox is ending: a SHUTDOWN event, SIGTERM or SIGINT.
async fn shutdown(extension: Option<RegisteredExtension>) -> &'static str {
    let extension_shutdown = async move {
        let Some(extension) = extension else {
            return std::future::pending().await;
        };
        loop {
            match extension.next_event().await {
                Ok(ExtensionEvent::Shutdown { .. }) => return "SHUTDOWN event",
                Ok(ExtensionEvent::Other(event)) => tracing::debug!(event, "ignoring an extension event"),
                Err(err) => {
                    tracing::debug!(error = %err, "the Extensions API stopped answering; the final flush relies on SIGTERM alone");
                    return std::future::pending().await;
                }
            }
        }
    };
    tokio::select! {
        reason = extension_shutdown => reason,
        signal = shutdown_signal() => signal,
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
