//! `signet ca root` and `signet ca chain`: fetch the CA certificates from a server.
//!
//! `ca root` is how a new machine learns which root to trust. With `--root-fingerprint`, the
//! root is fetched once without certificate verification, kept only if its SHA-256 matches,
//! and then `/v1/ca/chain` is fetched again over a connection that trusts only that root, to
//! confirm the server really chains to it. With `--ca-file`, that file is trusted instead.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::Refused;
use crate::client::{
    Api, ClientArgs, certificate_pem, fetch_pinned_root, parse_certificates, read_certificates,
    single_certificate,
};
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Debug, Subcommand)]
enum CaCommand {
    /// Fetch the root certificate, checked against --root-fingerprint or --ca-file.
    Root(FetchArgs),
    /// Fetch the CA chain (issuing CA up to the root).
    Chain(FetchArgs),
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Write the PEM here (mode 0644) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data directory (for the default root_ca.crt of `ca chain`).
    #[arg(long, default_value = "signet-data")]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: CaArgs) -> anyhow::Result<()> {
    match args.command {
        CaCommand::Root(a) => root(a).await,
        CaCommand::Chain(a) => chain(a).await,
    }
}

fn emit(out: Option<&PathBuf>, pem: &str, what: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            write_atomic(path, pem.as_bytes(), 0o644)?;
            eprintln!("wrote the {what} to {}", path.display());
        }
        None => print!("{pem}"),
    }
    Ok(())
}

async fn root(args: FetchArgs) -> anyhow::Result<()> {
    let url = args.client.ca_url()?;
    let fingerprint = args.client.fingerprint()?;
    let identity = args.client.client_identity()?;
    let (api, root) = match (&args.client.ca_file, &fingerprint) {
        (Some(file), _) => {
            let api = Api::new(url, &read_certificates(file)?, identity)?;
            let text = api.get_text("/v1/ca/root", None).await?;
            let root = single_certificate(text.as_bytes()).context("the server's /v1/ca/root")?;
            (api, root)
        }
        (None, Some(fp)) => {
            let root = fetch_pinned_root(&url, fp).await?;
            let api = Api::new(url, std::slice::from_ref(&root), identity)?;
            (api, root)
        }
        (None, None) => {
            return Err(Refused(
                "pass --root-fingerprint sha256:HEX (as `signet init` printed it) or --ca-file root.pem"
                    .into(),
            )
            .into());
        }
    };
    if let Some(fp) = &fingerprint
        && !fp.matches(&root)
    {
        bail!(
            "ROOT FINGERPRINT MISMATCH: the server's root has fingerprint {}, not the expected {fp}; nothing was written",
            signet_ca::sha256_fingerprint(&root)
        );
    }
    // Prove the server's TLS certificate chains to this root (the pinned fetch did not check).
    let chain = api
        .get_text("/v1/ca/chain", None)
        .await
        .context("confirming that the server's TLS certificate chains to the fetched root")?;
    parse_certificates(chain.as_bytes()).context("the server's /v1/ca/chain")?;
    eprintln!("root {}", signet_ca::sha256_fingerprint(&root));
    emit(
        args.out.as_ref(),
        &certificate_pem(&root),
        "root certificate",
    )
}

async fn chain(args: FetchArgs) -> anyhow::Result<()> {
    let api = args.client.connect(&args.dir).await?;
    let text = api.get_text("/v1/ca/chain", None).await?;
    let certs = parse_certificates(text.as_bytes()).context("the server's /v1/ca/chain")?;
    if certs.is_empty() {
        bail!("the server's /v1/ca/chain holds no certificate");
    }
    let pem: String = certs.iter().map(|c| certificate_pem(c)).collect();
    emit(args.out.as_ref(), &pem, "CA chain")
}
