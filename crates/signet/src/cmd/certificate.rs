//! `signet certificate NAME`: a key and a certificate in one command, instead of
//! `openssl req` + `signet token` + `signet issue`.
//!
//! The key is generated in this process and never leaves it except into `NAME.key`. The
//! request is authorised by a token given with `--token`/`--token-file`/`SIGNET_TOKEN`, or
//! else by one minted here with a provisioner's key (as `signet token` does) for exactly the
//! requested names. The answer is checked (the certificate is for our key and chains to the
//! trusted root) before anything is written.
//!
//! Files: `NAME.key` (PKCS#8 PEM, 0600) is created first, with that mode from the start, then
//! `NAME.crt` (the leaf, then the chain, 0644). Neither replaces an existing file unless
//! `--force` is given; without it, both are checked before the request, so no token is spent
//! on a request whose answer could not be written.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use signet_ca::{LeafKeyType, Lifetime, Profile, SubjectName};

use super::Refused;
use super::token::{TokenRequest, check_provisioner_name, default_key_path, read_provisioner_key};
use crate::client::{Bearer, ClientArgs, TokenInput};
use crate::files::{write_atomic, write_new};

#[derive(Debug, Args)]
pub struct CertificateArgs {
    /// The files are NAME.crt and NAME.key (NAME may include a directory); without --san, the
    /// certificate is for NAME's file name (a DNS name, IP address, URI or email).
    name: String,
    /// A name the certificate is for: DNS name, IP address, URI or email. Repeat for more.
    #[arg(long = "san", value_name = "NAME")]
    sans: Vec<String>,
    /// server, client or peer.
    #[arg(long, default_value = "server")]
    profile: String,
    /// Lifetime to ask for, e.g. 24h [default: the profile's default_ttl].
    #[arg(long)]
    ttl: Option<String>,
    /// P-256, P-384, Ed25519, RSA-2048, RSA-3072 or RSA-4096.
    #[arg(long, default_value = "P-256", value_parser = parse_key_type)]
    key_type: LeafKeyType,
    /// Replace NAME.crt and NAME.key if they exist.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    token: TokenInput,
    /// Without a token: the provisioner whose key mints one.
    #[arg(long, default_value = "default")]
    provisioner: String,
    /// Without a token: that provisioner's private key [default: DIR/provisioners/NAME.key].
    #[arg(long, value_name = "FILE")]
    provisioner_key: Option<PathBuf>,
    /// Without a token: who the minted token is for (recorded as the requester) [default:
    /// NAME's file name].
    #[arg(long)]
    subject: Option<String>,
    /// Data directory (provisioner keys, and the default root_ca.crt).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

fn parse_key_type(s: &str) -> Result<LeafKeyType, String> {
    s.parse::<LeafKeyType>()
        .map_err(|_| format!("{s:?}: expected {}", LeafKeyType::NAMES))
}

/// `NAME` + `ext`, keeping any dots already in NAME (`api.internal` -> `api.internal.crt`).
fn with_extension(name: &str, ext: &str) -> PathBuf {
    PathBuf::from(format!("{name}.{ext}"))
}

/// How the request is authorised.
enum Credential {
    Given(Bearer),
    Mint(Box<(TokenRequest, rcgen::KeyPair)>),
}

pub async fn run(args: CertificateArgs) -> anyhow::Result<()> {
    // Everything local first: nothing is generated, sent or spent before it all checks out.
    let stem = args.name.trim();
    let base = Path::new(stem)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty() && !stem.ends_with('/'))
        .ok_or_else(|| Refused(format!("NAME {stem:?} names no file")))?;
    let crt = with_extension(stem, "crt");
    let key_path = with_extension(stem, "key");
    if let Some(dir) = crt.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.is_dir()
    {
        return Err(Refused(format!("the directory {} does not exist", dir.display())).into());
    }
    if !args.force {
        for f in [&crt, &key_path] {
            if f.symlink_metadata().is_ok() {
                return Err(Refused(format!(
                    "{} exists; nothing was requested (--force replaces it)",
                    f.display()
                ))
                .into());
            }
        }
    }
    let requested: Vec<&str> = if args.sans.is_empty() {
        vec![base]
    } else {
        args.sans.iter().map(|s| s.trim()).collect()
    };
    let mut names = Vec::new();
    for n in &requested {
        let name = SubjectName::parse_loose(n).map_err(|e| {
            if args.sans.is_empty() {
                Refused(format!(
                    "{n:?} is not a name a certificate can carry ({e}); pass --san NAME"
                ))
            } else {
                Refused(format!("--san {n:?}: {e}"))
            }
        })?;
        names.push(name);
    }
    args.profile
        .parse::<Profile>()
        .map_err(|e| Refused(format!("--profile: {e}")))?;
    if let Some(ttl) = &args.ttl {
        ttl.parse::<Lifetime>()
            .map_err(|e| Refused(format!("--ttl: {e}")))?;
    }
    let url = args.client.ca_url()?;
    let credential = match args.token.read()? {
        Some(bearer) => Credential::Given(bearer),
        None => {
            check_provisioner_name(&args.provisioner)?;
            let subject = args.subject.as_deref().unwrap_or(base).trim();
            if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
                return Err(Refused("--subject: 1-256 printable characters".into()).into());
            }
            let path = args
                .provisioner_key
                .clone()
                .unwrap_or_else(|| default_key_path(&args.dir, &args.provisioner));
            if !path.exists() {
                return Err(Refused(format!(
                    "no token and no provisioner key: pass --token-file FILE (or --token, or \
                     set SIGNET_TOKEN), or --provisioner-key FILE ({} does not exist)",
                    path.display()
                ))
                .into());
            }
            let key = read_provisioner_key(&path)?;
            let req = TokenRequest {
                ca_url: url.clone(),
                provisioner: args.provisioner.clone(),
                subject: subject.to_string(),
                sans: names.iter().map(SubjectName::value).collect(),
                ttl: super::token::MAX_TOKEN_TTL,
            };
            Credential::Mint(Box::new((req, key)))
        }
    };

    let key = args.key_type.generate()?;
    let key_pem = signet_ca::encode_private_key(&key, None)?;
    let csr = signet_agent::workload::csr_pem(&key, &names)?;
    let (api, roots) = args.client.connect_with_roots(&args.dir).await?;
    let bearer = match credential {
        Credential::Given(b) => b,
        Credential::Mint(mint) => {
            let (req, provisioner_key) = *mint;
            Bearer::new(&req.mint(&provisioner_key)?, "the minted token")?
        }
    };
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let issued = super::issue::request_certificate(
        &api,
        &csr,
        &spki,
        Some(&args.profile),
        args.ttl.as_deref(),
        &bearer,
    )
    .await?;
    signet_agent::workload::verify_chain(&issued.chain, &roots, SystemTime::now())
        .context("the certificate the server returned")?;

    // The key first: a certificate on disk always has its key beside it.
    let pem = issued.pem();
    if args.force {
        write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
        write_atomic(&crt, pem.as_bytes(), 0o644)?;
    } else {
        write_new(&key_path, key_pem.as_bytes(), 0o600)?;
        if let Err(e) = write_new(&crt, pem.as_bytes(), 0o644) {
            // Leave nothing half made: the key alone is of no use.
            let _ = std::fs::remove_file(&key_path);
            return Err(e);
        }
    }
    eprintln!(
        "wrote {} (serial {}, {}, valid until {}) and {} ({} key, mode 0600)",
        crt.display(),
        issued.serial,
        issued
            .info
            .names
            .iter()
            .map(SubjectName::to_tagged)
            .collect::<Vec<_>>()
            .join(","),
        signet_ca::rfc3339(issued.info.not_after),
        key_path.display(),
        args.key_type,
    );
    Ok(())
}
