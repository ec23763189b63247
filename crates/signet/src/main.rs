//! The `signet` binary: parses the command line, sets up logging, and hands off. Each
//! command lives in `cmd/`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod config;
mod files;

#[derive(Debug, Parser)]
#[command(
    name = "signet",
    version,
    about = "A private certificate authority for mutual TLS"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new CA (root + issuing intermediate) in a data directory, or adopt an existing one.
    Init(cmd::init::InitArgs),
    /// Issue a certificate from a CSR.
    Issue(cmd::issue::IssueArgs),
    /// Apply database migrations.
    Migrate(cmd::migrate::MigrateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Init(args) => cmd::init::run(args).await,
            Command::Issue(args) => cmd::issue::run(args).await,
            Command::Migrate(args) => cmd::migrate::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let refused = e.downcast_ref::<cmd::Refused>().is_some();
            eprintln!("error: {e:#}");
            if refused {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
