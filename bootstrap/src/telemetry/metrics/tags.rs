//! The tags the seed puts on enhanced metrics (§2.1), in its exact order, and the layer tag it
//! appends to every metric.
//!
//! The seed names itself twice: `datadog_lambda:v<version>` on enhanced metrics and
//! `dd_lambda_layer:datadog-python<XY>_<version>` on every metric. We keep both keys, since
//! Datadog's UI keys on them, and put this project in the values:
//! `datadog_lambda_bootstrap:v<version>` and `dd_lambda_layer:datadog-bootstrap_<version>`.
use std::path::Path;

/// This crate's version, the one the version tags name.
pub const BOOTSTRAP_VERSION: &str = env!("CARGO_PKG_VERSION");

/// `datadog_lambda_bootstrap:v<version>`, the seed's `datadog_lambda:v<version>`.
pub fn library_version_tag() -> String {
    format!("datadog_lambda_bootstrap:v{BOOTSTRAP_VERSION}")
}

/// `dd_lambda_layer:datadog-bootstrap_<version>`, appended to every metric as the seed's
/// `lambda_metric` appends its layer tag.
pub fn layer_tag() -> String {
    format!("dd_lambda_layer:datadog-bootstrap_{BOOTSTRAP_VERSION}")
}

/// The runtime name for the `runtime:` tag, found as Datadog's Extension finds it:
/// `AWS_EXECUTION_ENV=AWS_Lambda_<runtime>` for managed runtimes, else `/etc/os-release`
/// (`Amazon Linux 2` is `provided.al2`, `Amazon Linux 2023…` is `provided.al2023`), else `unknown`.
pub fn resolve_runtime(execution_env: Option<&str>, os_release: &Path) -> String {
    if let Some(runtime) = execution_env.and_then(|e| e.rsplit('_').next()).filter(|r| !r.is_empty()) {
        return runtime.replace('"', "");
    }
    std::fs::read_to_string(os_release)
        .ok()
        .and_then(|text| runtime_from_os_release(&text))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn runtime_from_os_release(text: &str) -> Option<String> {
    let pretty = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME="))?.replace('"', "");
    if pretty == "Amazon Linux 2" {
        Some("provided.al2".to_owned())
    } else if pretty.starts_with("Amazon Linux 2023") {
        Some("provided.al2023".to_owned())
    } else {
        None
    }
}

/// What stays the same for every invocation of this sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticTags {
    pub memory_mb: u32,
    /// `AWS_LAMBDA_FUNCTION_VERSION`, for `executedversion:` when invoked through an alias.
    pub function_version: String,
    pub runtime: String,
}

/// The seed's enhanced-metric tag set, in its order: region, account_id, functionname,
/// [executedversion], resource, memorysize, cold_start, runtime, the library version tag.
/// The layer tag is appended later, for every metric. Without an ARN (an init failure, where
/// the seed has no Lambda context) memorysize goes too, as it comes from that context: only
/// cold_start, runtime and the library version tag are left, as in the seed (§2.1).
pub fn enhanced_tags(statics: &StaticTags, invoked_function_arn: Option<&str>, cold_start: bool) -> Vec<String> {
    let mut tags = Vec::with_capacity(10);
    if let Some(arn) = invoked_function_arn {
        tags.extend(arn_tags(arn, &statics.function_version));
        tags.push(format!("memorysize:{}", statics.memory_mb));
    }
    tags.push(format!("cold_start:{cold_start}"));
    tags.push(format!("runtime:{}", statics.runtime));
    tags.push(library_version_tag());
    tags
}

/// `arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]` as the seed reads it.
fn arn_tags(arn: &str, function_version: &str) -> Vec<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7 {
        return Vec::new();
    }
    let (region, account, name) = (parts[3], parts[4], parts[6]);
    let mut tags = vec![
        format!("region:{region}"),
        format!("account_id:{account}"),
        format!("functionname:{name}"),
    ];
    match parts.get(7) {
        None => tags.push(format!("resource:{name}")),
        Some(qualifier) => {
            let qualifier = qualifier.strip_prefix('$').unwrap_or(qualifier);
            let is_alias = !parts[7].starts_with('$') && qualifier.parse::<f64>().is_err();
            if is_alias {
                tags.push(format!("executedversion:{function_version}"));
            }
            tags.push(format!("resource:{name}:{qualifier}"));
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statics() -> StaticTags {
        StaticTags {
            memory_mb: 256,
            function_version: "1".into(),
            runtime: "provided.al2023".into(),
        }
    }

    #[test]
    fn unqualified_arn_in_the_seeds_order() {
        let tags = enhanced_tags(
            &statics(),
            Some("arn:aws:lambda:us-west-1:123457598159:function:python-layer-test"),
            true,
        );
        assert_eq!(
            tags,
            [
                "region:us-west-1",
                "account_id:123457598159",
                "functionname:python-layer-test",
                "resource:python-layer-test",
                "memorysize:256",
                "cold_start:true",
                "runtime:provided.al2023",
                &format!("datadog_lambda_bootstrap:v{BOOTSTRAP_VERSION}"),
            ]
        );
    }

    #[test]
    fn qualifiers_latest_version_and_alias() {
        let arn = "arn:aws:lambda:us-west-1:123457598159:function:python-layer-test";
        let latest = enhanced_tags(&statics(), Some(&format!("{arn}:$Latest")), false);
        assert!(latest.contains(&"resource:python-layer-test:Latest".to_owned()));
        assert!(!latest.iter().any(|t| t.starts_with("executedversion:")));
        let version = enhanced_tags(&statics(), Some("arn:aws:lambda:us-west-1:1:function:swf-hello-test:3"), false);
        assert!(version.contains(&"resource:swf-hello-test:3".to_owned()));
        assert!(!version.iter().any(|t| t.starts_with("executedversion:")));
        let alias = enhanced_tags(&statics(), Some(&format!("{arn}:My_alias-1")), false);
        assert_eq!(
            alias[2..5],
            [
                "functionname:python-layer-test",
                "executedversion:1",
                "resource:python-layer-test:My_alias-1"
            ]
        );
    }

    #[test]
    fn without_an_arn_only_the_sandbox_tags() {
        let tags = enhanced_tags(&statics(), None, false);
        assert_eq!(tags, ["cold_start:false", "runtime:provided.al2023", &library_version_tag()]);
    }

    #[test]
    fn runtime_from_execution_env_then_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        assert_eq!(resolve_runtime(Some("AWS_Lambda_python3.12"), &path), "python3.12");
        assert_eq!(resolve_runtime(None, &path), "unknown");
        std::fs::write(
            &path,
            "NAME=\"Amazon Linux\"\nVERSION=\"2023\"\nPRETTY_NAME=\"Amazon Linux 2023.6.20241010\"\n",
        )
        .unwrap();
        assert_eq!(resolve_runtime(None, &path), "provided.al2023");
        std::fs::write(&path, "NAME=\"Amazon Linux\"\nPRETTY_NAME=\"Amazon Linux 2\"\n").unwrap();
        assert_eq!(resolve_runtime(None, &path), "provided.al2");
        std::fs::write(&path, "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n").unwrap();
        assert_eq!(resolve_runtime(None, &path), "unknown");
    }

    #[test]
    fn layer_tag_names_this_project() {
        assert_eq!(layer_tag(), format!("dd_lambda_layer:datadog-bootstrap_{BOOTSTRAP_VERSION}"));
    }
}
