//! What `signet serve` adds to a data directory that lacks it, so that a fresh directory is
//! usable at once: the admin bearer token and a token provisioner named `default`.
//!
//! Each step is idempotent and safe to repeat after a crash: files are created exclusively
//! (a file that already exists is kept and used), and the provisioner's entry is appended to
//! `signet.toml` only after its key files are complete.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use signet_ca::{
    KeyType, Policy, encode_private_key, read_private_key_file, write_private_key_file,
};
use zeroize::Zeroizing;

use crate::datadir::{DataDir, provisioner_public_key_entry};
use crate::files::write_atomic;

/// The admin token's prefix: makes a leaked token easy to recognise (and to scan for).
pub const ADMIN_TOKEN_PREFIX: &str = "sa_";
/// The read-only auditor token's prefix.
pub const AUDITOR_TOKEN_PREFIX: &str = "sr_";
/// The provisioner created for a directory that has none.
pub const DEFAULT_PROVISIONER: &str = "default";

/// A fresh token: `prefix` (`sa_` for the admin's, `sr_` for the auditor's) then 32 random
/// bytes, base64url without padding (so no dots, and nothing a shell or an HTTP header would
/// mangle).
fn generate_token(prefix: &str) -> anyhow::Result<Zeroizing<String>> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    Ok(Zeroizing::new(format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes.as_ref())
    )))
}

/// Create the admin token file (mode 0600) unless it exists. Returns whether it was created.
///
/// Through the workspace's one atomic create (`signet_ca::files::write_new`): the token is
/// written to a temporary file, synced, then hard-linked into place; the link fails if
/// another process created the file first, so the token on disk is never replaced or seen
/// half-written.
pub fn ensure_admin_token(path: &Path) -> anyhow::Result<bool> {
    ensure_token(path, ADMIN_TOKEN_PREFIX, "admin")
}

/// Create the read-only auditor token file (mode 0600, `sr_`...) unless it exists, as
/// [`ensure_admin_token`] does the admin's. Returns whether it was created.
pub fn ensure_auditor_token(path: &Path) -> anyhow::Result<bool> {
    ensure_token(path, AUDITOR_TOKEN_PREFIX, "auditor")
}

fn ensure_token(path: &Path, prefix: &str, what: &str) -> anyhow::Result<bool> {
    if path.exists() {
        return Ok(false);
    }
    let token = generate_token(prefix)?;
    let mut text = Zeroizing::new(token.to_string());
    text.push('\n');
    let result = match signet_ca::files::write_new(path, text.as_bytes(), 0o600) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("creating the {what} token {}", path.display()))
}

/// The files of the `default` provisioner, under `base_dir`.
#[derive(Debug)]
pub struct DefaultProvisioner {
    /// PKCS#8 private key (0600): what `signet` clients sign tokens with.
    pub key_file: PathBuf,
    /// SPKI PEM public key: what the server verifies tokens with.
    pub public_key_file: PathBuf,
}

/// Give the configuration at `config_path` (whose directory is `base_dir`) a token
/// provisioner named `default`: a P-256 key in `provisioners/default.key`, its public key in
/// `provisioners/default.pub`, and a `[[provisioners]]` entry allowing what `policy` allows.
///
/// An existing `default.key` is kept (a previous start may have stopped before it wrote the
/// configuration); the public key is always rewritten from it.
pub fn add_default_provisioner(
    config_path: &Path,
    base_dir: &Path,
    policy: &Policy,
) -> anyhow::Result<DefaultProvisioner> {
    let data_dir = DataDir::new(base_dir);
    let dir = data_dir.provisioners();
    if !dir.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let key_file = data_dir.provisioner_key(DEFAULT_PROVISIONER);
    let public_key_file = data_dir.provisioner_public_key(DEFAULT_PROVISIONER);
    let key = if key_file.exists() {
        read_private_key_file(&key_file, None)
            .with_context(|| format!("reading the provisioner key {}", key_file.display()))?
    } else {
        let key = KeyType::P256.generate()?;
        write_private_key_file(&key_file, &encode_private_key(&key, None)?)?;
        key
    };
    write_atomic(&public_key_file, key.public_key_pem().as_bytes(), 0o644)?;

    let entry = provisioner_entry(policy)?;
    let mut text = fs::read_to_string(config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(
        "\n# Added by `signet serve`: clients sign tokens with provisioners/default.key.\n",
    );
    text.push_str(&entry);
    let mode = fs::metadata(config_path)?.permissions().mode() & 0o777;
    write_atomic(config_path, text.as_bytes(), mode)?;
    Ok(DefaultProvisioner {
        key_file,
        public_key_file,
    })
}

/// The `[[provisioners]]` entry for `default`, as TOML, with its policy spelled out.
fn provisioner_entry(policy: &Policy) -> anyhow::Result<String> {
    let policy = toml::to_string(policy).context("writing the provisioner policy as TOML")?;
    let public_key_file = provisioner_public_key_entry(DEFAULT_PROVISIONER);
    let text = format!(
        "[[provisioners]]\n\
         name = \"{DEFAULT_PROVISIONER}\"\n\
         type = \"token\"\n\
         public_key_file = \"{public_key_file}\"\n\
         \n\
         [provisioners.policy]\n\
         {policy}"
    );
    // Check the entry reads back as the API will read it before it goes into the file.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        provisioners: Vec<signet_api::ProvisionerConfig>,
    }
    let doc: Doc =
        toml::from_str(&text).context("the generated provisioner entry does not parse")?;
    if doc.provisioners.len() != 1 {
        bail!("the generated provisioner entry does not parse as one provisioner");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_are_prefixed_base64url_without_dots() {
        let a = generate_token(ADMIN_TOKEN_PREFIX).expect("token");
        let b = generate_token(ADMIN_TOKEN_PREFIX).expect("token");
        assert_ne!(*a, *b);
        let body = a.strip_prefix(ADMIN_TOKEN_PREFIX).expect("prefix");
        assert_eq!(body.len(), 43, "32 bytes of base64url without padding");
        assert!(
            body.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn the_admin_token_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        assert!(ensure_admin_token(&path).expect("create"));
        let first = fs::read_to_string(&path).expect("read");
        assert!(!ensure_admin_token(&path).expect("again"));
        assert_eq!(fs::read_to_string(&path).expect("read"), first);
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn the_default_provisioner_entry_parses_with_the_policy_spelled_out() {
        let policy = crate::config::default_policy();
        let text = provisioner_entry(&policy).expect("entry");
        assert!(text.starts_with("[[provisioners]]"), "{text}");
        let doc: toml::Table = toml::from_str(&text).expect("toml");
        let written = doc["provisioners"][0]["policy"].clone();
        let back: Policy = written.try_into().expect("policy");
        assert_eq!(back, policy);
    }
}
