//! `signet init`: create a data directory holding a new CA hierarchy, or adopt an existing
//! issuing CA, plus a commented `signet.toml` and an initialised database that records which
//! CA it belongs to. A first `signet serve` makes a new CA with the same [`create_ca`]; both
//! leave nothing behind when they fail ([`Staging`]).

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use signet_ca::{
    InitOptions, IssuingCa, KeyType, OffsetDateTime, encode_private_key, import_ca,
    sha256_fingerprint, write_private_key_file,
};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, NewCrl};

use crate::binding::{self, CaIdentity};
use crate::config::{self, Config, KeyRef, Recorded, RecordedPkcs11};
use crate::datadir::{CONFIG, DataDir, ISSUING_CERT, ISSUING_KEY, ROOT_KEY};
use crate::files::write_atomic;

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Data directory to create (mode 0700). Existing CA files are never overwritten.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The CA's name, used in the CA certificates' subjects.
    /// [default: "Signet Internal CA"; with --import-cert, the imported CA's subject]
    #[arg(long)]
    name: Option<String>,
    /// Key type for the new root and issuing CA keys: p256, p384 or ed25519 in files;
    /// p256, p384, rsa2048, rsa3072 or rsa4096 in a PKCS#11 token.
    #[arg(long, default_value = "p256")]
    key_type: String,
    /// Adopt an existing issuing CA: its certificate, followed by the chain up to the root.
    #[arg(long, requires = "import_key")]
    import_cert: Option<PathBuf>,
    /// The existing issuing CA's PKCS#8 key (encrypted keys use SIGNET_CA_PASSPHRASE), or
    /// the PKCS#11 URI of its key in a token (with --pkcs11-module).
    #[arg(long, requires = "import_cert")]
    import_key: Option<PathBuf>,
    /// Where the new CA keys are made: `file` (PKCS#8 files in --dir) or `pkcs11` (inside
    /// the token --pkcs11-token, never leaving it). Both keys, unless --root-key-store or
    /// --issuing-key-store says otherwise for one.
    #[arg(long, value_enum, default_value = "file")]
    key_store: KeyStore,
    /// Where the root key is made [default: --key-store].
    #[arg(long, value_enum)]
    root_key_store: Option<KeyStore>,
    /// Where the issuing CA key is made [default: --key-store].
    #[arg(long, value_enum)]
    issuing_key_store: Option<KeyStore>,
    /// The PKCS#11 module (shared library), e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// The label of the token the keys are made in.
    #[arg(long, value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// A file holding the token's user PIN (first line); else SIGNET_PKCS11_PIN. The file's
    /// path (never the PIN) goes into signet.toml.
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

/// Where `init` makes a CA key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyStore {
    /// A PKCS#8 PEM file in the data directory.
    File,
    /// Inside a PKCS#11 token (an HSM), never leaving it.
    Pkcs11,
}

/// A token `create_ca` makes CA keys in, or finds an imported key in.
#[derive(Debug)]
pub struct TokenStore {
    /// The module.
    pub module: PathBuf,
    /// The token's label (for generated keys).
    pub token: Option<String>,
    /// The user PIN.
    pub pin: signet_pkcs11::Pin,
    /// Where the PIN came from, if a file: recorded in signet.toml.
    pub pin_file: Option<PathBuf>,
    /// The type of keys made in it.
    pub key_kind: signet_pkcs11::KeyKind,
}

/// Where `create_ca` keeps a new CA's keys: files unless a token is given and chosen.
#[derive(Debug, Default)]
pub struct KeyStores {
    /// The token, when any key is made in or read from one.
    pub token: Option<TokenStore>,
    /// The root key is made in the token.
    pub root_in_token: bool,
    /// The issuing key is made in the token.
    pub issuing_in_token: bool,
}

/// The label of the root key `init` makes in a token.
pub const ROOT_KEY_LABEL: &str = "root-ca";
/// The label of the issuing CA key `init` makes in a token.
pub const ISSUING_KEY_LABEL: &str = "issuing-ca";

impl TokenStore {
    fn module(&self) -> anyhow::Result<std::sync::Arc<signet_pkcs11::Module>> {
        Ok(signet_pkcs11::Module::open(&self.module)?)
    }

    /// Make a key labelled `label` in the token and open it; `made` collects its URI so a
    /// failed init can delete it again.
    fn generate(
        &self,
        label: &str,
        made: &mut Vec<signet_pkcs11::Pkcs11Uri>,
    ) -> anyhow::Result<std::sync::Arc<dyn signet_ca::SigningKey>> {
        let token = self
            .token
            .clone()
            .context("making a key in a token needs --pkcs11-token LABEL")?;
        let module = self.module()?;
        let where_ = signet_pkcs11::Pkcs11Uri {
            token: Some(token.clone()),
            object: Some(label.to_string()),
            ..Default::default()
        };
        let uri =
            signet_pkcs11::generate_key_pair(&module, &self.pin, &where_, label, self.key_kind)
                .with_context(|| format!("making the {label} key in the token {token}"))?;
        made.push(uri.clone());
        self.open(uri)
    }

    fn open(
        &self,
        uri: signet_pkcs11::Pkcs11Uri,
    ) -> anyhow::Result<std::sync::Arc<dyn signet_ca::SigningKey>> {
        let key = signet_pkcs11::Pkcs11Key::open(self.module()?, self.pin.clone(), uri.clone(), 2)
            .with_context(|| format!("CA key {uri}"))?;
        Ok(std::sync::Arc::new(key))
    }

    /// Delete the keys a failed init made.
    fn undo(&self, made: &[signet_pkcs11::Pkcs11Uri]) {
        for uri in made {
            let deleted = self
                .module()
                .and_then(|m| Ok(signet_pkcs11::destroy_key_pair(&m, &self.pin, uri)?));
            match deleted {
                Ok(_) => {
                    tracing::warn!(key = %uri, "the new CA was not completed: deleted its key from the token")
                }
                Err(e) => {
                    tracing::error!(key = %uri, error = %e, "the new CA was not completed, and deleting its key from the token failed: delete it by hand")
                }
            }
        }
    }
}

impl InitArgs {
    fn key_stores(&self) -> anyhow::Result<KeyStores> {
        let root = self.root_key_store.unwrap_or(self.key_store) == KeyStore::Pkcs11;
        let issuing = self.issuing_key_store.unwrap_or(self.key_store) == KeyStore::Pkcs11;
        let imported_uri = self
            .import_key
            .as_deref()
            .is_some_and(crate::config::KeyRef::is_uri);
        let generated = self.import_cert.is_none() && (root || issuing);
        if !generated && !imported_uri {
            if self.pkcs11_module.is_some() || self.pkcs11_token.is_some() {
                bail!(
                    "--pkcs11-module and --pkcs11-token are for keys in a token: add --key-store pkcs11"
                );
            }
            return Ok(KeyStores::default());
        }
        let module = self
            .pkcs11_module
            .clone()
            .context("keys in a PKCS#11 token need --pkcs11-module PATH")?;
        let module = std::path::absolute(&module)
            .with_context(|| format!("resolving {}", module.display()))?;
        if generated && self.pkcs11_token.is_none() {
            bail!("keys made in a PKCS#11 token need --pkcs11-token LABEL");
        }
        let (pin, pin_file) = match &self.pin_file {
            Some(file) => {
                let file = std::path::absolute(file)
                    .with_context(|| format!("resolving {}", file.display()))?;
                (signet_pkcs11::Pin::from_file(&file)?, Some(file))
            }
            None => (
                signet_pkcs11::Pin::from_env().with_context(|| {
                    format!(
                        "the token's PIN: give --pin-file FILE or set {}",
                        signet_pkcs11::PIN_ENV
                    )
                })?,
                None,
            ),
        };
        let key_kind = self.key_type.parse::<signet_pkcs11::KeyKind>()?;
        Ok(KeyStores {
            token: Some(TokenStore {
                module,
                token: self.pkcs11_token.clone(),
                pin,
                pin_file,
                key_kind,
            }),
            root_in_token: generated && root,
            issuing_in_token: generated && issuing,
        })
    }

    /// The type of keys made in files.
    fn file_key_type(&self, stores: &KeyStores) -> anyhow::Result<KeyType> {
        match parse_key_type(&self.key_type) {
            Ok(t) => Ok(t),
            // RSA is for keys in a token only; with both keys there it is not needed here.
            Err(_) if stores.root_in_token && stores.issuing_in_token => Ok(KeyType::default()),
            Err(e) => Err(anyhow::anyhow!("--key-type: {e}")),
        }
    }
}

pub(crate) fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse().map_err(|e: signet_ca::CaError| e.to_string())
}

/// How long a root CRL is valid unless `--validity` says otherwise: the first one `init`
/// writes, and each `signet ca root-crl` signs.
pub const ROOT_CRL_DEFAULT_VALIDITY: &str = "90d";

/// The CA's name when none is given.
pub const DEFAULT_NAME: &str = "Signet Internal CA";

pub async fn run(args: InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let import = args.import_cert.as_deref().zip(args.import_key.as_deref());
    let stores = args.key_stores()?;
    let key_type = args.file_key_type(&stores)?;
    // The database given in the environment is the one the new CA is recorded in: the
    // configuration says so from then on.
    let recorded = Recorded {
        database_url: std::env::var(config::DATABASE_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty()),
        ..Recorded::default()
    };
    let staging = Staging::begin(dir)?;
    let made = async {
        refuse_existing_ca(dir)?;
        let cfg = Config::parse(
            &config::render(DEFAULT_NAME, &recorded),
            &DataDir::new(dir).config(),
        )?;
        let url = cfg.database_url();
        let store = super::open_store(&url).await?;
        let made = async {
            binding::ensure_new_database(&store, &binding::describe_database(&url)).await?;
            create_ca(
                dir,
                args.name.clone(),
                key_type,
                import,
                &stores,
                &recorded,
                &store,
                "signet-init",
            )
            .await
        }
        .await;
        store.close().await;
        made
    }
    .await;
    let ca = staging.finish(made)?;
    println!("Initialised Signet CA in {}", dir.display());
    print_summary(dir, &ca, args.import_cert.is_some());
    Ok(())
}

/// What `init` prints about a new CA, and a first `serve` too: where its files are, the root's
/// fingerprint, and what to do next (move the root key offline; renew the root CRL in time).
pub fn print_summary(dir: &Path, ca: &IssuingCa, imported: bool) {
    println!(
        "  root certificate:    {}",
        DataDir::new(dir).root_cert().display()
    );
    println!(
        "  root fingerprint:    {}",
        sha256_fingerprint(ca.root_der())
    );
    println!(
        "  issuing certificate: {}",
        DataDir::new(dir).issuing_cert().display()
    );
    if DataDir::new(dir).root_crl().exists() {
        println!(
            "  root CRL:            {}",
            DataDir::new(dir).root_crl().display()
        );
    }
    println!(
        "  configuration:       {}",
        DataDir::new(dir).config().display()
    );
    if DataDir::new(dir).root_key().exists() {
        println!(
            "The root key {} is not needed to issue certificates: move it offline.",
            DataDir::new(dir).root_key().display()
        );
        println!(
            "The root CRL is valid for {}: before it ends, bring the root key back and run \
             `signet ca root-crl --dir {}` (clients that check CRLs refuse an expired one).",
            ROOT_CRL_DEFAULT_VALIDITY,
            dir.display()
        );
    } else if imported {
        println!(
            "No root CRL was written: the imported CA's root key is not here. Clients that \
             check CRLs for the whole chain (nginx ssl_crl) also need the root's CRL: get it \
             from whoever holds that root, or run `signet ca root-crl --root-key FILE` there."
        );
    }
    if super::passphrase().is_some() {
        println!("CA keys are encrypted; set SIGNET_CA_PASSPHRASE to use them.");
    }
    // Printed before a server's logs begin: make sure it is out first.
    let _ = std::io::Write::flush(&mut std::io::stdout());
}

/// Refuses a directory that holds a CA (or its configuration) already.
pub fn refuse_existing_ca(dir: &Path) -> anyhow::Result<()> {
    for existing in [CONFIG, ROOT_KEY, ISSUING_KEY, ISSUING_CERT] {
        if dir.join(existing).exists() {
            bail!(
                "{} already exists: refusing to overwrite a CA",
                dir.join(existing).display()
            );
        }
    }
    Ok(())
}

/// Create a new CA hierarchy in `dir` (which exists), or adopt the issuing CA in `import`
/// (certificate chain, key); record it in `store` (which must be a new database: see
/// [`binding::ensure_new_database`]); then write `signet.toml` with what `recorded` says.
/// Refuses to overwrite an existing CA. Returns the issuing CA, loaded as `issue` and
/// `serve` load it.
///
/// The database is written once, in one transaction (the CA it belongs to, the root's first
/// CRL, their audit rows), after every key and certificate file is in place and loads, and
/// `signet.toml` is written last: its presence means the directory is complete. On an error
/// the caller removes what was written ([`Staging`]); the database then holds nothing of it.
// One more than clippy's limit: the key stores joined the CA's other inputs for issue 17.
#[allow(clippy::too_many_arguments)]
pub async fn create_ca(
    dir: &Path,
    name: Option<String>,
    key_type: KeyType,
    import: Option<(&Path, &Path)>,
    stores: &KeyStores,
    recorded: &Recorded,
    store: &signet_store::Store,
    actor: &str,
) -> anyhow::Result<IssuingCa> {
    let mut made = Vec::new();
    let result = create_ca_keys(
        dir, name, key_type, import, stores, recorded, store, actor, &mut made,
    )
    .await;
    if result.is_err()
        && let Some(token) = &stores.token
    {
        token.undo(&made);
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn create_ca_keys(
    dir: &Path,
    name: Option<String>,
    key_type: KeyType,
    import: Option<(&Path, &Path)>,
    stores: &KeyStores,
    recorded: &Recorded,
    store: &signet_store::Store,
    actor: &str,
    made: &mut Vec<signet_pkcs11::Pkcs11Uri>,
) -> anyhow::Result<IssuingCa> {
    let passphrase = super::passphrase();
    let pass = passphrase.as_ref().map(|p| p.as_str());
    refuse_existing_ca(dir)?;
    let mut recorded = recorded.clone();
    let record_token = |issuing_key: Option<String>| {
        stores.token.as_ref().map(|t| RecordedPkcs11 {
            issuing_key,
            module: t.module.clone(),
            pin_file: t.pin_file.clone(),
        })
    };

    // Generated roots only: the root key is in hand until this function returns, so the
    // first root CRL is signed with it below. An imported CA brings no root key.
    let mut new_root = None;
    let name = match import {
        Some((cert, key)) => {
            let cert_pem =
                fs::read_to_string(cert).with_context(|| format!("reading {}", cert.display()))?;
            let (chain_pem, root_pem, subject) = match KeyRef::parse(key)? {
                KeyRef::File(key) => {
                    let key_pem = zeroize::Zeroizing::new(
                        fs::read_to_string(&key)
                            .with_context(|| format!("reading {}", key.display()))?,
                    );
                    let key = signet_ca::decode_private_key(&key_pem, pass)?;
                    let imported = import_ca(&cert_pem, key)?;
                    write_private_key_file(
                        &DataDir::new(dir).issuing_key(),
                        &encode_private_key(&imported.key, pass)?,
                    )?;
                    (imported.chain_pem, imported.root_pem, imported.subject)
                }
                KeyRef::Pkcs11(uri) => {
                    let token = stores
                        .token
                        .as_ref()
                        .context("a key in a token needs --pkcs11-module PATH")?;
                    let key = token.open(uri.clone())?;
                    let imported =
                        signet_ca::import_ca_for_key(&cert_pem, key.subject_public_key())?;
                    recorded.pkcs11 = record_token(Some(uri.to_string()));
                    (imported.chain_pem, imported.root_pem, imported.subject)
                }
            };
            write_atomic(
                &DataDir::new(dir).issuing_cert(),
                chain_pem.as_bytes(),
                0o644,
            )?;
            write_atomic(&DataDir::new(dir).root_cert(), root_pem.as_bytes(), 0o644)?;
            name.unwrap_or(subject)
        }
        None => {
            let name = name.unwrap_or_else(|| DEFAULT_NAME.to_string());
            let mut opts = InitOptions::new(name.clone());
            opts.key_type = key_type;
            // Each key: made in the token (its URI), or generated here and written to its file.
            let mut make = |in_token: bool, label: &str, file: PathBuf| {
                if in_token {
                    let token = stores.token.as_ref().context("no token given")?;
                    let key = token.generate(label, made)?;
                    let uri = made.last().map(ToString::to_string);
                    Ok::<_, anyhow::Error>((key, uri))
                } else {
                    let key = key_type.generate()?;
                    write_private_key_file(&file, &encode_private_key(&key, pass)?)?;
                    Ok((signet_ca::signing_key_of(&key)?, None))
                }
            };
            let (root_key, root_uri) = make(
                stores.root_in_token,
                ROOT_KEY_LABEL,
                DataDir::new(dir).root_key(),
            )?;
            let (issuing_key, issuing_uri) = make(
                stores.issuing_in_token,
                ISSUING_KEY_LABEL,
                DataDir::new(dir).issuing_key(),
            )?;
            let certs = signet_ca::certify_ca_keys(
                &opts,
                root_key.clone(),
                issuing_key,
                OffsetDateTime::now_utc(),
            )?;
            write_atomic(
                &DataDir::new(dir).root_cert(),
                certs.root_cert_pem.as_bytes(),
                0o644,
            )?;
            write_atomic(
                &DataDir::new(dir).issuing_cert(),
                certs.issuing_cert_pem.as_bytes(),
                0o644,
            )?;
            if root_uri.is_some() || issuing_uri.is_some() {
                recorded.pkcs11 = record_token(issuing_uri);
            }
            if let Some(uri) = &root_uri {
                println!("  root key:            {uri}");
            }
            new_root = Some((certs.root_cert_pem, root_key));
            name
        }
    };
    let recorded = &recorded;
    let config_text = config::render(&name, recorded);
    let config_path = DataDir::new(dir).config();
    let cfg = Config::parse(&config_text, &config_path)?;
    // Prove the issuing CA loads exactly as `issue` and `serve` will load it.
    let ca = super::issue::load_issuing_ca(&cfg)?;
    let identity = CaIdentity::of_root(ca.root_der())?;

    let mut audit = vec![AuditEntry {
        actor: actor.to_string(),
        action: AuditAction::BindDatabase,
        serial: None,
        outcome: AuditOutcome::Ok,
        detail: format!(
            "a new CA: this database belongs to the CA with root {} (key id {})",
            identity.root_fingerprint, identity.root_key_id
        ),
    }];
    let root_crl = match new_root {
        Some((root_pem, root_key)) => {
            let crl = first_root_crl(store, &root_pem, root_key).await?;
            audit.push(AuditEntry {
                actor: actor.to_string(),
                action: AuditAction::PublishRootCrl,
                serial: None,
                outcome: AuditOutcome::Ok,
                detail: format!(
                    "root {}: CRL number {}, 0 entries, nextUpdate {}",
                    crl.issuer_key_id, crl.number, crl.next_update
                ),
            });
            Some(crl)
        }
        None => None,
    };
    store
        .record_new_ca(&identity.binding(), root_crl.as_ref(), &audit)
        .await
        .context("recording the new CA in the database")?;
    if let Some(crl) = &root_crl {
        let pem = signet_ca::pem::crl(&crl.der);
        write_atomic(&DataDir::new(dir).root_crl(), pem.as_bytes(), 0o644)?;
    }
    // The config goes last: its presence means the directory is complete. A database URL
    // with a password in it makes it private.
    let mode = match &recorded.database_url {
        Some(url) if config::database_url_has_password(url) => 0o600,
        _ => 0o644,
    };
    write_atomic(&config_path, config_text.as_bytes(), mode)?;
    Ok(ca)
}

/// The new root's first CRL (empty: it has revoked nothing), signed and numbered by the
/// revocation publisher, to be recorded with the CA ([`signet_store::Store::record_new_ca`]).
async fn first_root_crl(
    store: &signet_store::Store,
    root_pem: &str,
    root_key: std::sync::Arc<dyn signet_ca::SigningKey>,
) -> anyhow::Result<NewCrl> {
    let validity = humantime::parse_duration(ROOT_CRL_DEFAULT_VALIDITY)
        .context("the default root CRL validity")?;
    let root = signet_ca::root_key_crl_signer(root_pem, root_key)?;
    Ok(signet_authority::RevocationPublisher::sign_first_root_crl(store, &root, validity).await?)
}

/// A data directory being made by `init` or a first `serve`: on failure, everything made
/// since [`Staging::begin`] is removed (the directory itself if it was made here), so that a
/// retry starts from the same place a clean first start does.
#[derive(Debug)]
pub struct Staging {
    dir: PathBuf,
    created: bool,
    before: std::collections::BTreeSet<std::ffi::OsString>,
}

impl Staging {
    /// Creates `dir` (mode 0700) if it does not exist, and notes what it holds.
    pub fn begin(dir: &Path) -> anyhow::Result<Staging> {
        let created = !dir.exists();
        create_private_dir(dir)?;
        Staging::after_lock(dir, created)
    }

    /// Notes what `dir` holds (nothing, if this process `created` it), once this process
    /// alone may write there (`serve` holds its lock); makes it private.
    pub fn after_lock(dir: &Path, created: bool) -> anyhow::Result<Staging> {
        create_private_dir(dir)?;
        let before = if created {
            Default::default()
        } else {
            fs::read_dir(dir)
                .with_context(|| format!("reading {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect()
        };
        Ok(Staging {
            dir: dir.to_path_buf(),
            created,
            before,
        })
    }

    /// Keeps what was made if `result` is Ok, else removes it, and hands `result` back.
    pub fn finish<T>(self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        if result.is_err() {
            self.undo();
        }
        result
    }

    /// Removes everything made since [`Staging::begin`].
    pub fn undo(self) {
        let removed = if self.created {
            fs::remove_dir_all(&self.dir)
        } else {
            fs::read_dir(&self.dir).and_then(|entries| {
                for entry in entries.flatten() {
                    if self.before.contains(&entry.file_name()) {
                        continue;
                    }
                    let path = entry.path();
                    if entry.file_type()?.is_dir() {
                        fs::remove_dir_all(&path)?;
                    } else {
                        fs::remove_file(&path)?;
                    }
                }
                Ok(())
            })
        };
        match removed {
            Ok(()) => tracing::warn!(
                dir = %self.dir.display(),
                "the new CA was not completed: removed what was written for it"
            ),
            Err(e) => tracing::error!(
                dir = %self.dir.display(),
                error = %e,
                "the new CA was not completed, and removing what was written for it failed: \
                 remove the new files by hand before trying again"
            ),
        }
    }
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
