//! `signet provisioner add|list|remove`: edit the `[[provisioners]]` of `signet.toml`.
//!
//! The file is edited with toml_edit, so comments and every other setting stay as they are.
//! Inputs are validated before anything is written; the new configuration is parsed and its
//! provisioners are built exactly as `signet serve` would before it replaces the old file
//! (atomically). A running server applies the change on restart or SIGHUP.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use signet_api::ProvisionerKind;
use signet_ca::{KeyType, Lifetime, Profile, encode_private_key, write_private_key_file};
use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use super::Refused;
use crate::config::Config;
use crate::datadir::{CONFIG, DataDir, provisioner_jwks_entry, provisioner_public_key_entry};
use crate::files::write_atomic;
use crate::serve::reload::build_provisioners;

#[derive(Debug, Args)]
pub struct ProvisionerArgs {
    #[command(subcommand)]
    command: ProvisionerCommand,
}

#[derive(Debug, Subcommand)]
enum ProvisionerCommand {
    /// Add a provisioner to signet.toml.
    #[command(subcommand)]
    Add(AddKind),
    /// List the configured provisioners.
    List(Location),
    /// Remove a provisioner from signet.toml.
    Remove(RemoveArgs),
}

#[derive(Debug, Subcommand)]
enum AddKind {
    /// Workloads of a Kubernetes cluster, by their projected service-account tokens.
    Kubernetes(AddKubernetesArgs),
    /// Clients holding one-time tokens signed with a provisioner key (`signet token`).
    Token(AddTokenArgs),
    /// ACME clients (certbot, lego, Caddy, cert-manager...), at
    /// `{server}/acme/NAME/directory`.
    Acme(AddAcmeArgs),
}

#[derive(Debug, Args)]
struct AddAcmeArgs {
    #[command(flatten)]
    location: Location,
    /// The provisioner's name (letters, digits, '-', '_', '.'): its directory is
    /// /acme/NAME/directory.
    #[arg(long)]
    name: String,
    /// New accounts need an external account binding; one key is made and printed now
    /// (more with `signet acme eab create`).
    #[arg(long)]
    eab: bool,
    /// The DNS server (IP:PORT) validation looks names up with [default: the system's].
    #[arg(long, value_name = "IP:PORT")]
    resolver: Option<String>,
    /// The port http-01 validation connects to [default: 80].
    #[arg(long, value_name = "PORT")]
    http01_port: Option<u16>,
    /// The port tls-alpn-01 validation connects to [default: 443].
    #[arg(long, value_name = "PORT")]
    tls_alpn01_port: Option<u16>,
    /// The addresses validation may connect to [default: all but loopback, link-local,
    /// unspecified and multicast].
    #[arg(long, value_delimiter = ',', value_name = "CIDR,...")]
    validation_networks: Vec<String>,
    /// The identifier types accepted [default: dns,ip].
    #[arg(long, value_delimiter = ',', value_name = "dns|ip,...")]
    identifiers: Vec<String>,
    /// The profile certificates are issued under [default: server].
    #[arg(long)]
    profile: Option<String>,
    /// The certificates' lifetime [default: 24h].
    #[arg(long, value_name = "DURATION")]
    lifetime: Option<String>,
}

/// Which configuration to edit.
#[derive(Debug, Args)]
struct Location {
    /// Data directory.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// Configuration file [default: DIR/signet.toml].
    #[arg(long)]
    config: Option<PathBuf>,
}

impl Location {
    fn config_path(&self) -> PathBuf {
        self.config.clone().unwrap_or_else(|| self.dir.join(CONFIG))
    }
}

#[derive(Debug, Args)]
struct AddKubernetesArgs {
    #[command(flatten)]
    location: Location,
    /// The provisioner's name (letters, digits, '-', '_', '.').
    #[arg(long)]
    name: String,
    /// The cluster's service-account keys as a JWKS (`kubectl get --raw /openid/v1/jwks`);
    /// copied to DIR/provisioners/NAME.jwks.json.
    #[arg(long, value_name = "FILE")]
    jwks_file: PathBuf,
    /// The cluster's service-account issuer: the `iss` of its tokens
    /// (`kubectl get --raw /.well-known/openid-configuration`).
    #[arg(long, value_name = "URL")]
    issuer: String,
    /// The audience workloads request their projected tokens for.
    #[arg(long, default_value = "signet")]
    audience: String,
    /// Namespaces allowed to request certificates [default: any].
    #[arg(long, value_delimiter = ',', value_name = "NS,...")]
    namespaces: Vec<String>,
    /// Service accounts allowed, as NAMESPACE/NAME [default: any].
    #[arg(long, value_delimiter = ',', value_name = "NS/SA,...")]
    service_accounts: Vec<String>,
    /// SPIFFE trust domain of the workloads' URI names [default: cluster.local].
    #[arg(long)]
    trust_domain: Option<String>,
    /// Profiles workloads may ask for [default: all; a request without one gets peer].
    #[arg(long, value_delimiter = ',', value_name = "PROFILE,...")]
    profiles: Vec<String>,
    /// Oldest token accepted, by its iat [default: 1h].
    #[arg(long, value_name = "DURATION")]
    max_token_age: Option<String>,
}

#[derive(Debug, Args)]
struct AddTokenArgs {
    #[command(flatten)]
    location: Location,
    /// The provisioner's name (letters, digits, '-', '_', '.'); tokens carry it as iss.
    #[arg(long)]
    name: String,
    /// The token-verification public key (SPKI PEM: P-256, Ed25519 or RSA); copied to
    /// DIR/provisioners/NAME.pub. Without it, a P-256 key pair is generated there
    /// (NAME.key, 0600, signs tokens).
    #[arg(long, value_name = "FILE")]
    public_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RemoveArgs {
    #[command(flatten)]
    location: Location,
    /// The provisioner to remove.
    name: String,
}

pub async fn run(args: ProvisionerArgs) -> anyhow::Result<()> {
    match args.command {
        ProvisionerCommand::Add(AddKind::Kubernetes(a)) => add_kubernetes(a),
        ProvisionerCommand::Add(AddKind::Token(a)) => add_token(a),
        ProvisionerCommand::Add(AddKind::Acme(a)) => add_acme(a).await,
        ProvisionerCommand::List(l) => list(&l),
        ProvisionerCommand::Remove(r) => remove(&r),
    }
}

/// The configuration as it is now: its text (for editing) and its parsed form (to check it).
struct Current {
    path: PathBuf,
    text: String,
    config: Config,
}

fn current(location: &Location) -> anyhow::Result<Current> {
    let path = location.config_path();
    if !path.exists() {
        bail!(
            "{} does not exist: run `signet init --dir {}` first",
            path.display(),
            location.dir.display()
        );
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::parse(&text, &path)
        .with_context(|| format!("{} must be valid before it is edited", path.display()))?;
    Ok(Current { path, text, config })
}

impl Current {
    fn refuse_duplicate(&self, name: &str) -> anyhow::Result<()> {
        if self.config.provisioners.iter().any(|p| p.name == name) {
            return Err(Refused(format!(
                "a provisioner named {name:?} already exists in {} (remove it first: signet provisioner remove {name})",
                self.path.display()
            ))
            .into());
        }
        Ok(())
    }

    fn document(&self) -> anyhow::Result<DocumentMut> {
        self.text
            .parse::<DocumentMut>()
            .with_context(|| format!("reading {} for editing", self.path.display()))
    }

    fn provisioners_dir(&self) -> anyhow::Result<PathBuf> {
        let dir = DataDir::new(&self.config.base_dir).provisioners();
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        Ok(dir)
    }

    /// Check `doc` as `signet serve` would load it, then replace the file with it.
    fn commit(&self, doc: &DocumentMut) -> anyhow::Result<Config> {
        let text = doc.to_string();
        let config = Config::parse(&text, &self.path)
            .context("the edited configuration does not load; nothing was changed")?;
        build_provisioners(&config, &self.path)
            .context("the edited configuration's provisioners do not load; nothing was changed")?;
        let mode = fs::metadata(&self.path)?.permissions().mode() & 0o777;
        write_atomic(&self.path, text.as_bytes(), mode)?;
        Ok(config)
    }
}

/// `[[provisioners]]` of the document, created if absent.
fn provisioners_array(doc: &mut DocumentMut) -> anyhow::Result<&mut ArrayOfTables> {
    let item = doc
        .entry("provisioners")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()));
    item.as_array_of_tables_mut()
        .context("`provisioners` is not written as [[provisioners]] tables; edit it by hand")
}

/// Append `entry` as the last `[[provisioners]]` table, after everything in the file
/// (including trailing comments, such as the commented examples `signet init` writes).
fn append_entry(doc: &mut DocumentMut, mut entry: Table, comment: &str) -> anyhow::Result<()> {
    let trailing = doc.trailing().as_str().unwrap_or_default().to_string();
    let mut prefix = trailing.trim_end().to_string();
    if !prefix.is_empty() {
        prefix.push('\n');
    }
    prefix.push_str(&format!("\n# {comment}\n"));
    entry.decor_mut().set_prefix(prefix);
    provisioners_array(doc)?.push(entry);
    doc.set_trailing("");
    Ok(())
}

fn string_array<S: AsRef<str>>(items: &[S]) -> Array {
    items.iter().map(|s| s.as_ref()).collect()
}

fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(Refused(format!(
            "provisioner name {name:?}: 1-64 characters of letters, digits, '-', '_' and '.'"
        ))
        .into());
    }
    Ok(())
}

/// Best effort: remove a file this command wrote when it then gives up.
fn discard(path: &Path) {
    let _ = fs::remove_file(path);
}

fn add_kubernetes(a: AddKubernetesArgs) -> anyhow::Result<()> {
    check_name(&a.name)?;
    let cur = current(&a.location)?;
    cur.refuse_duplicate(&a.name)?;
    if let Some(other) = cur
        .config
        .provisioners
        .iter()
        .find(|p| p.issuer.as_deref() == Some(a.issuer.as_str()))
    {
        return Err(Refused(format!(
            "provisioner {:?} already accepts tokens of issuer {:?}",
            other.name, a.issuer
        ))
        .into());
    }
    // The JWKS first: nothing is written unless it is usable.
    let meta =
        fs::metadata(&a.jwks_file).with_context(|| format!("reading {}", a.jwks_file.display()))?;
    if meta.len() > 1024 * 1024 {
        return Err(Refused(format!("{}: larger than 1 MiB", a.jwks_file.display())).into());
    }
    let jwks = fs::read_to_string(&a.jwks_file)
        .with_context(|| format!("reading {}", a.jwks_file.display()))?;
    let kids = signet_api::check_jwks(&jwks)
        .map_err(|e| Refused(format!("{}: {e}", a.jwks_file.display())))?;
    for p in &a.profiles {
        p.parse::<Profile>()
            .map_err(|e| Refused(format!("--profiles: {e}")))?;
    }
    if let Some(age) = &a.max_token_age {
        age.parse::<Lifetime>()
            .map_err(|e| Refused(format!("--max-token-age: {e}")))?;
    }

    let rel_jwks = provisioner_jwks_entry(&a.name);
    let mut entry = Table::new();
    entry.insert("name", value(&a.name));
    entry.insert("type", value(ProvisionerKind::Kubernetes.as_str()));
    entry.insert("issuer", value(&a.issuer));
    entry.insert("audience", value(&a.audience));
    entry.insert("jwks_file", value(&rel_jwks));
    if !a.namespaces.is_empty() {
        entry.insert("namespaces", value(string_array(&a.namespaces)));
    }
    if !a.service_accounts.is_empty() {
        entry.insert("service_accounts", value(string_array(&a.service_accounts)));
    }
    if let Some(td) = &a.trust_domain {
        entry.insert("trust_domain", value(td));
    }
    if let Some(age) = &a.max_token_age {
        entry.insert("max_token_age", value(age));
    }
    let mut policy = Table::new();
    let profiles: Vec<String> = if a.profiles.is_empty() {
        Profile::ALL.iter().map(|p| p.to_string()).collect()
    } else {
        a.profiles.clone()
    };
    policy.insert("profiles", value(string_array(&profiles)));
    entry.insert("policy", Item::Table(policy));

    let mut doc = cur.document()?;
    append_entry(
        &mut doc,
        entry,
        &format!(
            "Added by `signet provisioner add kubernetes` (JWKS from {}).",
            a.jwks_file.display()
        ),
    )?;

    let jwks_path = cur
        .provisioners_dir()?
        .join(format!("{}.jwks.json", a.name));
    write_atomic(&jwks_path, jwks.as_bytes(), 0o644)?;
    if let Err(e) = cur.commit(&doc) {
        discard(&jwks_path);
        return Err(e);
    }
    println!(
        "added kubernetes provisioner {:?} to {} (issuer {}, audience {}, keys {})",
        a.name,
        cur.path.display(),
        a.issuer,
        a.audience,
        kids.join(", ")
    );
    if cur.config.provisioners.is_empty() {
        println!(
            "note: `signet serve` creates the token provisioner \"default\" only when there is \
             no provisioner at all; for `signet token` add one with \
             `signet provisioner add token --name default`"
        );
    }
    println!("a running `signet serve` applies it on restart or SIGHUP");
    Ok(())
}

fn add_token(a: AddTokenArgs) -> anyhow::Result<()> {
    check_name(&a.name)?;
    let cur = current(&a.location)?;
    cur.refuse_duplicate(&a.name)?;
    cur.provisioners_dir()?;
    let data_dir = DataDir::new(&cur.config.base_dir);
    let pub_path = data_dir.provisioner_public_key(&a.name);
    let key_path = data_dir.provisioner_key(&a.name);
    let mut written = vec![];
    let pem = match &a.public_key {
        Some(file) => {
            fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
        }
        None => {
            if key_path.exists() {
                return Err(Refused(format!(
                    "{} already exists; it is not replaced",
                    key_path.display()
                ))
                .into());
            }
            let key = KeyType::P256.generate()?;
            write_private_key_file(&key_path, &encode_private_key(&key, None)?)?;
            written.push(key_path.clone());
            key.public_key_pem()
        }
    };
    write_atomic(&pub_path, pem.as_bytes(), 0o644)?;
    written.push(pub_path.clone());

    let result = (|| -> anyhow::Result<()> {
        let mut entry = Table::new();
        entry.insert("name", value(&a.name));
        entry.insert("type", value(ProvisionerKind::Token.as_str()));
        entry.insert(
            "public_key_file",
            value(provisioner_public_key_entry(&a.name)),
        );
        let policy_toml =
            toml::to_string(&cur.config.policy).context("writing the policy as TOML")?;
        let policy = policy_toml
            .parse::<DocumentMut>()
            .context("reading the policy back")?
            .as_table()
            .clone();
        entry.insert("policy", Item::Table(policy));
        let mut doc = cur.document()?;
        append_entry(
            &mut doc,
            entry,
            "Added by `signet provisioner add token`; the policy is the CA-wide [policy].",
        )?;
        cur.commit(&doc)?;
        Ok(())
    })();
    if let Err(e) = result {
        written.iter().for_each(|p| discard(p));
        return Err(e);
    }
    println!(
        "added token provisioner {:?} to {} (public key {})",
        a.name,
        cur.path.display(),
        pub_path.display()
    );
    if a.public_key.is_none() {
        println!("tokens are signed with {}", key_path.display());
    }
    println!("a running `signet serve` applies it on restart or SIGHUP");
    Ok(())
}

async fn add_acme(a: AddAcmeArgs) -> anyhow::Result<()> {
    check_name(&a.name)?;
    let cur = current(&a.location)?;
    cur.refuse_duplicate(&a.name)?;
    let mut entry = Table::new();
    entry.insert("name", value(&a.name));
    entry.insert("type", value(ProvisionerKind::Acme.as_str()));
    if a.eab {
        entry.insert("eab", value(true));
    }
    if !a.identifiers.is_empty() {
        entry.insert("identifiers", value(string_array(&a.identifiers)));
    }
    if let Some(profile) = &a.profile {
        profile
            .parse::<Profile>()
            .map_err(|e| Refused(format!("--profile: {e}")))?;
        entry.insert("profile", value(profile));
    }
    if let Some(lifetime) = &a.lifetime {
        lifetime
            .parse::<Lifetime>()
            .map_err(|e| Refused(format!("--lifetime: {e}")))?;
        entry.insert("lifetime", value(lifetime));
    }
    if let Some(resolver) = &a.resolver {
        entry.insert("resolver", value(resolver));
    }
    if let Some(port) = a.http01_port {
        entry.insert("http01_port", value(i64::from(port)));
    }
    if let Some(port) = a.tls_alpn01_port {
        entry.insert("tls_alpn01_port", value(i64::from(port)));
    }
    if !a.validation_networks.is_empty() {
        entry.insert(
            "validation_networks",
            value(string_array(&a.validation_networks)),
        );
    }
    let policy_toml = toml::to_string(&cur.config.policy).context("writing the policy as TOML")?;
    let policy = policy_toml
        .parse::<DocumentMut>()
        .context("reading the policy back")?
        .as_table()
        .clone();
    entry.insert("policy", Item::Table(policy));
    let mut doc = cur.document()?;
    append_entry(
        &mut doc,
        entry,
        "Added by `signet provisioner add acme`; the policy is the CA-wide [policy].",
    )?;
    let config = cur.commit(&doc)?;
    println!(
        "added ACME provisioner {:?} to {}: its directory is {}/acme/{}/directory",
        a.name,
        cur.path.display(),
        config.server.url.as_deref().unwrap_or("https://HOST:PORT"),
        a.name
    );
    if a.eab {
        let store = super::open_store(&config.database_url()).await?;
        let made = super::acme::create(&config, &store, &a.name).await;
        store.close().await;
        let (kid, hmac) = made?;
        println!("external account binding: kid {kid}");
        println!("external account binding: hmac_key {hmac}");
    }
    println!("a running `signet serve` applies it on restart");
    Ok(())
}

fn list(location: &Location) -> anyhow::Result<()> {
    let cur = current(location)?;
    if cur.config.provisioners.is_empty() {
        println!(
            "no provisioners in {} (`signet serve` creates \"default\" on its next start)",
            cur.path.display()
        );
        return Ok(());
    }
    println!("{:<20} {:<11} DETAILS", "NAME", "TYPE");
    for p in &cur.config.provisioners {
        let details = match p.kind {
            ProvisionerKind::Token => format!(
                "public_key_file={}",
                p.public_key_file
                    .as_deref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            ),
            ProvisionerKind::Kubernetes => {
                let mut d = format!(
                    "issuer={} audience={}",
                    p.issuer.as_deref().unwrap_or("-"),
                    p.audience.as_deref().unwrap_or("-")
                );
                if !p.namespaces.is_empty() {
                    d.push_str(&format!(" namespaces={}", p.namespaces.join(",")));
                }
                if !p.service_accounts.is_empty() {
                    d.push_str(&format!(
                        " service_accounts={}",
                        p.service_accounts.join(",")
                    ));
                }
                d
            }
            ProvisionerKind::Acme => {
                let mut d = format!(
                    "directory=/acme/{}/directory eab={}",
                    p.name,
                    p.eab.unwrap_or(false)
                );
                if let Some(r) = &p.resolver {
                    d.push_str(&format!(" resolver={r}"));
                }
                if let Some(n) = &p.validation_networks {
                    d.push_str(&format!(" validation_networks={}", n.join(",")));
                }
                d
            }
        };
        println!("{:<20} {:<11} {details}", p.name, p.kind.as_str());
    }
    Ok(())
}

fn remove(r: &RemoveArgs) -> anyhow::Result<()> {
    let cur = current(&r.location)?;
    let Some(old) = cur.config.provisioners.iter().find(|p| p.name == r.name) else {
        return Err(Refused(format!(
            "there is no provisioner named {:?} in {}",
            r.name,
            cur.path.display()
        ))
        .into());
    };
    let mut doc = cur.document()?;
    let array = provisioners_array(&mut doc)?;
    let index = array
        .iter()
        .position(|t| t.get("name").and_then(Item::as_str) == Some(r.name.as_str()))
        .context("the provisioner's entry was not found for editing")?;
    let removed = array.remove(index);
    // Comments above the entry that are not about it (such as the commented examples that
    // `add` moved in front of it) stay, in front of what now follows.
    let kept: Vec<&str> = removed
        .decor()
        .prefix()
        .and_then(|p| p.as_str())
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("# Added by `signet"))
        .collect();
    let kept = kept.join("\n").trim_end().to_string();
    let mut kept_for_trailing = None;
    if !kept.trim().is_empty() {
        match array.get_mut(index) {
            Some(next) => {
                let rest = next
                    .decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or_default()
                    .to_string();
                next.decor_mut().set_prefix(format!("{kept}\n{rest}"));
            }
            None => kept_for_trailing = Some(kept),
        }
    }
    if array.is_empty() {
        doc.remove("provisioners");
    }
    if let Some(kept) = kept_for_trailing {
        let rest = doc.trailing().as_str().unwrap_or_default().to_string();
        doc.set_trailing(format!("{kept}\n{rest}"));
    }
    let config = cur.commit(&doc)?;
    println!(
        "removed provisioner {:?} from {}",
        r.name,
        cur.path.display()
    );
    // The JWKS `add kubernetes` copied is public and now unused; key files are left alone.
    let ours = PathBuf::from(provisioner_jwks_entry(&r.name));
    if old.kind == ProvisionerKind::Kubernetes && old.jwks_file.as_deref() == Some(ours.as_path()) {
        discard(&config.base_dir.join(&ours));
    }
    if config.provisioners.is_empty() {
        println!("no provisioners remain: `signet serve` creates \"default\" on its next start");
    }
    println!("a running `signet serve` applies it on restart or SIGHUP");
    Ok(())
}
