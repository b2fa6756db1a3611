//! What a handler knows about its invocation and its function, typed as AWS's `lambda_runtime`
//! crate types it.
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::abi::{BorrowedBytes, RawInvocation};
use crate::diagnostic::{Diagnostic, UNMARSHAL_ERROR_TYPE};

/// The invocation's context, handed to every handler beside its event.
///
/// The invocation fields come from the Runtime API's `/next` headers (the bootstrap passes them
/// through); [`Context::env_config`] comes from the variables Lambda sets, read once.
///
/// ```
/// use std::time::{Duration, SystemTime};
///
/// let mut context = sdk::Context::default();
/// context.request_id = "8476a536-e9f4-11e8-9739-2dfe598c3fcd".into();
/// context.deadline_ms = (SystemTime::now() + Duration::from_secs(60))
///     .duration_since(SystemTime::UNIX_EPOCH)
///     .unwrap()
///     .as_millis() as u64;
/// assert!(context.remaining_time() > Duration::from_secs(50));
/// assert!(context.xray_trace_id.is_none());
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// `Lambda-Runtime-Aws-Request-Id`: the AWS request id of this invocation.
    pub request_id: String,
    /// `Lambda-Runtime-Deadline-Ms`: when Lambda stops the invocation, in milliseconds since the
    /// Unix epoch. See [`Context::deadline`] and [`Context::remaining_time`].
    pub deadline_ms: u64,
    /// `Lambda-Runtime-Invoked-Function-Arn`: the ARN the caller invoked (may carry an alias or
    /// version qualifier).
    pub invoked_function_arn: String,
    /// `Lambda-Runtime-Trace-Id`: the X-Ray trace header (`Root=...;Parent=...;Sampled=...`).
    /// Read it here: the runtime never sets `_X_AMZN_TRACE_ID` in the process environment.
    pub xray_trace_id: Option<String>,
    /// `Lambda-Runtime-Client-Context`: set when an AWS Mobile SDK invoked the function.
    pub client_context: Option<ClientContext>,
    /// `Lambda-Runtime-Cognito-Identity`: set when the caller used Cognito identity pool
    /// credentials.
    pub identity: Option<CognitoIdentity>,
    /// `Lambda-Runtime-Aws-Tenant-Id`: the tenant of a tenant-isolated function.
    pub tenant_id: Option<String>,
    /// The function's configuration, from the environment.
    pub env_config: Arc<FunctionConfig>,
}

impl Context {
    /// The invocation's deadline.
    ///
    /// ```
    /// let mut context = sdk::Context::default();
    /// context.deadline_ms = 1_000;
    /// assert_eq!(context.deadline(), std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
    /// ```
    pub fn deadline(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.deadline_ms)
    }

    /// Time left before the deadline, zero once it has passed.
    ///
    /// ```
    /// let mut context = sdk::Context::default();
    /// context.deadline_ms = 1_000; // long gone
    /// assert_eq!(context.remaining_time(), std::time::Duration::ZERO);
    /// ```
    pub fn remaining_time(&self) -> Duration {
        self.deadline().duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
    }

    /// Builds the context of one ABI call. The client context and Cognito identity are JSON;
    /// when they do not parse, the invocation fails as an unmarshal error rather than silently
    /// losing them.
    pub(crate) fn from_raw(raw: &RawInvocation) -> Result<Self, Diagnostic> {
        Ok(Self {
            request_id: text(raw.request_id),
            deadline_ms: raw.deadline_ms,
            invoked_function_arn: text(raw.invoked_function_arn),
            xray_trace_id: optional_text(raw.xray_trace_id),
            client_context: optional_json(raw.client_context, "Lambda-Runtime-Client-Context")?,
            identity: optional_json(raw.cognito_identity, "Lambda-Runtime-Cognito-Identity")?,
            tenant_id: optional_text(raw.tenant_id),
            env_config: FunctionConfig::from_process_env(),
        })
    }
}

fn text(bytes: BorrowedBytes) -> String {
    // SAFETY: the bootstrap lends every field for the duration of the call, which is when this runs.
    String::from_utf8_lossy(unsafe { bytes.as_slice() }).into_owned()
}

fn optional_text(bytes: BorrowedBytes) -> Option<String> {
    Some(text(bytes)).filter(|value| !value.is_empty())
}

fn optional_json<T: serde::de::DeserializeOwned>(bytes: BorrowedBytes, header: &str) -> Result<Option<T>, Diagnostic> {
    // SAFETY: as in `text`.
    let slice = unsafe { bytes.as_slice() };
    if slice.is_empty() {
        return Ok(None);
    }
    serde_json::from_slice(slice)
        .map(Some)
        .map_err(|e| Diagnostic::new(UNMARSHAL_ERROR_TYPE, format!("Unable to unmarshal the {header} header: {e}")))
}

/// The function's configuration, from the variables Lambda sets in the environment. Missing or
/// malformed variables read as empty (or 0): they are informational and never worth failing for.
///
/// ```
/// let config = sdk::FunctionConfig::default();
/// assert_eq!(config.memory_size_mb, 0);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionConfig {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_VERSION` (`$LATEST` or a number).
    pub version: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, in MB.
    pub memory_size_mb: u32,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`.
    pub log_group_name: String,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub log_stream_name: String,
}

impl FunctionConfig {
    /// Reads the configuration from a variable lookup (the process environment in production).
    ///
    /// ```
    /// let config = sdk::FunctionConfig::from_lookup(|name| match name {
    ///     "AWS_LAMBDA_FUNCTION_NAME" => Some("checkout".to_string()),
    ///     "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("1024".to_string()),
    ///     _ => None,
    /// });
    /// assert_eq!(config.function_name, "checkout");
    /// assert_eq!(config.memory_size_mb, 1024);
    /// assert_eq!(config.version, "");
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).unwrap_or_default();
        Self {
            function_name: var("AWS_LAMBDA_FUNCTION_NAME"),
            version: var("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_size_mb: var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").trim().parse().unwrap_or(0),
            log_group_name: var("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name: var("AWS_LAMBDA_LOG_STREAM_NAME"),
        }
    }

    /// The configuration of this process, read from its environment on first use and shared by
    /// every invocation after (Lambda never changes these variables during a sandbox's life).
    ///
    /// ```
    /// let first = sdk::FunctionConfig::from_process_env();
    /// let again = sdk::FunctionConfig::from_process_env();
    /// assert!(std::sync::Arc::ptr_eq(&first, &again));
    /// ```
    pub fn from_process_env() -> Arc<Self> {
        static CONFIG: OnceLock<Arc<FunctionConfig>> = OnceLock::new();
        CONFIG
            .get_or_init(|| Arc::new(Self::from_lookup(|name| std::env::var(name).ok())))
            .clone()
    }
}

/// Client context sent by the AWS Mobile SDK (`Lambda-Runtime-Client-Context`).
///
/// ```
/// let context: sdk::ClientContext = serde_json::from_str(
///     r#"{"client": {"installation_id": "i-1", "app_title": "Shop"}, "custom": {"k": "v"}, "env": {"platform": "Android"}}"#,
/// ).unwrap();
/// assert_eq!(context.client.app_title, "Shop");
/// assert_eq!(context.custom["k"], "v");
/// assert_eq!(context.environment["platform"], "Android");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientContext {
    /// The mobile application that invoked the function.
    #[serde(default)]
    pub client: ClientApplication,
    /// Custom values the mobile application attached.
    #[serde(default)]
    pub custom: HashMap<String, String>,
    /// The mobile client's environment (AWS documents the key as `env`; `lambda_runtime` as
    /// `environment`: both are read).
    #[serde(default, alias = "env")]
    pub environment: HashMap<String, String>,
}

/// The mobile application in a [`ClientContext`]. Accepts camelCase and snake_case keys.
///
/// ```
/// let app: sdk::ClientApplication = serde_json::from_str(r#"{"appTitle": "Shop", "app_version_code": "42"}"#).unwrap();
/// assert_eq!((app.app_title.as_str(), app.app_version_code.as_str()), ("Shop", "42"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientApplication {
    /// The installation id of the mobile app.
    #[serde(alias = "installation_id")]
    pub installation_id: String,
    /// The app's title.
    #[serde(alias = "app_title")]
    pub app_title: String,
    /// The app's version name.
    #[serde(alias = "app_version_name")]
    pub app_version_name: String,
    /// The app's version code.
    #[serde(alias = "app_version_code")]
    pub app_version_code: String,
    /// The app's package name.
    #[serde(alias = "app_package_name")]
    pub app_package_name: String,
}

/// The Cognito identity that invoked the function (`Lambda-Runtime-Cognito-Identity`).
///
/// ```
/// let identity: sdk::CognitoIdentity =
///     serde_json::from_str(r#"{"cognitoIdentityId": "us-east-1:abc", "cognitoIdentityPoolId": "us-east-1:pool"}"#).unwrap();
/// assert_eq!(identity.identity_id, "us-east-1:abc");
/// assert_eq!(identity.identity_pool_id, "us-east-1:pool");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CognitoIdentity {
    /// The caller's identity id.
    #[serde(alias = "cognitoIdentityId", alias = "identity_id")]
    pub identity_id: String,
    /// The identity pool the caller belongs to.
    #[serde(alias = "cognitoIdentityPoolId", alias = "identity_pool_id")]
    pub identity_pool_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(fields: &'a [(&str, &'a str)]) -> RawInvocation {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(BorrowedBytes::empty(), |(_, v)| BorrowedBytes::from_slice(v.as_bytes()))
        };
        RawInvocation {
            event: BorrowedBytes::empty(),
            request_id: get("request_id"),
            deadline_ms: 1_700_000_000_123,
            invoked_function_arn: get("arn"),
            xray_trace_id: get("trace"),
            client_context: get("client"),
            cognito_identity: get("cognito"),
            tenant_id: get("tenant"),
        }
    }

    #[test]
    fn every_header_lands_in_its_field() {
        let fields = [
            ("request_id", "req-1"),
            ("arn", "arn:aws:lambda:us-east-1:123456789012:function:f:prod"),
            (
                "trace",
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
            (
                "client",
                r#"{"client":{"installation_id":"inst"},"custom":{"a":"b"},"env":{"e":"f"}}"#,
            ),
            ("cognito", r#"{"cognitoIdentityId":"id-1","cognitoIdentityPoolId":"pool-1"}"#),
            ("tenant", "tenant-7"),
        ];
        let context = Context::from_raw(&raw(&fields)).unwrap();
        assert_eq!(context.request_id, "req-1");
        assert_eq!(context.deadline_ms, 1_700_000_000_123);
        assert_eq!(
            context.deadline(),
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        assert_eq!(context.invoked_function_arn, fields[1].1);
        assert_eq!(context.xray_trace_id.as_deref(), Some(fields[2].1));
        let client = context.client_context.unwrap();
        assert_eq!(client.client.installation_id, "inst");
        assert_eq!(client.custom["a"], "b");
        assert_eq!(client.environment["e"], "f");
        assert_eq!(
            context.identity,
            Some(CognitoIdentity {
                identity_id: "id-1".into(),
                identity_pool_id: "pool-1".into()
            })
        );
        assert_eq!(context.tenant_id.as_deref(), Some("tenant-7"));
    }

    #[test]
    fn absent_headers_are_none() {
        let context = Context::from_raw(&raw(&[("request_id", "r")])).unwrap();
        assert_eq!(context.xray_trace_id, None);
        assert_eq!(context.client_context, None);
        assert_eq!(context.identity, None);
        assert_eq!(context.tenant_id, None);
        assert_eq!(context.invoked_function_arn, "");
    }

    #[test]
    fn malformed_client_context_is_an_unmarshal_error() {
        let error = Context::from_raw(&raw(&[("client", "{not json")])).unwrap_err();
        assert_eq!(error.error_type, "Runtime.UnmarshalError");
        assert!(
            error.error_message.contains("Lambda-Runtime-Client-Context"),
            "{}",
            error.error_message
        );
    }

    #[test]
    fn bad_memory_size_reads_as_zero() {
        let config = FunctionConfig::from_lookup(|name| (name == "AWS_LAMBDA_FUNCTION_MEMORY_SIZE").then(|| "lots".to_string()));
        assert_eq!(config.memory_size_mb, 0);
    }
}
