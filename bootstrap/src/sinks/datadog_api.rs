//! Distribution points to the Datadog API, as datadogpy sends them for the seed:
//! `POST <base>/api/v1/distribution_points`, a zlib-deflated JSON body, `DD-API-KEY`.
//! Each attempt is bounded by a timeout; 5xx, 429 and connection errors are retried a few
//! times with a short backoff; anything still unsent is handed back to the caller to keep for
//! the next flush (its buffer is bounded), so a slow or failing intake loses nothing it can keep.
use std::io::Write;
use std::time::Duration;

use flate2::write::ZlibEncoder;
use flate2::Compression;
use serde::Serialize;

use super::io_runtime::IoRuntime;
use crate::api_key::ApiKey;
use crate::telemetry::metrics::aggregation::{Series, BUCKET_SECONDS};

/// The intake path.
pub const DISTRIBUTION_POINTS_PATH: &str = "/api/v1/distribution_points";

/// How the sink talks to the intake.
#[derive(Clone, Debug)]
pub struct ApiSinkSettings {
    /// `DATADOG_HOST`, else `https://api.<DD_SITE>`.
    pub base_url: String,
    /// Bound on one attempt (connect + request + response).
    pub attempt_timeout: Duration,
    /// Attempts per flush, the first included.
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub backoff: Duration,
}

impl ApiSinkSettings {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            attempt_timeout: Duration::from_secs(3),
            max_attempts: 3,
            backoff: Duration::from_millis(50),
        }
    }
}

/// Why a flush did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ApiSendError {
    #[error("the Datadog API at {url} answered {status} after {attempts} attempt(s); the points are kept for the next flush")]
    Retryable { url: String, status: u16, attempts: u32 },
    #[error("could not reach the Datadog API at {url} after {attempts} attempt(s): {reason}; the points are kept for the next flush")]
    Unreachable { url: String, attempts: u32, reason: String },
    #[error("the Datadog API at {url} refused the points with {status} (check the API key and DD_SITE); they are dropped")]
    Refused { url: String, status: u16 },
    #[error("cannot build the HTTP client for the Datadog API: {0}")]
    Client(String),
}

impl ApiSendError {
    /// Whether the points are worth sending again later.
    pub fn keeps_points(&self) -> bool {
        matches!(self, ApiSendError::Retryable { .. } | ApiSendError::Unreachable { .. })
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    series: Vec<SeriesJson<'a>>,
}

#[derive(Serialize)]
struct SeriesJson<'a> {
    metric: &'a str,
    points: [(f64, &'a [f64]); 1],
    #[serde(rename = "type")]
    kind: &'static str,
    host: Option<()>,
    device: Option<()>,
    tags: Vec<&'a str>,
    interval: i64,
}

/// The JSON body, before compression: the point's tags, then `constant_tags` not already there.
pub fn encode_payload(series: &[Series], constant_tags: &[String]) -> Vec<u8> {
    let payload = Payload {
        series: series
            .iter()
            .map(|s| {
                let mut tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
                for tag in constant_tags {
                    if !tags.contains(&tag.as_str()) {
                        tags.push(tag);
                    }
                }
                SeriesJson {
                    metric: &s.name,
                    points: [(s.bucket as f64, &s.values)],
                    kind: "distribution",
                    host: None,
                    device: None,
                    tags,
                    interval: BUCKET_SECONDS,
                }
            })
            .collect(),
    };
    // Strings and finite floats always serialise.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// zlib ("deflate" in HTTP terms), as `Content-Encoding: deflate` means.
pub fn deflate(body: &[u8]) -> Vec<u8> {
    let mut encoder = ZlibEncoder::new(Vec::with_capacity(body.len() / 4 + 64), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// A client for the intake, built once (TLS setup is not free).
#[derive(Clone, Debug)]
pub struct DatadogApiSink {
    client: reqwest::Client,
    url: String,
    settings: ApiSinkSettings,
    io: IoRuntime,
}

impl DatadogApiSink {
    pub fn new(settings: ApiSinkSettings) -> Result<Self, ApiSendError> {
        let client = reqwest::Client::builder()
            .timeout(settings.attempt_timeout)
            .connect_timeout(settings.attempt_timeout)
            .user_agent(concat!("datadog-lambda-bootstrap/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiSendError::Client(e.to_string()))?;
        let url = format!("{}{DISTRIBUTION_POINTS_PATH}", settings.base_url.trim_end_matches('/'));
        Ok(Self {
            client,
            url,
            settings,
            io: IoRuntime::current(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends every series in one request, retrying as the module says.
    pub async fn send(&self, series: &[Series], constant_tags: &[String], api_key: &ApiKey) -> Result<(), ApiSendError> {
        if series.is_empty() {
            return Ok(());
        }
        let body = bytes::Bytes::from(deflate(&encode_payload(series, constant_tags)));
        let this = self.clone();
        let api_key = api_key.clone();
        match self.io.run(async move { this.post_with_retries(body, &api_key).await }).await {
            Ok(result) => result,
            Err(stopped) => Err(ApiSendError::Unreachable {
                url: self.url.clone(),
                attempts: 0,
                reason: stopped.to_string(),
            }),
        }
    }

    async fn post_with_retries(&self, body: bytes::Bytes, api_key: &ApiKey) -> Result<(), ApiSendError> {
        let mut backoff = self.settings.backoff;
        let attempts = self.settings.max_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            let result = self
                .client
                .post(&self.url)
                .header("DD-API-KEY", api_key.expose())
                .header("Content-Type", "application/json")
                .header("Content-Encoding", "deflate")
                .body(body.clone())
                .send()
                .await;
            match result {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status != 429 && !response.status().is_server_error() {
                        return Err(ApiSendError::Refused {
                            url: self.url.clone(),
                            status,
                        });
                    }
                    last = Some(ApiSendError::Retryable {
                        url: self.url.clone(),
                        status,
                        attempts: attempt,
                    });
                }
                Err(err) => {
                    last = Some(ApiSendError::Unreachable {
                        url: self.url.clone(),
                        attempts: attempt,
                        reason: describe(&err),
                    });
                }
            }
        }
        Err(last.unwrap_or(ApiSendError::Unreachable {
            url: self.url.clone(),
            attempts,
            reason: "no attempt made".into(),
        }))
    }
}

/// reqwest's error with its causes, without the URL's query (there is none) or any header.
fn describe(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_matches_datadogpys_shape() {
        let series = [Series {
            name: "peer.test.count".into(),
            tags: vec!["k:v".into(), "dd_lambda_layer:x".into()],
            bucket: 1795524690,
            values: vec![1.0],
        }];
        let body: serde_json::Value = serde_json::from_slice(&encode_payload(&series, &["env:prod".into(), "k:v".into()])).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"series": [{"metric": "peer.test.count", "points": [[1795524690.0, [1.0]]], "type": "distribution",
                "host": null, "device": null, "tags": ["k:v", "dd_lambda_layer:x", "env:prod"], "interval": 10}]})
        );
    }

    #[test]
    fn deflate_is_zlib() {
        use std::io::Read;
        let mut out = String::new();
        flate2::read::ZlibDecoder::new(&deflate(b"hello")[..])
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, "hello");
    }
}
