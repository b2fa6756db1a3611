//! Write AWS Lambda handlers as shared libraries served by the `bootstrap` runtime.
pub mod abi;
