//! `signet bootstrap`: get a workload its first certificate (the Kubernetes init container).
//!
//! It reads a bearer token from a file (a projected Kubernetes service-account token, or a
//! Signet provisioner token from `signet token`), generates the private key in process, sends
//! a CSR to `POST /v1/certificates`, and writes `ca.crt`, `tls.key` and `tls.crt` atomically
//! (see [`crate::workload`] for the order). A certificate already there that chains to the
//! trusted root, matches its key and has more than a third of its life left is kept, and
//! nothing is requested (`--force` requests anyway).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use signet_ca::{KeyType, Lifetime, OffsetDateTime, Profile, SubjectName};
use zeroize::Zeroizing;

use crate::client::{self, Api, Bearer, CaUrl};
use crate::workload::{self, Current, ExitWith, Failure, Files, Retry, Trust, exit};

/// Where Kubernetes projects the service-account token in the example manifests.
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/tokens/signet-token";

/// What `signet bootstrap` was asked: its flags, checked by [`run`] before anything is read or
/// requested.
#[derive(Debug, Clone)]
pub struct BootstrapOptions {
    /// The Signet API URL, e.g. https://signet.signet.svc:8443.
    pub ca_url: String,
    /// Trust the CA root whose SHA-256 fingerprint is this: /v1/ca/root is fetched and
    /// accepted only if it matches (a mismatch exits 4).
    pub root_fingerprint: Option<String>,
    /// Trust the root certificate(s) in this PEM file instead (with --root-fingerprint too,
    /// the file must hold that root).
    pub ca_file: Option<PathBuf>,
    /// File holding the bearer token: a projected service-account token or a Signet
    /// provisioner token. Read anew on each attempt (the kubelet rotates it); `-` reads
    /// standard input once. Left at its default, a non-empty SIGNET_TOKEN is used instead.
    pub token_file: PathBuf,
    /// Directory to write ca.crt, tls.key (0600) and tls.crt (leaf, then chain) to, the one
    /// `signet renew --dir` reads [default: /var/run/signet]. (`--out` is its old name.)
    pub dir: Option<PathBuf>,
    /// server, client or peer [default: the provisioner's default].
    pub profile: Option<String>,
    /// Lifetime to ask for, e.g. 24h [default: the profile's default_ttl].
    pub ttl: Option<String>,
    /// Private key type: P-256, P-384 or Ed25519.
    pub key_type: KeyType,
    /// A name to request (DNS name, IP, URI or email); repeatable. Still subject to the
    /// server's policy. Without any, the names in a Signet token's `sans` claim are requested;
    /// for Kubernetes tokens the server fills in the service-account names.
    pub sans: Vec<String>,
    /// Request a new certificate even if the current one is still good.
    pub force: bool,
    /// Give up when the CA has not answered (or kept answering 5xx/429) for this long.
    pub timeout: Duration,
}

/// `POST /v1/certificates` body.
#[derive(Debug, Serialize)]
struct IssueBody<'a> {
    csr: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'a str>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    ExitWith::error(exit::USAGE, message)
}

pub async fn run(args: BootstrapOptions) -> anyhow::Result<()> {
    // Everything local is checked before any file is read or any connection made.
    let url = CaUrl::parse(&args.ca_url).map_err(|e| usage(crate::error::describe(&e)))?;
    if let Some(p) = &args.profile {
        p.parse::<Profile>()
            .map_err(|e| usage(format!("--profile: {e}")))?;
    }
    if let Some(t) = &args.ttl {
        t.parse::<Lifetime>()
            .map_err(|e| usage(format!("--ttl: {e}")))?;
    }
    let mut sans = Vec::new();
    for s in args.sans.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        sans.push(SubjectName::parse_loose(s).map_err(|e| usage(format!("--san {s:?}: {e}")))?);
    }
    let trust = Trust::from_args(args.ca_file.as_deref(), args.root_fingerprint.as_deref())?;
    let files = Files::new(&workload::workload_dir(args.dir.as_deref()));

    // A good certificate already there: nothing to request.
    if !args.force {
        match Current::read(&files) {
            Ok(current) => {
                let now = OffsetDateTime::now_utc();
                if !trust.accepts(&current.roots) {
                    tracing::info!(
                        "{} is not the trusted root; requesting a new certificate",
                        files.ca.display()
                    );
                } else if let Err(e) = current.verify(SystemTime::now()) {
                    tracing::info!(
                        "the current certificate is not usable ({}); requesting a new one",
                        crate::error::Causes(&e)
                    );
                } else if current.is_fresh(now) {
                    tracing::info!(
                        serial = %current.serial(),
                        not_after = %workload::rfc3339(current.info.not_after),
                        "the certificate in {} is good for more than a third of its lifetime; \
                         nothing requested (--force to request anyway)",
                        files.dir.display()
                    );
                    return Ok(());
                } else {
                    tracing::info!(
                        serial = %current.serial(),
                        "the current certificate is past two thirds of its lifetime; requesting a new one"
                    );
                }
            }
            Err(e) if files.cert.exists() || files.key.exists() => {
                tracing::info!(
                    "the current files are not usable ({}); requesting a new certificate",
                    crate::error::Causes(&e)
                );
            }
            Err(_) => {}
        }
    }
    files
        .create_dir()
        .map_err(|e| ExitWith::error(exit::FAILED, crate::error::describe(&e)))?;

    let mut retry = Retry::new("requesting a certificate", args.timeout);
    let mut roots = match &trust {
        Trust::Roots(r) => Some(r.clone()),
        Trust::Pinned(_) => None,
    };
    let mut api: Option<Api> = None;
    loop {
        let Some(left) = retry.start_attempt() else {
            return Err(retry.gave_up("no attempt left"));
        };
        let attempt = attempt(&args, &files, &url, &trust, &sans, &mut roots, &mut api);
        let result = match tokio::time::timeout(left, attempt).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Transient {
                message: "no answer before --timeout ran out".into(),
                retry_after: None,
            }),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(Failure::Transient {
                message,
                retry_after,
            }) => retry.wait(&message, retry_after).await?,
            Err(other) => return Err(other.into_exit()),
        }
    }
}

/// One try: trust the root (fetching it when pinned), read the token, make a key and CSR,
/// ask the CA, check the answer, write the files.
async fn attempt(
    args: &BootstrapOptions,
    files: &Files,
    url: &CaUrl,
    trust: &Trust,
    sans: &[SubjectName],
    roots: &mut Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    api: &mut Option<Api>,
) -> Result<(), Failure> {
    let trusted = match (roots.as_ref(), trust) {
        (Some(r), _) => r.clone(),
        (None, Trust::Pinned(fp)) => {
            let root = client::fetch_pinned_root(url, fp)
                .await
                .map_err(Failure::from_client_error)?;
            tracing::info!(fingerprint = %fp, "fetched the CA root and matched its fingerprint");
            let r = vec![root];
            *roots = Some(r.clone());
            r
        }
        (None, Trust::Roots(r)) => r.clone(),
    };
    let api = match api {
        Some(a) => a.clone(),
        None => {
            let a = Api::new(url.clone(), &trusted, None).map_err(Failure::Fatal)?;
            *api = Some(a.clone());
            a
        }
    };

    // The token is read on every attempt: the kubelet replaces it as it nears expiry.
    let token = read_token(&args.token_file)?;
    let names: Vec<SubjectName> = if sans.is_empty() {
        let from_token: Vec<SubjectName> = workload::token_sans(token_text(&token))
            .iter()
            .filter_map(|s| SubjectName::parse_loose(s).ok())
            .collect();
        if !from_token.is_empty() {
            tracing::info!(
                names = %from_token.iter().map(SubjectName::to_tagged).collect::<Vec<_>>().join(","),
                "requesting the names of the token's sans claim"
            );
        }
        from_token
    } else {
        sans.to_vec()
    };
    let bearer = Bearer::new(token_text(&token), "the token")
        .map_err(|e| Failure::Usage(e.context(format!("{}", args.token_file.display()))))?;

    let kind = args.key_type;
    let (key, key_pem) = workload::new_key(kind).map_err(Failure::Fatal)?;
    let csr = workload::csr_pem(&key, &names).map_err(Failure::Fatal)?;
    let body = IssueBody {
        csr: &csr,
        profile: args.profile.as_deref(),
        ttl: args.ttl.as_deref(),
    };
    let issued =
        workload::post_for_certificate(&api, "/v1/certificates", &body, Some(&bearer)).await?;
    let (info, chain) = issued
        .checked_chain(&key, &trusted)
        .map_err(Failure::Fatal)?;

    files
        .write_roots(&trusted)
        .and_then(|()| files.write_identity(&key_pem, &chain))
        .map_err(Failure::Fatal)?;
    tracing::info!(
        serial = %client::sanitize(&issued.serial_number, 80),
        not_after = %workload::rfc3339(info.not_after),
        names = %info.names.iter().map(SubjectName::to_tagged).collect::<Vec<_>>().join(","),
        dir = %files.dir.display(),
        "certificate issued and written"
    );
    Ok(())
}

/// The token file's contents (never logged). Kubernetes writes the projected token before
/// the container starts, so a missing or empty file is a configuration mistake (exit 2), not
/// something to wait for.
///
/// `-` reads standard input (once: later attempts reuse it). Without `--token-file` (the
/// default path), a non-empty `SIGNET_TOKEN` is the token, as in every other command.
fn read_token(path: &std::path::Path) -> Result<Zeroizing<String>, Failure> {
    if path == std::path::Path::new(DEFAULT_TOKEN_FILE)
        && let Ok(t) = std::env::var(client::TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(Zeroizing::new(t));
    }
    if path.as_os_str() == "-" {
        static STDIN: std::sync::OnceLock<Result<Zeroizing<String>, String>> =
            std::sync::OnceLock::new();
        let read = STDIN.get_or_init(|| {
            client::read_token_source(path)
                .map(|b| Zeroizing::new(b.as_str().to_string()))
                .map_err(|e| crate::error::describe(&e))
        });
        return read
            .clone()
            .map_err(|e| Failure::Usage(anyhow::anyhow!("{e}")));
    }
    let text = std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| {
            Failure::Usage(anyhow::Error::new(e).context(format!(
                "reading the token file {} (--token-file)",
                path.display()
            )))
        })?;
    if text.trim().is_empty() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "the token file {} is empty",
            path.display()
        )));
    }
    Ok(text)
}

fn token_text(t: &Zeroizing<String>) -> &str {
    t.trim()
}
