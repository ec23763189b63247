//! Rows the store did not write: values put into the database directly, with the `sqlite3`
//! and `psql` command-line clients (as an operator, an older or newer Signet, or an
//! attacker with write access could), read back through the store on both backends. The
//! store must read them without panicking and say what they hold; and what the store
//! writes must read, through those independent clients, as the same strings as ever.
//! The decisions are documented in `src/audit.rs` (audit values) and `src/revocation.rs`
//! (reason codes).

#![allow(clippy::unwrap_used)]

use std::process::Command;

use signet_store::{
    AuditAction, AuditEntry, AuditFilter, AuditOutcome, CertStatus, NewCertificate, Store,
    StoreError,
};
use signet_testkit::TestDb;
use time::OffsetDateTime;

/// Runs `sql` on `db` with its backend's own command-line client; returns standard output.
fn run_sql(db: &TestDb, sql: &str) -> String {
    let mut cmd = match db.name() {
        "sqlite" => {
            let path = db.url().strip_prefix("sqlite://").unwrap();
            let mut c = Command::new("sqlite3");
            // The store holds the database open in WAL mode: wait for its locks, bounded.
            c.args(["-batch", "-bail", "-cmd", ".timeout 5000", path, sql]);
            c
        }
        "postgres" => {
            let mut c = Command::new("psql");
            c.env("PGCONNECT_TIMEOUT", "5")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
                .args(["-d", db.url(), "-c", sql]);
            c
        }
        other => panic!("unknown backend {other}"),
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("[{db}] running the client: {e}"));
    assert!(
        out.status.success(),
        "[{db}] {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

/// Audit actions and outcomes that no variant spells come back as `Other`, holding the
/// stored string unchanged, in both listings; known spellings written by hand come back
/// as their variants; a filter on an unknown value finds exactly its rows.
#[tokio::test]
async fn unknown_audit_values_written_directly_are_read_back_as_they_are() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        // Rows as another writer would put them: an action from a newer version, a
        // terminal escape, a value differing from a known one only in case or a space, an
        // empty outcome; and known spellings, typed in by hand.
        run_sql(
            &db,
            "INSERT INTO audit_log (at, actor, action, serial, outcome, detail) VALUES \
             (1700000000, 'ops', 'frobnicate', NULL, 'maybe', 'newer version'), \
             (1700000001, 'ops', 'x' || char(27) || '[2J', NULL, '', 'escape'), \
             (1700000002, 'ops', 'Issue', '01', 'ok ', 'case'), \
             (1700000003, 'ops', 'issue-server-cert', '02', 'refused', 'known')"
                .replace(
                    "char(27)",
                    if db.name() == "postgres" {
                        "chr(27)"
                    } else {
                        "char(27)"
                    },
                )
                .as_str(),
        );

        let log = store.list_audit(10).await.unwrap();
        assert_eq!(log.len(), 4, "[{db}]");
        let by_detail = |d: &str| log.iter().find(|r| r.detail == d).unwrap();

        let newer = by_detail("newer version");
        assert!(!newer.action.is_known(), "[{db}]");
        assert_eq!(newer.action.as_str(), "frobnicate", "[{db}]");
        assert_eq!(newer.outcome, AuditOutcome::parse("maybe"), "[{db}]");
        assert!(!newer.outcome.is_known(), "[{db}]");

        let escape = by_detail("escape");
        assert_eq!(escape.action.as_str(), "x\u{1b}[2J", "[{db}]");
        assert_eq!(escape.outcome.as_str(), "", "[{db}]");
        assert!(!escape.outcome.is_known(), "[{db}]");

        // Spellings are exact: neither is taken for `issue` or `ok`.
        let case = by_detail("case");
        assert!(!case.action.is_known(), "[{db}]");
        assert_ne!(case.action, AuditAction::Issue, "[{db}]");
        assert_eq!(case.action.as_str(), "Issue", "[{db}]");
        assert_ne!(case.outcome, AuditOutcome::Ok, "[{db}]");
        assert_eq!(case.outcome.as_str(), "ok ", "[{db}]");

        let known = by_detail("known");
        assert_eq!(known.action, AuditAction::IssueServerCert, "[{db}]");
        assert_eq!(known.outcome, AuditOutcome::Refused, "[{db}]");

        // The paginated listing reads them the same way, and filters on their strings.
        let page = store
            .list_audit_page(&AuditFilter {
                action: Some(AuditAction::parse("frobnicate")),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "[{db}]");
        assert_eq!(page.items[0].detail, "newer version", "[{db}]");
        let page = store
            .list_audit_page(&AuditFilter {
                outcome: Some(AuditOutcome::Refused),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 1, "[{db}]");
        assert_eq!(page.items[0].detail, "known", "[{db}]");
        let page = store
            .list_audit_page(&AuditFilter {
                action: Some(AuditAction::Issue),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert!(page.items.is_empty(), "[{db}] 'Issue' is not 'issue'");

        // Reading changed nothing.
        assert_eq!(
            run_sql(&db, "SELECT COUNT(*) FROM audit_log").trim(),
            "4",
            "[{db}]"
        );
        store.close().await;
    }
}

/// Every typed action and outcome is stored as the string written before the enums
/// existed, as read by the database's own client.
#[tokio::test]
async fn typed_audit_values_are_stored_as_the_same_strings() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        for (i, action) in AuditAction::KNOWN.iter().enumerate() {
            let outcome = if i % 2 == 0 {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Refused
            };
            store
                .append_audit(&AuditEntry {
                    actor: "test".into(),
                    action: action.clone(),
                    serial: None,
                    outcome,
                    detail: String::new(),
                })
                .await
                .unwrap();
        }
        store.close().await;
        let stored = run_sql(
            &db,
            "SELECT action || '|' || outcome FROM audit_log ORDER BY id",
        );
        let stored: Vec<&str> = stored.lines().collect();
        assert_eq!(
            stored,
            [
                "issue|ok",
                "renew|refused",
                "revoke|ok",
                "issue-server-cert|refused",
                "issue-ocsp-signer|ok",
                "create-issuing-ca|refused",
                "record-ca-certificate|ok",
                "bind-database|refused",
                "publish-root-crl|ok",
                "acme-new-account|refused",
                "acme-update-account|ok",
                "acme-key-change|refused",
                "acme-new-order|ok",
                "acme-validate|refused",
                "acme-deactivate-authz|ok",
                "acme-eab-key|refused",
            ],
            "[{db}]"
        );
    }
}

fn cert(serial: &str, issuer_key_id: &str) -> NewCertificate {
    let now = OffsetDateTime::now_utc();
    NewCertificate {
        serial: serial.to_owned(),
        issuer: "CN=Test CA".to_owned(),
        issuer_key_id: issuer_key_id.to_owned(),
        subject: "CN=svc".to_owned(),
        sans: vec!["dns:svc.internal".to_owned()],
        profile: "server".to_owned(),
        not_before: now,
        not_after: now + time::Duration::days(1),
        requester: "test".to_owned(),
        der: vec![0x30, 0x00],
    }
}

/// Revocation reasons outside RFC 5280's table, written directly: a code that fits a byte
/// (7, unused by the RFC; 11, past its end) still reads as revoked, with the code as
/// stored, in every read an OCSP responder, a CRL publisher or the API makes; a code that
/// does not fit a byte is a typed `Corrupt` error, never a panic.
#[tokio::test]
async fn foreign_revocation_reasons_written_directly_still_read_as_revoked() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let (kid, other_kid) = ("aa01", "bb02");
        for (serial, key_id) in [("07", kid), ("0b", kid), ("012c", other_kid)] {
            let audit = AuditEntry {
                actor: "test".into(),
                action: AuditAction::Issue,
                serial: Some(serial.into()),
                outcome: AuditOutcome::Ok,
                detail: String::new(),
            };
            store
                .insert_certificate(&cert(serial, key_id), &audit)
                .await
                .unwrap();
        }
        run_sql(
            &db,
            "UPDATE certificates SET revoked_at = 1700000000, revocation_reason = \
             CASE serial WHEN '07' THEN 7 WHEN '0b' THEN 11 ELSE 300 END",
        );

        let now = OffsetDateTime::now_utc();
        for (serial, code) in [("07", 7u8), ("0b", 11)] {
            let rec = store.get_certificate(serial).await.unwrap().unwrap();
            assert_eq!(rec.revocation_reason, Some(code), "[{db}] {serial}");
            assert_eq!(rec.status(now), CertStatus::Revoked, "[{db}] {serial}");
            let status = store.certificate_status(serial).await.unwrap().unwrap();
            assert!(status.revoked_at.is_some(), "[{db}] {serial}");
            assert_eq!(status.reason, Some(code), "[{db}] {serial}");
        }
        let listed = store.revoked_for_crl(kid, now, None, 100).await.unwrap();
        let listed: Vec<(&str, u8)> = listed
            .iter()
            .map(|r| (r.serial.as_str(), r.reason))
            .collect();
        assert_eq!(listed, [("07", 7), ("0b", 11)], "[{db}]");

        // 300 does not fit a CRLReason at all: a typed error for that row, no panic.
        let e = store.get_certificate("012c").await.unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "[{db}] {e:?}");
        let e = store.certificate_status("012c").await.unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "[{db}] {e:?}");

        // Reading changed nothing.
        assert_eq!(
            run_sql(
                &db,
                "SELECT serial || ':' || revocation_reason FROM certificates ORDER BY serial"
            )
            .lines()
            .collect::<Vec<_>>(),
            ["012c:300", "07:7", "0b:11"],
            "[{db}]"
        );
        store.close().await;
    }
}
