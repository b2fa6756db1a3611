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
//!
//! The init function fails when `HANDLERS_EXAMPLE_INIT=fail` and panics when it is `panic`, so
//! the bootstrap's init-error path can be exercised.
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

/// The variable the init function reads: `fail` or `panic` make init fail.
pub const INIT_MODE_VARIABLE: &str = "HANDLERS_EXAMPLE_INIT";

/// Runs once at load; its behaviour comes from [`INIT_MODE_VARIABLE`].
pub fn init() -> Result<(), ExampleError> {
    init_in_mode(std::env::var(INIT_MODE_VARIABLE).ok().as_deref())
}

/// `fail` returns an error, `panic` panics, anything else succeeds.
pub fn init_in_mode(mode: Option<&str>) -> Result<(), ExampleError> {
    match mode {
        Some("fail") => Err(ExampleError(format!("init failed because {INIT_MODE_VARIABLE}=fail"))),
        Some("panic") => panic!("init panicked because {INIT_MODE_VARIABLE}=panic"),
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
    let mut state = MEETING.state.lock().unwrap_or_else(|p| p.into_inner());
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
        state = MEETING.arrived.wait_timeout(state, left).unwrap_or_else(|p| p.into_inner()).0;
    }
    Ok(Rendezvous {
        met: true,
        present: event.parties,
    })
}

#[cfg(test)]
mod tests;
