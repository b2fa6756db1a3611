//! The invocation lifecycle.
