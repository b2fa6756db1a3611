//! From the `DD_LAMBDA_HANDLER` command line to a program and its arguments.
//!
//! The line is split as a POSIX shell would split it (quotes, backslashes) but never run by a
//! shell: no expansion, no redirection, so what the user wrote is exactly what runs.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A command ready to spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandLine {
    /// The resolved program, an existing executable file.
    pub program: PathBuf,
    /// The arguments after the program, as split.
    pub args: Vec<String>,
    /// The command line as the user gave it, for messages.
    pub given: String,
    /// Where it runs: the task root, as Lambda starts runtimes there (so relative paths in
    /// the arguments, like `python3 app.py`, resolve as they do on Lambda).
    pub working_dir: PathBuf,
}

/// The command line cannot be run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error("DD_LAMBDA_HANDLER is empty: set it to the command that starts your function's runtime (e.g. `./my-fn`)")]
    Empty,
    #[error("cannot split the handler command {given:?} like a shell would: {reason}")]
    Unsplittable { given: String, reason: String },
    #[error("handler command {program:?} not found (looked in {looked_in})")]
    NotFound { program: String, looked_in: String },
    #[error("handler command {path} is not an executable file: {reason}")]
    NotExecutable { path: String, reason: String },
}

impl CommandLine {
    /// Splits `given` and resolves its program: an absolute path is taken as is, a path with a
    /// slash is relative to `task_root`, and a bare name is looked up in `task_root`, then in
    /// each directory of `path_var` (the function's `PATH`).
    pub fn parse(given: &str, task_root: &Path, path_var: Option<&str>) -> Result<Self, CommandError> {
        let words = shell_words::split(given).map_err(|e| CommandError::Unsplittable {
            given: given.to_owned(),
            reason: e.to_string(),
        })?;
        let mut words = words.into_iter();
        let program = words.next().filter(|p| !p.is_empty()).ok_or(CommandError::Empty)?;
        let program = resolve_program(&program, task_root, path_var)?;
        Ok(Self {
            program,
            args: words.collect(),
            given: given.to_owned(),
            working_dir: task_root.to_path_buf(),
        })
    }
}

fn resolve_program(program: &str, task_root: &Path, path_var: Option<&str>) -> Result<PathBuf, CommandError> {
    let given = Path::new(program);
    let candidates: Vec<PathBuf> = if given.is_absolute() {
        vec![given.to_path_buf()]
    } else if program.contains('/') {
        vec![task_root.join(given)]
    } else {
        std::iter::once(task_root.to_path_buf())
            .chain(std::env::split_paths(path_var.unwrap_or_default()).filter(|dir| !dir.as_os_str().is_empty()))
            .map(|dir| dir.join(given))
            .collect()
    };
    // The first candidate that exists decides: a file that exists but cannot run is reported
    // as such rather than silently skipped, so the user learns about the missing `chmod +x`.
    match candidates.iter().find(|path| path.exists()) {
        Some(path) => check_executable(path).map(|()| path.clone()),
        None => Err(CommandError::NotFound {
            program: program.to_owned(),
            looked_in: candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn check_executable(path: &Path) -> Result<(), CommandError> {
    let not_executable = |reason: &str| CommandError::NotExecutable {
        path: path.display().to_string(),
        reason: reason.to_owned(),
    };
    let metadata = std::fs::metadata(path).map_err(|e| not_executable(&e.to_string()))?;
    if !metadata.is_file() {
        return Err(not_executable("it is not a regular file"));
    }
    if metadata.permissions().mode() & 0o111 == 0 {
        return Err(not_executable("it has no execute permission (chmod +x)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn executable(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn splits_like_a_shell_without_expanding() {
        let task = tempfile::tempdir().unwrap();
        let program = executable(task.path(), "my-fn");
        let line = CommandLine::parse(r#"./my-fn --name "a b" 'c $HOME' d\ e"#, task.path(), None).unwrap();
        assert_eq!(line.program, task.path().join("./my-fn"));
        assert!(line.program.ends_with("my-fn") && program.exists());
        assert_eq!(line.args, ["--name", "a b", "c $HOME", "d e"]);
    }

    #[test]
    fn bare_name_prefers_task_root_then_path() {
        let task = tempfile::tempdir().unwrap();
        let bin = tempfile::tempdir().unwrap();
        let in_path = executable(bin.path(), "tool");
        let path_var = format!("/nonexistent:{}", bin.path().display());
        assert_eq!(CommandLine::parse("tool x", task.path(), Some(&path_var)).unwrap().program, in_path);
        let in_task = executable(task.path(), "tool");
        assert_eq!(CommandLine::parse("tool x", task.path(), Some(&path_var)).unwrap().program, in_task);
    }

    #[test]
    fn absolute_program_is_taken_as_is() {
        let line = CommandLine::parse("/bin/sh -c 'exit 0'", Path::new("/nonexistent"), None).unwrap();
        assert_eq!(line.program, PathBuf::from("/bin/sh"));
        assert_eq!(line.args, ["-c", "exit 0"]);
    }

    #[test]
    fn missing_program_names_every_place_looked() {
        let task = tempfile::tempdir().unwrap();
        let err = CommandLine::parse("nope-fn", task.path(), Some("/usr/bin")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"nope-fn\"") && text.contains("/usr/bin/nope-fn"), "{text}");
        assert!(text.contains(&task.path().join("nope-fn").display().to_string()), "{text}");
    }

    #[test]
    fn non_executable_file_is_reported_with_the_fix() {
        let task = tempfile::tempdir().unwrap();
        fs::write(task.path().join("script"), "echo").unwrap();
        let err = CommandLine::parse("./script", task.path(), None).unwrap_err();
        assert!(matches!(err, CommandError::NotExecutable { .. }), "{err}");
        assert!(err.to_string().contains("chmod +x"), "{err}");
        let err = CommandLine::parse(&task.path().display().to_string(), task.path(), None).unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    #[test]
    fn empty_and_unbalanced_lines() {
        assert_eq!(CommandLine::parse("", Path::new("/"), None), Err(CommandError::Empty));
        assert_eq!(CommandLine::parse("''", Path::new("/"), None), Err(CommandError::Empty));
        assert!(matches!(
            CommandLine::parse("./fn 'open", Path::new("/"), None),
            Err(CommandError::Unsplittable { .. })
        ));
    }
}
