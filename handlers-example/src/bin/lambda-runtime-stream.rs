//! A response-streaming function built with AWS's `lambda_runtime` crate: it sends
//! `chunk 0\n` .. `chunk N-1\n` (N from `{"chunks": N}`, default 3) with `{"delay_ms": M}`
//! (default 50) between chunks.
use std::time::Duration;

use lambda_runtime::streaming::{channel, Body, Response};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<Value>) -> Result<Response<Body>, Error> {
    let chunks = event.payload.get("chunks").and_then(Value::as_u64).unwrap_or(3);
    let delay = Duration::from_millis(event.payload.get("delay_ms").and_then(Value::as_u64).unwrap_or(50));
    let (mut sender, body) = channel();
    tokio::spawn(async move {
        for i in 0..chunks {
            if i > 0 {
                tokio::time::sleep(delay).await;
            }
            if sender.send_data(format!("chunk {i}\n").into()).await.is_err() {
                // The runtime stopped reading: nobody left to stream to.
                return;
            }
        }
    });
    Ok(Response::from(body))
}
