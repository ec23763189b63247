//! The saved client context (`signet context save`, like `step ca bootstrap`): which CA to
//! talk to and which root to trust, so client commands need neither `--ca-url` nor the root
//! on every call.
//!
//! It lives in the user's configuration directory, `$XDG_CONFIG_HOME/signet` or else
//! `~/.config/signet` (mode 0700): `context.toml` (the CA URL, the pinned root's SHA-256
//! fingerprint, the root's file name and when it was saved) and `root_ca.crt` (the root,
//! fetched from the CA and kept only because its fingerprint matched), both mode 0600.
//!
//! Precedence: a flag or `SIGNET_*` variable always wins. The saved root is trusted only for
//! the saved URL: a command given another `--ca-url` does not use it. On every load the root
//! file is checked against the saved fingerprint, so a root swapped on disk is refused
//! (exit 4) rather than trusted.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::error::RootMismatch;
use crate::files::write_atomic;
use crate::roots::{CaUrl, Fingerprint, certificate_pem, read_certificates};

/// The context file in the configuration directory.
pub const CONTEXT_FILE: &str = "context.toml";
/// The saved root certificate.
pub const ROOT_FILE: &str = "root_ca.crt";

/// `context.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    ca_url: String,
    root_fingerprint: String,
    root_file: String,
    saved_at: String,
}

/// A loaded, checked context.
#[derive(Debug, Clone)]
pub struct SavedContext {
    /// The CA's URL.
    pub ca_url: CaUrl,
    /// The pinned root's fingerprint.
    pub fingerprint: Fingerprint,
    /// The root, matching the fingerprint.
    pub root: CertificateDer<'static>,
    /// Where the root is stored.
    pub root_path: PathBuf,
    /// Where the context is stored.
    pub path: PathBuf,
    /// When it was saved (RFC 3339).
    pub saved_at: String,
}

/// The directory the context lives in: `$XDG_CONFIG_HOME/signet` (an absolute path, as the
/// XDG specification requires) or `$HOME/.config/signet`. `None` when neither is set.
pub fn dir() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from)
        && x.is_absolute()
    {
        return Some(x.join("signet"));
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute())
        .map(|h| h.join(".config").join("signet"))
}

/// The saved context, if there is one. A context that is there but unreadable, or whose
/// root no longer matches its fingerprint, is an error, never silently ignored.
pub fn load() -> anyhow::Result<Option<SavedContext>> {
    let Some(dir) = dir() else {
        return Ok(None);
    };
    let path = dir.join(CONTEXT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(anyhow!("reading the saved context {}: {e}", path.display())),
    };
    let file: ContextFile = toml::from_str(&text).map_err(|e| {
        anyhow!(
            "the saved context {} is malformed ({}); save it again or remove it with \
             `signet context remove`",
            path.display(),
            e.message()
        )
    })?;
    let ca_url =
        CaUrl::parse(&file.ca_url).with_context(|| format!("the ca_url in {}", path.display()))?;
    let fingerprint = Fingerprint::parse(&file.root_fingerprint)
        .with_context(|| format!("the root_fingerprint in {}", path.display()))?;
    let root_path = dir.join(&file.root_file);
    let root = read_certificates(&root_path)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("{} holds no certificate", root_path.display()))?;
    if !fingerprint.matches(&root) {
        return Err(RootMismatch(format!(
            "ROOT FINGERPRINT MISMATCH: {} has fingerprint {}, not the {fingerprint} saved in {}; \
             it was replaced after it was saved. Nothing was trusted; save the context again",
            root_path.display(),
            signet_ca::sha256_fingerprint(&root),
            path.display()
        ))
        .into());
    }
    Ok(Some(SavedContext {
        ca_url,
        fingerprint,
        root,
        root_path,
        path,
        saved_at: file.saved_at,
    }))
}

/// Save a context whose root has been fetched and checked against `fingerprint`. The root
/// is written before the context file that names it.
pub fn save(
    ca_url: &CaUrl,
    fingerprint: &Fingerprint,
    root: &CertificateDer<'_>,
) -> anyhow::Result<PathBuf> {
    let dir = dir().ok_or_else(|| {
        anyhow!("no configuration directory: set HOME or XDG_CONFIG_HOME to an absolute path")
    })?;
    create_private_dir(&dir)?;
    write_atomic(
        &dir.join(ROOT_FILE),
        certificate_pem(root).as_bytes(),
        0o600,
    )?;
    let file = ContextFile {
        ca_url: ca_url.as_str().to_string(),
        root_fingerprint: fingerprint.to_string(),
        root_file: ROOT_FILE.to_string(),
        saved_at: signet_ca::rfc3339(signet_ca::OffsetDateTime::now_utc()),
    };
    let text = format!(
        "# Written by `signet context save`: the CA client commands use when no --ca-url is\n\
         # given, and the root they trust for it. Replace it with `signet context save --force`.\n{}",
        toml::to_string(&file).context("encoding the context")?
    );
    let path = dir.join(CONTEXT_FILE);
    write_atomic(&path, text.as_bytes(), 0o600)?;
    Ok(path)
}

/// Remove the saved context; whether there was one.
pub fn remove() -> anyhow::Result<Option<PathBuf>> {
    let Some(dir) = dir() else {
        return Ok(None);
    };
    let path = dir.join(CONTEXT_FILE);
    let existed = match std::fs::remove_file(&path) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(anyhow!("removing {}: {e}", path.display())),
    };
    match std::fs::remove_file(dir.join(ROOT_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("removing {}: {e}", dir.join(ROOT_FILE).display())),
    }
    Ok(existed.then_some(path))
}

/// Create `dir` (and missing parents) and make it 0700.
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow!("creating {}: {e}", parent.display()))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(anyhow!("creating {}: {e}", dir.display())),
        }
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| anyhow!("making {} private: {e}", dir.display()))
}
