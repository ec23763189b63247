//! `signet init`: create a data directory holding a new CA hierarchy, or adopt an existing
//! issuing CA, plus a commented `signet.toml` and an initialised database.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use signet_ca::{
    InitOptions, IssuingCa, KeyType, OffsetDateTime, encode_private_key, generate_ca, import_ca,
    sha256_fingerprint, write_private_key_file,
};

use crate::config::{self, Config};
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory to create (mode 0700). Existing CA files are never overwritten.
    #[arg(long, default_value = "signet-data")]
    dir: PathBuf,
    /// The CA's name, used in the CA certificates' subjects.
    /// [default: "Signet Internal CA"; with --import-cert, the imported CA's subject]
    #[arg(long)]
    name: Option<String>,
    /// Key type for the new root and issuing CA keys.
    #[arg(long, default_value = "p256", value_parser = parse_key_type)]
    key_type: KeyType,
    /// Adopt an existing issuing CA: its certificate, followed by the chain up to the root.
    #[arg(long, requires = "import_key")]
    import_cert: Option<PathBuf>,
    /// The existing issuing CA's PKCS#8 key (encrypted keys use SIGNET_CA_PASSPHRASE).
    #[arg(long, requires = "import_cert")]
    import_key: Option<PathBuf>,
}

pub(crate) fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: signet_ca::CaError| e.to_string())
}

/// The files `init` writes, relative to the data directory.
pub const ROOT_CERT: &str = "root_ca.crt";
pub const ROOT_KEY: &str = "root_ca.key";
/// The root CA's first CRL, PEM, written by `init` while it holds the new root key.
pub const ROOT_CRL: &str = "root_ca.crl";
pub const ISSUING_CERT: &str = "issuing_ca.crt";
pub const ISSUING_KEY: &str = "issuing_ca.key";
pub const CONFIG: &str = "signet.toml";

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let import = args.import_cert.as_deref().zip(args.import_key.as_deref());
    let ca = init_dir(dir, args.name.clone(), args.key_type, import).await?;
    let pass = super::passphrase();

    println!("Initialised Signet CA in {}", dir.display());
    println!("  root certificate:    {}", dir.join(ROOT_CERT).display());
    println!(
        "  root fingerprint:    {}",
        sha256_fingerprint(ca.root_der())
    );
    println!(
        "  issuing certificate: {}",
        dir.join(ISSUING_CERT).display()
    );
    if dir.join(ROOT_CRL).exists() {
        println!("  root CRL:            {}", dir.join(ROOT_CRL).display());
    }
    println!("  configuration:       {}", dir.join(CONFIG).display());
    if dir.join(ROOT_KEY).exists() {
        println!(
            "The root key {} is not needed to issue certificates: move it offline.",
            dir.join(ROOT_KEY).display()
        );
        println!(
            "The root CRL is valid for {}: before it ends, bring the root key back and run \
             `signet ca root-crl --dir {}` (clients that check CRLs refuse an expired one).",
            super::ca::ROOT_CRL_DEFAULT_VALIDITY,
            dir.display()
        );
    } else if args.import_cert.is_some() {
        println!(
            "No root CRL was written: the imported CA's root key is not here. Clients that \
             check CRLs for the whole chain (nginx ssl_crl) also need the root's CRL: get it \
             from whoever holds that root, or run `signet ca root-crl --root-key FILE` there."
        );
    }
    if pass.is_some() {
        println!("CA keys are encrypted; set SIGNET_CA_PASSPHRASE to use them.");
    }
    Ok(())
}

/// Create `dir` (mode 0700) with a new CA hierarchy, or adopt the issuing CA in `import`
/// (certificate chain, key), then the default `signet.toml` and the database. Refuses to
/// overwrite an existing CA. Returns the issuing CA, loaded as `issue` and `serve` load it.
pub async fn init_dir(
    dir: &Path,
    name: Option<String>,
    key_type: KeyType,
    import: Option<(&Path, &Path)>,
) -> anyhow::Result<IssuingCa> {
    let passphrase = super::passphrase();
    let pass = passphrase.as_ref().map(|p| p.as_str());
    create_private_dir(dir)?;
    for existing in [CONFIG, ROOT_KEY, ISSUING_KEY, ISSUING_CERT] {
        if dir.join(existing).exists() {
            bail!(
                "{} already exists: refusing to overwrite a CA",
                dir.join(existing).display()
            );
        }
    }

    // Generated roots only: the root key is in hand until this function returns, so the
    // first root CRL is signed with it below. An imported CA brings no root key.
    let mut new_root = None;
    let name = match import {
        Some((cert, key)) => {
            let cert_pem =
                fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
            let key_pem = zeroize::Zeroizing::new(
                fs::read_to_string(key).with_context(|| format!("reading {}", key.display()))?,
            );
            let key = signet_ca::decode_private_key(&key_pem, pass)?;
            let imported = import_ca(&cert_pem, key)?;
            write_private_key_file(
                &dir.join(ISSUING_KEY),
                &encode_private_key(&imported.key, pass)?,
            )?;
            write_atomic(
                &dir.join(ISSUING_CERT),
                imported.chain_pem.as_bytes(),
                0o644,
            )?;
            write_atomic(&dir.join(ROOT_CERT), imported.root_pem.as_bytes(), 0o644)?;
            name.unwrap_or(imported.subject)
        }
        None => {
            let name = name.unwrap_or_else(|| "Signet Internal CA".to_string());
            let mut opts = InitOptions::new(name.clone());
            opts.key_type = key_type;
            let bundle = generate_ca(&opts, OffsetDateTime::now_utc())?;
            write_private_key_file(
                &dir.join(ROOT_KEY),
                &encode_private_key(&bundle.root_key, pass)?,
            )?;
            write_private_key_file(
                &dir.join(ISSUING_KEY),
                &encode_private_key(&bundle.issuing_key, pass)?,
            )?;
            write_atomic(&dir.join(ROOT_CERT), bundle.root_cert_pem.as_bytes(), 0o644)?;
            write_atomic(
                &dir.join(ISSUING_CERT),
                bundle.issuing_cert_pem.as_bytes(),
                0o644,
            )?;
            new_root = Some((bundle.root_cert_pem, bundle.root_key));
            name
        }
    };
    // The config goes last: its presence means the directory is complete.
    write_atomic(
        &dir.join(CONFIG),
        config::render_default(&name).as_bytes(),
        0o644,
    )?;

    let cfg = Config::load_dir(dir)?;
    // Prove the issuing CA loads exactly as `issue` and `serve` will load it.
    let ca = super::issue::load_issuing_ca(&cfg)?;
    let store = super::open_store(&cfg.database_url()).await?;
    let published = match new_root {
        Some((root_pem, root_key)) => first_root_crl(dir, &store, &root_pem, root_key).await,
        None => Ok(()),
    };
    store.close().await;
    published?;
    Ok(ca)
}

/// Sign the new root's first CRL (empty: it has revoked nothing), store it for the
/// responders and write it to `dir/root_ca.crl`.
async fn first_root_crl(
    dir: &Path,
    store: &signet_store::Store,
    root_pem: &str,
    root_key: rcgen::KeyPair,
) -> anyhow::Result<()> {
    let validity = humantime::parse_duration(super::ca::ROOT_CRL_DEFAULT_VALIDITY)
        .context("the default root CRL validity")?;
    let root = IssuingCa::root_for_crls(root_pem, root_key)?;
    let crl = super::ca::publish_root_crl(store, &root, validity, "signet-init")
        .await
        .context("publishing the first root CRL (retry with `signet ca root-crl`)")?;
    write_atomic(&dir.join(ROOT_CRL), crl.pem()?.as_bytes(), 0o644)
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                .with_context(|| format!("restricting {} to mode 0700", dir.display()))?;
        }
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}
