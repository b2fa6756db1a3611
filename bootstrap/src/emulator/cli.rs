//! Command-line flags shared by `lambda-emulator` and `bootstrap invoke`.
use std::time::Duration;

use super::faults::Fault;
use super::options::FunctionIdentity;

/// The function being emulated, with Lambda's defaults.
#[derive(clap::Args, Clone, Debug)]
pub struct FunctionArgs {
    /// The function's name (AWS_LAMBDA_FUNCTION_NAME, the ARN, the log group).
    #[arg(long, default_value = "function")]
    pub function_name: String,
    /// The region (AWS_REGION, AWS_DEFAULT_REGION, the ARN).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,
    /// The account id in the function's ARN.
    #[arg(long, default_value = "123456789012")]
    pub account_id: String,
    /// Memory size in MB (AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// Timeout in seconds; past it the runtime is killed and the invoke answers Sandbox.Timedout.
    #[arg(long, default_value_t = 3.0, value_parser = parse_timeout)]
    pub timeout: f64,
    /// An extra variable for the runtime, K=V; repeatable.
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
}

impl FunctionArgs {
    pub fn identity(&self) -> FunctionIdentity {
        FunctionIdentity {
            name: self.function_name.clone(),
            region: self.region.clone(),
            account_id: self.account_id.clone(),
            memory_mb: self.memory,
            timeout: Duration::from_secs_f64(self.timeout),
            ..FunctionIdentity::default()
        }
    }
}

/// The hidden `--fault KIND[@N]` flag of `lambda-emulator`, for test suites (see
/// [`super::faults`]).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct FaultArgs {
    /// Misbehave on purpose for invocation N (default 1); repeatable.
    #[arg(long = "fault", value_name = "KIND[@N]", hide = true)]
    pub faults: Vec<Fault>,
}

pub fn parse_env_pair(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{raw:?} is not K=V")),
    }
}

fn parse_timeout(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= 900.0 => Ok(seconds),
        _ => Err(format!("{raw:?} is not a timeout in seconds between 0 and 900")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_split_on_the_first_equals() {
        assert_eq!(parse_env_pair("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_env_pair("A=").unwrap(), ("A".into(), String::new()));
        assert!(parse_env_pair("=x").is_err());
        assert!(parse_env_pair("novalue").is_err());
    }

    #[test]
    fn timeouts_are_bounded_like_lambda() {
        assert_eq!(parse_timeout("1.5").unwrap(), 1.5);
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("901").is_err());
        assert!(parse_timeout("soon").is_err());
    }
}
