//! `signet renew`: its flags. What it does is the workload agent's
//! (`signet_agent::renew`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use signet_agent::error::EXIT_CODES_HELP;
use signet_agent::renew::RenewOptions;
use signet_ca::KeyType;

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct RenewArgs {
    /// The Signet API URL, e.g. https://signet.signet.svc:8443. The connection trusts only
    /// --ca-file and is authenticated by the certificate in --cert.
    #[arg(long, env = "SIGNET_CA_URL", value_name = "URL")]
    ca_url: String,
    /// Directory holding ca.crt, tls.key and tls.crt, as `signet bootstrap --dir` writes them
    /// [default: /var/run/signet]. (`--out` is an old name of it.)
    #[arg(long, alias = "out", env = signet_agent::workload::DIR_ENV, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The certificate to keep fresh: PEM, the leaf first, then its chain; rewritten on each
    /// renewal [default: DIR/tls.crt].
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM), replaced by a new key on each renewal (mode 0600)
    /// [default: DIR/tls.key].
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The CA root(s) to trust, PEM [default: DIR/ca.crt].
    #[arg(long, env = "SIGNET_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Type of the new private key made on each renewal: P-256, P-384 or Ed25519.
    #[arg(long, env = "SIGNET_KEY_TYPE", default_value = "P-256", value_parser = signet_agent::workload::parse_key_type)]
    key_type: KeyType,
    /// Lifetime to ask for [default: the profile's default_ttl].
    #[arg(long, env = "SIGNET_TTL")]
    ttl: Option<String>,
    /// Renew once if due (past two thirds of the lifetime), then exit; for cron and CI.
    #[arg(long)]
    once: bool,
    /// With --once: renew even if not due.
    #[arg(long, requires = "once")]
    force: bool,
    /// Run this command (with sh -c) after each renewal, e.g. "nginx -s reload".
    #[arg(long, value_name = "CMD")]
    exec: Option<String>,
    /// Send this signal (HUP, USR1, ...) to the process in --pid-file after each renewal.
    #[arg(long, requires = "pid_file", value_name = "SIG")]
    signal: Option<String>,
    /// File holding the process id that --signal goes to (read at each renewal).
    #[arg(long, requires = "signal", value_name = "FILE")]
    pid_file: Option<PathBuf>,
    /// Keep a verified OCSP staple (DER) for the certificate in this file: refreshed after
    /// each renewal and at half of its validity (with --once: fetched on every run).
    #[arg(long, value_name = "FILE")]
    staple_file: Option<PathBuf>,
    /// With --once: give up when the CA has not answered (or kept answering 5xx/429) for
    /// this long.
    #[arg(long, default_value = "2m", value_parser = signet_agent::workload::parse_duration)]
    timeout: Duration,
}

impl From<RenewArgs> for RenewOptions {
    fn from(args: RenewArgs) -> RenewOptions {
        RenewOptions {
            ca_url: args.ca_url,
            dir: args.dir,
            cert: args.cert,
            key: args.key,
            ca_file: args.ca_file,
            key_type: args.key_type,
            ttl: args.ttl,
            once: args.once,
            force: args.force,
            exec: args.exec,
            signal: args.signal,
            pid_file: args.pid_file,
            staple_file: args.staple_file,
            timeout: args.timeout,
        }
    }
}

pub async fn run(args: RenewArgs) -> anyhow::Result<()> {
    signet_agent::renew::run(args.into()).await
}
