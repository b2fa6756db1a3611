//! The Extensions API (`/2020-01-01/extension/...`): registration and the INVOKE / SHUTDOWN
//! event stream, with the event shapes AWS documents. Extensions registered here run inside
//! the runtime's process tree, so they are *internal* extensions, and a new runtime starts with
//! none. The Telemetry and Logs APIs answer as the Runtime Interface Emulator does: not supported.
use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;
use tokio::sync::{mpsc, Mutex};

use super::body::{api_error, json, ResponseBody};
use super::ids;
use super::sandbox::{Dispatched, Sandbox};

pub const EXTENSION_NAME: &str = "lambda-extension-name";
pub const EXTENSION_IDENTIFIER: &str = "lambda-extension-identifier";
pub const EXTENSION_EVENT_IDENTIFIER: &str = "lambda-extension-event-identifier";
pub const EXTENSION_ACCEPT_FEATURE: &str = "lambda-extension-accept-feature";

/// The stream of events one extension reads with `/event/next`.
pub type EventReceiver = Arc<Mutex<mpsc::UnboundedReceiver<serde_json::Value>>>;

struct Registered {
    name: String,
    invoke: bool,
    shutdown: bool,
    events: mpsc::UnboundedSender<serde_json::Value>,
    receiver: EventReceiver,
}

/// The extensions registered by the current runtime.
#[derive(Default)]
pub struct ExtensionRegistry {
    entries: HashMap<String, Registered>,
}

impl ExtensionRegistry {
    pub fn register(&mut self, name: &str, invoke: bool, shutdown: bool) -> String {
        let id = ids::uuid_v4();
        let (events, rx) = mpsc::unbounded_channel();
        self.entries.insert(
            id.clone(),
            Registered {
                name: name.to_owned(),
                invoke,
                shutdown,
                events,
                receiver: Arc::new(Mutex::new(rx)),
            },
        );
        tracing::info!(name, id, invoke, shutdown, "extension registered");
        id
    }

    pub fn receiver(&self, id: &str) -> Option<EventReceiver> {
        self.entries.get(id).map(|r| Arc::clone(&r.receiver))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every extension (their runtime is gone); their pending `/event/next` end.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn broadcast_invoke(&self, dispatched: &Dispatched) {
        let event = serde_json::json!({
            "eventType": "INVOKE",
            "deadlineMs": dispatched.deadline_ms,
            "requestId": dispatched.request.request_id,
            "invokedFunctionArn": dispatched.function_arn,
            "tracing": {"type": "X-Amzn-Trace-Id", "value": dispatched.request.trace_id},
        });
        for registered in self.entries.values().filter(|r| r.invoke) {
            let _ = registered.events.send(event.clone());
        }
    }

    pub fn broadcast_shutdown(&self, deadline_ms: u64) {
        let event = serde_json::json!({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": deadline_ms});
        for registered in self.entries.values().filter(|r| r.shutdown) {
            tracing::debug!(name = registered.name, "sending SHUTDOWN");
            let _ = registered.events.send(event.clone());
        }
    }
}

#[derive(Deserialize)]
struct RegisterBody {
    #[serde(default)]
    events: Vec<String>,
}

/// `POST /2020-01-01/extension/register`.
pub async fn register(sandbox: &Sandbox, request: Request<Incoming>) -> Response<ResponseBody> {
    let name = match request.headers().get(EXTENSION_NAME).and_then(|v| v.to_str().ok()) {
        Some(name) if !name.trim().is_empty() => name.trim().to_owned(),
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Lambda-Extension-Name header is required",
            )
        }
    };
    let wants_account_id = request
        .headers()
        .get(EXTENSION_ACCEPT_FEATURE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "accountId"));
    let Ok(bytes) = request.into_body().collect().await.map(http_body_util::Collected::to_bytes) else {
        return api_error(StatusCode::BAD_REQUEST, "InvalidRequest", "the registration body could not be read");
    };
    let body: RegisterBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(err) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                &format!("invalid registration body: {err}"),
            )
        }
    };
    if let Some(unknown) = body.events.iter().find(|e| *e != "INVOKE" && *e != "SHUTDOWN") {
        return api_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            &format!("unknown event type {unknown:?}"),
        );
    }
    let id = sandbox.register_extension(
        &name,
        body.events.iter().any(|e| e == "INVOKE"),
        body.events.iter().any(|e| e == "SHUTDOWN"),
    );
    let function = &sandbox.options().function;
    let mut answer = serde_json::json!({
        "functionName": function.name,
        "functionVersion": function.version,
        "handler": sandbox.runtime_env("_HANDLER").unwrap_or_default(),
    });
    if wants_account_id {
        answer["accountId"] = serde_json::Value::String(function.account_id.clone());
    }
    let mut response = json(StatusCode::OK, &answer);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(EXTENSION_IDENTIFIER, value);
    }
    response
}

/// `GET /2020-01-01/extension/event/next`.
pub async fn next_event(sandbox: &Sandbox, request: Request<Incoming>) -> Response<ResponseBody> {
    let id = request
        .headers()
        .get(EXTENSION_IDENTIFIER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(receiver) = sandbox.extension_events(id) else {
        return api_error(
            StatusCode::FORBIDDEN,
            "Extension.UnknownExtensionIdentifier",
            "unknown Lambda-Extension-Identifier",
        );
    };
    let event = receiver.lock().await.recv().await;
    match event {
        Some(event) => {
            let mut response = json(StatusCode::OK, &event);
            if let Ok(value) = HeaderValue::from_str(&ids::uuid_v4()) {
                response.headers_mut().insert(EXTENSION_EVENT_IDENTIFIER, value);
            }
            response
        }
        None => api_error(
            StatusCode::FORBIDDEN,
            "Extension.UnknownExtensionIdentifier",
            "the extension's runtime is gone",
        ),
    }
}

/// `/extension/init/error` and `/extension/exit/error`: noted and accepted.
pub async fn report_error(kind: &str, request: Request<Incoming>) -> Response<ResponseBody> {
    let error_type = request
        .headers()
        .get("lambda-extension-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = request
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    tracing::warn!(kind, error_type, body = %String::from_utf8_lossy(&body), "extension reported an error");
    json(StatusCode::ACCEPTED, &serde_json::json!({"status": "OK"}))
}

/// The Telemetry and Logs APIs are not emulated.
pub fn not_supported(api: &str) -> Response<ResponseBody> {
    api_error(
        StatusCode::ACCEPTED,
        &format!("{api}.NotSupported"),
        &format!("{api} API is not supported"),
    )
}
