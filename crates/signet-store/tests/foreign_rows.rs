//! Rows the store did not write: values put into the database directly, with the `sqlite3`
//! and `psql` command-line clients (as an operator, an older or newer Signet, or an
//! attacker with write access could), read back through the store on both backends. The
//! store must read them without panicking and say what they hold; and what the store
//! writes must read, through those independent clients, as the same strings as ever.
//! The decisions are documented in `src/audit.rs` (audit values) and `src/revocation.rs`
//! (reason codes).

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::sync::{Arc, Mutex};

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditFilter, AuditOutcome, CertStatus, CertificateFilter,
    NewCertificate, Store, StoreError,
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

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
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
                "retention-sweep|ok",
                "acme-read|refused",
                "console-sign-in|ok",
                "console-sign-out|refused",
                "console-view|ok",
            ],
            "[{db}]"
        );
    }
}

fn cert(serial: &str, issuer_key_id: &str) -> NewCertificate {
    let now = OffsetDateTime::now_utc();
    NewCertificate {
        serial: serial.parse().unwrap(),
        issuer: "CN=Test CA".to_owned(),
        issuer_key_id: issuer_key_id.to_owned(),
        subject: "CN=svc".to_owned(),
        sans: vec!["dns:svc.internal".to_owned()],
        profile: "server".to_owned(),
        not_before: now,
        not_after: now + time::Duration::days(1),
        requester: "test".to_owned(),
        der: vec![0x30, 0x00],
        crl_shard: None,
    }
}

/// Collects what the store logs while a test runs (on the test's own thread: the tests
/// below run on tokio's current-thread runtime).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;

    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

/// Revocation reasons outside RFC 5280's table, written directly: a code that is no
/// CRLReason (7, unused by the RFC; 11, past its end; 300 and -1, not even a byte) reads as
/// revoked with the reason unknown, in every read an OCSP responder, a CRL publisher or the
/// API makes, never as good and never as an error; each such read logs a warning naming the
/// serial. A code in the table reads as its reason.
#[tokio::test]
async fn foreign_revocation_reasons_written_directly_read_as_revoked_reason_unknown() {
    let logs = Logs::default();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::WARN)
            .finish(),
    );
    for db in TestDb::all().await {
        let store = open(&db).await;
        let (kid, other_kid) = ("aa01", "bb02");
        let odd = [("07", 7), ("0b", 11), ("012c", 300), ("01ff", -1)];
        for (serial, key_id) in [
            ("01", kid),
            ("07", kid),
            ("0b", kid),
            ("012c", other_kid),
            ("01ff", kid),
        ] {
            let audit = AuditEntry {
                actor: "test".into(),
                action: AuditAction::Issue,
                serial: Some(serial.parse().unwrap()),
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
             CASE serial WHEN '01' THEN 1 WHEN '07' THEN 7 WHEN '0b' THEN 11 \
             WHEN '012c' THEN 300 ELSE -1 END",
        );

        let now = OffsetDateTime::now_utc();
        let known = store.certificate_status(&sn("01")).await.unwrap().unwrap();
        assert_eq!(
            known.reason,
            Some(RevocationReason::KeyCompromise),
            "[{db}]"
        );
        for (serial, code) in odd {
            let before = logs.text().len();
            let rec = store.get_certificate(&sn(serial)).await.unwrap().unwrap();
            assert_eq!(rec.status(now), CertStatus::Revoked, "[{db}] {serial}");
            assert_eq!(rec.revocation_reason, None, "[{db}] {serial}");
            let status = store
                .certificate_status(&sn(serial))
                .await
                .unwrap()
                .unwrap();
            assert!(status.revoked_at.is_some(), "[{db}] {serial}");
            assert_eq!(status.reason, None, "[{db}] {serial}");
            let logged = logs.text()[before..].to_owned();
            assert_eq!(
                logged
                    .matches(&format!("serial={serial} code={code}"))
                    .count(),
                2,
                "[{db}] one warning per read, naming the serial and the code: {logged}"
            );
            assert!(logged.contains("WARN"), "[{db}] {logged}");
        }
        // The CRL publisher's read lists every one, the odd ones without a reason.
        let listed = store.revoked_for_crl(kid, now, None, 100).await.unwrap();
        let listed: Vec<(String, Option<RevocationReason>)> = listed
            .iter()
            .map(|r| (r.serial.to_hex(), r.reason))
            .collect();
        assert_eq!(
            listed,
            [
                ("01".to_owned(), Some(RevocationReason::KeyCompromise)),
                ("01ff".to_owned(), None),
                ("07".to_owned(), None),
                ("0b".to_owned(), None),
            ],
            "[{db}]"
        );
        let listed = store
            .revoked_for_crl(other_kid, now, None, 100)
            .await
            .unwrap();
        assert_eq!(listed.len(), 1, "[{db}]");
        assert_eq!(
            (listed[0].serial.to_hex(), listed[0].reason),
            ("012c".to_owned(), None)
        );
        // The API's listing reads them too.
        let page = store
            .list_certificates(&CertificateFilter {
                status: Some(CertStatus::Revoked),
                ..CertificateFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 5, "[{db}]");

        // Reading changed nothing.
        assert_eq!(
            run_sql(
                &db,
                "SELECT serial || ':' || revocation_reason FROM certificates ORDER BY serial"
            )
            .lines()
            .collect::<Vec<_>>(),
            ["01:1", "012c:300", "01ff:-1", "07:7", "0b:11"],
            "[{db}]"
        );
        store.close().await;
    }
}

/// Serials written directly in a spelling the store never writes (upper case, a leading
/// zero octet, not hex): lookups by serial do not find them (the store looks a serial up by
/// its one spelling); reads that return such a row are a typed `Corrupt` error, never a
/// panic and never a different serial; the revocation sequence still counts it, without a
/// serial, so a responder drops its whole cache rather than miss it.
#[tokio::test]
async fn foreign_serial_spellings_written_directly_are_corrupt_rows() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let start = store.revocation_cursor().await.unwrap();
        for (i, serial) in ["ABCD", "00ef", "zz"].into_iter().enumerate() {
            run_sql(
                &db,
                &format!(
                    "INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, \
                     profile, not_before, not_after, requester, der, created_at, revoked_at, \
                     revocation_reason, revocation_seq) VALUES ('{serial}', 'CN=Test CA', \
                     'aa01', 'CN=svc', '[]', 'server', 1700000000, 4000000000, 'test', \
                     {blob}, 1700000000, 1700000000, 1, {seq})",
                    blob = if db.name() == "postgres" {
                        "'\\x3000'"
                    } else {
                        "x'3000'"
                    },
                    seq = 1_000_000 + i,
                ),
            );
        }
        assert_eq!(
            store.get_certificate(&sn("abcd")).await.unwrap(),
            None,
            "[{db}]"
        );
        assert_eq!(
            store.certificate_status(&sn("ef")).await.unwrap(),
            None,
            "[{db}]"
        );
        let e = store
            .list_certificates(&CertificateFilter::default())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "[{db}] {e:?}");
        let e = store
            .revoked_for_crl("aa01", OffsetDateTime::now_utc(), None, 100)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt(_)), "[{db}] {e:?}");
        let events = store.revocations_since(start, 100).await.unwrap();
        assert_eq!(events.len(), 3, "[{db}]");
        assert!(
            events.iter().all(|e| e.serial.is_none()),
            "[{db}] {events:?}"
        );
        store.close().await;
    }
}
