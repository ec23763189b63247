//! A CA is bound to its database. The database records which CA it belongs to (its root's
//! key identifier and fingerprint, `Store::bind_ca`), and every command that opens it for a
//! data directory checks that record first: a database of another CA is refused, and so is
//! an empty database when the data directory shows that its CA has a history (its root CRL,
//! an earlier issuing CA), since starting over would restart the CRL numbers and forget
//! every certificate and revocation. A database from before the record
//! existed is adopted when it holds records of this CA.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, CaBinding, NewCaBinding, Store};

use crate::config::Config;

/// Which CA a data directory holds, as its database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaIdentity {
    /// Hex key identifier of the root (what its CRLs are filed under).
    pub root_key_id: String,
    /// `sha256:` + hex of the root certificate, as `serve` logs it.
    pub root_fingerprint: String,
}

impl CaIdentity {
    /// The identity of the CA whose root certificate is `root_der`.
    pub fn of_root(root_der: &[u8]) -> anyhow::Result<CaIdentity> {
        let root = signet_responder::IssuerCertificate::from_der(root_der)?;
        Ok(CaIdentity {
            root_key_id: root.key_id_hex().to_string(),
            root_fingerprint: signet_ca::sha256_fingerprint(root_der),
        })
    }

    pub fn binding(&self) -> NewCaBinding {
        NewCaBinding {
            root_key_id: self.root_key_id.clone(),
            root_fingerprint: self.root_fingerprint.clone(),
        }
    }

    fn matches(&self, bound: &CaBinding) -> bool {
        // The key decides: a root re-issued for the same key is the same CA.
        bound.root_key_id == self.root_key_id
    }
}

/// The files in a data directory that exist only once its CA has records in a database:
/// the root's first CRL (`init` and a first `serve` write it after the database has
/// recorded it), and the earlier issuing CAs `ca new-issuing` kept (recorded before their
/// files were moved). Not the admin token: it may be made elsewhere and copied in (as the
/// Kubernetes manifests do for a CA whose database starts empty).
pub fn directory_history(cfg: &Config) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root_crl = crate::datadir::DataDir::new(&cfg.base_dir).root_crl();
    if root_crl.exists() {
        found.push(root_crl);
    }
    found.extend(
        crate::datadir::kept_issuing_ca_files(&cfg.ca.issuing_cert)
            .into_iter()
            .map(|k| k.path),
    );
    found
}

/// How a command may treat a database that records no CA yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Record this CA (a new database, or one holding this CA's records from before the
    /// record existed).
    Bind,
    /// Only check a record that exists (a standalone responder writes nothing).
    CheckOnly,
}

/// Checks that `store` is the database of the CA `ca`, recording it with `Access::Bind` when
/// the database records no CA yet. `key_ids` are the hex key identifiers of the CA's
/// issuing CAs (current and kept), `history` what [`directory_history`] found, `database`
/// names the database for messages (never with a password), `actor` goes into the audit row.
pub async fn check_database(
    store: &Store,
    ca: &CaIdentity,
    key_ids: &[String],
    history: &[PathBuf],
    database: &str,
    actor: &str,
    access: Access,
) -> anyhow::Result<()> {
    if let Some(bound) = store.ca_binding().await? {
        if ca.matches(&bound) {
            if bound.root_fingerprint != ca.root_fingerprint {
                tracing::info!(
                    recorded = bound.root_fingerprint,
                    root = ca.root_fingerprint,
                    "the root certificate differs from the one the database recorded, for the same key"
                );
            }
            return Ok(());
        }
        bail!(
            "the database ({database}) belongs to another CA: its root is {}, this data \
             directory's root is {}. Each CA needs its own database: check [database] url, \
             SIGNET_DATABASE_URL and --database-url",
            bound.root_fingerprint,
            ca.root_fingerprint
        );
    }
    let mut ids: Vec<&str> = vec![ca.root_key_id.as_str()];
    ids.extend(key_ids.iter().map(String::as_str));
    let contents = store.contents(&ids).await?;
    if contents.is_empty() {
        if !history.is_empty() {
            let files: Vec<String> = history.iter().map(|p| p.display().to_string()).collect();
            bail!(
                "the database ({database}) is empty, but this CA has recorded its history in \
                 a database before ({} exist, written only after that). Starting over on an empty database would restart the CRL numbers and forget \
                 every certificate and revocation. Point [database] url (or \
                 SIGNET_DATABASE_URL, --database-url) at this CA's database, or restore it \
                 from a backup",
                files.join(", ")
            );
        }
    } else if !contents.of_these_keys {
        bail!(
            "the database ({database}) holds records, but no certificate or CRL of this CA \
             (root {}): it belongs to another CA. Each CA needs its own database: check \
             [database] url, SIGNET_DATABASE_URL and --database-url",
            ca.root_fingerprint
        );
    }
    if access == Access::CheckOnly {
        return Ok(());
    }
    let audit = AuditEntry {
        actor: actor.to_string(),
        action: AuditAction::BindDatabase,
        serial: None,
        outcome: AuditOutcome::Ok,
        detail: format!(
            "this database belongs to the CA with root {} (key id {})",
            ca.root_fingerprint, ca.root_key_id
        ),
    };
    let bound = store.bind_ca(&ca.binding(), &audit).await?;
    if !ca.matches(&bound) {
        // Another process recorded a different CA between the check and now.
        bail!(
            "the database ({database}) was just recorded as another CA's (root {}); this data \
             directory's root is {}",
            bound.root_fingerprint,
            ca.root_fingerprint
        );
    }
    if contents.is_empty() {
        tracing::info!(
            root_fingerprint = ca.root_fingerprint,
            "recorded the CA in a new database"
        );
    } else {
        tracing::info!(
            root_fingerprint = ca.root_fingerprint,
            "recorded in the database which CA it belongs to (it held this CA's records)"
        );
    }
    Ok(())
}

/// [`check_database`] for the CA of a data directory's configuration (its `[ca] root_cert`,
/// issuing certificate and kept issuing CAs), recording it with `Access::Bind`: for the
/// offline commands that write into the database (`ca root-crl`, `ca new-issuing`).
pub async fn check_directory_database(
    store: &Store,
    cfg: &Config,
    url: &str,
    actor: &str,
) -> anyhow::Result<()> {
    let first = |path: &Path| -> anyhow::Result<Vec<u8>> {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(crate::client::parse_certificates(&pem)
            .with_context(|| format!("reading {}", path.display()))?
            .into_iter()
            .next()
            .with_context(|| format!("no certificate in {}", path.display()))?
            .to_vec())
    };
    let identity = CaIdentity::of_root(&first(&cfg.ca.root_cert)?)?;
    let mut key_ids = vec![
        signet_responder::IssuerCertificate::from_der(&first(&cfg.ca.issuing_cert)?)?
            .key_id_hex()
            .to_string(),
    ];
    for kept in crate::datadir::kept_issuing_ca_files(&cfg.ca.issuing_cert) {
        if let Ok(c) = signet_responder::IssuerCertificate::from_der(&kept.der) {
            key_ids.push(c.key_id_hex().to_string());
        }
    }
    check_database(
        store,
        &identity,
        &key_ids,
        &directory_history(cfg),
        &describe_database(url),
        actor,
        Access::Bind,
    )
    .await
}

/// Refuses a database that already belongs to a CA, or holds records, for a new CA.
pub async fn ensure_new_database(store: &Store, database: &str) -> anyhow::Result<()> {
    if let Some(bound) = store.ca_binding().await? {
        bail!(
            "the database ({database}) already belongs to a CA (root {}): a new CA needs a \
             database of its own. To serve that CA, use its data directory",
            bound.root_fingerprint
        );
    }
    if !store.contents(&[]).await?.is_empty() {
        bail!(
            "the database ({database}) already holds a CA's records: a new CA needs a database \
             of its own. To serve that CA, use its data directory"
        );
    }
    Ok(())
}

/// A database URL for messages: the SQLite file, or the PostgreSQL server and database,
/// never a password.
pub fn describe_database(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or(path);
        return format!("SQLite {path}");
    }
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let kept: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("password"))
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            parsed.set_query(None);
            if !kept.is_empty() {
                parsed.query_pairs_mut().extend_pairs(kept);
            }
            format!("PostgreSQL {parsed}")
        }
        Err(_) => "PostgreSQL".to_string(),
    }
}

/// The key identifiers (hex) of the current issuing CA and of the earlier ones kept beside
/// it, for recognising this CA's records in a database.
pub fn issuing_key_ids(ca: &signet_ca::IssuingCa, issuing_cert: &Path) -> Vec<String> {
    let mut ids = vec![hex::encode(ca.key_id())];
    for kept in crate::datadir::kept_issuing_ca_files(issuing_cert) {
        if let Ok(c) = signet_responder::IssuerCertificate::from_der(&kept.der) {
            ids.push(c.key_id_hex().to_string());
        }
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_descriptions_never_hold_a_password() {
        assert_eq!(
            describe_database("sqlite:///var/lib/signet/signet.db?mode=rwc"),
            "SQLite /var/lib/signet/signet.db"
        );
        let d = describe_database("postgres://signet:s3cret@db.internal:5433/signet");
        assert_eq!(d, "PostgreSQL postgres://signet@db.internal:5433/signet");
        let d = describe_database("postgres:///signet?host=/run/postgresql&password=s3cret&user=u");
        assert!(!d.contains("s3cret"), "{d}");
        assert!(
            d.contains("host=%2Frun%2Fpostgresql") && d.contains("user=u"),
            "{d}"
        );
    }
}
