//! The invoked function ARN, split into the parts trace tags are built from.

/// `arn:<partition>:lambda:<region>:<account>:function:<name>[:<qualifier>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionArn {
    pub region: String,
    pub account: String,
    pub name: String,
    pub qualifier: Option<String>,
}

impl FunctionArn {
    /// Splits an ARN; missing fields are empty, so a malformed ARN still gives tags.
    pub fn parse(arn: &str) -> Self {
        let fields: Vec<&str> = arn.split(':').collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default().to_owned();
        Self {
            region: field(3),
            account: field(4),
            name: field(6),
            qualifier: fields.get(7).map(|q| (*q).to_owned()),
        }
    }

    /// `aws-us-gov` for `us-gov-*`, `aws-cn` for `cn-*`, else `aws`.
    pub fn partition(&self) -> &'static str {
        partition_of(&self.region)
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
    let lower = arn.to_lowercase();
    let fields: Vec<&str> = lower.split(':').collect();
    if fields.len() > 7 {
        (fields[..7].join(":"), fields[7].to_owned())
    } else {
        (lower.clone(), "$LATEST".to_owned())
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
        assert_eq!(arn.qualifier.as_deref(), Some("Prod"));
        assert_eq!(arn.partition(), "aws-us-gov");
        assert_eq!(
            function_arn_and_version("arn:aws:lambda:us-east-1:123:function:My-Fn:Prod"),
            ("arn:aws:lambda:us-east-1:123:function:my-fn".to_owned(), "prod".to_owned())
        );
        assert_eq!(function_arn_and_version("arn:aws:lambda:us-east-1:123:function:f").1, "$LATEST");
        assert_eq!(FunctionArn::parse("garbage").region, "");
        assert_eq!(partition_of("cn-north-1"), "aws-cn");
    }
}
