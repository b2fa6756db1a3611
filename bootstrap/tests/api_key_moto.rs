//! The API key from KMS, Secrets Manager and SSM, against moto's server (started here on a
//! free 127.0.0.1 port). moto comes from `.ci/run`, which installs `moto[server]` into the
//! workspace's `.venv` (or the venv named by `DD_TEST_VENV`).
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
use base64::Engine;
use bootstrap::api_key::{fetch, ApiKeyError, ApiKeySettings};
use bootstrap::config::Environment;

#[path = "common/moto.rs"]
mod moto;

use moto::{moto, sdk};

fn settings(endpoint: &str, pairs: &[(&str, &str)]) -> ApiKeySettings {
    let mut all = vec![
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_LAMBDA_FUNCTION_NAME", "my-fn"),
        ("AWS_ENDPOINT_URL", endpoint),
    ];
    all.extend_from_slice(pairs);
    ApiKeySettings::from_env(&Environment::from_pairs(all), false)
}

const KEY: &str = "0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn every_source_the_precedence_and_every_failure() {
    let moto = moto();
    let e = moto.endpoint.as_str();

    // Secrets Manager, in another region than the function's: the ARN's region is used.
    let sm = aws_sdk_secretsmanager::Client::new(&sdk(e, "us-west-2").await);
    let arn = sm
        .create_secret()
        .name("dd-key")
        .secret_string(KEY)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    assert!(arn.contains(":us-west-2:"));
    assert_eq!(fetch(&settings(e, &[("DD_API_KEY_SECRET_ARN", &arn)])).await.unwrap().expose(), KEY);

    // SSM, decrypted.
    let ssm = aws_sdk_ssm::Client::new(&sdk(e, "us-east-1").await);
    ssm.put_parameter()
        .name("/dd/key")
        .value("ssm-key")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    assert_eq!(
        fetch(&settings(e, &[("DD_API_KEY_SSM_NAME", "/dd/key")])).await.unwrap().expose(),
        "ssm-key"
    );

    // KMS, encrypted without a context (CLI) and with the function name (console).
    let kms = aws_sdk_kms::Client::new(&sdk(e, "us-east-1").await);
    let key_id = kms.create_key().send().await.unwrap().key_metadata().unwrap().key_id().to_owned();
    let encrypt = |context: Option<&'static str>, plaintext: &'static str| {
        let kms = kms.clone();
        let key_id = key_id.clone();
        async move {
            let mut request = kms
                .encrypt()
                .key_id(key_id)
                .plaintext(aws_sdk_kms::primitives::Blob::new(plaintext.as_bytes()));
            if let Some(name) = context {
                request = request.encryption_context("LambdaFunctionName", name);
            }
            let blob = request.send().await.unwrap().ciphertext_blob().unwrap().clone().into_inner();
            base64::engine::general_purpose::STANDARD.encode(blob)
        }
    };
    let cli = encrypt(None, "kms-cli-key").await;
    let console = encrypt(Some("my-fn"), "kms-console-key").await;
    assert_eq!(
        fetch(&settings(e, &[("DD_KMS_API_KEY", &cli)])).await.unwrap().expose(),
        "kms-cli-key"
    );
    assert_eq!(
        fetch(&settings(e, &[("DD_KMS_API_KEY", &console)])).await.unwrap().expose(),
        "kms-console-key"
    );

    // Precedence: Secrets Manager > SSM > KMS > DD_API_KEY.
    let all = [
        ("DD_API_KEY_SECRET_ARN", arn.as_str()),
        ("DD_API_KEY_SSM_NAME", "/dd/key"),
        ("DD_KMS_API_KEY", cli.as_str()),
        ("DD_API_KEY", "plain"),
    ];
    let mut got = Vec::new();
    for i in 0..all.len() {
        got.push(fetch(&settings(e, &all[i..])).await.unwrap().expose().to_owned());
    }
    assert_eq!(got, [KEY, "ssm-key", "kms-cli-key", "plain"]);

    // Failures name the variable and AWS's error code, never a key.
    let missing_secret = arn.replace("dd-key", "nope");
    let err = fetch(&settings(e, &[("DD_API_KEY_SECRET_ARN", &missing_secret)]))
        .await
        .unwrap_err();
    assert_eq!(err.aws_code(), Some("ResourceNotFoundException"), "{err}");
    assert!(
        err.to_string()
            .starts_with("DD_API_KEY_SECRET_ARN: Secrets Manager GetSecretValue failed with ResourceNotFoundException"),
        "{err}"
    );

    let err = fetch(&settings(e, &[("DD_API_KEY_SSM_NAME", "/dd/missing")])).await.unwrap_err();
    assert_eq!(err.aws_code(), Some("ParameterNotFound"), "{err}");

    let garbage = base64::engine::general_purpose::STANDARD.encode(b"not a ciphertext at all");
    let err = fetch(&settings(e, &[("DD_KMS_API_KEY", &garbage)])).await.unwrap_err();
    assert_eq!(err.aws_code(), Some("InvalidCiphertextException"), "{err}");
    assert!(err.to_string().starts_with("DD_KMS_API_KEY: KMS Decrypt failed"), "{err}");

    // Encrypted for another function: neither attempt can decrypt.
    let other = encrypt(Some("other-fn"), "secret").await;
    let err = fetch(&settings(e, &[("DD_KMS_API_KEY", &other)])).await.unwrap_err();
    assert!(err.aws_code().is_some(), "{err}");
    assert!(!err.to_string().contains("secret\""), "{err}");

    let err = fetch(&settings(e, &[("DD_API_KEY_SECRET_ARN", "arn:aws:secretsmanager")]))
        .await
        .unwrap_err();
    assert!(matches!(err, ApiKeyError::MalformedSecretArn { .. }), "{err}");

    // The service-specific endpoint variable wins over AWS_ENDPOINT_URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let s = settings(
        &format!("http://{closed}"),
        &[("DD_API_KEY_SSM_NAME", "/dd/key"), ("AWS_ENDPOINT_URL_SSM", e)],
    );
    assert_eq!(fetch(&s).await.unwrap().expose(), "ssm-key");
    // And an unreachable endpoint is a connection error naming the variable.
    let err = fetch(&settings(&format!("http://{closed}"), &[("DD_API_KEY_SSM_NAME", "/dd/key")]))
        .await
        .unwrap_err();
    assert_eq!(err.aws_code(), Some("ConnectionError"), "{err}");
    assert!(
        err.to_string()
            .starts_with("DD_API_KEY_SSM_NAME: SSM GetParameter failed with ConnectionError"),
        "{err}"
    );
}
