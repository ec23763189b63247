//! Partitioned and delta CRLs (RFC 5280 sections 5.2.5 and 5.2.4; migration 0009).
//!
//! A CA's revoked certificates are split into shards by the `crl_shard` column written at
//! issuance (NULL: the certificate names the CA's full CRL). Each shard's CRL is one range
//! of `certificates_crl_shard_idx`; the full CRL lists every revoked certificate (when the
//! CA does not shard) or only those of no shard (when it does). Every CRL, full or shard,
//! base or delta, takes its number from the CA's one counter ([`Store::next_crl_number`]),
//! so numbers only grow across all of them.
//!
//! Shard and delta CRLs are stored in `crls` beside the full ones, told apart by `shard`
//! (-1 for the full CRL) and `delta_base` (0 for a base CRL). Storing one removes the
//! superseded CRLs of the same partition and kind in the same transaction, so the table
//! holds about one row per partition however often they are re-signed; the full CRL's
//! history is pruned the same way ([`crate::crl::prune_superseded`]).

use signet_pkix::Serial;
use sqlx::Row;
use time::OffsetDateTime;

use crate::crl::{
    CRL_READ_CHUNK, NewCrl, RevokedCertificate, begin_snapshot, crl_counter, prune_superseded,
    u64_from,
};
use crate::revocation::{MAX_REVOCATION_PAGE, notify_change, reason_from_db, validate_key_id};
use crate::serial::{db_serial, serial_from_db};
use crate::{Backend, Store, StoreError, from_unix};

/// Which revoked certificates of a CA a CRL lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CrlEntries {
    /// All of them: the full CRL of a CA that does not shard.
    All,
    /// Those of no shard (issued before sharding, or without it): the full CRL of a CA
    /// that shards.
    Unsharded,
    /// Those of this shard.
    Shard(u32),
}

/// A CRL with its partition: its shard (`None`: the CA's full CRL), whether it is a delta
/// and of which base, and the revocation sequence read before its entries were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopedCrl {
    /// The CRL itself.
    pub crl: NewCrl,
    /// Its shard, or `None` for the CA's full CRL.
    pub shard: Option<u32>,
    /// For a delta CRL, the number of its base CRL.
    pub delta_base: Option<u64>,
    /// [`Store::revocation_cursor`] read before the entries were: every revocation up to
    /// it is listed (a later delta lists what came after).
    pub revocation_cursor: i64,
}

/// A stored CRL's partition and dates, without its DER.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopedCrlInfo {
    /// Its shard, or `None` for the CA's full CRL.
    pub shard: Option<u32>,
    /// For a delta CRL, the number of its base CRL.
    pub delta_base: Option<u64>,
    /// Its CRL Number.
    pub number: u64,
    /// thisUpdate, whole seconds.
    pub this_update: OffsetDateTime,
    /// nextUpdate, whole seconds.
    pub next_update: OffsetDateTime,
    /// See [`ScopedCrl::revocation_cursor`].
    pub revocation_cursor: i64,
}

fn shard_column(shard: Option<u32>) -> i64 {
    shard.map_or(-1, i64::from)
}

fn shard_from_db(n: i64) -> Result<Option<u32>, StoreError> {
    if n == -1 {
        return Ok(None);
    }
    u32::try_from(n)
        .map(Some)
        .map_err(|_| StoreError::Corrupt(format!("crls.shard {n} is out of range")))
}

fn info_from_row(row: &sqlx::any::AnyRow) -> Result<ScopedCrlInfo, StoreError> {
    let base = u64_from("delta_base", row.try_get("delta_base")?)?;
    Ok(ScopedCrlInfo {
        shard: shard_from_db(row.try_get("shard")?)?,
        delta_base: (base > 0).then_some(base),
        number: u64_from("number", row.try_get("number")?)?,
        this_update: from_unix("this_update", row.try_get("this_update")?)?,
        next_update: from_unix("next_update", row.try_get("next_update")?)?,
        revocation_cursor: row.try_get("revocation_cursor")?,
    })
}

impl Store {
    /// One page of the certificates of `issuer_key_id` that `entries` selects, revoked and
    /// not expired at `now`, ordered by serial after `after` (see
    /// [`Store::revoked_for_crl`] for paging). With `since`, only those whose revocation
    /// came after that point of the revocation sequence (a delta CRL's entries).
    pub async fn revoked_in(
        &self,
        issuer_key_id: &str,
        entries: CrlEntries,
        now: OffsetDateTime,
        since: Option<i64>,
        after: Option<&Serial>,
        limit: u32,
    ) -> Result<Vec<RevokedCertificate>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let after = after.map(db_serial);
        let limit = i64::from(limit.clamp(1, MAX_REVOCATION_PAGE));
        let part = match entries {
            CrlEntries::All => "",
            CrlEntries::Unsharded => " AND crl_shard IS NULL",
            CrlEntries::Shard(_) => " AND crl_shard = $6",
        };
        let delta = if since.is_some() {
            " AND revocation_seq > $5"
        } else {
            " AND $5 = $5"
        };
        let sql = format!(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE issuer_key_id = $1 AND revoked_at IS NOT NULL AND not_after > $2 \
             AND serial > $3{part}{delta} ORDER BY serial LIMIT $4"
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(issuer_key_id)
            .bind(now.unix_timestamp())
            .bind(after.unwrap_or_default())
            .bind(limit)
            .bind(since.unwrap_or(0));
        if let CrlEntries::Shard(n) = entries {
            query = query.bind(i64::from(n));
        }
        let rows = query.fetch_all(&self.pool).await?;
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

    /// Records a signed CRL with its partition. For a shard's CRL or a delta, the stored
    /// CRLs of the same shard and kind with smaller numbers are removed in the same
    /// transaction (the newest is the only one served). Storing one number twice gives
    /// [`StoreError::Conflict`]; on PostgreSQL, listening responders are told on commit.
    pub async fn store_scoped_crl(&self, scoped: &ScopedCrl) -> Result<(), StoreError> {
        let crl = &scoped.crl;
        validate_key_id(&crl.issuer_key_id)?;
        let number = i64::try_from(crl.number)
            .map_err(|_| StoreError::InvalidInput("CRL number out of range".into()))?;
        let base = match scoped.delta_base {
            Some(0) => {
                return Err(StoreError::InvalidInput(
                    "a delta CRL's base number is at least 1".into(),
                ));
            }
            Some(b) => i64::try_from(b)
                .map_err(|_| StoreError::InvalidInput("CRL number out of range".into()))?,
            None => 0,
        };
        let shard = shard_column(scoped.shard);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO crls (issuer_key_id, number, this_update, next_update, der, created_at, \
             shard, delta_base, revocation_cursor) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&crl.issuer_key_id)
        .bind(number)
        .bind(crl.this_update.unix_timestamp())
        .bind(crl.next_update.unix_timestamp())
        .bind(&crl.der)
        .bind(now)
        .bind(shard)
        .bind(base)
        .bind(scoped.revocation_cursor)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "CRL number {} of {} is already stored",
                crl.number, crl.issuer_key_id
            )),
            other => other,
        })?;
        prune_superseded(&mut tx, &crl.issuer_key_id, shard, base > 0, crl.number).await?;
        notify_change(&mut tx, self.backend, &crl_counter(&crl.issuer_key_id)).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest stored CRL of each partition of `issuer_key_id`: every shard's base and
    /// delta, and the full CRL's base and delta, without their DER. Unordered.
    pub async fn scoped_crls(&self, issuer_key_id: &str) -> Result<Vec<ScopedCrlInfo>, StoreError> {
        let mut newest = self.partition_crls(issuer_key_id).await?;
        let full = sqlx::query(
            "SELECT shard, delta_base, number, this_update, next_update, revocation_cursor \
             FROM crls WHERE issuer_key_id = $1 AND shard = -1 AND delta_base = 0 \
             ORDER BY number DESC LIMIT 1",
        )
        .bind(issuer_key_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = full {
            newest.push(info_from_row(&row)?);
        }
        Ok(newest)
    }

    /// [`Store::scoped_crls`] without the full CRL's base: the newest shard and delta CRLs
    /// only (two ranges of `crls_partition_idx`; about one row per partition).
    pub async fn partition_crls(
        &self,
        issuer_key_id: &str,
    ) -> Result<Vec<ScopedCrlInfo>, StoreError> {
        validate_key_id(issuer_key_id)?;
        // Shards and deltas keep one row each (older ones are removed when a newer one is
        // stored); the full CRL keeps its history, so only its newest is read.
        let rows = sqlx::query(
            // Two ranges of crls_partition_idx, so that the full CRL's history (one row
            // per revocation without shards) is never read.
            "SELECT shard, delta_base, number, this_update, next_update, revocation_cursor \
             FROM crls WHERE issuer_key_id = $1 AND shard >= 0 \
             UNION ALL \
             SELECT shard, delta_base, number, this_update, next_update, revocation_cursor \
             FROM crls WHERE issuer_key_id = $1 AND shard = -1 AND delta_base > 0",
        )
        .bind(issuer_key_id)
        .fetch_all(&self.pool)
        .await?;
        let mut newest: Vec<ScopedCrlInfo> = Vec::with_capacity(rows.len() + 1);
        for row in &rows {
            let info = info_from_row(row)?;
            let same = |o: &ScopedCrlInfo| {
                o.shard == info.shard && o.delta_base.is_some() == info.delta_base.is_some()
            };
            match newest.iter_mut().find(|o| same(o)) {
                Some(o) if o.number < info.number => *o = info,
                Some(_) => {}
                None => newest.push(info),
            }
        }
        Ok(newest)
    }

    /// The DER of the stored CRL `number` of `issuer_key_id` (any partition), read in
    /// slices like [`Store::latest_crl`]; `None` if it is not stored (any more).
    pub async fn crl_der(
        &self,
        issuer_key_id: &str,
        number: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        validate_key_id(issuer_key_id)?;
        let number = i64::try_from(number)
            .map_err(|_| StoreError::InvalidInput("CRL number out of range".into()))?;
        let (len_sql, slice_sql) = match self.backend {
            Backend::Postgres => (
                "SELECT octet_length(der)::BIGINT AS der_len FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2",
                "SELECT substring(der FROM $3::INT FOR $4::INT) AS part FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2",
            ),
            Backend::Sqlite => (
                "SELECT length(der) AS der_len FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2",
                "SELECT substr(der, $3, $4) AS part FROM crls \
                 WHERE issuer_key_id = $1 AND number = $2",
            ),
        };
        let mut tx = begin_snapshot(self).await?;
        let Some(row) = sqlx::query(len_sql)
            .bind(issuer_key_id)
            .bind(number)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let der_len = usize::try_from(row.try_get::<i64, _>("der_len")?)
            .map_err(|_| StoreError::Corrupt("crls.der has a negative length".into()))?;
        let mut der = Vec::with_capacity(der_len);
        while der.len() < der_len {
            let (start, want) = (der.len() + 1, (der_len - der.len()).min(CRL_READ_CHUNK));
            let part: Vec<u8> = sqlx::query(slice_sql)
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
        Ok(Some(der))
    }

    /// The shard the certificate `serial` names (`Some(None)`: the full CRL), or `None` if
    /// no such certificate is stored. One primary-key lookup: what a revocation reads to
    /// re-sign only its shard.
    pub async fn certificate_crl_shard(
        &self,
        serial: &Serial,
    ) -> Result<Option<(String, Option<u32>)>, StoreError> {
        let row =
            sqlx::query("SELECT issuer_key_id, crl_shard FROM certificates WHERE serial = $1")
                .bind(db_serial(serial))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            let shard: Option<i64> = row.try_get("crl_shard")?;
            let shard = shard
                .map(|n| {
                    u32::try_from(n).map_err(|_| {
                        StoreError::Corrupt(format!("certificates.crl_shard {n} is out of range"))
                    })
                })
                .transpose()?;
            Ok((row.try_get("issuer_key_id")?, shard))
        })
        .transpose()
    }

    /// Whether any certificate of `issuer_key_id` that names the full CRL (no shard) is
    /// unexpired at `now`, other than those filed under profile `except` (the OCSP
    /// signer's, which names no CRL): while one is, the full CRL goes on being published.
    /// A probe of `certificates_unsharded_idx`.
    pub async fn has_unexpired_unsharded(
        &self,
        issuer_key_id: &str,
        now: OffsetDateTime,
        except: &str,
    ) -> Result<bool, StoreError> {
        validate_key_id(issuer_key_id)?;
        Ok(sqlx::query(
            "SELECT 1 FROM certificates WHERE issuer_key_id = $1 AND crl_shard IS NULL \
             AND not_after > $2 AND profile <> $3 LIMIT 1",
        )
        .bind(issuer_key_id)
        .bind(now.unix_timestamp())
        .bind(except)
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }

    /// The number of shards of `issuer_key_id` to publish: the largest `[crl] shards` ever
    /// given here for this CA (`shards` included), so that lowering the setting never
    /// leaves certificates naming a shard no longer published. Kept in the `counters` row
    /// `crl-shards:<issuer_key_id>`, which only grows; no table is read.
    pub async fn crl_shard_span(
        &self,
        issuer_key_id: &str,
        shards: u32,
    ) -> Result<u32, StoreError> {
        validate_key_id(issuer_key_id)?;
        let row = sqlx::query(
            "INSERT INTO counters (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = CASE \
             WHEN counters.value > excluded.value THEN counters.value ELSE excluded.value END \
             RETURNING value",
        )
        .bind(format!("crl-shards:{issuer_key_id}"))
        .bind(i64::from(shards))
        .fetch_one(&self.pool)
        .await?;
        let n: i64 = row.try_get("value")?;
        u32::try_from(n)
            .map_err(|_| StoreError::Corrupt(format!("the CRL shard count {n} is out of range")))
    }
}
