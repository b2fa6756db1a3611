//! Response bodies: a whole buffer, or frames relayed from a channel as they arrive.
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Body, Frame};
use tokio::sync::mpsc;

/// What every route answers with.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// A body fed by another task (a streamed function response relayed chunk by chunk).
#[derive(Debug)]
pub struct ChannelBody {
    frames: mpsc::Receiver<Frame<Bytes>>,
}

impl ChannelBody {
    /// A sender for frames and the body that yields them; the body ends when the sender drops.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Frame<Bytes>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, ChannelBody { frames: rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.frames.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed()
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error in the shape the Lambda APIs use: `{"errorMessage": ..., "errorType": ...}`.
pub fn api_error(status: StatusCode, error_type: &str, message: &str) -> Response<ResponseBody> {
    json(status, &serde_json::json!({"errorMessage": message, "errorType": error_type}))
}

/// The Runtime API's "accepted".
pub fn accepted() -> Response<ResponseBody> {
    json(StatusCode::ACCEPTED, &serde_json::json!({"status": "OK"}))
}
