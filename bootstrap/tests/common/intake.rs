// A Datadog API intake for the end-to-end tests (included with `#[path]`): a real HTTP server on
// 127.0.0.1 that records every request (deflate-decoded) and can hold its answers until the test
// releases them, or fail the first requests with a status.
#![allow(dead_code)]
use std::convert::Infallible;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// How long a held request waits for [`Intake::release`] at most, so a bug cannot hang a test.
const HOLD_LIMIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Value,
}

/// What happened, in order, across the test and the intake: the ordering evidence.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<String>>>);

impl Journal {
    pub fn note(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    pub fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The position of the first entry equal to `entry`.
    pub fn position(&self, entry: &str) -> Option<usize> {
        self.entries().iter().position(|e| e == entry)
    }
}

#[derive(Clone, Copy, Default)]
pub struct IntakeOptions {
    /// Hold the answers to the first `hold_first` requests until [`Intake::release`] (or
    /// [`HOLD_LIMIT`]); `usize::MAX` holds them all.
    pub hold_first: usize,
    /// Answer the first `fail_first` requests with `fail_status`.
    pub fail_first: usize,
    pub fail_status: u16,
}

pub struct Intake {
    pub addr: std::net::SocketAddr,
    pub journal: Journal,
    requests: Arc<Mutex<Vec<Recorded>>>,
    release: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Intake {
    /// Journals `intake received <n>` when request n (from 1) is read and `intake answered <n>`
    /// just before its answer is written.
    pub async fn start(options: IntakeOptions, journal: Journal) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (release, released) = tokio::sync::watch::channel(false);
        let store = Arc::clone(&requests);
        let log = journal.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (store, log, released) = (Arc::clone(&store), log.clone(), released.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (store, log, mut released) = (Arc::clone(&store), log.clone(), released.clone());
                        async move {
                            let (parts, body) = req.into_parts();
                            let raw = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
                            let mut text = String::new();
                            let decoded = flate2::read::ZlibDecoder::new(&raw[..]).read_to_string(&mut text);
                            let body = match decoded {
                                Ok(_) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
                                Err(e) => Value::String(format!("not deflate: {e}")),
                            };
                            let n = {
                                let mut store = store.lock().unwrap();
                                store.push(Recorded {
                                    path: parts.uri.path().to_owned(),
                                    headers: parts.headers,
                                    body,
                                });
                                store.len()
                            };
                            log.note(format!("intake received {n}"));
                            if n <= options.hold_first {
                                let _ = tokio::time::timeout(HOLD_LIMIT, released.wait_for(|r| *r)).await;
                            }
                            let status = if n <= options.fail_first { options.fail_status } else { 202 };
                            log.note(format!("intake answered {n}"));
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"{}")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            journal,
            requests,
            release,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Lets every held request (and every later one) be answered.
    pub fn release(&self) {
        let _ = self.release.send(true);
    }

    /// Waits until at least `n` requests arrived; `false` if they did not within `limit`.
    pub async fn wait_for_requests(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while self.requests.lock().unwrap().len() < n {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Every `(metric, value, tags)` in the distribution points of `requests`.
pub fn points(requests: &[Recorded]) -> Vec<(String, f64, Vec<String>)> {
    let mut out = Vec::new();
    for request in requests {
        for series in request.body["series"].as_array().into_iter().flatten() {
            let tags: Vec<String> = series["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect();
            for point in series["points"].as_array().into_iter().flatten() {
                for value in point[1].as_array().into_iter().flatten() {
                    out.push((
                        series["metric"].as_str().unwrap_or_default().to_owned(),
                        value.as_f64().unwrap_or(f64::NAN),
                        tags.clone(),
                    ));
                }
            }
        }
    }
    out
}
