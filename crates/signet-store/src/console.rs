//! What the operator console keeps and reads: signed-in sessions (only the SHA-256 of each
//! session id, with its role and CSRF token, migration 0011), and the overview's counts and
//! hourly activity, read from aggregates that triggers keep in the transactions that write,
//! revoke and sweep certificates, so that no count scans `certificates`.

use std::time::Duration;

use sqlx::Row;
use time::OffsetDateTime;

use crate::{Store, StoreError, duration_secs};

/// Longest accepted session id hash or CSRF token, in bytes.
const MAX_SESSION_FIELD: usize = 128;

/// One console session, as the store keeps it.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    /// `admin` or `auditor`.
    pub role: String,
    /// The synchronizer token its forms must carry.
    pub csrf: String,
    /// When it was signed in.
    pub created_at: OffsetDateTime,
    /// When it ends whatever happens.
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for ConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleSession")
            .field("role", &self.role)
            .field("csrf", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The overview's counts at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CertificateCounts {
    /// Neither revoked nor expired.
    pub valid: u64,
    /// Valid, and expiring within 24 hours.
    pub expiring_24h: u64,
    /// Valid, and expiring within 7 days.
    pub expiring_7d: u64,
    /// Revoked and not yet expired (what CRLs list).
    pub revoked: u64,
    /// Expired and still in the hot table (the retention sweep has not taken them yet).
    pub expired: u64,
}

/// Certificates issued and revoked in one hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HourlyActivity {
    /// The hour's start.
    pub hour: OffsetDateTime,
    /// Certificates recorded in it.
    pub issued: u64,
    /// Certificates revoked in it.
    pub revoked: u64,
}

fn check_field(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > MAX_SESSION_FIELD || value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {MAX_SESSION_FIELD} bytes without NUL"
        )));
    }
    Ok(())
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

const HOUR: i64 = 3600;

impl Store {
    /// Record a new console session (`id_hash`: the SHA-256 of its id, hex) ending at
    /// `expires_at` at the latest. Expired sessions are purged on the way.
    pub async fn create_console_session(
        &self,
        id_hash: &str,
        role: &str,
        csrf: &str,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        check_field("session id hash", id_hash)?;
        check_field("role", role)?;
        check_field("CSRF token", csrf)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM console_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO console_sessions (id_hash, role, csrf, created_at, last_seen, expires_at) \
             VALUES ($1, $2, $3, $4, $4, $5)",
        )
        .bind(id_hash)
        .bind(role)
        .bind(csrf)
        .bind(now)
        .bind(expires_at.unix_timestamp())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session `id_hash` if it is neither past its absolute end nor idle for longer
    /// than `idle`; using it moves its idle clock on (at most once a minute, to keep
    /// browsing from writing on every page). A session found expired is deleted.
    pub async fn touch_console_session(
        &self,
        id_hash: &str,
        idle: Duration,
    ) -> Result<Option<ConsoleSession>, StoreError> {
        check_field("session id hash", id_hash)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let row = sqlx::query(
            "SELECT role, csrf, created_at, last_seen, expires_at FROM console_sessions \
             WHERE id_hash = $1",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let last_seen: i64 = row.try_get("last_seen")?;
        let expires_at: i64 = row.try_get("expires_at")?;
        if expires_at <= now || last_seen.saturating_add(duration_secs(idle)) <= now {
            self.delete_console_session(id_hash).await?;
            return Ok(None);
        }
        if now - last_seen >= 60 {
            sqlx::query("UPDATE console_sessions SET last_seen = $1 WHERE id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
        }
        Ok(Some(ConsoleSession {
            role: row.try_get("role")?,
            csrf: row.try_get("csrf")?,
            created_at: crate::from_unix("created_at", row.try_get("created_at")?)?,
            expires_at: crate::from_unix("expires_at", expires_at)?,
        }))
    }

    /// End the session `id_hash` (signing out). Whether it existed.
    pub async fn delete_console_session(&self, id_hash: &str) -> Result<bool, StoreError> {
        check_field("session id hash", id_hash)?;
        let n = sqlx::query("DELETE FROM console_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// The overview's counts at `now`: sums over the hourly aggregates (migration 0011),
    /// plus index-only counts over the partial hours at the edges of each range. The work
    /// grows with the number of distinct hours in which certificates expire, never with
    /// the number of certificates.
    pub async fn certificate_counts(
        &self,
        now: OffsetDateTime,
    ) -> Result<CertificateCounts, StoreError> {
        let now = now.unix_timestamp();
        let valid_and_revoked = self.unexpired_after(now).await?;
        let (total, revoked) = valid_and_revoked;
        let in_24h = self.live_between(now, now + 24 * HOUR).await?;
        let in_7d = self.live_between(now, now + 7 * 24 * HOUR).await?;
        let all = sqlx::query(
            "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total FROM certificate_expiry_hours",
        )
        .fetch_one(&self.pool)
        .await?;
        let all: i64 = all.try_get("total")?;
        Ok(CertificateCounts {
            valid: count(total - revoked),
            expiring_24h: count(in_24h.0 - in_24h.1),
            expiring_7d: count(in_7d.0 - in_7d.1),
            revoked: count(revoked),
            expired: count(all - total),
        })
    }

    /// (all, revoked) certificates whose notAfter is later than `now`.
    async fn unexpired_after(&self, now: i64) -> Result<(i64, i64), StoreError> {
        let next_hour = now.div_euclid(HOUR) + 1;
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total, \
             CAST(COALESCE(SUM(revoked), 0) AS BIGINT) AS revoked \
             FROM certificate_expiry_hours WHERE hour >= $1",
        )
        .bind(next_hour)
        .fetch_one(&self.pool)
        .await?;
        let (t, r): (i64, i64) = (row.try_get("total")?, row.try_get("revoked")?);
        let (et, er) = self.exact_between(now, next_hour * HOUR - 1).await?;
        Ok((t + et, r + er))
    }

    /// (all, revoked) certificates with `from < notAfter <= until`.
    async fn live_between(&self, from: i64, until: i64) -> Result<(i64, i64), StoreError> {
        // Whole hours strictly inside the range come from the aggregate; the partial
        // hours at each end are counted exactly.
        let first_whole = from.div_euclid(HOUR) + 1;
        let last_whole = (until + 1).div_euclid(HOUR) - 1;
        if last_whole < first_whole {
            return self.exact_between(from, until).await;
        }
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total, \
             CAST(COALESCE(SUM(revoked), 0) AS BIGINT) AS revoked \
             FROM certificate_expiry_hours WHERE hour >= $1 AND hour <= $2",
        )
        .bind(first_whole)
        .bind(last_whole)
        .fetch_one(&self.pool)
        .await?;
        let (t, r): (i64, i64) = (row.try_get("total")?, row.try_get("revoked")?);
        let (ht, hr) = self.exact_between(from, first_whole * HOUR - 1).await?;
        let (tt, tr) = self
            .exact_between((last_whole + 1) * HOUR - 1, until)
            .await?;
        Ok((t + ht + tt, r + hr + tr))
    }

    /// (all, revoked) with `from < notAfter <= until`, counted from the two notAfter
    /// indexes alone (all rows; revoked rows), for a range within about an hour.
    async fn exact_between(&self, from: i64, until: i64) -> Result<(i64, i64), StoreError> {
        if until <= from {
            return Ok((0, 0));
        }
        let row = sqlx::query(
            "SELECT \
             (SELECT COUNT(*) FROM certificates WHERE not_after > $1 AND not_after <= $2) AS total, \
             (SELECT COUNT(*) FROM certificates \
              WHERE revoked_at IS NOT NULL AND not_after > $1 AND not_after <= $2) AS revoked",
        )
        .bind(from)
        .bind(until)
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get("total")?, row.try_get("revoked")?))
    }

    /// The notAfter of the newest delegated OCSP signer certificate (profile
    /// `ocsp-signer`), if any: one step in its own partial index (migration 0011).
    pub async fn newest_ocsp_signer_not_after(&self) -> Result<Option<OffsetDateTime>, StoreError> {
        let row = sqlx::query(
            "SELECT not_after FROM certificates WHERE profile = 'ocsp-signer' \
             ORDER BY created_at DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| crate::from_unix("not_after", r.try_get("not_after")?))
            .transpose()
    }

    /// Certificates issued and revoked per hour, for the hours from `since` on, oldest
    /// first; hours with neither are left out.
    pub async fn hourly_activity(
        &self,
        since: OffsetDateTime,
    ) -> Result<Vec<HourlyActivity>, StoreError> {
        let rows = sqlx::query(
            "SELECT hour, CAST(SUM(issued) AS BIGINT) AS issued, \
             CAST(SUM(revoked) AS BIGINT) AS revoked \
             FROM certificate_activity_hours WHERE hour >= $1 GROUP BY hour ORDER BY hour",
        )
        .bind(since.unix_timestamp().div_euclid(HOUR))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hour: i64 = row.try_get("hour")?;
                Ok(HourlyActivity {
                    hour: crate::from_unix("hour", hour.saturating_mul(HOUR))?,
                    issued: count(row.try_get("issued")?),
                    revoked: count(row.try_get("revoked")?),
                })
            })
            .collect()
    }
}
