//! The command line as a user meets it: bad input gets one clear line and an exit code, never a
//! panic or a backtrace.
mod common;

use common::*;
use std::process::{Command, Stdio};

const MINIMAL: &str = r#"
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:5432/no_such_db_for_rowstream"
[kafka]
brokers = "127.0.0.1:9092"
"#;

fn write_config(name: &str, text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("rowstream-test-{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// `rowstream validate | head`: the reader is gone before rowstream writes; it exits 0 quietly.
#[test]
fn closed_stdout_is_not_a_panic() {
    let cfg = write_config("cli_pipe", MINIMAL);
    for args in [vec!["validate"], vec!["check"]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(bin())
            .args(&args)
            .arg("--config")
            .arg(&cfg)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        // validate succeeds; check fails on the missing database, and says so by its code only
        let want = if args[0] == "validate" { 0 } else { 1 };
        assert_eq!(out.status.code(), Some(want), "{args:?}: {stderr}");
    }
}

/// A database that does not exist is named, not reported as a bare "db error".
#[test]
fn missing_database_is_named() {
    let (code, stdout) = run_check("cli_nodb", MINIMAL);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "[FAIL] cannot connect to postgres at postgres://postgres@127.0.0.1:5432/no_such_db_for_rowstream: db error: FATAL: database \"no_such_db_for_rowstream\" does not exist"
        ),
        "{stdout}"
    );
    let refused = MINIMAL.replace("5432", "1");
    let (code, stdout) = run_check("cli_refused", &refused);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("Connection refused"), "{stdout}");
}

/// A state directory that cannot be created stops the run at once (before a slot is made),
/// with the cause once and the fix.
#[test]
fn unusable_state_dir_is_a_clear_error() {
    let cfg = write_config(
        "cli_state",
        &format!("{MINIMAL}[state]\ndir = \"/etc/passwd/rowstream-state\"\n"),
    );
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: state dir /etc/passwd/rowstream-state cannot be created or written: Not a directory (os error 20)\n  fix: set state.dir to a directory rowstream can create and write"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("Not a directory").count(), 1, "{stderr}");
}
