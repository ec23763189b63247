//! `signet ca root` and `signet ca chain`: fetch the CA certificates from a server; and
//! `signet ca root-crl`: sign the root CA's CRL offline, with the root key.
//!
//! `ca root` is how a new machine learns which root to trust. With `--root-fingerprint`, the
//! root is fetched once without certificate verification, kept only if its SHA-256 matches,
//! and then `/v1/ca/chain` is fetched again over a connection that trusts only that root, to
//! confirm the server really chains to it. With `--ca-file`, that file is trusted instead.
//!
//! `ca root-crl` exists because relying parties that check CRLs for the whole chain (OpenSSL
//! with `X509_V_FLAG_CRL_CHECK_ALL`, which nginx `ssl_crl` turns on) refuse every
//! certificate unless the issuing CA certificate is covered by a CRL from the root too. The
//! root key is offline, so this CRL is signed rarely: by `signet init` while it still holds
//! the new root key, then by an operator who brings the key online (`--validity`, at most a
//! year, 90 days by default). It is stored in the database, where every responder serves it
//! at `/crl/root.crl`, `/crl/root.pem` and, after the issuing CA's, `/crl/chain.pem`.
//!
//! It lists the certificates the store records as issued by the root's key and revoked,
//! normally none: an empty CRL is the truth, the root has revoked nothing. `--revoke FILE`
//! revokes a CA certificate the root signed (the issuing CA after a key compromise, or a
//! retired one): it is checked against the root's key, recorded under the root's key id,
//! marked revoked, and listed from then on. `signet serve` refuses to start with an issuing
//! CA the root revoked; replacing it is a ceremony of its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use signet_authority::{RevocationPublisher, RootCrl};
use signet_ca::{IssuingCa, OffsetDateTime, RevocationReason};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, RevokeOutcome, Store};

use super::Refused;
use super::init::ROOT_CRL_DEFAULT_VALIDITY;
use crate::client::{
    Api, ClientArgs, certificate_pem, fetch_pinned_root, parse_certificates, read_certificates,
    single_certificate,
};
use crate::config::KeyRef;
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
    /// Sign the root CA's CRL with the root key (offline) and store it for the responders.
    ///
    /// Run it where the root key and the database are both reachable; no server is needed.
    /// Responders serve the newest root CRL at /crl/root.crl, /crl/root.pem and, after the
    /// issuing CA's CRL, /crl/chain.pem (what nginx ssl_crl needs). Re-run it before the
    /// CRL's nextUpdate: clients that check CRLs refuse an expired one.
    RootCrl(RootCrlArgs),
    /// Replace the issuing CA: a new key and certificate signed by the root (offline key).
    ///
    /// The current issuing certificate and key are kept beside the new ones as
    /// issuing_ca.<serial>.crt/.key; the new certificate is recorded in the database under
    /// the root. Restart `signet serve` (and standalone responders) to use it. Certificates
    /// from the old issuing CA stay valid, and may renew onto the new one over mTLS, until
    /// they expire unless the root revokes it (`ca root-crl --revoke issuing_ca.<serial>.crt`).
    NewIssuing(NewIssuingArgs),
}

#[derive(Debug, Args)]
struct NewIssuingArgs {
    /// Data directory: its signet.toml names the root and the issuing CA files and the
    /// database (SIGNET_DATABASE_URL overrides it).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The root CA's key, PKCS#8 PEM, mode 0600 (encrypted keys use SIGNET_CA_PASSPHRASE,
    /// which also encrypts the new key), or its PKCS#11 URI in the [pkcs11] module
    /// [default: DIR/root_ca.key].
    #[arg(long, value_name = "FILE|URI")]
    root_key: Option<PathBuf>,
    /// Key type of the new issuing CA: p256, p384 or ed25519 in a file; p256, p384,
    /// rsa2048, rsa3072 or rsa4096 in a token.
    #[arg(long, default_value = "p256")]
    key_type: String,
    /// Where the new issuing key is made [default: where the current one is]: `pkcs11`
    /// makes it in the token of the current key (or --pkcs11-token), through [pkcs11].
    #[arg(long, value_enum)]
    key_store: Option<super::init::KeyStore>,
    /// The label of the token to make the new key in [default: the current key's token].
    #[arg(long, value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// Lifetime of the new issuing CA, never past the root's.
    #[arg(long, default_value = "1826d", value_parser = parse_issuing_validity)]
    validity: Duration,
}

fn parse_issuing_validity(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write e.g. 1826d, 365days)"))?;
    if d < Duration::from_secs(86_400) {
        return Err(format!(
            "an issuing CA lives at least 1 day, not {}",
            s.trim()
        ));
    }
    Ok(d)
}

#[derive(Debug, Args)]
struct RootCrlArgs {
    /// Data directory: its signet.toml gives the root certificate ([ca] root_cert) and the
    /// database (SIGNET_DATABASE_URL overrides it).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The root CA's key, PKCS#8 PEM, mode 0600 (encrypted keys use SIGNET_CA_PASSPHRASE),
    /// or its PKCS#11 URI in the [pkcs11] module [default: DIR/root_ca.key].
    #[arg(long, value_name = "FILE|URI")]
    root_key: Option<PathBuf>,
    /// How long the CRL is valid (nextUpdate - thisUpdate): 1h to 366d.
    #[arg(long, default_value = ROOT_CRL_DEFAULT_VALIDITY, value_parser = parse_root_crl_validity)]
    validity: Duration,
    /// Also write the CRL here (mode 0644): PEM if the name ends in .pem, else DER.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Revoke this CA certificate (PEM or DER), signed by the root: the issuing CA after its
    /// key was compromised, or a retired one. It is recorded under the root, marked revoked,
    /// and listed on this CRL and every later one. Irreversible.
    #[arg(long, value_name = "FILE")]
    revoke: Option<PathBuf>,
    /// Why --revoke revokes it [default: unspecified].
    #[arg(long, requires = "revoke", value_parser = RevocationReason::FOR_CA.map(RevocationReason::name))]
    reason: Option<String>,
}

/// The shortest `--validity` accepted.
const ROOT_CRL_MIN_VALIDITY: Duration = Duration::from_secs(3600);

fn parse_root_crl_validity(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write e.g. 90d, 30days, 12h)"))?;
    let max = IssuingCa::ROOT_CRL_MAX_VALIDITY;
    if d < ROOT_CRL_MIN_VALIDITY || d > max {
        return Err(format!(
            "a root CRL is valid for 1h to {} days, not {}",
            max.as_secs() / 86_400,
            s.trim()
        ));
    }
    Ok(d)
}

/// A root CRL's nextUpdate as RFC 3339, for people.
fn next_update_text(crl: &RootCrl) -> String {
    humantime::format_rfc3339_seconds(crl.next_update.into()).to_string()
}

/// `ca new-issuing`: sign, record, then put in place; nothing changes on disk unless the
/// database has recorded the new certificate.
async fn new_issuing(args: NewIssuingArgs) -> anyhow::Result<()> {
    let (cfg, root) = config_and_root(&args.dir, args.root_key.as_deref())?;
    let current_in_token = KeyRef::is_uri(&cfg.ca.issuing_key);
    let into_token = match args.key_store {
        Some(store) => store == super::init::KeyStore::Pkcs11,
        None => current_in_token,
    };
    if into_token || current_in_token {
        if !into_token {
            bail!(
                "the issuing key is in a PKCS#11 token: make the new one there too \
                 (--key-store pkcs11)"
            );
        }
        return new_issuing_in_token(args, cfg, root).await;
    }
    let key_type = super::init::parse_key_type(&args.key_type)
        .map_err(|e| anyhow::anyhow!("--key-type: {e}"))?;
    let (cert_path, issuing_key_path) = (&cfg.ca.issuing_cert, &cfg.ca.issuing_key);
    let old = single_issuing_certificate(cert_path)?;
    let old_serial = signet_ca::CertificateInfo::from_der(&old)?.serial.to_hex();
    let archive =
        |path: &Path, ext: &str| crate::datadir::kept_issuing_file(path, &old_serial, ext);
    let (old_cert_archive, old_key_archive) =
        (archive(cert_path, "crt"), archive(issuing_key_path, "key"));
    for path in [&old_cert_archive, &old_key_archive] {
        if path.exists() {
            bail!(
                "{} already exists: refusing to overwrite a kept issuing CA",
                path.display()
            );
        }
    }
    let staged_key = issuing_key_path.with_extension("key.new");
    let staged_cert = cert_path.with_extension("crt.new");
    if staged_key.exists() {
        bail!(
            "{} exists (left by an interrupted run?): remove it and run again",
            staged_key.display()
        );
    }

    let now = OffsetDateTime::now_utc();
    let (org, cn, _) = new_issuing_names(&cfg, now);
    let org = org.as_str();
    let new = root.sign_issuing_ca(org, &cn, key_type, args.validity, now)?;
    let new_der = parse_certificates(new.cert_pem.as_bytes())?
        .into_iter()
        .next()
        .context("the new issuing certificate")?
        .to_vec();
    let passphrase = super::passphrase();
    let key_pem = signet_ca::encode_private_key(&new.key, passphrase.as_ref().map(|p| p.as_str()))?;
    // Proves the pair loads as `serve` will load it, before anything is recorded.
    let root_pem = std::fs::read_to_string(&cfg.ca.root_cert)
        .with_context(|| format!("reading {}", cfg.ca.root_cert.display()))?;
    IssuingCa::new(&new.cert_pem, &root_pem, new.key, cfg.issuance_urls())?;

    // Recorded first: the root issued it, and that is never lost. Only in this CA's
    // database.
    let url = cfg.database_url();
    let store = super::open_store(&url).await?;
    crate::binding::check_directory_database(&store, &cfg, &url, &local_actor()).await?;
    let serial = new.serial.to_hex();
    let sub = signet_ca::SubordinateCa {
        serial: new.serial.clone(),
        subject: new.subject.clone(),
        not_before: new.not_before,
        not_after: new.not_after,
    };
    let recorded = record_ca_certificate(
        &store,
        &root,
        &new_der,
        &sub,
        &local_actor(),
        AuditAction::CreateIssuingCa,
        &format!("replacing serial {old_serial}"),
    )
    .await;
    store.close().await;
    recorded.context("recording the new issuing CA certificate")?;

    // Staged beside the live files, the old pair kept by hard links, then each new file
    // renamed over the live one: no moment without a key or a certificate file.
    signet_ca::write_private_key_file(&staged_key, &key_pem)?;
    write_atomic(&staged_cert, new.cert_pem.as_bytes(), 0o644)?;
    std::fs::hard_link(issuing_key_path, &old_key_archive)
        .with_context(|| format!("keeping the old key as {}", old_key_archive.display()))?;
    std::fs::hard_link(cert_path, &old_cert_archive).with_context(|| {
        format!(
            "keeping the old certificate as {}",
            old_cert_archive.display()
        )
    })?;
    std::fs::rename(&staged_key, issuing_key_path)
        .with_context(|| format!("installing {}", issuing_key_path.display()))?;
    std::fs::rename(&staged_cert, cert_path)
        .with_context(|| format!("installing {}", cert_path.display()))?;

    println!(
        "New issuing CA {} (serial {serial}), valid until {}.",
        new.subject,
        humantime::format_rfc3339_seconds(new.not_after.into())
    );
    println!(
        "The old one (serial {old_serial}) is kept as {} and {}.",
        old_cert_archive.display(),
        old_key_archive.display()
    );
    println!(
        "Restart `signet serve` and any `signet responder` to use it. Certificates from the old \
         issuing CA stay valid, and may renew onto the new one, until they expire; to revoke \
         it: signet ca root-crl --revoke {}",
        old_cert_archive.display()
    );
    Ok(())
}

/// The new issuing CA's organisation, common name and a stamp naming it (UTC minute).
fn new_issuing_names(cfg: &crate::config::Config, now: OffsetDateTime) -> (String, String, String) {
    let stamp = format!(
        "{:04}{:02}{:02}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute()
    );
    let org = cfg.ca.name.trim().to_string();
    let mut cn = format!("{org} Issuing {stamp}");
    if cn.len() > 64 {
        cn = format!("Issuing CA {stamp}");
    }
    (org, cn, stamp)
}

/// `ca new-issuing` with the new key made in the [pkcs11] module's token: the key is made
/// and certified, the certificate recorded, then the certificate file replaced and
/// `[ca] issuing_key` pointed at the new key. The old key stays in the token (or its file
/// is kept as `issuing_ca.<serial>.key`); its URI is kept as `issuing_ca.<serial>.uri`, so
/// `serve` goes on publishing its CRLs. A key made for a run that fails is deleted again.
async fn new_issuing_in_token(
    args: NewIssuingArgs,
    cfg: crate::config::Config,
    root: IssuingCa,
) -> anyhow::Result<()> {
    let section = cfg
        .pkcs11
        .clone()
        .context("a new issuing key in a PKCS#11 token needs [pkcs11] module in signet.toml")?;
    let current = KeyRef::parse(&cfg.ca.issuing_key)?;
    let token = match (&args.pkcs11_token, &current) {
        (Some(t), _) => t.clone(),
        (None, KeyRef::Pkcs11(uri)) => uri
            .token
            .clone()
            .context("the current issuing key's URI names no token: give --pkcs11-token")?,
        (None, KeyRef::File(_)) => bail!("give --pkcs11-token LABEL: the token to make the key in"),
    };
    let kind: signet_pkcs11::KeyKind = args.key_type.parse()?;
    let cert_path = &cfg.ca.issuing_cert;
    let old = single_issuing_certificate(cert_path)?;
    let old_serial = signet_ca::CertificateInfo::from_der(&old)?.serial.to_hex();
    let old_cert_archive = crate::datadir::kept_issuing_file(cert_path, &old_serial, "crt");
    let old_key_archive = match &current {
        KeyRef::File(path) => crate::datadir::kept_issuing_file(path, &old_serial, "key"),
        KeyRef::Pkcs11(_) => crate::datadir::kept_issuing_file(cert_path, &old_serial, "uri"),
    };
    for path in [&old_cert_archive, &old_key_archive] {
        if path.exists() {
            bail!(
                "{} already exists: refusing to overwrite a kept issuing CA",
                path.display()
            );
        }
    }
    let staged_cert = cert_path.with_extension("crt.new");

    let now = OffsetDateTime::now_utc();
    let (org, cn, stamp) = new_issuing_names(&cfg, now);
    let module = signet_pkcs11::Module::open(&section.module)?;
    let pin = section.pin()?;
    let label = format!("issuing-ca-{stamp}");
    let where_ = signet_pkcs11::Pkcs11Uri {
        token: Some(token.clone()),
        object: Some(label.clone()),
        ..Default::default()
    };
    let uri = signet_pkcs11::generate_key_pair(&module, &pin, &where_, &label, kind)
        .with_context(|| format!("making the new issuing key {label} in the token {token}"))?;
    let made = async {
        let key = super::issue::open_pkcs11_key(Some(&section), uri.clone())?;
        let new = root.sign_issuing_ca_for_key(&org, &cn, key.clone(), args.validity, now)?;
        let new_der = parse_certificates(new.cert_pem.as_bytes())?
            .into_iter()
            .next()
            .context("the new issuing certificate")?
            .to_vec();
        // Proves the pair loads as `serve` will load it, before anything is recorded.
        let root_pem = std::fs::read_to_string(&cfg.ca.root_cert)
            .with_context(|| format!("reading {}", cfg.ca.root_cert.display()))?;
        IssuingCa::with_signing_key(&new.cert_pem, &root_pem, key, cfg.issuance_urls())?;
        let url = cfg.database_url();
        let store = super::open_store(&url).await?;
        crate::binding::check_directory_database(&store, &cfg, &url, &local_actor()).await?;
        let sub = signet_ca::SubordinateCa {
            serial: new.serial.clone(),
            subject: new.subject.clone(),
            not_before: new.not_before,
            not_after: new.not_after,
        };
        let recorded = record_ca_certificate(
            &store,
            &root,
            &new_der,
            &sub,
            &local_actor(),
            AuditAction::CreateIssuingCa,
            &format!("replacing serial {old_serial}; key {uri}"),
        )
        .await;
        store.close().await;
        recorded.context("recording the new issuing CA certificate")?;
        Ok::<_, anyhow::Error>(new)
    }
    .await;
    let new = match made {
        Ok(new) => new,
        Err(e) => {
            if let Err(undo) = signet_pkcs11::destroy_key_pair(&module, &pin, &uri) {
                eprintln!("warning: deleting the new key {uri} from the token failed: {undo}");
            }
            return Err(e);
        }
    };

    // The certificate is recorded: from here on, put the files in place.
    write_atomic(&staged_cert, new.cert_pem.as_bytes(), 0o644)?;
    match &current {
        KeyRef::File(path) => std::fs::rename(path, &old_key_archive)
            .with_context(|| format!("keeping the old key as {}", old_key_archive.display()))?,
        KeyRef::Pkcs11(old_uri) => {
            write_atomic(&old_key_archive, format!("{old_uri}\n").as_bytes(), 0o644)?
        }
    }
    std::fs::hard_link(cert_path, &old_cert_archive).with_context(|| {
        format!(
            "keeping the old certificate as {}",
            old_cert_archive.display()
        )
    })?;
    set_issuing_key(&args.dir, &uri.to_string())?;
    std::fs::rename(&staged_cert, cert_path)
        .with_context(|| format!("installing {}", cert_path.display()))?;
    println!(
        "New issuing CA {} (serial {}), its key {uri} in the token, valid until {}.",
        new.subject,
        new.serial.to_hex(),
        humantime::format_rfc3339_seconds(new.not_after.into())
    );
    println!(
        "The old one (serial {old_serial}) is kept as {} and {}.",
        old_cert_archive.display(),
        old_key_archive.display()
    );
    println!(
        "Restart `signet serve` and any `signet responder` to use it. To revoke the old one: \
         signet ca root-crl --revoke {}",
        old_cert_archive.display()
    );
    Ok(())
}

/// Point `[ca] issuing_key` in DIR/signet.toml at `value`, keeping every comment and
/// every other setting (written atomically, mode kept).
fn set_issuing_key(dir: &Path, value: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::datadir::DataDir::new(dir).config();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{} is not valid TOML", path.display()))?;
    doc["ca"]["issuing_key"] = toml_edit::value(value);
    let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
    write_atomic(&path, doc.to_string().as_bytes(), mode)
}

/// The issuing CA certificate file: exactly one certificate, as `init` writes it (an
/// adopted chain has intermediates this command would not know how to replace).
fn single_issuing_certificate(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs = parse_certificates(&bytes).with_context(|| path.display().to_string())?;
    match certs.as_slice() {
        [one] => Ok(one.to_vec()),
        _ => bail!(
            "{} holds {} certificates: only an issuing CA made by `signet init` (one \
             certificate, signed by the root) can be replaced here",
            path.display(),
            certs.len()
        ),
    }
}

/// The certificate in `file`: PEM (the first one) or DER.
fn read_one_certificate(file: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if bytes.first() == Some(&0x30) {
        return Ok(bytes);
    }
    let certs = parse_certificates(&bytes).with_context(|| file.display().to_string())?;
    let first = certs
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate (PEM or DER)", file.display()))?;
    Ok(first.to_vec())
}

/// Record the CA certificate `der` (described by `sub`) as issued by `root`, with an audit
/// row `action` by `actor` whose detail ends with `note`: the authority's one record path,
/// for a certificate the root signed.
async fn record_ca_certificate(
    store: &Store,
    root: &IssuingCa,
    der: &[u8],
    sub: &signet_ca::SubordinateCa,
    actor: &str,
    action: AuditAction,
    note: &str,
) -> Result<(), signet_authority::Refusal> {
    let key_id = hex::encode(root.key_id());
    let cert = signet_authority::ToRecord {
        serial: sub.serial.clone(),
        issuer: root,
        subject: sub.subject.clone(),
        sans: Vec::new(),
        profile: "ca".into(),
        not_before: sub.not_before,
        not_after: sub.not_after,
        der: der.to_vec(),
        crl_shard: None,
    };
    let detail = format!("{} signed by root {key_id}, {note}", sub.subject);
    signet_authority::record(
        store,
        None,
        cert,
        actor,
        actor,
        action,
        detail,
        signet_authority::AlsoCommit::Nothing,
    )
    .await
    .map(|_| ())
}

/// Record `der` (checked by [`IssuingCa::certificate_to_revoke`]) under the root's key id,
/// unless it already is, and revoke it there; each step is durable and audited before the
/// CRL that lists it is signed. Revoking what is already revoked keeps the first revocation.
async fn revoke_subordinate(
    store: &Store,
    root: &IssuingCa,
    der: &[u8],
    sub: &signet_ca::SubordinateCa,
    reason: RevocationReason,
    actor: &str,
) -> anyhow::Result<()> {
    let serial = &sub.serial;
    let key_id = hex::encode(root.key_id());
    match store.get_certificate(serial).await? {
        Some(rec) if rec.der != der || rec.issuer_key_id != key_id => bail!(
            "the database already holds a different certificate with serial {serial}: \
             refusing to revoke it in its place"
        ),
        Some(_) => {}
        None => record_ca_certificate(
            store,
            root,
            der,
            sub,
            actor,
            AuditAction::RecordCaCertificate,
            "to be revoked",
        )
        .await
        .context("recording the CA certificate")?,
    }
    let audit = AuditEntry {
        actor: actor.to_string(),
        action: AuditAction::Revoke,
        serial: Some(serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: format!("CA certificate {} revoked by the root", sub.subject),
    };
    match store
        .revoke(serial, OffsetDateTime::now_utc(), reason, &audit)
        .await
        .context("revoking the CA certificate")?
    {
        RevokeOutcome::Revoked => {}
        RevokeOutcome::AlreadyRevoked => {
            println!(
                "{} was already revoked; that revocation stands.",
                sub.subject
            );
        }
        RevokeOutcome::NotFound => bail!("the CA certificate {serial} vanished from the database"),
    }
    Ok(())
}

/// Who signed, for the audit row: the local OS user (by name only).
fn local_actor() -> String {
    signet_authority::Requester::Local {
        user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        uid: None,
    }
    .to_string()
}

async fn root_crl(args: RootCrlArgs) -> anyhow::Result<()> {
    let (cfg, root) = config_and_root(&args.dir, args.root_key.as_deref())?;
    // Checked before anything is stored.
    let to_revoke = match &args.revoke {
        Some(file) => {
            let der = read_one_certificate(file)?;
            let sub = root
                .certificate_to_revoke(&der)
                .with_context(|| format!("--revoke {}", file.display()))?;
            let name = args.reason.as_deref().unwrap_or("unspecified");
            let reason = name
                .parse::<RevocationReason>()
                .ok()
                .filter(|r| RevocationReason::FOR_CA.contains(r))
                .with_context(|| format!("unknown revocation reason {name}"))?;
            Some((der, sub, reason, name))
        }
        None => None,
    };
    let url = cfg.database_url();
    let store = super::open_store(&url).await?;
    let actor = local_actor();
    // Only into this CA's database.
    crate::binding::check_directory_database(&store, &cfg, &url, &actor).await?;
    let result = async {
        if let Some((der, sub, reason, name)) = &to_revoke {
            revoke_subordinate(&store, &root, der, sub, *reason, &actor).await?;
            println!(
                "Revoked {} (serial {}) by the root, reason {name}.",
                sub.subject,
                sub.serial.to_hex()
            );
        }
        // Signed and stored by the one revocation publisher, with the root's CRL signer.
        let signer = root.crl_signer()?;
        RevocationPublisher::publish_root_crl(&store, &signer, args.validity, &actor)
            .await
            .map_err(anyhow::Error::from)
    }
    .await;
    store.close().await;
    let crl = result?;
    if let Some(out) = &args.out {
        let is_pem = out
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("pem"));
        let bytes = if is_pem {
            signet_ca::pem::crl(&crl.der).into_bytes()
        } else {
            crl.der.clone()
        };
        write_atomic(out, &bytes, 0o644)?;
        eprintln!(
            "wrote the root CRL ({}) to {}",
            if is_pem { "PEM" } else { "DER" },
            out.display()
        );
    }
    println!(
        "Signed root CRL number {} ({} revoked), valid until {}.",
        crl.number,
        crl.entries,
        next_update_text(&crl)
    );
    println!(
        "It is stored in the database: responders serve it at /crl/root.crl, /crl/root.pem and /crl/chain.pem."
    );
    println!(
        "Sign the next one before {}: clients that check CRLs (nginx ssl_crl) refuse an expired one.",
        next_update_text(&crl)
    );
    Ok(())
}

/// `dir`'s configuration and its root loaded with `root_key` (default `dir/root_ca.key`).
fn config_and_root(
    dir: &Path,
    root_key: Option<&Path>,
) -> anyhow::Result<(crate::config::Config, IssuingCa)> {
    let cfg = crate::config::Config::load_dir(dir)?;
    let key_path = root_key
        .map(Path::to_path_buf)
        .unwrap_or_else(|| crate::datadir::DataDir::new(dir).root_key());
    if let KeyRef::Pkcs11(uri) = KeyRef::parse(&key_path).context("--root-key")? {
        let key = super::issue::open_pkcs11_key(cfg.pkcs11.as_ref(), uri.clone())?;
        let pem = std::fs::read_to_string(&cfg.ca.root_cert).with_context(|| {
            format!(
                "reading the root certificate {}",
                cfg.ca.root_cert.display()
            )
        })?;
        let root = IssuingCa::root_key_for_crls(&pem, key).with_context(|| {
            format!(
                "the root certificate {} with the key {uri}",
                cfg.ca.root_cert.display()
            )
        })?;
        return Ok((cfg, root));
    }
    let root = load_root(&cfg.ca.root_cert, &key_path)?;
    Ok((cfg, root))
}

/// The root certificate with its key, for signing the root's CRL, with the errors an
/// operator can act on.
fn load_root(root_cert: &Path, key_path: &Path) -> anyhow::Result<IssuingCa> {
    if !key_path.exists() {
        bail!(
            "the root CA key {} does not exist: signing the root CRL needs the root key, which \
             `signet init` told you to move offline. Bring it back, or pass --root-key FILE. \
             (A CA adopted with `init --import-cert` has no root key here: whoever holds that \
             root publishes its CRL.)",
            key_path.display()
        );
    }
    let passphrase = super::passphrase();
    let key = signet_ca::read_private_key_file(key_path, passphrase.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("reading the root CA key {}", key_path.display()))?;
    let pem = std::fs::read_to_string(root_cert)
        .with_context(|| format!("reading the root certificate {}", root_cert.display()))?;
    IssuingCa::root_for_crls(&pem, key).with_context(|| {
        format!(
            "{} with the key {}",
            root_cert.display(),
            key_path.display()
        )
    })
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Write the PEM here (mode 0644) instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Data directory (for the default root_ca.crt of `ca chain`).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: CaArgs) -> anyhow::Result<()> {
    match args.command {
        CaCommand::Root(a) => root(a).await,
        CaCommand::Chain(a) => chain(a).await,
        CaCommand::RootCrl(a) => root_crl(a).await,
        CaCommand::NewIssuing(a) => new_issuing(a).await,
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
    if let Some(out) = &args.out {
        crate::files::check_output_path(out, "--out")?;
    }
    let url = args.client.ca_url()?;
    // The flag (or SIGNET_ROOT_FINGERPRINT), else the saved context's for this URL.
    let fingerprint = match args.client.fingerprint()? {
        Some(fp) => Some(fp),
        None if args.client.ca_file.is_none() => {
            args.client.context_for(&url)?.map(|ctx| ctx.fingerprint)
        }
        None => None,
    };
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
        return Err(crate::client::RootMismatch(format!(
            "ROOT FINGERPRINT MISMATCH: the server's root has fingerprint {}, not the expected {fp}; nothing was written",
            signet_ca::sha256_fingerprint(&root)
        ))
        .into());
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
    if let Some(out) = &args.out {
        crate::files::check_output_path(out, "--out")?;
    }
    let api = args.client.connect(&args.dir).await?;
    let text = api.get_text("/v1/ca/chain", None).await?;
    let certs = parse_certificates(text.as_bytes()).context("the server's /v1/ca/chain")?;
    if certs.is_empty() {
        bail!("the server's /v1/ca/chain holds no certificate");
    }
    let pem: String = certs.iter().map(|c| certificate_pem(c)).collect();
    emit(args.out.as_ref(), &pem, "CA chain")
}
