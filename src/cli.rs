//! Command line: `run`, `worker`, `check`, `validate`, `snapshot`, `verify`, `tail`, `export`,
//! `copy`, `sink`, `health`, `migrate-state`; turns each outcome into the exit code.
//!
//! Exit codes: 0 success, 1 runtime failure or a failed check, 2 invalid config or usage.
//! A failure is printed once, on stderr, with its fix when it has one.
use crate::config::Config;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "rowstream",
    version,
    about = "Stream every row change of PostgreSQL or MySQL/MariaDB into Kafka, in the DataWorks JSON format"
)]
pub(crate) struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ROWSTREAM_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Snapshot, then stream changes into Kafka until SIGTERM/SIGINT.
    Run {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Start over: forget the stored position and snapshot state, drop and recreate the
        /// Postgres slot, snapshot every table again. The way out when the log rowstream needs
        /// is gone (slot dropped or lost, binlog purged). Consumers see every row again.
        #[arg(long)]
        resnapshot: bool,
        /// Progress: `auto` shows a live display (snapshot bars, then a streaming status line)
        /// when stderr is a terminal and periodic log lines otherwise.
        #[arg(long, value_enum, default_value_t = crate::connect::progress::Mode::Auto, env = "ROWSTREAM_PROGRESS")]
        progress: crate::connect::progress::Mode,
        /// Seconds between progress log lines (when they are log lines).
        #[arg(long, default_value_t = 30, env = "ROWSTREAM_PROGRESS_INTERVAL_SECS")]
        progress_interval_secs: u64,
    },
    /// Report every missing prerequisite on the database and the broker, with its fix.
    Check {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Apply the safe fixes (publication, DDL capture triggers).
        #[arg(long)]
        fix: bool,
    },
    /// Snapshot tables again while `run` streams: no lock, every key's changes kept in order.
    /// Asks the running process through its admin listener (admin.listen).
    Snapshot {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Tables as `schema.table` (Postgres) or `db.table` (MySQL), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        tables: Vec<String>,
    },
    /// Run many connectors, added, changed and deleted over the Kafka Connect REST API
    /// (`worker.listen`); their configs are kept in a Kafka topic, their state too.
    Worker {
        #[arg(short, long, env = "ROWSTREAM_WORKER_CONFIG")]
        config: PathBuf,
    },
    /// Check the topics against the database: rebuild every matched table from its topic
    /// (latest image per key) and compare. Waits until `run` has delivered every change made
    /// before the check; pause writes for an exact answer. Exit 0: equal; 1: differences.
    Verify(crate::tools::verify::Args),
    /// Move a file state (state.dir: position, snapshot progress, sequenceId lease, MySQL
    /// schema history) into the Kafka state topics of the config (state.backend = "kafka",
    /// state.connector). Stop `rowstream run` first; afterwards it resumes from Kafka.
    MigrateState {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Replace a state the connector already has in Kafka.
        #[arg(long)]
        force: bool,
    },
    /// Follow the topics and print each change in one line: commit time, table, op, key and
    /// the changed columns, and each transaction marker (`--json`: the record as it is).
    /// Reads only; commits no offsets.
    Tail(crate::tools::tail::Args),
    /// Read one topic between two offsets or two times (DataWorks' offline Kafka reader) into
    /// CSV, JSON lines or Parquet, then exit. Ranges include their begin and exclude their end.
    Export(crate::tools::export::Args),
    /// Copy the matched tables into Kafka once, as they are now (DataWorks' offline Kafka
    /// writer), then exit: snapshot records (sequenceId "-1", eventTime -1), or plain text or
    /// JSON records. No slot, no binlog position, no state.
    Copy(crate::tools::copy::Args),
    /// Land topics as Parquet files under a directory or an object store (S3, GCS, Azure):
    /// `<topic>/partition=N/<topic>+N+<first offset>+<last offset>.parquet`, each file complete
    /// before it appears; a restart resumes from the file names. Until SIGTERM.
    Sink {
        #[arg(short, long, env = "ROWSTREAM_SINK_CONFIG")]
        config: PathBuf,
        /// Stop once no record arrived for this many seconds (every row read is in a file).
        #[arg(long)]
        idle_exit_secs: Option<u64>,
    },
    /// Ask a running rowstream's admin listener whether it is alive (`/health`) or ready
    /// (`/ready`); exit 0 when it is, 1 with the reasons when not. The container image's
    /// health check (it has no shell or curl).
    Health {
        /// The admin listener (`host:port`); default: admin.listen of the config.
        #[arg(long, env = "ROWSTREAM_ADMIN__LISTEN")]
        admin: Option<String>,
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: Option<PathBuf>,
        /// Ask `/ready` (connected, streaming or snapshotting, broker reachable) instead of
        /// `/health`.
        #[arg(long)]
        ready: bool,
    },
    /// Validate the config file (and ROWSTREAM_* overrides) and print the effective config as
    /// TOML (defaults filled in, secrets as ***).
    Validate {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
    },
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROWSTREAM_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(
                "info,librdkafka=warn,rdkafka=warn,tokio_postgres=warn",
            )
        });
    use std::io::IsTerminal as _;
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(|| crate::connect::progress::LogWriter);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // a panic (a bug, or a dependency's) is one log line, never a backtrace; the task that
    // panicked ends with an error its caller reports
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("internal error (please report it): {info}");
    }));
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match cli.command {
        Command::Run {
            config,
            resnapshot,
            progress,
            progress_interval_secs,
        } => run(
            &config,
            resnapshot,
            progress,
            progress_interval_secs,
            cli.log_format,
            &rt,
        ),
        Command::Check { config, fix } => check(&config, fix, &rt),
        Command::Snapshot { config, tables } => snapshot(&config, &tables, &rt),
        Command::Worker { config } => worker(&config, &rt),
        Command::Verify(a) => verify(&a, &rt),
        Command::MigrateState { config, force } => match load(&config) {
            Ok(cfg) => say(rt.block_on(crate::checkpoint::store::migrate(&cfg, force))),
            Err(code) => code,
        },
        Command::Tail(a) => tail(&a),
        Command::Export(a) => export(&a),
        Command::Copy(a) => copy(&a, &rt),
        Command::Sink {
            config,
            idle_exit_secs,
        } => sink(&config, idle_exit_secs, &rt),
        Command::Health {
            admin,
            config,
            ready,
        } => health(admin, config.as_deref(), ready, &rt),
        Command::Validate { config } => validate(&config),
    }
}

/// Print a usage error (its text names the fix); exit 2.
fn usage(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Print a runtime failure; exit 1.
fn failed(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

fn run(
    config: &Path,
    resnapshot: bool,
    progress: crate::connect::progress::Mode,
    interval_secs: u64,
    log_format: LogFormat,
    rt: &tokio::runtime::Runtime,
) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let every = std::time::Duration::from_secs(interval_secs.max(1));
    match rt.block_on(crate::connect::run::run(cfg, resnapshot, progress, every)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // once: a JSON log line for machines, a plain line for people
            match log_format {
                LogFormat::Json => tracing::error!(class = ?e.class(), "{e}"),
                LogFormat::Text => eprintln!("error: {e}"),
            }
            ExitCode::from(1)
        }
    }
}

fn check(config: &Path, fix: bool, rt: &tokio::runtime::Runtime) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // the source's prerequisites, then the broker's
    let mut findings = rt.block_on(crate::source::check(&cfg, fix));
    findings.push(crate::kafka::check(&cfg.kafka));
    let failed = findings
        .iter()
        .any(|f| f.level == crate::check::Level::Fail);
    let code = if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    };
    let mut out = std::io::stdout().lock();
    stdout_done(crate::check::print_report(&findings, &mut out), code)
}

fn snapshot(config: &Path, tables: &[String], rt: &tokio::runtime::Runtime) -> ExitCode {
    let cfg = match load(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(listen) = &cfg.admin.listen else {
        return usage("`rowstream snapshot` asks the running process through its admin listener, and admin.listen is not set\n  fix: set admin.listen (e.g. \"127.0.0.1:8081\") and restart `rowstream run`");
    };
    say(rt.block_on(crate::connect::http::client::request_snapshot(
        listen, tables,
    )))
}

fn worker(config: &Path, rt: &tokio::runtime::Runtime) -> ExitCode {
    match crate::config::WorkerConfig::load(config) {
        Ok(cfg) => match rt.block_on(crate::connect::worker::worker(cfg)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(e),
        },
        Err(e) => usage(e),
    }
}

fn verify(a: &crate::tools::verify::Args, rt: &tokio::runtime::Runtime) -> ExitCode {
    let cfg = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match rt.block_on(crate::tools::verify::verify(&cfg, &a.options())) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => failed(e),
    }
}

fn tail(a: &crate::tools::tail::Args) -> ExitCode {
    let (kafka, also, skip) = match (&a.config, &a.brokers) {
        (Some(path), b) => match load(path) {
            Ok(mut c) => {
                if let Some(b) = b {
                    c.kafka.brokers = b.clone();
                }
                // the transaction markers' topic, when the run writes them, and the
                // dead-letter topic, when it has one
                let mut also = match c.encode.transaction_markers {
                    true => vec![c.encode.transaction_topic],
                    false => Vec::new(),
                };
                also.extend(c.errors.topic().map(String::from));
                (c.kafka, also, vec![c.state.topic, c.state.history_topic])
            }
            Err(code) => return code,
        },
        (None, Some(b)) => (
            crate::config::KafkaConfig::with_brokers(b),
            Vec::new(),
            Vec::new(),
        ),
        (None, None) => {
            return usage("`rowstream tail` needs the brokers\n  fix: give --config (the run's config) or --brokers host:port")
        }
    };
    let opts = a.options(kafka.topic.clone(), also, skip);
    let mut out = std::io::stdout().lock();
    match crate::tools::tail::tail(&kafka, &opts, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => failed(e),
    }
}

fn export(a: &crate::tools::export::Args) -> ExitCode {
    let kafka = match (&a.config, &a.brokers) {
        (_, Some(b)) => crate::config::KafkaConfig::with_brokers(b),
        (Some(path), None) => match load(path) {
            Ok(c) => c.kafka,
            Err(code) => return code,
        },
        (None, None) => {
            return usage("`rowstream export` needs the brokers\n  fix: give --config (the run's config) or --brokers host:port")
        }
    };
    let opts = match a.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    let mut out: Box<dyn std::io::Write> = match &a.output {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return failed(format!("cannot create {}: {e}", p.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    match crate::tools::export::export(&kafka, &opts, &mut out) {
        Ok(n) => {
            if a.output.is_some() {
                tracing::info!(records = n, "export done");
            }
            ExitCode::SUCCESS
        }
        // a reader that went away (`export | head`) is not a failure
        Err(crate::tools::export::ExportError::Output(e))
            if e.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

fn copy(a: &crate::tools::copy::Args, rt: &tokio::runtime::Runtime) -> ExitCode {
    let mut cfg = match load(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if !a.tables.is_empty() {
        cfg.source.set_tables(a.tables.clone());
    }
    let opts = match a.options() {
        Ok(o) => o,
        Err(e) => return usage(e),
    };
    match rt.block_on(crate::tools::copy::copy(&cfg, &opts)) {
        Ok((t, n)) => {
            let mut out = std::io::stdout().lock();
            stdout_done(
                writeln!(out, "copied {n} rows of {t} table(s)"),
                ExitCode::SUCCESS,
            )
        }
        Err(e) => failed(e),
    }
}

fn sink(config: &Path, idle_exit_secs: Option<u64>, rt: &tokio::runtime::Runtime) -> ExitCode {
    let cfg = match crate::config::LakeConfig::load(config) {
        Ok(c) => c,
        Err(e) => return usage(e),
    };
    let idle = idle_exit_secs.map(std::time::Duration::from_secs);
    let run = async { crate::lake::run(&cfg, crate::connect::run::sigterm(), idle).await };
    match rt.block_on(run) {
        Ok(w) => {
            tracing::info!(files = w.files, rows = w.rows, "sink stopped");
            ExitCode::SUCCESS
        }
        Err(e) => failed(e),
    }
}

fn health(
    admin: Option<String>,
    config: Option<&Path>,
    ready: bool,
    rt: &tokio::runtime::Runtime,
) -> ExitCode {
    let listen = match (admin, config) {
        (Some(a), _) => a,
        (None, Some(path)) => match load(path) {
            Ok(c) => match c.admin.listen {
                Some(l) => l,
                None => return usage("the config sets no admin.listen, so rowstream answers no health checks\n  fix: set admin.listen (e.g. \"0.0.0.0:8080\"), or give --admin host:port"),
            },
            Err(code) => return code,
        },
        (None, None) => {
            return usage("`rowstream health` needs the admin listener's address\n  fix: give --admin host:port or --config (with admin.listen)")
        }
    };
    say(rt.block_on(crate::connect::http::client::probe(&listen, ready)))
}

fn validate(config: &Path) -> ExitCode {
    match load(config) {
        Ok(c) => {
            let mut out = std::io::stdout().lock();
            stdout_done(
                writeln!(
                    out,
                    "# config is valid; effective values (defaults filled in, secrets as ***):\n{}",
                    c.to_toml()
                ),
                ExitCode::SUCCESS,
            )
        }
        Err(code) => code,
    }
}

/// A command's one-line answer on stdout (exit 0), or its error on stderr (exit 1).
fn say(r: Result<String, impl std::fmt::Display>) -> ExitCode {
    match r {
        Ok(msg) => {
            let mut out = std::io::stdout().lock();
            stdout_done(writeln!(out, "{msg}"), ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// The exit code after writing to stdout: a reader that went away (`rowstream validate | head`)
/// is not an error; any other write failure is reported in one line.
fn stdout_done<T>(written: std::io::Result<T>, code: ExitCode) -> ExitCode {
    match written {
        Ok(_) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}
