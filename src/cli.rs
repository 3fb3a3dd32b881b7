//! Command line: `run`, `check`, `validate`.
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "rowstream",
    version,
    about = "Stream every row change of Postgres into Kafka, in the DataWorks JSON format"
)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "ROWSTREAM_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Snapshot, then stream changes into Kafka until SIGTERM/SIGINT.
    Run {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
    },
    /// Report every missing prerequisite on the database and the broker, with its fix.
    Check {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
        /// Apply the safe fixes (publication, DDL capture triggers).
        #[arg(long)]
        fix: bool,
    },
    /// Validate the config file (and ROWSTREAM_* overrides) and print it with secrets redacted.
    Validate {
        #[arg(short, long, env = "ROWSTREAM_CONFIG")]
        config: PathBuf,
    },
}
