//! Custom metrics to Datadog's Extension over DogStatsD, as the seed sends them when the
//! Extension is present: one datagram per point, `<name>:<value>|d[|#tags][|T<seconds>]`,
//! tags normalised (anything but word characters, `-`, `:`, `/`, `.` becomes `_`).
//! Sends never block and never fail the caller: a full socket buffer drops the point (counted).
use std::fmt::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::telemetry::metrics::point::{MetricPoint, MetricValue};

/// Where the Extension listens.
pub const EXTENSION_DOGSTATSD_ADDR: &str = "127.0.0.1:8125";

/// One point as its DogStatsD line.
pub fn format_line(point: &MetricPoint, with_timestamp: bool) -> String {
    let value = match point.value {
        MetricValue::Integer(i) => i.to_string(),
        MetricValue::Float(f) => f.to_string(),
    };
    let mut line = format!("{}:{value}|d", point.name);
    if !point.tags.is_empty() {
        line.push_str("|#");
        let tags: Vec<String> = point.tags.iter().map(|t| normalise_tag(t)).collect();
        line.push_str(&tags.join(","));
    }
    if with_timestamp {
        let _ = write!(line, "|T{}", point.timestamp);
    }
    line
}

fn normalise_tag(tag: &str) -> String {
    tag.chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '/' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A UDP client towards the Extension.
#[derive(Debug)]
pub struct DogStatsDSink {
    socket: UdpSocket,
    target: SocketAddr,
    pub dropped: AtomicU64,
}

impl DogStatsDSink {
    pub fn new(target: SocketAddr) -> std::io::Result<Self> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            target,
            dropped: AtomicU64::new(0),
        })
    }

    /// Sends each point; a point the seed would stamp (one with an explicit timestamp) carries `|T`.
    pub fn send(&self, points: &[MetricPoint], now: i64) {
        for point in points {
            let line = format_line(point, point.timestamp != now);
            if self.socket.send_to(line.as_bytes(), self.target).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_as_the_seed_writes_them() {
        let p = MetricPoint::new("my.test.metric", 3, 123456789, vec![]);
        assert_eq!(format_line(&p, false), "my.test.metric:3|d");
        let p = MetricPoint::new("my.test.tags.metric", 3, 1, vec!["taga:valuea,tagb:valueb".into()]);
        assert_eq!(format_line(&p, false), "my.test.tags.metric:3|d|#taga:valuea_tagb:valueb");
        let p = MetricPoint::new("my.test.timestamp.metric", 9, 123456789, vec![]);
        assert_eq!(format_line(&p, true), "my.test.timestamp.metric:9|d|T123456789");
        assert_eq!(format_line(&MetricPoint::new("f", 2.5, 1, vec![]), false), "f:2.5|d");
    }

    #[test]
    fn datagrams_arrive() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let sink = DogStatsDSink::new(server.local_addr().unwrap()).unwrap();
        sink.send(&[MetricPoint::new("a", 1, 5, vec!["k:v".into()])], 5);
        let mut buf = [0u8; 256];
        server.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a:1|d|#k:v");
    }
}
