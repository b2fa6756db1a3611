//! Example handlers for the `bootstrap` runtime, built as `libhandlers_example.so`.
//!
//! Each exercises one path of the runtime: `DD_LAMBDA_HANDLER=libhandlers_example.so:<name>`
//! picks one, a bare `libhandlers_example.so` picks `handler` (an echo).
//!
//! | name | event | answer |
//! |---|---|---|
//! | `echo`, `handler`, `async_echo` | any JSON | the event |
//! | `raw_echo` | any bytes (even empty or not JSON) | the same bytes |
//! | `error` | `{"message": "..."}` or anything | error `handlers_example::ExampleError` |
//! | `panic`, `async_panic` | anything | a panic, reported as an error |
//! | `sleep`, `async_sleep` | `{"ms": N}` | `{"slept_ms": N}` after N ms |
//! | `big` | `{"bytes": N}` | a JSON string whose encoding is N bytes (N >= 2) |
//! | `typed` | `{"id": u64, "items": [string]}` | `{"id", "item_count"}`; anything else: `Runtime.UnmarshalError` |
//! | `unserializable` | anything | `Runtime.MarshalError` |
//! | `context` | anything | the invocation's [`Context`] as JSON ([`ContextReport`]) |
//! | `rendezvous` | `{"parties": N, "wait_ms": M}` | waits until N invocations of this process are in it at once (at most M ms): `{"met": bool, "present": n}` |
//! | `metric` | `{"name", "value", "tags", "from_thread"}`, each optional | `sdk::lambda_metric(name, value, tags)` (default `example.metric`, `1.0`, `["tag:a"]`); `{"sent": true}` or `{"sent": false, "error": "..."}` |
//! | `traced` | anything | a child span `example.work` (and `example.thread` from a spawned thread); `{"trace", "span_id", "thread_span_id", "headers", "span_headers", "log_correlation"}` |
//! | `logs` | [`LogsEvent`] JSON, or any bytes (logged as text) | one `log` record (more with `from_thread`, `in_span`; after `meet` invocations meet); `{"logged", "request_id", "log_correlation"}` |
//! | `async_logs` | [`LogsEvent`] JSON | one record from the handler, one from a task spawned with `sdk::logging::in_invocation`, one from a task spawned without; same answer |
//! | `alloc_failure` | `{"bytes": N, "sleep_ms": M}` | sleeps M ms (default 0), allocates N bytes: `{"allocated": N}`, or, when the allocator refuses (e.g. `4611686018427387904`), Rust's allocation failure: the process aborts |
//! | `abort` | `{"abort": bool}` | `std::process::abort()` when `abort` is true (a C library's abort, a double panic); else `{"aborted": false}` |
//! | `segfault` | `{"segfault": bool, "sleep_ms": M, "thread": bool}` | sleeps M ms, then a write through an invalid pointer (`SIGSEGV`; on a spawned thread with `thread`) when `segfault` is true; else `{"segfault": false}` |
//! | `stack_overflow` | `{"overflow": bool, "thread": bool}` | unbounded recursion (on a spawned thread with `thread`): std prints the overflow and aborts; else `{"overflow": false}` |
//! | `fault` | `{"signal": "SIGILL" \| "SIGFPE" \| "SIGBUS" \| "SIGSEGV"}` | that fault, caused as machine code causes it (see [`faults::fault`]) |
//!
//! The init function installs `sdk::logging` (records go to stdout with the invocation's trace
//! ids); it fails when `HANDLERS_EXAMPLE_INIT=fail`, panics when it is `panic`, writes
//! through an invalid pointer when it is `segfault` and fails an allocation of 4 EiB when it is
//! `alloc_failure`, so the bootstrap's init-error path and a crash during init can be exercised.
use std::collections::HashMap;
use std::fmt;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use sdk::{ClientContext, CognitoIdentity, Context, Diagnostic};

sdk::export_abi!();

sdk::init!(init);
sdk::handler!(echo);
sdk::handler!(echo as handler);
sdk::handler!(error);
sdk::handler!(panic);
sdk::handler!(sleep);
sdk::handler!(big);
sdk::handler!(typed);
sdk::handler!(unserializable);
sdk::handler!(context);
sdk::handler!(rendezvous);
sdk::handler!(raw raw_echo);
sdk::handler!(async async_echo);
sdk::handler!(async async_panic);
sdk::handler!(async async_sleep);
sdk::handler!(metric);
sdk::handler!(traced);
sdk::handler!(raw logs);
sdk::handler!(async async_logs);
sdk::handler!(alloc_failure);
sdk::handler!(abort);
sdk::handler!(faults::segfault as segfault);
sdk::handler!(faults::stack_overflow as stack_overflow);
sdk::handler!(faults::fault as fault);

pub mod faults;

/// The variable the init function reads: `fail` or `panic` make init fail, `segfault` crashes it.
pub const INIT_MODE_VARIABLE: &str = "HANDLERS_EXAMPLE_INIT";

/// Runs once at load: installs the sdk's logger, then behaves as [`INIT_MODE_VARIABLE`] says.
pub fn init() -> Result<(), ExampleError> {
    sdk::logging::init().map_err(|e| ExampleError(e.to_string()))?;
    init_in_mode(std::env::var(INIT_MODE_VARIABLE).ok().as_deref())
}

/// `fail` returns an error, `panic` panics, `segfault` kills the process (`SIGSEGV`), anything
/// else succeeds.
///
/// # Panics
///
/// With `panic`, on purpose.
pub fn init_in_mode(mode: Option<&str>) -> Result<(), ExampleError> {
    match mode {
        Some("segfault") => {
            faults::write_to_an_invalid_address();
            Ok(())
        }
        Some("fail") => Err(ExampleError(format!("init failed because {INIT_MODE_VARIABLE}=fail"))),
        Some("panic") => panic!("init panicked because {INIT_MODE_VARIABLE}=panic"),
        Some("alloc_failure") => {
            allocate(INIT_ALLOCATION_BYTES).map_err(|e| ExampleError(e.to_string()))?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The error the `error` handler and a failing init return; its `errorType` is its type name,
/// `handlers_example::ExampleError`.
#[derive(Debug, PartialEq, Eq)]
pub struct ExampleError(pub String);

impl fmt::Display for ExampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ExampleError {}

/// Returns the event unchanged.
pub fn echo(event: Value, _: Context) -> Result<Value, Diagnostic> {
    Ok(event)
}

/// Always fails, with the event's `message` when it has one.
pub fn error(event: Value, _: Context) -> Result<Value, ExampleError> {
    let message = event
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("the error handler always fails");
    Err(ExampleError(message.to_string()))
}

/// Always panics.
///
/// # Panics
///
/// Always, on purpose.
pub fn panic(_: Value, _: Context) -> Result<Value, Diagnostic> {
    panic!("the panic handler always panics")
}

/// `{"ms": N}` for [`sleep`] and [`async_sleep`].
#[derive(Debug, Deserialize)]
pub struct SleepEvent {
    /// How long to sleep, in milliseconds.
    pub ms: u64,
}

/// The answer of [`sleep`] and [`async_sleep`].
#[derive(Debug, Serialize)]
pub struct Slept {
    /// How long the handler slept, in milliseconds.
    pub slept_ms: u64,
}

/// Blocks its thread for `ms` milliseconds.
pub fn sleep(event: SleepEvent, _: Context) -> Result<Slept, Diagnostic> {
    std::thread::sleep(Duration::from_millis(event.ms));
    Ok(Slept { slept_ms: event.ms })
}

/// `{"bytes": N}` for [`big`].
#[derive(Debug, Deserialize)]
pub struct BigEvent {
    /// The size of the response body, in bytes.
    pub bytes: usize,
}

/// A JSON string whose encoding (quotes included) is exactly `bytes` long: `"xxx...x"`. Sizes
/// below 2 give `""`, the shortest JSON string.
pub fn big(event: BigEvent, _: Context) -> Result<String, Diagnostic> {
    Ok("x".repeat(event.bytes.saturating_sub(2)))
}

/// A typed event: anything without these fields is refused before [`typed`] runs.
#[derive(Debug, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: u64,
    /// Item names.
    pub items: Vec<String>,
}

/// The answer of [`typed`].
#[derive(Debug, Serialize)]
pub struct OrderSummary {
    /// The order's id.
    pub id: u64,
    /// How many items it has.
    pub item_count: usize,
}

/// Summarises an [`Order`].
pub fn typed(order: Order, _: Context) -> Result<OrderSummary, Diagnostic> {
    Ok(OrderSummary {
        id: order.id,
        item_count: order.items.len(),
    })
}

/// Answers a map with non-string keys, which JSON cannot express.
pub fn unserializable(_: Value, _: Context) -> Result<HashMap<Vec<u8>, u8>, Diagnostic> {
    Ok(HashMap::from([(vec![1, 2], 3)]))
}

/// Returns the event's bytes unchanged, JSON or not.
pub fn raw_echo(event: &[u8], _: Context) -> Result<Vec<u8>, Diagnostic> {
    Ok(event.to_vec())
}

/// Returns the event unchanged, after yielding to the runtime once.
pub async fn async_echo(event: Value, _: Context) -> Result<Value, Diagnostic> {
    tokio::task::yield_now().await;
    Ok(event)
}

/// Panics while being polled, after an await.
///
/// # Panics
///
/// Always, on purpose.
pub async fn async_panic(_: Value, _: Context) -> Result<Value, Diagnostic> {
    tokio::task::yield_now().await;
    panic!("the async_panic handler always panics")
}

/// Sleeps `ms` milliseconds on the library's runtime without blocking a thread of it.
pub async fn async_sleep(event: SleepEvent, _: Context) -> Result<Slept, Diagnostic> {
    tokio::time::sleep(Duration::from_millis(event.ms)).await;
    Ok(Slept { slept_ms: event.ms })
}

/// Every field of the invocation's [`Context`], as the [`context`] handler answers it.
#[derive(Debug, Serialize)]
pub struct ContextReport {
    pub request_id: String,
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub function_name: String,
    pub function_version: String,
    pub memory_size_mb: u32,
    pub log_group_name: String,
    pub log_stream_name: String,
    pub xray_trace_id: Option<String>,
    pub client_context: Option<ClientContext>,
    pub identity: Option<CognitoIdentity>,
    pub tenant_id: Option<String>,
}

/// Answers the context it was called with, so a test can compare it with what the Runtime API sent.
pub fn context(_: Value, context: Context) -> Result<ContextReport, Diagnostic> {
    let config = &context.env_config;
    Ok(ContextReport {
        function_name: config.function_name.clone(),
        function_version: config.version.clone(),
        memory_size_mb: config.memory_size_mb,
        log_group_name: config.log_group_name.clone(),
        log_stream_name: config.log_stream_name.clone(),
        request_id: context.request_id,
        deadline_ms: context.deadline_ms,
        invoked_function_arn: context.invoked_function_arn,
        xray_trace_id: context.xray_trace_id,
        client_context: context.client_context,
        identity: context.identity,
        tenant_id: context.tenant_id,
    })
}

/// `{"parties": N, "wait_ms": M}` for [`rendezvous`].
#[derive(Debug, Deserialize)]
pub struct RendezvousEvent {
    /// How many invocations must be inside the handler at once.
    pub parties: usize,
    /// How long to wait for them, in milliseconds.
    pub wait_ms: u64,
}

/// The answer of [`rendezvous`].
#[derive(Debug, Serialize)]
pub struct Rendezvous {
    /// All `parties` were in the handler at once.
    pub met: bool,
    /// How many were in it when this one left.
    pub present: usize,
}

/// The invocations waiting in [`rendezvous`]. Process-wide on purpose: that invocations of one
/// process meet here is what the handler shows.
struct Meeting {
    state: Mutex<MeetingState>,
    arrived: Condvar,
}

struct MeetingState {
    present: usize,
    /// Bumped each time a full group meets, releasing its members.
    rounds: u64,
}

static MEETING: Meeting = Meeting {
    state: Mutex::new(MeetingState { present: 0, rounds: 0 }),
    arrived: Condvar::new(),
};

/// Blocks its thread until `parties` invocations are in this handler at once, or `wait_ms` has
/// passed. Shows that invocations run concurrently without relying on how long anything takes:
/// a runtime that serves one invocation at a time never meets.
pub fn rendezvous(event: RendezvousEvent, _: Context) -> Result<Rendezvous, Diagnostic> {
    let give_up = Instant::now() + Duration::from_millis(event.wait_ms);
    // A panic elsewhere while holding the lock leaves plain counters behind: keep going.
    let mut state = MEETING.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    state.present += 1;
    if state.present >= event.parties {
        let present = state.present;
        state.present = 0;
        state.rounds += 1;
        MEETING.arrived.notify_all();
        return Ok(Rendezvous { met: true, present });
    }
    let round = state.rounds;
    while state.rounds == round {
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let present = state.present;
            state.present -= 1;
            return Ok(Rendezvous { met: false, present });
        }
        state = MEETING
            .arrived
            .wait_timeout(state, left)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
    }
    Ok(Rendezvous {
        met: true,
        present: event.parties,
    })
}

#[cfg(test)]
mod tests;

/// The event of [`alloc_failure`].
#[derive(Debug, Deserialize)]
pub struct AllocEvent {
    pub bytes: usize,
    /// Sleep this long first (so another invocation can be in flight meanwhile).
    #[serde(default)]
    pub sleep_ms: u64,
}

/// Allocates `bytes` bytes, as any collection growing would, and goes through Rust's
/// allocation failure when the allocator refuses: `handle_alloc_error` prints `memory
/// allocation of N bytes failed` and aborts the process (no `try_reserve`: a handler rarely
/// checks, and the abort is what the bootstrap must survive well enough to report).
pub fn alloc_failure(event: AllocEvent, _: Context) -> Result<Value, Diagnostic> {
    std::thread::sleep(Duration::from_millis(event.sleep_ms));
    allocate(event.bytes).map_err(|e| Diagnostic::new("InvalidSize", format!("{} bytes: {e}", event.bytes)))?;
    Ok(serde_json::json!({ "allocated": event.bytes }))
}

/// What the `alloc_failure` init mode asks for: more than any allocator gives.
pub const INIT_ALLOCATION_BYTES: usize = 4_611_686_018_427_387_904;

/// Allocates and frees `bytes` bytes; an allocation the allocator refuses aborts the process
/// through `handle_alloc_error`.
fn allocate(bytes: usize) -> Result<(), std::alloc::LayoutError> {
    let layout = std::alloc::Layout::from_size_align(bytes.max(1), 1)?;
    // SAFETY: a non-zero-sized layout; the memory is freed below with the same layout.
    let ptr = unsafe { std::alloc::alloc(layout) };
    if ptr.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: allocated above with this layout and not used since.
    unsafe { std::alloc::dealloc(ptr, layout) };
    Ok(())
}

/// The event of [`abort`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AbortEvent {
    pub abort: bool,
}

/// Aborts the process when asked, as a C library's `abort()` or a Rust double panic does.
pub fn abort(event: AbortEvent, _: Context) -> Result<Value, Diagnostic> {
    if event.abort {
        std::process::abort();
    }
    Ok(serde_json::json!({ "aborted": false }))
}

/// The event of [`metric`]; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct MetricEvent {
    /// The metric name (default `example.metric`).
    pub name: Option<String>,
    /// The value: an integer stays an integer (default `1.0`).
    pub value: Option<serde_json::Number>,
    /// The tags (default `["tag:a"]`, or one of [`TAG_SETS_VARIABLE`]'s rotating sets).
    pub tags: Option<Vec<String>>,
    /// Send from a thread the handler spawns rather than the handler's own thread.
    pub from_thread: bool,
}

/// With this variable set to N, a [`metric`] event without tags gets the next of N distinct tag
/// sets (`set:0` ... `set:<N-1>`, in turn): the bench's case for the memory the aggregation of
/// many series takes.
pub const TAG_SETS_VARIABLE: &str = "HANDLERS_EXAMPLE_METRIC_TAG_SETS";

fn rotating_tags() -> Option<Vec<String>> {
    static SETS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let sets = (*SETS.get_or_init(|| std::env::var(TAG_SETS_VARIABLE).ok()?.trim().parse().ok().filter(|&n| n > 0)))?;
    let set = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % sets;
    Some(vec![format!("set:{set}")])
}

/// Sends one custom metric with `sdk::lambda_metric` and says whether the sdk accepted it.
pub fn metric(event: Option<MetricEvent>, _: Context) -> Result<Value, Diagnostic> {
    let event = event.unwrap_or_default();
    let name = event.name.unwrap_or_else(|| "example.metric".to_owned());
    let value = match event.value {
        Some(number) => match number.as_i64() {
            Some(integer) => sdk::MetricValue::Integer(integer),
            None => sdk::MetricValue::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        None => sdk::MetricValue::Float(1.0),
    };
    let tags = event.tags.or_else(rotating_tags).unwrap_or_else(|| vec!["tag:a".to_owned()]);
    let send = move || sdk::lambda_metric(&name, value, &tags, None);
    let result = if event.from_thread {
        std::thread::spawn(send)
            .join()
            .map_err(|_| Diagnostic::new("ThreadPanicked", "the metric thread panicked"))?
    } else {
        send()
    };
    Ok(match result {
        Ok(()) => serde_json::json!({"sent": true}),
        Err(error) => serde_json::json!({"sent": false, "error": error.to_string()}),
    })
}

/// Creates child spans of the invocation's `aws.lambda` span (one on the handler's thread, one
/// on a thread it spawns) and answers the ids and headers the sdk exposes (ids as decimal
/// strings, so no JSON reader rounds them).
pub fn traced(_: Value, context: Context) -> Result<Value, Diagnostic> {
    let trace = context.trace().map(|t| {
        serde_json::json!({
            "trace_id_high": t.trace_id_high.to_string(),
            "trace_id_low": t.trace_id_low.to_string(),
            "span_id": t.span_id.to_string(),
            "sampling_priority": t.sampling_priority,
        })
    });
    let span = context
        .span("example.work")
        .resource("example.resource")
        .span_type("custom")
        .tag("example.tag", "yes")
        .metric("example.count", 3.0);
    let span_id = span.context().map(|c| c.span_id.to_string());
    let span_headers = headers_object(span.trace_headers());
    span.finish();

    let thread_context = context.clone();
    let thread_span_id = std::thread::spawn(move || {
        let span = thread_context.span("example.thread");
        span.context().map(|c| c.span_id.to_string())
    })
    .join()
    .map_err(|_| Diagnostic::new("ThreadPanicked", "the span thread panicked"))?;

    Ok(serde_json::json!({
        "trace": trace,
        "span_id": span_id,
        "thread_span_id": thread_span_id,
        "headers": headers_object(context.trace_headers()),
        "span_headers": span_headers,
        "log_correlation": context.log_correlation().to_string(),
    }))
}

fn headers_object(headers: Vec<(String, String)>) -> Value {
    Value::Object(headers.into_iter().map(|(k, v)| (k, Value::String(v))).collect())
}

/// The event of [`logs`] and [`async_logs`]; every field is optional, so any JSON object (an
/// API Gateway event, say) is one.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LogsEvent {
    /// The message (default `logs handler invoked`).
    pub message: Option<String>,
    /// `error`, `warn`, `info`, `debug` or `trace` (default `info`).
    pub level: Option<String>,
    /// [`logs`] only: also log from a thread that carries the invocation
    /// (`sdk::logging::scope`, message suffixed ` (scoped thread)`) and from one that does not
    /// (` (unscoped thread)`).
    pub from_thread: bool,
    /// [`logs`] only: also log inside a child span `example.logged` (`sdk::logging::in_span`,
    /// message suffixed ` (in span)`).
    pub in_span: bool,
    /// [`logs`] only: before logging, wait (at most 30 s) until this many invocations are in
    /// the handler at once, as [`rendezvous`] does, so their records are written concurrently
    /// (error `NotMet` if they never are).
    pub meet: Option<usize>,
}

impl LogsEvent {
    fn message(&self) -> String {
        self.message.clone().unwrap_or_else(|| "logs handler invoked".to_owned())
    }

    fn level(&self) -> log::Level {
        self.level
            .as_deref()
            .and_then(|level| level.parse().ok())
            .unwrap_or(log::Level::Info)
    }
}

/// Logs the event's message through the `log` facade (a JSON object as [`LogsEvent`], any other
/// bytes as text, decoded lossily) and answers what a line should carry.
pub fn logs(event: &[u8], context: Context) -> Result<Vec<u8>, Diagnostic> {
    let (message, level, from_thread, in_span) = match serde_json::from_slice::<LogsEvent>(event) {
        Ok(event) => {
            if let Some(parties) = event.meet {
                let meeting = rendezvous(RendezvousEvent { parties, wait_ms: 30_000 }, context.clone())?;
                if !meeting.met {
                    return Err(Diagnostic::new(
                        "NotMet",
                        format!("{parties} invocations never were in the handler at once"),
                    ));
                }
            }
            (event.message(), event.level(), event.from_thread, event.in_span)
        }
        Err(_) => (String::from_utf8_lossy(event).into_owned(), log::Level::Info, false, false),
    };
    log::log!(level, "{message}");
    let mut logged = 1;
    if in_span {
        let span = context.span("example.logged");
        sdk::logging::in_span(&span, || log::log!(level, "{message} (in span)"));
        span.finish();
        logged += 1;
    }
    if from_thread {
        let scoped_context = context.clone();
        let scoped_message = message.clone();
        let scoped = std::thread::spawn(move || {
            sdk::logging::scope(&scoped_context, || log::log!(level, "{scoped_message} (scoped thread)"));
        });
        let unscoped_message = message.clone();
        let unscoped = std::thread::spawn(move || log::log!(level, "{unscoped_message} (unscoped thread)"));
        for thread in [scoped, unscoped] {
            thread
                .join()
                .map_err(|_| Diagnostic::new("ThreadPanicked", "a logging thread panicked"))?;
        }
        logged += 2;
    }
    serde_json::to_vec(&logs_answer(logged, &context)).map_err(|e| Diagnostic::new("Runtime.MarshalError", e.to_string()))
}

/// Logs from the async handler after an await, from a task spawned with
/// `sdk::logging::in_invocation` (` (in_invocation task)`) and from one spawned without
/// (` (plain task)`).
pub async fn async_logs(event: LogsEvent, context: Context) -> Result<Value, Diagnostic> {
    let (message, level) = (event.message(), event.level());
    tokio::task::yield_now().await;
    log::log!(level, "{message}");
    let task_message = message.clone();
    let carried = tokio::spawn(sdk::logging::in_invocation(&context, async move {
        tokio::task::yield_now().await;
        log::log!(level, "{task_message} (in_invocation task)");
    }));
    let plain = tokio::spawn(async move { log::log!(level, "{message} (plain task)") });
    for task in [carried, plain] {
        task.await
            .map_err(|e| Diagnostic::new("TaskFailed", format!("a logging task failed: {e}")))?;
    }
    Ok(logs_answer(3, &context))
}

fn logs_answer(logged: usize, context: &Context) -> Value {
    serde_json::json!({
        "logged": logged,
        "request_id": context.request_id,
        "log_correlation": context.log_correlation().to_string(),
    })
}
