//! The store's one error type, [`StoreError`], and how driver errors map onto it
//! (which database codes mean "unavailable, retry" rather than "this statement is wrong").

use std::time::Duration;

use sqlx::migrate::MigrateError;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database URL is not one the store supports (only `sqlite:` and
    /// `postgres://`/`postgresql://`). The URL itself is not repeated, since
    /// it may hold a password.
    #[error("unsupported database URL: {0}")]
    InvalidUrl(String),

    /// The database could not be reached: connecting failed, the pool timed
    /// out or was closed, or the connection broke (I/O, TLS, protocol).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),

    /// Creating the SQLite database file failed.
    #[error("cannot create database file: {0}")]
    Io(#[source] std::io::Error),

    /// A row with the same key already exists (for example a duplicate
    /// certificate serial). Nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),

    /// An argument is out of range or malformed: an over-long or empty token
    /// id or provisioner, a token expired too long ago, a bad page cursor or
    /// filter value. The message says which; it never holds secrets. No
    /// query was run.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Applying the embedded schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] MigrateError),

    /// A stored row could not be decoded into its Rust type (bad JSON, a
    /// timestamp out of range, an unexpected column type…).
    #[error("corrupt row: {0}")]
    Corrupt(String),

    /// Any other error reported by the database or the driver.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),

    /// The audit row could not be written (the database refused the
    /// `audit_log` insert: a trigger, a constraint, a permission), so the
    /// operation it records was not done either: a certificate or revocation
    /// and its audit row are one transaction. A database that cannot be
    /// reached at all while writing the audit row is
    /// [`StoreError::Unavailable`] instead.
    #[error("audit record not written: {0}")]
    Audit(#[source] sqlx::Error),
}

impl StoreError {
    /// The error for an operation the caller gave up on after `after` without an answer
    /// from the database (a hung server, a lock held for ever, no free connection):
    /// [`StoreError::Unavailable`], with an I/O "timed out" cause.
    pub fn timed_out(after: Duration) -> StoreError {
        StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the database within {after:?}"),
        )))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(ref db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            sqlx::Error::Database(ref db) if db.code().is_some_and(|c| unavailable_code(&c)) => {
                StoreError::Unavailable(err)
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err),
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::TypeNotFound { .. } => StoreError::Corrupt(err.to_string()),
            sqlx::Error::Migrate(m) => StoreError::Migration(*m),
            other => StoreError::Database(other),
        }
    }
}

/// Database error codes that mean "the database cannot serve us right now" rather than "this
/// statement is wrong": the caller should get 503 and may retry, not a 500.
///
/// - PostgreSQL SQLSTATEs (five characters): class 08 (connection exception), 57P01-57P03
///   (administrator or crash shutdown, cannot connect now: a restart or failover), class 53
///   (insufficient resources: disk full, out of memory, too many connections), 25006
///   (read-only transaction: a hot standby, or a primary that a failover demoted).
/// - SQLite result codes (numeric, extended codes carry the primary code in their low byte):
///   BUSY (5), LOCKED (6), READONLY (8: e.g. a read-only data directory), IOERR (10), FULL
///   (13: disk full), CANTOPEN (14).
fn unavailable_code(code: &str) -> bool {
    if code.len() == 5 {
        // A PostgreSQL SQLSTATE (SQLite's extended codes have at most four digits).
        return code.starts_with("08")
            || code.starts_with("57P0")
            || code.starts_with("53")
            || code == "25006";
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}
#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn outages_are_unavailable_and_statement_errors_are_not() {
        for code in [
            "57P01", "57P02", "57P03", "08006", "08001", "53100", "53300", "25006", "5", "517",
            "8", "1032", "10", "3338", "13", "14",
        ] {
            assert!(unavailable_code(code), "{code}");
        }
        // unique violation, syntax error, check/trigger raise, SQLite ERROR/CONSTRAINT
        for code in [
            "23505", "42601", "P0001", "23514", "1", "19", "2067", "1555",
        ] {
            assert!(!unavailable_code(code), "{code}");
        }
    }
}
