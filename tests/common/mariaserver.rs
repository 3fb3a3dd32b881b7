//! A private MariaDB server for one test (its own datadir, port and socket, ROW binlog with
//! GTIDs and log_slave_updates), to build a replication topology (a primary and a GTID
//! replica) or to stop, kill and start again under a running rowstream. Stopped and removed
//! when dropped.

use super::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MariaServer {
    pub port: u16,
    dir: PathBuf,
    sock: PathBuf,
    /// `mariadbd` and its arguments, to start it again on the same datadir and port
    args: Vec<String>,
    child: Child,
}

impl MariaServer {
    pub fn start(name: &str, server_id: u32) -> MariaServer {
        MariaServer::start_with(name, server_id, &[])
    }

    /// A server with extra `mariadbd` options (TLS files, ...).
    pub fn start_with(name: &str, server_id: u32, extra: &[String]) -> MariaServer {
        let dir = std::env::temp_dir().join(format!("rowstream-my-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("data");
        // a private tmpdir: two bootstraps at once (tests run in parallel) must not meet there
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let ok = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success());
        let out = Command::new("mariadb-install-db")
            .arg("--user=mysql")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--auth-root-authentication-method=socket")
            .output()
            .expect("mariadb-install-db");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let sock = dir.join("sock");
        let mut args: Vec<String> = ["--no-defaults", "--user=mysql", "--bind-address=127.0.0.1"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        args.extend([
            format!("--datadir={}", data.display()),
            format!("--socket={}", sock.display()),
            format!("--tmpdir={}", tmp.display()),
            format!("--pid-file={}", dir.join("pid").display()),
            format!("--port={port}"),
            format!("--server-id={server_id}"),
            format!("--log-bin={}", data.join("bin").display()),
        ]);
        args.extend(
            [
                "--binlog-format=ROW",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--log-slave-updates",
                "--innodb-buffer-pool-size=32M",
            ]
            .iter()
            .map(|a| a.to_string()),
        );
        args.extend(extra.iter().cloned());
        let child = spawn(&args);
        let s = MariaServer {
            port,
            dir,
            sock,
            args,
            child,
        };
        s.wait_ready(name);
        // the anonymous users mariadb-install-db creates would shadow 'user'@'%' from localhost
        s.sql(
            "SET sql_log_bin = 0; DELETE FROM mysql.global_priv WHERE User = ''; FLUSH PRIVILEGES;",
        );
        s
    }

    fn wait_ready(&self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.try_sql("SELECT 1").0 {
            assert!(Instant::now() < deadline, "mariadb {name} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop the server as an operator does (SIGTERM: a clean shutdown, the binlog closed with
    /// a STOP event) or as a crash does (`kill9`: SIGKILL, the binlog left open), wait for it
    /// to exit, and start it again on the same datadir and port: it begins a new binlog file.
    pub fn restart(&mut self, kill9: bool) {
        let sig = if kill9 { "-KILL" } else { "-TERM" };
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let _ = self.child.wait();
        self.child = spawn(&self.args);
        self.wait_ready("restarted");
    }

    /// The server's binlog end: (file, offset).
    pub fn binlog_end(&self) -> (String, u64) {
        let out = self.sql("SHOW MASTER STATUS");
        let mut f = out.split('\t');
        let file = f.next().unwrap().to_string();
        let pos = f.next().unwrap().parse().unwrap();
        (file, pos)
    }

    fn try_sql(&self, sql: &str) -> (bool, String) {
        let out = Command::new("mariadb")
            .arg(format!("--socket={}", self.sock.display()))
            .args(["-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(if out.status.success() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
            .to_string(),
        )
    }

    /// Run `sql` as root; its output (tab-separated, no headers).
    pub fn sql(&self, sql: &str) -> String {
        let (ok, out) = self.try_sql(sql);
        assert!(ok, "{sql}: {out}");
        out
    }
}

fn spawn(args: &[String]) -> Child {
    Command::new("/usr/sbin/mariadbd")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mariadbd")
}

impl Drop for MariaServer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
