//! The bulk path: many certificate records (each with its `issue` audit row, and revoked
//! or not) written in one transaction of multi-row statements. For filling a database at
//! scale (the load tool's `fill`, population tests) and for importing records, never for
//! issuance, which goes through group commit one durable certificate at a time.

use signet_pkix::RevocationReason;
use time::OffsetDateTime;

use crate::certificates::NewCertificate;
use crate::serial::db_serial;
use crate::{Store, StoreError};

/// One record for [`Store::insert_bulk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkCertificate {
    /// The certificate as issuance records it.
    pub cert: NewCertificate,
    /// When and why it was revoked, if it was.
    pub revoked: Option<(OffsetDateTime, RevocationReason)>,
}

/// Rows per INSERT statement: 14 values each stays under SQLite's 32,766 and PostgreSQL's
/// 65,535 bound parameters.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Records `certs` and an `issue` audit row for each (actor `actor`, detail `bulk`) in
    /// one transaction, committed before `Ok` (the number of certificates) is returned. A
    /// revoked one is stored revoked, outside the revocation sequence (like a row from
    /// before migration 0003: listed by every CRL, announced to no responder), so fill
    /// before serving. A serial already stored fails the whole call and writes nothing.
    pub async fn insert_bulk(
        &self,
        certs: &[BulkCertificate],
        actor: &str,
    ) -> Result<u64, StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut tx = self.pool.begin().await?;
        for chunk in certs.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::from(
                "INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, \
                 profile, not_before, not_after, requester, der, created_at, crl_shard, \
                 revoked_at, revocation_reason) VALUES ",
            );
            push_placeholders(&mut sql, 14, chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in chunk {
                let c = &b.cert;
                let sans = serde_json::to_string(&c.sans)
                    .map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?;
                query = query
                    .bind(db_serial(&c.serial))
                    .bind(c.issuer.clone())
                    .bind(c.issuer_key_id.clone())
                    .bind(c.subject.clone())
                    .bind(sans)
                    .bind(c.profile.clone())
                    .bind(c.not_before.unix_timestamp())
                    .bind(c.not_after.unix_timestamp())
                    .bind(c.requester.clone())
                    .bind(c.der.clone())
                    .bind(now)
                    .bind(c.crl_shard.map(i64::from))
                    .bind(b.revoked.map(|(at, _)| at.unix_timestamp()))
                    .bind(b.revoked.map(|(_, r)| i32::from(r.code())));
            }
            query
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict("a serial of the batch is already stored".into())
                    }
                    other => other,
                })?;

            let mut sql = String::from(
                "INSERT INTO audit_log (at, actor, action, serial, outcome, detail) VALUES ",
            );
            push_placeholders(&mut sql, 6, chunk.len());
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in chunk {
                query = query
                    .bind(now)
                    .bind(actor.to_string())
                    .bind(crate::AuditAction::Issue.as_str())
                    .bind(db_serial(&b.cert.serial))
                    .bind(crate::AuditOutcome::Ok.as_str())
                    .bind("bulk");
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(certs.len() as u64)
    }
}

/// `($1, …, $cols), ($cols+1, …), …` for `rows` rows.
fn push_placeholders(sql: &mut String, cols: usize, rows: usize) {
    use std::fmt::Write;
    let mut n = 0;
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            let _ = write!(sql, "${n}");
        }
        sql.push(')');
    }
}
