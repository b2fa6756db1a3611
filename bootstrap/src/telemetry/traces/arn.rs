//! The invoked function ARN, split into the parts trace tags are built from.

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`, borrowed from
/// the ARN (split once per traced invocation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
    pub qualifier: Option<&'a str>,
}

impl<'a> FunctionArn<'a> {
    /// Splits an ARN; missing fields are empty, so a malformed ARN still gives tags.
    pub fn parse(arn: &'a str) -> Self {
        let mut fields = arn.split(':').skip(3);
        let region = fields.next().unwrap_or_default();
        let account = fields.next().unwrap_or_default();
        let name = fields.nth(1).unwrap_or_default();
        Self {
            region,
            account,
            name,
            qualifier: fields.next(),
        }
    }

    /// `aws-us-gov` for `us-gov-*`, `aws-cn` for `cn-*`, else `aws`.
    pub fn partition(&self) -> &'static str {
        partition_of(self.region)
    }
}

pub fn partition_of(region: &str) -> &'static str {
    if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else if region.starts_with("cn-") {
        "aws-cn"
    } else {
        "aws"
    }
}

/// The `function_arn` tag (lower-cased, qualifier dropped) and the `function_version` tag
/// (the qualifier, lower-cased with it, or `$LATEST`), as Datadog's library derives them.
pub fn function_arn_and_version(arn: &str) -> (String, String) {
    let mut lower = arn.to_lowercase();
    // The qualifier is the eighth field; any field after it is dropped, as the library does.
    match lower.match_indices(':').nth(6).map(|(at, _)| at) {
        Some(at) => {
            let version = lower[at + 1..].split(':').next().unwrap_or_default().to_owned();
            lower.truncate(at);
            (lower, version)
        }
        None => (lower, "$LATEST".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_lower_cases() {
        let arn = FunctionArn::parse("arn:aws:lambda:us-gov-west-1:123:function:My-Fn:Prod");
        assert_eq!(arn.region, "us-gov-west-1");
        assert_eq!(arn.account, "123");
        assert_eq!(arn.name, "My-Fn");
        assert_eq!(arn.qualifier, Some("Prod"));
        assert_eq!(arn.partition(), "aws-us-gov");
        assert_eq!(
            function_arn_and_version("arn:aws:lambda:us-east-1:123:function:My-Fn:Prod"),
            ("arn:aws:lambda:us-east-1:123:function:my-fn".to_owned(), "prod".to_owned())
        );
        assert_eq!(function_arn_and_version("arn:aws:lambda:us-east-1:123:function:f").1, "$LATEST");
        // Fields past the qualifier are dropped; a short ARN is kept whole.
        assert_eq!(
            function_arn_and_version("ARN:aws:lambda:us-east-1:123:function:F:Live:extra"),
            ("arn:aws:lambda:us-east-1:123:function:f".to_owned(), "live".to_owned())
        );
        assert_eq!(function_arn_and_version("a:b"), ("a:b".to_owned(), "$LATEST".to_owned()));
        assert_eq!(
            function_arn_and_version("arn:aws:lambda:r:1:function:f:"),
            ("arn:aws:lambda:r:1:function:f".to_owned(), String::new())
        );
        assert_eq!(FunctionArn::parse("arn:aws:lambda:r:1:function:f:q:x").qualifier, Some("q"));
        assert_eq!(FunctionArn::parse("garbage").region, "");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
    }
}
