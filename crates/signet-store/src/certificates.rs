//! Issued certificates: the record written at issuance, the stored row read back, and a
//! certificate's status at a moment. (Listing them page by page is `listing.rs`; revoking
//! them is `revocation.rs`.)

use std::fmt;
use std::str::FromStr;

use signet_pkix::{RevocationReason, Serial};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::revocation::reason_from_db;
use crate::serial::{db_serial, serial_from_db};
use crate::{AuditEntry, Store, StoreError, from_unix};

/// A certificate to record, as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// Its serial number (stored as minimal lowercase hex).
    pub serial: Serial,
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
    /// The CRL partition (shard) its CRL distribution point names, or `None` when it names
    /// the CA's full CRL (or none): which CRL lists it once revoked (migration 0009).
    pub crl_shard: Option<u32>,
}

/// A stored certificate with its bookkeeping columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateRecord {
    /// Its serial number.
    pub serial: Serial,
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
    /// Why it was revoked, set together with `revoked_at`. `None` for a revoked
    /// certificate whose stored code is not an RFC 5280 CRLReason (written by hand or by
    /// another program): revoked, reason unknown (see `revocation.rs`).
    pub revocation_reason: Option<RevocationReason>,
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
/// them to itself); see
/// [`CertificateFilter::requested_only`](crate::CertificateFilter::requested_only).
pub const SERVER_REQUESTER: &str = "signet-serve";

impl Store {
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
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.writer
            .insert_certificate(Box::new(cert.clone()), audit.clone(), now)
            .await
    }

    /// The certificate with this serial, if there is one.
    pub async fn get_certificate(
        &self,
        serial: &Serial,
    ) -> Result<Option<CertificateRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT serial, issuer, issuer_key_id, subject, sans, profile, \
             not_before, not_after, requester, der, created_at, \
             revoked_at, revocation_reason \
             FROM certificates WHERE serial = $1",
        )
        .bind(db_serial(serial))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(certificate_from_row).transpose()
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

/// Inserts one certificate row (not its audit row); a duplicate serial is
/// [`StoreError::Conflict`].
pub(crate) async fn insert_certificate_row(
    conn: &mut sqlx::AnyConnection,
    cert: &NewCertificate,
    now: i64,
) -> Result<(), StoreError> {
    let sans =
        serde_json::to_string(&cert.sans).map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?;
    sqlx::query(
        "INSERT INTO certificates \
         (serial, issuer, issuer_key_id, subject, sans, profile, \
          not_before, not_after, requester, der, created_at, crl_shard) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(db_serial(&cert.serial))
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
    .bind(cert.crl_shard.map(i64::from))
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

pub(crate) fn certificate_from_row(row: &AnyRow) -> Result<CertificateRecord, StoreError> {
    let sans: String = row.try_get("sans")?;
    let sans: Vec<String> =
        serde_json::from_str(&sans).map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?;
    let serial = serial_from_db("certificates.serial", &row.try_get::<String, _>("serial")?)?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let revocation_reason = reason_from_db(&serial, row.try_get("revocation_reason")?);
    Ok(CertificateRecord {
        serial,
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
