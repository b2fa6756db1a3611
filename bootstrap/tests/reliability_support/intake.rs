//! A Datadog API intake on 127.0.0.1 that misbehaves on purpose: the first requests get a
//! planned fault (a status, no answer at all, or a connection closed mid-request), later ones
//! are accepted and recorded. It speaks HTTP/1.1 by hand, so a fault can happen at any byte.
//! A port can be reserved before anything listens on it: the bootstrap's connections are then
//! refused until the test opens the intake there.
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How long a hanging request is held at most, so a bug cannot hang a test.
const HANG_LIMIT: Duration = Duration::from_mins(1);

/// What the intake does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misbehaviour {
    /// Reads the request, answers this status.
    Status(u16),
    /// Reads the request, never answers (until [`HANG_LIMIT`] or the intake is dropped).
    Hang,
    /// Reads the request's head only, then closes the connection without a word.
    CloseMidRequest,
}

/// One custom point the intake accepted: `(metric, value, tags)`.
pub type Point = (String, f64, Vec<String>);

#[derive(Default)]
struct Ledger {
    /// Requests whose head arrived, faulted or not.
    arrived: usize,
    faulted: Vec<Misbehaviour>,
    accepted_requests: usize,
    accepted_points: Vec<Point>,
    api_keys: Vec<String>,
}

/// The plan: request n (from 1) gets `plan[n - 1]`; requests past the plan are accepted (202).
pub struct FaultyIntake {
    pub addr: SocketAddr,
    ledger: Arc<Mutex<Ledger>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyIntake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback port nothing listens on (yet): connections to it are refused.
pub fn reserve_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl FaultyIntake {
    pub async fn start(plan: Vec<Misbehaviour>) -> Self {
        Self::start_on(0, plan).await
    }

    /// Listens on 127.0.0.1:`port` (0: any free port).
    pub async fn start_on(port: u16, plan: Vec<Misbehaviour>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let shared = Arc::clone(&ledger);
        let plan = Arc::new(plan);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_connection(stream, Arc::clone(&shared), Arc::clone(&plan)));
            }
        });
        Self { addr, ledger, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn arrived(&self) -> usize {
        self.ledger.lock().unwrap().arrived
    }

    pub fn faulted(&self) -> Vec<Misbehaviour> {
        self.ledger.lock().unwrap().faulted.clone()
    }

    pub fn accepted_requests(&self) -> usize {
        self.ledger.lock().unwrap().accepted_requests
    }

    /// Every point of every accepted request, in arrival order.
    pub fn points(&self) -> Vec<Point> {
        self.ledger.lock().unwrap().accepted_points.clone()
    }

    /// The `DD-API-KEY` of every accepted request.
    pub fn api_keys(&self) -> Vec<String> {
        self.ledger.lock().unwrap().api_keys.clone()
    }

    /// Waits until `wanted` holds of the accepted points; `false` after `limit`.
    pub async fn wait_for_points(&self, limit: Duration, wanted: impl Fn(&[Point]) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if wanted(&self.points()) {
                return true;
            }
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until at least `n` requests arrived; `false` after `limit`.
    pub async fn wait_for_arrivals(&self, n: usize, limit: Duration) -> bool {
        let start = Instant::now();
        while self.arrived() < n {
            if start.elapsed() > limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// One request's head, split from whatever of the body came with it.
struct Head {
    text: String,
    content_length: usize,
}

/// Reads up to the end of the head; `None` when the peer closed first.
async fn read_head(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Head> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buffer[..end]).into_owned();
            buffer.drain(..end + 4);
            let content_length = text
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
                .and_then(|(_, value)| value.trim().parse().ok())
                .unwrap_or(0);
            return Some(Head { text, content_length });
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

async fn serve_connection(mut stream: TcpStream, ledger: Arc<Mutex<Ledger>>, plan: Arc<Vec<Misbehaviour>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(head) = read_head(&mut stream, &mut buffer).await else {
            return;
        };
        let misbehaviour = {
            let mut ledger = ledger.lock().unwrap();
            ledger.arrived += 1;
            let planned = plan.get(ledger.arrived - 1).copied();
            if let Some(m) = planned {
                ledger.faulted.push(m);
            }
            planned
        };
        if misbehaviour == Some(Misbehaviour::CloseMidRequest) {
            return;
        }
        while buffer.len() < head.content_length {
            let mut chunk = vec![0u8; 65536];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buffer.drain(..head.content_length).collect();
        let status = match misbehaviour {
            Some(Misbehaviour::Hang) => {
                tokio::time::sleep(HANG_LIMIT).await;
                return;
            }
            Some(Misbehaviour::Status(status)) => status,
            Some(Misbehaviour::CloseMidRequest) => return,
            None => {
                let points = decode_points(&body);
                let mut ledger = ledger.lock().unwrap();
                ledger.accepted_requests += 1;
                ledger.accepted_points.extend(points);
                ledger
                    .api_keys
                    .push(header(&head.text, "dd-api-key").unwrap_or_default().to_owned());
                202
            }
        };
        let answer = format!("HTTP/1.1 {status} Whatever\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}");
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The points of a deflated `distribution_points` body; none when it is not one.
pub fn decode_points(body: &[u8]) -> Vec<Point> {
    let mut text = String::new();
    if flate2::read::ZlibDecoder::new(body).read_to_string(&mut text).is_err() {
        return Vec::new();
    }
    let Ok(json) = serde_json::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for series in json["series"].as_array().into_iter().flatten() {
        let tags: Vec<String> = series["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect();
        let metric = series["metric"].as_str().unwrap_or_default().to_owned();
        for point in series["points"].as_array().into_iter().flatten() {
            for value in point[1].as_array().into_iter().flatten() {
                out.push((metric.clone(), value.as_f64().unwrap_or(f64::NAN), tags.clone()));
            }
        }
    }
    out
}
