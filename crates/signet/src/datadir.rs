//! The data directory's layout: the one place that knows its file names.
//!
//! ```text
//! signet-data/                    (the default --dir; mode 0700 when serve or init makes it)
//!   signet.toml                   the configuration
//!   root_ca.crt  root_ca.key      the root CA (the key may live offline)
//!   root_ca.crl                   the root's CRL, PEM
//!   issuing_ca.crt  issuing_ca.key
//!   issuing_ca.<serial>.crt/.key  earlier issuing CAs kept by `ca new-issuing`, beside the
//!                                 issuing CA's files (wherever signet.toml puts those)
//!   admin.token                   the admin credential, mode 0600
//!   provisioners/NAME.key/.pub    a token provisioner's key pair (the key 0600)
//!   provisioners/NAME.jwks.json   a Kubernetes provisioner's fetched JWKS
//!   serve.lock                    held by the running `signet serve` (its pid)
//! ```
//!
//! `signet.toml` may name other paths for the CA files and the admin token (relative ones are
//! resolved against the directory); the names here are the defaults it is written with.

use std::path::{Path, PathBuf};

/// `--dir`'s default.
pub const DEFAULT_DIR: &str = "signet-data";

/// The configuration file.
pub const CONFIG: &str = "signet.toml";
/// The root CA's certificate.
pub const ROOT_CERT: &str = "root_ca.crt";
/// The root CA's key.
pub const ROOT_KEY: &str = "root_ca.key";
/// The root CA's CRL, PEM, first written by `init` while it holds the new root key.
pub const ROOT_CRL: &str = "root_ca.crl";
/// The issuing CA's certificate.
pub const ISSUING_CERT: &str = "issuing_ca.crt";
/// The issuing CA's key.
pub const ISSUING_KEY: &str = "issuing_ca.key";
/// The admin token (`sa_...`), mode 0600.
pub const ADMIN_TOKEN: &str = "admin.token";
/// The provisioners' key files, as `signet.toml` names them (relative to the directory).
pub const PROVISIONERS_DIR: &str = "provisioners";
/// The lock `signet serve` holds while it runs (see `serve/lock.rs`).
pub const LOCK_FILE: &str = "serve.lock";

/// The file-name prefix of the issuing CA and of the kept ones (`issuing_ca.<serial>.crt`).
const ISSUING_PREFIX: &str = "issuing_ca.";

/// A data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// The data directory at `path` (nothing is read or checked).
    pub fn new(path: &Path) -> DataDir {
        DataDir {
            path: path.to_path_buf(),
        }
    }

    /// `signet.toml`.
    pub fn config(&self) -> PathBuf {
        self.path.join(CONFIG)
    }

    /// `root_ca.crt`.
    pub fn root_cert(&self) -> PathBuf {
        self.path.join(ROOT_CERT)
    }

    /// `root_ca.key`.
    pub fn root_key(&self) -> PathBuf {
        self.path.join(ROOT_KEY)
    }

    /// `root_ca.crl`.
    pub fn root_crl(&self) -> PathBuf {
        self.path.join(ROOT_CRL)
    }

    /// `issuing_ca.crt`.
    pub fn issuing_cert(&self) -> PathBuf {
        self.path.join(ISSUING_CERT)
    }

    /// `issuing_ca.key`.
    pub fn issuing_key(&self) -> PathBuf {
        self.path.join(ISSUING_KEY)
    }

    /// `admin.token`.
    pub fn admin_token(&self) -> PathBuf {
        self.path.join(ADMIN_TOKEN)
    }

    /// `provisioners/`.
    pub fn provisioners(&self) -> PathBuf {
        self.path.join(PROVISIONERS_DIR)
    }

    /// `provisioners/NAME.key`: a token provisioner's signing key.
    pub fn provisioner_key(&self, name: &str) -> PathBuf {
        self.provisioners().join(format!("{name}.key"))
    }

    /// `provisioners/NAME.pub`: a token provisioner's public key.
    pub fn provisioner_public_key(&self, name: &str) -> PathBuf {
        self.provisioners().join(format!("{name}.pub"))
    }

    /// `serve.lock`.
    pub fn lock_file(&self) -> PathBuf {
        self.path.join(LOCK_FILE)
    }
}

/// `provisioners/NAME.pub` as `signet.toml` names it (relative to the data directory).
pub fn provisioner_public_key_entry(name: &str) -> String {
    format!("{PROVISIONERS_DIR}/{name}.pub")
}

/// `provisioners/NAME.jwks.json` as `signet.toml` names it: where `signet provisioner add
/// --kind kubernetes` keeps the JWKS it fetched.
pub fn provisioner_jwks_entry(name: &str) -> String {
    format!("{PROVISIONERS_DIR}/{name}.jwks.json")
}

/// Where `ca new-issuing` keeps the earlier issuing CA's certificate or key: beside `current`
/// (the issuing CA's certificate or key file), named `issuing_ca.<serial>.<ext>`.
pub fn kept_issuing_file(current: &Path, serial_hex: &str, ext: &str) -> PathBuf {
    current.with_file_name(format!("{ISSUING_PREFIX}{serial_hex}.{ext}"))
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
            .and_then(|n| n.strip_prefix(ISSUING_PREFIX))
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
                let der = signet_agent::roots::parse_certificates(pem.as_bytes())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_issuing_cas_are_named_by_serial_beside_the_current_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = DataDir::new(dir.path());
        let kept = kept_issuing_file(&data.issuing_cert(), "0a1b", "crt");
        assert_eq!(kept, dir.path().join("issuing_ca.0a1b.crt"));
        assert_eq!(
            kept_issuing_file(&data.issuing_key(), "0a1b", "key"),
            dir.path().join("issuing_ca.0a1b.key")
        );
        // Only issuing_ca.<hex>.crt files holding a certificate are found; the current
        // issuing CA, other names and unreadable files are not.
        let pem = rcgen::generate_simple_self_signed(vec!["kept.test".to_string()]).expect("cert");
        std::fs::write(&kept, pem.cert.pem()).expect("write");
        std::fs::write(data.issuing_cert(), pem.cert.pem()).expect("write");
        std::fs::write(dir.path().join("issuing_ca.zz.crt"), pem.cert.pem()).expect("write");
        std::fs::write(dir.path().join("issuing_ca.0c.crt"), "not PEM").expect("write");
        let found = kept_issuing_ca_files(&data.issuing_cert());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].serial, "0a1b");
        assert_eq!(found[0].path, kept);
        assert_eq!(found[0].der, pem.cert.der().to_vec());
    }
}
