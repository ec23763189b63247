//! Certificate revocation lists: CRL numbers (one counter per issuing key), the revoked
//! certificates a CRL lists, and the signed CRLs themselves, stored and read back in
//! slices (a CRL of a million entries is tens of megabytes).

use signet_pkix::{RevocationReason, Serial};
use sqlx::Row;
use time::OffsetDateTime;

use crate::revocation::{
    MAX_REVOCATION_PAGE, bump_counter, notify_change, reason_from_db, validate_key_id,
};
use crate::serial::{db_serial, serial_from_db};
use crate::{Backend, Store, StoreError, from_unix};

/// One entry of a CRL: a revoked certificate that has not expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedCertificate {
    /// Its serial number.
    pub serial: Serial,
    /// When it was revoked.
    pub revoked_at: OffsetDateTime,
    /// Why: `None` when no code is stored or the stored code is not an RFC 5280 CRLReason
    /// (reason unknown; the entry is listed all the same).
    pub reason: Option<RevocationReason>,
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
pub(crate) const CRL_READ_CHUNK: usize = 4 << 20;

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

pub(crate) fn crl_counter(issuer_key_id: &str) -> String {
    format!("crl:{issuer_key_id}")
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

/// Removes the stored CRLs of `issuer_key_id` that one just stored (number `number`, in
/// partition `shard`, -1 for the full CRL, base or `delta`) supersedes: the same partition
/// and kind with smaller numbers. Only the newest of each is ever served or read (a delta
/// names its base by number, and each new base is followed by a new delta), so the table
/// holds about one row per partition however often CRLs are re-signed; before issue 19's
/// pruning every revocation kept another full CRL (41.7 MB at 1,000,000 revoked).
///
/// A reader part-way through a removed CRL's slices is not cut short: [`begin_snapshot`]
/// reads every slice from the snapshot the first one saw.
pub(crate) async fn prune_superseded(
    conn: &mut sqlx::AnyConnection,
    issuer_key_id: &str,
    shard: i64,
    delta: bool,
    number: u64,
) -> Result<u64, StoreError> {
    let number = i64::try_from(number)
        .map_err(|_| StoreError::InvalidInput("CRL number out of range".into()))?;
    let kind = if delta {
        "delta_base > 0"
    } else {
        "delta_base = 0"
    };
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DELETE FROM crls WHERE issuer_key_id = $1 AND shard = $2 AND {kind} AND number < $3"
    )))
    .bind(issuer_key_id)
    .bind(shard)
    .bind(number)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Begins a transaction whose statements all read one snapshot: on PostgreSQL repeatable
/// read (read committed, the default, takes a new snapshot per statement, so a CRL removed
/// by a newer one between two slice reads would vanish half-read); a SQLite read
/// transaction already keeps its first snapshot.
pub(crate) async fn begin_snapshot(
    store: &Store,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, StoreError> {
    let mut tx = store.pool.begin().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

pub(crate) fn u64_from(column: &str, n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("{column} {n} is negative")))
}

impl Store {
    /// One page of the certificates a CRL of `issuer_key_id` lists at `now`: revoked and
    /// not yet expired (`not_after > now`; RFC 5280 section 5 lets an expired certificate
    /// leave the CRL). Ordered by serial; pass the last serial of a page as `after` for the
    /// next, and stop at a page shorter than `limit` (clamped to
    /// `1..=`[`MAX_REVOCATION_PAGE`]).
    pub async fn revoked_for_crl(
        &self,
        issuer_key_id: &str,
        now: OffsetDateTime,
        after: Option<&Serial>,
        limit: u32,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let after = after.map(db_serial);
        let limit = i64::from(limit.clamp(1, MAX_REVOCATION_PAGE));
        // "" sorts before every serial, so one statement serves the first page too.
        let rows = sqlx::query(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE issuer_key_id = $1 AND revoked_at IS NOT NULL AND not_after > $2 \
             AND serial > $3 ORDER BY serial LIMIT $4",
        )
        .bind(issuer_key_id)
        .bind(now.unix_timestamp())
        .bind(after.as_deref().unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let serial =
                    serial_from_db("certificates.serial", &row.try_get::<String, _>("serial")?)?;
                Ok(RevokedCertificate {
                    revoked_at: from_unix("revoked_at", row.try_get("revoked_at")?)?,
                    reason: reason_from_db(&serial, row.try_get("revocation_reason")?),
                    serial,
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
        prune_superseded(&mut tx, &crl.issuer_key_id, -1, false, crl.number).await?;
        notify_change(&mut tx, self.backend, &crl_counter(&crl.issuer_key_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The full (complete, not delta) CRL of `issuer_key_id` with the largest number, if one
    /// was ever stored; shard and delta CRLs are `crl_shards.rs`.
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
                 FROM crls WHERE issuer_key_id = $1 AND shard = -1 AND delta_base = 0 \
                 ORDER BY number DESC LIMIT 1"
            }
            Backend::Sqlite => {
                "SELECT issuer_key_id, number, this_update, next_update, created_at, \
                 length(der) AS der_len \
                 FROM crls WHERE issuer_key_id = $1 AND shard = -1 AND delta_base = 0 \
                 ORDER BY number DESC LIMIT 1"
            }
        };
        // One connection, one snapshot: the slices all come from the same row version, even
        // if a newer CRL removes this one meanwhile.
        let mut tx = begin_snapshot(self).await?;
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

    /// Number and validity of the latest full CRL of `issuer_key_id`, without its DER (which
    /// may be tens of megabytes): what deciding whether to publish needs.
    pub async fn latest_crl_info(
        &self,
        issuer_key_id: &str,
    ) -> Result<Option<CrlInfo>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let row = sqlx::query(
            "SELECT number, this_update, next_update \
             FROM crls WHERE issuer_key_id = $1 AND shard = -1 AND delta_base = 0 \
                 ORDER BY number DESC LIMIT 1",
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

    /// The number of the latest full CRL of `issuer_key_id`: a cheap check of whether
    /// [`Store::latest_crl`] has anything new.
    pub async fn latest_crl_number(&self, issuer_key_id: &str) -> Result<Option<u64>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let row = sqlx::query(
            "SELECT MAX(number) AS number FROM crls \
             WHERE issuer_key_id = $1 AND shard = -1 AND delta_base = 0",
        )
        .bind(issuer_key_id)
        .fetch_one(&self.pool)
        .await?;
        let n: Option<i64> = row.try_get("number")?;
        n.map(|n| u64_from("number", n)).transpose()
    }
}
