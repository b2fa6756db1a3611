//! A minimal blocking HTTP/1.1 keep-alive client over one `TcpStream`, for the timing loop and the
//! bare-loop runtime: one connection reused for every request, buffers reused between requests,
//! no async runtime between the clock and the socket.
//!
//! It speaks only what the emulator speaks: `Content-Length` or chunked bodies, no 1xx, no
//! pipelining. A response is borrowed from the connection and valid until the next request.
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Range;

/// The largest response head accepted; the emulator's heads are a few hundred bytes.
const MAX_HEAD_BYTES: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("the server closed the connection before a whole response arrived")]
    Closed,
    #[error("the server sent a malformed response: {0}")]
    Malformed(&'static str),
}

/// One keep-alive connection.
pub struct Connection {
    stream: TcpStream,
    host: String,
    /// Bytes read from the socket and not consumed yet.
    inbox: Vec<u8>,
    /// The request being written, then the last response's head.
    request: Vec<u8>,
    head: Vec<u8>,
    headers: Vec<(Range<usize>, Range<usize>)>,
    body: Vec<u8>,
    status: u16,
}

/// The last response on a [`Connection`].
pub struct Response<'a> {
    pub status: u16,
    head: &'a [u8],
    headers: &'a [(Range<usize>, Range<usize>)],
    pub body: &'a [u8],
}

impl Response<'_> {
    /// The first value of header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.head[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.head[v.clone()])
    }
}

impl Connection {
    pub fn connect(addr: SocketAddr) -> Result<Self, HttpError> {
        let stream = TcpStream::connect(addr).map_err(|source| HttpError::Connect { addr, source })?;
        // Requests are written in one piece; Nagle would only add delay.
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            host: addr.to_string(),
            inbox: Vec::with_capacity(READ_CHUNK),
            request: Vec::with_capacity(1024),
            head: Vec::with_capacity(1024),
            headers: Vec::with_capacity(16),
            body: Vec::with_capacity(READ_CHUNK),
            status: 0,
        })
    }

    /// Sends one request and reads the whole response. `body` is sent with a `Content-Length`.
    pub fn request(&mut self, method: &str, path: &str, body: &[u8]) -> Result<Response<'_>, HttpError> {
        self.request.clear();
        // `write!` into a Vec cannot fail.
        let _ = write!(
            self.request,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
            self.host,
            body.len()
        );
        self.request.extend_from_slice(body);
        self.stream.write_all(&self.request)?;
        self.read_response()?;
        Ok(Response {
            status: self.status,
            head: &self.head,
            headers: &self.headers,
            body: &self.body,
        })
    }

    fn read_response(&mut self) -> Result<(), HttpError> {
        let head_end = loop {
            if let Some(at) = find(&self.inbox, b"\r\n\r\n") {
                break at;
            }
            if self.inbox.len() > MAX_HEAD_BYTES {
                return Err(HttpError::Malformed("response head too large"));
            }
            self.fill()?;
        };
        self.head.clear();
        self.head.extend_from_slice(&self.inbox[..head_end]);
        self.inbox.drain(..head_end + 4);
        self.parse_head()?;

        self.body.clear();
        let chunked = self.header_is("transfer-encoding", b"chunked");
        if chunked {
            self.read_chunked()
        } else {
            let length = match self.header_value("content-length") {
                Some(raw) => parse_decimal(raw).ok_or(HttpError::Malformed("bad Content-Length"))?,
                None => 0,
            };
            self.read_exact_into_body(length)
        }
    }

    fn parse_head(&mut self) -> Result<(), HttpError> {
        self.headers.clear();
        let head = &self.head;
        let line_end = find(head, b"\r\n").unwrap_or(head.len());
        let status_line = &head[..line_end];
        let status = status_line
            .split(|b| *b == b' ')
            .nth(1)
            .and_then(parse_decimal)
            .ok_or(HttpError::Malformed("bad status line"))?;
        self.status = u16::try_from(status).map_err(|_| HttpError::Malformed("bad status code"))?;
        let mut at = line_end + 2;
        while at < head.len() {
            let end = find(&head[at..], b"\r\n").map_or(head.len(), |e| at + e);
            let colon = head[at..end]
                .iter()
                .position(|b| *b == b':')
                .ok_or(HttpError::Malformed("header without a colon"))?;
            let name = at..at + colon;
            let value = trim(head, at + colon + 1..end);
            self.headers.push((name, value));
            at = end + 2;
        }
        Ok(())
    }

    fn header_value(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.head[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.head[v.clone()])
    }

    fn header_is(&self, name: &str, value: &[u8]) -> bool {
        self.header_value(name).is_some_and(|v| v.eq_ignore_ascii_case(value))
    }

    fn read_exact_into_body(&mut self, length: usize) -> Result<(), HttpError> {
        while self.inbox.len() < length {
            self.fill()?;
        }
        self.body.extend_from_slice(&self.inbox[..length]);
        self.inbox.drain(..length);
        Ok(())
    }

    fn read_chunked(&mut self) -> Result<(), HttpError> {
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.inbox, b"\r\n") {
                    break at;
                }
                self.fill()?;
            };
            // Chunk extensions (`;name=value`) are allowed and ignored.
            let size_text = self.inbox[..line_end].split(|b| *b == b';').next().unwrap_or_default();
            let size = parse_hex(trim_slice(size_text)).ok_or(HttpError::Malformed("bad chunk size"))?;
            self.inbox.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = loop {
                        if let Some(at) = find(&self.inbox, b"\r\n") {
                            break at;
                        }
                        self.fill()?;
                    };
                    self.inbox.drain(..end + 2);
                    if end == 0 {
                        return Ok(());
                    }
                }
            }
            while self.inbox.len() < size + 2 {
                self.fill()?;
            }
            self.body.extend_from_slice(&self.inbox[..size]);
            self.inbox.drain(..size + 2);
        }
    }

    fn fill(&mut self) -> Result<(), HttpError> {
        let len = self.inbox.len();
        self.inbox.resize(len + READ_CHUNK, 0);
        let read = self.stream.read(&mut self.inbox[len..]);
        let read = match read {
            Ok(n) => n,
            Err(err) => {
                self.inbox.truncate(len);
                return Err(err.into());
            }
        };
        self.inbox.truncate(len + read);
        if read == 0 {
            return Err(HttpError::Closed);
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn trim(bytes: &[u8], mut range: Range<usize>) -> Range<usize> {
    while range.start < range.end && bytes[range.start].is_ascii_whitespace() {
        range.start += 1;
    }
    while range.end > range.start && bytes[range.end - 1].is_ascii_whitespace() {
        range.end -= 1;
    }
    range
}

fn trim_slice(bytes: &[u8]) -> &[u8] {
    let range = trim(bytes, 0..bytes.len());
    &bytes[range]
}

fn parse_decimal(raw: &[u8]) -> Option<usize> {
    std::str::from_utf8(raw).ok()?.trim().parse().ok()
}

fn parse_hex(raw: &[u8]) -> Option<usize> {
    usize::from_str_radix(std::str::from_utf8(raw).ok()?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// A real server on 127.0.0.1 that answers each request with the next canned response and
    /// hands back what it received.
    fn serve(responses: Vec<&'static [u8]>) -> (SocketAddr, thread::JoinHandle<Vec<Vec<u8>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut received = Vec::new();
            for response in responses {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Each test request fits in one head plus a Content-Length body.
                loop {
                    let n = stream.read(&mut buf).unwrap();
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = find(&request, b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                received.push(request);
                stream.write_all(response).unwrap();
            }
            received
        });
        (addr, handle)
    }

    #[test]
    fn content_length_and_chunked_responses_share_one_connection() {
        let (addr, server) = serve(vec![
            b"HTTP/1.1 200 OK\r\nX-Amzn-RequestId: abc\r\nContent-Length: 5\r\n\r\nhello",
            b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nfoo\r\n4\r\nbar!\r\n0\r\nTrailer: x\r\n\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
        ]);
        let mut connection = Connection::connect(addr).unwrap();
        let first = connection.request("POST", "/invoke", b"{\"a\":1}").unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body, b"hello");
        assert_eq!(first.header("x-amzn-requestid"), Some(&b"abc"[..]));
        assert_eq!(first.header("missing"), None);
        let second = connection.request("GET", "/next", b"").unwrap();
        assert_eq!(second.status, 202);
        assert_eq!(second.body, b"foobar!");
        let third = connection.request("GET", "/gone", b"").unwrap();
        assert_eq!(third.status, 404);
        assert!(third.body.is_empty());

        let received = server.join().unwrap();
        let first_request = String::from_utf8(received[0].clone()).unwrap();
        assert!(first_request.starts_with("POST /invoke HTTP/1.1\r\n"), "{first_request}");
        assert!(first_request.contains("Content-Length: 7\r\n"), "{first_request}");
        assert!(first_request.ends_with("\r\n\r\n{\"a\":1}"), "{first_request}");
    }

    #[test]
    fn a_response_cut_short_is_an_error() {
        let (addr, server) = serve(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]);
        let mut connection = Connection::connect(addr).unwrap();
        let received = connection.request("GET", "/", b"");
        server.join().unwrap();
        assert!(matches!(received, Err(HttpError::Closed)), "{:?}", received.err());
    }
}
