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

mod layout;

pub use layout::*;

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
