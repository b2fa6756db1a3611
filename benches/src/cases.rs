//! What the bench compares: each *case* is one runtime command run by `lambda-emulator`, with its
//! environment and the goals the issues set for it; each *comparison* is a ratio of two cases.
//!
//! Adding a case (a new runtime, a telemetry on/off variant) is one entry in [`catalogue`]; a
//! new ratio is one entry in [`comparisons`]. Cases run only when selected (`--cases`), so
//! entries whose runtime is not built yet cost nothing.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::BenchError;

/// The cases a plain `bench` run compares: every case that can run here. Python cases are
/// skipped, with the reason, when the venv is missing.
pub const DEFAULT_CASES: &[&str] = &[
    "a",
    "a-off",
    "a-raw",
    "a-metrics",
    "a-tracing",
    "a-custom",
    "a-api",
    "a-api-custom",
    "b",
    "c",
    "d",
    "d-off",
    "d-relay",
    "e",
    "e-direct",
    "f",
    "api-fast",
    "api-slow",
];

/// Datadog's switches for everything our bootstrap (or datadog-lambda) can do per invocation,
/// in Forwarder mode: metric and trace lines on stdout, so every byte stays on this machine.
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
    ("DD_SERVICE", "bench"),
];

/// Enhanced metrics only (issue 5's on/off pair).
pub const METRICS_ONLY: &[(&str, &str)] = &[
    ("DD_ENHANCED_METRICS", "true"),
    ("DD_TRACE_ENABLED", "false"),
    ("DD_LOGS_INJECTION", "false"),
    ("DD_FLUSH_TO_LOG", "true"),
    ("DD_SERVICE", "bench"),
];

/// Tracing only, with logs injection (issue 6's on/off pair).
pub const TRACING_ONLY: &[(&str, &str)] = &[
    ("DD_ENHANCED_METRICS", "false"),
    ("DD_TRACE_ENABLED", "true"),
    ("DD_LOGS_INJECTION", "true"),
    ("DD_FLUSH_TO_LOG", "true"),
    ("DD_SERVICE", "bench"),
];

/// Datadog API mode: custom metrics go to `DATADOG_HOST` (the bench's local intake, added when
/// the case starts) after the response is posted. Tracing off: the pair is about the intake.
pub const API_MODE: &[(&str, &str)] = &[
    ("DD_ENHANCED_METRICS", "true"),
    ("DD_TRACE_ENABLED", "false"),
    ("DD_LOGS_INJECTION", "false"),
    ("DD_FLUSH_TO_LOG", "false"),
    ("DD_API_KEY", "bench0000000000000000000000000000"),
    ("DD_SERVICE", "bench"),
];

/// Distinct tag sets the `a-custom` case's custom metric rotates over.
pub const CUSTOM_TAG_SETS: u32 = 100;

/// How long the slow intake of the `api-slow` case waits before it answers (issue 7).
pub const SLOW_INTAKE_DELAY_MS: u64 = 200;

/// What a case's function answers to the bench's event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The event itself.
    Echo,
    /// This JSON document.
    Json(&'static str),
}

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
    /// What the function answers (checked during the warm-up).
    pub answer: Answer,
    /// Cases that flush to a local Datadog intake the bench starts, answering after this many
    /// ms.
    pub intake_delay_ms: Option<u64>,
    /// Run apart, paced (see `timing::run_paced`), so a flush never overlaps the next invoke and
    /// the figure is the caller's response latency alone (the slow-intake pair).
    pub paced: bool,
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
    let ratio = |numerator, denominator, goal_max, meaning| Comparison {
        numerator,
        denominator,
        goal_max,
        meaning,
    };
    vec![
        ratio(
            "a",
            "b",
            Some(1.0),
            "dylib echo, all telemetry on vs AWS's lambda_runtime echo (issues 3, 7)",
        ),
        ratio(
            "a",
            "c",
            Some(1.3),
            "dylib echo, all telemetry on vs the bare loop floor (issues 3, 7)",
        ),
        ratio(
            "a-raw",
            "c",
            None,
            "a with the raw_echo export (bytes back, no JSON parse in the handler) vs the bare loop: the runtime's own cost",
        ),
        ratio("a", "a-off", None, "all telemetry on vs off, dylib echo"),
        ratio("a-metrics", "a-off", Some(1.05), "enhanced metrics on vs off (issue 5)"),
        ratio(
            "a-tracing",
            "a-off",
            Some(1.10),
            "tracing + inferred span + logs injection on vs off (issue 6)",
        ),
        ratio(
            "a-api",
            "a-off",
            Some(1.05),
            "enhanced metrics on in Datadog API mode (a local intake) vs off (issue 5)",
        ),
        ratio(
            "a-api-custom",
            "a-off",
            Some(1.05),
            "enhanced + one custom metric per invoke in Datadog API mode (a local intake) vs all off (issue 5; its answer is 14 B)",
        ),
        ratio(
            "a-custom",
            "a",
            None,
            "one custom metric per invoke on top of a (its answer is 14 B, not the echo)",
        ),
        ratio(
            "d",
            "b",
            Some(1.10),
            "lambda_runtime echo behind our bootstrap (exec) vs run directly (issue 4)",
        ),
        ratio(
            "d-off",
            "b",
            Some(1.10),
            "the exec proxy alone: lambda_runtime echo behind our bootstrap, telemetry off, vs directly (issue 4)",
        ),
        ratio(
            "d-relay",
            "b",
            None,
            "the floor of any loopback proxy: lambda_runtime echo behind a byte relay vs directly",
        ),
        ratio(
            "d-off",
            "d-relay",
            None,
            "what our proxy costs above a byte relay (HTTP, hand-off to the lifecycle)",
        ),
        ratio("d", "d-off", None, "what telemetry adds in exec mode (lambda_runtime echo child)"),
        ratio("a-off", "b", None, "our dylib path without telemetry vs AWS's lambda_runtime"),
        ratio(
            "e",
            "e-direct",
            None,
            "awslambdaric echo behind our bootstrap, telemetry on, vs directly, none (issue 4)",
        ),
        ratio(
            "e",
            "f",
            Some(0.5),
            "Python echo: our bootstrap + telemetry vs datadog-lambda's wrapper (issue 7)",
        ),
        ratio("f", "e-direct", None, "what datadog-lambda's wrapper costs a Python function"),
        ratio(
            "api-slow",
            "api-fast",
            Some(1.05),
            "200 ms slow intake vs instant: caller's response latency (issue 7)",
        ),
    ]
}

/// Every case the bench knows.
pub fn catalogue(layout: &Layout) -> Vec<Case> {
    let bootstrap = layout.release("bootstrap");
    let dylib = layout.release("libhandlers_example.so");
    let lambda_runtime_echo = layout.release("lambda-runtime-echo");
    let bare_loop = layout.release("bare-loop");
    let tcp_relay = layout.release("tcp-relay");
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
    let env = |pairs: &[(&str, &str)], handler: String| -> Vec<(String, String)> {
        let mut env = vec![("DD_LAMBDA_HANDLER".to_owned(), handler)];
        env.extend(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        env
    };
    let dylib_goals = CaseGoals {
        cold_start_ms_max: Some(5.0),
        peak_rss_mb_max: Some(10.0),
    };
    let base = Case {
        id: "",
        title: "",
        command: vec![bootstrap.clone().into_os_string()],
        env: Vec::new(),
        task_root: layout.release_dir.clone(),
        goals: CaseGoals::default(),
        prerequisites: vec![built("bootstrap", &bootstrap), built("the example dylib", &dylib)],
        answer: Answer::Echo,
        intake_delay_ms: None,
        paced: false,
    };
    let dylib_case = |id, title, pairs: &[(&str, &str)], export: &str| Case {
        id,
        title,
        env: env(pairs, format!("{}:{export}", dylib.display())),
        goals: dylib_goals,
        answer: if export == "metric" {
            Answer::Json(r#"{"sent":true}"#)
        } else {
            Answer::Echo
        },
        ..base.clone()
    };

    // The paced pair is about a request made after every response, so both post after every
    // invoke (the seed's way) rather than batch.
    let paced_api_case = |id, title, delay_ms| {
        let mut case = Case {
            intake_delay_ms: Some(delay_ms),
            paced: true,
            goals: CaseGoals::default(),
            ..dylib_case(id, title, API_MODE, "metric")
        };
        case.env.push(("DD_SERVERLESS_FLUSH_STRATEGY".to_owned(), "end".to_owned()));
        case
    };

    vec![
        dylib_case("a", "bootstrap + echo dylib, all telemetry on", TELEMETRY_ON, "echo"),
        dylib_case("a-off", "bootstrap + echo dylib, telemetry off", TELEMETRY_OFF, "echo"),
        dylib_case(
            "a-raw",
            "bootstrap + raw_echo dylib (no JSON parse), all telemetry on",
            TELEMETRY_ON,
            "raw_echo",
        ),
        dylib_case("a-metrics", "bootstrap + echo dylib, enhanced metrics only", METRICS_ONLY, "echo"),
        dylib_case("a-tracing", "bootstrap + echo dylib, tracing only", TRACING_ONLY, "echo"),
        {
            let mut case = dylib_case(
                "a-custom",
                "bootstrap + metric dylib, all on + custom metric, 100 tag sets",
                TELEMETRY_ON,
                "metric",
            );
            // One custom metric per invoke, its tags rotating over 100 distinct sets (issue 5:
            // peak RSS after 10k invokes with 100 distinct custom-metric tag sets).
            case.env
                .push(("HANDLERS_EXAMPLE_METRIC_TAG_SETS".to_owned(), CUSTOM_TAG_SETS.to_string()));
            case
        },
        Case {
            // Run with the others: what enhanced metrics cost per invoke in API mode, where the
            // function's own custom metrics (none here) would go to the intake.
            intake_delay_ms: Some(0),
            ..dylib_case("a-api", "bootstrap + echo dylib, enhanced metrics, API mode", API_MODE, "echo")
        },
        Case {
            // One custom metric per invoke, sent to the intake as the flush strategy says
            // (`DD_SERVERLESS_FLUSH_STRATEGY`, default: after each invoke for the first 20,
            // then every 20 s while invokes keep coming).
            intake_delay_ms: Some(0),
            ..dylib_case(
                "a-api-custom",
                "bootstrap + metric dylib, enhanced + custom metric, API mode",
                API_MODE,
                "metric",
            )
        },
        paced_api_case("api-fast", "metric dylib, API mode, instant intake", 0),
        paced_api_case("api-slow", "metric dylib, API mode, 200 ms intake", SLOW_INTAKE_DELAY_MS),
        Case {
            id: "b",
            title: "lambda_runtime echo (AWS's crate)",
            command: vec![lambda_runtime_echo.clone().into_os_string()],
            prerequisites: vec![built("lambda-runtime-echo", &lambda_runtime_echo)],
            ..base.clone()
        },
        Case {
            id: "c",
            title: "bare loop (next -> response)",
            command: vec![bare_loop.clone().into_os_string()],
            prerequisites: vec![built("bare-loop", &bare_loop)],
            ..base.clone()
        },
        Case {
            id: "d",
            title: "lambda_runtime echo behind bootstrap (exec)",
            env: env(TELEMETRY_ON, lambda_runtime_echo.display().to_string()),
            prerequisites: vec![built("bootstrap", &bootstrap), built("lambda-runtime-echo", &lambda_runtime_echo)],
            ..base.clone()
        },
        Case {
            id: "d-off",
            title: "lambda_runtime echo behind bootstrap, telemetry off",
            env: env(TELEMETRY_OFF, lambda_runtime_echo.display().to_string()),
            prerequisites: vec![built("bootstrap", &bootstrap), built("lambda-runtime-echo", &lambda_runtime_echo)],
            ..base.clone()
        },
        Case {
            id: "d-relay",
            title: "lambda_runtime echo behind a byte relay (tcp-relay)",
            command: vec![tcp_relay.clone().into_os_string(), lambda_runtime_echo.clone().into_os_string()],
            prerequisites: vec![built("tcp-relay", &tcp_relay), built("lambda-runtime-echo", &lambda_runtime_echo)],
            ..base.clone()
        },
        Case {
            id: "e",
            title: "awslambdaric echo behind bootstrap (exec)",
            env: env(TELEMETRY_ON, format!("{} -m awslambdaric handler.echo", python.display())),
            task_root: python_root.clone(),
            prerequisites: vec![built("bootstrap", &bootstrap), venv()],
            ..base.clone()
        },
        Case {
            id: "e-direct",
            title: "awslambdaric echo (direct, no telemetry)",
            command: awslambdaric("handler.echo"),
            task_root: python_root.clone(),
            prerequisites: vec![venv()],
            ..base.clone()
        },
        Case {
            id: "f",
            title: "awslambdaric echo wrapped by datadog-lambda",
            command: awslambdaric("datadog_lambda.handler.handler"),
            // datadog-lambda's own wrapper reads the real handler from DD_LAMBDA_HANDLER.
            env: env(TELEMETRY_ON, "handler.echo".to_owned()),
            task_root: python_root,
            prerequisites: vec![venv()],
            ..base
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
    fn the_custom_metric_case_rotates_over_a_hundred_tag_sets() {
        let all = catalogue(&layout());
        let custom = &select(&all, &["a-custom".to_owned()]).unwrap()[0];
        assert!(custom
            .env
            .contains(&("HANDLERS_EXAMPLE_METRIC_TAG_SETS".to_owned(), "100".to_owned())));
        assert!(custom.env.iter().any(|(k, v)| k == "DD_LAMBDA_HANDLER" && v.ends_with(":metric")));
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
    fn telemetry_pairs_differ_only_in_their_switches_and_api_cases_use_an_intake() {
        let all = catalogue(&layout());
        let get = |id: &str| select(&all, &[id.to_owned()]).unwrap().remove(0);
        let flag = |case: &Case, key: &str| case.env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let (on, off, metrics, tracing) = (get("a"), get("a-off"), get("a-metrics"), get("a-tracing"));
        for case in [&on, &off, &metrics, &tracing] {
            assert_eq!(case.command, on.command);
            assert_eq!(flag(case, "DD_LAMBDA_HANDLER"), flag(&on, "DD_LAMBDA_HANDLER"));
            assert_eq!(flag(case, "DD_FLUSH_TO_LOG").as_deref(), Some("true"));
            assert_eq!(case.intake_delay_ms, None);
        }
        assert_eq!(flag(&metrics, "DD_ENHANCED_METRICS").as_deref(), Some("true"));
        assert_eq!(flag(&metrics, "DD_TRACE_ENABLED").as_deref(), Some("false"));
        assert_eq!(flag(&tracing, "DD_ENHANCED_METRICS").as_deref(), Some("false"));
        assert_eq!(flag(&tracing, "DD_TRACE_ENABLED").as_deref(), Some("true"));
        assert_eq!(flag(&off, "DD_TRACE_ENABLED").as_deref(), Some("false"));

        let (fast, slow) = (get("api-fast"), get("api-slow"));
        assert_eq!((fast.intake_delay_ms, slow.intake_delay_ms), (Some(0), Some(200)));
        assert!(fast.paced && slow.paced);
        let api = get("a-api");
        assert!(!api.paced && api.intake_delay_ms == Some(0));
        assert_eq!(flag(&api, "DD_LAMBDA_HANDLER"), flag(&on, "DD_LAMBDA_HANDLER"));
        assert_eq!(flag(&api, "DD_FLUSH_TO_LOG").as_deref(), Some("false"));
        assert_eq!(flag(&api, "DD_ENHANCED_METRICS").as_deref(), Some("true"));
        assert_eq!(flag(&api, "DD_TRACE_ENABLED").as_deref(), Some("false"));
        assert_eq!(fast.env, slow.env);
        assert_eq!(flag(&slow, "DD_FLUSH_TO_LOG").as_deref(), Some("false"));
        assert!(flag(&slow, "DD_LAMBDA_HANDLER").unwrap().ends_with(":metric"));
        assert_eq!(flag(&slow, "DD_SERVERLESS_FLUSH_STRATEGY").as_deref(), Some("end"));
        let custom = get("a-api-custom");
        assert!(!custom.paced && custom.intake_delay_ms == Some(0));
        assert!(flag(&custom, "DD_LAMBDA_HANDLER").unwrap().ends_with(":metric"));
        assert_eq!(flag(&custom, "DD_FLUSH_TO_LOG").as_deref(), Some("false"));
        assert_eq!(flag(&custom, "DD_SERVERLESS_FLUSH_STRATEGY"), None, "the default strategy");
        assert_eq!(slow.answer, Answer::Json(r#"{"sent":true}"#));
    }

    #[test]
    fn an_unknown_case_lists_the_known_ones() {
        let err = select(&catalogue(&layout()), &["zz".to_owned()]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`zz`") && text.contains("a, a-off, a-raw, a-metrics"), "{text}");
    }

    #[test]
    fn a_missing_binary_names_the_build_command() {
        let err = catalogue(&layout())[0].check_prerequisites().unwrap_err();
        assert!(err.to_string().contains("cargo build --release --workspace"), "{err}");
    }
}
