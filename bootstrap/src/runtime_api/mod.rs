//! The Lambda Runtime API, as a client: one module per concern (where the API lives, what
//! `/next` carries, what an error body looks like, the HTTP calls themselves).
pub mod client;
mod endpoint;
mod error_body;
pub mod extensions;
mod headers;

pub use client::{BodySent, ClientError, NextEvent, RuntimeApiClient};
pub use endpoint::{Endpoint, EndpointError};
pub use error_body::ErrorBody;
pub use headers::{header_names, HeaderError, InvocationContext};

/// The Runtime API's version prefix on every path.
pub const API_VERSION: &str = "2018-06-01";

/// The most a buffered `/response` may carry on Lambda (6 MiB).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
