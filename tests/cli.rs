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

/// `validate` prints the effective config as TOML: defaults filled in, secrets as `***`, and
/// the text (secrets filled back in) validates to the same output.
#[test]
fn validate_prints_toml_that_loads_back() {
    let cfg = write_config(
        "cli_validate",
        &MINIMAL.replace("postgres@", "postgres:hunter2@"),
    );
    let validate =
        |path: &std::path::Path| rowstream_ok(&["validate", "--config", path.to_str().unwrap()]);
    let printed = validate(&cfg);
    assert!(!printed.contains("hunter2"), "{printed}");
    for line in [
        "[source]\n",
        "url = \"postgres://postgres:***@127.0.0.1:5432/no_such_db_for_rowstream\"",
        "slot = \"rowstream\"",
        "tables = [\"public.*\"]",
        "[kafka]\n",
        "topic = \"{db}.{schema}.{table}\"",
        "[snapshot]\n",
        "chunk_pages = 4096",
        "interval_ms = 5000",
        "dir = \"./rowstream-state\"",
        "ready_max_checkpoint_age_ms = 300000",
    ] {
        assert!(printed.contains(line), "missing {line:?} in:\n{printed}");
    }
    // a MySQL key never shows on a Postgres config
    assert!(!printed.contains("chunk_rows"), "{printed}");
    let again = write_config("cli_validate2", &printed.replace(":***@", ":hunter2@"));
    assert_eq!(validate(&again), printed);
}

/// A server's refusal is printed once: one `error:` line with the server's text once, and the
/// fix.
#[test]
fn a_server_error_is_printed_once() {
    let cfg = write_config(
        "cli_myerr",
        r#"
[source]
type = "mysql"
url = "mysql://no_such_user_rs:pw@127.0.0.1:3306/mysql"
server_id = 4711
[kafka]
brokers = "127.0.0.1:9092"
[state]
dir = "/tmp/rowstream-test-cli-myerr"
"#,
    );
    let (code, _, stderr) = rowstream(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("error: ")).count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.matches("Access denied").count(), 1, "{stderr}");
    assert!(
        stderr.contains("error: cannot connect to mysql://no_such_user_rs:***@127.0.0.1:3306/mysql: ")
            && stderr.contains("\n  fix: check source.url, that the server runs, and the user's password and host grants"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw@"), "{stderr}");
}

/// `--help` names both sources and every subcommand a user needs.
#[test]
fn help_names_both_sources_and_the_commands() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("PostgreSQL or MySQL/MariaDB into Kafka"),
        "{text}"
    );
    for cmd in [
        "run", "check", "snapshot", "worker", "verify", "tail", "health", "validate",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "no `{cmd}` in:\n{text}"
        );
    }
}
