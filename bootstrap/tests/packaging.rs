//! The packaging command, `scripts/package.sh`, as a user runs it: both zips are made,
//! `function.zip` has an executable `bootstrap` at its root, no packaged ELF needs a glibc
//! symbol above 2.26 (provided.al2), and the packaged bootstrap serves an invoke, alone and as a
//! layer, under `lambda-emulator`.
//!
//! Needs `unzip` (zipinfo) and binutils (readelf). The first run builds a release with
//! cargo-zigbuild (minutes on 2 cores); later runs reuse cargo's output and only re-zip.
// Tests may unwrap: clippy.toml allows it in #[test] functions, this extends it to their helpers.
#![allow(clippy::unwrap_used)]
mod emulator_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use emulator_support::EmulatorProcess;
use http::StatusCode;

/// Amazon Linux 2's glibc, the oldest that `provided.al2` offers.
fn glibc_floor() -> GlibcVersion {
    GlibcVersion(vec![2, 26])
}
const EXAMPLE_HANDLER: &str = "libhandlers_example.so";

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

/// Where the test's run of the packaging command left its zips (one run per test binary).
fn dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dist = Path::new(env!("CARGO_TARGET_TMPDIR")).join("packaging-dist");
        let mut command = Command::new(workspace_root().join("scripts/package.sh"));
        // `cargo test` gives a test variables of its own (CARGO_PKG_*, RUSTUP_TOOLCHAIN, an
        // LD_LIBRARY_PATH into target/debug, ...) that would make the nested release build look
        // different from a user's and rebuild it all: run the command as the user's shell would.
        for (name, _) in std::env::vars_os() {
            if is_set_by_cargo_test(&name.to_string_lossy()) {
                command.env_remove(&name);
            }
        }
        let output = command
            .env("DIST_DIR", &dist)
            .current_dir(workspace_root())
            .output()
            .expect("scripts/package.sh starts");
        assert!(
            output.status.success(),
            "scripts/package.sh failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        dist
    })
}

/// The variables cargo adds to a test's environment (those a user's shell has too, such as
/// CARGO_HOME, are kept).
fn is_set_by_cargo_test(name: &str) -> bool {
    const NAMES: [&str; 10] = [
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "CARGO_MANIFEST_PATH",
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "RUSTUP_TOOLCHAIN",
        "RUSTUP_TOOLCHAIN_SOURCE",
        "RUST_RECURSION_COUNT",
        "LD_LIBRARY_PATH",
    ];
    const PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_BIN_NAME"];
    NAMES.contains(&name) || PREFIXES.iter().any(|prefix| name.starts_with(prefix))
}

/// One entry of a zip as `zipinfo` lists it: its Unix mode string and its path.
#[derive(Debug, PartialEq)]
struct ZipEntry {
    mode: String,
    name: String,
}

fn zip_entries(zip: &Path) -> Vec<ZipEntry> {
    let listing = run_tool("zipinfo", &["-l".as_ref(), zip.as_os_str()]);
    listing
        .lines()
        // Entry lines start with the mode (`-rwxr-xr-x`); the header and total lines don't.
        .filter(|line| line.starts_with(['-', 'd', 'l']) && line.split_whitespace().count() >= 10)
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            ZipEntry {
                mode: fields[0].to_owned(),
                name: fields[9..].join(" "),
            }
        })
        .collect()
}

/// Extracts `zip` into `into` with `unzip`, which restores the recorded Unix modes as Lambda does.
fn unzip(zip: &Path, into: &Path) {
    run_tool("unzip", &["-q".as_ref(), zip.as_os_str(), "-d".as_ref(), into.as_os_str()]);
}

fn run_tool(program: &str, args: &[&std::ffi::OsStr]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); install the Debian packages unzip and binutils"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A `GLIBC_x.y[.z]` symbol version, compared numerically (2.3.4 < 2.26).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct GlibcVersion(Vec<u32>);

/// What an ELF file requires of glibc: the `GLIBC_*` names in its version-needs section
/// (`readelf -V`). A name that is not a number (`GLIBC_PRIVATE`) comes back as `Err`.
fn required_glibc(elf: &Path) -> Vec<Result<GlibcVersion, String>> {
    let dump = run_tool("readelf", &["-V".as_ref(), "-W".as_ref(), elf.as_os_str()]);
    let needs = dump
        .split("Version needs section")
        .nth(1)
        .unwrap_or_else(|| panic!("{} has no version-needs section:\n{dump}", elf.display()));
    needs
        .split_whitespace()
        .filter_map(|token| token.strip_prefix("GLIBC_"))
        .map(|version| {
            version
                .split('.')
                .map(str::parse::<u32>)
                .collect::<Result<Vec<_>, _>>()
                .map(GlibcVersion)
                .map_err(|_| format!("GLIBC_{version}"))
        })
        .collect()
}

/// The requirements above the floor, as `GLIBC_x.y` names; empty when the file loads on AL2.
fn glibc_above_floor(elf: &Path) -> Vec<String> {
    let required = required_glibc(elf);
    assert!(
        !required.is_empty(),
        "{} requires no GLIBC_ version at all: not a glibc-linked ELF, or readelf's output changed",
        elf.display()
    );
    required
        .into_iter()
        .filter_map(|version| match version {
            Ok(v) if v <= glibc_floor() => None,
            Ok(v) => Some(format!("GLIBC_{}", v.0.iter().map(u32::to_string).collect::<Vec<_>>().join("."))),
            Err(name) => Some(name),
        })
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 == 0o111)
}

#[test]
fn function_zip_has_an_executable_bootstrap_at_its_root_beside_the_handler() {
    let entries = zip_entries(&dist().join("function.zip"));
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["bootstrap", EXAMPLE_HANDLER]);
    assert_eq!(entries[0].mode, "-rwxr-xr-x", "bootstrap is not stored as executable");

    let unpacked = tempfile::tempdir().unwrap();
    unzip(&dist().join("function.zip"), unpacked.path());
    assert!(is_executable(&unpacked.path().join("bootstrap")));
}

#[test]
fn layer_zip_holds_bootstrap_alone_for_opt() {
    // A layer is extracted to /opt and Lambda runs /opt/bootstrap, so it sits at the root.
    let entries = zip_entries(&dist().join("layer.zip"));
    assert_eq!(
        entries,
        [ZipEntry {
            mode: "-rwxr-xr-x".into(),
            name: "bootstrap".into()
        }]
    );
}

#[test]
fn packaged_binaries_need_no_glibc_above_2_26() {
    let unpacked = tempfile::tempdir().unwrap();
    unzip(&dist().join("function.zip"), unpacked.path());
    for file in ["bootstrap", EXAMPLE_HANDLER] {
        let above = glibc_above_floor(&unpacked.path().join(file));
        assert!(
            above.is_empty(),
            "{file} would not load on provided.al2 (glibc 2.26): it needs {above:?}"
        );
    }
}

#[test]
fn the_glibc_check_flags_a_binary_linked_against_a_newer_glibc() {
    // The control: the emulator is built by plain cargo against this machine's glibc (2.36 on
    // Debian 12), whose __libc_start_main is GLIBC_2.34, so the check must refuse it.
    let above = glibc_above_floor(Path::new(env!("CARGO_BIN_EXE_lambda-emulator")));
    assert!(
        above.iter().any(|name| name.starts_with("GLIBC_2.3")),
        "expected GLIBC_2.34 or newer among {above:?}; is this machine's glibc older than 2.34?"
    );
}

#[test]
fn glibc_versions_compare_as_numbers() {
    let v = |parts: &[u32]| GlibcVersion(parts.to_vec());
    assert!(v(&[2, 3, 4]) < v(&[2, 26]));
    assert!(v(&[2, 2, 5]) < v(&[2, 26]));
    assert!(v(&[2, 27]) > glibc_floor());
    assert!(v(&[2, 26]) <= glibc_floor());
}

/// Starts `bootstrap` under the emulator in `task_root` with the example echo handler, invokes
/// once, checks the invocation's metric line, and returns the reply's JSON.
async fn echo_once(bootstrap: &Path, task_root: &Path) -> serde_json::Value {
    let handler = format!("DD_LAMBDA_HANDLER={EXAMPLE_HANDLER}:echo");
    let emulator = EmulatorProcess::start_in(
        task_root,
        &["--env", &handler, "--env", "DD_FLUSH_TO_LOG=true"],
        &[bootstrap.to_str().unwrap()],
    );
    let reply = emulator.invoke(r#"{"packaged":true,"n":[1,2,3]}"#).await;
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{}\nstderr:\n{}",
        reply.text(),
        emulator.stderr.text()
    );
    assert_eq!(
        reply.header("x-amz-function-error"),
        None,
        "{}\nstderr:\n{}",
        reply.text(),
        emulator.stderr.text()
    );
    // The packaged binary carries the telemetry too: DD_FLUSH_TO_LOG writes the enhanced
    // metrics as Forwarder lines on stdout.
    if let Err(stdout) = emulator.stdout.wait_for("aws.lambda.enhanced.invocations", Duration::from_secs(10)) {
        panic!(
            "no enhanced invocations metric on stdout:\n{stdout}\nstderr:\n{}",
            emulator.stderr.text()
        );
    }
    reply.json()
}

#[tokio::test]
async fn packaged_bootstrap_serves_an_echo_invoke() {
    let task = tempfile::tempdir().unwrap();
    unzip(&dist().join("function.zip"), task.path());
    let reply = echo_once(&task.path().join("bootstrap"), task.path()).await;
    assert_eq!(reply, serde_json::json!({"packaged": true, "n": [1, 2, 3]}));
}

#[tokio::test]
async fn layer_bootstrap_serves_a_function_that_ships_only_its_handler() {
    // The function's own folder holds only the handler; bootstrap comes from the layer (/opt).
    let opt = tempfile::tempdir().unwrap();
    unzip(&dist().join("layer.zip"), opt.path());
    let function = tempfile::tempdir().unwrap();
    unzip(&dist().join("function.zip"), function.path());
    std::fs::remove_file(function.path().join("bootstrap")).unwrap();

    let reply = echo_once(&opt.path().join("bootstrap"), function.path()).await;
    assert_eq!(reply, serde_json::json!({"packaged": true, "n": [1, 2, 3]}));
}
