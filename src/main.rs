//! Thin entry: CLI → config → telemetry → run → exit code.
//! Exit codes: 0 success, 1 runtime failure or failed check, 2 invalid config or usage.
use clap::Parser;
use rowstream::cli::{Cli, Command, LogFormat};
use rowstream::config::Config;
use rowstream::source::postgres::check::{self, Level};
use std::process::ExitCode;
use std::time::Duration;

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
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => b.init(),
        LogFormat::Json => b.json().init(),
    }
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
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
                println!("config is valid:\n{c:#?}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Run { config } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match rt.block_on(rowstream::run::run(cfg)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { config, fix } => {
            let cfg = match load(&config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut findings = match cfg.source.kind {
                rowstream::config::SourceType::Postgres => rt.block_on(check::check(&cfg, fix)),
                rowstream::config::SourceType::Mysql => {
                    rt.block_on(rowstream::source::mysql::check::check(&cfg))
                }
            };
            findings.push(kafka_check(&cfg));
            let mut failed = 0;
            for f in &findings {
                let tag = match f.level {
                    Level::Ok => "ok  ",
                    Level::Warn => "WARN",
                    Level::Fail => {
                        failed += 1;
                        "FAIL"
                    }
                };
                println!("[{tag}] {}", f.what);
                if let Some(fix) = &f.fix {
                    println!("       fix: {fix}");
                }
            }
            if failed > 0 {
                println!("{failed} problem(s) block running rowstream");
                ExitCode::from(1)
            } else {
                println!("ready to run");
                ExitCode::SUCCESS
            }
        }
    }
}

fn kafka_check(cfg: &Config) -> check::Finding {
    use rdkafka::producer::{BaseProducer, Producer};
    let conf = rowstream::sink::kafka::producer_config(&cfg.kafka);
    let p: Result<BaseProducer, _> = conf.create();
    match p.map(|p| p.client().fetch_metadata(None, Duration::from_secs(5)).map(|m| m.brokers().len())) {
        Ok(Ok(n)) => check::Finding {
            level: Level::Ok,
            what: format!("kafka at {} answers ({n} broker(s))", cfg.kafka.brokers),
            fix: None,
        },
        Ok(Err(e)) | Err(e) => check::Finding {
            level: Level::Fail,
            what: format!("kafka at {} does not answer: {e}", cfg.kafka.brokers),
            fix: Some("check kafka.brokers, that the broker runs, and the TLS/SASL settings in [kafka.properties]".into()),
        },
    }
}
