//! The `signet` binary: parses the command line, sets up logging, and hands off. Each
//! command lives in `cmd/`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod binding;
mod client;
mod cmd;
mod config;
mod datadir;
mod files;
mod serve;

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
    /// Copy the SQLite database consistently while the server runs (PostgreSQL: pg_dump).
    Backup(cmd::backup::BackupArgs),
    /// Generate a key and get a certificate for it in one step: writes NAME.crt (with the
    /// chain) and NAME.key (0600).
    Certificate(cmd::certificate::CertificateArgs),
    /// Save (or show, or remove) the CA URL and pinned root the client commands use by
    /// default, like `step ca bootstrap`.
    Context(cmd::context::ContextArgs),
    /// Show what a certificate, chain, CSR, CRL or OCSP response says (PEM or DER; `-` reads
    /// standard input), as text or --json; --ocsp asks a certificate's OCSP responder.
    Inspect(cmd::inspect::InspectArgs),
    /// Mint a one-time provisioner token (JWT) for `signet issue`.
    Token(cmd::token::TokenArgs),
    /// Revoke a certificate on the server.
    Revoke(cmd::revoke::RevokeArgs),
    /// List certificates on the server (admin).
    List(cmd::list::ListArgs),
    /// Read the server's audit log (admin): issuances, renewals, revocations, refusals.
    Audit(cmd::audit::AuditArgs),
    /// Fetch the CA's root or chain from the server, or sign the root CA's CRL (root-crl).
    Ca(cmd::ca::CaArgs),
    /// Serve the REST API over HTTPS and the OCSP responder and CRLs over HTTP (initialising
    /// the data directory on first start).
    Serve(cmd::serve::ServeArgs),
    /// Run only the OCSP responder and CRL download point (plain HTTP), without the CA key,
    /// next to a `signet serve` that shares its database.
    Responder(cmd::responder::ResponderArgs),
    /// ACME: external account binding keys of `acme` provisioners (eab create|list|revoke).
    Acme(cmd::acme::AcmeArgs),
    /// Add, list or remove provisioners in signet.toml (`serve` applies changes on SIGHUP).
    Provisioner(cmd::provisioner::ProvisionerArgs),
    /// Fetch and verify an OCSP response for a server certificate, for stapling
    /// (nginx ssl_stapling_file, HAProxy, Envoy).
    Staple(cmd::staple::StapleArgs),
    /// Get this workload its first certificate with a bearer token (Kubernetes init
    /// container): writes ca.crt, tls.key and tls.crt.
    Bootstrap(cmd::bootstrap::BootstrapArgs),
    /// Keep a certificate fresh (the one `bootstrap` wrote, or --cert/--key), renewing with it
    /// over mTLS or with a renewal token its key signs (Kubernetes sidecar, cron).
    Renew(cmd::renew::RenewArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A server reports what it is doing (where it listens, the root fingerprint); the
    // one-shot commands stay quiet.
    let default_filter = match cli.command {
        Command::Serve(_) | Command::Responder(_) => {
            "warn,signet=info,signet_api=info,signet_acme=info,signet_responder=info"
        }
        // The workload's init container and sidecar say what they did.
        Command::Bootstrap(_) | Command::Renew(_) => "warn,signet=info,signet_agent=info",
        // Copying a large database is one statement that is slow by nature.
        Command::Backup(_) => "warn,sqlx::query=error",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        // Timestamps in RFC 3339, UTC (as every time Signet prints; the fields too).
        .with_timer(tracing_subscriber::fmt::time::SystemTime)
        // No colour codes in log files and journals.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
            Command::Backup(args) => cmd::backup::run(args).await,
            Command::Serve(args) => cmd::serve::run(args).await,
            Command::Responder(args) => cmd::responder::run(args).await,
            Command::Provisioner(args) => cmd::provisioner::run(args).await,
            Command::Acme(args) => cmd::acme::run(args).await,
            Command::Staple(args) => cmd::staple::run(args).await,
            Command::Token(args) => cmd::token::run(args).await,
            Command::Certificate(args) => cmd::certificate::run(args).await,
            Command::Inspect(args) => cmd::inspect::run(args).await,
            Command::Context(args) => cmd::context::run(args).await,
            Command::Revoke(args) => cmd::revoke::run(args).await,
            Command::List(args) => cmd::list::run(args).await,
            Command::Audit(args) => cmd::audit::run(args).await,
            Command::Ca(args) => cmd::ca::run(args).await,
            Command::Bootstrap(args) => cmd::bootstrap::run(args).await,
            Command::Renew(args) => cmd::renew::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cmd::describe(&e));
            ExitCode::from(cmd::exit_code(&e))
        }
    }
}
