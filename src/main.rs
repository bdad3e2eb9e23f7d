//! The `sse-kafka` binary: parses flags, builds the config, runs the
//! library, maps errors to exit codes (0 clean shutdown, 1 runtime failure,
//! 2 bad configuration).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sse_kafka::sys::cpus;
use sse_kafka::{config, server};

#[derive(Parser)]
#[command(
    name = "sse-kafka",
    version,
    about = "Streams Kafka topics to HTTP clients as Server-Sent Events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy.
    Run {
        #[arg(long, env = "SSE_KAFKA_CONFIG")]
        config: PathBuf,
        /// Client listen address (overrides `listen`).
        #[arg(long, env = "SSE_KAFKA_LISTEN")]
        listen: Option<SocketAddr>,
        /// Kafka bootstrap brokers, comma separated (overrides `kafka.bootstrap`).
        #[arg(long, env = "SSE_KAFKA_BROKERS", value_delimiter = ',')]
        brokers: Option<Vec<String>>,
        /// CPUs to run shards on, e.g. `0-3,8` (default: every CPU the process may use).
        #[arg(long, env = "SSE_KAFKA_CPUS")]
        cpus: Option<String>,
        /// Admin listen address for /metrics and /health (overrides `admin_listen`).
        #[arg(long, env = "SSE_KAFKA_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
    },
    /// Validate the config and print the routes.
    Check {
        #[arg(long, env = "SSE_KAFKA_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config::load(&config) {
            Ok(cfg) => {
                print!("{}", cfg.describe_routes());
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
            let mut cfg = match config::load(&config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if let Some(listen) = listen {
                cfg.listen = listen;
            }
            if let Some(brokers) = brokers {
                cfg.kafka.bootstrap = brokers;
            }
            if let Some(admin) = admin_listen {
                cfg.admin_listen = Some(admin);
            }
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
