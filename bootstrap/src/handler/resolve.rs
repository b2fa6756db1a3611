//! From `DD_LAMBDA_HANDLER` to what to run.
use std::path::{Path, PathBuf};

use super::InitError;

/// The handler named by `DD_LAMBDA_HANDLER` (else `_HANDLER`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerSpec {
    /// `libapp.so` or `libapp.so:NAME`, resolved to a file.
    Library { path: PathBuf, name: String },
    /// Anything else: a command line, run by the exec handler.
    Command(String),
}

/// Resolves a handler value. A relative library path is looked up in `task_root`, then `/opt`.
pub fn resolve(value: Option<&str>, task_root: &Path) -> Result<HandlerSpec, InitError> {
    resolve_in(value, &[task_root, Path::new("/opt")])
}

fn resolve_in(value: Option<&str>, search: &[&Path]) -> Result<HandlerSpec, InitError> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).ok_or(InitError::NotConfigured)?;
    let Some((file, name)) = split_library(value) else {
        return Ok(HandlerSpec::Command(value.to_owned()));
    };
    let name = name.unwrap_or(sdk::abi::DEFAULT_HANDLER_NAME).to_owned();
    let given = Path::new(file);
    let candidates: Vec<PathBuf> = if given.is_absolute() {
        vec![given.to_path_buf()]
    } else {
        search.iter().map(|dir| dir.join(given)).collect()
    };
    match candidates.iter().find(|path| path.is_file()) {
        Some(path) => Ok(HandlerSpec::Library { path: path.clone(), name }),
        None => Err(InitError::LibraryNotFound {
            spec: value.to_owned(),
            looked_in: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        }),
    }
}

/// `x.so` -> (`x.so`, None); `x.so:name` -> (`x.so`, Some(name)); anything else -> None.
fn split_library(value: &str) -> Option<(&str, Option<&str>)> {
    if value.contains(char::is_whitespace) {
        return None;
    }
    if is_shared_library(value) {
        return Some((value, None));
    }
    let (file, name) = value.rsplit_once(':')?;
    (is_shared_library(file) && !name.is_empty()).then_some((file, Some(name)))
}

/// A `.so` file name (lowercase, as the linker names them).
fn is_shared_library(file: &str) -> bool {
    std::path::Path::new(file).extension().is_some_and(|e| e == "so")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_with_and_without_name() {
        assert_eq!(split_library("libapp.so"), Some(("libapp.so", None)));
        assert_eq!(split_library("/x/libapp.so:echo"), Some(("/x/libapp.so", Some("echo"))));
        assert_eq!(split_library("./my-fn"), None);
        assert_eq!(split_library("python3 -m awslambdaric app.handler"), None);
        assert_eq!(split_library("libapp.so:"), None);
    }

    #[test]
    fn relative_library_looks_in_task_root_then_opt() {
        let task = tempfile::tempdir().unwrap();
        let opt = tempfile::tempdir().unwrap();
        std::fs::write(opt.path().join("libapp.so"), b"").unwrap();
        let spec = resolve_in(Some("libapp.so:echo"), &[task.path(), opt.path()]).unwrap();
        assert_eq!(
            spec,
            HandlerSpec::Library {
                path: opt.path().join("libapp.so"),
                name: "echo".into()
            }
        );
        std::fs::write(task.path().join("libapp.so"), b"").unwrap();
        let spec = resolve_in(Some("libapp.so"), &[task.path(), opt.path()]).unwrap();
        assert_eq!(
            spec,
            HandlerSpec::Library {
                path: task.path().join("libapp.so"),
                name: "handler".into()
            }
        );
    }

    #[test]
    fn missing_library_names_every_place_looked() {
        let task = tempfile::tempdir().unwrap();
        let err = resolve_in(Some("libnope.so"), &[task.path(), Path::new("/opt")]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("libnope.so") && text.contains("/opt/libnope.so"), "{text}");
        assert_eq!(err.error_type(), "Runtime.HandlerNotFound");
    }

    #[test]
    fn empty_or_unset_is_not_configured() {
        assert!(matches!(resolve_in(None, &[]), Err(InitError::NotConfigured)));
        assert!(matches!(resolve_in(Some("  "), &[]), Err(InitError::NotConfigured)));
    }

    #[test]
    fn other_values_are_commands() {
        assert_eq!(
            resolve_in(Some("./my-fn --x"), &[]).unwrap(),
            HandlerSpec::Command("./my-fn --x".into())
        );
    }
}
