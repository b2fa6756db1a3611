//! A 127.0.0.1 proxy in front of the real moto server that answers the first N requests with
//! AWS's throttling error, as KMS, SSM and Secrets Manager shape it (their JSON protocol:
//! `400`, `x-amzn-ErrorType: ThrottlingException`, `{"__type": ..., "message": ...}`), then
//! forwards every byte both ways. moto itself cannot throttle.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const THROTTLING_BODY: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;

pub struct ThrottlingProxy {
    pub endpoint: String,
    throttled: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ThrottlingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ThrottlingProxy {
    /// Throttles the first `throttle_first` requests, then forwards to `upstream`
    /// (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str, throttle_first: usize) -> Self {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let throttled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&throttled);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(relay(stream, upstream.clone(), Arc::clone(&counter), throttle_first));
            }
        });
        Self { endpoint, throttled, task }
    }

    /// Requests answered with the throttling error so far.
    pub fn throttled(&self) -> usize {
        self.throttled.load(Ordering::SeqCst)
    }
}

/// Reads one whole request (head and `content-length` body) into `buffer`; `false` when the
/// peer closed first.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buffer.len() >= end + 4 + length {
                return true;
            }
        }
        let mut chunk = [0u8; 8192];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn relay(mut client: TcpStream, upstream: String, throttled: Arc<AtomicUsize>, throttle_first: usize) {
    loop {
        let mut request = Vec::new();
        if !read_request(&mut client, &mut request).await {
            return;
        }
        let throttle = throttled.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < throttle_first).then_some(n + 1));
        if let Ok(n) = throttle {
            let answer = format!(
                "HTTP/1.1 400 Bad Request\r\n\
                 x-amzn-RequestId: throttled-{n}\r\n\
                 x-amzn-ErrorType: ThrottlingException\r\n\
                 content-type: application/x-amz-json-1.1\r\n\
                 content-length: {}\r\n\r\n{THROTTLING_BODY}",
                THROTTLING_BODY.len()
            );
            if client.write_all(answer.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        // Past the throttled ones: this request and everything after it on this connection go
        // to moto unchanged.
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            return;
        };
        if server.write_all(&request).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        return;
    }
}
