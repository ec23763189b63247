//! The data directory's file names and the paths they make: std only, so that the fuzz
//! target that includes `config.rs` by path can include this too (`config.rs` takes its
//! defaults from here).

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
pub const ISSUING_PREFIX: &str = "issuing_ca.";

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
