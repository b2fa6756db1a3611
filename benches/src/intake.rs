//! A local stand-in for Datadog's intake (`DATADOG_HOST`), for the slow-intake pair: it
//! accepts any request on 127.0.0.1, waits a set delay, answers `202 {}`, and counts what it got,
//! so the bench can show the flushes really happened.
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A running intake. Its threads live as long as the bench process: it serves until the end.
pub struct Intake {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl Intake {
    /// Listens on an ephemeral loopback port; every request is answered after `delay`.
    pub fn start(delay: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&requests);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || serve(stream, delay, &counter));
            }
        });
        Ok(Self { addr, requests })
    }

    /// The value for `DATADOG_HOST`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// Serves one keep-alive connection until the client closes it or sends what is not HTTP/1.1.
fn serve(stream: TcpStream, delay: Duration, requests: &AtomicU64) {
    let Ok(mut writer) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    while read_request(&mut reader).is_ok() {
        std::thread::sleep(delay);
        requests.fetch_add(1, Ordering::Relaxed);
        let answer = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// Reads one request (head and body, by `Content-Length` or chunked); the body is dropped.
fn read_request(reader: &mut impl BufRead) -> io::Result<()> {
    let mut content_length = 0usize;
    let mut chunked = false;
    let mut line = String::new();
    let mut first = true;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            if first {
                continue;
            }
            break;
        }
        first = false;
        if let Some((name, value)) = trimmed.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.parse().map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    if !chunked {
        return skip(reader, content_length);
    }
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let size_text = line.trim_end().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        // The chunk and its CRLF; the last (empty) chunk is followed by the trailers' CRLF.
        skip(reader, size + 2)?;
        if size == 0 {
            return Ok(());
        }
    }
}

fn skip(reader: &mut impl Read, bytes: usize) -> io::Result<()> {
    let copied = io::copy(&mut reader.take(bytes as u64), &mut io::sink())?;
    if copied as usize == bytes {
        Ok(())
    } else {
        Err(io::ErrorKind::UnexpectedEof.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn post(stream: &mut TcpStream, head_extra: &str, body: &[u8]) -> String {
        let head = format!("POST /api/v1/distribution_points HTTP/1.1\r\nHost: x\r\n{head_extra}\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body).unwrap();
        let mut answer = [0u8; 256];
        let mut got = 0;
        while !answer[..got].ends_with(b"{}") {
            got += stream.read(&mut answer[got..]).unwrap();
        }
        String::from_utf8_lossy(&answer[..got]).into_owned()
    }

    #[test]
    fn it_answers_after_the_delay_and_counts_every_request_on_one_connection() {
        let intake = Intake::start(Duration::from_millis(50)).unwrap();
        let mut stream = TcpStream::connect(intake.url().trim_start_matches("http://")).unwrap();
        let started = Instant::now();
        let answer = post(&mut stream, "Content-Length: 5\r\n", b"hello");
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        assert!(started.elapsed() >= Duration::from_millis(50));
        post(&mut stream, "Transfer-Encoding: chunked\r\n", b"3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(intake.requests(), 2);
    }
}
