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

/// Bad command line or input, found before any request was made: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The CA refused the request: a 4xx answer, or with `issue --local` the CA's policy. The
/// same request will be refused again: exit code 3.
#[derive(Debug, thiserror::Error)]
#[error("refused by the CA: {0}")]
pub struct RefusedByCa(pub String);

/// The process exit code for an error, the same for every command (README, "Exit status"):
/// 1 failure, 2 bad command line or input, 3 refused by the CA, 4 root fingerprint
/// mismatch, 5 revoked or unknown (OCSP).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    use crate::workload::{ExitWith, exit};
    if let Some(w) = e.downcast_ref::<ExitWith>() {
        w.code
    } else if e.downcast_ref::<crate::client::RootMismatch>().is_some() {
        exit::ROOT_MISMATCH
    } else if e.downcast_ref::<RefusedByCa>().is_some() {
        exit::REFUSED
    } else if e.downcast_ref::<Refused>().is_some() {
        exit::USAGE
    } else {
        exit::FAILED
    }
}

/// An error shown through [`describe`] in a format string or log message.
#[derive(Debug)]
pub struct Causes<'a>(pub &'a anyhow::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&describe(self.0))
    }
}

/// An error and its causes on one line, each said once.
///
/// Many error types both print their source and return it from `source()` (the store's and
/// the CA's I/O errors, sqlx, reqwest), and a context often names the file the error names
/// again; printing the chain naively says "No such file or directory (os error 2)" twice.
/// Here a cause already said is dropped, and so are the leading `part: ` segments of a cause
/// that the message already holds (a path named by both the context and the error).
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        let mut rest = text.trim();
        while let Some((head, tail)) = rest.split_once(": ") {
            if !head.is_empty() && !tail.is_empty() && out.contains(head) {
                rest = tail;
            } else {
                break;
            }
        }
        if rest.is_empty() || out.contains(rest) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(rest);
    }
    out
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_said_once() {
        // An error that prints its source and also returns it, under a context naming the
        // same file.
        let ca = signet_ca::read_private_key_file(std::path::Path::new("/nonexistent/k.key"), None)
            .expect_err("missing");
        let e = anyhow::Error::new(ca).context("reading the provisioner key /nonexistent/k.key");
        assert_eq!(
            describe(&e),
            "reading the provisioner key /nonexistent/k.key: No such file or directory (os error 2)"
        );
        let e = anyhow::anyhow!("inner").context("outer").context("top");
        assert_eq!(describe(&e), "top: outer: inner");
        assert_eq!(exit_code(&anyhow::Error::new(Refused("x".into()))), 2);
        assert_eq!(exit_code(&anyhow::Error::new(RefusedByCa("x".into()))), 3);
        assert_eq!(
            exit_code(&anyhow::Error::new(crate::client::RootMismatch("x".into())).context("c")),
            4
        );
        assert_eq!(exit_code(&anyhow::anyhow!("x")), 1);
    }
}
