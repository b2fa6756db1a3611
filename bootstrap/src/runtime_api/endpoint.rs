use std::fmt;

/// Where the Runtime API lives: `AWS_LAMBDA_RUNTIME_API` as Lambda sets it (`host:port`) or as
/// cargo-lambda sets it (`http://host:port/.rt/fn`, a URL with a path prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    authority: String,
    path_prefix: String,
}

/// `AWS_LAMBDA_RUNTIME_API` could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("AWS_LAMBDA_RUNTIME_API is not set: the bootstrap must run under Lambda or a Runtime API emulator (try `lambda-emulator -- bootstrap`)")]
    Missing,
    #[error("AWS_LAMBDA_RUNTIME_API={0:?} is not `host:port` nor `http://host:port[/prefix]`")]
    Invalid(String),
    #[error("AWS_LAMBDA_RUNTIME_API={0:?} uses https, but the Runtime API is plain HTTP on the sandbox's loopback")]
    Https(String),
}

impl Endpoint {
    /// Parses the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn parse(value: &str) -> Result<Self, EndpointError> {
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(EndpointError::Missing);
        }
        if trimmed.starts_with("https://") {
            return Err(EndpointError::Https(value.to_owned()));
        }
        let rest = trimmed.strip_prefix("http://").unwrap_or(trimmed);
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.is_empty() || authority.contains(char::is_whitespace) {
            return Err(EndpointError::Invalid(value.to_owned()));
        }
        // The authority must parse as part of a URI (host with optional port).
        if format!("http://{authority}/").parse::<http::Uri>().is_err() {
            return Err(EndpointError::Invalid(value.to_owned()));
        }
        Ok(Self {
            authority: authority.to_owned(),
            path_prefix: path.trim_end_matches('/').to_owned(),
        })
    }

    /// `host:port` of the API.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The full URI of a Runtime API path such as `/2018-06-01/runtime/invocation/next`.
    pub fn uri(&self, path: &str) -> String {
        format!("http://{}{}{}", self.authority, self.path_prefix, path)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_as_lambda_sets_it() {
        let endpoint = Endpoint::parse("127.0.0.1:9001").unwrap();
        assert_eq!(
            endpoint.uri("/2018-06-01/runtime/invocation/next"),
            "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next"
        );
    }

    #[test]
    fn url_with_path_prefix_as_cargo_lambda_sets_it() {
        let endpoint = Endpoint::parse("http://127.0.0.1:9000/.rt/my-fn/").unwrap();
        assert_eq!(endpoint.authority(), "127.0.0.1:9000");
        assert_eq!(
            endpoint.uri("/2018-06-01/runtime/init/error"),
            "http://127.0.0.1:9000/.rt/my-fn/2018-06-01/runtime/init/error"
        );
    }

    #[test]
    fn rejects_empty_https_and_garbage() {
        assert_eq!(Endpoint::parse(""), Err(EndpointError::Missing));
        assert!(matches!(Endpoint::parse("https://x:1"), Err(EndpointError::Https(_))));
        assert!(matches!(Endpoint::parse("http:///path"), Err(EndpointError::Invalid(_))));
        assert!(matches!(Endpoint::parse("a b:1"), Err(EndpointError::Invalid(_))));
    }
}
