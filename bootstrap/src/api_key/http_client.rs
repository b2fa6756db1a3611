//! The AWS SDK's HTTP client, on the reqwest client the bootstrap already has for the Datadog
//! intake: one HTTP stack and one TLS stack in the binary. The SDK's own client
//! (aws-smithy-http-client) brings a second hyper client with HTTP/2 (h2) and its own rustls
//! connector, about 0.6 MB of a binary that makes three small calls at most, once per sandbox.
//!
//! The SDK keeps what it does above the connector: signing, retries, the operation timeout.
//! The connector applies the connect and read timeouts the SDK asks for and keeps one pooled
//! reqwest client per pair of them.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The client to give `aws_config::ConfigLoader::http_client`.
pub fn aws_https_client() -> SharedHttpClient {
    SharedHttpClient::new(ReqwestHttpClient::default())
}

type Timeouts = (Option<Duration>, Option<Duration>);

/// Hands the SDK a connector per (connect, read) timeout pair.
#[derive(Debug, Default)]
struct ReqwestHttpClient {
    connectors: Mutex<Vec<(Timeouts, SharedHttpConnector)>>,
}

impl HttpClient for ReqwestHttpClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let Ok(mut connectors) = self.connectors.lock() else {
            return ReqwestConnector::shared(timeouts);
        };
        if let Some((_, connector)) = connectors.iter().find(|(known, _)| *known == timeouts) {
            return connector.clone();
        }
        let connector = ReqwestConnector::shared(timeouts);
        connectors.push((timeouts, connector.clone()));
        connector
    }
}

#[derive(Debug)]
struct ReqwestConnector {
    client: Arc<Result<reqwest::Client, String>>,
}

impl ReqwestConnector {
    fn shared((connect, read): Timeouts) -> SharedHttpConnector {
        let mut builder = reqwest::Client::builder();
        if let Some(connect) = connect {
            builder = builder.connect_timeout(connect);
        }
        if let Some(read) = read {
            builder = builder.read_timeout(read);
        }
        // Building fails only when TLS cannot be set up; every call then says so.
        let client = builder.build().map_err(|e| format!("cannot build the HTTPS client: {e}"));
        SharedHttpConnector::new(Self { client: Arc::new(client) })
    }
}

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = Arc::clone(&self.client);
        HttpConnectorFuture::new(async move {
            let client = match &*client {
                Ok(client) => client.clone(),
                Err(e) => return Err(ConnectorError::other(e.clone().into(), None)),
            };
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // KMS, SSM and Secrets Manager requests are small JSON documents held in memory.
            let Some(bytes) = body.bytes() else {
                return Err(ConnectorError::user("a streaming request body is not supported here".into()));
            };
            let response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(bytes.to_vec())
                .send()
                .await
                .map_err(connector_error)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.bytes().await.map_err(connector_error)?;
            let mut http1 = http::Response::new(SdkBody::from(body));
            *http1.status_mut() = status;
            *http1.headers_mut() = headers;
            HttpResponse::try_from(http1).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Timeouts and I/O failures are told apart: the SDK retries them differently.
fn connector_error(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}
