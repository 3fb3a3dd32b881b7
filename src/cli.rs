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
    Verify {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Rows to print per table and kind of difference.
        #[arg(long, default_value_t = 10)]
        show: usize,
        /// How long to wait for `run` to catch up with the database.
        #[arg(long, default_value_t = 300)]
        wait_secs: u64,
    },
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
    /// the changed columns (`--json`: the record as it is). Reads only; commits no offsets.
    Tail {
        /// The run's config: its brokers and [kafka.properties], and (when no topic is named)
        /// its kafka.topic template, whose topics are all followed, new ones as they appear.
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: Option<PathBuf>,
        /// Brokers (host:port,...) when no config is given.
        #[arg(long)]
        brokers: Option<String>,
        /// Topics to follow (default: every topic of the config's kafka.topic template).
        topics: Vec<String>,
        /// Start at the oldest record of each partition (default: only new records).
        #[arg(long)]
        from_beginning: bool,
        /// Print each record's JSON as it is.
        #[arg(long)]
        json: bool,
        /// Print heartbeats too (left out by default).
        #[arg(long)]
        heartbeats: bool,
        /// Stop once no record arrived for this many seconds (default: follow until Ctrl-C).
        #[arg(long)]
        idle_secs: Option<u64>,
        /// Stop after printing this many records.
        #[arg(long)]
        max: Option<u64>,
    },
    /// Read one topic between two offsets or two times (DataWorks' offline Kafka reader) into
    /// CSV, JSON lines or Parquet, then exit. Ranges include their begin and exclude their end.
    Export {
        /// The run's config (its brokers and [kafka.properties]); or give --brokers.
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: Option<PathBuf>,
        #[arg(long)]
        brokers: Option<String>,
        #[arg(long)]
        topic: String,
        /// One partition (default: all).
        #[arg(long)]
        partition: Option<i32>,
        #[arg(long)]
        begin_offset: Option<i64>,
        #[arg(long)]
        end_offset: Option<i64>,
        /// Record time, yyyymmddhhmmss, included.
        #[arg(long)]
        begin_datetime: Option<String>,
        /// Record time, yyyymmddhhmmss, excluded.
        #[arg(long)]
        end_datetime: Option<String>,
        /// Zone of the datetimes: UTC or an offset like +08:00.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Columns, comma-separated: __key__, __value__, __partition__, __offset__,
        /// __timestamp__, __headers__, a constant ('abc'), or a JSON path into the value
        /// (event_id, tag.desc).
        #[arg(long, value_delimiter = ',', default_value = "__key__,__value__")]
        column: Vec<String>,
        #[arg(long, value_enum, default_value_t = crate::tools::export::Format::Json)]
        format: crate::tools::export::Format,
        /// CSV field delimiter.
        #[arg(long, default_value_t = ',')]
        field_delimiter: char,
        /// How CSV writes a null.
        #[arg(long, default_value = "")]
        null_value: String,
        /// CSV: a first line with the column names.
        #[arg(long)]
        header: bool,
        /// Write here instead of stdout (required for Parquet).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Copy the matched tables into Kafka once, as they are now (DataWorks' offline Kafka
    /// writer), then exit: snapshot records (sequenceId "-1", eventTime -1), or plain text or
    /// JSON records. No slot, no binlog position, no state.
    Copy {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Tables as `schema.table` / `db.table`, comma-separated (default: source.tables).
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        #[arg(long, value_enum, default_value_t = crate::tools::copy::Format::Dataworks)]
        format: crate::tools::copy::Format,
        /// Every table's records into this topic (default: the kafka.topic template).
        #[arg(long)]
        topic: Option<String>,
        /// text: the field delimiter.
        #[arg(long, default_value = ",")]
        field_delimiter: String,
        /// text: how a null is written.
        #[arg(long, default_value = "")]
        null_value: String,
        /// text / json: the key is these columns (0-based positions, comma-separated), joined
        /// by the delimiter; none: a null key.
        #[arg(long, value_delimiter = ',')]
        key_index: Vec<usize>,
        /// json: a column's JSON type, `column=JSON_STRING|JSON_NUMBER|JSON_BOOL|JSON_ARRAY|
        /// JSON_MAP|JSON_BASE64|JSON_HEX` (repeatable; default from the column's type).
        #[arg(long)]
        json_type: Vec<String>,
        /// The producer's acks: all (default), 1 or 0.
        #[arg(long)]
        acks: Option<String>,
    },
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
        Command::Validate { config } => match load(&config) {
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
        },
        Command::Copy {
            config,
            tables,
            format,
            topic,
            field_delimiter,
            null_value,
            key_index,
            json_type,
            acks,
        } => {
            let mut cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if !tables.is_empty() {
                cfg.source.set_tables(tables);
            }
            let mut json_types = std::collections::BTreeMap::new();
            for jt in &json_type {
                match jt
                    .split_once('=')
                    .and_then(|(c, t)| Some((c, crate::format::plain::JsonType::parse(t)?)))
                {
                    Some((c, t)) => {
                        json_types.insert(c.to_string(), t);
                    }
                    None => {
                        eprintln!("error: --json-type `{jt}` is not column=JSON_STRING|JSON_NUMBER|JSON_BOOL|JSON_ARRAY|JSON_MAP|JSON_BASE64|JSON_HEX\n  fix: write it as e.g. --json-type tags=JSON_ARRAY");
                        return ExitCode::from(2);
                    }
                }
            }
            if let Some(a) = &acks {
                if !["all", "-1", "1", "0"].contains(&a.as_str()) {
                    eprintln!("error: --acks `{a}` is not all, 1 or 0\n  fix: give --acks all (the default), 1 or 0");
                    return ExitCode::from(2);
                }
            }
            let opts = crate::tools::copy::Options {
                format,
                topic,
                delimiter: field_delimiter,
                null_value,
                key_indexes: key_index,
                json_types,
                acks,
            };
            match rt.block_on(crate::tools::copy::copy(&cfg, &opts)) {
                Ok((t, n)) => {
                    let mut out = std::io::stdout().lock();
                    stdout_done(
                        writeln!(out, "copied {n} rows of {t} table(s)"),
                        ExitCode::SUCCESS,
                    )
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Export {
            config,
            brokers,
            topic,
            partition,
            begin_offset,
            end_offset,
            begin_datetime,
            end_datetime,
            timezone,
            column,
            format,
            field_delimiter,
            null_value,
            header,
            output,
        } => {
            let kafka = match (&config, brokers) {
                (_, Some(b)) => crate::config::KafkaConfig::with_brokers(&b),
                (Some(path), None) => match load(path) {
                    Ok(c) => c.kafka,
                    Err(code) => return code,
                },
                (None, None) => {
                    eprintln!("error: `rowstream export` needs the brokers\n  fix: give --config (the run's config) or --brokers host:port");
                    return ExitCode::from(2);
                }
            };
            let time = |s: Option<String>| -> Result<Option<i64>, String> {
                s.map(|s| crate::tools::export::parse_datetime(&s, &timezone))
                    .transpose()
            };
            let (begin_time, end_time) = match (time(begin_datetime), time(end_datetime)) {
                (Ok(b), Ok(e)) => (b, e),
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("error: {e}\n  fix: write times as yyyymmddhhmmss, e.g. --begin-datetime 20241115000000");
                    return ExitCode::from(2);
                }
            };
            if format == crate::tools::export::Format::Parquet && output.is_none() {
                eprintln!("error: Parquet is not written to a terminal\n  fix: give --output FILE.parquet");
                return ExitCode::from(2);
            }
            let opts = crate::tools::export::Options {
                topic,
                partition,
                begin_offset,
                end_offset,
                begin_time,
                end_time,
                columns: column
                    .iter()
                    .map(|c| crate::tools::export::Column::parse(c))
                    .collect(),
                format,
                delimiter: field_delimiter,
                null: null_value,
                header,
                progress: output.is_some(),
            };
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(p) => match std::fs::File::create(p) {
                    Ok(f) => Box::new(std::io::BufWriter::new(f)),
                    Err(e) => {
                        eprintln!("error: cannot create {}: {e}", p.display());
                        return ExitCode::from(1);
                    }
                },
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            match crate::tools::export::export(&kafka, &opts, &mut out) {
                Ok(n) => {
                    if output.is_some() {
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
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Sink {
            config,
            idle_exit_secs,
        } => {
            let cfg = match crate::config::LakeConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let run = async {
                let stop = crate::connect::run::sigterm();
                crate::lake::run(
                    &cfg,
                    stop,
                    idle_exit_secs.map(std::time::Duration::from_secs),
                )
                .await
            };
            match rt.block_on(run) {
                Ok(w) => {
                    tracing::info!(files = w.files, rows = w.rows, "sink stopped");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Health {
            admin,
            config,
            ready,
        } => {
            let listen = match (admin, config) {
                (Some(a), _) => a,
                (None, Some(path)) => match load(&path) {
                    Ok(c) => match c.admin.listen {
                        Some(l) => l,
                        None => {
                            eprintln!("error: the config sets no admin.listen, so rowstream answers no health checks\n  fix: set admin.listen (e.g. \"0.0.0.0:8080\"), or give --admin host:port");
                            return ExitCode::from(2);
                        }
                    },
                    Err(code) => return code,
                },
                (None, None) => {
                    eprintln!("error: `rowstream health` needs the admin listener's address\n  fix: give --admin host:port or --config (with admin.listen)");
                    return ExitCode::from(2);
                }
            };
            say(rt.block_on(crate::connect::http::client::probe(&listen, ready)))
        }
        Command::Tail {
            config,
            brokers,
            topics,
            from_beginning,
            json,
            heartbeats,
            idle_secs,
            max,
        } => {
            let (kafka, skip) = match (&config, brokers) {
                (Some(path), b) => match load(path) {
                    Ok(mut c) => {
                        if let Some(b) = b {
                            c.kafka.brokers = b;
                        }
                        (c.kafka, vec![c.state.topic, c.state.history_topic])
                    }
                    Err(code) => return code,
                },
                (None, Some(b)) => (crate::config::KafkaConfig::with_brokers(&b), Vec::new()),
                (None, None) => {
                    eprintln!("error: `rowstream tail` needs the brokers\n  fix: give --config (the run's config) or --brokers host:port");
                    return ExitCode::from(2);
                }
            };
            let opts = crate::tools::tail::Options {
                topics,
                template: kafka.topic.clone(),
                skip,
                from_beginning,
                json,
                heartbeats,
                idle: idle_secs.map(std::time::Duration::from_secs),
                max,
            };
            let mut out = std::io::stdout().lock();
            match crate::tools::tail::tail(&kafka, &opts, &mut out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run {
            config,
            resnapshot,
            progress,
            progress_interval_secs,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match rt.block_on(crate::connect::run::run(
                cfg,
                resnapshot,
                progress,
                std::time::Duration::from_secs(progress_interval_secs.max(1)),
            )) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    // once: a JSON log line for machines, a plain line for people
                    match cli.log_format {
                        LogFormat::Json => tracing::error!(class = ?e.class(), "{e}"),
                        LogFormat::Text => eprintln!("error: {e}"),
                    }
                    ExitCode::from(1)
                }
            }
        }
        Command::Worker { config } => {
            let cfg = match crate::config::WorkerConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            match rt.block_on(crate::connect::worker::worker(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Verify {
            config,
            show,
            wait_secs,
        } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let opts = crate::tools::verify::Options {
                show,
                wait: std::time::Duration::from_secs(wait_secs),
            };
            match rt.block_on(crate::tools::verify::verify(&cfg, &opts)) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::MigrateState { config, force } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            say(rt.block_on(crate::checkpoint::store::migrate(&cfg, force)))
        }
        Command::Snapshot { config, tables } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let Some(listen) = &cfg.admin.listen else {
                eprintln!("error: `rowstream snapshot` asks the running process through its admin listener, and admin.listen is not set\n  fix: set admin.listen (e.g. \"127.0.0.1:8081\") and restart `rowstream run`");
                return ExitCode::from(2);
            };
            say(rt.block_on(crate::connect::http::client::request_snapshot(
                listen, &tables,
            )))
        }
        Command::Check { config, fix } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            // the source's prerequisites, then the broker's
            let mut findings = rt.block_on(crate::source::check(&cfg, fix));
            findings.push(crate::kafka::check(&cfg.kafka));
            let failed = findings
                .iter()
                .filter(|f| f.level == crate::check::Level::Fail)
                .count();
            let code = if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
            let mut out = std::io::stdout().lock();
            stdout_done(crate::check::print_report(&findings, &mut out), code)
        }
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
