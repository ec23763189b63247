//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod bootstrap;
pub mod ca;
pub mod certificate;
pub mod context;
pub mod init;
pub mod inspect;
pub mod issue;
pub mod list;
pub mod migrate;
pub mod provisioner;
pub mod renew;
pub mod responder;
pub mod revoke;
pub mod serve;
pub mod staple;
pub mod token;

pub use signet_agent::error::{Causes, Refused, RefusedByCa, describe, exit_code};

/// The CA key passphrase from `SIGNET_CA_PASSPHRASE`, if set and non-empty.
pub fn passphrase() -> Option<zeroize::Zeroizing<String>> {
    std::env::var(crate::config::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(zeroize::Zeroizing::new)
}

/// Open the store and bring its schema up to date.
pub async fn open_store(url: &str) -> anyhow::Result<signet_store::Store> {
    use anyhow::Context;
    let store = signet_store::Store::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!(connect_error_message(&e)))
        .with_context(|| format!("opening the {} database", backend_name(url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Why the database could not be opened, said once: the store's error displays its source
/// too, and the source of an unreachable database is the message naming where and why.
pub fn connect_error_message(e: &signet_store::StoreError) -> String {
    match e {
        signet_store::StoreError::Unavailable(inner) => match std::error::Error::source(inner) {
            Some(cause) => cause.to_string(),
            None => e.to_string(),
        },
        other => other.to_string(),
    }
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}

/// An earlier issuing CA certificate `signet ca new-issuing` kept beside the issuing
/// certificate: `issuing_ca.<serial>.crt`.
pub struct KeptFile {
    /// The serial in the file name, hex (also names the kept key, `issuing_ca.<serial>.key`).
    pub serial: String,
    pub path: std::path::PathBuf,
    /// Its first certificate, DER.
    pub der: Vec<u8>,
    pub pem: String,
}

/// The kept issuing CA certificates in the directory of `issuing_cert`. Unreadable ones are
/// skipped with a warning; checking that they belong to this hierarchy is the caller's.
pub fn kept_issuing_ca_files(issuing_cert: &std::path::Path) -> Vec<KeptFile> {
    let dir = match issuing_cert.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(serial) = name
            .to_str()
            .and_then(|n| n.strip_prefix("issuing_ca."))
            .and_then(|n| n.strip_suffix(".crt"))
        else {
            continue;
        };
        if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let path = entry.path();
        let read = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|pem| {
                let der = crate::client::parse_certificates(pem.as_bytes())
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .next()
                    .ok_or_else(|| "no certificate in it".to_string())?
                    .to_vec();
                Ok((pem, der))
            });
        match read {
            Ok((pem, der)) => found.push(KeptFile {
                serial: serial.to_string(),
                path,
                der,
                pem,
            }),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping a kept issuing CA");
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}
