//! What the bench compares: each *case* is one runtime command run by `lambda-emulator`, with its
//! environment and the goals the issues set for it; each *comparison* is a ratio of two cases.
//!
//! Adding a case (a new runtime, a telemetry on/off variant) is one entry in [`catalogue`]; a
//! new ratio is one entry in [`comparisons`]. Cases run only when selected (`--cases`), so
//! entries whose runtime is not built yet cost nothing.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::BenchError;

/// The cases a plain `bench` run compares: issue 3's three-way comparison.
pub const DEFAULT_CASES: &[&str] = &["a", "b", "c"];

/// Datadog's switches for everything our bootstrap (or datadog-lambda) can do per invocation.
/// Flushing to stdout (the forwarder's log lines) keeps every byte on this machine.
pub const TELEMETRY_ON: &[(&str, &str)] = &[
    ("DD_ENHANCED_METRICS", "true"),
    ("DD_TRACE_ENABLED", "true"),
    ("DD_LOGS_INJECTION", "true"),
    ("DD_FLUSH_TO_LOG", "true"),
    ("DD_SERVICE", "bench"),
];

/// The same switches off: the cost of the runtime alone.
pub const TELEMETRY_OFF: &[(&str, &str)] = &[
    ("DD_ENHANCED_METRICS", "false"),
    ("DD_TRACE_ENABLED", "false"),
    ("DD_LOGS_INJECTION", "false"),
    ("DD_FLUSH_TO_LOG", "true"),
];

/// Where the built binaries and the example handlers are.
#[derive(Clone, Debug)]
pub struct Layout {
    /// `target/release`.
    pub release_dir: PathBuf,
    /// The workspace root (for `handlers-example/python`).
    pub repo_root: PathBuf,
    /// The Python with awslambdaric (and datadog-lambda) installed: `.venv/bin/python`.
    pub python: PathBuf,
}

impl Layout {
    pub fn release(&self, name: &str) -> PathBuf {
        self.release_dir.join(name)
    }

    pub fn emulator(&self) -> PathBuf {
        self.release("lambda-emulator")
    }

    fn python_task_root(&self) -> PathBuf {
        self.repo_root.join("handlers-example/python")
    }
}

/// Goals the issues set for one case's own figures.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct CaseGoals {
    pub cold_start_ms_max: Option<f64>,
    pub peak_rss_mb_max: Option<f64>,
}

/// A file a case needs, and how to get it.
#[derive(Clone, Debug)]
pub struct Prerequisite {
    pub what: &'static str,
    pub path: PathBuf,
    pub hint: &'static str,
}

/// One runtime under test.
#[derive(Clone, Debug)]
pub struct Case {
    pub id: &'static str,
    pub title: &'static str,
    /// The runtime command `lambda-emulator` starts (after its `--`).
    pub command: Vec<OsString>,
    /// `--env K=V` pairs for the runtime.
    pub env: Vec<(String, String)>,
    /// The emulator's working directory, so the runtime's `LAMBDA_TASK_ROOT`.
    pub task_root: PathBuf,
    pub goals: CaseGoals,
    pub prerequisites: Vec<Prerequisite>,
}

impl Case {
    /// Fails with what to build or install when a file the case needs is missing.
    pub fn check_prerequisites(&self) -> Result<(), BenchError> {
        match self.prerequisites.iter().find(|p| !p.path.exists()) {
            None => Ok(()),
            Some(missing) => Err(BenchError::MissingPrerequisite {
                case: self.id.to_owned(),
                what: missing.what,
                path: missing.path.clone(),
                hint: missing.hint,
            }),
        }
    }
}

/// A ratio of two cases' per-invoke times, with the issues' goal.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Comparison {
    pub numerator: &'static str,
    pub denominator: &'static str,
    /// The ratio must be at most this.
    pub goal_max: Option<f64>,
    /// Where the goal comes from, and what the ratio means.
    pub meaning: &'static str,
}

pub fn comparisons() -> Vec<Comparison> {
    vec![
        Comparison {
            numerator: "a",
            denominator: "b",
            goal_max: Some(1.0),
            meaning: "our dylib echo with telemetry vs AWS's lambda_runtime echo (issues 3, 7)",
        },
        Comparison {
            numerator: "a",
            denominator: "c",
            goal_max: Some(1.3),
            meaning: "our dylib echo with telemetry vs the bare loop floor (issues 3, 7)",
        },
        Comparison {
            numerator: "a",
            denominator: "a-off",
            goal_max: None,
            meaning: "the cost of telemetry in the dylib path",
        },
        Comparison {
            numerator: "d",
            denominator: "b",
            goal_max: Some(1.10),
            meaning: "the lambda_runtime echo behind our bootstrap vs run directly (issue 4)",
        },
        Comparison {
            numerator: "e",
            denominator: "e-direct",
            goal_max: None,
            meaning: "the awslambdaric echo behind our bootstrap vs run directly (issue 4)",
        },
        Comparison {
            numerator: "e",
            denominator: "f",
            goal_max: Some(0.5),
            meaning: "a Python handler under our bootstrap vs wrapped by datadog-lambda (issue 7)",
        },
    ]
}

/// Every case the bench knows.
pub fn catalogue(layout: &Layout) -> Vec<Case> {
    let bootstrap = layout.release("bootstrap");
    let dylib = layout.release("libhandlers_example.so");
    let lambda_runtime_echo = layout.release("lambda-runtime-echo");
    let bare_loop = layout.release("bare-loop");
    let python = &layout.python;
    let python_root = layout.python_task_root();

    let built = |what: &'static str, path: &Path| Prerequisite {
        what,
        path: path.to_path_buf(),
        hint: "build everything first: cargo build --release --workspace",
    };
    let venv = || Prerequisite {
        what: "the Python venv with awslambdaric and datadog-lambda",
        path: python.clone(),
        hint: "create it with scripts/setup-peers.sh, or pass --python",
    };
    let awslambdaric =
        |handler: &str| -> Vec<OsString> { vec![python.clone().into_os_string(), "-m".into(), "awslambdaric".into(), handler.into()] };
    let with = |pairs: &[(&str, &str)], extra: Vec<(String, String)>| -> Vec<(String, String)> {
        let mut env = extra;
        env.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    };
    let dylib_handler = format!("{}:echo", dylib.display());
    let dylib_goals = CaseGoals {
        cold_start_ms_max: Some(5.0),
        peak_rss_mb_max: Some(10.0),
    };

    vec![
        Case {
            id: "a",
            title: "bootstrap + echo dylib, telemetry on",
            command: vec![bootstrap.clone().into_os_string()],
            env: with(TELEMETRY_ON, vec![("DD_LAMBDA_HANDLER".into(), dylib_handler.clone())]),
            task_root: layout.release_dir.clone(),
            goals: dylib_goals,
            prerequisites: vec![built("bootstrap", &bootstrap), built("the echo dylib", &dylib)],
        },
        Case {
            id: "a-off",
            title: "bootstrap + echo dylib, telemetry off",
            command: vec![bootstrap.clone().into_os_string()],
            env: with(TELEMETRY_OFF, vec![("DD_LAMBDA_HANDLER".into(), dylib_handler)]),
            task_root: layout.release_dir.clone(),
            goals: dylib_goals,
            prerequisites: vec![built("bootstrap", &bootstrap), built("the echo dylib", &dylib)],
        },
        Case {
            id: "b",
            title: "lambda_runtime echo (AWS's crate)",
            command: vec![lambda_runtime_echo.clone().into_os_string()],
            env: Vec::new(),
            task_root: layout.release_dir.clone(),
            goals: CaseGoals::default(),
            prerequisites: vec![built("lambda-runtime-echo", &lambda_runtime_echo)],
        },
        Case {
            id: "c",
            title: "bare loop (next -> response)",
            command: vec![bare_loop.clone().into_os_string()],
            env: Vec::new(),
            task_root: layout.release_dir.clone(),
            goals: CaseGoals::default(),
            prerequisites: vec![built("bare-loop", &bare_loop)],
        },
        Case {
            id: "d",
            title: "lambda_runtime echo behind bootstrap (exec)",
            command: vec![bootstrap.clone().into_os_string()],
            env: with(
                TELEMETRY_ON,
                vec![("DD_LAMBDA_HANDLER".into(), lambda_runtime_echo.display().to_string())],
            ),
            task_root: layout.release_dir.clone(),
            goals: CaseGoals::default(),
            prerequisites: vec![built("bootstrap", &bootstrap), built("lambda-runtime-echo", &lambda_runtime_echo)],
        },
        Case {
            id: "e",
            title: "awslambdaric echo behind bootstrap (exec)",
            command: vec![bootstrap.clone().into_os_string()],
            env: with(
                TELEMETRY_ON,
                vec![(
                    "DD_LAMBDA_HANDLER".into(),
                    format!("{} -m awslambdaric handler.echo", python.display()),
                )],
            ),
            task_root: python_root.clone(),
            goals: CaseGoals::default(),
            prerequisites: vec![built("bootstrap", &bootstrap), venv()],
        },
        Case {
            id: "e-direct",
            title: "awslambdaric echo (direct)",
            command: awslambdaric("handler.echo"),
            env: Vec::new(),
            task_root: python_root.clone(),
            goals: CaseGoals::default(),
            prerequisites: vec![venv()],
        },
        Case {
            id: "f",
            title: "awslambdaric echo wrapped by datadog-lambda",
            command: awslambdaric("datadog_lambda.handler.handler"),
            // datadog-lambda's own wrapper reads the real handler from DD_LAMBDA_HANDLER.
            env: with(TELEMETRY_ON, vec![("DD_LAMBDA_HANDLER".into(), "handler.echo".into())]),
            task_root: python_root,
            goals: CaseGoals::default(),
            prerequisites: vec![venv()],
        },
    ]
}

/// The cases named in `ids`, in that order.
pub fn select(catalogue: &[Case], ids: &[String]) -> Result<Vec<Case>, BenchError> {
    ids.iter()
        .map(|id| {
            catalogue.iter().find(|c| c.id == id).cloned().ok_or_else(|| {
                let known: Vec<&str> = catalogue.iter().map(|c| c.id).collect();
                BenchError::UnknownCase(id.clone(), known.join(", "))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            release_dir: PathBuf::from("/repo/target/release"),
            repo_root: PathBuf::from("/repo"),
            python: PathBuf::from("/repo/.venv/bin/python"),
        }
    }

    #[test]
    fn case_a_loads_the_echo_export_of_the_release_dylib() {
        let all = catalogue(&layout());
        let a = &select(&all, &["a".to_owned()]).unwrap()[0];
        assert_eq!(a.command, vec![OsString::from("/repo/target/release/bootstrap")]);
        let handler = a.env.iter().find(|(k, _)| k == "DD_LAMBDA_HANDLER").unwrap();
        assert_eq!(handler.1, "/repo/target/release/libhandlers_example.so:echo");
        assert!(a.env.contains(&("DD_TRACE_ENABLED".to_owned(), "true".to_owned())));
    }

    #[test]
    fn every_comparison_names_known_cases_and_ids_are_unique() {
        let all = catalogue(&layout());
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len());
        for comparison in comparisons() {
            assert!(ids.contains(&comparison.numerator), "{comparison:?}");
            assert!(ids.contains(&comparison.denominator), "{comparison:?}");
        }
        for id in DEFAULT_CASES {
            assert!(ids.contains(id));
        }
    }

    #[test]
    fn an_unknown_case_lists_the_known_ones() {
        let err = select(&catalogue(&layout()), &["zz".to_owned()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`zz`") && text.contains("a, a-off, b, c"), "{text}");
    }

    #[test]
    fn a_missing_binary_names_the_build_command() {
        let err = catalogue(&layout())[0].check_prerequisites().unwrap_err();
        assert!(err.to_string().contains("cargo build --release --workspace"), "{err}");
    }
}
