//! `signet bootstrap`: its flags. What it does is the workload agent's
//! (`signet_agent::bootstrap`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use signet_agent::bootstrap::{BootstrapOptions, DEFAULT_TOKEN_FILE};
use signet_agent::error::EXIT_CODES_HELP;
use signet_ca::KeyType;

#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES_HELP)]
pub struct BootstrapArgs {
    /// The Signet API URL, e.g. https://signet.signet.svc:8443.
    #[arg(long, env = "SIGNET_CA_URL", value_name = "URL")]
    ca_url: String,
    /// Trust the CA root whose SHA-256 fingerprint is this: /v1/ca/root is fetched and
    /// accepted only if it matches (a mismatch exits 4).
    #[arg(long, env = "SIGNET_ROOT_FINGERPRINT", value_name = "sha256:HEX")]
    root_fingerprint: Option<String>,
    /// Trust the root certificate(s) in this PEM file instead (with --root-fingerprint too,
    /// the file must hold that root).
    #[arg(long, env = "SIGNET_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// File holding the bearer token: a projected service-account token or a Signet
    /// provisioner token. Read anew on each attempt (the kubelet rotates it); `-` reads
    /// standard input once. Left at its default, a non-empty SIGNET_TOKEN is used instead.
    #[arg(long, env = "SIGNET_TOKEN_FILE", value_name = "FILE", default_value = DEFAULT_TOKEN_FILE)]
    token_file: PathBuf,
    /// Directory to write ca.crt, tls.key (0600) and tls.crt (leaf, then chain) to, the one
    /// `signet renew --dir` reads [default: /var/run/signet]. (`--out` is its old name.)
    #[arg(long, alias = "out", env = signet_agent::workload::DIR_ENV, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// server, client or peer [default: the provisioner's default].
    #[arg(long, env = "SIGNET_PROFILE")]
    profile: Option<String>,
    /// Lifetime to ask for, e.g. 24h [default: the profile's default_ttl].
    #[arg(long, env = "SIGNET_TTL")]
    ttl: Option<String>,
    /// Private key type: P-256, P-384 or Ed25519.
    #[arg(long, env = "SIGNET_KEY_TYPE", default_value = "P-256", value_parser = signet_agent::workload::parse_key_type)]
    key_type: KeyType,
    /// A name to request (DNS name, IP, URI or email); repeatable. Still subject to the
    /// server's policy. Without any, the names in a Signet token's `sans` claim are requested;
    /// for Kubernetes tokens the server fills in the service-account names.
    #[arg(
        long = "san",
        value_name = "NAME",
        env = "SIGNET_SANS",
        value_delimiter = ','
    )]
    sans: Vec<String>,
    /// Request a new certificate even if the current one is still good.
    #[arg(long)]
    force: bool,
    /// Give up when the CA has not answered (or kept answering 5xx/429) for this long.
    #[arg(long, env = "SIGNET_TIMEOUT", default_value = "2m", value_parser = signet_agent::workload::parse_duration)]
    timeout: Duration,
}

impl From<BootstrapArgs> for BootstrapOptions {
    fn from(args: BootstrapArgs) -> BootstrapOptions {
        BootstrapOptions {
            ca_url: args.ca_url,
            root_fingerprint: args.root_fingerprint,
            ca_file: args.ca_file,
            token_file: args.token_file,
            dir: args.dir,
            profile: args.profile,
            ttl: args.ttl,
            key_type: args.key_type,
            sans: args.sans,
            force: args.force,
            timeout: args.timeout,
        }
    }
}

pub async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    signet_agent::bootstrap::run(args.into()).await
}
