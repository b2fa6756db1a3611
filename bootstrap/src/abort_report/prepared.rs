//! What the `SIGABRT` handler needs and cannot build itself (it must not allocate, resolve a
//! name or read the configuration): the Runtime API's socket address, the fixed parts of the
//! `/error` request, and which metric lines this transport prints. Built once, at start.
use std::net::{SocketAddr, ToSocketAddrs};

use crate::runtime_api::{Endpoint, API_VERSION};
use crate::telemetry::metrics::enhanced::{EnhancedMetric, Reason};
use crate::telemetry::metrics::{MetricsConfig, Transport};

/// The `User-Agent` of the emergency `/error`, the one the Runtime API client sends.
const USER_AGENT: &str = concat!("datadog-lambda-bootstrap/", env!("CARGO_PKG_VERSION"));

/// Which enhanced metrics the bootstrap prints for an invocation that aborted, by the routing
/// table of `telemetry::metrics::enhanced` (the error type tells the Extension of an OOM).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineSet {
    pub invocations: bool,
    pub errors: bool,
    pub out_of_memory: bool,
}

impl LineSet {
    /// As the metrics processor decides for an answered invocation: printed on stdout (the
    /// Forwarder's lines, which the seed prints in API mode too) unless the Extension emits
    /// them itself; nothing with `DD_ENHANCED_METRICS=false`.
    pub fn for_config(config: &MetricsConfig) -> Self {
        if !config.enhanced_metrics || config.transport == Transport::Extension {
            return Self::default();
        }
        let sent = |metric: EnhancedMetric, reason| metric.sent_by_bootstrap(config.transport, reason);
        Self {
            invocations: sent(EnhancedMetric::Invocations, Reason::Plain),
            errors: sent(EnhancedMetric::Errors, Reason::Plain),
            // Reported as `Runtime.OutOfMemory`, the error type Datadog's Extension counts.
            out_of_memory: sent(EnhancedMetric::OutOfMemory, Reason::OomSeenByExtension),
        }
    }

    pub fn any(&self) -> bool {
        self.invocations || self.errors || self.out_of_memory
    }
}

/// Everything prepared for the signal handler.
pub struct Prepared {
    address: libc::sockaddr_storage,
    address_len: libc::socklen_t,
    family: libc::c_int,
    /// `POST <prefix>/2018-06-01/runtime/invocation/`, the request id follows.
    pub request_start: Vec<u8>,
    /// `POST <prefix>/2018-06-01/runtime/init/error HTTP/1.1` and its CRLF.
    pub init_error_line: Vec<u8>,
    /// The headers that do not change, each ending in CRLF.
    pub fixed_headers: Vec<u8>,
    pub lines: LineSet,
}

// SAFETY: plain bytes (the socket address is a C struct of integers), never mutated after start.
unsafe impl Sync for Prepared {}
// SAFETY: as above.
unsafe impl Send for Prepared {}

/// The Runtime API's address cannot be used from the signal handler.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("cannot resolve the Runtime API's address {authority}: {reason}")]
    Unresolved { authority: String, reason: String },
}

impl Prepared {
    pub fn new(endpoint: &Endpoint, lines: LineSet) -> Result<Self, PrepareError> {
        let authority = endpoint.authority();
        let unresolved = |reason: String| PrepareError::Unresolved {
            authority: authority.to_owned(),
            reason,
        };
        // `127.0.0.1:9001` on Lambda; a name (`localhost:9001`) is resolved now, once.
        let addresses: Vec<SocketAddr> = authority
            .to_socket_addrs()
            .or_else(|_| format!("{authority}:80").to_socket_addrs())
            .map_err(|e| unresolved(e.to_string()))?
            .collect();
        let address = addresses
            .iter()
            .find(|a| a.is_ipv4())
            .or(addresses.first())
            .copied()
            .ok_or_else(|| unresolved("no address".to_owned()))?;
        let (address, address_len, family) = to_sockaddr(address);
        // The endpoint's path prefix (cargo-lambda's `http://host:port/.rt/fn`), if any.
        let base = endpoint.uri("");
        let prefix = base.strip_prefix(&format!("http://{authority}")).unwrap_or_default();
        let request_start = format!("POST {prefix}/{API_VERSION}/runtime/invocation/").into_bytes();
        let init_error_line = format!("POST {prefix}/{API_VERSION}/runtime/init/error HTTP/1.1\r\n").into_bytes();
        let fixed_headers =
            format!("Host: {authority}\r\nUser-Agent: {USER_AGENT}\r\nContent-Type: application/json\r\nConnection: close\r\n")
                .into_bytes();
        Ok(Self {
            address,
            address_len,
            family,
            request_start,
            init_error_line,
            fixed_headers,
            lines,
        })
    }

    pub fn family(&self) -> libc::c_int {
        self.family
    }

    pub fn socket_address(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        (std::ptr::from_ref(&self.address).cast(), self.address_len)
    }
}

fn to_sockaddr(address: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t, libc::c_int) {
    // SAFETY: sockaddr_storage is plain integers; all-zero is a valid (empty) value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match address {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in>(), sin) };
            (storage, size_of::<libc::sockaddr_in>() as libc::socklen_t, libc::AF_INET)
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr { s6_addr: v6.ip().octets() },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::from_mut(&mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            (storage, size_of::<libc::sockaddr_in6>() as libc::socklen_t, libc::AF_INET6)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn config(vars: &[(&str, &str)], extension: bool) -> MetricsConfig {
        let env = Environment::from_pairs(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("datadog-agent");
        if extension {
            std::fs::write(&path, b"").unwrap();
        }
        MetricsConfig::from_env_with_extension_path(&env, &path)
    }

    #[test]
    fn lines_follow_the_routing_table() {
        let all = LineSet {
            invocations: true,
            errors: true,
            out_of_memory: true,
        };
        assert_eq!(LineSet::for_config(&config(&[("DD_FLUSH_TO_LOG", "true")], false)), all);
        assert_eq!(LineSet::for_config(&config(&[], false)), all, "API mode prints enhanced lines too");
        assert!(!LineSet::for_config(&config(&[], true)).any(), "the Extension counts them itself");
        assert!(!LineSet::for_config(&config(&[("DD_FLUSH_TO_LOG", "true"), ("DD_ENHANCED_METRICS", "false")], false)).any());
    }

    #[test]
    fn request_parts_with_and_without_a_path_prefix() {
        let lambda = Prepared::new(&Endpoint::parse("127.0.0.1:9001").unwrap(), LineSet::default()).unwrap();
        assert_eq!(lambda.request_start, b"POST /2018-06-01/runtime/invocation/");
        assert_eq!(lambda.family(), libc::AF_INET);
        let text = String::from_utf8(lambda.fixed_headers.clone()).unwrap();
        assert!(
            text.starts_with("Host: 127.0.0.1:9001\r\nUser-Agent: datadog-lambda-bootstrap/"),
            "{text}"
        );
        assert!(text.ends_with("Content-Type: application/json\r\nConnection: close\r\n"), "{text}");
        let cargo_lambda = Prepared::new(&Endpoint::parse("http://[::1]:9000/.rt/fn").unwrap(), LineSet::default()).unwrap();
        assert_eq!(cargo_lambda.request_start, b"POST /.rt/fn/2018-06-01/runtime/invocation/");
        assert_eq!(
            cargo_lambda.init_error_line,
            b"POST /.rt/fn/2018-06-01/runtime/init/error HTTP/1.1\r\n"
        );
        assert_eq!(cargo_lambda.family(), libc::AF_INET6);
    }
}
