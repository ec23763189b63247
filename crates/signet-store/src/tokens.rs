//! One-time tokens: burning a token's `jti` (alone or with the certificate it pays for, in
//! one commit) and purging burnt tokens once they can no longer be replayed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use time::OffsetDateTime;

use crate::{AuditEntry, NewCertificate, Store, StoreError, duration_secs};

/// Longest accepted token id ([`Store::consume_token`]), in bytes.
pub const MAX_JTI_LEN: usize = 256;

/// Longest accepted provisioner name ([`Store::consume_token`]), in bytes.
pub const MAX_PROVISIONER_LEN: usize = 128;

/// How long after its expiry a used token is remembered. Rows older than
/// this are purged (see [`Store::purge_used_tokens`]).
pub const USED_TOKEN_RETENTION: Duration = Duration::from_secs(10 * 60);

/// [`Store::consume_token`] refuses tokens that expired longer ago than this.
///
/// It is shorter than [`USED_TOKEN_RETENTION`] so that a token is refused
/// well before its row can be purged, even by another process whose clock is
/// a few minutes ahead: a purged token can never be consumed a second time.
/// Callers must check `exp` themselves with a leeway below this.
pub const MAX_EXPIRED_TOKEN_AGE: Duration = Duration::from_secs(5 * 60);

/// [`Store::consume_token`] purges old rows at most this often per [`Store`]
/// (and its clones).
const TOKEN_PURGE_INTERVAL_SECS: i64 = 60;

/// Checks a token key part: 1 to `max` bytes, no NUL (PostgreSQL text
/// cannot hold one).
fn validate_token_part(what: &str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > max {
        return Err(StoreError::InvalidInput(format!(
            "{what} must be 1 to {max} bytes long, got {}",
            value.len()
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} must not contain NUL"
        )));
    }
    Ok(())
}

impl Store {
    /// Records that the one-time token `jti` from `provisioner` has been used,
    /// and says whether this was its first use.
    ///
    /// * `Ok(true)`: first use; the row is inserted and committed (on SQLite,
    ///   synced) before this returns, so every process sharing the database
    ///   sees it.
    /// * `Ok(false)`: this `(provisioner, jti)` was already consumed (by this
    ///   or any other process): a replay. Concurrent calls for the same key
    ///   get exactly one `true`.
    ///
    /// `expires_at` is the token's expiry (`exp`, stored to the second); the
    /// row is kept until [`USED_TOKEN_RETENTION`] after it. The caller must
    /// check signature and expiry first; as a backstop, a token that expired
    /// more than [`MAX_EXPIRED_TOKEN_AGE`] ago is refused with
    /// [`StoreError::InvalidInput`], since its row could already have been
    /// purged.
    ///
    /// `provisioner` must be 1 to [`MAX_PROVISIONER_LEN`] bytes and `jti` 1 to
    /// [`MAX_JTI_LEN`] bytes, neither containing NUL, else
    /// [`StoreError::InvalidInput`] and no query is run.
    ///
    /// At most once a minute per [`Store`] this also purges expired rows (see
    /// [`Store::purge_used_tokens`]); a failure there is logged and does not
    /// affect the result.
    pub async fn consume_token(
        &self,
        provisioner: &str,
        jti: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        validate_token_part("provisioner", provisioner, MAX_PROVISIONER_LEN)?;
        validate_token_part("jti", jti, MAX_JTI_LEN)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expires = expires_at.unix_timestamp();
        if expires < now.saturating_sub(duration_secs(MAX_EXPIRED_TOKEN_AGE)) {
            return Err(StoreError::InvalidInput(format!(
                "token expired more than {} seconds ago",
                MAX_EXPIRED_TOKEN_AGE.as_secs()
            )));
        }

        // Group-committed with concurrent writes (see `group.rs`): an
        // INSERT … ON CONFLICT DO NOTHING, where a replay is "not inserted"
        // rather than an error; the primary key makes concurrent inserts of
        // one key (in this or any other process) serialise, so only one is
        // told it was first.
        let first = self
            .writer
            .consume_token(provisioner.to_owned(), jti.to_owned(), expires, now)
            .await?;

        self.maybe_purge_used_tokens(now).await;
        Ok(first)
    }

    /// [`Store::consume_token`] and [`Store::insert_certificate`] in one
    /// transaction: one durable commit per issuance instead of two.
    ///
    /// * `Ok(true)`: the token was new; the token row, the certificate and
    ///   its audit row are committed (and, on SQLite, synced).
    /// * `Ok(false)`: the token was already used (a replay); nothing was
    ///   written. The caller should discard the certificate it signed.
    ///
    /// Errors and input checks are those of the two calls it replaces; a
    /// duplicate serial is [`StoreError::Conflict`] and leaves the token
    /// unused. Meant for callers that sign before burning the token (a
    /// replay then costs one wasted signature, never a second certificate).
    pub async fn insert_certificate_with_token(
        &self,
        provisioner: &str,
        jti: &str,
        expires_at: OffsetDateTime,
        cert: &NewCertificate,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        validate_token_part("provisioner", provisioner, MAX_PROVISIONER_LEN)?;
        validate_token_part("jti", jti, MAX_JTI_LEN)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let expires = expires_at.unix_timestamp();
        if expires < now.saturating_sub(duration_secs(MAX_EXPIRED_TOKEN_AGE)) {
            return Err(StoreError::InvalidInput(format!(
                "token expired more than {} seconds ago",
                MAX_EXPIRED_TOKEN_AGE.as_secs()
            )));
        }
        let first = self
            .writer
            .insert_certificate_with_token(
                Box::new(cert.clone()),
                audit.clone(),
                provisioner.to_owned(),
                jti.to_owned(),
                expires,
                now,
            )
            .await?;
        self.maybe_purge_used_tokens(now).await;
        Ok(first)
    }

    /// Deletes used-token rows whose `expires_at` is more than
    /// [`USED_TOKEN_RETENTION`] in the past, returning how many were
    /// deleted. [`Store::consume_token`] calls this now and then by itself;
    /// call it directly from a periodic job if tokens are rare.
    pub async fn purge_used_tokens(&self) -> Result<u64, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.purge_used_tokens_at(now).await
    }

    async fn purge_used_tokens_at(&self, now: i64) -> Result<u64, StoreError> {
        let cutoff = now.saturating_sub(duration_secs(USED_TOKEN_RETENTION));
        let deleted = sqlx::query("DELETE FROM used_tokens WHERE expires_at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(deleted)
    }

    /// Purges if no clone of this store has done so in the last
    /// [`TOKEN_PURGE_INTERVAL_SECS`]; only one caller wins the slot.
    async fn maybe_purge_used_tokens(&self, now: i64) {
        let next = self.next_token_purge.load(Ordering::Relaxed);
        if now < next {
            return;
        }
        let claimed = self
            .next_token_purge
            .compare_exchange(
                next,
                now.saturating_add(TOKEN_PURGE_INTERVAL_SECS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok();
        if !claimed {
            return;
        }
        match self.purge_used_tokens_at(now).await {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "purged expired used tokens"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging expired used tokens failed"),
        }
    }
}
