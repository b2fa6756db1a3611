//! `bootstrap invoke`: runs a handler on an event file through the whole lifecycle, by starting
//! the emulator in-process with the bootstrap itself as the runtime.
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::cli::FunctionArgs;
use super::invoke::{FUNCTION_ERROR, REQUEST_ID};
use super::options::{EmulatorOptions, FunctionIdentity, RuntimeCommand, StdoutTarget};
use super::{Emulator, EmulatorError};

/// `bootstrap invoke --handler SPEC --event FILE [--count N]`.
#[derive(clap::Args, Clone, Debug)]
pub struct LocalInvokeArgs {
    /// The handler, as DD_LAMBDA_HANDLER takes it.
    #[arg(long)]
    pub handler: String,
    /// A file holding the event (JSON).
    #[arg(long)]
    pub event: PathBuf,
    /// How many times to invoke.
    #[arg(long, default_value_t = 1)]
    pub count: u32,
    #[command(flatten)]
    pub function: FunctionArgs,
}

impl LocalInvokeArgs {
    pub fn into_options(self) -> LocalInvokeOptions {
        LocalInvokeOptions {
            handler: self.handler,
            event: self.event,
            count: self.count,
            function: self.function.identity(),
            extra_env: self.function.env,
            runtime_program: None,
            runtime_args: Vec::new(),
        }
    }
}

/// What to run, and how often.
#[derive(Clone, Debug)]
pub struct LocalInvokeOptions {
    pub handler: String,
    pub event: PathBuf,
    pub count: u32,
    pub function: FunctionIdentity,
    pub extra_env: Vec<(String, String)>,
    /// The runtime to start; `None` is the current executable (the bootstrap itself).
    pub runtime_program: Option<PathBuf>,
    pub runtime_args: Vec<OsString>,
}

/// One invocation's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalInvokeResponse {
    pub request_id: String,
    pub body: Bytes,
    /// Answered with `X-Amz-Function-Error`.
    pub function_error: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalInvokeSummary {
    pub responses: Vec<LocalInvokeResponse>,
}

impl LocalInvokeSummary {
    pub fn any_function_error(&self) -> bool {
        self.responses.iter().any(|r| r.function_error)
    }
}

/// Starts an emulator on 127.0.0.1:0 with the runtime, invokes it `count` times with the event,
/// then shuts it down as Lambda would (so the runtime's final flush runs).
pub async fn run(options: LocalInvokeOptions) -> Result<LocalInvokeSummary, EmulatorError> {
    let event = std::fs::read(&options.event).map_err(|source| EmulatorError::EventFile {
        path: options.event.clone(),
        source,
    })?;
    let program = match options.runtime_program {
        Some(program) => program,
        None => std::env::current_exe().map_err(EmulatorError::CurrentExe)?,
    };
    let task_root = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let mut extra_env = vec![
        ("DD_LAMBDA_HANDLER".to_owned(), options.handler.clone()),
        ("_HANDLER".to_owned(), options.handler.clone()),
    ];
    extra_env.extend(options.extra_env);
    let emulator = Emulator::start(EmulatorOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        function: options.function,
        runtime: RuntimeCommand {
            program: program.into_os_string(),
            args: options.runtime_args,
            extra_env,
            task_root,
            // Stdout carries the responses; the function's own output goes to stderr.
            stdout: StdoutTarget::Stderr,
        },
        faults: Vec::new(),
    })
    .await?;
    let result = invoke_times(&emulator.invoke_url(), Bytes::from(event), options.count).await;
    emulator.shutdown().await;
    result.map(|responses| LocalInvokeSummary { responses })
}

async fn invoke_times(url: &str, event: Bytes, count: u32) -> Result<Vec<LocalInvokeResponse>, EmulatorError> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let failed = |reason: String| EmulatorError::Invoke {
        url: url.to_owned(),
        reason,
    };
    let mut responses = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let request = Request::post(url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(event.clone()))
            .map_err(|e| failed(e.to_string()))?;
        let response = client.request(request).await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let request_id = header(REQUEST_ID).unwrap_or_default();
        let function_error = header(FUNCTION_ERROR).is_some();
        let body = response.into_body().collect().await.map_err(|e| failed(e.to_string()))?.to_bytes();
        if !status.is_success() {
            return Err(failed(format!("HTTP {status}: {}", String::from_utf8_lossy(&body))));
        }
        responses.push(LocalInvokeResponse {
            request_id,
            body,
            function_error,
        });
    }
    Ok(responses)
}

/// The whole `bootstrap invoke` command: each response on its own line on stdout; exit 0, or 1
/// when any invocation was a function error, or 2 when the invocations could not run.
pub async fn run_and_print(args: LocalInvokeArgs) -> ExitCode {
    match run(args.into_options()).await {
        Ok(summary) => {
            let mut stdout = std::io::stdout().lock();
            for response in &summary.responses {
                let _ = stdout.write_all(&response.body);
                let _ = stdout.write_all(b"\n");
            }
            let _ = stdout.flush();
            if summary.any_function_error() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            tracing::error!("{err}");
            eprintln!("bootstrap invoke: {err}");
            ExitCode::from(2)
        }
    }
}
