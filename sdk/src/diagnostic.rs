//! The error a handler reports: what the Runtime API's `/error` endpoint receives.
use std::any::{type_name, Any};
use std::fmt::Display;

use serde::{Deserialize, Serialize};

/// An error as Lambda reports it: `{"errorType", "errorMessage", "stackTrace"}`.
///
/// A handler may fail with any error that implements [`Display`] (every
/// [`std::error::Error`], `String`, `&str`, `Box<dyn Error + Send + Sync>`, ...): it becomes a
/// `Diagnostic` whose `errorType` is the error's type name and whose `errorMessage` is its
/// `Display` text, as AWS's `lambda_runtime` crate does. To choose the `errorType`, fail with a
/// `Diagnostic` built by [`Diagnostic::new`] or re-typed with [`Diagnostic::with_error_type`].
///
/// `Diagnostic` deliberately does not implement `Display` (nor `std::error::Error`): that is what
/// lets `?` turn any displayable error into one in a handler that returns
/// `Result<_, Diagnostic>`.
///
/// ```
/// use sdk::Diagnostic;
///
/// #[derive(Debug)]
/// struct OutOfStock(u32);
/// impl std::fmt::Display for OutOfStock {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
///         write!(f, "item {} is out of stock", self.0)
///     }
/// }
///
/// // By default the error type is the Rust type name (`my_crate::OutOfStock`)...
/// let diagnostic = Diagnostic::from(OutOfStock(7));
/// assert!(diagnostic.error_type.ends_with("::OutOfStock"));
/// assert_eq!(diagnostic.error_message, "item 7 is out of stock");
///
/// // ...or whatever the handler chooses.
/// let chosen = Diagnostic::from(OutOfStock(7)).with_error_type("OutOfStock");
/// assert_eq!(chosen.error_type, "OutOfStock");
///
/// // `?` converts any displayable error.
/// fn parse(text: &str) -> Result<u32, Diagnostic> {
///     Ok(text.parse::<u32>()?)
/// }
/// assert_eq!(parse("x").unwrap_err().error_type, "core::num::error::ParseIntError");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The kind of error, used by Lambda and Datadog to group errors.
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// What went wrong, for a person.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
    /// Optional frames or notes; empty unless the handler adds some.
    #[serde(rename = "stackTrace", default)]
    pub stack_trace: Vec<String>,
}

/// The `errorType` of an event that does not deserialize into the handler's event type.
///
/// ```
/// assert_eq!(sdk::UNMARSHAL_ERROR_TYPE, "Runtime.UnmarshalError");
/// ```
pub const UNMARSHAL_ERROR_TYPE: &str = "Runtime.UnmarshalError";

/// The `errorType` of a handler response that does not serialize to JSON.
///
/// ```
/// assert_eq!(sdk::MARSHAL_ERROR_TYPE, "Runtime.MarshalError");
/// ```
pub const MARSHAL_ERROR_TYPE: &str = "Runtime.MarshalError";

impl Diagnostic {
    /// A diagnostic with the given type and message and no stack trace.
    ///
    /// ```
    /// let d = sdk::Diagnostic::new("ValidationError", "name is empty");
    /// assert_eq!((d.error_type.as_str(), d.error_message.as_str()), ("ValidationError", "name is empty"));
    /// assert!(d.stack_trace.is_empty());
    /// ```
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
            stack_trace: Vec::new(),
        }
    }

    /// The same diagnostic with another `errorType`.
    ///
    /// ```
    /// let d = sdk::Diagnostic::from("no such user").with_error_type("NotFound");
    /// assert_eq!(d.error_type, "NotFound");
    /// assert_eq!(d.error_message, "no such user");
    /// ```
    #[must_use]
    pub fn with_error_type(mut self, error_type: impl Into<String>) -> Self {
        self.error_type = error_type.into();
        self
    }

    /// The same diagnostic with a stack trace (one entry per frame or note).
    ///
    /// ```
    /// let d = sdk::Diagnostic::new("E", "m").with_stack_trace(vec!["at checkout".to_string()]);
    /// assert_eq!(d.stack_trace, ["at checkout"]);
    /// ```
    #[must_use]
    pub fn with_stack_trace(mut self, stack_trace: Vec<String>) -> Self {
        self.stack_trace = stack_trace;
        self
    }

    /// The JSON error body the bootstrap forwards to the Runtime API.
    ///
    /// ```
    /// let body = sdk::Diagnostic::new("E", "m").to_json();
    /// assert_eq!(body, br#"{"errorType":"E","errorMessage":"m","stackTrace":[]}"#);
    /// ```
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings always serialises; the fallback only keeps this panic-free.
        serde_json::to_vec(self).unwrap_or_else(|_| br#"{"errorType":"Runtime.MarshalError","errorMessage":"","stackTrace":[]}"#.to_vec())
    }

    /// The diagnostic for a caught panic, worded as AWS's `lambda_runtime` words it: the
    /// `errorType` is the type name of the panic payload (`&alloc::boxed::Box<dyn core::any::Any +
    /// core::marker::Send>`) and the message is `Lambda panicked: <panic message>`.
    ///
    /// ```
    /// let payload = std::panic::catch_unwind(|| panic!("boom")).unwrap_err();
    /// let d = sdk::Diagnostic::from_panic(&payload);
    /// assert_eq!(d.error_message, "Lambda panicked: boom");
    /// assert!(d.error_type.contains("Box<dyn core::any::Any + core::marker::Send>"), "{}", d.error_type);
    /// ```
    pub fn from_panic(payload: &Box<dyn Any + Send>) -> Self {
        let error_message = match panic_message(payload.as_ref()) {
            Some(message) => format!("Lambda panicked: {message}"),
            None => "Lambda panicked".to_string(),
        };
        Self::new(type_name::<&Box<dyn Any + Send>>(), error_message)
    }
}

/// The text of a `panic!`, which is a `&'static str` or a `String` unless `panic_any` was used.
fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&'static str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Any displayable error becomes a diagnostic typed by its Rust type name, so handlers can fail
/// with their own error types and `?` works in handlers returning `Result<_, Diagnostic>`.
///
/// ```
/// let d = sdk::Diagnostic::from(String::from("bad input"));
/// assert_eq!(d.error_type, "alloc::string::String");
/// assert_eq!(d.error_message, "bad input");
/// ```
impl<E: Display> From<E> for Diagnostic {
    fn from(error: E) -> Self {
        Self::new(type_name::<E>(), error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Custom;
    impl Display for Custom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("custom failure")
        }
    }
    impl std::error::Error for Custom {}

    #[test]
    fn error_type_defaults_to_the_type_name() {
        assert_eq!(Diagnostic::from(Custom).error_type, "sdk::diagnostic::tests::Custom");
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Custom);
        let d = Diagnostic::from(boxed);
        assert_eq!(
            d.error_type,
            "alloc::boxed::Box<dyn core::error::Error + core::marker::Send + core::marker::Sync>"
        );
        assert_eq!(d.error_message, "custom failure");
        assert_eq!(Diagnostic::from("text").error_type, "&str");
    }

    #[test]
    fn serialises_with_lambda_field_names() {
        let d = Diagnostic::new("T", "m").with_stack_trace(vec!["a".into()]);
        let json: serde_json::Value = serde_json::from_slice(&d.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"errorType": "T", "errorMessage": "m", "stackTrace": ["a"]})
        );
    }

    #[test]
    fn panic_payloads_of_every_kind() {
        let formatted = std::panic::catch_unwind(|| panic!("value {}", 3)).unwrap_err();
        assert_eq!(Diagnostic::from_panic(&formatted).error_message, "Lambda panicked: value 3");
        let other = std::panic::catch_unwind(|| std::panic::panic_any(42u8)).unwrap_err();
        let d = Diagnostic::from_panic(&other);
        assert_eq!(d.error_message, "Lambda panicked");
        assert_eq!(d.error_type, "&alloc::boxed::Box<dyn core::any::Any + core::marker::Send>");
    }
}
