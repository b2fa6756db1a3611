//! Datadog's metadata subsegments for the X-Ray daemon (§6.3 of the seed's behaviour): one UDP
//! datagram per subsegment, so X-Ray traces show the Datadog trace context and trigger tags.
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};

use serde_json::{json, Map, Value};

/// The header line every daemon datagram starts with, exactly as X-Ray's SDKs write it.
const DATAGRAM_HEADER: &str = "{\"format\": \"json\", \"version\": 1}";

/// The parts of `Lambda-Runtime-Trace-Id` a subsegment needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XrayHeader {
    pub root: String,
    pub parent: String,
    pub sampled: bool,
}

impl XrayHeader {
    /// `Root=1-...;Parent=...;Sampled=1`; `None` without a root or a parent.
    pub fn parse(header: &str) -> Option<Self> {
        let (mut root, mut parent, mut sampled) = (None, None, true);
        for part in header.split(';') {
            let (key, value) = part.trim().split_once('=')?;
            match key {
                "Root" => root = Some(value.to_owned()),
                "Parent" => parent = Some(value.to_owned()),
                "Sampled" => sampled = value != "0",
                _ => {}
            }
        }
        Some(Self {
            root: root?,
            parent: parent?,
            sampled,
        })
    }
}

/// A UDP client of the X-Ray daemon named by `AWS_XRAY_DAEMON_ADDRESS`.
pub struct XrayDaemon {
    socket: UdpSocket,
    daemon: SocketAddr,
}

impl XrayDaemon {
    /// `AWS_XRAY_DAEMON_ADDRESS` is `host:port` (only the first two `:`-separated parts count);
    /// an absent or malformed address means no subsegments.
    pub fn from_address(address: Option<&str>) -> Option<Self> {
        let mut parts = address?.split(':');
        let (host, port) = (parts.next()?, parts.next()?.parse::<u16>().ok()?);
        let daemon = (host, port).to_socket_addrs().ok()?.next()?;
        let local: SocketAddr = if daemon.ip().is_loopback() {
            ([127, 0, 0, 1], 0).into()
        } else {
            ([0, 0, 0, 0], 0).into()
        };
        let socket = UdpSocket::bind(local).ok()?;
        // Connected, so the kernel drops any datagram that does not come from the daemon: the
        // socket sends only, and on a non-loopback daemon it is bound to every interface.
        socket.connect(daemon).ok()?;
        socket.set_nonblocking(true).ok()?;
        Some(Self { socket, daemon })
    }

    /// Sends one `datadog-metadata` subsegment carrying `key: value`. Failures are logged, never
    /// raised: X-Ray metadata must not cost the function anything.
    pub fn send_metadata(&self, header: &XrayHeader, key: &str, value: Value, now_seconds: f64) {
        if !header.sampled {
            return;
        }
        let datagram = datagram(header, key, value, now_seconds, rand::random::<u64>());
        if let Err(err) = self.socket.send(datagram.as_bytes()) {
            tracing::debug!(error = %err, daemon = %self.daemon, "cannot send the Datadog metadata subsegment to the X-Ray daemon");
        }
    }
}

fn datagram(header: &XrayHeader, key: &str, value: Value, now_seconds: f64, id: u64) -> String {
    let mut datadog = Map::new();
    datadog.insert(key.to_owned(), value);
    let segment = json!({
        "id": format!("{id:016x}"),
        "trace_id": header.root,
        "parent_id": header.parent,
        "name": "datadog-metadata",
        "start_time": now_seconds,
        "end_time": now_seconds,
        "type": "subsegment",
        "metadata": {"datadog": datadog},
    });
    format!("{DATAGRAM_HEADER}\n{segment}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_lambda_trace_header() {
        let header = XrayHeader::parse("Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1").unwrap();
        assert_eq!(header.root, "1-5e272390-8c398be037738dc042009320");
        assert_eq!(header.parent, "94ae789b969f1cc5");
        assert!(header.sampled);
        assert!(!XrayHeader::parse("Root=1-a-b;Parent=c;Sampled=0").unwrap().sampled);
        assert_eq!(XrayHeader::parse("Root=1-a-b"), None);
        assert_eq!(XrayHeader::parse("garbage"), None);
    }

    #[test]
    fn datagram_is_the_header_line_and_a_compact_subsegment() {
        let header = XrayHeader::parse("Root=1-5e272390-8c398be037738dc042009320;Parent=94ae789b969f1cc5;Sampled=1").unwrap();
        let text = datagram(
            &header,
            "trace",
            json!({"trace-id": "1", "parent-id": "2", "sampling-priority": "1"}),
            1.5,
            0xab,
        );
        let (first, rest) = text.split_once('\n').unwrap();
        assert_eq!(first, r#"{"format": "json", "version": 1}"#);
        let segment: Value = serde_json::from_str(rest).unwrap();
        assert_eq!(segment["id"], "00000000000000ab");
        assert_eq!(segment["trace_id"], "1-5e272390-8c398be037738dc042009320");
        assert_eq!(segment["parent_id"], "94ae789b969f1cc5");
        assert_eq!(segment["name"], "datadog-metadata");
        assert_eq!(segment["type"], "subsegment");
        assert_eq!(segment["metadata"]["datadog"]["trace"]["parent-id"], "2");
        assert!(!rest.contains(": "), "compact JSON: {rest}");
    }

    #[test]
    fn daemon_address_rules() {
        assert!(XrayDaemon::from_address(None).is_none());
        assert!(XrayDaemon::from_address(Some("nonsense")).is_none());
        assert!(XrayDaemon::from_address(Some("127.0.0.1:notaport")).is_none());
        assert!(XrayDaemon::from_address(Some("127.0.0.1:2000:extra")).is_some());
    }

    #[test]
    fn a_sampled_subsegment_reaches_the_daemon_and_an_unsampled_one_does_not() {
        let daemon = UdpSocket::bind("127.0.0.1:0").unwrap();
        daemon.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
        let address = daemon.local_addr().unwrap().to_string();
        let client = XrayDaemon::from_address(Some(&address)).unwrap();
        let unsampled = XrayHeader::parse("Root=1-a-b;Parent=c;Sampled=0").unwrap();
        client.send_metadata(&unsampled, "trace", json!({}), 1.0);
        let sampled = XrayHeader::parse("Root=1-a-b;Parent=c;Sampled=1").unwrap();
        client.send_metadata(
            &sampled,
            "lambda_function_tags",
            json!({"function_trigger.event_source": "sqs"}),
            1.0,
        );
        let mut buffer = [0u8; 2048];
        let n = daemon.recv(&mut buffer).unwrap();
        let text = std::str::from_utf8(&buffer[..n]).unwrap();
        assert!(text.contains("\"lambda_function_tags\""), "{text}");
    }
}
