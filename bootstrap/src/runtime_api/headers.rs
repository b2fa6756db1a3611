use http::HeaderMap;

/// Header names of the Runtime API, lower-case as hyper hands them over.
pub mod header_names {
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    pub const CLIENT_CONTEXT: &str = "lambda-runtime-client-context";
    pub const COGNITO_IDENTITY: &str = "lambda-runtime-cognito-identity";
    pub const TENANT_ID: &str = "lambda-runtime-aws-tenant-id";
    /// Lambda Managed Instances: sent on `/next`, echoed on `/response` and `/error`.
    pub const INVOCATION_ID: &str = "lambda-runtime-invocation-id";
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
    pub const FUNCTION_ERROR_BODY: &str = "lambda-runtime-function-error-body";
    pub const RESPONSE_MODE: &str = "lambda-runtime-function-response-mode";
}

/// Everything `/next` says about one invocation besides its event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InvocationContext {
    pub request_id: String,
    /// Milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    pub invoked_function_arn: String,
    pub xray_trace_id: Option<String>,
    /// Raw JSON, checked to parse.
    pub client_context: Option<String>,
    /// Raw JSON, checked to parse.
    pub cognito_identity: Option<String>,
    pub tenant_id: Option<String>,
    pub invocation_id: Option<String>,
}

/// A `/next` answer that cannot be served as it is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the Runtime API's /next answer has no Lambda-Runtime-Aws-Request-Id header, so it cannot be answered; skipping it")]
    MissingRequestId,
    #[error("Lambda-Runtime-Deadline-Ms is {value:?}, not a number of milliseconds since the epoch")]
    InvalidDeadline { request_id: String, value: String },
    #[error("{header} is not valid JSON: {reason}")]
    InvalidJson {
        request_id: String,
        header: &'static str,
        reason: String,
    },
    #[error("{header} is not valid UTF-8 text")]
    NotText { request_id: String, header: &'static str },
}

impl HeaderError {
    /// The request id the bad answer carried, to report the error against it.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            HeaderError::MissingRequestId => None,
            HeaderError::InvalidDeadline { request_id, .. }
            | HeaderError::InvalidJson { request_id, .. }
            | HeaderError::NotText { request_id, .. } => Some(request_id),
        }
    }

    /// The `errorType` reported to the Runtime API for this invocation.
    pub fn error_type(&self) -> &'static str {
        "Runtime.InvalidInvocationHeader"
    }
}

impl InvocationContext {
    /// Reads every header AWS documents on `/next`.
    ///
    /// A missing deadline is taken as "no deadline known" (0) rather than an error, since some
    /// emulators omit it; a deadline that is present but not a number is an error.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, HeaderError> {
        use header_names::{
            CLIENT_CONTEXT, COGNITO_IDENTITY, DEADLINE_MS, INVOCATION_ID, INVOKED_FUNCTION_ARN, REQUEST_ID, TENANT_ID, TRACE_ID,
        };
        let request_id = match text(headers, REQUEST_ID) {
            Ok(Some(id)) if !id.trim().is_empty() => id,
            _ => return Err(HeaderError::MissingRequestId),
        };
        let not_text = |header: &'static str| HeaderError::NotText {
            request_id: request_id.clone(),
            header,
        };
        let deadline_ms = match text(headers, DEADLINE_MS).map_err(|_| not_text("Lambda-Runtime-Deadline-Ms"))? {
            None => 0,
            Some(value) => value.trim().parse::<u64>().map_err(|_| HeaderError::InvalidDeadline {
                request_id: request_id.clone(),
                value,
            })?,
        };
        let json = |name: &'static str, label: &'static str| -> Result<Option<String>, HeaderError> {
            let Some(value) = text(headers, name).map_err(|_| not_text(label))? else {
                return Ok(None);
            };
            if value.is_empty() {
                return Ok(None);
            }
            serde_json::from_str::<serde::de::IgnoredAny>(&value).map_err(|e| HeaderError::InvalidJson {
                request_id: request_id.clone(),
                header: label,
                reason: e.to_string(),
            })?;
            Ok(Some(value))
        };
        let client_context = json(CLIENT_CONTEXT, "Lambda-Runtime-Client-Context")?;
        let cognito_identity = json(COGNITO_IDENTITY, "Lambda-Runtime-Cognito-Identity")?;
        let optional = |name: &'static str, label: &'static str| -> Result<Option<String>, HeaderError> {
            Ok(text(headers, name).map_err(|_| not_text(label))?.filter(|v| !v.is_empty()))
        };
        Ok(Self {
            deadline_ms,
            invoked_function_arn: optional(INVOKED_FUNCTION_ARN, "Lambda-Runtime-Invoked-Function-Arn")?.unwrap_or_default(),
            xray_trace_id: optional(TRACE_ID, "Lambda-Runtime-Trace-Id")?,
            client_context,
            cognito_identity,
            tenant_id: optional(TENANT_ID, "Lambda-Runtime-Aws-Tenant-Id")?,
            invocation_id: optional(INVOCATION_ID, "Lambda-Runtime-Invocation-Id")?,
            request_id,
        })
    }

    /// Milliseconds left before the deadline, as seen from `now_ms` (epoch ms).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.deadline_ms.saturating_sub(now_ms)
    }
}

struct NotUtf8;

fn text(headers: &HeaderMap, name: &str) -> Result<Option<String>, NotUtf8> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => std::str::from_utf8(value.as_bytes())
            .map(|s| Some(s.to_owned()))
            .map_err(|_| NotUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn reads_every_documented_header() {
        let map = headers(&[
            (header_names::REQUEST_ID, "req-1"),
            (header_names::DEADLINE_MS, "1700000000123"),
            (
                header_names::INVOKED_FUNCTION_ARN,
                "arn:aws:lambda:us-east-1:123456789012:function:f",
            ),
            (
                header_names::TRACE_ID,
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            ),
            (header_names::CLIENT_CONTEXT, r#"{"custom":{"a":"b"}}"#),
            (header_names::COGNITO_IDENTITY, r#"{"identityId":"i","identityPoolId":"p"}"#),
            (header_names::TENANT_ID, "tenant-7"),
            (header_names::INVOCATION_ID, "inv-9"),
        ]);
        let ctx = InvocationContext::from_headers(&map).unwrap();
        assert_eq!(ctx.request_id, "req-1");
        assert_eq!(ctx.deadline_ms, 1_700_000_000_123);
        assert_eq!(ctx.invoked_function_arn, "arn:aws:lambda:us-east-1:123456789012:function:f");
        assert!(ctx.xray_trace_id.as_deref().unwrap().starts_with("Root=1-5759e988"));
        assert_eq!(ctx.client_context.as_deref(), Some(r#"{"custom":{"a":"b"}}"#));
        assert_eq!(ctx.cognito_identity.as_deref(), Some(r#"{"identityId":"i","identityPoolId":"p"}"#));
        assert_eq!(ctx.tenant_id.as_deref(), Some("tenant-7"));
        assert_eq!(ctx.invocation_id.as_deref(), Some("inv-9"));
        assert_eq!(ctx.remaining_ms(1_700_000_000_000), 123);
        assert_eq!(ctx.remaining_ms(1_800_000_000_000), 0);
    }

    #[test]
    fn missing_request_id_is_an_error_without_an_id() {
        let err = InvocationContext::from_headers(&headers(&[(header_names::DEADLINE_MS, "1")])).unwrap_err();
        assert_eq!(err, HeaderError::MissingRequestId);
        assert_eq!(err.request_id(), None);
    }

    #[test]
    fn non_numeric_deadline_is_reported_against_the_request() {
        let err =
            InvocationContext::from_headers(&headers(&[(header_names::REQUEST_ID, "r"), (header_names::DEADLINE_MS, "soon")])).unwrap_err();
        assert_eq!(err.request_id(), Some("r"));
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }

    #[test]
    fn non_json_client_context_is_reported_against_the_request() {
        let err = InvocationContext::from_headers(&headers(&[
            (header_names::REQUEST_ID, "r"),
            (header_names::CLIENT_CONTEXT, "{nope"),
        ]))
        .unwrap_err();
        assert_eq!(err.request_id(), Some("r"));
        assert!(err.to_string().contains("Lambda-Runtime-Client-Context"), "{err}");
    }

    #[test]
    fn missing_deadline_is_tolerated() {
        let ctx = InvocationContext::from_headers(&headers(&[(header_names::REQUEST_ID, "r")])).unwrap();
        assert_eq!(ctx.deadline_ms, 0);
        assert_eq!(ctx.invoked_function_arn, "");
    }
}
