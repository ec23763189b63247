//! The audit log: the entry written with each operation (in the same transaction as what
//! it records), the stored row, and reading the newest rows. (Filtered, paginated reading
//! is `listing.rs`.)

use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::{Store, StoreError, from_unix};

/// An audit event to append. The time is set by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who did it.
    pub actor: String,
    /// What was done, e.g. `"issue"`, `"revoke"`.
    pub action: String,
    /// The certificate concerned, if any. Stored as given (not validated):
    /// an audit row may record an attempt with a malformed serial.
    pub serial: Option<String>,
    /// How it ended, e.g. `"ok"`, `"denied"`, `"error"`.
    pub outcome: String,
    /// Free text.
    pub detail: String,
}

/// A stored audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increasing id; larger is newer.
    pub id: i64,
    /// When the store recorded it, whole seconds.
    pub at: OffsetDateTime,
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// The certificate concerned, if any.
    pub serial: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// Free text.
    pub detail: String,
}

impl Store {
    /// Appends one audit row, time-stamped now, committed before `Ok` is
    /// returned (group-committed with concurrent writes).
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.writer.append_audit(audit.clone(), now).await
    }

    /// The newest `limit` audit rows, newest first.
    pub async fn list_audit(&self, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, serial, outcome, detail \
             FROM audit_log ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(audit_from_row).collect()
    }
}

pub(crate) async fn insert_audit(
    conn: &mut sqlx::AnyConnection,
    audit: &AuditEntry,
    at: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, serial, outcome, detail) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(at)
    .bind(&audit.actor)
    .bind(&audit.action)
    .bind(audit.serial.as_deref())
    .bind(&audit.outcome)
    .bind(&audit.detail)
    .execute(conn)
    .await
    .map_err(audit_error)?;
    Ok(())
}

/// The error for a failed `audit_log` insert: [`StoreError::Unavailable`] if
/// the database could not be reached (so callers answer 503
/// `database-unavailable` as for any other write), otherwise
/// [`StoreError::Audit`].
pub(crate) fn audit_error(err: sqlx::Error) -> StoreError {
    match StoreError::from(err) {
        StoreError::Unavailable(e) => StoreError::Unavailable(e),
        StoreError::Database(e) | StoreError::Audit(e) => StoreError::Audit(e),
        // A refusal that happens to look like a unique violation or a decode
        // error (audit_log has no unique key but its generated id) is still a
        // refused audit row, not a conflict for the caller to report.
        StoreError::Conflict(msg) | StoreError::Corrupt(msg) => {
            StoreError::Audit(sqlx::Error::Protocol(msg))
        }
        other => other,
    }
}

pub(crate) fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: from_unix("at", row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        serial: row.try_get("serial")?,
        outcome: row.try_get("outcome")?,
        detail: row.try_get("detail")?,
    })
}
