//! Rate limits shared by every process on one database: a token bucket per row of
//! `rate_limit_buckets` (migration 0007), taken from in one statement.
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`. Counts are kept in
//! milli-tokens, so that a refill over whole milliseconds is exact in integers: `per_second`
//! tokens a second is `per_second` milli-tokens a millisecond. One request takes one token
//! (1000 milli-tokens) with a single `INSERT … ON CONFLICT DO UPDATE … WHERE … RETURNING`:
//!
//! * a missing row is a full bucket: the insert writes `burst − 1` tokens;
//! * otherwise the row is refilled for the time since its last grant, capped at `burst`,
//!   and one token taken, but only `WHERE` the refilled bucket holds a whole token; when
//!   it does not, no row is returned and the request is refused, and the row is left as it
//!   was (the refill is recomputed from its time next time, so nothing is lost).
//!
//! Time is the database's clock (PostgreSQL `statement_timestamp()`, SQLite `'now'`), so
//! replicas whose clocks disagree still share one budget. The row lock serialises
//! concurrent takers of one bucket, in this or any other process, and a taker whose
//! statement started before the last grant refills nothing (the elapsed time is clamped at
//! zero), so over any interval of `t` seconds at most `burst + per_second × t` requests are
//! granted, whatever the number of processes.
//!
//! A process does not go to the database for every request: it takes a lease of several
//! tokens at once when the limit is large (a twentieth of a second's worth, at most a
//! quarter of the burst; see `lease_size`), spends them locally, and drops what it has not
//! spent when the time they stand for is over. Every token granted was taken from the
//! shared bucket first, so the bound above holds as it is; limits under 40 a second take
//! one token at a time.
//!
//! Rows whose bucket would be full again (`full_at_ms` in the past) mean the same as no
//! row, and are deleted now and then.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::{Backend, Store, StoreError};

/// Longest accepted bucket name ([`Store::take_rate_token`]), in bytes.
pub const MAX_BUCKET_LEN: usize = 256;

/// [`Store::take_rate_token`] deletes full buckets at most this often per [`Store`].
const BUCKET_PURGE_INTERVAL_SECS: i64 = 60;

/// One token, in the unit the table counts in.
const TOKEN: i64 = 1000;

/// The longest refill counted at once (a day), so that `elapsed × rate` cannot overflow.
const MAX_REFILL_MS: i64 = 86_400_000;

/// How many tokens one replica takes from a shared bucket at once (its lease): a
/// twentieth of a second's worth, at most a quarter of the burst, at least one. A
/// provisioner allowed 1,000 a second then costs the database one statement per 50
/// requests instead of one per request; small limits (under 40 a second) keep taking one
/// token at a time, so they are shared exactly.
fn lease_size(per_second: u32, burst: u32) -> u64 {
    u64::from((per_second / 20).min(burst.max(per_second) / 4).max(1))
}

/// How long a lease's unspent tokens may be spent: the time they stand for (`size` at
/// `per_second`), at least 10 ms. Tokens left after it are dropped, never spent late, so a
/// replica cannot add an old lease to a burst the bucket grants again later.
fn lease_lifetime(size: u64, per_second: u32) -> Duration {
    Duration::from_secs_f64(size as f64 / f64::from(per_second.max(1)))
        .max(Duration::from_millis(10))
}

/// This process's leases on shared buckets ([`lease_size`]), by bucket name; shared by a
/// [`Store`]'s clones. A lease's lock is held while it is refilled from the database, so
/// concurrent requests of one process refill it once, not once each.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    by_bucket: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<Lease>>>>,
}

#[derive(Debug)]
pub(crate) struct Lease {
    tokens: u64,
    until: Instant,
}

/// Buckets tracked before the expired leases are forgotten.
const MAX_LEASES: usize = 10_000;

impl Leases {
    fn get(&self, bucket: &str) -> Arc<tokio::sync::Mutex<Lease>> {
        let mut map = self
            .by_bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(lease) = map.get(bucket) {
            return Arc::clone(lease);
        }
        if map.len() >= MAX_LEASES {
            let now = Instant::now();
            map.retain(|_, lease| {
                lease
                    .try_lock()
                    .map_or(true, |l| l.tokens > 0 && now < l.until)
            });
        }
        let lease = Arc::new(tokio::sync::Mutex::new(Lease {
            tokens: 0,
            until: Instant::now(),
        }));
        map.insert(bucket.to_owned(), Arc::clone(&lease));
        lease
    }
}

/// What [`Store::take_rate_token`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum RateDecision {
    /// A token was taken.
    Granted,
    /// The bucket is empty; a token will be there after at most `retry_after`.
    Refused {
        /// An upper bound on the wait until the bucket holds a token again.
        retry_after: Duration,
    },
}

/// The statement, with `now` the database's clock in unix milliseconds and `min`/`max`
/// the backend's two-argument minimum and maximum. `$1` bucket, `$2` burst in
/// milli-tokens, `$3` rate in milli-tokens per millisecond (= tokens per second), `$4` the
/// longest refill, `$5` one token. Written out at compile time for each backend.
macro_rules! take_sql {
    ($now:expr, $min:literal, $max:literal) => {
        concat!(
            "INSERT INTO rate_limit_buckets AS b (bucket, milli_tokens, updated_ms, full_at_ms) ",
            "VALUES ($1, $2 - $5, ",
            $now,
            ", ",
            $now,
            " + ($5 + $3 - 1) / $3) ",
            "ON CONFLICT (bucket) DO UPDATE SET ",
            "milli_tokens = ",
            $min,
            "($2, b.milli_tokens + ",
            $min,
            "(",
            $max,
            "(excluded.updated_ms - b.updated_ms, 0), $4) * $3) - $5, ",
            "updated_ms = ",
            $max,
            "(excluded.updated_ms, b.updated_ms), ",
            "full_at_ms = ",
            $max,
            "(excluded.updated_ms, b.updated_ms) + ($2 - (",
            $min,
            "($2, b.milli_tokens + ",
            $min,
            "(",
            $max,
            "(excluded.updated_ms - b.updated_ms, 0), $4) * $3) - $5) + $3 - 1) / $3 ",
            "WHERE ",
            $min,
            "($2, b.milli_tokens + ",
            $min,
            "(",
            $max,
            "(excluded.updated_ms - b.updated_ms, 0), $4) * $3) >= $5 ",
            "RETURNING milli_tokens"
        )
    };
}

macro_rules! postgres_now {
    () => {
        "(EXTRACT(EPOCH FROM statement_timestamp()) * 1000)::BIGINT"
    };
}
macro_rules! sqlite_now {
    () => {
        "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
    };
}

const POSTGRES_TAKE: &str = take_sql!(postgres_now!(), "LEAST", "GREATEST");
const SQLITE_TAKE: &str = take_sql!(sqlite_now!(), "min", "max");
const POSTGRES_PURGE: &str = concat!(
    "DELETE FROM rate_limit_buckets WHERE full_at_ms < ",
    postgres_now!()
);
const SQLITE_PURGE: &str = concat!(
    "DELETE FROM rate_limit_buckets WHERE full_at_ms < ",
    sqlite_now!()
);

fn take_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => POSTGRES_TAKE,
        Backend::Sqlite => SQLITE_TAKE,
    }
}

fn purge_sql(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => POSTGRES_PURGE,
        Backend::Sqlite => SQLITE_PURGE,
    }
}

impl Store {
    /// Takes one token from the shared bucket `bucket`, which holds up to `burst` tokens
    /// (at least `per_second`, as governor's in-process limiter has it) and refills at
    /// `per_second` tokens a second. Every process on the database shares the bucket (see
    /// the module's documentation for how, and for the bound it keeps).
    ///
    /// The bucket's limits are not stored: each call passes them, so a configuration change
    /// applies from the next call, to the tokens already in the bucket (capped at the new
    /// burst).
    ///
    /// `bucket` must be 1 to [`MAX_BUCKET_LEN`] bytes without NUL, and `per_second` at
    /// least 1, else [`StoreError::InvalidInput`] and no query is run.
    ///
    /// At most once a minute per [`Store`] this also deletes the rows of buckets that are
    /// full again; a failure there is logged and does not affect the result.
    pub async fn take_rate_token(
        &self,
        bucket: &str,
        per_second: u32,
        burst: u32,
    ) -> Result<RateDecision, StoreError> {
        if bucket.is_empty() || bucket.len() > MAX_BUCKET_LEN || bucket.contains('\0') {
            return Err(StoreError::InvalidInput(format!(
                "a rate-limit bucket name must be 1 to {MAX_BUCKET_LEN} bytes without NUL"
            )));
        }
        if per_second == 0 {
            return Err(StoreError::InvalidInput(
                "a rate limit must allow at least 1 request per second".into(),
            ));
        }
        let rate = i64::from(per_second);
        let burst_milli = i64::from(burst.max(per_second)) * TOKEN;
        let refused = RateDecision::Refused {
            // The bucket held less than one token, so one is there after at most
            // 1000 / rate milliseconds.
            retry_after: Duration::from_millis(
                u64::try_from((TOKEN + rate - 1) / rate).unwrap_or(1000),
            ),
        };
        let size = lease_size(per_second, burst);
        let lease = self.leases.get(bucket);
        let mut lease = lease.lock().await;
        if lease.tokens > 0 && Instant::now() < lease.until {
            lease.tokens -= 1;
            return Ok(RateDecision::Granted);
        }
        lease.tokens = 0;
        let mut taken = 0;
        if size > 1
            && self
                .take_from_bucket(bucket, burst_milli, rate, size)
                .await?
        {
            taken = size;
        } else if self.take_from_bucket(bucket, burst_milli, rate, 1).await? {
            taken = 1;
        }
        self.maybe_purge_buckets().await;
        if taken == 0 {
            return Ok(refused);
        }
        lease.tokens = taken - 1;
        lease.until = Instant::now() + lease_lifetime(size, per_second);
        Ok(RateDecision::Granted)
    }

    /// Takes `tokens` whole tokens from the shared bucket in one statement, or none.
    async fn take_from_bucket(
        &self,
        bucket: &str,
        burst_milli: i64,
        rate: i64,
        tokens: u64,
    ) -> Result<bool, StoreError> {
        let take = sqlx::query_as(take_sql(self.backend))
            .bind(bucket)
            .bind(burst_milli)
            .bind(rate)
            .bind(MAX_REFILL_MS)
            .bind(i64::try_from(tokens).unwrap_or(i64::MAX / TOKEN) * TOKEN);
        let granted: Option<(i64,)> = match self.backend {
            // Every request of a provisioner updates its one bucket row, and the row stays
            // locked until the commit: a synchronous commit would make all replicas queue
            // on that row for one WAL flush each (a disk's fdatasync, 0.1 to 0.6 ms here).
            // A bucket needs no durability (a crash loses at most the last instants of
            // spending, which only grants a few tokens more), so its commit does not wait
            // for the flush.
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SET LOCAL synchronous_commit TO OFF")
                    .execute(&mut *tx)
                    .await?;
                let granted = take.fetch_optional(&mut *tx).await?;
                tx.commit().await?;
                granted
            }
            Backend::Sqlite => take.fetch_optional(&self.pool).await?,
        };
        Ok(granted.is_some())
    }

    /// Deletes the rows of buckets that are full again (the same as no row), returning how
    /// many. [`Store::take_rate_token`] calls it by itself at most once a minute.
    pub async fn purge_full_rate_buckets(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query(purge_sql(self.backend))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn maybe_purge_buckets(&self) {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let next = self.next_bucket_purge.load(Ordering::Relaxed);
        if now < next {
            return;
        }
        if self
            .next_bucket_purge
            .compare_exchange(
                next,
                now.saturating_add(BUCKET_PURGE_INTERVAL_SECS),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        match self.purge_full_rate_buckets().await {
            Ok(n) if n > 0 => tracing::debug!(deleted = n, "purged full rate-limit buckets"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "purging full rate-limit buckets failed"),
        }
    }
}
