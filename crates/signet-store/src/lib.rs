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
//! Every value is bound, never formatted into SQL. Values are typed at the boundary:
//! certificate serials are signet-pkix's [`Serial`](signet_pkix::Serial) (the CA core's one
//! length rule), revocation reasons its
//! [`RevocationReason`](signet_pkix::RevocationReason), audit actions and outcomes
//! [`AuditAction`] and [`AuditOutcome`].
//!
//! The schema lives in `migrations/sqlite` and `migrations/postgres` at the
//! workspace root and is embedded at compile time; [`Store::migrate`] applies it.
//!
//! The modules follow what each keeps:
//!
//! | module | keeps |
//! |---|---|
//! | `connection` | the pool: URLs, opening (SQLite file mode, PRAGMAs, PostgreSQL probe), timeouts, migrations, ping, SQLite snapshots, close |
//! | `hosts` | several PostgreSQL servers in one URL (libpq's multi-host form, `target_session_attrs`), and following a failover |
//! | `error` | [`StoreError`] and how driver errors map onto it |
//! | `serial` | how a [`Serial`](signet_pkix::Serial) is spelled in the database, and reading it back |
//! | `certificates` | issued certificates: [`NewCertificate`], [`CertificateRecord`], [`CertStatus`] |
//! | `audit` | the audit log: [`AuditEntry`], [`AuditRecord`] |
//! | `tokens` | burnt one-time token ids (`jti`) and their purge |
//! | `rate_limit` | token buckets shared by every process on the database ([`Store::take_rate_token`]) |
//! | `listing` | keyset-paginated listings of certificates and audit rows |
//! | `revocation` | revoking, a certificate's revocation status, the revocation sequence and change notices |
//! | `crl` | CRL numbers, the revoked certificates a CRL lists, stored CRLs |
//! | `ocsp_signer` | requests for delegated OCSP signing certificates |
//! | `binding` | which root CA a database belongs to |
//! | `group` | group commit of certificates, tokens and audit rows |
//! | `acme` | the ACME server's accounts, orders, authorizations, challenges, used nonces, shared nonce key and EAB keys |
//! | `console` | the operator console's sessions (hashed ids) and the overview's counts and hourly activity, from aggregates triggers keep |
//! | `retention` | taking certificates long expired out of the hot tables ([`Store::sweep_retention`]: archived or deleted, in batches) |
//! | `replication` | the server's role (primary or hot standby) and leadership among processes ([`Leadership`], an advisory lock) |

#![forbid(unsafe_code)]

use std::time::Duration;

use time::OffsetDateTime;

mod acme;
mod audit;
mod binding;
mod bulk;
mod certificates;
mod connection;
mod console;
mod crl;
mod crl_shards;
mod error;
mod group;
mod hosts;
mod listing;
mod ocsp_signer;
mod rate_limit;
mod replication;
mod retention;
mod revocation;
mod serial;
mod tokens;

pub use acme::{
    ACME_NONCE_NAMESPACE, AcmeAccount, AcmeAccountCreated, AcmeAuthorization, AcmeChallenge,
    AcmeEabKey, AcmeOrder, AcmePurged, ChallengeOutcome, NewAcmeAuthorization, NewAcmeOrder,
};
pub use audit::{AuditAction, AuditEntry, AuditOutcome, AuditRecord, UnknownAuditValue};
pub use binding::{CaBinding, DatabaseContents, NewCaBinding};
pub use bulk::BulkCertificate;
pub use certificates::{CertStatus, CertificateRecord, NewCertificate, SERVER_REQUESTER};
pub use connection::{Backend, POSTGRES_CONNECT_TIMEOUT, Store};
pub use console::{CertificateCounts, ConsoleSession, HourlyActivity};
pub use crl::{CrlInfo, CrlRecord, NewCrl, RevokedCertificate};
pub use crl_shards::{CrlEntries, ScopedCrl, ScopedCrlInfo};
pub use error::StoreError;
pub use listing::{
    AuditFilter, AuditPage, CertificateFilter, CertificateOrder, CertificatePage,
    DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};
pub use ocsp_signer::{OcspSignerRequest, OcspSignerRequestState};
pub use rate_limit::{MAX_BUCKET_LEN, RateDecision};
pub use replication::{DatabaseRole, Leadership};
pub use retention::{DEFAULT_RETENTION_BATCH, RetentionMode, RetentionSwept};
pub use revocation::{
    CHANGE_CHANNEL, ChangeListener, MAX_REVOCATION_PAGE, RevocationEvent, RevocationStatus,
    RevokeOutcome,
};
pub use tokens::{MAX_EXPIRED_TOKEN_AGE, MAX_JTI_LEN, MAX_PROVISIONER_LEN, USED_TOKEN_RETENTION};

/// `secs` as a whole number of seconds for SQL arithmetic, saturating.
fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn from_unix(column: &str, secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
