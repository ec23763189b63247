//! What revocation publishing needs from the database: CRL numbers and stored CRLs, the
//! revoked certificates a CRL lists, the narrow status query an OCSP responder makes per
//! request, a cheap signal of new revocations, and the hand-off through which a responder
//! without the CA key obtains its delegated signing certificate (schema: migration 0003).
//!
//! Change signalling has two layers. Every responder polls [`Store::revocations_since`]
//! (an indexed range scan that is empty almost always), which alone bounds how stale an
//! answer can be. On PostgreSQL, [`Store::revoke`] and [`Store::store_crl`] also send a
//! `NOTIFY` in the same transaction, and [`Store::change_listener`] lets a responder wake
//! up at once instead of at its next poll.

use sqlx::Row;
use time::OffsetDateTime;

use crate::{
    AuditEntry, Backend, NewCertificate, Store, StoreError, from_unix, insert_audit,
    validate_serial,
};

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
    /// RFC 5280 CRLReason code, set together with `revoked_at`.
    pub reason: Option<u8>,
}

/// One entry of a CRL: a revoked certificate that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Canonical serial (lowercase hex, minimal).
    pub serial: String,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// RFC 5280 CRLReason code.
    pub reason: u8,
}

/// One revocation, in commit order; see [`Store::revocations_since`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevocationEvent {
    /// Position in the revocation sequence; pass the largest seen back as the cursor.
    pub seq: i64,
    /// The certificate revoked.
    pub serial: String,
}

/// A CRL to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCrl {
    /// Key identifier (hex) of the CA key that signed it.
    pub issuer_key_id: String,
    /// Its CRL Number, from [`Store::next_crl_number`].
    pub number: u64,
    /// thisUpdate (stored to the second).
    pub this_update: OffsetDateTime,
    /// nextUpdate (stored to the second).
    pub next_update: OffsetDateTime,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// How much of a stored CRL's DER [`Store::latest_crl`] reads per query.
const CRL_READ_CHUNK: usize = 4 << 20;

/// A stored CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrlRecord {
    /// Key identifier (hex) of the CA key that signed it.
    pub issuer_key_id: String,
    /// Its CRL Number.
    pub number: u64,
    /// thisUpdate, whole seconds.
    pub this_update: OffsetDateTime,
    /// nextUpdate, whole seconds.
    pub next_update: OffsetDateTime,
    /// The CRL, DER.
    pub der: Vec<u8>,
    /// When the store recorded it, whole seconds.
    pub created_at: OffsetDateTime,
}

/// What is known of a stored CRL without reading its DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrlInfo {
    /// Its CRL Number.
    pub number: u64,
    /// thisUpdate, whole seconds.
    pub this_update: OffsetDateTime,
    /// nextUpdate, whole seconds.
    pub next_update: OffsetDateTime,
}

/// A pending request for a delegated OCSP signing certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcspSignerRequest {
    /// The request's id.
    pub id: i64,
    /// SubjectPublicKeyInfo of the responder's key, DER.
    pub spki: Vec<u8>,
    /// When it was made, whole seconds.
    pub requested_at: OffsetDateTime,
}

/// Where a request made with [`Store::request_ocsp_signer`] stands.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OcspSignerRequestState {
    /// No CA process has answered yet.
    Pending,
    /// The certificate, DER, recorded in the certificates table.
    Fulfilled(Vec<u8>),
    /// There is no such request (it was purged): make a new one.
    Missing,
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

pub(crate) fn crl_counter(issuer_key_id: &str) -> String {
    format!("crl:{issuer_key_id}")
}

fn reason_from(column: &str, r: i64) -> Result<u8, StoreError> {
    u8::try_from(r).map_err(|_| StoreError::Corrupt(format!("{column} {r} out of range")))
}

fn u64_from(column: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} {n} is negative")))
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

/// Inserts one CRL row (stored at `now`); a number stored already is
/// [`StoreError::Conflict`].
pub(crate) async fn insert_crl_row(
    conn: &mut sqlx::AnyConnection,
    crl: &NewCrl,
    now: i64,
) -> Result<(), StoreError> {
    validate_key_id(&crl.issuer_key_id)?;
    let number = i64::try_from(crl.number)
        .map_err(|_| StoreError::InvalidInput("CRL number out of range".into()))?;
    sqlx::query(
        "INSERT INTO crls (issuer_key_id, number, this_update, next_update, der, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&crl.issuer_key_id)
    .bind(number)
    .bind(crl.this_update.unix_timestamp())
    .bind(crl.next_update.unix_timestamp())
    .bind(&crl.der)
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(format!(
            "CRL number {} of {} is already stored",
            crl.number, crl.issuer_key_id
        )),
        other => other,
    })?;
    Ok(())
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
    /// The revocation state of the certificate `serial`, or `None` if this CA never
    /// recorded it. One primary-key lookup; what an OCSP responder runs per answer.
    pub async fn certificate_status(
        &self,
        serial: &str,
    ) -> Result<Option<RevocationStatus>, StoreError> {
        validate_serial(serial)?;
        let row = sqlx::query(
            "SELECT issuer_key_id, not_after, revoked_at, revocation_reason \
             FROM certificates WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let reason: Option<i64> = row.try_get("revocation_reason")?;
        Ok(Some(RevocationStatus {
            issuer_key_id: row.try_get("issuer_key_id")?,
            not_after: from_unix("not_after", row.try_get("not_after")?)?,
            revoked_at: revoked_at.map(|s| from_unix("revoked_at", s)).transpose()?,
            reason: reason
                .map(|r| reason_from("revocation_reason", r))
                .transpose()?,
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
                Ok(RevocationEvent {
                    seq: row.try_get("revocation_seq")?,
                    serial: row.try_get("serial")?,
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
        let mut inner = sqlx::postgres::PgListener::connect(url.as_str())
            .await
            .map_err(StoreError::Unavailable)?;
        inner.listen(CHANGE_CHANNEL).await?;
        Ok(Some(ChangeListener { inner }))
    }

    /// One page of the certificates a CRL of `issuer_key_id` lists at `now`: revoked and
    /// not yet expired (`not_after > now`; RFC 5280 section 5 lets an expired certificate
    /// leave the CRL). Ordered by serial; pass the last serial of a page as `after` for the
    /// next, and stop at a page shorter than `limit` (clamped to
    /// `1..=`[`MAX_REVOCATION_PAGE`]).
    pub async fn revoked_for_crl(
        &self,
        issuer_key_id: &str,
        now: OffsetDateTime,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        validate_key_id(issuer_key_id)?;
        if let Some(after) = after {
            validate_serial(after)?;
        }
        let limit = i64::from(limit.clamp(1, MAX_REVOCATION_PAGE));
        // "" sorts before every serial, so one statement serves the first page too.
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE issuer_key_id = $1 AND revoked_at IS NOT NULL AND not_after > $2 \
             AND serial > $3 ORDER BY serial LIMIT $4",
        )
        .bind(issuer_key_id)
        .bind(now.unix_timestamp())
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(RevokedCertificate {
                    serial: row.try_get("serial")?,
                    revoked_at: from_unix("revoked_at", row.try_get("revoked_at")?)?,
                    reason: reason_from("revocation_reason", row.try_get("revocation_reason")?)?,
                })
            })
            .collect()
    }

    /// The next CRL Number for `issuer_key_id`: 1 for the first, then one more each call,
    /// across restarts and across every process sharing the database (one atomic upsert
    /// on a counter row). Numbers handed out and never used leave gaps, which RFC 5280
    /// section 5.2.3 allows; it asks only that they increase.
    pub async fn next_crl_number(&self, issuer_key_id: &str) -> Result<u64, StoreError> {
        validate_key_id(issuer_key_id)?;
        let mut conn = self.pool.acquire().await?;
        let n = bump_counter(&mut conn, &crl_counter(issuer_key_id)).await?;
        u64_from("counters.value", n)
    }

    /// Records a signed CRL. Its number must come from [`Store::next_crl_number`]; storing
    /// one number twice gives [`StoreError::Conflict`]. On PostgreSQL, responders listening
    /// with [`Store::change_listener`] are told when it commits.
    pub async fn store_crl(&self, crl: &NewCrl) -> Result<(), StoreError> {
        validate_key_id(&crl.issuer_key_id)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        insert_crl_row(&mut tx, crl, now).await?;
        notify_change(&mut tx, self.backend, &crl_counter(&crl.issuer_key_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The CRL of `issuer_key_id` with the largest number, if one was ever stored.
    ///
    /// The DER is read in slices of [`CRL_READ_CHUNK`] bytes into one buffer of the exact
    /// size: a CRL of a million entries is about 45 MB, and reading it as one value would
    /// hold it several times over (the driver's receive buffer, which the pooled connection
    /// then keeps, its row, and the copy handed back).
    pub async fn latest_crl(&self, issuer_key_id: &str) -> Result<Option<CrlRecord>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let head = match self.backend {
            Backend::Postgres => {
                "SELECT issuer_key_id, number, this_update, next_update, created_at, \
                 octet_length(der)::BIGINT AS der_len \
                 FROM crls WHERE issuer_key_id = $1 ORDER BY number DESC LIMIT 1"
            }
            Backend::Sqlite => {
                "SELECT issuer_key_id, number, this_update, next_update, created_at, \
                 length(der) AS der_len \
                 FROM crls WHERE issuer_key_id = $1 ORDER BY number DESC LIMIT 1"
            }
        };
        // One connection, one transaction: the slices all come from the same row version.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(head)
            .bind(issuer_key_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let number: i64 = row.try_get("number")?;
        let der_len = usize::try_from(row.try_get::<i64, _>("der_len")?)
            .map_err(|_| StoreError::Corrupt("crls.der has a negative length".into()))?;
        let slice = match self.backend {
            Backend::Postgres => {
                "SELECT substring(der FROM $3::INT FOR $4::INT) AS part FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2"
            }
            Backend::Sqlite => {
                "SELECT substr(der, $3, $4) AS part FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2"
            }
        };
        let mut der = Vec::with_capacity(der_len);
        while der.len() < der_len {
            let (start, want) = (der.len() + 1, (der_len - der.len()).min(CRL_READ_CHUNK));
            let part: Vec<u8> = sqlx::query(slice)
                .bind(issuer_key_id)
                .bind(number)
                .bind(i64::try_from(start).unwrap_or(i64::MAX))
                .bind(i64::try_from(want).unwrap_or(i64::MAX))
                .fetch_one(&mut *tx)
                .await?
                .try_get("part")?;
            if part.is_empty() {
                return Err(StoreError::Corrupt(format!(
                    "crls.der of CRL {number} is shorter than its length"
                )));
            }
            der.extend_from_slice(&part);
        }
        tx.commit().await?;
        Ok(Some(CrlRecord {
            issuer_key_id: row.try_get("issuer_key_id")?,
            number: u64_from("number", number)?,
            this_update: from_unix("this_update", row.try_get("this_update")?)?,
            next_update: from_unix("next_update", row.try_get("next_update")?)?,
            der,
            created_at: from_unix("created_at", row.try_get("created_at")?)?,
        }))
    }

    /// Number and validity of the latest CRL of `issuer_key_id`, without its DER (which
    /// may be tens of megabytes): what deciding whether to publish needs.
    pub async fn latest_crl_info(
        &self,
        issuer_key_id: &str,
    ) -> Result<Option<CrlInfo>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let row = sqlx::query(
            "SELECT number, this_update, next_update \
             FROM crls WHERE issuer_key_id = $1 ORDER BY number DESC LIMIT 1",
        )
        .bind(issuer_key_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CrlInfo {
                number: u64_from("number", row.try_get("number")?)?,
                this_update: from_unix("this_update", row.try_get("this_update")?)?,
                next_update: from_unix("next_update", row.try_get("next_update")?)?,
            })
        })
        .transpose()
    }

    /// The number of the latest CRL of `issuer_key_id`: a cheap check of whether
    /// [`Store::latest_crl`] has anything new.
    pub async fn latest_crl_number(&self, issuer_key_id: &str) -> Result<Option<u64>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let row = sqlx::query("SELECT MAX(number) AS number FROM crls WHERE issuer_key_id = $1")
            .bind(issuer_key_id)
            .fetch_one(&self.pool)
            .await?;
        let n: Option<i64> = row.try_get("number")?;
        n.map(|n| u64_from("number", n)).transpose()
    }

    /// Asks the CA processes holding the key `issuer_key_id` for a delegated OCSP signing
    /// certificate for `spki` (DER); returns the request id to poll with
    /// [`Store::ocsp_signer_request`].
    pub async fn request_ocsp_signer(
        &self,
        issuer_key_id: &str,
        spki: &[u8],
    ) -> Result<i64, StoreError> {
        validate_key_id(issuer_key_id)?;
        if spki.is_empty() || spki.len() > 4096 {
            return Err(StoreError::InvalidInput(
                "a public key is 1 to 4096 bytes of DER".into(),
            ));
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let row = sqlx::query(
            "INSERT INTO ocsp_signer_requests (issuer_key_id, spki, requested_at) \
             VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(issuer_key_id)
        .bind(spki)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("id")?)
    }

    /// Where the request `id` stands.
    pub async fn ocsp_signer_request(&self, id: i64) -> Result<OcspSignerRequestState, StoreError> {
        let row = sqlx::query("SELECT cert_der FROM ocsp_signer_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            None => OcspSignerRequestState::Missing,
            Some(row) => match row.try_get::<Option<Vec<u8>>, _>("cert_der")? {
                None => OcspSignerRequestState::Pending,
                Some(der) => OcspSignerRequestState::Fulfilled(der),
            },
        })
    }

    /// Requests to the CA `issuer_key_id` that no CA process has answered yet, made at or
    /// after `since` (older ones are left alone: their responder has given up and asked
    /// again), oldest first.
    pub async fn pending_ocsp_signer_requests(
        &self,
        issuer_key_id: &str,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<OcspSignerRequest>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let rows = sqlx::query(
            "SELECT id, spki, requested_at FROM ocsp_signer_requests \
             WHERE issuer_key_id = $1 AND cert_der IS NULL AND requested_at >= $2 \
             ORDER BY id LIMIT $3",
        )
        .bind(issuer_key_id)
        .bind(since.unix_timestamp())
        .bind(i64::from(limit.clamp(1, 100)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OcspSignerRequest {
                    id: row.try_get("id")?,
                    spki: row.try_get("spki")?,
                    requested_at: from_unix("requested_at", row.try_get("requested_at")?)?,
                })
            })
            .collect()
    }

    /// Answers the request `id` with `cert`, recording the certificate and `audit` in the
    /// same transaction, so a signer certificate is never handed out unrecorded. Returns
    /// `false`, writing nothing, if the request was already answered (by another CA
    /// process) or is gone.
    pub async fn fulfil_ocsp_signer_request(
        &self,
        id: i64,
        cert: &NewCertificate,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE ocsp_signer_requests SET cert_der = $1, fulfilled_at = $2 \
             WHERE id = $3 AND cert_der IS NULL",
        )
        .bind(&cert.der)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        crate::insert_certificate_row(&mut tx, cert, now).await?;
        insert_audit(&mut tx, audit, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Deletes signer requests made before `before`, answered or not (an answered one has
    /// been picked up long since; its certificate stays in the certificates table).
    pub async fn purge_ocsp_signer_requests(
        &self,
        before: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM ocsp_signer_requests WHERE requested_at < $1")
                .bind(before.unix_timestamp())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
