//! Identifiers Lambda makes up: request ids, X-Ray trace ids, log stream names.
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;

/// A random (version 4) UUID in its usual text form, as Lambda's request ids are.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex = hex(&b);
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A fresh, sampled X-Ray trace header: `Root=1-<8 hex epoch secs>-<24 hex>;Parent=<16 hex>;Sampled=1`.
pub fn xray_trace_id(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut root = [0u8; 12];
    let mut parent = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut root);
    rand::thread_rng().fill_bytes(&mut parent);
    format!("Root=1-{:08x}-{};Parent={};Sampled=1", secs as u32, hex(&root), hex(&parent))
}

/// `YYYY/MM/DD/[VERSION]<32 hex>`, the shape of Lambda's log stream names.
pub fn log_stream_name(now: SystemTime, version: &str) -> String {
    let date = time::OffsetDateTime::from(now).date();
    let (y, m, d) = (date.year(), u8::from(date.month()), date.day());
    let mut suffix = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut suffix);
    format!("{y:04}/{m:02}/{d:02}/[{version}]{}", hex(&suffix))
}

/// Milliseconds since the Unix epoch.
pub fn epoch_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uuid_has_version_and_variant() {
        let id = uuid_v4();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'), "{id}");
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
        assert_ne!(uuid_v4(), id);
    }

    #[test]
    fn trace_id_carries_the_epoch_seconds() {
        let at = UNIX_EPOCH + Duration::from_secs(0x5759_e988);
        let id = xray_trace_id(at);
        assert!(id.starts_with("Root=1-5759e988-"), "{id}");
        let root = id.split(';').next().unwrap();
        assert_eq!(root.len(), "Root=1-".len() + 8 + 1 + 24);
        assert!(id.contains(";Parent=") && id.ends_with(";Sampled=1"), "{id}");
        assert_eq!(id.split(";Parent=").nth(1).unwrap().split(';').next().unwrap().len(), 16);
    }

    #[test]
    fn log_stream_is_dated() {
        // 2024-02-29 is day 19782.
        let at = UNIX_EPOCH + Duration::from_hours(474769);
        let name = log_stream_name(at, "$LATEST");
        assert!(name.starts_with("2024/02/29/[$LATEST]"), "{name}");
        assert_eq!(name.len(), "2024/02/29/[$LATEST]".len() + 32);
        assert!(log_stream_name(UNIX_EPOCH, "1").starts_with("1970/01/01/[1]"));
    }
}
