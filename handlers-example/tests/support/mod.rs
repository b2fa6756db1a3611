//! A small Runtime API server on 127.0.0.1 for driving the exec-mode peers in tests.
//!
//! It speaks just enough HTTP/1.1 (keep-alive, `Content-Length` and chunked bodies) for curl,
//! hyper and Python's http.client: `/next` hands out the queued events one by one (and then
//! holds the request open, as Lambda does between invocations), and every answer is passed to
//! the test through a channel.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// What a runtime posted back.
#[derive(Debug)]
pub struct Answer {
    /// `response`, `error` or `init/error`.
    pub kind: String,
    /// The request id in the path (empty for `init/error`).
    pub request_id: String,
    /// Lower-cased header names and their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

#[derive(Default)]
struct Events {
    queue: Mutex<VecDeque<(String, Vec<u8>)>>,
    added: Condvar,
}

pub struct RuntimeApi {
    /// `127.0.0.1:PORT`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    events: Arc<Events>,
    answers: Receiver<Answer>,
}

impl RuntimeApi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let events = Arc::new(Events::default());
        let (sender, answers) = mpsc::channel();
        let accept_events = events.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let events = accept_events.clone();
                let sender = sender.clone();
                std::thread::spawn(move || serve_connection(stream, &events, &sender));
            }
        });
        Self { address, events, answers }
    }

    /// Queues an event for `/next`.
    pub fn push(&self, request_id: &str, event: &[u8]) {
        self.events
            .queue
            .lock()
            .unwrap()
            .push_back((request_id.to_string(), event.to_vec()));
        self.events.added.notify_all();
    }

    /// The next answer; a generous bound so a broken peer fails the test instead of hanging it.
    pub fn answer(&self) -> Answer {
        self.answers
            .recv_timeout(Duration::from_secs(60))
            .expect("the runtime posted no answer")
    }
}

fn serve_connection(stream: TcpStream, events: &Events, answers: &Sender<Answer>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some((method, path, headers, body)) = read_request(&mut reader) {
        if method == "GET" && path == NEXT {
            let (request_id, event) = {
                let mut queue = events.queue.lock().unwrap();
                loop {
                    if let Some(next) = queue.pop_front() {
                        break next;
                    }
                    queue = events.added.wait(queue).unwrap();
                }
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {request_id}\r\n\
                 lambda-runtime-deadline-ms: 4102444800000\r\n\
                 lambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:123456789012:function:peer\r\n\
                 lambda-runtime-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1\r\n\
                 content-length: {}\r\n\r\n",
                event.len()
            );
            if writer.write_all(head.as_bytes()).and_then(|()| writer.write_all(&event)).is_err() {
                return;
            }
            continue;
        }
        let answer = if path == INIT_ERROR {
            Some(("init/error".to_string(), String::new()))
        } else {
            path.strip_prefix(INVOCATION).and_then(|rest| {
                let (id, kind) = rest.split_once('/')?;
                Some((kind.to_string(), id.to_string()))
            })
        };
        let status = match answer {
            Some((kind, request_id)) if method == "POST" => {
                let _ = answers.send(Answer {
                    kind,
                    request_id,
                    headers,
                    body,
                });
                "202 Accepted"
            }
            _ => "404 Not Found",
        };
        let reply = r#"{"status":"OK"}"#;
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{reply}",
            reply.len()
        );
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(reader: &mut impl BufRead) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers = read_headers(reader)?;
    let get = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    let mut headers = headers.clone();
    if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers (the streaming error type and body) join the headers.
                headers.extend(read_headers(reader)?);
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            chunk.truncate(size);
            body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = get("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    }
    Some((method, path, headers, body))
}

fn read_headers(reader: &mut impl BufRead) -> Option<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some(headers);
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}
