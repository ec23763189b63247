//! Signet persistence: the only crate in the workspace that speaks SQL.
//!
//! One code path serves both backends: every query goes through
//! [`sqlx::AnyPool`] with runtime (not compile-time checked) queries, so
//! building never needs a database. The SQL is written to be valid on both
//! SQLite and PostgreSQL:
//!
//! * placeholders are `$1, $2, …` (SQLite's driver maps `$N` by number);
//! * timestamps are `BIGINT` unix seconds (sub-second precision is dropped);
//! * DER is `BLOB` (SQLite) / `BYTEA` (PostgreSQL), bound as `Vec<u8>`.
//!
//! Every value is bound, never formatted into SQL, and serials are validated
//! before any query (see [`validate_serial`]).
//!
//! The schema lives in `migrations/sqlite` and `migrations/postgres` at the
//! workspace root and is embedded at compile time; [`Store::migrate`] applies it.

#![forbid(unsafe_code)]

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{AnyPool, Row};
use time::OffsetDateTime;

mod binding;
mod group;
mod revocation;

pub use binding::{CaBinding, DatabaseContents, NewCaBinding};
pub use revocation::{
    CHANGE_CHANNEL, ChangeListener, CrlInfo, CrlRecord, MAX_REVOCATION_PAGE, NewCrl,
    OcspSignerRequest, OcspSignerRequestState, RevocationEvent, RevocationStatus,
    RevokedCertificate,
};

/// Migrations for SQLite, embedded at compile time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");
/// Migrations for PostgreSQL, embedded at compile time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// Longest accepted serial, in hex digits: RFC 5280 allows 20 octets.
pub const MAX_SERIAL_HEX_LEN: usize = 40;

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

/// Page size of a [`CertificateFilter::default`].
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Largest page [`Store::list_certificates`] returns; larger limits are
/// clamped to it.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Longest accepted `profile` or `name` filter value, in bytes.
const MAX_FILTER_LEN: usize = 1024;

/// [`Store::consume_token`] purges old rows at most this often per [`Store`]
/// (and its clones).
const TOKEN_PURGE_INTERVAL_SECS: i64 = 60;

/// How long to wait for a pooled connection before reporting
/// [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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

    /// A serial number string is not canonical lowercase hex (see
    /// [`validate_serial`]). No query was run.
    #[error("invalid serial number: {0}")]
    InvalidSerial(String),

    /// An argument is out of range or malformed: an over-long or empty token
    /// id or provisioner, a token expired too long ago, a bad page cursor or
    /// filter value. The message says which; it never holds secrets. No
    /// query was run.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A revocation reason is not an RFC 5280 CRLReason code (0–10 except 7).
    /// No query was run.
    #[error("invalid revocation reason code: {0}")]
    InvalidRevocationReason(u8),

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
///   (insufficient resources: disk full, out of memory, too many connections).
/// - SQLite result codes (numeric, extended codes carry the primary code in their low byte):
///   BUSY (5), LOCKED (6), READONLY (8: e.g. a read-only data directory), IOERR (10), FULL
///   (13: disk full), CANTOPEN (14).
fn unavailable_code(code: &str) -> bool {
    if code.len() == 5 {
        // A PostgreSQL SQLSTATE (SQLite's extended codes have at most four digits).
        return code.starts_with("08") || code.starts_with("57P0") || code.starts_with("53");
    }
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod unavailable_code_tests {
    use super::unavailable_code;

    #[test]
    fn outages_are_unavailable_and_statement_errors_are_not() {
        for code in [
            "57P01", "57P02", "57P03", "08006", "08001", "53100", "53300", "5", "517", "8", "1032",
            "10", "3338", "13", "14",
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

/// Which database the store is talking to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (a local file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// A short lowercase name: `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres") | Some("postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::InvalidUrl(
                "expected a sqlite: or postgres:// URL".to_owned(),
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate to record, as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Canonical serial (see [`validate_serial`]); [`canonical_serial`] makes one from bytes.
    pub serial: String,
    /// Issuer distinguished name, as a string.
    pub issuer: String,
    /// Key identifier of the issuing key, hex.
    pub issuer_key_id: String,
    /// Subject distinguished name, as a string.
    pub subject: String,
    /// Subject alternative names, each prefixed with its kind:
    /// `dns:a.example`, `ip:10.0.0.1`, `uri:spiffe://…`, `email:…`.
    pub sans: Vec<String>,
    /// Name of the issuance profile used.
    pub profile: String,
    /// Start of validity (stored to the second).
    pub not_before: OffsetDateTime,
    /// End of validity (stored to the second).
    pub not_after: OffsetDateTime,
    /// Authenticated identity that asked for the certificate; for a renewal, the identity
    /// its line was first issued to (the audit row names the certificate that asked).
    pub requester: String,
    /// The certificate, DER encoded.
    pub der: Vec<u8>,
}

/// A stored certificate with its bookkeeping columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Canonical serial (lowercase hex, minimal).
    pub serial: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Key identifier of the issuing key, hex.
    pub issuer_key_id: String,
    /// Subject distinguished name.
    pub subject: String,
    /// Subject alternative names (`dns:…`, `ip:…`, `uri:…`, `email:…`).
    pub sans: Vec<String>,
    /// Issuance profile name.
    pub profile: String,
    /// Start of validity, whole seconds.
    pub not_before: OffsetDateTime,
    /// End of validity, whole seconds.
    pub not_after: OffsetDateTime,
    /// Who asked for it.
    pub requester: String,
    /// The certificate, DER encoded.
    pub der: Vec<u8>,
    /// When the store recorded it, whole seconds.
    pub created_at: OffsetDateTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<OffsetDateTime>,
    /// RFC 5280 CRLReason code, set together with `revoked_at`.
    pub revocation_reason: Option<u8>,
}

impl CertificateRecord {
    /// The certificate's status at `now`: [`CertStatus::Revoked`] if it has
    /// been revoked (whatever the revocation time), otherwise
    /// [`CertStatus::Expired`] once `not_after <= now`, otherwise
    /// [`CertStatus::Good`]. Matches the `status` filter of
    /// [`Store::list_certificates`].
    pub fn status(&self, now: OffsetDateTime) -> CertStatus {
        if self.revoked_at.is_some() {
            CertStatus::Revoked
        } else if self.not_after <= now {
            CertStatus::Expired
        } else {
            CertStatus::Good
        }
    }
}

/// The status of a certificate at some moment; see
/// [`CertificateRecord::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertStatus {
    /// Not revoked and not yet expired (`not_after > now`).
    Good,
    /// Revoked (`revoked_at` is set), expired or not.
    Revoked,
    /// Not revoked, and `not_after <= now`.
    Expired,
}

impl CertStatus {
    /// A short lowercase name: `"good"`, `"revoked"` or `"expired"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CertStatus::Good => "good",
            CertStatus::Revoked => "revoked",
            CertStatus::Expired => "expired",
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CertStatus {
    type Err = StoreError;

    /// Parses the names [`CertStatus::as_str`] gives (exactly, lowercase).
    fn from_str(s: &str) -> Result<CertStatus, StoreError> {
        match s {
            "good" => Ok(CertStatus::Good),
            "revoked" => Ok(CertStatus::Revoked),
            "expired" => Ok(CertStatus::Expired),
            _ => Err(StoreError::InvalidInput(
                "status must be good, revoked or expired".to_owned(),
            )),
        }
    }
}

/// The requester recorded for the server's own TLS certificates (`signet serve` issues
/// them to itself); see [`CertificateFilter::requested_only`].
pub const SERVER_REQUESTER: &str = "signet-serve";

/// Which certificates [`Store::list_certificates`] returns. Every filter
/// that is set must match (they are ANDed); unset filters match everything.
///
/// Build one with struct update syntax from the default:
/// `CertificateFilter { profile: Some("server".into()), ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFilter {
    /// Only certificates with this status now (see [`CertificateRecord::status`]).
    pub status: Option<CertStatus>,
    /// Only certificates issued under this profile (exact, case-sensitive).
    pub profile: Option<String>,
    /// Only certificates with this subject alternative name, in tagged form
    /// (`"dns:api.internal"`, `"ip:10.0.0.1"`…): an exact, case-sensitive
    /// match against one whole element of [`CertificateRecord::sans`].
    pub name: Option<String>,
    /// Only good certificates (not revoked, not yet expired) whose
    /// `not_after` is at most this far from now.
    pub expiring_within: Option<Duration>,
    /// Only certificates someone asked for: profiles `server`, `client` and `peer`, not
    /// requested by [`SERVER_REQUESTER`]. This leaves out the server's own TLS
    /// certificates, the OCSP responders' signer certificates (profile `ocsp-signer`) and
    /// CA certificates recorded under the root (profile `ca`).
    pub requested_only: bool,
    /// Page size; clamped to `1..=`[`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Where to continue: the [`CertificatePage::next_cursor`] of the
    /// previous page, or `None` for the first page.
    pub cursor: Option<String>,
}

impl Default for CertificateFilter {
    /// No filters, first page, [`DEFAULT_PAGE_SIZE`] rows.
    fn default() -> Self {
        CertificateFilter {
            status: None,
            profile: None,
            name: None,
            expiring_within: None,
            requested_only: false,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

/// One page of [`Store::list_certificates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePage {
    /// The certificates, newest first (by `created_at`, then serial,
    /// descending).
    pub items: Vec<CertificateRecord>,
    /// Opaque cursor for the next page, present only if more rows match.
    /// Pass it back unchanged in [`CertificateFilter::cursor`] with the same
    /// filters.
    pub next_cursor: Option<String>,
}

/// Which audit rows [`Store::list_audit_page`] returns: those matching every filter
/// given, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only rows about this certificate (canonical serial).
    pub serial: Option<String>,
    /// Only rows by this actor (exact), e.g. `admin` or `token:default:svc`.
    pub actor: Option<String>,
    /// Only this action (exact), e.g. `issue`, `renew`, `revoke`.
    pub action: Option<String>,
    /// Only this outcome (exact): `ok` or `refused`.
    pub outcome: Option<String>,
    /// Only rows older than this id: the previous page's [`AuditPage::next_before`].
    pub before: Option<i64>,
    /// Page size; clamped to `1..=`[`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            serial: None,
            actor: None,
            action: None,
            outcome: None,
            before: None,
            limit: 100,
        }
    }
}

/// One page of [`Store::list_audit_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The rows, newest first (by id, descending).
    pub items: Vec<AuditRecord>,
    /// Present only if more rows match: pass it as [`AuditFilter::before`] with the same
    /// filters for the next page.
    pub next_before: Option<i64>,
}

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

/// Checks that `serial` is in canonical form: lowercase hex digits, an even
/// number of them (whole bytes), 2 to [`MAX_SERIAL_HEX_LEN`] long, and no
/// leading `00` byte (so every serial number has exactly one spelling).
pub fn validate_serial(serial: &str) -> Result<(), StoreError> {
    let bytes = serial.as_bytes();
    if bytes.is_empty() {
        return Err(StoreError::InvalidSerial("empty".to_owned()));
    }
    if bytes.len() > MAX_SERIAL_HEX_LEN {
        return Err(StoreError::InvalidSerial(format!(
            "{} hex digits, at most {MAX_SERIAL_HEX_LEN} allowed",
            bytes.len()
        )));
    }
    if !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::InvalidSerial(
            "only lowercase hex digits 0-9a-f are allowed".to_owned(),
        ));
    }
    if bytes.len() & 1 == 1 {
        return Err(StoreError::InvalidSerial(
            "odd number of hex digits; write whole bytes".to_owned(),
        ));
    }
    if bytes.starts_with(b"00") {
        return Err(StoreError::InvalidSerial(
            "leading 00 byte; serials are stored without it".to_owned(),
        ));
    }
    Ok(())
}

/// Makes the canonical serial string from big-endian unsigned bytes (for
/// example x509-cert's `SerialNumber::as_bytes()`, which may start with a
/// `0x00` sign byte): leading zero bytes are dropped, the rest is lowercase hex.
/// Fails if nothing is left (serial zero) or it is longer than 20 bytes.
pub fn canonical_serial(bytes: &[u8]) -> Result<String, StoreError> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[start..];
    let mut out = String::with_capacity(significant.len() * 2);
    for b in significant {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    if out.is_empty() {
        return Err(StoreError::InvalidSerial(
            "serial is zero; serials must be positive".to_owned(),
        ));
    }
    validate_serial(&out)?;
    Ok(out)
}

/// RFC 5280 CRLReason: 0–10, with 7 unused.
fn validate_reason(reason: u8) -> Result<(), StoreError> {
    if reason > 10 || reason == 7 {
        return Err(StoreError::InvalidRevocationReason(reason));
    }
    Ok(())
}

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

/// Checks a `profile` or `name` filter value: 1 to [`MAX_FILTER_LEN`] bytes,
/// no NUL. (Values are always bound, never put into SQL: this only keeps
/// nonsense from reaching the database.)
fn validate_filter_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > MAX_FILTER_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} filter must be 1 to {MAX_FILTER_LEN} bytes long"
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} filter must not contain NUL"
        )));
    }
    Ok(())
}

/// `secs` as a whole number of seconds for SQL arithmetic, saturating.
fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A position in the listing order: the last row of a page.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    created_at: i64,
    serial: String,
}

impl Cursor {
    /// `"<created_at unix seconds>:<serial>"`, e.g. `"1700000000:7fa3c901"`.
    fn encode(&self) -> String {
        format!("{}:{}", self.created_at, self.serial)
    }

    /// Parses exactly what [`Cursor::encode`] produces: a non-negative
    /// decimal without sign or leading zeros, `:`, a canonical serial.
    fn decode(s: &str) -> Result<Cursor, StoreError> {
        let bad = || StoreError::InvalidInput("malformed page cursor".to_owned());
        let (secs, serial) = s.split_once(':').ok_or_else(bad)?;
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let created_at: i64 = secs.parse().map_err(|_| bad())?;
        if created_at.to_string() != secs {
            return Err(bad()); // leading zeros: not a cursor we made
        }
        validate_serial(serial).map_err(|_| bad())?;
        Ok(Cursor {
            created_at,
            serial: serial.to_owned(),
        })
    }
}

/// A value bound to a dynamically assembled listing query.
enum Param {
    Int(i64),
    Text(String),
}

/// Assembles the `WHERE` clause of a listing from fixed SQL fragments, with
/// numbered placeholders for every value. No value ever becomes SQL text:
/// the SQL depends only on which filters are present.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Adds `param` and returns its placeholder, `$N`.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// Runs `select` with these conditions, then `ORDER BY order LIMIT limit`, binding every
    /// value; returns the rows.
    async fn fetch_all(
        mut self,
        pool: &AnyPool,
        select: &str,
        order: &str,
        limit: i64,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let fetch = self.bind(Param::Int(limit));
        let mut sql = String::from(select);
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE (");
            sql.push_str(&self.clauses.join(") AND ("));
            sql.push(')');
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(order);
        sql.push_str(" LIMIT ");
        sql.push_str(&fetch);
        // Safe to run as built: `sql` is made only of the callers' constant fragments and
        // `$N` placeholders; every value is bound below.
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for param in self.params {
            query = match param {
                Param::Int(v) => query.bind(v),
                Param::Text(v) => query.bind(v),
            };
        }
        Ok(query.fetch_all(pool).await?)
    }
}

fn from_unix(column: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

/// A handle on the database. Cheap to clone (it shares one pool).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Unix second before which [`Store::consume_token`] does not purge
    /// again; shared by clones.
    next_token_purge: Arc<AtomicI64>,
    /// On PostgreSQL, the URL [`Store::change_listener`] opens its own
    /// connection with.
    listen_url: Option<Redacted>,
    /// Group commit for certificates, used tokens and audit rows (see
    /// `group.rs`); shared by clones.
    writer: Arc<group::GroupWriter>,
}

/// A connection URL, which may hold a password: never printed.
#[derive(Clone)]
struct Redacted(Arc<str>);

impl Redacted {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Store {
    /// Connects to `url`, opening at least one connection so that a bad URL
    /// or unreachable server is reported here.
    ///
    /// * `sqlite://path/to/file.db` (or `sqlite:path`): the file is created
    ///   (mode 0600) if missing. Every connection runs with
    ///   `journal_mode=WAL`, `synchronous=FULL` (a commit is on disk before it
    ///   is reported), `busy_timeout=5000` and `foreign_keys=ON`.
    /// * `postgres://user:pass@host/db`, including unix sockets:
    ///   `postgres://user@/db?host=/run/postgresql`.
    ///
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let pool = match backend {
            Backend::Sqlite => {
                create_sqlite_file(url)?;
                // The pool retries a connection that fails until its acquire timeout and
                // then reports only "pool timed out". One direct connection first reports
                // the real cause at once: a read-only directory (SQLite needs to create
                // the -wal and -shm files), a full disk, a file that is not a database.
                {
                    use sqlx::Connection;
                    let mut conn = sqlx::AnyConnection::connect(url)
                        .await
                        .map_err(|e| sqlite_open_error(url, e))?;
                    sqlite_pragmas(&mut conn)
                        .await
                        .map_err(|e| sqlite_open_error(url, e))?;
                    let _ = conn.close().await;
                }
                options
                    .max_connections(8)
                    .after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn)))
                    // A connection must come back to the pool outside any transaction.
                    // One that does not (a COMMIT or ROLLBACK that failed, as on a full
                    // disk) would run the next caller's transaction as a savepoint inside
                    // the stale one, holding the write lock: close it instead.
                    .after_release(|conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Connection;
                            let clean = !conn.is_in_transaction();
                            if !clean {
                                tracing::warn!(
                                    "closing a database connection left inside a transaction"
                                );
                            }
                            Ok(clean)
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => {
                // As for SQLite: one direct connection first, bounded, so that a server
                // that cannot be reached is reported at once with where and why, rather
                // than as "pool timed out" after the acquire timeout.
                probe_postgres(&normalize_postgres_url(url)).await?;
                options
                    .max_connections(16)
                    .connect(&normalize_postgres_url(url))
                    .await
            }
        };
        let pool = pool.map_err(connect_error)?;
        let listen_url = (backend == Backend::Postgres)
            .then(|| Redacted(Arc::from(normalize_postgres_url(url).as_ref())));
        Ok(Store {
            writer: group::GroupWriter::new(pool.clone(), backend),
            pool,
            backend,
            next_token_purge: Arc::new(AtomicI64::new(0)),
            listen_url,
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of an SQLite database to `path` (`VACUUM INTO`): a
    /// snapshot as of one read transaction, taken while the database stays in use, compact
    /// and self-contained (no WAL beside it). `path` must not exist or must be an empty
    /// file (created beforehand with the permissions it should have). On PostgreSQL this is
    /// [`StoreError::InvalidInput`]: use `pg_dump` or the server's own backups there.
    pub async fn snapshot_sqlite(&self, path: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::InvalidInput(
                "snapshots are for SQLite; back PostgreSQL up with pg_dump or WAL archiving".into(),
            ));
        }
        if path.is_empty() || path.contains('\0') {
            return Err(StoreError::InvalidInput("snapshot path".into()));
        }
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

    /// Applies the embedded migrations for this backend. Idempotent: already
    /// applied migrations are skipped (and checked against their checksums).
    /// On PostgreSQL concurrent callers serialise on an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`]. First every write already queued for
    /// group commit is committed (or failed back to its caller); then it
    /// waits for checked-out connections.
    pub async fn close(&self) {
        self.writer.flush().await;
        self.pool.close().await;
    }

    /// Records an issued certificate and its audit row in one transaction,
    /// committed (and, on SQLite, synced) before `Ok` is returned.
    ///
    /// Concurrent calls share a transaction (group commit, see `group.rs`):
    /// each returns only after the shared `COMMIT` has returned. An idle
    /// store commits a lone call at once, without waiting for company.
    ///
    /// A serial that is already stored gives [`StoreError::Conflict`] and
    /// writes nothing, not even the audit row; other calls batched with it
    /// are not affected.
    pub async fn insert_certificate(
        &self,
        cert: &NewCertificate,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        validate_serial(&cert.serial)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.writer
            .insert_certificate(Box::new(cert.clone()), audit.clone(), now)
            .await
    }

    /// Appends one audit row, time-stamped now, committed before `Ok` is
    /// returned (group-committed with concurrent writes).
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.writer.append_audit(audit.clone(), now).await
    }

    /// The certificate with this serial, if there is one.
    pub async fn get_certificate(
        &self,
        serial: &str,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        validate_serial(serial)?;
        let row = sqlx::query(
            "SELECT serial, issuer, issuer_key_id, subject, sans, profile, \
             not_before, not_after, requester, der, created_at, \
             revoked_at, revocation_reason \
             FROM certificates WHERE serial = $1",
        )
        .bind(serial)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(certificate_from_row).transpose()
    }

    /// Marks a certificate revoked at `at` (stored to the second) for RFC 5280
    /// CRLReason `reason`, and writes `audit`, in one transaction.
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
        serial: &str,
        at: OffsetDateTime,
        reason: u8,
        audit: &AuditEntry,
    ) -> Result<RevokeOutcome, StoreError> {
        validate_serial(serial)?;
        validate_reason(reason)?;
        let now = OffsetDateTime::now_utc().unix_timestamp();

        let mut tx = self.pool.begin().await?;
        // The revocation's place in the sequence responders poll (migration
        // 0003). The counter row stays locked until this transaction ends, so
        // revocations become visible in sequence order; an attempt that
        // revokes nothing rolls its number back.
        let seq = revocation::bump_counter(&mut tx, revocation::REVOCATION_COUNTER).await?;
        // Write first: the row lock (PostgreSQL) or the write lock (SQLite)
        // makes the "not yet revoked" check and the update one step.
        let updated = sqlx::query(
            "UPDATE certificates \
             SET revoked_at = $1, revocation_reason = $2, revocation_seq = $3 \
             WHERE serial = $4 AND revoked_at IS NULL",
        )
        .bind(at.unix_timestamp())
        .bind(i32::from(reason))
        .bind(seq)
        .bind(serial)
        .execute(&mut *tx)
        .await?
        .rows_affected();

        if updated == 1 {
            insert_audit(&mut tx, audit, now).await?;
            // Delivered to LISTENing responders when (and only if) this commits.
            revocation::notify_change(&mut tx, self.backend, &format!("revoke:{serial}")).await?;
            tx.commit().await?;
            return Ok(RevokeOutcome::Revoked);
        }

        let exists = sqlx::query("SELECT 1 FROM certificates WHERE serial = $1")
            .bind(serial)
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

    /// A page of audit rows matching `filter`, newest first. Keyset pagination on the id,
    /// which only grows, so pages never skip or repeat a row while new ones are appended.
    /// A serial filter uses the `audit_log_serial_idx` index.
    pub async fn list_audit_page(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let mut cond = Conditions::default();
        if let Some(serial) = &filter.serial {
            validate_serial(serial)?;
            let p = cond.bind(Param::Text(serial.clone()));
            cond.push(format!("serial = {p}"));
        }
        for (column, value) in [
            ("actor", &filter.actor),
            ("action", &filter.action),
            ("outcome", &filter.outcome),
        ] {
            if let Some(v) = value {
                validate_filter_text(column, v)?;
                let p = cond.bind(Param::Text(v.clone()));
                cond.push(format!("{column} = {p}"));
            }
        }
        if let Some(before) = filter.before {
            let p = cond.bind(Param::Int(before));
            cond.push(format!("id < {p}"));
        }
        // One extra row tells whether another page exists. The column names in the
        // conditions come from the fixed list above.
        let rows = cond
            .fetch_all(
                &self.pool,
                "SELECT id, at, actor, action, serial, outcome, detail FROM audit_log",
                "id DESC",
                i64::from(limit) + 1,
            )
            .await?;
        let mut items = rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_before = if items.len() > page_len {
            items.truncate(page_len);
            items.last().map(|last| last.id)
        } else {
            None
        };
        Ok(AuditPage { items, next_before })
    }

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
        validate_serial(&cert.serial)?;
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

    /// One page of stored certificates matching `filter`, newest first
    /// (`created_at` descending, then serial descending), with keyset
    /// pagination: pass [`CertificatePage::next_cursor`] back in
    /// [`CertificateFilter::cursor`] for the next page. Walking the pages
    /// with unchanged filters returns every matching row exactly once, even
    /// while certificates are being added (a row added meanwhile appears at
    /// most once, on a later page or on a fresh first page).
    ///
    /// Status filters are evaluated at the current time, to the second.
    /// A malformed cursor, or an empty, over-long or NUL-containing `profile`
    /// or `name`, gives [`StoreError::InvalidInput`] and no query is run.
    pub async fn list_certificates(
        &self,
        filter: &CertificateFilter,
    ) -> Result<CertificatePage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let cursor = filter.cursor.as_deref().map(Cursor::decode).transpose()?;
        if let Some(profile) = &filter.profile {
            validate_filter_text("profile", profile)?;
        }
        if let Some(name) = &filter.name {
            validate_filter_text("name", name)?;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();

        let mut cond = Conditions::default();
        match filter.status {
            None => {}
            Some(CertStatus::Revoked) => cond.push("c.revoked_at IS NOT NULL".to_owned()),
            Some(CertStatus::Expired) => {
                let p = cond.bind(Param::Int(now));
                cond.push(format!("c.revoked_at IS NULL AND c.not_after <= {p}"));
            }
            Some(CertStatus::Good) => {
                let p = cond.bind(Param::Int(now));
                cond.push(format!("c.revoked_at IS NULL AND c.not_after > {p}"));
            }
        }
        if let Some(within) = filter.expiring_within {
            let from = cond.bind(Param::Int(now));
            let until = cond.bind(Param::Int(now.saturating_add(duration_secs(within))));
            cond.push(format!(
                "c.revoked_at IS NULL AND c.not_after > {from} AND c.not_after <= {until}"
            ));
        }
        if let Some(profile) = &filter.profile {
            let p = cond.bind(Param::Text(profile.clone()));
            cond.push(format!("c.profile = {p}"));
        }
        if filter.requested_only {
            let server = cond.bind(Param::Text(SERVER_REQUESTER.to_owned()));
            cond.push(format!(
                "c.profile IN ('server', 'client', 'peer') AND c.requester <> {server}"
            ));
        }
        if let Some(name) = &filter.name {
            // certificate_names is kept in step with sans by triggers
            // (migration 0002): an exact, indexed match on one element.
            let p = cond.bind(Param::Text(name.clone()));
            cond.push(format!(
                "EXISTS (SELECT 1 FROM certificate_names AS n \
                 WHERE n.name = {p} AND n.serial = c.serial)"
            ));
        }
        if let Some(cursor) = cursor {
            let at = cond.bind(Param::Int(cursor.created_at));
            let serial = cond.bind(Param::Text(cursor.serial));
            cond.push(format!(
                "(c.created_at < {at} OR (c.created_at = {at} AND c.serial < {serial}))"
            ));
        }
        // One extra row tells whether another page exists.
        let rows = cond
            .fetch_all(
                &self.pool,
                "SELECT c.serial, c.issuer, c.issuer_key_id, c.subject, c.sans, c.profile, \
                 c.not_before, c.not_after, c.requester, c.der, c.created_at, \
                 c.revoked_at, c.revocation_reason \
                 FROM certificates AS c",
                "c.created_at DESC, c.serial DESC",
                i64::from(limit) + 1,
            )
            .await?;

        let mut items = rows
            .iter()
            .map(certificate_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > page_len {
            items.truncate(page_len);
            items.last().map(|last| {
                Cursor {
                    created_at: last.created_at.unix_timestamp(),
                    serial: last.serial.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        Ok(CertificatePage { items, next_cursor })
    }

    /// How many certificates are stored.
    pub async fn count_certificates(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM certificates")
            .fetch_one(&self.pool)
            .await?;
        let n: i64 = row.try_get("n")?;
        u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
    }
}

/// Rewrites the libpq form with a user but an empty host,
/// `postgres://user[:pass]@/db?host=/dir`, which the URL parser sqlx uses
/// rejects ("empty host"), into the equivalent `postgres:///db?host=/dir&user=user[&password=pass]`.
/// Other URLs are returned unchanged.
fn normalize_postgres_url(url: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    // The authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some(userinfo) = authority.strip_suffix('@') else {
        return Cow::Borrowed(url);
    };
    if userinfo.is_empty() || userinfo.contains('@') {
        return Cow::Borrowed(url);
    }
    // userinfo is already percent-encoded; only characters that mean
    // something different inside a query need escaping.
    let escape = |s: &str| {
        s.replace('+', "%2B")
            .replace('&', "%26")
            .replace('=', "%3D")
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{before_fragment}");
    out.push(if before_fragment.contains('?') {
        '&'
    } else {
        '?'
    });
    if !user.is_empty() {
        out.push_str("user=");
        out.push_str(&escape(user));
    }
    if let Some(p) = password {
        if !user.is_empty() {
            out.push('&');
        }
        out.push_str("password=");
        out.push_str(&escape(p));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// Creates the SQLite file named by `url` with mode 0600 if it does not
/// exist yet, so that neither the database nor its WAL/SHM files (which
/// SQLite creates with the database file's mode) are world-readable.
fn create_sqlite_file(url: &str) -> Result<(), StoreError> {
    let (_, query) = url.split_once('?').unwrap_or((url, ""));
    let in_memory = url.contains(":memory:") || query.split('&').any(|p| p == "mode=memory");
    let no_create = query.split('&').any(|p| p == "mode=ro" || p == "mode=rw");
    if in_memory || no_create {
        return Ok(());
    }
    // Parse the path exactly as sqlx will (percent-decoding included).
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() {
        return Err(StoreError::InvalidUrl(
            "sqlite URL has no file name".to_owned(),
        ));
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(e)),
    }
}

/// How long the first connection to PostgreSQL may take (TCP, TLS, authentication) before
/// [`Store::connect`] reports the server unreachable.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens and closes one connection to the PostgreSQL server of `url`, within
/// [`POSTGRES_CONNECT_TIMEOUT`]. A failure is [`StoreError::Unavailable`] naming the server
/// (host and port, or the unix socket) and the cause: refused, unknown host, no answer,
/// authentication, a missing database. Never the URL itself, which may hold a password.
async fn probe_postgres(url: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let server = match options.get_socket() {
        Some(dir) => format!(
            "unix socket {}",
            dir.join(format!(".s.PGSQL.{}", options.get_port()))
                .display()
        ),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let attempt = tokio::time::timeout(
        POSTGRES_CONNECT_TIMEOUT,
        sqlx::postgres::PgConnection::connect_with(&options),
    )
    .await;
    let (kind, cause) = match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(_) => (
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer within {} s (a firewall dropping packets, or a wrong address)",
                POSTGRES_CONNECT_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(e)) => postgres_connect_cause(&e, options.get_username()),
    };
    Err(StoreError::Unavailable(sqlx::Error::Io(
        std::io::Error::new(
            kind,
            format!("cannot connect to PostgreSQL at {server}: {cause}"),
        ),
    )))
}

/// Why a connection to PostgreSQL failed, in words an operator acts on.
fn postgres_connect_cause(e: &sqlx::Error, user: &str) -> (std::io::ErrorKind, String) {
    use std::io::ErrorKind;
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => (
                io.kind(),
                "connection refused (is PostgreSQL running, and listening there?)".into(),
            ),
            ErrorKind::NotFound => (
                io.kind(),
                "no such socket (is PostgreSQL running, with its socket there?)".into(),
            ),
            _ if io.to_string().contains("lookup address") => {
                (ErrorKind::NotFound, format!("unknown host ({io})"))
            }
            _ => (io.kind(), io.to_string()),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let what = match code.as_str() {
                // invalid_password, invalid_authorization_specification (also: no such
                // role, no pg_hba.conf entry)
                "28P01" | "28000" => format!("authentication failed for user {user:?}"),
                "3D000" => format!("no such database (connecting as {user:?})"),
                _ => format!("the server refused user {user:?}"),
            };
            (
                ErrorKind::PermissionDenied,
                format!("{what}: {} (SQLSTATE {code})", db.message()),
            )
        }
        sqlx::Error::Tls(tls) => (ErrorKind::Other, format!("TLS: {tls}")),
        other => (ErrorKind::Other, other.to_string()),
    }
}

/// The error for a failed connect: a bad URL, or a database that cannot be used now.
fn connect_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Configuration(_) => StoreError::InvalidUrl(e.to_string()),
        other => StoreError::Unavailable(other),
    }
}

/// The error for a SQLite database that cannot be opened. SQLite says only "unable to open
/// database file"; if the file cannot be opened for writing (a read-only filesystem, say),
/// that is the error reported, with the file's name.
fn sqlite_open_error(url: &str, e: sqlx::Error) -> StoreError {
    let path = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .ok()
        .map(|o| o.get_filename().to_path_buf())
        .filter(|p| p.is_file() && !url.contains("mode=ro"));
    if let Some(path) = path
        && let Err(io) = std::fs::OpenOptions::new().write(true).open(&path)
    {
        return StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
            io.kind(),
            format!(
                "{}: {io}: SQLite must be able to write the database file and create \
                 its -wal and -shm files next to it",
                path.display()
            ),
        )));
    }
    connect_error(e)
}

/// Run on every SQLite connection: WAL, durable commits, a busy timeout, foreign keys.
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // journal_mode returns a row; execute ignores it.
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts one certificate row (not its audit row); a duplicate serial is
/// [`StoreError::Conflict`].
async fn insert_certificate_row(
    conn: &mut sqlx::AnyConnection,
    cert: &NewCertificate,
    now: i64,
) -> Result<(), StoreError> {
    validate_serial(&cert.serial)?;
    let sans =
        serde_json::to_string(&cert.sans).map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?;
    sqlx::query(
        "INSERT INTO certificates \
         (serial, issuer, issuer_key_id, subject, sans, profile, \
          not_before, not_after, requester, der, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&cert.serial)
    .bind(&cert.issuer)
    .bind(&cert.issuer_key_id)
    .bind(&cert.subject)
    .bind(sans)
    .bind(&cert.profile)
    .bind(cert.not_before.unix_timestamp())
    .bind(cert.not_after.unix_timestamp())
    .bind(&cert.requester)
    .bind(&cert.der)
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| match StoreError::from(e) {
        StoreError::Conflict(_) => {
            StoreError::Conflict(format!("serial {} already exists", cert.serial))
        }
        other => other,
    })?;
    Ok(())
}

async fn insert_audit(
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

fn certificate_from_row(row: &AnyRow) -> Result<CertificateRecord, StoreError> {
    let sans: String = row.try_get("sans")?;
    let sans: Vec<String> =
        serde_json::from_str(&sans).map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let reason: Option<i64> = row.try_get("revocation_reason")?;
    let revocation_reason = reason
        .map(|r| {
            u8::try_from(r)
                .map_err(|_| StoreError::Corrupt(format!("revocation_reason {r} out of range")))
        })
        .transpose()?;
    Ok(CertificateRecord {
        serial: row.try_get("serial")?,
        issuer: row.try_get("issuer")?,
        issuer_key_id: row.try_get("issuer_key_id")?,
        subject: row.try_get("subject")?,
        sans,
        profile: row.try_get("profile")?,
        not_before: from_unix("not_before", row.try_get("not_before")?)?,
        not_after: from_unix("not_after", row.try_get("not_after")?)?,
        requester: row.try_get("requester")?,
        der: row.try_get("der")?,
        created_at: from_unix("created_at", row.try_get("created_at")?)?,
        revoked_at: revoked_at.map(|s| from_unix("revoked_at", s)).transpose()?,
        revocation_reason,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_validation() {
        for ok in [
            "01",
            "7f",
            "0a1b",
            "ffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert!(validate_serial(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0",
            "abc",
            "00ff",
            "00",
            "AB",
            "0x01",
            "01'; DROP TABLE certificates; --",
            "g1",
            "ffffffffffffffffffffffffffffffffffffffff01",
            "é1",
        ] {
            assert!(
                matches!(validate_serial(bad), Err(StoreError::InvalidSerial(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn canonical_serial_strips_sign_byte() {
        assert_eq!(
            canonical_serial(&[0x00, 0x80, 0x01]).ok().as_deref(),
            Some("8001")
        );
        assert_eq!(canonical_serial(&[0x0a]).ok().as_deref(), Some("0a"));
        assert!(canonical_serial(&[]).is_err());
        assert!(canonical_serial(&[0, 0]).is_err());
        assert!(canonical_serial(&[1; 21]).is_err());
        assert_eq!(
            canonical_serial(&[0; 5].iter().chain(&[1; 20]).copied().collect::<Vec<_>>())
                .ok()
                .map(|s| s.len()),
            Some(40)
        );
    }

    #[test]
    fn reason_validation() {
        for r in [0, 1, 2, 3, 4, 5, 6, 8, 9, 10] {
            assert!(validate_reason(r).is_ok());
        }
        for r in [7, 11, 255] {
            assert!(matches!(
                validate_reason(r),
                Err(StoreError::InvalidRevocationReason(x)) if x == r
            ));
        }
    }

    #[test]
    fn postgres_url_normalisation() {
        let n = |u: &str| normalize_postgres_url(u).into_owned();
        assert_eq!(
            n("postgres://signet@/postgres?host=/tmp/x"),
            "postgres:///postgres?host=/tmp/x&user=signet"
        );
        assert_eq!(
            n("postgresql://u:p%40ss+w@/db"),
            "postgresql:///db?user=u&password=p%40ss%2Bw"
        );
        assert_eq!(n("postgres://u@/"), "postgres:///?user=u");
        for same in [
            "postgres://u:p@host/db",
            "postgres:///db?host=/tmp",
            "postgres://host:5432/db",
            "postgres://u@host/db?x=@/",
            "garbage",
        ] {
            assert_eq!(n(same), same);
        }
    }

    /// The PRAGMAs are per connection: check them on pooled connections.
    #[tokio::test]
    async fn sqlite_connections_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/p.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect");
        // Hold several connections at once so more than one is checked.
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(store.pool.acquire().await.expect("acquire"));
        }
        for conn in &mut conns {
            for (pragma, want) in [
                ("PRAGMA synchronous", "2"), // FULL
                ("PRAGMA busy_timeout", "5000"),
                ("PRAGMA foreign_keys", "1"),
                ("PRAGMA journal_mode", "wal"),
            ] {
                let row = sqlx::query(pragma)
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                let got = row
                    .try_get::<i64, _>(0)
                    .map(|v| v.to_string())
                    .or_else(|_| row.try_get::<String, _>(0))
                    .expect("decode pragma");
                assert_eq!(got, want, "{pragma}");
            }
        }
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@/d?host=/tmp").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://h/d").is_err());
        assert!(Backend::from_url("").is_err());
    }
}
