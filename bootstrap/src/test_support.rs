//! What unit tests of several modules share.
use std::io::Write;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};

use crate::lifecycle::Timestamp;
use crate::runtime_api::{header_names, Endpoint};

/// A stdout the test reads back: clones write into the same buffer.
#[derive(Clone, Default)]
pub struct SharedOutput(Arc<Mutex<Vec<u8>>>);

impl SharedOutput {
    /// Every line written so far.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes)
            .expect("the output is UTF-8")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Every line written so far, each parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect()
    }
}

impl Write for SharedOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The event of the one invocation a [`HoldingRuntimeApi`] hands out.
pub const HELD_EVENT: &[u8] = b"{\"hello\":1}";

/// A Runtime API on loopback with one invocation (`req-1`, [`HELD_EVENT`]) that holds its
/// acknowledgement of every answer until [`HoldingRuntimeApi::release`] is notified, and reports
/// each answer's path and body on `answers` as soon as it has arrived.
pub struct HoldingRuntimeApi {
    pub endpoint: Endpoint,
    pub answers: mpsc::UnboundedReceiver<(String, Bytes)>,
    pub release: Arc<Notify>,
}

impl HoldingRuntimeApi {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let address = listener.local_addr().expect("local address");
        let release = Arc::new(Notify::new());
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let held = release.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (release, answers) = (held.clone(), answers_tx.clone());
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (release, answers) = (release.clone(), answers.clone());
                    async move {
                        let path = request.uri().path().to_owned();
                        let body = request.into_body().collect().await?.to_bytes();
                        let response = if path.ends_with("/next") {
                            let deadline = Timestamp::now().epoch_ms() + 60_000;
                            Response::builder()
                                .header(header_names::REQUEST_ID, "req-1")
                                .header(header_names::DEADLINE_MS, deadline.to_string())
                                .header(
                                    header_names::INVOKED_FUNCTION_ARN,
                                    "arn:aws:lambda:us-east-1:123456789012:function:f",
                                )
                                .body(Full::new(Bytes::from_static(HELD_EVENT)))
                        } else {
                            let _ = answers.send((path, body));
                            release.notified().await;
                            Response::builder().status(StatusCode::ACCEPTED).body(Full::new(Bytes::new()))
                        };
                        Ok::<_, hyper::Error>(response.expect("a valid response"))
                    }
                });
                tokio::spawn(hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        let endpoint = Endpoint::parse(&address.to_string()).expect("endpoint");
        Self {
            endpoint,
            answers,
            release,
        }
    }
}
