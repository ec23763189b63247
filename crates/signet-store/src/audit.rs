//! The audit log: the entry written with each operation (in the same transaction as what
//! it records), the stored row, and reading the newest rows. (Filtered, paginated reading
//! is `listing.rs`.)
//!
//! What was done and how it ended are typed, [`AuditAction`] and [`AuditOutcome`], each
//! stored as the same short string as always (`issue-server-cert`, `refused`...), so the
//! rows, the API and the CLI read exactly as before.
//!
//! **Values this version does not know.** A database can hold action or outcome strings
//! that no variant spells: rows written by hand, by an older or newer Signet, or by an
//! attacker with write access to the table. Reading such a row never fails and never
//! panics: the value comes back as `Other`, holding the stored string unchanged, so the
//! audit log can always be read and shown whole (refusing to list it because of one odd
//! row would hide the rest of the log from the operator). `Other` is made only by
//! [`AuditAction::parse`] / [`AuditOutcome::parse`], never from a known spelling, so
//! `parse("issue")` is always [`AuditAction::Issue`].
//!
//! **Serials.** An entry names its certificate by a typed [`Serial`], written in the
//! store's one spelling. A stored row's serial is read back as the text stored, for the
//! same reason as above: a row written by hand with an odd serial must not hide the log.

use std::fmt;

use signet_pkix::Serial;
use sqlx::Row;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::serial::db_serial;
use crate::{Store, StoreError, from_unix};

/// A stored audit value that no variant of [`AuditAction`] or [`AuditOutcome`] spells,
/// kept exactly as read. Made only by their `parse`, so it never holds a known spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnknownAuditValue(String);

impl UnknownAuditValue {
    /// The string as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Declares a string-backed audit enum: each variant with its one stored spelling, plus
/// `Other(UnknownAuditValue)` for anything else read from the database.
macro_rules! audit_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version does not know, read from the database as it is (see
            /// the module documentation).
            Other(UnknownAuditValue),
        }

        impl $name {
            /// Every known value, in declaration order.
            pub const KNOWN: &'static [$name] = &[$($name::$variant,)+];

            /// The string stored in `audit_log` and shown by the API and the CLI.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Other(v) => v.as_str(),
                }
            }

            /// The value a stored string stands for: the known variant it spells
            /// (exactly, case-sensitive), else `Other` holding it unchanged. Never fails.
            pub fn parse(s: &str) -> $name {
                match s {
                    $($text => $name::$variant,)+
                    other => $name::Other(UnknownAuditValue(other.to_owned())),
                }
            }

            /// Whether this is a value this version knows (not `Other`).
            pub fn is_known(&self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    };
}

audit_enum! {
    /// What an audit row records as done.
    AuditAction {
        /// A certificate issued through the API (`POST /v1/certificates`) or
        /// `signet issue --local`, or a refused attempt.
        Issue = "issue",
        /// A certificate renewed through the API, or a refused attempt.
        Renew = "renew",
        /// A certificate revoked (API, `signet revoke`, `signet ca revoke-issuing`), or a
        /// refused attempt.
        Revoke = "revoke",
        /// The server's own TLS certificate, issued by `signet serve` to itself.
        IssueServerCert = "issue-server-cert",
        /// A delegated OCSP signing certificate, issued to a responder.
        IssueOcspSigner = "issue-ocsp-signer",
        /// A new issuing CA certificate, signed by the root (`signet ca new-issuing`).
        CreateIssuingCa = "create-issuing-ca",
        /// A CA certificate recorded under the root so that it can be revoked there.
        RecordCaCertificate = "record-ca-certificate",
        /// The database bound to its root CA (`signet init`, or the first start on it).
        BindDatabase = "bind-database",
        /// A CRL signed by the root published (`signet init`, `signet ca root-crl`).
        PublishRootCrl = "publish-root-crl",
        /// An ACME account created (`newAccount`).
        AcmeNewAccount = "acme-new-account",
        /// An ACME account's contacts changed, or the account deactivated.
        AcmeUpdateAccount = "acme-update-account",
        /// An ACME account's key replaced (`keyChange`).
        AcmeKeyChange = "acme-key-change",
        /// An ACME order placed (`newOrder`).
        AcmeNewOrder = "acme-new-order",
        /// An ACME challenge validated or failed.
        AcmeValidate = "acme-validate",
        /// An ACME authorization deactivated by its account.
        AcmeDeactivateAuthorization = "acme-deactivate-authz",
        /// An ACME external account binding key created or revoked.
        AcmeEabKey = "acme-eab-key",
        /// Expired certificates taken out of the hot tables by the retention sweep
        /// (archived or deleted); the detail holds the counts.
        RetentionSweep = "retention-sweep",
        /// An ACME object read (POST-as-GET of an account, its orders, an order, an
        /// authorization, a challenge or a certificate). Recorded only when refused.
        AcmeRead = "acme-read",
        /// Signing in to the operator console (`/ui`), or a refused attempt.
        ConsoleSignIn = "console-sign-in",
        /// Signing out of the operator console.
        ConsoleSignOut = "console-sign-out",
        /// A search or a certificate opened in the operator console (what was asked).
        ConsoleView = "console-view",
    }
}

audit_enum! {
    /// How the operation an audit row records ended.
    AuditOutcome {
        /// Done.
        Ok = "ok",
        /// Refused: the detail holds the problem type and why.
        Refused = "refused",
    }
}

/// An audit event to append. The time is set by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Who did it.
    pub actor: String,
    /// What was done.
    pub action: AuditAction,
    /// The certificate concerned, if any.
    pub serial: Option<Serial>,
    /// How it ended.
    pub outcome: AuditOutcome,
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
    /// What was done (`Other` for a value this version does not know).
    pub action: AuditAction,
    /// The certificate concerned, if any: its serial as stored (minimal lowercase hex for
    /// every row the store wrote; a row written by hand is read as it is).
    pub serial: Option<String>,
    /// How it ended (`Other` for a value this version does not know).
    pub outcome: AuditOutcome,
    /// Free text.
    pub detail: String,
}

impl Store {
    /// Appends one audit row, time-stamped now, committed before `Ok` is
    /// returned (group-committed with concurrent writes).
    pub async fn append_audit(&self, audit: &AuditEntry) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        self.writer.append_audit(audit.clone(), now).await
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
}

pub(crate) async fn insert_audit(
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
    .bind(audit.action.as_str())
    .bind(audit.serial.as_ref().map(db_serial))
    .bind(audit.outcome.as_str())
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

pub(crate) fn audit_from_row(row: &AnyRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        id: row.try_get("id")?,
        at: from_unix("at", row.try_get("at")?)?,
        actor: row.try_get("actor")?,
        action: AuditAction::parse(&row.try_get::<String, _>("action")?),
        serial: row.try_get("serial")?,
        outcome: AuditOutcome::parse(&row.try_get::<String, _>("outcome")?),
        detail: row.try_get("detail")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_value_round_trips_through_its_stored_spelling() {
        for a in AuditAction::KNOWN {
            assert_eq!(&AuditAction::parse(a.as_str()), a);
            assert!(a.is_known());
        }
        for o in AuditOutcome::KNOWN {
            assert_eq!(&AuditOutcome::parse(o.as_str()), o);
        }
        let spellings: std::collections::HashSet<&str> =
            AuditAction::KNOWN.iter().map(AuditAction::as_str).collect();
        assert_eq!(
            spellings.len(),
            AuditAction::KNOWN.len(),
            "two variants, one spelling"
        );
    }

    #[test]
    fn the_stored_spellings_are_the_ones_written_before_the_enums() {
        // These strings are in databases already and in the API's and CLI's output: they
        // must never change.
        let want = [
            (AuditAction::Issue, "issue"),
            (AuditAction::Renew, "renew"),
            (AuditAction::Revoke, "revoke"),
            (AuditAction::IssueServerCert, "issue-server-cert"),
            (AuditAction::IssueOcspSigner, "issue-ocsp-signer"),
            (AuditAction::CreateIssuingCa, "create-issuing-ca"),
            (AuditAction::RecordCaCertificate, "record-ca-certificate"),
            (AuditAction::BindDatabase, "bind-database"),
            (AuditAction::PublishRootCrl, "publish-root-crl"),
            // The ACME server's actions (issue 16), new with it.
            (AuditAction::AcmeNewAccount, "acme-new-account"),
            (AuditAction::AcmeUpdateAccount, "acme-update-account"),
            (AuditAction::AcmeKeyChange, "acme-key-change"),
            (AuditAction::AcmeNewOrder, "acme-new-order"),
            (AuditAction::AcmeValidate, "acme-validate"),
            (
                AuditAction::AcmeDeactivateAuthorization,
                "acme-deactivate-authz",
            ),
            (AuditAction::AcmeEabKey, "acme-eab-key"),
            // The retention sweep (issue 19), new with it.
            (AuditAction::RetentionSweep, "retention-sweep"),
            // Refused ACME reads (POST-as-GET).
            (AuditAction::AcmeRead, "acme-read"),
            // The operator console (issue 20), new with it.
            (AuditAction::ConsoleSignIn, "console-sign-in"),
            (AuditAction::ConsoleSignOut, "console-sign-out"),
            (AuditAction::ConsoleView, "console-view"),
        ];
        assert_eq!(want.len(), AuditAction::KNOWN.len());
        for (action, text) in want {
            assert_eq!(action.as_str(), text);
            assert_eq!(action.to_string(), text);
        }
        assert_eq!(AuditOutcome::Ok.as_str(), "ok");
        assert_eq!(AuditOutcome::Refused.as_str(), "refused");
        assert_eq!(AuditOutcome::KNOWN.len(), 2);
    }

    #[test]
    fn unknown_values_are_kept_as_they_are() {
        for s in [
            "",
            "Issue",
            "issue ",
            "login",
            "x\u{1b}[2J",
            "\u{0}",
            "délivrer",
        ] {
            let a = AuditAction::parse(s);
            assert!(!a.is_known(), "{s:?}");
            assert_eq!(a.as_str(), s);
            assert_eq!(a, s);
            let o = AuditOutcome::parse(s);
            assert_eq!(o, AuditOutcome::Other(UnknownAuditValue(s.to_owned())));
        }
    }
}
