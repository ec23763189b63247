//! `signet issue`: have a Signet server sign a CSR (authenticated by a provisioner token or
//! the admin token), or with `--local`, sign it with the data directory's CA and record it,
//! without a server (for offline and break-glass use).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use signet_ca::{
    CaError, CertificateInfo, Csr, IssuingCa, Lifetime, OffsetDateTime, Profile,
    read_private_key_file,
};
use signet_store::{AuditEntry, NewCertificate};

use super::Refused;
use crate::client::{AdminArgs, Bearer, ClientArgs};
use crate::config::Config;
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Sign locally with the CA files in --dir instead of asking the server at --ca-url.
    #[arg(long)]
    local: bool,
    /// Data directory created by `signet init`.
    #[arg(long, default_value = "signet-data")]
    dir: PathBuf,
    /// The CSR, PEM or DER.
    #[arg(long)]
    csr: PathBuf,
    /// server, client or peer.
    #[arg(long, default_value = "server")]
    profile: String,
    /// Lifetime, e.g. 24h, 90m, 7d (default: the profile's default_ttl).
    #[arg(long)]
    ttl: Option<String>,
    /// Write the PEM chain (leaf, then issuing CA) here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Provisioner token (from `signet token`) authorising this request; without --local.
    #[arg(
        long,
        env = "SIGNET_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

/// Load the issuing CA named by the configuration, decrypting its key if needed.
pub fn load_issuing_ca(cfg: &Config) -> anyhow::Result<IssuingCa> {
    let passphrase = super::passphrase();
    // Name the file: a wrong or missing passphrase says nothing about which key.
    let key = read_private_key_file(&cfg.ca.issuing_key, passphrase.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("issuing CA key {}", cfg.ca.issuing_key.display()))?;
    let chain = std::fs::read_to_string(&cfg.ca.issuing_cert)
        .with_context(|| format!("reading {}", cfg.ca.issuing_cert.display()))?;
    let root = std::fs::read_to_string(&cfg.ca.root_cert)
        .with_context(|| format!("reading {}", cfg.ca.root_cert.display()))?;
    Ok(IssuingCa::new(&chain, &root, key, cfg.issuance_urls())?)
}

/// Who is asking, for the audit trail: the local OS user.
fn local_requester() -> String {
    use std::os::unix::fs::MetadataExt;
    let user = std::env::var("USER").ok().filter(|u| !u.is_empty());
    let uid = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    match (user, uid) {
        (Some(u), Some(id)) => format!("local:{u}(uid {id})"),
        (Some(u), None) => format!("local:{u}"),
        (None, Some(id)) => format!("local:uid {id}"),
        (None, None) => "local:unknown".into(),
    }
}

pub async fn run(args: IssueArgs) -> anyhow::Result<()> {
    if !args.local {
        return run_remote(args).await;
    }
    let cfg = Config::load_dir(&args.dir)?;
    let ca = load_issuing_ca(&cfg)?;
    let store = super::open_store(&cfg.database_url()).await?;
    let requester = local_requester();
    let audit = |outcome: &str, serial: Option<String>, detail: String| AuditEntry {
        actor: requester.clone(),
        action: "issue".into(),
        serial,
        outcome: outcome.into(),
        detail,
    };

    let csr_bytes =
        std::fs::read(&args.csr).with_context(|| format!("reading {}", args.csr.display()))?;
    let signed = (|| -> Result<_, CaError> {
        let profile: Profile = args.profile.parse()?;
        let ttl = args
            .ttl
            .as_deref()
            .map(str::parse::<Lifetime>)
            .transpose()?;
        let csr = Csr::from_pem_or_der(&csr_bytes)?;
        ca.issue(
            &csr,
            profile,
            cfg.profiles.limits(profile),
            ttl,
            &cfg.policy,
            OffsetDateTime::now_utc(),
        )
    })();
    let cert = match signed {
        Ok(cert) => cert,
        Err(e) if e.is_client_error() => {
            // The refusal is audited; nothing else is written.
            store
                .append_audit(&audit("refused", None, e.to_string()))
                .await
                .context("writing the audit record")?;
            store.close().await;
            return Err(Refused(e.to_string()).into());
        }
        Err(e) => return Err(e.into()),
    };

    let record = NewCertificate {
        serial: cert.serial.to_hex(),
        issuer: ca.subject().to_string(),
        issuer_key_id: hex::encode(ca.key_id()),
        subject: cert.subject.clone(),
        sans: cert.names.iter().map(|n| n.to_tagged()).collect(),
        profile: cert.profile.to_string(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        requester: requester.clone(),
        der: cert.der.clone(),
    };
    let detail = format!("profile={} names={}", cert.profile, record.sans.join(","));
    // Durably recorded (with its audit row, in one transaction) before anyone sees it.
    store
        .insert_certificate(&record, &audit("ok", Some(record.serial.clone()), detail))
        .await
        .context("recording the certificate")?;
    store.close().await;

    let mut pem = cert.pem();
    for c in ca.chain_pem() {
        pem.push_str(&c);
    }
    match &args.out {
        Some(out) => {
            write_atomic(out, pem.as_bytes(), 0o644)?;
            eprintln!(
                "issued serial {} (valid until {}) -> {}",
                record.serial,
                cert.not_after,
                out.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}

/// `POST /v1/certificates` request body.
#[derive(Debug, Serialize)]
struct IssueRequest<'a> {
    csr: &'a str,
    profile: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'a str>,
}

/// `POST /v1/certificates` answer.
#[derive(Debug, Deserialize)]
struct IssueResponse {
    serial_number: String,
    certificate: String,
    #[serde(default)]
    chain: Vec<String>,
    #[serde(default)]
    not_after: String,
}

/// Ask the server at --ca-url to sign the CSR.
async fn run_remote(args: IssueArgs) -> anyhow::Result<()> {
    // Check everything local before touching the network.
    let csr_bytes =
        std::fs::read(&args.csr).with_context(|| format!("reading {}", args.csr.display()))?;
    let csr = Csr::from_pem_or_der(&csr_bytes)
        .map_err(|e| Refused(format!("{}: {e}", args.csr.display())))?;
    args.profile
        .parse::<Profile>()
        .map_err(|e| Refused(e.to_string()))?;
    if let Some(ttl) = &args.ttl {
        ttl.parse::<Lifetime>()
            .map_err(|e| Refused(e.to_string()))?;
    }
    let csr_pem = match std::str::from_utf8(&csr_bytes) {
        Ok(text) if text.contains("-----BEGIN") => text.to_string(),
        _ => pem_rfc7468::encode_string(
            "CERTIFICATE REQUEST",
            pem_rfc7468::LineEnding::LF,
            &csr_bytes,
        )
        .context("encoding the CSR as PEM")?,
    };
    let bearer = match args.token.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(t) => Bearer::new(t, "the token")?,
        None => args.admin.credential(&args.dir, true)?.ok_or_else(|| {
            Refused(
                "no credential: pass --token (from `signet token`, or set SIGNET_TOKEN), \
                 or the admin token with --admin-token-file or SIGNET_ADMIN_TOKEN"
                    .into(),
            )
        })?,
    };

    let api = args.client.connect(&args.dir).await?;
    let body = IssueRequest {
        csr: &csr_pem,
        profile: &args.profile,
        ttl: args.ttl.as_deref(),
    };
    let issued: IssueResponse = api
        .post_json("/v1/certificates", &body, Some(&bearer))
        .await?;

    // The certificate must be for the key in our CSR.
    let leaf = crate::client::single_certificate(issued.certificate.as_bytes())
        .context("the certificate in the server's answer")?;
    let info =
        CertificateInfo::from_der(&leaf).context("the certificate in the server's answer")?;
    if info.spki_der != csr.spki_der() {
        bail!("the server returned a certificate for a different public key than the CSR's");
    }
    let mut pem = crate::client::certificate_pem(&leaf);
    for c in &issued.chain {
        for der in crate::client::parse_certificates(c.as_bytes())
            .context("the chain in the server's answer")?
        {
            pem.push_str(&crate::client::certificate_pem(&der));
        }
    }
    let serial = crate::client::sanitize(&issued.serial_number, 80);
    match &args.out {
        Some(out) => {
            write_atomic(out, pem.as_bytes(), 0o644)?;
            eprintln!(
                "issued serial {serial} (valid until {}) -> {}",
                crate::client::sanitize(&issued.not_after, 40),
                out.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}
