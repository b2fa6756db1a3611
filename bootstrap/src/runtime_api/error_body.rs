use serde::{Deserialize, Serialize};

/// The body of `/invocation/{id}/error` and `/init/error`, as AWS documents it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(rename = "errorMessage")]
    pub error_message: String,
    #[serde(rename = "errorType")]
    pub error_type: String,
    #[serde(rename = "stackTrace", default)]
    pub stack_trace: Vec<String>,
}

impl ErrorBody {
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_message: error_message.into(),
            error_type: error_type.into(),
            stack_trace: Vec::new(),
        }
    }

    /// Reads an error body a handler produced; anything that is not one becomes a
    /// `Runtime.InvalidErrorBody` error carrying the raw text, so no error is lost.
    pub fn from_handler_bytes(bytes: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => body,
            Err(_) => Self::new("Runtime.InvalidErrorBody", String::from_utf8_lossy(bytes).into_owned()),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings cannot fail.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_aws_field_names() {
        let mut body = ErrorBody::new("Runtime.HandlerNotFound", "no handler");
        body.stack_trace.push("at main".into());
        let json: serde_json::Value = serde_json::from_slice(&body.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorMessage": "no handler", "errorType": "Runtime.HandlerNotFound", "stackTrace": ["at main"]})
        );
    }

    #[test]
    fn handler_bytes_that_are_not_an_error_body_are_kept() {
        let body = ErrorBody::from_handler_bytes(b"boom");
        assert_eq!(body.error_type, "Runtime.InvalidErrorBody");
        assert_eq!(body.error_message, "boom");
        let parsed = ErrorBody::from_handler_bytes(br#"{"errorType":"E","errorMessage":"m"}"#);
        assert_eq!(parsed, ErrorBody::new("E", "m"));
    }
}
