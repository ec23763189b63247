//! Running on a replicated PostgreSQL: which role the server the store talks to plays (a
//! read-write primary or a read-only hot standby, [`Store::role`]), and leadership among
//! the processes sharing one database ([`Leadership`]: a PostgreSQL session advisory lock,
//! held by one process at a time and released by the server the moment that process's
//! connection ends, however it ends).
//!
//! SQLite has neither: its one file is read-write and its processes share one host, so
//! [`Store::role`] is always [`DatabaseRole::Primary`] and every [`Leadership`] is held.

use std::time::Duration;

use sqlx::{Connection, Row};

use crate::connection::Redacted;
use crate::{Backend, POSTGRES_CONNECT_TIMEOUT, Store, StoreError};

/// How long one check of a [`Leadership`] may take before it counts as lost.
const LEADERSHIP_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The role of the database server a [`Store`] is connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DatabaseRole {
    /// It accepts writes: a PostgreSQL primary (or a promoted standby), or SQLite.
    Primary,
    /// A PostgreSQL hot standby (`pg_is_in_recovery()`): reads only, no `LISTEN`.
    Standby {
        /// Whether its WAL receiver is streaming from a primary now. A standby that is
        /// not sees no new commits: its view ages while the primary (if any) moves on.
        streaming: bool,
    },
}

impl Store {
    /// Whether the server is a primary or a hot standby (asked of the server each call,
    /// so a promotion shows at once).
    pub async fn role(&self) -> Result<DatabaseRole, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(DatabaseRole::Primary);
        }
        // One statement: the receiver's row exists only on a standby.
        let row = sqlx::query(
            "SELECT pg_is_in_recovery() AS standby, \
             EXISTS (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming') AS streaming",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(if row.try_get::<bool, _>("standby")? {
            DatabaseRole::Standby {
                streaming: row.try_get("streaming")?,
            }
        } else {
            DatabaseRole::Primary
        })
    }

    /// A handle on the leadership called `name` among every process sharing this
    /// database (for instance `crl:<issuer key id>`: which `signet serve` replica signs
    /// that CA's CRLs). Nothing is taken until [`Leadership::check`].
    pub fn leadership(&self, name: &str) -> Leadership {
        Leadership {
            name: format!("signet:{name}"),
            url: self.listen_url.clone(),
            conn: None,
            held: false,
        }
    }
}

/// Leadership among the processes sharing a database, for work exactly one of them must do
/// at a time. On PostgreSQL it is a session advisory lock (`pg_try_advisory_lock` on a hash
/// of the name) taken on a connection of its own, outside the pool: the server releases it
/// when that connection ends, so a leader that dies (even by `kill -9`), or whose host
/// vanishes (once the server notices the dead connection), or whose server fails over,
/// hands it on to the next process that asks. On SQLite it is always held.
///
/// A leader must [`Leadership::check`] again before each piece of work: between two checks
/// it may have lost the lock without knowing. What it does under the lock must therefore
/// stay safe if done twice (a CRL is: each takes its own number from the database's
/// counter, and one number is stored once).
#[derive(Debug)]
pub struct Leadership {
    name: String,
    /// The PostgreSQL URL the lock's own connection is opened with; `None` on SQLite.
    url: Option<Redacted>,
    conn: Option<sqlx::postgres::PgConnection>,
    held: bool,
}

impl Leadership {
    /// Whether this process leads now: takes the lock if it is free, or, if this process
    /// holds it, checks that the connection holding it is still alive. An error (the
    /// server cannot be reached) means not leading; the next call starts over with a new
    /// connection. Each call is bounded by a few seconds.
    pub async fn check(&mut self) -> Result<bool, StoreError> {
        let Some(url) = self.url.clone() else {
            // SQLite: always held. Recorded too, so that a caller comparing `is_held` before
            // and after a check sees no change (the CRL publisher logged "now signs the
            // CA's CRLs" every second).
            self.held = true;
            return Ok(true);
        };
        match tokio::time::timeout(LEADERSHIP_CHECK_TIMEOUT, self.try_check(&url)).await {
            Ok(Ok(held)) => {
                self.held = held;
                Ok(held)
            }
            Ok(Err(e)) => {
                self.lose();
                Err(e)
            }
            Err(_) => {
                self.lose();
                Err(StoreError::timed_out(LEADERSHIP_CHECK_TIMEOUT))
            }
        }
    }

    /// Whether the last [`Leadership::check`] found this process leading.
    pub fn is_held(&self) -> bool {
        self.held
    }

    async fn try_check(&mut self, url: &Redacted) -> Result<bool, StoreError> {
        if self.conn.is_none() {
            let conn = tokio::time::timeout(
                POSTGRES_CONNECT_TIMEOUT,
                sqlx::postgres::PgConnection::connect(&url.url()),
            )
            .await
            .map_err(|_| StoreError::timed_out(POSTGRES_CONNECT_TIMEOUT))??;
            self.conn = Some(conn);
            self.held = false;
        }
        let Some(conn) = self.conn.as_mut() else {
            return Ok(false);
        };
        if self.held {
            // The lock lives as long as this session: a round trip proves the session.
            sqlx::query("SELECT 1").execute(&mut *conn).await?;
            return Ok(true);
        }
        // hashtextextended: a stable 64-bit hash of the name (PostgreSQL 11 and later), the
        // one key every process computes alike.
        let row = sqlx::query("SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS taken")
            .bind(&self.name)
            .fetch_one(&mut *conn)
            .await?;
        Ok(row.try_get("taken")?)
    }

    /// Drops the connection (releasing the lock, if the server still has the session).
    fn lose(&mut self) {
        self.held = false;
        self.conn = None;
    }

    /// Gives the leadership up now, so another process can take it without waiting for
    /// this one to exit.
    pub async fn release(&mut self) {
        let held = std::mem::replace(&mut self.held, false);
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(LEADERSHIP_CHECK_TIMEOUT, async {
                // Unlocked before the session ends, so the next process to ask gets it at
                // once rather than once the server has noticed the closed connection.
                if held {
                    let _ = sqlx::query("SELECT pg_advisory_unlock(hashtextextended($1, 0))")
                        .bind(&self.name)
                        .execute(&mut conn)
                        .await;
                }
                let _ = conn.close().await;
            })
            .await;
        }
    }
}
