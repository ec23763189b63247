//! `signet issue`: have a Signet server sign a CSR (authenticated by a provisioner token or
//! the admin token), or with `--local`, sign it with the data directory's CA and record it,
//! without a server (for offline and break-glass use).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use signet_authority::{Authority, IssueRequest, Refusal, Requester};
use signet_ca::{
    CaError, CertificateInfo, Csr, IssuingCa, Lifetime, Profile, SigningKey, read_private_key_file,
};
use signet_pkcs11::Pkcs11Uri;
use signet_store::{AuditAction, AuditEntry, AuditOutcome};

use super::Refused;
use crate::client::{AdminArgs, Api, Bearer, ClientArgs, TokenInput};
use crate::config::{Config, KeyRef, Pkcs11Section};
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct IssueArgs {
    /// Sign locally with the CA files in --dir instead of asking the server at --ca-url.
    #[arg(long)]
    local: bool,
    /// Data directory created by `signet init`.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
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
    /// The provisioner token (from `signet token`) authorising this request; without --local.
    #[command(flatten)]
    token: TokenInput,
    /// Authenticate with the admin token instead of a provisioner token: from
    /// --admin-token-file, SIGNET_ADMIN_TOKEN, or DIR/admin.token. Never used unless asked.
    #[arg(long, conflicts_with_all = ["token", "token_file"])]
    admin: bool,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    admin_token: AdminArgs,
}

/// Load the issuing CA named by the configuration, decrypting its key if needed.
pub fn load_issuing_ca(cfg: &Config) -> anyhow::Result<IssuingCa> {
    let chain = std::fs::read_to_string(&cfg.ca.issuing_cert)
        .with_context(|| format!("reading {}", cfg.ca.issuing_cert.display()))?;
    let root = std::fs::read_to_string(&cfg.ca.root_cert)
        .with_context(|| format!("reading {}", cfg.ca.root_cert.display()))?;
    match KeyRef::parse(&cfg.ca.issuing_key).context("[ca] issuing_key")? {
        KeyRef::File(path) => {
            let passphrase = super::passphrase();
            // Name the file: a wrong or missing passphrase says nothing about which key.
            let key = read_private_key_file(&path, passphrase.as_ref().map(|p| p.as_str()))
                .with_context(|| format!("issuing CA key {}", path.display()))?;
            Ok(IssuingCa::new(&chain, &root, key, cfg.issuance_urls())?)
        }
        KeyRef::Pkcs11(uri) => {
            let key = open_pkcs11_key(cfg.pkcs11.as_ref(), uri)?;
            Ok(IssuingCa::with_signing_key(
                &chain,
                &root,
                key,
                cfg.issuance_urls(),
            )?)
        }
    }
}

/// Open the key `uri` names, in the module `section` (or the URI's `module-path`) names,
/// logged in with the PIN `section` says where to find (else `SIGNET_PKCS11_PIN`). The key
/// signs a test message before it is returned, so a wrong PIN or a missing key fails here,
/// before anything is served.
pub fn open_pkcs11_key(
    section: Option<&Pkcs11Section>,
    uri: Pkcs11Uri,
) -> anyhow::Result<Arc<dyn SigningKey>> {
    let module_path = uri
        .module_path
        .clone()
        .or_else(|| section.map(|s| s.module.clone()))
        .with_context(|| format!("{uri}: name the PKCS#11 module in [pkcs11] module"))?;
    let pin = match section {
        Some(s) => s.pin()?,
        None => signet_pkcs11::Pin::from_env()
            .with_context(|| format!("the token's PIN: set {}", signet_pkcs11::PIN_ENV))?,
    };
    let sessions = section.map_or(4, |s| s.sessions);
    let module = signet_pkcs11::Module::open(&module_path)?;
    let key = signet_pkcs11::Pkcs11Key::open(module, pin, uri.clone(), sessions)
        .with_context(|| format!("CA key {uri}"))?;
    Ok(Arc::new(key))
}

pub async fn run(args: IssueArgs) -> anyhow::Result<()> {
    if !args.local {
        return run_remote(args).await;
    }
    let cfg = Config::load_dir(&args.dir)?;
    let ca = load_issuing_ca(&cfg)?;
    let history = crate::binding::directory_history(&cfg);
    let url = cfg.database_url();
    let store = super::open_store(&url).await?;
    // Only into this CA's database (recorded now if it predates the record).
    let checked = crate::binding::check_database(
        &store,
        &crate::binding::CaIdentity::of_root(ca.root_der())?,
        &crate::binding::issuing_key_ids(&ca, &cfg.ca.issuing_cert),
        &history,
        &crate::binding::describe_database(&url),
        &Requester::local_user().to_string(),
        crate::binding::Access::Bind,
    )
    .await;
    if let Err(e) = checked {
        store.close().await;
        return Err(e);
    }
    // Whoever holds the CA key here: the CA-wide policy applies, in the CA core's words.
    let requester = Requester::local_user();
    let profiles: BTreeMap<Profile, signet_ca::ProfileLimits> = Profile::ALL
        .iter()
        .map(|p| (*p, *cfg.profiles.limits(*p)))
        .collect();
    let authority = Authority::new(Arc::new(ca), store.clone(), cfg.policy.clone(), profiles);

    let csr_bytes =
        std::fs::read(&args.csr).with_context(|| format!("reading {}", args.csr.display()))?;
    let request = IssueRequest {
        csr: &csr_bytes,
        profile: Some(&args.profile),
        ttl: args.ttl.as_deref(),
    };
    // Signed, then durably recorded (with its audit row, in one transaction) before anyone
    // sees it.
    let recorded = match authority.issue(request, &requester, None).await {
        Ok(recorded) => recorded,
        Err(Refusal::Ca(e)) if e.is_client_error() => {
            // The refusal is audited; nothing else is written.
            let audit = AuditEntry {
                actor: requester.to_string(),
                action: AuditAction::Issue,
                serial: None,
                outcome: AuditOutcome::Refused,
                detail: e.to_string(),
            };
            store
                .append_audit(&audit)
                .await
                .context("writing the audit record")?;
            store.close().await;
            return Err(super::RefusedByCa(e.to_string()).into());
        }
        Err(Refusal::Ca(e)) => return Err(e.into()),
        Err(Refusal::Store(e)) => {
            return Err(anyhow::Error::new(e).context("recording the certificate"));
        }
        Err(other) => return Err(other.into()),
    };
    store.close().await;
    let cert = &recorded.certificate;

    let mut pem = cert.pem();
    for c in authority.ca().chain_pem() {
        pem.push_str(&c);
    }
    match &args.out {
        Some(out) => {
            write_atomic(out, pem.as_bytes(), 0o644)?;
            eprintln!(
                "issued serial {} (valid until {}) -> {}",
                recorded.serial,
                signet_ca::rfc3339(cert.not_after),
                out.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}

/// `POST /v1/certificates` answer.
#[derive(Debug, Deserialize)]
struct IssueResponse {
    serial_number: String,
    certificate: String,
    #[serde(default)]
    chain: Vec<String>,
}

/// A certificate the server issued for our CSR.
#[derive(Debug)]
pub struct RemoteIssued {
    /// Serial, hex, as the server wrote it (made safe to print).
    pub serial: String,
    /// The leaf, parsed.
    pub info: CertificateInfo,
    /// The leaf, then the chain the server sent.
    pub chain: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl RemoteIssued {
    /// The leaf then the chain, PEM.
    pub fn pem(&self) -> String {
        self.chain
            .iter()
            .map(|c| crate::client::certificate_pem(c))
            .collect()
    }
}

/// The CSR as PEM (a DER CSR is wrapped).
pub fn csr_as_pem(csr_bytes: &[u8]) -> anyhow::Result<String> {
    match std::str::from_utf8(csr_bytes) {
        Ok(text) if text.contains("-----BEGIN") => Ok(text.to_string()),
        _ => Ok(signet_ca::pem::encode(
            signet_ca::pem::Label::CertificateRequest,
            csr_bytes,
        )),
    }
}

/// `POST /v1/certificates`, and check that the certificate is for the CSR's key.
pub async fn request_certificate(
    api: &Api,
    csr_pem: &str,
    csr_spki: &[u8],
    profile: Option<&str>,
    ttl: Option<&str>,
    bearer: &Bearer,
) -> anyhow::Result<RemoteIssued> {
    #[derive(Serialize)]
    struct Body<'a> {
        csr: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        profile: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttl: Option<&'a str>,
    }
    let body = Body {
        csr: csr_pem,
        profile,
        ttl,
    };
    let issued: IssueResponse = api
        .post_json("/v1/certificates", &body, Some(bearer))
        .await?;
    let leaf = crate::client::single_certificate(issued.certificate.as_bytes())
        .context("the certificate in the server's answer")?;
    let info =
        CertificateInfo::from_der(&leaf).context("the certificate in the server's answer")?;
    if info.spki_der != csr_spki {
        bail!("the server returned a certificate for a different public key than the CSR's");
    }
    let mut chain = vec![leaf];
    for c in &issued.chain {
        chain.extend(
            crate::client::parse_certificates(c.as_bytes())
                .context("the chain in the server's answer")?,
        );
    }
    Ok(RemoteIssued {
        serial: crate::client::sanitize(&issued.serial_number, 80),
        info,
        chain,
    })
}

/// Who a bearer JWT says it is (`iss`, `sub`), read without verifying it (the server does),
/// for telling the user which credential was used. Never prints the token.
fn describe_token(token: &str) -> String {
    use base64::Engine;
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        iss: Option<String>,
        #[serde(default)]
        sub: Option<String>,
    }
    let claims = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|json| serde_json::from_slice::<Claims>(&json).ok());
    match claims {
        Some(Claims { iss, sub }) => format!(
            "issuer {:?}, subject {:?}",
            crate::client::sanitize(iss.as_deref().unwrap_or("-"), 80),
            crate::client::sanitize(sub.as_deref().unwrap_or("-"), 80)
        ),
        None => "not a JWT; the server will say what it makes of it".into(),
    }
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
        // Only the server knows its maximum: a lifetime that parses but is too long goes
        // to it and comes back as `ttl-too-long` naming that maximum.
        match ttl.parse::<Lifetime>() {
            Ok(_) | Err(CaError::LifetimeTooLong { .. }) => {}
            Err(e) => return Err(Refused(e.to_string()).into()),
        }
    }
    let csr_pem = csr_as_pem(&csr_bytes)?;
    if let Some(out) = &args.out {
        crate::files::check_output_path(out, "--out")?;
    }
    let url = args.client.ca_url()?;
    // The credential is only ever the one asked for: a provisioner token, or with --admin
    // the admin token. Which one is said on stderr (never the token itself).
    let bearer = match (args.token.read()?, args.admin) {
        (Some(t), _) => {
            let source = match (&args.token.token, &args.token.token_file) {
                (Some(_), _) => "--token".to_string(),
                (None, Some(f)) => format!("--token-file {}", f.display()),
                (None, None) => crate::client::TOKEN_ENV.to_string(),
            };
            eprintln!(
                "using the token from {source} ({})",
                describe_token(t.as_str())
            );
            t
        }
        (None, true) => {
            let (bearer, source) = args
                .admin_token
                .credential_and_source(&args.dir, true)?
                .ok_or_else(|| {
                    Refused(format!(
                        "--admin: no admin token found: pass --admin-token-file FILE, set \
                         SIGNET_ADMIN_TOKEN, or use --dir with a data directory holding \
                         {} (looked in {})",
                        crate::datadir::ADMIN_TOKEN,
                        args.dir.display()
                    ))
                })?;
            eprintln!("using the admin token from {source} (--admin)");
            bearer
        }
        (None, false) => {
            return Err(Refused(format!(
                "no credential: pass --token or --token-file (from `signet token --ca-url {url} \
                 ...`, or set SIGNET_TOKEN), or --admin to use the admin token; nothing was sent"
            ))
            .into());
        }
    };

    let api = args.client.connect(&args.dir).await?;
    let issued = request_certificate(
        &api,
        &csr_pem,
        csr.spki_der(),
        Some(&args.profile),
        args.ttl.as_deref(),
        &bearer,
    )
    .await?;
    let pem = issued.pem();
    match &args.out {
        Some(out) => {
            write_atomic(out, pem.as_bytes(), 0o644)?;
            eprintln!(
                "issued serial {} (valid until {}) -> {}",
                issued.serial,
                signet_ca::rfc3339(issued.info.not_after),
                out.display()
            );
        }
        None => print!("{pem}"),
    }
    Ok(())
}
