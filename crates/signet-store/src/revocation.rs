//! Revocation: marking a certificate revoked (with its audit row, in one transaction), the
//! narrow status query an OCSP responder makes per request, the revocation sequence
//! responders poll, and change notices (schema: migration 0003). CRLs are `crl.rs`; the
//! OCSP signer hand-off is `ocsp_signer.rs`.
//!
//! **Reasons.** [`Store::revoke`] takes a [`RevocationReason`], so only RFC 5280 codes are
//! ever written, and every read gives a [`RevocationReason`] back (signet-pkix's one
//! table). A database can still hold a code outside the table (7, 11, 300, -1: written by
//! hand or by another program). Such a row must still read as revoked: a read error there
//! would turn "revoked" into "cannot answer" for OCSP and would stop CRL publishing, and
//! relying parties that soft-fail accept both. So an odd code reads as revoked with the
//! reason unknown (`None`: no reason on the OCSP answer, no reasonCode on the CRL entry, as
//! for `unspecified`), with a warning naming the serial; the row is not changed.
//!
//! Change signalling has two layers. Every responder polls [`Store::revocations_since`]
//! (an indexed range scan that is empty almost always), which alone bounds how stale an
//! answer can be. On PostgreSQL, [`Store::revoke`] and [`Store::store_crl`] also send a
//! `NOTIFY` in the same transaction, and [`Store::change_listener`] lets a responder wake
//! up at once instead of at its next poll.

use sqlx::Row;
use time::OffsetDateTime;

use crate::audit::insert_audit;
use signet_pkix::{RevocationReason, Serial};

use crate::serial::{db_serial, parse_db_serial};
use crate::{AuditEntry, Backend, Store, StoreError, from_unix};

/// The PostgreSQL channel on which revocations and new CRLs are announced. The payload is
/// informational (`revoke:<serial>` or `crl:<issuer_key_id>`); listeners re-read the
/// tables rather than trust it.
pub const CHANGE_CHANNEL: &str = "signet_changes";

/// The name of the revocation sequence in the `counters` table.
pub(crate) const REVOCATION_COUNTER: &str = "revocation";

/// Longest accepted issuer key id, in hex digits (a SHA-512 would be 128).
const MAX_KEY_ID_HEX_LEN: usize = 128;

/// The largest page [`Store::revoked_for_crl`] and [`Store::revocations_since`] return.
pub const MAX_REVOCATION_PAGE: u32 = 50_000;

/// The revocation state of one certificate: what an OCSP responder needs to answer for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationStatus {
    /// Key identifier (hex) of the CA key that issued it.
    pub issuer_key_id: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// Why it was revoked, set together with `revoked_at`; `None` also for a revoked
    /// certificate whose stored code is not an RFC 5280 CRLReason (reason unknown).
    pub reason: Option<RevocationReason>,
}

/// One revocation, in commit order; see [`Store::revocations_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in the revocation sequence; pass the largest seen back as the cursor.
    pub seq: i64,
    /// The certificate revoked; `None` if the stored serial is not one as the store
    /// writes it (a row written by hand): the event still counts, and a cache keyed by
    /// serial should drop everything rather than miss a revocation.
    pub serial: Option<Serial>,
}

/// What [`Store::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The certificate was not revoked and now is; the audit row was written.
    Revoked,
    /// The certificate was already revoked; the earlier revocation is kept
    /// and nothing was written.
    AlreadyRevoked,
    /// No certificate has that serial; nothing was written.
    NotFound,
}

/// Wakes a responder when another process revokes a certificate or publishes a CRL
/// (PostgreSQL `LISTEN`). Notifications can be lost when the connection drops, so it is
/// only ever a shortcut: keep polling [`Store::revocations_since`] as well.
#[derive(Debug)]
pub struct ChangeListener {
    inner: sqlx::postgres::PgListener,
}

impl ChangeListener {
    /// Waits for the next change notice. Reconnects by itself after a lost connection;
    /// an error means reconnecting failed (wait a little and call again).
    pub async fn recv(&mut self) -> Result<(), StoreError> {
        self.inner.recv().await.map_err(StoreError::from)?;
        Ok(())
    }
}

pub(crate) fn validate_key_id(key_id: &str) -> Result<(), StoreError> {
    if key_id.is_empty()
        || key_id.len() > MAX_KEY_ID_HEX_LEN
        || !key_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        return Err(StoreError::InvalidInput(format!(
            "an issuer key id is 1 to {MAX_KEY_ID_HEX_LEN} lowercase hex digits"
        )));
    }
    Ok(())
}

/// The revocation reason stored for the certificate `serial`: the RFC 5280 reason, or
/// `None` for no code and for a code outside the table, which is logged (see the module's
/// documentation: such a row still reads as revoked).
pub(crate) fn reason_from_db(serial: &Serial, code: Option<i64>) -> Option<RevocationReason> {
    let code = code?;
    let reason = u8::try_from(code)
        .ok()
        .and_then(|c| RevocationReason::from_code(c).ok());
    if reason.is_none() {
        tracing::warn!(
            %serial,
            code,
            "stored revocation reason is not an RFC 5280 CRLReason; \
             the certificate reads as revoked with the reason unknown"
        );
    }
    reason
}

/// Bumps the counter `name` (creating it at 1) and returns its new value. Inside a
/// transaction the counter's row stays locked until commit, which is what orders
/// concurrent revocations.
pub(crate) async fn bump_counter(
    conn: &mut sqlx::AnyConnection,
    name: &str,
) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "INSERT INTO counters (name, value) VALUES ($1, 1) \
         ON CONFLICT (name) DO UPDATE SET value = counters.value + 1 \
         RETURNING value",
    )
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("value")?)
}

/// `NOTIFY` listeners of [`CHANGE_CHANNEL`] when the surrounding transaction commits
/// (PostgreSQL only; SQLite has no listeners to tell).
pub(crate) async fn notify_change(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    payload: &str,
) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGE_CHANNEL)
            .bind(payload)
            .execute(conn)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Marks a certificate revoked at `at` (stored to the second) for `reason` (stored as
    /// its RFC 5280 CRLReason code), and writes `audit`, in one transaction.
    ///
    /// The revocation gets the next number of the sequence
    /// [`Store::revocations_since`] reads, and on PostgreSQL a `NOTIFY` on
    /// [`CHANGE_CHANNEL`] goes out with the commit, so OCSP responders in
    /// other processes stop answering "good" at once.
    ///
    /// An earlier revocation is never overwritten. The audit row is written
    /// only when the outcome is [`RevokeOutcome::Revoked`]; for the other
    /// outcomes nothing is written and the caller may [`append_audit`] its
    /// own record of the attempt.
    ///
    /// [`append_audit`]: Store::append_audit
    pub async fn revoke(
        &self,
        serial: &Serial,
        at: OffsetDateTime,
        reason: RevocationReason,
        audit: &AuditEntry,
    ) -> Result<RevokeOutcome, StoreError> {
        let serial = db_serial(serial);
        let now = OffsetDateTime::now_utc().unix_timestamp();

        let mut tx = self.pool.begin().await?;
        // The revocation's place in the sequence responders poll (migration
        // 0003). The counter row stays locked until this transaction ends, so
        // revocations become visible in sequence order; an attempt that
        // revokes nothing rolls its number back.
        let seq = bump_counter(&mut tx, REVOCATION_COUNTER).await?;
        // Write first: the row lock (PostgreSQL) or the write lock (SQLite)
        // makes the "not yet revoked" check and the update one step.
        let updated = sqlx::query(
            "UPDATE certificates \
             SET revoked_at = $1, revocation_reason = $2, revocation_seq = $3 \
             WHERE serial = $4 AND revoked_at IS NULL",
        )
        .bind(at.unix_timestamp())
        .bind(i32::from(reason.code()))
        .bind(seq)
        .bind(&serial)
        .execute(&mut *tx)
        .await?
        .rows_affected();

        if updated == 1 {
            insert_audit(&mut tx, audit, now).await?;
            // Delivered to LISTENing responders when (and only if) this commits.
            notify_change(&mut tx, self.backend, &format!("revoke:{serial}")).await?;
            tx.commit().await?;
            return Ok(RevokeOutcome::Revoked);
        }

        let exists = sqlx::query("SELECT 1 FROM certificates WHERE serial = $1")
            .bind(&serial)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        tx.rollback().await?;
        Ok(if exists {
            RevokeOutcome::AlreadyRevoked
        } else {
            RevokeOutcome::NotFound
        })
    }

    /// The revocation state of the certificate `serial`, or `None` if this CA never
    /// recorded it. One primary-key lookup; what an OCSP responder runs per answer.
    pub async fn certificate_status(
        &self,
        serial: &Serial,
    ) -> Result<Option<RevocationStatus>, StoreError> {
        let row = sqlx::query(
            "SELECT issuer_key_id, not_after, revoked_at, revocation_reason \
             FROM certificates WHERE serial = $1",
        )
        .bind(db_serial(serial))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let reason = reason_from_db(serial, row.try_get("revocation_reason")?);
        Ok(Some(RevocationStatus {
            issuer_key_id: row.try_get("issuer_key_id")?,
            not_after: from_unix("not_after", row.try_get("not_after")?)?,
            revoked_at: revoked_at.map(|s| from_unix("revoked_at", s)).transpose()?,
            reason,
        }))
    }

    /// The current end of the revocation sequence: start [`Store::revocations_since`] from
    /// here to hear only of revocations made from now on.
    pub async fn revocation_cursor(&self) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(MAX(revocation_seq), 0) AS seq FROM certificates \
             WHERE revocation_seq IS NOT NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("seq")?)
    }

    /// Revocations committed after `cursor`, oldest first, at most `limit` (clamped to
    /// `1..=`[`MAX_REVOCATION_PAGE`]). Pass the last `seq` back to continue. The sequence
    /// follows commit order (see migration 0003), so a caller that always continues from
    /// the largest `seq` it has seen misses none.
    pub async fn revocations_since(
        &self,
        cursor: i64,
        limit: u32,
    ) -> Result<Vec<RevocationEvent>, StoreError> {
        let limit = i64::from(limit.clamp(1, MAX_REVOCATION_PAGE));
        let rows = sqlx::query(
            "SELECT revocation_seq, serial FROM certificates \
             WHERE revocation_seq > $1 ORDER BY revocation_seq LIMIT $2",
        )
        .bind(cursor)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let serial: String = row.try_get("serial")?;
                Ok(RevocationEvent {
                    seq: row.try_get("revocation_seq")?,
                    serial: parse_db_serial(&serial),
                })
            })
            .collect()
    }

    /// A listener for change notices from other processes, on PostgreSQL; `None` on
    /// SQLite, where every writer shares one file and polling is as quick. Opens its own
    /// connection, outside the pool.
    pub async fn change_listener(&self) -> Result<Option<ChangeListener>, StoreError> {
        let Some(url) = &self.listen_url else {
            return Ok(None);
        };
        let mut inner = sqlx::postgres::PgListener::connect(&url.url())
            .await
            .map_err(StoreError::Unavailable)?;
        inner.listen(CHANGE_CHANNEL).await?;
        Ok(Some(ChangeListener { inner }))
    }
}
