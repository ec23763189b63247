//! The hand-off through which an OCSP responder without the CA key obtains its delegated
//! signing certificate: the responder files a request with its public key, a CA process
//! answers it, recording the certificate and its audit row in the same transaction.

use sqlx::Row;
use time::OffsetDateTime;

use crate::audit::insert_audit;
use crate::certificates::insert_certificate_row;
use crate::revocation::validate_key_id;
use crate::{AuditEntry, NewCertificate, Store, StoreError, from_unix};

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

impl Store {
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
        insert_certificate_row(&mut tx, cert, now).await?;
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
