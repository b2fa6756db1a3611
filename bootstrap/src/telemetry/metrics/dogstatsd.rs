//! A DogStatsD server for exec-mode children in any language, reading the subset Datadog's
//! Lambda Extension reads: `name:value[:value…]|type[|@rate][|#tag,tag][|T<epoch s>][|c:<id>]`,
//! one metric per line, several lines per datagram. Types `d`, `c` and `g` are accepted; `h`,
//! `ms` and `s` are refused as the Extension refuses them (`UnsupportedType`). Every refused
//! line or datagram is counted by reason. Accepted metrics become distribution points, the
//! only kind the seed's transports carry (a count's value is divided by its sample rate).
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::custom::{lambda_metric, parse_numeric};
use super::point::{MetricPoint, MetricValue};

/// Where DogStatsD clients send by default.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8125";
/// Largest datagram read (the Extension's default buffer); a larger one is refused whole.
pub const MAX_DATAGRAM_BYTES: usize = 8192;
/// Most datagrams one pre-flush drain reads; the rest wait for the next flush.
const MAX_DATAGRAMS_PER_DRAIN: usize = 4096;
/// Most tags one metric may carry (the Extension's limit).
pub const MAX_TAGS: usize = 100;

/// Why a line was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not `name:value|type…`.
    Malformed,
    /// A value that is not a finite number.
    BadValue,
    /// `h`, `ms`, `s` or an unknown type.
    UnsupportedType,
    /// More than [`MAX_TAGS`] tags.
    TooManyTags,
    /// A `T` timestamp that is not epoch seconds within the last 4 hours.
    BadTimestamp,
    /// The datagram was larger than [`MAX_DATAGRAM_BYTES`] or not UTF-8.
    BadDatagram,
}

/// One parsed line: each value is one sample.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsdMetric {
    pub name: String,
    pub values: Vec<MetricValue>,
    pub kind: char,
    pub tags: Vec<String>,
    pub timestamp: Option<i64>,
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<StatsdMetric, Rejection> {
    let mut sections = line.split('|');
    let head = sections.next().ok_or(Rejection::Malformed)?;
    let (name, raw_values) = head.split_once(':').ok_or(Rejection::Malformed)?;
    if name.trim().is_empty() || raw_values.is_empty() {
        return Err(Rejection::Malformed);
    }
    let kind = match sections.next().map(str::trim) {
        Some("d") => 'd',
        Some("c") => 'c',
        Some("g") => 'g',
        Some("") | None => return Err(Rejection::Malformed),
        Some(_) => return Err(Rejection::UnsupportedType),
    };
    let mut values = Vec::new();
    for raw in raw_values.split(':') {
        match parse_numeric(raw.trim()) {
            Some(v) if v.is_finite() => values.push(v),
            _ => return Err(Rejection::BadValue),
        }
    }
    let mut rate = 1.0;
    let mut tags = Vec::new();
    let mut timestamp = None;
    for section in sections {
        if let Some(r) = section.strip_prefix('@') {
            rate = r
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0 && *r <= 1.0)
                .ok_or(Rejection::Malformed)?;
        } else if let Some(t) = section.strip_prefix('#') {
            tags.extend(t.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned));
        } else if let Some(ts) = section.strip_prefix('T') {
            timestamp = Some(ts.parse::<i64>().map_err(|_| Rejection::BadTimestamp)?);
        } else if section.starts_with("c:") || section.starts_with("e:") || section.starts_with("card:") {
            // Container id, external data, cardinality: meaningless in a Lambda sandbox.
        } else {
            return Err(Rejection::Malformed);
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(Rejection::TooManyTags);
    }
    if kind == 'c' && rate != 1.0 {
        values = values.into_iter().map(|v| MetricValue::Float(v.as_f64() / rate)).collect();
        // A huge count at a tiny rate overflows: a bad value, not (as it was counted) a bad timestamp.
        if !values.iter().all(|v| v.is_finite()) {
            return Err(Rejection::BadValue);
        }
    }
    Ok(StatsdMetric {
        name: name.trim().to_owned(),
        values,
        kind,
        tags,
        timestamp,
    })
}

/// Counters of what the server received.
#[derive(Debug, Default)]
pub struct DogStatsDStats {
    pub accepted: AtomicU64,
    pub malformed: AtomicU64,
    pub bad_value: AtomicU64,
    pub unsupported_type: AtomicU64,
    pub too_many_tags: AtomicU64,
    pub bad_timestamp: AtomicU64,
    pub bad_datagram: AtomicU64,
    /// Points dropped because the buffer towards the flush was full.
    pub buffer_full: AtomicU64,
}

impl DogStatsDStats {
    pub fn count(&self, rejection: Rejection) {
        let counter = match rejection {
            Rejection::Malformed => &self.malformed,
            Rejection::BadValue => &self.bad_value,
            Rejection::UnsupportedType => &self.unsupported_type,
            Rejection::TooManyTags => &self.too_many_tags,
            Rejection::BadTimestamp => &self.bad_timestamp,
            Rejection::BadDatagram => &self.bad_datagram,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The non-zero refusal counters, for a log line: `malformed: 2, unsupported type: 1`.
    pub fn refusals(&self) -> String {
        [
            ("malformed", &self.malformed),
            ("bad value", &self.bad_value),
            ("unsupported type", &self.unsupported_type),
            ("too many tags", &self.too_many_tags),
            ("bad timestamp", &self.bad_timestamp),
            ("oversized or not UTF-8 datagram", &self.bad_datagram),
        ]
        .iter()
        .map(|(reason, counter)| (reason, counter.load(Ordering::Relaxed)))
        .filter(|(_, count)| *count > 0)
        .map(|(reason, count)| format!("{reason}: {count}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    pub fn rejected(&self) -> u64 {
        [
            &self.malformed,
            &self.bad_value,
            &self.unsupported_type,
            &self.too_many_tags,
            &self.bad_timestamp,
            &self.bad_datagram,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// Parses a datagram into points (the layer tag appended, timestamps validated like
/// `lambda_metric`), counting every refusal.
pub fn parse_datagram(datagram: &[u8], now: i64, stats: &DogStatsDStats) -> Vec<MetricPoint> {
    if datagram.len() > MAX_DATAGRAM_BYTES {
        stats.count(Rejection::BadDatagram);
        return Vec::new();
    }
    let Ok(text) = std::str::from_utf8(datagram) else {
        stats.count(Rejection::BadDatagram);
        return Vec::new();
    };
    let mut points = Vec::new();
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()) {
        let metric = match parse_line(line) {
            Ok(metric) => metric,
            Err(rejection) => {
                stats.count(rejection);
                continue;
            }
        };
        for value in &metric.values {
            match lambda_metric(&metric.name, *value, &metric.tags, metric.timestamp.map(|t| t as f64), now) {
                Ok(point) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    points.push(point);
                }
                Err(_) => stats.count(Rejection::BadTimestamp),
            }
        }
    }
    points
}

/// The port is taken, most likely by Datadog's Extension: the caller logs this and lets the
/// Extension receive the metrics.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for DogStatsD on UDP {addr}: {source} (a Datadog Extension probably owns the port; custom metrics sent there go to it)"
)]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A running DogStatsD server.
pub struct DogStatsDServer {
    pub local_addr: SocketAddr,
    pub stats: Arc<DogStatsDStats>,
    drain: Drainer,
    task: tokio::task::JoinHandle<()>,
}

/// What the server task and a flush's drain share: the socket, the buffer and where points go.
/// The lock is held across reading a datagram and queueing its points, so once a drain has
/// seen the socket empty, every datagram sent before it is in the points channel.
struct Receiver {
    socket: std::net::UdpSocket,
    buffer: Vec<u8>,
    points: mpsc::Sender<MetricPoint>,
    stats: Arc<DogStatsDStats>,
}

impl Receiver {
    fn accept(&mut self, len: usize) {
        for point in parse_datagram(&self.buffer[..len], super::point::now_epoch_seconds(), &self.stats) {
            if self.points.try_send(point).is_err() {
                self.stats.buffer_full.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reads what waits in the socket, at most `limit` datagrams; whether it saw it empty.
    fn read_waiting(&mut self, limit: usize) -> bool {
        for _ in 0..limit {
            match self.socket.recv_from(&mut self.buffer) {
                Ok((len, _)) => self.accept(len),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Reads every datagram already waiting in the server's socket, on the caller's thread, before
/// a flush.
#[derive(Clone)]
pub struct Drainer(Arc<Mutex<Receiver>>);

impl Drainer {
    /// Returns once every datagram sent before this call is parsed into the points channel. A
    /// child that sent its metrics and then answered its invocation has them in this invocation's
    /// flush (on loopback a sent datagram is already in our socket's queue), not the next one.
    /// Bounded, so a child that never stops sending cannot stall a flush.
    pub fn drain(&self) {
        if let Ok(mut receiver) = self.0.lock() {
            receiver.read_waiting(MAX_DATAGRAMS_PER_DRAIN);
        }
    }
}

impl DogStatsDServer {
    /// Binds `addr` and forwards accepted points to `points` (a bounded channel: when the flush
    /// falls behind, new points are dropped and counted in `buffer_full`).
    /// Call it inside the tokio runtime: the socket is registered with it.
    pub fn start(addr: SocketAddr, points: mpsc::Sender<MetricPoint>) -> Result<Self, BindError> {
        let bind_error = |source| BindError { addr, source };
        let std_socket = std::net::UdpSocket::bind(addr).map_err(bind_error)?;
        std_socket.set_nonblocking(true).map_err(bind_error)?;
        // Reads go through a plain non-blocking handle: tokio's `try_*` trust readiness its
        // driver may not have seen yet, and a drain would miss queued datagrams. The tokio socket
        // only says when to look.
        let read_socket = std_socket.try_clone().map_err(bind_error)?;
        let socket = UdpSocket::from_std(std_socket).map_err(bind_error)?;
        let local_addr = socket.local_addr().map_err(bind_error)?;
        let stats = Arc::new(DogStatsDStats::default());
        let receiver = Arc::new(Mutex::new(Receiver {
            socket: read_socket,
            // One byte more than the limit, to tell an oversized datagram from a full one.
            buffer: vec![0u8; MAX_DATAGRAM_BYTES + 1],
            points,
            stats: Arc::clone(&stats),
        }));
        let task_receiver = Arc::clone(&receiver);
        let task = tokio::spawn(async move {
            loop {
                if socket.readable().await.is_err() {
                    return;
                }
                // Read inside `try_io`: it clears the readiness it saw before the reads only when
                // they end empty, so a datagram arriving meanwhile wakes `readable` again.
                let read = socket.try_io(tokio::io::Interest::READABLE, || {
                    let emptied = task_receiver.lock().map_or(true, |mut r| r.read_waiting(MAX_DATAGRAMS_PER_DRAIN));
                    if emptied {
                        Err(std::io::ErrorKind::WouldBlock.into())
                    } else {
                        Ok(())
                    }
                });
                if read.is_ok() {
                    // A flood: let the other tasks of this thread run between batches.
                    tokio::task::yield_now().await;
                }
            }
        });
        Ok(Self {
            local_addr,
            stats,
            drain: Drainer(receiver),
            task,
        })
    }

    pub fn drainer(&self) -> Drainer {
        self.drain.clone()
    }
}

impl Drop for DogStatsDServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::metrics::tags::layer_tag;

    const NOW: i64 = 1_795_524_688;

    #[test]
    fn parses_every_accepted_form() {
        let m = parse_line("page.views:3|c|@0.5|#env:prod,team:a|T1795524600").unwrap();
        assert_eq!(m.name, "page.views");
        assert_eq!(m.kind, 'c');
        assert_eq!(m.values, [MetricValue::Float(6.0)]);
        assert_eq!(m.tags, ["env:prod", "team:a"]);
        assert_eq!(m.timestamp, Some(1795524600));
        let m = parse_line("lat:1.5:2|d|#a").unwrap();
        assert_eq!(m.values, [MetricValue::Float(1.5), MetricValue::Integer(2)]);
        assert_eq!(parse_line("temp:-3|g|c:abc").unwrap().values, [MetricValue::Integer(-3)]);
    }

    #[test]
    fn refuses_what_the_extension_refuses() {
        assert_eq!(parse_line("h:1|h"), Err(Rejection::UnsupportedType));
        assert_eq!(parse_line("t:1|ms"), Err(Rejection::UnsupportedType));
        assert_eq!(parse_line("s:1|s"), Err(Rejection::UnsupportedType));
        assert_eq!(parse_line("x:abc|d"), Err(Rejection::BadValue));
        assert_eq!(parse_line("x:NaN|d"), Err(Rejection::BadValue));
        assert_eq!(parse_line("novalue|d"), Err(Rejection::Malformed));
        assert_eq!(parse_line(":1|d"), Err(Rejection::Malformed));
        assert_eq!(parse_line("x:1"), Err(Rejection::Malformed));
        assert_eq!(parse_line("x:1|d|@2"), Err(Rejection::Malformed));
        assert_eq!(parse_line("x:1|d|Tsoon"), Err(Rejection::BadTimestamp));
        let many = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect::<Vec<_>>().join(",");
        assert_eq!(parse_line(&format!("x:1|d|#{many}")), Err(Rejection::TooManyTags));
    }

    #[test]
    fn datagrams_with_several_lines_garbage_and_oversize() {
        let stats = DogStatsDStats::default();
        let points = parse_datagram(b"a:1|d|#k:v\n\ngarbage\nb:2|h\r\nc:3|c\nold:1|d|T1000", NOW, &stats);
        assert_eq!(points.len(), 2);
        assert_eq!(*points[0].tags, ["k:v".to_owned(), layer_tag()]);
        assert_eq!(points[1].name, "c");
        assert_eq!(stats.malformed.load(Ordering::Relaxed), 1);
        assert_eq!(stats.unsupported_type.load(Ordering::Relaxed), 1);
        assert_eq!(stats.bad_timestamp.load(Ordering::Relaxed), 1);
        assert!(parse_datagram(&vec![b'a'; MAX_DATAGRAM_BYTES + 1], NOW, &stats).is_empty());
        assert!(parse_datagram(&[0xff, 0xfe], NOW, &stats).is_empty());
        assert_eq!(stats.bad_datagram.load(Ordering::Relaxed), 2);
        assert_eq!(stats.rejected(), 5);
        assert_eq!(
            stats.refusals(),
            "malformed: 1, unsupported type: 1, bad timestamp: 1, oversized or not UTF-8 datagram: 2"
        );
    }

    /// On a single-threaded runtime the server task cannot run while the test does: only the
    /// drain lets it read the datagram before the test looks.
    #[tokio::test(flavor = "current_thread")]
    async fn a_drain_reads_every_datagram_already_sent() {
        let (tx, mut rx) = mpsc::channel(16);
        let server = DogStatsDServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"sent.before.flush:1|d", server.local_addr).unwrap();
        client.send_to(b"and.another:2|c", server.local_addr).unwrap();
        assert!(rx.try_recv().is_err(), "nothing read yet");
        server.drainer().drain();
        assert_eq!(rx.try_recv().unwrap().name, "sent.before.flush");
        assert_eq!(rx.try_recv().unwrap().name, "and.another");
    }

    #[tokio::test]
    async fn server_receives_over_udp_and_reports_a_taken_port() {
        let (tx, mut rx) = mpsc::channel(16);
        let server = DogStatsDServer::start("127.0.0.1:0".parse().unwrap(), tx).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"x:1|d|#a:b\ny:2|g", server.local_addr).unwrap();
        client.send_to(&vec![b'z'; MAX_DATAGRAM_BYTES + 100], server.local_addr).unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        let second = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((first.name.as_str(), second.name.as_str()), ("x", "y"));
        // The oversized datagram is counted once it is read.
        for _ in 0..100 {
            if server.stats.bad_datagram.load(Ordering::Relaxed) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(server.stats.bad_datagram.load(Ordering::Relaxed), 1);

        let (tx2, _rx2) = mpsc::channel(1);
        let err = DogStatsDServer::start(server.local_addr, tx2).err().unwrap();
        assert!(err.to_string().contains("Datadog Extension"), "{err}");
    }
}
