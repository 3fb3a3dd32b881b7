//! A private Postgres server for one test (its own data directory and port, run as the
//! `postgres` user), for what the shared server must not be put through: settings that would
//! invalidate other tests' slots (a tiny `max_slot_wal_keep_size`). Stopped (fast shutdown)
//! and removed when dropped.

use super::free_port;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    child: Child,
    settings: Vec<String>,
}

/// The binaries of the newest installed Postgres (scripts/services.sh installs one).
fn pg_bin() -> PathBuf {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("/usr/lib/postgresql (run scripts/services.sh up)")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort();
    PathBuf::from(format!(
        "/usr/lib/postgresql/{}/bin",
        versions.last().expect("an installed postgres")
    ))
}

/// The `postgres` user's uid and gid (Postgres refuses to run as root).
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres user")
    };
    (id("-u"), id("-g"))
}

impl PgServer {
    /// A server with 1 MB WAL segments (so a few MB of writes recycle WAL) and the given
    /// `-c name=value` settings on top of `wal_level=logical`.
    pub fn start(name: &str, settings: &[&str]) -> PgServer {
        let dir = std::env::temp_dir().join(format!("rowstream-pg-{name}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(ok.success());
        let data = dir.join("data");
        let (uid, gid) = postgres_ids();
        let out = Command::new(pg_bin().join("initdb"))
            .uid(uid)
            .gid(gid)
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--wal-segsize=1"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let settings: Vec<String> = settings.iter().map(|s| s.to_string()).collect();
        let child = spawn(&dir, port, &settings);
        PgServer {
            port,
            dir,
            child,
            settings,
        }
    }

    /// Shut the server down (`immediate`: SIGQUIT, no checkpoint, as after a crash; else
    /// SIGINT, Postgres' fast shutdown: clients are disconnected) and start it again on the
    /// same port and data.
    pub fn restart(&mut self, immediate: bool) {
        let sig = if immediate { "-QUIT" } else { "-INT" };
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.child = spawn(&self.dir, self.port, &self.settings);
    }

    /// `postgres://postgres@127.0.0.1:PORT/db`
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// A client of database `db` (once the server accepts connections).
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match tokio_postgres::connect(&self.url(db), tokio_postgres::NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    return c;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "connect {db}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Start `postgres` on the data directory in `dir`, as the postgres user; wait for its port.
fn spawn(dir: &std::path::Path, port: u16, settings: &[String]) -> Child {
    let (uid, gid) = postgres_ids();
    let mut cmd = Command::new(pg_bin().join("postgres"));
    cmd.uid(uid)
        .gid(gid)
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "wal_level=logical",
        ])
        .args(["-c", "min_wal_size=2MB", "-c", "max_wal_size=4MB"]);
    for s in settings {
        cmd.args(["-c", s]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postgres");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres in {} did not start",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT is Postgres' fast shutdown
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
