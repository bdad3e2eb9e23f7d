//! The `sse-kafka` binary: parses flags, builds the config (the file with the
//! flags' overrides, validated together), runs the library, maps errors to
//! exit codes (0 clean shutdown, 1 runtime failure, 2 bad configuration).

#![deny(unsafe_code)]
#![warn(rust_2018_idioms)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sse_kafka::config::{self, DocumentFormat, Flag, Overrides};
use sse_kafka::ops::build::LONG_VERSION;
use sse_kafka::ops::logs::{self, LogFormat};
use sse_kafka::server;
use sse_kafka::sys::cpus;

#[derive(Parser)]
#[command(
    name = "sse-kafka",
    version = LONG_VERSION,
    about = "Streams Kafka topics to HTTP clients as Server-Sent Events"
)]
struct Cli {
    /// Log filter: a level (`info`, `debug`, `trace`) for sse-kafka's own
    /// lines, other crates staying at `warn`; or `tracing` directives
    /// (`info,rskafka=debug`). Wins over RUST_LOG. Default: sse-kafka at
    /// info, other crates at warn.
    #[arg(long, global = true, env = "SSE_KAFKA_LOG")]
    log: Option<String>,
    /// How log lines are written to stderr: `text`, or `json` (one object
    /// per line) for log shippers.
    #[arg(long, global = true, value_enum, env = "SSE_KAFKA_LOG_FORMAT", default_value_t = Format::Text)]
    log_format: Format,
    #[command(subcommand)]
    command: Command,
}

/// `--log-format`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, env = "SSE_KAFKA_CONFIG")]
        config: PathBuf,
        // The overriding flags are named by config::Flag, whose names the
        // config's errors use, so an error names the flag as it is typed.
        /// Client listen address (overrides `listen`).
        #[arg(long = Flag::Listen.long(), env = Flag::Listen.env())]
        listen: Option<SocketAddr>,
        /// Kafka bootstrap brokers, comma separated (overrides `kafka.bootstrap`).
        #[arg(long = Flag::Brokers.long(), env = Flag::Brokers.env(), value_delimiter = ',')]
        brokers: Option<Vec<String>>,
        /// CPUs to run shards on, e.g. `0-3,8` (default: every CPU the process may use).
        #[arg(long, env = "SSE_KAFKA_CPUS")]
        cpus: Option<String>,
        /// Admin listen address for /metrics and /health (overrides `admin_listen`).
        #[arg(long = Flag::AdminListen.long(), env = Flag::AdminListen.env())]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate the config and print the routes.
    Check {
        #[arg(long, env = "SSE_KAFKA_CONFIG")]
        config: PathBuf,
    },
    /// Print the AsyncAPI 3.0 document of the routes (what `serve_asyncapi` serves).
    Asyncapi {
        #[arg(long, env = "SSE_KAFKA_CONFIG")]
        config: PathBuf,
        /// The document's form.
        #[arg(long, value_enum, default_value_t = Form::Yaml)]
        format: Form,
    },
}

/// `--format` of `sse-kafka asyncapi`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Form {
    Yaml,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = match cli.log_format {
        Format::Text => LogFormat::Text,
        Format::Json => LogFormat::Json,
    };
    if let Err(e) = logs::init(format, cli.log.as_deref()) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.describe_routes());
                for warning in cfg.warnings() {
                    eprintln!("warning: {warning}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Asyncapi { config, format } => match config::load(&config) {
            Ok(cfg) => {
                let format = match format {
                    Form::Yaml => DocumentFormat::Yaml,
                    Form::Json => DocumentFormat::Json,
                };
                print!("{}", cfg.asyncapi_document(format));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run {
            config,
            listen,
            brokers,
            cpus,
            admin_listen,
        } => {
            // Written over the file before it is validated, so they are
            // checked like the file's values.
            let overrides = Overrides {
                listen,
                admin_listen,
                brokers,
            };
            let cfg = match config::load_with(&config, &overrides) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let cpus = match cpus.as_deref().map(cpus::parse_cpu_list) {
                Some(Ok(list)) => list,
                Some(Err(e)) => {
                    eprintln!("error: --cpus: {e}");
                    return ExitCode::from(2);
                }
                None => match cpus::allowed_cpus() {
                    Ok(list) => list,
                    Err(e) => {
                        eprintln!("error: cannot read the CPU affinity: {e}");
                        return ExitCode::from(1);
                    }
                },
            };
            match server::run(cfg, &cpus) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}
