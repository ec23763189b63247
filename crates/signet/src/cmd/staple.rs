//! `signet staple`: fetch a verified OCSP response for a server certificate and write it
//! where a TLS server staples it from (nginx `ssl_stapling_file`, HAProxy `.ocsp` files,
//! Envoy `ocsp_staple`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use signet_ca::{CertStatusKind, OcspResponseSigner};

use super::Refused;
use crate::client::parse_certificates;
use crate::files::write_atomic;
use signet_agent::staple::{DEFAULT_TIMEOUT, MAX_TIMEOUT, Staple, fetch_staple};
use signet_agent::workload::{ExitWith, exit};

#[derive(Debug, Args)]
#[command(after_long_help = "\
The response is verified before anything is written: a successful OCSP status, a signature by \
the issuer or by a responder the issuer certified with EKU OCSPSigning, the CertID of this \
certificate, thisUpdate not in the future and nextUpdate not passed. The file is the DER \
OCSPResponse, replaced atomically, mode 0644.

Exit status:
  0  the certificate is good; the staple was written.
  5  the responder says the certificate is revoked or unknown. A revoked answer is still \
written: it is the truth, and a client shown it refuses the certificate, as it should. An \
unknown answer is not written (the previous file, if any, is left in place): it means the \
responder does not know this certificate, usually a wrong --issuer or --url.
  1  no verified answer (responder unreachable, HTTP error, tryLater, bad signature, stale \
response, unreadable files); nothing was written.
  2  bad command line or input; nothing was asked or written.

Run it from cron (e.g. every hour, well inside the responder's nextUpdate) and reload the TLS \
server when the file changes.")]
pub struct StapleArgs {
    /// The server certificate, PEM or DER. In a chain file the first certificate is the leaf.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The certificate of the CA that issued it, PEM or DER (default: the second certificate
    /// in --cert).
    #[arg(long, value_name = "FILE")]
    issuer: Option<PathBuf>,
    /// Where to write the DER OCSP response (mode 0644, replaced atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The OCSP responder (default: the certificate's AIA OCSP URL). http:// only.
    #[arg(long)]
    url: Option<String>,
    /// Give up after this long, e.g. 10s (at most 5m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub async fn run(args: StapleArgs) -> anyhow::Result<()> {
    if args.timeout.is_zero() || args.timeout > MAX_TIMEOUT {
        return Err(Refused(format!(
            "--timeout must be between 1s and {} (the default is {})",
            humantime::format_duration(MAX_TIMEOUT),
            humantime::format_duration(DEFAULT_TIMEOUT)
        ))
        .into());
    }
    let chain = read_certificates(&args.cert)?;
    let leaf = chain
        .first()
        .with_context(|| format!("{} holds no certificate", args.cert.display()))?;
    let issuer = match &args.issuer {
        Some(path) => read_certificates(path)?
            .into_iter()
            .next()
            .with_context(|| format!("{} holds no certificate", path.display()))?,
        None => chain.get(1).cloned().with_context(|| {
            format!(
                "{} holds only the leaf; give the issuing CA with --issuer",
                args.cert.display()
            )
        })?,
    };

    let staple = fetch_staple(leaf, &issuer, args.url.as_deref(), args.timeout).await?;
    let summary = describe(&staple);
    match staple.response.status {
        CertStatusKind::Good => {
            write_atomic(&args.out, &staple.der, 0o644)?;
            println!("{}: {summary}", args.out.display());
            Ok(())
        }
        CertStatusKind::Revoked { .. } => {
            write_atomic(&args.out, &staple.der, 0o644)?;
            println!("{}: {summary}", args.out.display());
            Err(ExitWith::error(
                exit::NOT_GOOD,
                format!(
                    "the certificate is REVOKED ({summary}); the revoked staple was written to {}",
                    args.out.display()
                ),
            ))
        }
        CertStatusKind::Unknown => Err(ExitWith::error(
            exit::NOT_GOOD,
            format!(
                "the responder does not know this certificate ({summary}); {} was not written \
                 (check --issuer and --url)",
                args.out.display()
            ),
        )),
    }
}

/// One line: the status, its validity, the signer and the responder.
fn describe(staple: &Staple) -> String {
    let r = &staple.response;
    let status = match r.status {
        CertStatusKind::Good => "good".to_string(),
        CertStatusKind::Unknown => "unknown".to_string(),
        CertStatusKind::Revoked { at, reason } => match reason.and_then(reason_name) {
            Some(name) => format!("revoked at {} ({name})", signet_ca::rfc3339(at)),
            None => format!("revoked at {}", signet_ca::rfc3339(at)),
        },
    };
    let next = r
        .next_update
        .map(signet_ca::rfc3339)
        .unwrap_or_else(|| "none".into());
    let signer = match &r.signer {
        OcspResponseSigner::Issuer => "the issuer".to_string(),
        OcspResponseSigner::Delegated { serial, .. } => format!("delegated responder {serial}"),
    };
    format!(
        "{status}; thisUpdate {}, nextUpdate {next}; signed by {signer}; from {}",
        signet_ca::rfc3339(r.this_update),
        staple.url
    )
}

/// RFC 5280 section 5.3.1 CRLReason names.
fn reason_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "unspecified",
        1 => "keyCompromise",
        2 => "cACompromise",
        3 => "affiliationChanged",
        4 => "superseded",
        5 => "cessationOfOperation",
        6 => "certificateHold",
        8 => "removeFromCRL",
        9 => "privilegeWithdrawn",
        10 => "aACompromise",
        _ => return None,
    })
}

/// Every certificate in a PEM file, or the one certificate of a DER file.
fn read_certificates(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(vec![bytes]);
    }
    let certs =
        parse_certificates(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs.into_iter().map(|c| c.to_vec()).collect())
}
