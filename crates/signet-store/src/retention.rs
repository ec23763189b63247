//! Retention: certificates whose notAfter lies further back than the operator's
//! `expired_after` leave the hot tables (`certificates` and its names index,
//! `certificate_names`), copied first into `certificates_archive` or simply deleted, so the
//! database does not grow without bound at a steady issuance rate. Burnt token ids are
//! purged in the same sweep (once no token they name could still be accepted). The audit
//! log keeps every row; the sweep adds one.
//!
//! A sweep works in batches, one transaction each, so it never holds locks for long. Each
//! batch first bumps the `retention` counter (migration 0003's `counters`): on SQLite that
//! write takes the database's write lock before anything is read, on PostgreSQL it
//! serialises batches of concurrent sweeps; on PostgreSQL the batch's rows are then locked
//! (`FOR UPDATE`), so a revocation racing the sweep either commits before the row is
//! copied (the archive holds the revocation) or finds the row gone (`NotFound`).

use std::fmt;

use sqlx::Row;
use time::OffsetDateTime;

use crate::revocation::bump_counter;
use crate::{AuditAction, AuditEntry, AuditOutcome, Backend, Store, StoreError};

/// Rows per transaction of a sweep unless the caller says otherwise.
pub const DEFAULT_RETENTION_BATCH: u32 = 1000;

/// The counter bumped by every batch (it counts batches; nothing reads it back).
const RETENTION_COUNTER: &str = "retention";

/// What happens to a certificate that leaves the hot tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionMode {
    /// Copied into `certificates_archive` (same columns, plus `archived_at`), then deleted.
    Archive,
    /// Deleted.
    Delete,
}

impl RetentionMode {
    /// How the mode is written in `signet.toml` and the audit detail.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionMode::Archive => "archive",
            RetentionMode::Delete => "delete",
        }
    }
}

impl fmt::Display for RetentionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one [`Store::sweep_retention`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionSwept {
    /// Certificates taken out of `certificates` (archived or deleted).
    pub certificates: u64,
    /// Their `certificate_names` rows.
    pub names: u64,
    /// Burnt token ids purged (see [`Store::purge_used_tokens`]).
    pub used_tokens: u64,
    /// Transactions that removed certificates.
    pub batches: u64,
}

// Rows whose notAfter is before $1, up to and including the batch's last key ($2, $3) in
// (not_after, serial) order: exactly the batch read (and, on PostgreSQL, locked) first.
const SELECT_BATCH_SQLITE: &str = "SELECT not_after, serial FROM certificates \
     WHERE not_after < $1 ORDER BY not_after, serial LIMIT $2";
const SELECT_BATCH_POSTGRES: &str = "SELECT not_after, serial FROM certificates \
     WHERE not_after < $1 ORDER BY not_after, serial LIMIT $2 FOR UPDATE";
const ARCHIVE_BATCH: &str = "INSERT INTO certificates_archive \
     (serial, issuer, issuer_key_id, subject, sans, profile, not_before, not_after, requester, \
      der, created_at, revoked_at, revocation_reason, revocation_seq, crl_shard, archived_at) \
     SELECT serial, issuer, issuer_key_id, subject, sans, profile, not_before, not_after, \
      requester, der, created_at, revoked_at, revocation_reason, revocation_seq, crl_shard, $4 \
     FROM certificates \
     WHERE not_after < $1 AND (not_after < $2 OR (not_after = $2 AND serial <= $3))";
const DELETE_NAMES_BATCH: &str = "DELETE FROM certificate_names WHERE serial IN \
     (SELECT serial FROM certificates \
      WHERE not_after < $1 AND (not_after < $2 OR (not_after = $2 AND serial <= $3)))";
const DELETE_BATCH: &str = "DELETE FROM certificates \
     WHERE not_after < $1 AND (not_after < $2 OR (not_after = $2 AND serial <= $3))";

impl Store {
    /// Takes every certificate whose notAfter is before `expired_before` out of the hot
    /// tables, `batch` rows per transaction (at least 1), archiving or deleting it per
    /// `mode`, with its names-index rows; then purges burnt token ids past their
    /// retention. Revoked certificates go by the same rule: once expired, a certificate
    /// needs no CRL entry (RFC 5280 5.1.2.6) and no OCSP answer beyond `unknown`.
    ///
    /// If anything was removed, one audit row ([`AuditAction::RetentionSweep`], by
    /// `actor`) records the counts, after the last batch; a sweep that finds nothing writes
    /// nothing. Running it again at once removes nothing more. Safe to run from several
    /// processes at once (batches serialise), though `signet serve` runs it on one replica
    /// at a time.
    pub async fn sweep_retention(
        &self,
        expired_before: OffsetDateTime,
        mode: RetentionMode,
        batch: u32,
        actor: &str,
    ) -> Result<RetentionSwept, StoreError> {
        let cutoff = expired_before.unix_timestamp();
        let batch = i64::from(batch.max(1));
        let select = match self.backend {
            Backend::Postgres => SELECT_BATCH_POSTGRES,
            Backend::Sqlite => SELECT_BATCH_SQLITE,
        };
        let mut swept = RetentionSwept::default();
        loop {
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let mut tx = self.pool.begin().await?;
            bump_counter(&mut tx, RETENTION_COUNTER).await?;
            let rows = sqlx::query(select)
                .bind(cutoff)
                .bind(batch)
                .fetch_all(&mut *tx)
                .await?;
            let Some(last) = rows.last() else {
                tx.rollback().await?;
                break;
            };
            let last_not_after: i64 = last.try_get("not_after")?;
            let last_serial: String = last.try_get("serial")?;
            if mode == RetentionMode::Archive {
                sqlx::query(ARCHIVE_BATCH)
                    .bind(cutoff)
                    .bind(last_not_after)
                    .bind(&last_serial)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let names = sqlx::query(DELETE_NAMES_BATCH)
                .bind(cutoff)
                .bind(last_not_after)
                .bind(&last_serial)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let certificates = sqlx::query(DELETE_BATCH)
                .bind(cutoff)
                .bind(last_not_after)
                .bind(&last_serial)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            swept.certificates += certificates;
            swept.names += names;
            swept.batches += 1;
            if rows.len() < usize::try_from(batch).unwrap_or(usize::MAX) {
                break;
            }
            // Let issuance and revocations in between batches.
            tokio::task::yield_now().await;
        }

        swept.used_tokens = self.purge_used_tokens().await?;

        if swept.certificates > 0 {
            let verb = match mode {
                RetentionMode::Archive => "archived",
                RetentionMode::Delete => "deleted",
            };
            self.append_audit(&AuditEntry {
                actor: actor.to_owned(),
                action: AuditAction::RetentionSweep,
                serial: None,
                outcome: AuditOutcome::Ok,
                detail: format!(
                    "{verb} {} certificates whose notAfter is before unix time {cutoff} \
                     ({} names-index rows, {} used token ids purged, {} batches)",
                    swept.certificates, swept.names, swept.used_tokens, swept.batches
                ),
            })
            .await?;
        }
        Ok(swept)
    }

    /// How many certificates `certificates_archive` holds.
    pub async fn count_archived_certificates(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM certificates_archive")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
    }
}
