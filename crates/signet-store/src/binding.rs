//! Which CA a database belongs to (schema: migration 0005): one row naming the CA's root,
//! written with the CA's first records and checked by every process that opens the
//! database for a data directory, so that a CA never writes into, or serves from, the
//! database of another CA (or an empty one that lost its history).

use sqlx::Row;
use time::OffsetDateTime;

use crate::audit::insert_audit;
use crate::crl::insert_crl_row;
use crate::revocation::notify_change;
use crate::{AuditEntry, NewCrl, Store, StoreError, from_unix};

/// The CA a database belongs to, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBinding {
    /// Key identifier (hex) of the root CA's key: what its CRLs are filed under.
    pub root_key_id: String,
    /// `sha256:` + hex SHA-256 of the root certificate (DER), as `signet serve` logs it.
    pub root_fingerprint: String,
    /// When it was recorded, whole seconds.
    pub created_at: OffsetDateTime,
}

/// A CA to record as the owner of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCaBinding {
    /// Key identifier (hex) of the root CA's key.
    pub root_key_id: String,
    /// `sha256:` + hex SHA-256 of the root certificate.
    pub root_fingerprint: String,
}

/// What a database holds, for telling a new database from one with a history: see
/// [`Store::contents`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DatabaseContents {
    /// At least one certificate is recorded.
    pub certificates: bool,
    /// At least one CRL is stored.
    pub crls: bool,
    /// At least one audit row was written.
    pub audit: bool,
    /// At least one certificate or CRL was issued under one of the key ids asked about.
    pub of_these_keys: bool,
}

impl DatabaseContents {
    /// Nothing was ever recorded: a new database.
    pub fn is_empty(&self) -> bool {
        !(self.certificates || self.crls || self.audit)
    }
}

fn validate(binding: &NewCaBinding) -> Result<(), StoreError> {
    crate::revocation::validate_key_id(&binding.root_key_id)?;
    let fp = &binding.root_fingerprint;
    let hex = fp.strip_prefix("sha256:").unwrap_or("");
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::InvalidInput(
            "a root fingerprint is \"sha256:\" and 64 lowercase hex digits".into(),
        ));
    }
    Ok(())
}

impl Store {
    /// The CA this database belongs to, if one was recorded.
    pub async fn ca_binding(&self) -> Result<Option<CaBinding>, StoreError> {
        let row = sqlx::query(
            "SELECT root_key_id, root_fingerprint, created_at FROM ca_binding WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CaBinding {
                root_key_id: row.try_get("root_key_id")?,
                root_fingerprint: row.try_get("root_fingerprint")?,
                created_at: from_unix("ca_binding.created_at", row.try_get("created_at")?)?,
            })
        })
        .transpose()
    }

    /// Records `binding` as the CA this database belongs to, with `audit`, unless one is
    /// recorded already; returns the one in force either way (compare it with `binding`).
    /// Concurrent callers agree: exactly one row is ever written.
    pub async fn bind_ca(
        &self,
        binding: &NewCaBinding,
        audit: &AuditEntry,
    ) -> Result<CaBinding, StoreError> {
        validate(binding)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ca_binding (id, root_key_id, root_fingerprint, created_at) \
             VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&binding.root_key_id)
        .bind(&binding.root_fingerprint)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            insert_audit(&mut tx, audit, now).await?;
        }
        tx.commit().await?;
        self.ca_binding()
            .await?
            .ok_or_else(|| StoreError::Corrupt("ca_binding: no row after recording one".into()))
    }

    /// A new CA's first records, in one transaction: `binding` (the database must not
    /// belong to a CA yet: [`StoreError::Conflict`] otherwise, and nothing is written), the
    /// root's first CRL if there is one (its number from [`Store::next_crl_number`]), and
    /// the audit rows. Either all of it is committed or none.
    pub async fn record_new_ca(
        &self,
        binding: &NewCaBinding,
        root_crl: Option<&NewCrl>,
        audit: &[AuditEntry],
    ) -> Result<(), StoreError> {
        validate(binding)?;
        if let Some(crl) = root_crl {
            crate::revocation::validate_key_id(&crl.issuer_key_id)?;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO ca_binding (id, root_key_id, root_fingerprint, created_at) \
             VALUES (1, $1, $2, $3)",
        )
        .bind(&binding.root_key_id)
        .bind(&binding.root_fingerprint)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => {
                StoreError::Conflict("the database already belongs to a CA".into())
            }
            other => other,
        })?;
        if let Some(crl) = root_crl {
            insert_crl_row(&mut tx, crl, now).await?;
            notify_change(
                &mut tx,
                self.backend,
                &crate::crl::crl_counter(&crl.issuer_key_id),
            )
            .await?;
        }
        for entry in audit {
            insert_audit(&mut tx, entry, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the database holds anything (certificates, CRLs, audit rows), and whether
    /// any certificate or CRL was issued under one of `key_ids` (hex): tells a new database
    /// from one with a history, and one CA's history from another's.
    pub async fn contents(&self, key_ids: &[&str]) -> Result<DatabaseContents, StoreError> {
        for id in key_ids {
            crate::revocation::validate_key_id(id)?;
        }
        let exists = |sql: &'static str| async move {
            Ok::<bool, StoreError>(sqlx::query(sql).fetch_optional(&self.pool).await?.is_some())
        };
        let mut contents = DatabaseContents {
            certificates: exists("SELECT 1 FROM certificates LIMIT 1").await?,
            crls: exists("SELECT 1 FROM crls LIMIT 1").await?,
            audit: exists("SELECT 1 FROM audit_log LIMIT 1").await?,
            of_these_keys: false,
        };
        for id in key_ids {
            // CRLs first: their primary key starts with the key id, and every CA that ever
            // served has published one.
            for sql in [
                "SELECT 1 FROM crls WHERE issuer_key_id = $1 LIMIT 1",
                "SELECT 1 FROM certificates WHERE issuer_key_id = $1 LIMIT 1",
            ] {
                if sqlx::query(sql)
                    .bind(*id)
                    .fetch_optional(&self.pool)
                    .await?
                    .is_some()
                {
                    contents.of_these_keys = true;
                    return Ok(contents);
                }
            }
        }
        Ok(contents)
    }
}
