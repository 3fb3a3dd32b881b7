//! The rowstream binary as a process: start with a config, stop (SIGTERM), kill -9, `check`,
//! its log and its peak memory; each test's state dir and the config sections all tests share.

use super::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rowstream")
}

/// The state file of test `name`'s rowstream.
pub fn state_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rowstream-test-{name}/state.json"))
}

/// The stored state of test `name`'s rowstream, as JSON.
pub fn stored_state(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(state_file(name)).unwrap()).unwrap()
}

/// A clean state dir for test `name` (and no log of an earlier run).
pub fn state_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_file(std::env::temp_dir().join(format!("rowstream-test-{name}.log")));
    d
}

/// The [kafka], [heartbeat] and [state] sections every test config shares, then `rest`.
pub fn sink_sections(name: &str, middle: &str, rest: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    format!(
        r#"[kafka]
brokers = "{BROKER}"
topic = "{name}-{run}.{middle}.{{table}}"
partitions = 3
[heartbeat]
interval_ms = 1000
[state]
dir = "{dir}"
commit_interval_ms = 50
{rest}
"#,
        dir = dir.display(),
        run = run_id()
    )
}

/// `cfg` with its state in Kafka (`state.backend = "kafka"`, a connector and state topics of
/// this test run) and `state.dir` pointing at a directory that must never be created.
pub fn with_kafka_state(name: &str, cfg: &str) -> String {
    let dir = std::env::temp_dir().join(format!("rowstream-test-{name}"));
    let run = run_id();
    cfg.replace(
        &format!("[state]\ndir = \"{}\"", dir.display()),
        &format!(
            "[state]\nbackend = \"kafka\"\nconnector = \"{name}-{run}\"\ntopic = \"{name}-{run}-offsets\"\nhistory_topic = \"{name}-{run}-history\"\ndir = \"{}/never-created\"",
            dir.display()
        ),
    )
}

/// The directory `with_kafka_state` names and nothing may create.
pub fn never_created(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("rowstream-test-{name}/never-created"))
}

/// `rowstream verify --config cfg --wait-secs secs` to its end: (exit code, stdout + stderr).
pub fn run_verify(cfg: &std::path::Path, secs: u64) -> (Option<i32>, String) {
    let out = Command::new(bin())
        .args(["verify", "--config"])
        .arg(cfg)
        .args(["--wait-secs", &secs.to_string()])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

pub struct Rowstream {
    pub child: Child,
    pub log: PathBuf,
    pub cfg: PathBuf,
}

impl Rowstream {
    pub fn start(name: &str, cfg_text: &str) -> Rowstream {
        Rowstream::start_with(name, cfg_text, &[])
    }

    /// `rowstream run --config <cfg> <extra...>`.
    pub fn start_with(name: &str, cfg_text: &str, extra: &[&str]) -> Rowstream {
        Rowstream::spawn(name, "run", cfg_text, extra)
    }

    /// `rowstream worker --config <cfg_text>`.
    pub fn start_worker(name: &str, cfg_text: &str) -> Rowstream {
        Rowstream::spawn(name, "worker", cfg_text, &[])
    }

    fn spawn(name: &str, command: &str, cfg_text: &str, extra: &[&str]) -> Rowstream {
        let dir = std::env::temp_dir();
        let cfg = dir.join(format!("rowstream-test-{name}.toml"));
        std::fs::write(&cfg, cfg_text).unwrap();
        let log = dir.join(format!("rowstream-test-{name}.log"));
        let logf = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(bin())
            .args([command, "--config"])
            .arg(&cfg)
            .args(extra)
            .env("ROWSTREAM_LOG", "info,rowstream=debug")
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn rowstream");
        Rowstream { child, log, cfg }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> i32 {
        unsafe_kill(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "rowstream did not stop on SIGTERM:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for the process to end on its own (it is expected to fail); its exit code.
    pub async fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            assert!(
                Instant::now() < deadline,
                "rowstream kept running:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The run stops by itself with a setup error: exit 1, every one of `needles` in its log,
    /// no in-process retry on the way. Returns the log.
    pub async fn expect_setup_stop(&mut self, needles: &[&str]) -> String {
        let code = self.wait_exit(60).await;
        let log = self.log_text();
        assert_eq!(code, Some(1), "{log}");
        for n in needles {
            assert!(log.contains(n), "missing `{n}` in:\n{log}");
        }
        assert!(!log.contains("transient failure"), "{log}");
        log
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send signal `sig` (its name: `STOP`, `CONT`, `TERM`, ...) and return at once.
    pub fn signal(&self, sig: &str) {
        unsafe_kill(self.child.id(), sig);
    }

    pub fn assert_running(&mut self) {
        if let Some(s) = self.child.try_wait().unwrap() {
            panic!("rowstream exited early ({s}):\n{}", self.log_text());
        }
    }
}

impl Drop for Rowstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // a failed test shows what the process said (CI keeps no temp files)
            let log = self.log_text();
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| !l.contains("checkpoint stored"))
                .collect();
            let cut = lines.len().saturating_sub(40).max(40.min(lines.len()));
            eprintln!(
                "--- {} (checkpoints left out; the first 40 and the last 40 lines) ---",
                self.log.display()
            );
            for l in lines[..40.min(lines.len())].iter().chain(&lines[cut..]) {
                eprintln!("{l}");
            }
        }
    }
}

pub(crate) fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Peak RSS (VmHWM) of a process in KiB.
pub fn peak_rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `rowstream check --config <text>`: exit code and stdout.
pub fn run_check(name: &str, cfg: &str) -> (Option<i32>, String) {
    run_check_with(name, cfg, &[])
}

/// `rowstream check --config <text> <extra...>`: exit code and stdout.
pub fn run_check_with(name: &str, cfg: &str, extra: &[&str]) -> (Option<i32>, String) {
    let path = std::env::temp_dir().join(format!("rowstream-test-{name}-check.toml"));
    std::fs::write(&path, cfg).unwrap();
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(&path)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A port on 127.0.0.1 that nothing listens on now (tests never use fixed ports: another
/// program on the machine must not make them fail).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free `127.0.0.1:port`.
pub fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// One HTTP/1.1 request: the status code and the body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (code, body)
}

/// One HTTP/1.1 request that gives up instead of panicking or hanging: None when `addr` does
/// not accept within 2 s or the answer does not end within `secs` (a worker killed, or stopped
/// with SIGSTOP: the kernel still accepts its connections, nobody answers).
pub fn http_within(
    addr: &str,
    method: &str,
    path: &str,
    body: &str,
    secs: u64,
) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(secs))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(secs))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split_whitespace().nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// GET `path`: the whole response, head and body.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// One series' value from the `/metrics` of the admin listener at `addr`.
pub fn metric(addr: &str, series: &str) -> Option<f64> {
    let text = http_get(addr, "/metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Pause the connector of the `run` whose admin listener is `addr` (REST), and wait until it
/// is held (`rowstream_up` 0).
pub async fn pause_and_wait(addr: &str) {
    let (code, body) = http(addr, "PUT", "/connectors/rowstream/pause", None, "");
    assert_eq!(code, 202, "{body}");
    wait_for(30, "paused", || async {
        metric(addr, "rowstream_up") == Some(0.0)
    })
    .await;
}

/// `rowstream <args>`: its exit code, stdout and stderr.
pub fn rowstream(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rowstream <args>` that must succeed: its stdout.
pub fn rowstream_ok(args: &[&str]) -> String {
    let (code, stdout, stderr) = rowstream(args);
    assert_eq!(code, Some(0), "rowstream {args:?}: {stderr}");
    stdout
}

/// A program `scripts/services.sh up` installs into its tools venv (`kc`, `python`), in the
/// cache it uses (`ROWSTREAM_CACHE`, else `$XDG_CACHE_HOME/rowstream`, else
/// `~/.cache/rowstream`); panics naming the fix when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let cache = std::env::var("ROWSTREAM_CACHE").unwrap_or_else(|_| {
        let base = std::env::var("XDG_CACHE_HOME")
            .unwrap_or_else(|_| format!("{}/.cache", std::env::var("HOME").unwrap_or_default()));
        format!("{base}/rowstream")
    });
    let bin = PathBuf::from(format!("{cache}/tools-venv/bin/{name}"));
    assert!(
        bin.exists(),
        "{} is missing: `scripts/services.sh up` installs it",
        bin.display()
    );
    bin
}
