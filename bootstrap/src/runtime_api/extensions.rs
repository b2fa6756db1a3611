//! The Extensions API, as an internal extension: the bootstrap registers for SHUTDOWN only, so
//! Lambda sends the runtime SIGTERM (and a SHUTDOWN event) before ending the sandbox, which gives
//! telemetry its final flush.
use http::{HeaderMap, HeaderValue, Method};

use super::client::{full, ClientError};
use super::RuntimeApiClient;

const EXTENSION_API_VERSION: &str = "2020-01-01";
const NAME_HEADER: &str = "lambda-extension-name";
const IDENTIFIER_HEADER: &str = "lambda-extension-identifier";

/// The name the bootstrap registers under.
pub const EXTENSION_NAME: &str = "datadog-bootstrap";

/// Registering or polling as an extension failed.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the Extensions API's register answer has no Lambda-Extension-Identifier header")]
    MissingIdentifier,
}

/// What an extension hears from `event/next`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtensionEvent {
    Shutdown {
        reason: String,
    },
    /// An event this extension did not subscribe to, or could not read.
    Other(String),
}

/// A registered internal extension.
pub struct RegisteredExtension {
    client: RuntimeApiClient,
    identifier: HeaderValue,
}

impl RegisteredExtension {
    /// Registers for SHUTDOWN events.
    pub async fn register(client: &RuntimeApiClient) -> Result<Self, ExtensionError> {
        let mut headers = HeaderMap::new();
        headers.insert(NAME_HEADER, HeaderValue::from_static(EXTENSION_NAME));
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let path = format!("/{EXTENSION_API_VERSION}/extension/register");
        let body = bytes::Bytes::from_static(br#"{"events":["SHUTDOWN"]}"#);
        let (answer, _) = client.call(Method::POST, &path, headers, full(body)).await?;
        let identifier = answer.get(IDENTIFIER_HEADER).cloned().ok_or(ExtensionError::MissingIdentifier)?;
        Ok(Self {
            client: client.clone(),
            identifier,
        })
    }

    /// Waits for the next event. Lambda counts the extension ready once it first calls this.
    pub async fn next_event(&self) -> Result<ExtensionEvent, ExtensionError> {
        let mut headers = HeaderMap::new();
        headers.insert(IDENTIFIER_HEADER, self.identifier.clone());
        let path = format!("/{EXTENSION_API_VERSION}/extension/event/next");
        let (_, body) = self.client.call(Method::GET, &path, headers, super::client::empty()).await?;
        Ok(parse_event(&body))
    }
}

fn parse_event(body: &[u8]) -> ExtensionEvent {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    match value.get("eventType").and_then(|t| t.as_str()) {
        Some("SHUTDOWN") => ExtensionEvent::Shutdown {
            reason: value.get("shutdownReason").and_then(|r| r.as_str()).unwrap_or_default().to_owned(),
        },
        other => ExtensionEvent::Other(other.unwrap_or("unreadable event").to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_shutdown_events() {
        let event = parse_event(br#"{"eventType":"SHUTDOWN","shutdownReason":"spindown","deadlineMs":1}"#);
        assert_eq!(event, ExtensionEvent::Shutdown { reason: "spindown".into() });
        assert_eq!(parse_event(b"nope"), ExtensionEvent::Other("unreadable event".into()));
        assert_eq!(parse_event(br#"{"eventType":"INVOKE"}"#), ExtensionEvent::Other("INVOKE".into()));
    }
}
