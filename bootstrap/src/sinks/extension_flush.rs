//! `DD_LOCAL_TEST`: with the Datadog Extension present, the library asks it to flush after every
//! invocation with an empty `POST http://127.0.0.1:8124/lambda/flush` (outside Lambda nothing
//! freezes the sandbox, so the Extension would otherwise hold what it got). Failures are only
//! logged at debug, as the library does.
use std::net::SocketAddr;
use std::time::Duration;

use super::io_runtime::IoRuntime;

/// An answer slower than this is not waited for: the flush request was delivered or it never will be.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// The Extension's flush endpoint.
#[derive(Debug)]
pub struct ExtensionFlush {
    http: reqwest::Client,
    url: String,
    io: IoRuntime,
}

impl ExtensionFlush {
    /// Towards the Extension's universal-instrumentation port at `addr` (127.0.0.1:8124).
    pub fn new(addr: SocketAddr) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder().timeout(FLUSH_TIMEOUT).build()?,
            url: format!("http://{addr}/lambda/flush"),
            io: IoRuntime::current(),
        })
    }

    /// Asks the Extension to flush; never fails the caller.
    pub async fn post(&self) {
        let request = self.http.post(&self.url).body(Vec::new()).send();
        match self.io.run(request).await {
            Ok(Ok(answer)) => tracing::debug!(status = answer.status().as_u16(), "asked the Datadog Extension to flush"),
            Ok(Err(err)) => tracing::debug!("cannot ask the Datadog Extension to flush (DD_LOCAL_TEST): {err}"),
            Err(err) => tracing::debug!("{err}"),
        }
    }
}
