//! The Datadog API key, resolved once at init as Datadog's Python library resolves it (§4):
//! `DD_API_KEY_SECRET_ARN` (Secrets Manager), then `DD_API_KEY_SSM_NAME` (SSM, decrypted),
//! then `DD_KMS_API_KEY` (KMS, without then with the `LambdaFunctionName` encryption context),
//! then `DD_API_KEY` (or `DATADOG_API_KEY` when `DD_API_KEY` is unset). In FIPS mode the AWS
//! calls use the `-fips` endpoints the seed uses.
//!
//! The key never reaches a log line, an error or `Debug` output: [`ApiKey`] prints redacted and
//! has no `Display`; errors name the variable and the AWS error code only.
//!
//! AWS settings come from the captured [`Environment`] (region, the credentials Lambda puts in
//! the environment, `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`), so the whole lookup is
//! reproducible from one environment snapshot.
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use base64::Engine;

use crate::config::Environment;

mod http_client;
pub use http_client::aws_https_client;

/// A Datadog API key.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into().trim().to_owned())
    }

    /// The key itself, for the `DD-API-KEY` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where the key comes from, in the seed's precedence.
#[derive(Clone, PartialEq, Eq)]
pub enum ApiKeySource {
    SecretsManager { arn: String },
    Ssm { name: String },
    Kms { ciphertext_base64: String },
    Plain { variable: &'static str, key: ApiKey },
}

impl std::fmt::Debug for ApiKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.variable())
    }
}

impl ApiKeySource {
    /// The variable the key was configured with, for messages.
    pub fn variable(&self) -> &'static str {
        match self {
            ApiKeySource::SecretsManager { .. } => "DD_API_KEY_SECRET_ARN",
            ApiKeySource::Ssm { .. } => "DD_API_KEY_SSM_NAME",
            ApiKeySource::Kms { .. } => "DD_KMS_API_KEY",
            ApiKeySource::Plain { variable, .. } => variable,
        }
    }
}

/// Everything the lookup needs, read from the environment once.
#[derive(Clone)]
pub struct ApiKeySettings {
    pub source: Option<ApiKeySource>,
    pub region: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, or `function` (the seed's default) for the KMS context.
    pub function_name: String,
    pub fips_mode: bool,
    env: Environment,
}

impl std::fmt::Debug for ApiKeySettings {
    // The captured environment holds the key itself (DD_API_KEY) and AWS credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeySettings")
            .field("source", &self.source)
            .field("region", &self.region)
            .field("function_name", &self.function_name)
            .field("fips_mode", &self.fips_mode)
            .finish_non_exhaustive()
    }
}

impl ApiKeySettings {
    pub fn from_env(env: &Environment, fips_mode: bool) -> Self {
        let source = if let Some(arn) = env.non_empty("DD_API_KEY_SECRET_ARN") {
            Some(ApiKeySource::SecretsManager { arn: arn.to_owned() })
        } else if let Some(name) = env.non_empty("DD_API_KEY_SSM_NAME") {
            Some(ApiKeySource::Ssm { name: name.to_owned() })
        } else if let Some(ciphertext) = env.non_empty("DD_KMS_API_KEY") {
            Some(ApiKeySource::Kms {
                ciphertext_base64: ciphertext.to_owned(),
            })
        } else if let Some(key) = env.get("DD_API_KEY") {
            // A set but empty DD_API_KEY wins over DATADOG_API_KEY, as in the seed.
            Some(ApiKeySource::Plain {
                variable: "DD_API_KEY",
                key: ApiKey::new(key),
            })
        } else {
            env.get("DATADOG_API_KEY").map(|key| ApiKeySource::Plain {
                variable: "DATADOG_API_KEY",
                key: ApiKey::new(key),
            })
        };
        Self {
            source,
            region: env
                .non_empty("AWS_REGION")
                .or_else(|| env.non_empty("AWS_DEFAULT_REGION"))
                .unwrap_or_default()
                .to_owned(),
            function_name: env.non_empty("AWS_LAMBDA_FUNCTION_NAME").unwrap_or("function").to_owned(),
            fips_mode,
            env: env.clone(),
        }
    }
}

/// Why no key could be had. Messages name the variable and the AWS error code, never the key.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    #[error("no Datadog API key configured: set DD_API_KEY, DD_KMS_API_KEY, DD_API_KEY_SECRET_ARN or DD_API_KEY_SSM_NAME")]
    NotConfigured,
    #[error("{variable} is set but empty")]
    Empty { variable: &'static str },
    #[error("DD_API_KEY_SECRET_ARN is not a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:secret:<name>): {arn:?}")]
    MalformedSecretArn { arn: String },
    #[error("DD_KMS_API_KEY is not valid base64 ciphertext: {reason}")]
    InvalidBase64 { reason: String },
    #[error("{variable}: {service} {operation} failed with {code}: {message}")]
    Aws {
        variable: &'static str,
        service: &'static str,
        operation: &'static str,
        code: String,
        message: String,
    },
    #[error("{variable}: the value {service} returned is not UTF-8 text")]
    NotText { variable: &'static str, service: &'static str },
    #[error("{variable}: {service} returned no value")]
    Missing { variable: &'static str, service: &'static str },
}

impl ApiKeyError {
    /// The AWS error code, when AWS answered with one.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            ApiKeyError::Aws { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// How long one AWS call may take, retries included, so a stuck endpoint cannot hold up init.
const AWS_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves the key. Run it at init, concurrently with the handler's init.
pub async fn fetch(settings: &ApiKeySettings) -> Result<ApiKey, ApiKeyError> {
    let source = settings.source.as_ref().ok_or(ApiKeyError::NotConfigured)?;
    let key = match source {
        ApiKeySource::Plain { key, .. } => key.clone(),
        ApiKeySource::SecretsManager { arn } => from_secrets_manager(settings, arn).await?,
        ApiKeySource::Ssm { name } => from_ssm(settings, name).await?,
        ApiKeySource::Kms { ciphertext_base64 } => from_kms(settings, ciphertext_base64).await?,
    };
    if key.expose().is_empty() {
        return Err(ApiKeyError::Empty {
            variable: source.variable(),
        });
    }
    Ok(key)
}

/// The SDK configuration for one service: region, the environment's credentials when it has
/// them (Lambda always does), and the endpoint from `AWS_ENDPOINT_URL_<SERVICE>`,
/// `AWS_ENDPOINT_URL`, or the FIPS endpoint, in that order.
async fn sdk_config(settings: &ApiKeySettings, region: &str, service_env: &str, fips_endpoint: Option<String>) -> SdkConfig {
    let env = &settings.env;
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(aws_https_client())
        .region(Region::new(region.to_owned()))
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .operation_timeout(AWS_OPERATION_TIMEOUT)
                .build(),
        );
    if let (Some(id), Some(secret)) = (env.non_empty("AWS_ACCESS_KEY_ID"), env.non_empty("AWS_SECRET_ACCESS_KEY")) {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            id,
            secret,
            env.non_empty("AWS_SESSION_TOKEN").map(str::to_owned),
            None,
            "lambda-environment",
        ));
    }
    let endpoint = env
        .non_empty(&format!("AWS_ENDPOINT_URL_{service_env}"))
        .or_else(|| env.non_empty("AWS_ENDPOINT_URL"))
        .map(str::to_owned)
        .or(fips_endpoint);
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

fn aws_error<E>(
    variable: &'static str,
    service: &'static str,
    operation: &'static str,
    err: &aws_sdk_kms::error::SdkError<E>,
) -> ApiKeyError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_kms::error::SdkError;
    let (code, message) = match err {
        SdkError::ServiceError(service_err) => {
            let e = service_err.err();
            (e.code().unwrap_or("Unknown").to_owned(), e.message().unwrap_or_default().to_owned())
        }
        SdkError::TimeoutError(_) => ("Timeout".to_owned(), "the call did not finish in time".to_owned()),
        SdkError::DispatchFailure(_) => ("ConnectionError".to_owned(), short(err)),
        other => ("RequestError".to_owned(), short(other)),
    };
    ApiKeyError::Aws {
        variable,
        service,
        operation,
        code,
        message,
    }
}

/// The SDK's own description of a transport error, bounded in length.
fn short(err: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut current: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = current {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&e.to_string());
        current = e.source();
    }
    text.chars().take(300).collect()
}

async fn from_secrets_manager(settings: &ApiKeySettings, arn: &str) -> Result<ApiKey, ApiKeyError> {
    const VAR: &str = "DD_API_KEY_SECRET_ARN";
    let parts: Vec<&str> = arn.split(':').collect();
    let region = match parts.as_slice() {
        ["arn", _, "secretsmanager", region, ..] if !region.is_empty() && parts.len() >= 7 => *region,
        _ => return Err(ApiKeyError::MalformedSecretArn { arn: arn.to_owned() }),
    };
    let fips = settings
        .fips_mode
        .then(|| format!("https://secretsmanager-fips.{region}.amazonaws.com"));
    let config = sdk_config(settings, region, "SECRETS_MANAGER", fips).await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| aws_error(VAR, "Secrets Manager", "GetSecretValue", &e))?;
    let secret = output.secret_string().ok_or(ApiKeyError::Missing {
        variable: VAR,
        service: "Secrets Manager",
    })?;
    Ok(ApiKey::new(secret))
}

/// Commercial regions with an SSM FIPS endpoint; GovCloud's default endpoints are FIPS already.
const SSM_FIPS_REGIONS: &[&str] = &["us-east-1", "us-east-2", "us-west-1", "us-west-2", "ca-central-1", "ca-west-1"];

/// The FIPS endpoint SSM uses in `region`, if any (the seed's rule).
pub fn ssm_fips_endpoint(region: &str) -> Option<String> {
    if SSM_FIPS_REGIONS.contains(&region) {
        Some(format!("https://ssm-fips.{region}.amazonaws.com"))
    } else {
        if !region.starts_with("us-gov-") {
            tracing::warn!("FIPS mode is enabled, but '{region}' does not support SSM FIPS endpoints. Using standard SSM endpoint.");
        }
        None
    }
}

async fn from_ssm(settings: &ApiKeySettings, name: &str) -> Result<ApiKey, ApiKeyError> {
    const VAR: &str = "DD_API_KEY_SSM_NAME";
    let fips = if settings.fips_mode {
        ssm_fips_endpoint(&settings.region)
    } else {
        None
    };
    let config = sdk_config(settings, &settings.region, "SSM", fips).await;
    let client = aws_sdk_ssm::Client::new(&config);
    let output = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| aws_error(VAR, "SSM", "GetParameter", &e))?;
    let value = output.parameter().and_then(|p| p.value()).ok_or(ApiKeyError::Missing {
        variable: VAR,
        service: "SSM",
    })?;
    Ok(ApiKey::new(value))
}

async fn from_kms(settings: &ApiKeySettings, ciphertext_base64: &str) -> Result<ApiKey, ApiKeyError> {
    const VAR: &str = "DD_KMS_API_KEY";
    let ciphertext = base64::engine::general_purpose::STANDARD
        .decode(ciphertext_base64.trim())
        .map_err(|e| ApiKeyError::InvalidBase64 { reason: e.to_string() })?;
    let fips = settings
        .fips_mode
        .then(|| format!("https://kms-fips.{}.amazonaws.com", settings.region));
    let config = sdk_config(settings, &settings.region, "KMS", fips).await;
    let client = aws_sdk_kms::Client::new(&config);
    let blob = aws_sdk_kms::primitives::Blob::new(ciphertext);
    // Keys encrypted with the CLI have no context; keys encrypted in the Lambda console carry
    // the function name. The seed tries without first.
    let output = match client.decrypt().ciphertext_blob(blob.clone()).send().await {
        Ok(output) => output,
        Err(first) => {
            tracing::debug!(
                "KMS Decrypt without encryption context failed ({}), retrying with LambdaFunctionName",
                aws_error(VAR, "KMS", "Decrypt", &first)
            );
            client
                .decrypt()
                .ciphertext_blob(blob)
                .encryption_context("LambdaFunctionName", &settings.function_name)
                .send()
                .await
                .map_err(|e| aws_error(VAR, "KMS", "Decrypt", &e))?
        }
    };
    let plaintext = output.plaintext().ok_or(ApiKeyError::Missing {
        variable: VAR,
        service: "KMS",
    })?;
    let text = std::str::from_utf8(plaintext.as_ref()).map_err(|_| ApiKeyError::NotText {
        variable: VAR,
        service: "KMS",
    })?;
    Ok(ApiKey::new(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> ApiKeySettings {
        ApiKeySettings::from_env(&Environment::from_pairs(pairs.iter().copied()), false)
    }

    #[test]
    fn key_never_prints() {
        let key = ApiKey::new("0123456789abcdef0123456789abcdef");
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        let s = settings(&[("DD_API_KEY", "0123456789abcdef0123456789abcdef")]);
        assert!(!format!("{s:?}").contains("0123456789abcdef"), "{s:?}");
    }

    #[test]
    fn precedence_is_the_seeds() {
        let all = [
            ("DD_API_KEY_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:1:secret:k"),
            ("DD_API_KEY_SSM_NAME", "/dd/key"),
            ("DD_KMS_API_KEY", "AAAA"),
            ("DD_API_KEY", "plain"),
            ("DATADOG_API_KEY", "legacy"),
        ];
        let variables: Vec<&str> = (0..all.len()).map(|i| settings(&all[i..]).source.unwrap().variable()).collect();
        assert_eq!(
            variables,
            [
                "DD_API_KEY_SECRET_ARN",
                "DD_API_KEY_SSM_NAME",
                "DD_KMS_API_KEY",
                "DD_API_KEY",
                "DATADOG_API_KEY"
            ]
        );
        assert!(settings(&[]).source.is_none());
        // An empty DD_API_KEY still wins over DATADOG_API_KEY.
        assert_eq!(
            settings(&[("DD_API_KEY", ""), ("DATADOG_API_KEY", "legacy")])
                .source
                .unwrap()
                .variable(),
            "DD_API_KEY"
        );
    }

    #[tokio::test]
    async fn plain_keys_and_empty_ones() {
        assert_eq!(fetch(&settings(&[("DD_API_KEY", " k ")])).await.unwrap().expose(), "k");
        assert!(matches!(
            fetch(&settings(&[("DD_API_KEY", "")])).await,
            Err(ApiKeyError::Empty { variable: "DD_API_KEY" })
        ));
        assert!(matches!(fetch(&settings(&[])).await, Err(ApiKeyError::NotConfigured)));
    }

    #[tokio::test]
    async fn malformed_arn_and_bad_base64_fail_before_any_call() {
        let err = fetch(&settings(&[("DD_API_KEY_SECRET_ARN", "not-an-arn")])).await.unwrap_err();
        assert!(matches!(err, ApiKeyError::MalformedSecretArn { .. }), "{err}");
        let err = fetch(&settings(&[("DD_KMS_API_KEY", "!!!")])).await.unwrap_err();
        assert!(err.to_string().starts_with("DD_KMS_API_KEY is not valid base64"), "{err}");
    }

    #[test]
    fn ssm_fips_endpoints() {
        assert_eq!(
            ssm_fips_endpoint("us-east-1").as_deref(),
            Some("https://ssm-fips.us-east-1.amazonaws.com")
        );
        assert_eq!(ssm_fips_endpoint("eu-west-1"), None);
        assert_eq!(ssm_fips_endpoint("us-gov-west-1"), None);
    }
}
