//! The ACME server's objects (RFC 8555): accounts, orders, authorizations, challenges, the
//! nonce replay filter, the shared nonce key, and external account binding keys. The
//! meaning of each status is the ACME front-end's (signet-acme); this module keeps the rows
//! and makes each state change one conditional statement or one transaction, so that
//! several processes on one database never both win the same transition.

use signet_pkix::Serial;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::insert_audit;
use crate::serial::{db_serial, serial_from_db};
use crate::{AuditEntry, Store, StoreError, from_unix};

/// An ACME account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeAccount {
    /// Its id (the last segment of its URL).
    pub id: String,
    /// The ACME provisioner it belongs to.
    pub provisioner: String,
    /// RFC 7638 thumbprint of its key, base64url.
    pub thumbprint: String,
    /// Its public key, JWK JSON.
    pub jwk: String,
    /// `valid`, `deactivated` or `revoked`.
    pub status: String,
    /// Contact URLs.
    pub contact: Vec<String>,
    /// The external account key it was bound with, if any.
    pub eab_kid: Option<String>,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

/// What [`Store::acme_create_account`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcmeAccountCreated {
    /// A new account.
    Created(AcmeAccount),
    /// The key already had an account under that provisioner: that one, unchanged.
    Existing(AcmeAccount),
}

/// An order as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeOrder {
    /// Its id.
    pub id: String,
    /// The account that made it.
    pub account_id: String,
    /// `pending`, `ready`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// The identifiers, JSON array of `{"type","value"}` as the front-end wrote it.
    pub identifiers: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Why it is invalid: a problem document, JSON.
    pub error: Option<String>,
    /// The certificate's serial, once valid.
    pub certificate_serial: Option<Serial>,
    /// The ARI CertID of the certificate it replaces.
    pub replaces: Option<String>,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// Its authorizations' ids, in the order they were made.
    pub authorizations: Vec<String>,
}

/// An authorization as stored, with its challenges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeAuthorization {
    /// Its id.
    pub id: String,
    /// The order it belongs to.
    pub order_id: String,
    /// The account that owns it.
    pub account_id: String,
    /// `dns` or `ip`.
    pub identifier_type: String,
    /// As ordered (`*.example.com` for a wildcard).
    pub identifier_value: String,
    /// `pending`, `valid`, `invalid` or `deactivated`.
    pub status: String,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// Its challenges.
    pub challenges: Vec<AcmeChallenge>,
}

/// A challenge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeChallenge {
    /// Its id.
    pub id: String,
    /// The authorization it belongs to.
    pub authz_id: String,
    /// `http-01`, `dns-01` or `tls-alpn-01`.
    pub kind: String,
    /// The token.
    pub token: String,
    /// `pending`, `processing`, `valid` or `invalid`.
    pub status: String,
    /// When it was validated.
    pub validated_at: Option<OffsetDateTime>,
    /// Why it is invalid: a problem document, JSON.
    pub error: Option<String>,
}

/// A new order with its authorizations and their challenges, written in one transaction.
#[derive(Debug, Clone)]
pub struct NewAcmeOrder {
    /// Its id.
    pub id: String,
    /// The account making it.
    pub account_id: String,
    /// The identifiers, JSON.
    pub identifiers: String,
    /// When it (and its authorizations) expire.
    pub expires_at: OffsetDateTime,
    /// The ARI CertID of the certificate it replaces.
    pub replaces: Option<String>,
    /// Its authorizations.
    pub authorizations: Vec<NewAcmeAuthorization>,
}

/// A new authorization of a [`NewAcmeOrder`].
#[derive(Debug, Clone)]
pub struct NewAcmeAuthorization {
    /// Its id.
    pub id: String,
    /// `dns` or `ip`.
    pub identifier_type: String,
    /// As ordered.
    pub identifier_value: String,
    /// Its challenges: (id, kind, token).
    pub challenges: Vec<(String, String, String)>,
}

/// An external account binding key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeEabKey {
    /// The key id clients send.
    pub kid: String,
    /// The provisioner it binds accounts of.
    pub provisioner: String,
    /// The HMAC key, base64url. Secret.
    pub hmac_key: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// The account it was bound to.
    pub account_id: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<OffsetDateTime>,
}

/// Rows removed by [`Store::acme_purge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AcmePurged {
    /// Used nonces past their retention (with the other burnt single-use ids: see
    /// [`Store::purge_used_tokens`]), and rows of the table nonces were kept in before.
    pub nonces: u64,
    /// Orders (with their authorizations and challenges) expired before the cut-off.
    pub orders: u64,
}

/// What an order became when a challenge ended ([`Store::acme_finish_challenge`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeOutcome {
    /// The identifier is proven.
    Valid,
    /// It is not; the authorization and the order are invalid.
    Invalid,
}

fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn opt_time(column: &str, v: Option<i64>) -> Result<Option<OffsetDateTime>, StoreError> {
    v.map(|s| from_unix(column, s)).transpose()
}

fn account_from(row: &AnyRow) -> Result<AcmeAccount, StoreError> {
    let contact: String = row.try_get("contact")?;
    Ok(AcmeAccount {
        id: row.try_get("id")?,
        provisioner: row.try_get("provisioner")?,
        thumbprint: row.try_get("thumbprint")?,
        jwk: row.try_get("jwk")?,
        status: row.try_get("status")?,
        contact: serde_json::from_str(&contact)
            .map_err(|e| StoreError::Corrupt(format!("acme_accounts.contact: {e}")))?,
        eab_kid: row.try_get("eab_kid")?,
        created_at: from_unix("created_at", row.try_get("created_at")?)?,
    })
}

fn challenge_from(row: &AnyRow) -> Result<AcmeChallenge, StoreError> {
    Ok(AcmeChallenge {
        id: row.try_get("id")?,
        authz_id: row.try_get("authz_id")?,
        kind: row.try_get("kind")?,
        token: row.try_get("token")?,
        status: row.try_get("status")?,
        validated_at: opt_time("validated_at", row.try_get("validated_at")?)?,
        error: row.try_get("error")?,
    })
}

fn eab_from(row: &AnyRow) -> Result<AcmeEabKey, StoreError> {
    Ok(AcmeEabKey {
        kid: row.try_get("kid")?,
        provisioner: row.try_get("provisioner")?,
        hmac_key: row.try_get("hmac_key")?,
        created_at: from_unix("created_at", row.try_get("created_at")?)?,
        account_id: row.try_get("account_id")?,
        revoked_at: opt_time("revoked_at", row.try_get("revoked_at")?)?,
    })
}

/// The columns [`account_from`] reads (a macro, so that queries stay string literals).
macro_rules! account_columns {
    () => {
        "id, provisioner, thumbprint, jwk, status, contact, eab_kid, created_at"
    };
}
/// The columns [`challenge_from`] reads.
macro_rules! challenge_columns {
    () => {
        "id, authz_id, kind, token, status, validated_at, error"
    };
}

/// The `used_tokens` namespace of used ACME nonces: a `:` is in no provisioner's name.
pub const ACME_NONCE_NAMESPACE: &str = "acme:nonce";

impl Store {
    /// The server-wide secret `name`: the one stored, or `candidate` if none was (the first
    /// process to ask stores its candidate; every process then reads the same value).
    pub async fn acme_secret(&self, name: &str, candidate: &str) -> Result<String, StoreError> {
        sqlx::query(
            "INSERT INTO acme_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(candidate)
        .bind(now())
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT secret FROM acme_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("secret")?)
    }

    /// Mark `nonce` used; `false` if it already was (a replay), by this or any process.
    /// The row is kept until [`USED_TOKEN_RETENTION`](crate::USED_TOKEN_RETENTION) after
    /// `expires_at`; from `expires_at` on the nonce is refused by its age.
    ///
    /// A used nonce is a burnt single-use id like a token's `jti`: it is a row of
    /// `used_tokens` under [`ACME_NONCE_NAMESPACE`] (which no provisioner name can spell),
    /// group-committed with concurrent writes (see `group.rs`). Each caller still hears
    /// only after the commit (durable, seen by every process), but the used nonces of
    /// concurrent requests share one transaction, one WAL flush: an ACME order makes
    /// 7 or more requests, each with a nonce (`acme_used_nonces`, migration 0006, is no
    /// longer written).
    pub async fn acme_use_nonce(
        &self,
        nonce: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if nonce.is_empty() || nonce.len() > 128 {
            return Err(StoreError::InvalidInput("a nonce is 1 to 128 bytes".into()));
        }
        self.consume_token(ACME_NONCE_NAMESPACE, nonce, expires_at)
            .await
    }

    /// The account `id`.
    pub async fn acme_account(&self, id: &str) -> Result<Option<AcmeAccount>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM acme_accounts WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from).transpose()
    }

    /// The account of the key with `thumbprint` under `provisioner`.
    pub async fn acme_account_by_key(
        &self,
        provisioner: &str,
        thumbprint: &str,
    ) -> Result<Option<AcmeAccount>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM acme_accounts WHERE provisioner = $1 AND thumbprint = $2"
        ))
        .bind(provisioner)
        .bind(thumbprint)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(account_from).transpose()
    }

    /// Create `account` (its `created_at` is set here) with `audit`, in one transaction,
    /// binding the external account key `eab_kid` (of the same provisioner, unused, not
    /// revoked) to it there too. If the key already has an account under the provisioner,
    /// that account is returned and nothing is written. An EAB key that cannot be bound is
    /// [`StoreError::Conflict`], and nothing is written.
    pub async fn acme_create_account(
        &self,
        account: &AcmeAccount,
        audit: &AuditEntry,
    ) -> Result<AcmeAccountCreated, StoreError> {
        if let Some(existing) = self
            .acme_account_by_key(&account.provisioner, &account.thumbprint)
            .await?
        {
            return Ok(AcmeAccountCreated::Existing(existing));
        }
        let at = now();
        let contact = serde_json::to_string(&account.contact)
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let mut tx = self.pool.begin().await?;
        if let Some(kid) = &account.eab_kid {
            let bound = sqlx::query(
                "UPDATE acme_eab_keys SET account_id = $1 WHERE kid = $2 AND provisioner = $3 \
                 AND account_id IS NULL AND revoked_at IS NULL",
            )
            .bind(&account.id)
            .bind(kid)
            .bind(&account.provisioner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if bound != 1 {
                tx.rollback().await?;
                return Err(StoreError::Conflict(format!(
                    "external account key {kid:?} is unknown, revoked or already bound"
                )));
            }
        }
        let inserted = sqlx::query(
            "INSERT INTO acme_accounts (id, provisioner, thumbprint, jwk, status, contact, eab_kid, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (provisioner, thumbprint) DO NOTHING",
        )
        .bind(&account.id)
        .bind(&account.provisioner)
        .bind(&account.thumbprint)
        .bind(&account.jwk)
        .bind(&account.status)
        .bind(&contact)
        .bind(account.eab_kid.as_deref())
        .bind(at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted != 1 {
            // Another request made the account for this key meanwhile.
            tx.rollback().await?;
            return match self
                .acme_account_by_key(&account.provisioner, &account.thumbprint)
                .await?
            {
                Some(existing) => Ok(AcmeAccountCreated::Existing(existing)),
                None => Err(StoreError::Conflict("account id already taken".into())),
            };
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        let mut created = account.clone();
        created.created_at = from_unix("created_at", at)?;
        Ok(AcmeAccountCreated::Created(created))
    }

    /// Change an account's contacts and/or status (`valid` only: a deactivated or revoked
    /// account stays so), with `audit`. `false` if the account is not `valid`.
    pub async fn acme_update_account(
        &self,
        id: &str,
        contact: Option<&[String]>,
        status: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let mut changed = 1;
        if let Some(contact) = contact {
            let contact = serde_json::to_string(contact)
                .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
            changed = sqlx::query(
                "UPDATE acme_accounts SET contact = $1 WHERE id = $2 AND status = 'valid'",
            )
            .bind(contact)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if let (Some(status), 1) = (status, changed) {
            changed = sqlx::query(
                "UPDATE acme_accounts SET status = $1 WHERE id = $2 AND status = 'valid'",
            )
            .bind(status)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Replace a `valid` account's key (RFC 8555 section 7.3.5), with `audit`. `Ok(false)`
    /// if the account is not valid; [`StoreError::Conflict`] if the new key already has an
    /// account under the provisioner.
    pub async fn acme_change_key(
        &self,
        id: &str,
        thumbprint: &str,
        jwk: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE acme_accounts SET thumbprint = $1, jwk = $2 WHERE id = $3 AND status = 'valid'",
        )
        .bind(thumbprint)
        .bind(jwk)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Write a new order, its authorizations (status `pending`) and their challenges, with
    /// `audit`, in one transaction.
    pub async fn acme_create_order(
        &self,
        order: &NewAcmeOrder,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let at = now();
        let expires = order.expires_at.unix_timestamp();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO acme_orders (id, account_id, status, identifiers, expires_at, replaces, created_at) \
             VALUES ($1, $2, 'pending', $3, $4, $5, $6)",
        )
        .bind(&order.id)
        .bind(&order.account_id)
        .bind(&order.identifiers)
        .bind(expires)
        .bind(order.replaces.as_deref())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        for authz in &order.authorizations {
            sqlx::query(
                "INSERT INTO acme_authorizations (id, order_id, account_id, identifier_type, identifier_value, status, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
            )
            .bind(&authz.id)
            .bind(&order.id)
            .bind(&order.account_id)
            .bind(&authz.identifier_type)
            .bind(&authz.identifier_value)
            .bind(expires)
            .execute(&mut *tx)
            .await?;
            for (id, kind, token) in &authz.challenges {
                sqlx::query(
                    "INSERT INTO acme_challenges (id, authz_id, kind, token, status) \
                     VALUES ($1, $2, $3, $4, 'pending')",
                )
                .bind(id)
                .bind(&authz.id)
                .bind(kind)
                .bind(token)
                .execute(&mut *tx)
                .await?;
            }
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The order `id`, with its authorizations' ids.
    pub async fn acme_order(&self, id: &str) -> Result<Option<AcmeOrder>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, account_id, status, identifiers, expires_at, error, certificate_serial, \
             replaces, created_at FROM acme_orders WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let authorizations =
            sqlx::query("SELECT id FROM acme_authorizations WHERE order_id = $1 ORDER BY id")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("id"))
                .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AcmeOrder {
            id: row.try_get("id")?,
            account_id: row.try_get("account_id")?,
            status: row.try_get("status")?,
            identifiers: row.try_get("identifiers")?,
            expires_at: from_unix("expires_at", row.try_get("expires_at")?)?,
            error: row.try_get("error")?,
            certificate_serial: row
                .try_get::<Option<String>, _>("certificate_serial")?
                .map(|s| serial_from_db("acme_orders.certificate_serial", &s))
                .transpose()?,
            replaces: row.try_get("replaces")?,
            created_at: from_unix("created_at", row.try_get("created_at")?)?,
            authorizations,
        }))
    }

    /// Ids of `account_id`'s orders that have not expired, oldest first, after the id
    /// `after` (a page of at most `limit`).
    pub async fn acme_order_ids(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM acme_orders WHERE account_id = $1 AND expires_at > $2 AND id > $3 \
             ORDER BY id LIMIT $4",
        )
        .bind(account_id)
        .bind(now())
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }

    /// The authorization `id`, with its challenges.
    pub async fn acme_authorization(
        &self,
        id: &str,
    ) -> Result<Option<AcmeAuthorization>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT id, order_id, account_id, identifier_type, identifier_value, status, expires_at \
             FROM acme_authorizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let challenges = sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM acme_challenges WHERE authz_id = $1 ORDER BY kind"
        ))
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(challenge_from)
        .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(AcmeAuthorization {
            id: row.try_get("id")?,
            order_id: row.try_get("order_id")?,
            account_id: row.try_get("account_id")?,
            identifier_type: row.try_get("identifier_type")?,
            identifier_value: row.try_get("identifier_value")?,
            status: row.try_get("status")?,
            expires_at: from_unix("expires_at", row.try_get("expires_at")?)?,
            challenges,
        }))
    }

    /// The challenge `id`.
    pub async fn acme_challenge(&self, id: &str) -> Result<Option<AcmeChallenge>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            challenge_columns!(),
            " FROM acme_challenges WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(challenge_from).transpose()
    }

    /// Move a `pending` challenge of a `pending` authorization to `processing`: `true` for
    /// the one caller (in any process) that gets to validate it.
    pub async fn acme_start_challenge(&self, id: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE acme_challenges SET status = 'processing' WHERE id = $1 AND status = 'pending' \
             AND authz_id IN (SELECT id FROM acme_authorizations WHERE status = 'pending')",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// End the validation of a `processing` challenge: valid, or invalid with the problem
    /// `error` (JSON). Its authorization follows; an invalid authorization makes its order
    /// invalid, and an order whose authorizations are all valid becomes `ready`. One
    /// transaction, with `audit`.
    pub async fn acme_finish_challenge(
        &self,
        challenge: &AcmeChallenge,
        outcome: ChallengeOutcome,
        error: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let at = now();
        let status = match outcome {
            ChallengeOutcome::Valid => "valid",
            ChallengeOutcome::Invalid => "invalid",
        };
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE acme_challenges SET status = $1, validated_at = $2, error = $3 \
             WHERE id = $4 AND status = 'processing'",
        )
        .bind(status)
        .bind(matches!(outcome, ChallengeOutcome::Valid).then_some(at))
        .bind(error)
        .bind(&challenge.id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(());
        }
        sqlx::query(
            "UPDATE acme_authorizations SET status = $1 WHERE id = $2 AND status = 'pending'",
        )
        .bind(status)
        .bind(&challenge.authz_id)
        .execute(&mut *tx)
        .await?;
        let order_id: String =
            sqlx::query("SELECT order_id FROM acme_authorizations WHERE id = $1")
                .bind(&challenge.authz_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get("order_id")?;
        match outcome {
            ChallengeOutcome::Invalid => {
                sqlx::query(
                    "UPDATE acme_orders SET status = 'invalid', error = $1 \
                     WHERE id = $2 AND status = 'pending'",
                )
                .bind(error)
                .bind(&order_id)
                .execute(&mut *tx)
                .await?;
            }
            ChallengeOutcome::Valid => {
                sqlx::query(
                    "UPDATE acme_orders SET status = 'ready' WHERE id = $1 AND status = 'pending' \
                     AND NOT EXISTS (SELECT 1 FROM acme_authorizations \
                                     WHERE order_id = $1 AND status <> 'valid')",
                )
                .bind(&order_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deactivate a `pending` or `valid` authorization (RFC 8555 section 7.5.2); a pending
    /// order it belongs to becomes invalid. `false` if it was neither.
    pub async fn acme_deactivate_authorization(
        &self,
        id: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE acme_authorizations SET status = 'deactivated' \
             WHERE id = $1 AND status IN ('pending', 'valid')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query(
            "UPDATE acme_orders SET status = 'invalid' WHERE status IN ('pending', 'ready') \
             AND id IN (SELECT order_id FROM acme_authorizations WHERE id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Move a `ready` order to `processing`: `true` for the one caller (in any process) that
    /// gets to finalize it.
    pub async fn acme_begin_finalize(&self, id: &str) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE acme_orders SET status = 'processing' WHERE id = $1 AND status = 'ready'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// End the finalization of a `processing` order: `valid` with the certificate's serial
    /// (already recorded), or back to `ready` (`None`: the CSR was refused and the client may
    /// send another), or `invalid` with `error`.
    pub async fn acme_finish_order(
        &self,
        id: &str,
        serial: Option<&Serial>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let status = match (serial, error) {
            (Some(_), _) => "valid",
            (None, Some(_)) => "invalid",
            (None, None) => "ready",
        };
        sqlx::query(
            "UPDATE acme_orders SET status = $1, certificate_serial = $2, error = $3 \
             WHERE id = $4 AND status = 'processing'",
        )
        .bind(status)
        .bind(serial.map(db_serial))
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether some order (other than `except`) of `provisioner` already replaced the
    /// certificate with ARI CertID `replaces` (RFC 9773 section 5).
    pub async fn acme_replaced(&self, replaces: &str) -> Result<bool, StoreError> {
        let row = sqlx::query(
            "SELECT 1 AS one FROM acme_orders WHERE replaces = $1 AND status <> 'invalid' LIMIT 1",
        )
        .bind(replaces)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// Store a new external account binding key, with `audit`.
    pub async fn acme_create_eab_key(
        &self,
        kid: &str,
        provisioner: &str,
        hmac_key: &str,
        audit: &AuditEntry,
    ) -> Result<(), StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO acme_eab_keys (kid, provisioner, hmac_key, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(kid)
        .bind(provisioner)
        .bind(hmac_key)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The external account binding key `kid`.
    pub async fn acme_eab_key(&self, kid: &str) -> Result<Option<AcmeEabKey>, StoreError> {
        let row = sqlx::query(
            "SELECT kid, provisioner, hmac_key, created_at, account_id, revoked_at \
             FROM acme_eab_keys WHERE kid = $1",
        )
        .bind(kid)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(eab_from).transpose()
    }

    /// Every external account binding key (of `provisioner`, if given), oldest first.
    pub async fn acme_eab_keys(
        &self,
        provisioner: Option<&str>,
    ) -> Result<Vec<AcmeEabKey>, StoreError> {
        let rows = sqlx::query(
            "SELECT kid, provisioner, hmac_key, created_at, account_id, revoked_at \
             FROM acme_eab_keys WHERE ($1 = '' OR provisioner = $1) ORDER BY created_at, kid",
        )
        .bind(provisioner.unwrap_or(""))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(eab_from).collect()
    }

    /// Revoke the external account binding key `kid` (it binds no more accounts; an account
    /// it bound stays), with `audit`. `false` if there is no such key or it was revoked.
    pub async fn acme_revoke_eab_key(
        &self,
        kid: &str,
        audit: &AuditEntry,
    ) -> Result<bool, StoreError> {
        let at = now();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE acme_eab_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
        )
        .bind(at)
        .bind(kid)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        insert_audit(&mut tx, audit, at).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Remove used nonces past their retention, and orders (with their authorizations and
    /// challenges) that expired before `orders_expired_before`. Accounts, EAB keys and the
    /// certificates orders produced are kept.
    pub async fn acme_purge(
        &self,
        orders_expired_before: OffsetDateTime,
    ) -> Result<AcmePurged, StoreError> {
        let legacy = sqlx::query("DELETE FROM acme_used_nonces WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await?
            .rows_affected();
        let nonces = legacy + self.purge_used_tokens().await?;
        let cutoff = orders_expired_before.unix_timestamp();
        let mut tx = self.pool.begin().await?;
        // Children first: both backends then work whatever their foreign-key settings.
        sqlx::query(
            "DELETE FROM acme_challenges WHERE authz_id IN (SELECT a.id FROM acme_authorizations a \
             JOIN acme_orders o ON o.id = a.order_id WHERE o.expires_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM acme_authorizations WHERE order_id IN \
             (SELECT id FROM acme_orders WHERE expires_at < $1)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        let orders = sqlx::query("DELETE FROM acme_orders WHERE expires_at < $1")
            .bind(cutoff)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(AcmePurged { nonces, orders })
    }
}
