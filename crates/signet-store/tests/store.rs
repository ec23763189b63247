//! Every behaviour of the store, run against both SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use signet_store::{AuditEntry, Backend, NewCertificate, RevokeOutcome, Store, StoreError};
use signet_testkit::TestDb;
use sqlx::Connection;
use time::OffsetDateTime;

fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("valid timestamp")
}

fn cert(serial: &str) -> NewCertificate {
    // DER-like bytes including NUL, 0xff and bytes that are not UTF-8.
    let mut der = vec![0x30, 0x82, 0x01, 0x0a, 0x00, 0xff, 0xc3, 0x28, 0x00, 0x00];
    der.extend((0u8..=255).cycle().take(1500));
    NewCertificate {
        serial: serial.to_owned(),
        issuer: "CN=Signet Intermediate CA,O=Signet".to_owned(),
        issuer_key_id: "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334".to_owned(),
        subject: "CN=svc.a.example,O=Ex'ample \"Quoted\"".to_owned(),
        sans: vec![
            "dns:a.example".to_owned(),
            "ip:10.0.0.1".to_owned(),
            "ip:2001:db8::1".to_owned(),
            "uri:spiffe://example.org/ns/prod/sa/web".to_owned(),
            "email:ops@a.example".to_owned(),
            "dns:ünïcödé.example".to_owned(),
        ],
        profile: "server".to_owned(),
        not_before: ts(1_700_000_000),
        not_after: ts(1_700_000_000 + 90 * 86_400),
        requester: "user:alice".to_owned(),
        der,
    }
}

fn audit(action: &str, serial: Option<&str>, detail: &str) -> AuditEntry {
    AuditEntry {
        actor: "user:alice".to_owned(),
        action: action.to_owned(),
        serial: serial.map(str::to_owned),
        outcome: "ok".to_owned(),
        detail: detail.to_owned(),
    }
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(db.url())
        .await
        .unwrap_or_else(|e| panic!("[{db}] connect {}: {e}", db.url()));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("[{db}] migrate: {e}"));
    store
}

/// A second, raw connection that bypasses the store.
async fn raw(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(db.url())
        .await
        .unwrap_or_else(|e| panic!("[{db}] raw connect: {e}"))
}

async fn audit_count(conn: &mut sqlx::AnyConnection) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM audit_log")
        .fetch_one(conn)
        .await
        .expect("count audit rows")
        .try_get("n")
        .expect("decode count")
}

#[tokio::test]
async fn connects_and_reports_backend() {
    for db in TestDb::all().await {
        let store = Store::connect(db.url()).await.expect("connect");
        let expected = match db.name() {
            "sqlite" => Backend::Sqlite,
            _ => Backend::Postgres,
        };
        assert_eq!(store.backend(), expected, "[{db}]");
        assert_eq!(store.backend().as_str(), db.name(), "[{db}]");
        store
            .ping()
            .await
            .unwrap_or_else(|e| panic!("[{db}] ping: {e}"));
        store.close().await;
        assert!(
            matches!(store.ping().await, Err(StoreError::Unavailable(_))),
            "[{db}] ping after close must be Unavailable"
        );
    }
}

#[tokio::test]
async fn accepts_libpq_socket_url_form() {
    // TestDb gives postgres:///postgres?host=<dir>&user=signet; the libpq
    // spelling postgres://signet@/postgres?host=<dir> must work too.
    let db = TestDb::postgres().await;
    let url = db.url();
    let Some(query) = url.strip_prefix("postgres:///postgres?") else {
        // DATABASE_URL server: not a socket URL of this shape.
        return;
    };
    let host = query
        .split('&')
        .find_map(|p| p.strip_prefix("host="))
        .expect("host parameter");
    let libpq = format!("postgres://signet@/postgres?host={host}");
    let store = Store::connect(&libpq)
        .await
        .unwrap_or_else(|e| panic!("connect {libpq}: {e}"));
    store.ping().await.expect("ping");
    assert_eq!(store.backend(), Backend::Postgres);
}

#[tokio::test]
async fn migrate_is_idempotent() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("[{db}] second migrate: {e}"));
        store
            .insert_certificate(&cert("01"), &audit("issue", Some("01"), ""))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
        // A third migrate, from a separate store, leaves data in place.
        let again = Store::connect(db.url()).await.expect("reconnect");
        again
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("[{db}] third migrate: {e}"));
        assert_eq!(again.count_certificates().await.unwrap(), 1, "[{db}]");
    }
}

#[tokio::test]
async fn concurrent_migrate_does_not_fail() {
    // Two independent stores (separate pools) migrating at the same time;
    // on PostgreSQL sqlx serialises them with an advisory lock.
    let db = TestDb::postgres().await;
    let a = Store::connect(db.url()).await.expect("connect a");
    let b = Store::connect(db.url()).await.expect("connect b");
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.expect("migrate a");
    rb.expect("migrate b");
    a.insert_certificate(&cert("02"), &audit("issue", Some("02"), ""))
        .await
        .expect("insert after concurrent migrate");
    assert_eq!(b.count_certificates().await.unwrap(), 1);
}

#[tokio::test]
async fn insert_and_get_round_trip() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let new = cert("7fa3c901");
        let before = OffsetDateTime::now_utc().unix_timestamp();
        store
            .insert_certificate(&new, &audit("issue", Some("7fa3c901"), "profile=server"))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
        let after = OffsetDateTime::now_utc().unix_timestamp();

        let got = store
            .get_certificate("7fa3c901")
            .await
            .unwrap_or_else(|e| panic!("[{db}] get: {e}"))
            .unwrap_or_else(|| panic!("[{db}] inserted certificate not found"));
        assert_eq!(got.serial, new.serial, "[{db}]");
        assert_eq!(got.issuer, new.issuer, "[{db}]");
        assert_eq!(got.issuer_key_id, new.issuer_key_id, "[{db}]");
        assert_eq!(got.subject, new.subject, "[{db}]");
        assert_eq!(got.sans, new.sans, "[{db}]");
        assert_eq!(got.profile, new.profile, "[{db}]");
        assert_eq!(got.not_before, new.not_before, "[{db}]");
        assert_eq!(got.not_after, new.not_after, "[{db}]");
        assert_eq!(got.requester, new.requester, "[{db}]");
        assert_eq!(got.der, new.der, "[{db}] DER bytes differ");
        let created = got.created_at.unix_timestamp();
        assert!(
            (before..=after).contains(&created),
            "[{db}] created_at {created} not in {before}..={after}"
        );
        assert_eq!(got.revoked_at, None, "[{db}]");
        assert_eq!(got.revocation_reason, None, "[{db}]");

        assert_eq!(store.count_certificates().await.unwrap(), 1, "[{db}]");
        assert_eq!(
            store.get_certificate("7fa3c902").await.unwrap(),
            None,
            "[{db}] unknown serial"
        );

        // The audit row was written in the same transaction.
        let log = store.list_audit(10).await.unwrap();
        assert_eq!(log.len(), 1, "[{db}] {log:?}");
        assert_eq!(log[0].action, "issue", "[{db}]");
        assert_eq!(log[0].serial.as_deref(), Some("7fa3c901"), "[{db}]");
        assert_eq!(log[0].detail, "profile=server", "[{db}]");
        assert_eq!(log[0].actor, "user:alice", "[{db}]");
        assert_eq!(log[0].outcome, "ok", "[{db}]");
        assert!(
            (before..=after).contains(&log[0].at.unix_timestamp()),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn empty_sans_round_trip() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let mut new = cert("0b");
        new.sans.clear();
        store
            .insert_certificate(&new, &audit("issue", Some("0b"), ""))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
        let got = store.get_certificate("0b").await.unwrap().unwrap();
        assert!(got.sans.is_empty(), "[{db}] {:?}", got.sans);
    }
}

#[tokio::test]
async fn duplicate_serial_is_conflict_and_writes_nothing() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(&cert("abcd"), &audit("issue", Some("abcd"), "first"))
            .await
            .unwrap_or_else(|e| panic!("[{db}] first insert: {e}"));

        let mut second = cert("abcd");
        second.subject = "CN=impostor".to_owned();
        let err = store
            .insert_certificate(&second, &audit("issue", Some("abcd"), "second"))
            .await
            .expect_err("duplicate serial must fail");
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "[{db}] expected Conflict, got {err:?}"
        );

        // The first row is untouched and the failed attempt's audit row is absent.
        let got = store.get_certificate("abcd").await.unwrap().unwrap();
        assert_eq!(got.subject, cert("abcd").subject, "[{db}]");
        let log = store.list_audit(10).await.unwrap();
        assert_eq!(log.len(), 1, "[{db}] {log:?}");
        assert_eq!(log[0].detail, "first", "[{db}]");
        let mut conn = raw(&db).await;
        assert_eq!(audit_count(&mut conn).await, 1, "[{db}]");

        // The store still works after the failed transaction.
        store
            .insert_certificate(&cert("abce"), &audit("issue", Some("abce"), "third"))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert after conflict: {e}"));
        assert_eq!(store.count_certificates().await.unwrap(), 2, "[{db}]");
    }
}

#[tokio::test]
async fn invalid_serials_are_rejected_before_sql() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        // Close the pool: if any of these reached the database they would
        // fail with Unavailable instead of InvalidSerial.
        store.close().await;
        let bad = [
            "",
            "0",
            "ABCD",
            "00ab",
            "abc",
            "xyz1",
            "01' OR '1'='1",
            "01; DROP TABLE certificates",
            "ffffffffffffffffffffffffffffffffffffffffff",
        ];
        for serial in bad {
            let e = store.get_certificate(serial).await.expect_err("get");
            assert!(
                matches!(e, StoreError::InvalidSerial(_)),
                "[{db}] get {serial:?}: {e:?}"
            );
            let e = store
                .insert_certificate(&cert(serial), &audit("issue", None, ""))
                .await
                .expect_err("insert");
            assert!(
                matches!(e, StoreError::InvalidSerial(_)),
                "[{db}] insert {serial:?}: {e:?}"
            );
            let e = store
                .revoke(serial, ts(1_700_000_100), 1, &audit("revoke", None, ""))
                .await
                .expect_err("revoke");
            assert!(
                matches!(e, StoreError::InvalidSerial(_)),
                "[{db}] revoke {serial:?}: {e:?}"
            );
        }
        let e = store
            .revoke("01", ts(1_700_000_100), 7, &audit("revoke", None, ""))
            .await
            .expect_err("reason 7");
        assert!(
            matches!(e, StoreError::InvalidRevocationReason(7)),
            "[{db}] {e:?}"
        );

        // And nothing was written.
        let reopened = Store::connect(db.url()).await.expect("reconnect");
        assert_eq!(reopened.count_certificates().await.unwrap(), 0, "[{db}]");
        assert!(reopened.list_audit(10).await.unwrap().is_empty(), "[{db}]");
    }
}

#[tokio::test]
async fn revoke_outcomes() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(&cert("1234"), &audit("issue", Some("1234"), ""))
            .await
            .unwrap();

        let first = store
            .revoke(
                "1234",
                ts(1_700_000_500),
                1,
                &audit("revoke", Some("1234"), "keyCompromise"),
            )
            .await
            .unwrap_or_else(|e| panic!("[{db}] revoke: {e}"));
        assert_eq!(first, RevokeOutcome::Revoked, "[{db}]");
        let got = store.get_certificate("1234").await.unwrap().unwrap();
        assert_eq!(got.revoked_at, Some(ts(1_700_000_500)), "[{db}]");
        assert_eq!(got.revocation_reason, Some(1), "[{db}]");

        // A second revocation does not overwrite the first, and writes no audit row.
        let second = store
            .revoke(
                "1234",
                ts(1_700_000_900),
                4,
                &audit("revoke", Some("1234"), "superseded"),
            )
            .await
            .unwrap();
        assert_eq!(second, RevokeOutcome::AlreadyRevoked, "[{db}]");
        let got = store.get_certificate("1234").await.unwrap().unwrap();
        assert_eq!(got.revoked_at, Some(ts(1_700_000_500)), "[{db}]");
        assert_eq!(got.revocation_reason, Some(1), "[{db}]");

        let missing = store
            .revoke(
                "5678",
                ts(1_700_000_900),
                0,
                &audit("revoke", Some("5678"), ""),
            )
            .await
            .unwrap();
        assert_eq!(missing, RevokeOutcome::NotFound, "[{db}]");
        assert_eq!(store.get_certificate("5678").await.unwrap(), None, "[{db}]");

        let log = store.list_audit(10).await.unwrap();
        let details: Vec<&str> = log.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(
            details,
            ["keyCompromise", ""],
            "[{db}] newest first: {log:?}"
        );
        assert_eq!(log[0].action, "revoke", "[{db}]");
        assert_eq!(log[1].action, "issue", "[{db}]");

        // Reason 10 (aACompromise), the largest code, round-trips.
        store
            .insert_certificate(&cert("99"), &audit("issue", Some("99"), ""))
            .await
            .unwrap();
        assert_eq!(
            store
                .revoke(
                    "99",
                    ts(1_700_001_000),
                    10,
                    &audit("revoke", Some("99"), "")
                )
                .await
                .unwrap(),
            RevokeOutcome::Revoked,
            "[{db}]"
        );
        let got = store.get_certificate("99").await.unwrap().unwrap();
        assert_eq!(got.revocation_reason, Some(10), "[{db}]");
    }
}

#[tokio::test]
async fn concurrent_revokes_revoke_once() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(&cert("42"), &audit("issue", Some("42"), ""))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.revoke(
                        "42",
                        ts(1_700_000_000 + i64::from(i)),
                        1,
                        &audit("revoke", Some("42"), "race"),
                    )
                    .await
                })
            })
            .collect();
        let mut revoked = 0;
        for t in tasks {
            match t
                .await
                .expect("join")
                .unwrap_or_else(|e| panic!("[{db}] revoke: {e}"))
            {
                RevokeOutcome::Revoked => revoked += 1,
                RevokeOutcome::AlreadyRevoked => {}
                RevokeOutcome::NotFound => panic!("[{db}] NotFound for an existing serial"),
            }
        }
        assert_eq!(revoked, 1, "[{db}] exactly one revoke wins");
        let races = store
            .list_audit(100)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.detail == "race")
            .count();
        assert_eq!(races, 1, "[{db}] one audit row for the winning revoke");
    }
}

#[tokio::test]
async fn audit_list_is_newest_first_and_limited() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        for i in 0..5 {
            store
                .append_audit(&AuditEntry {
                    actor: format!("actor{i}"),
                    action: "login".to_owned(),
                    serial: None,
                    outcome: if i % 2 == 0 { "ok" } else { "denied" }.to_owned(),
                    detail: format!("n={i}"),
                })
                .await
                .unwrap_or_else(|e| panic!("[{db}] append: {e}"));
        }
        let log = store.list_audit(3).await.unwrap();
        let details: Vec<&str> = log.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(details, ["n=4", "n=3", "n=2"], "[{db}]");
        assert!(
            log.windows(2).all(|w| w[0].id > w[1].id),
            "[{db}] ids descending"
        );
        assert_eq!(log[0].serial, None, "[{db}]");
        assert_eq!(log[1].outcome, "denied", "[{db}]");
        assert_eq!(store.list_audit(100).await.unwrap().len(), 5, "[{db}]");
        assert!(store.list_audit(0).await.unwrap().is_empty(), "[{db}]");
    }
}

#[tokio::test]
async fn audit_log_is_append_only() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .append_audit(&audit("issue", Some("01"), "original"))
            .await
            .unwrap();

        let mut conn = raw(&db).await;
        let upd = sqlx::query("UPDATE audit_log SET detail = 'tampered'")
            .execute(&mut conn)
            .await;
        let err = upd.expect_err("UPDATE on audit_log must fail");
        assert!(err.to_string().contains("append-only"), "[{db}] {err}");

        let del = sqlx::query("DELETE FROM audit_log")
            .execute(&mut conn)
            .await;
        let err = del.expect_err("DELETE on audit_log must fail");
        assert!(err.to_string().contains("append-only"), "[{db}] {err}");

        if store.backend() == Backend::Postgres {
            let trunc = sqlx::query("TRUNCATE audit_log").execute(&mut conn).await;
            let err = trunc.expect_err("TRUNCATE on audit_log must fail");
            assert!(err.to_string().contains("append-only"), "[{db}] {err}");
        }

        // Inserting is still allowed, and the original row is unchanged.
        store
            .append_audit(&audit("issue", None, "second"))
            .await
            .unwrap();
        let log = store.list_audit(10).await.unwrap();
        let details: Vec<&str> = log.iter().map(|r| r.detail.as_str()).collect();
        assert_eq!(details, ["second", "original"], "[{db}]");
        assert_eq!(audit_count(&mut conn).await, 2, "[{db}]");
    }
}

#[tokio::test]
async fn data_survives_reopen() {
    for db in TestDb::all().await {
        {
            let store = open(&db).await;
            store
                .insert_certificate(&cert("c0ffee"), &audit("issue", Some("c0ffee"), "kept"))
                .await
                .unwrap();
            store
                .revoke(
                    "c0ffee",
                    ts(1_700_000_777),
                    5,
                    &audit("revoke", Some("c0ffee"), ""),
                )
                .await
                .unwrap();
            store.close().await;
        }
        let store = open(&db).await;
        let got = store
            .get_certificate("c0ffee")
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("[{db}] certificate lost after reopen"));
        assert_eq!(got.der, cert("c0ffee").der, "[{db}]");
        assert_eq!(got.revoked_at, Some(ts(1_700_000_777)), "[{db}]");
        assert_eq!(got.revocation_reason, Some(5), "[{db}]");
        assert_eq!(store.list_audit(10).await.unwrap().len(), 2, "[{db}]");
    }
}

#[tokio::test]
async fn sqlite_file_settings() {
    use sqlx::Row;
    use std::os::unix::fs::PermissionsExt;

    let db = TestDb::sqlite().await;
    let path = db.sqlite_path().expect("sqlite path");
    assert!(!path.exists(), "file must not exist before connect");
    let store = open(&db).await;
    let mode = std::fs::metadata(&path)
        .expect("db file exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "db file mode {mode:o}");
    store
        .insert_certificate(&cert("01"), &audit("issue", Some("01"), ""))
        .await
        .unwrap();
    let wal = path.with_file_name("signet.db-wal");
    assert!(wal.exists(), "WAL file expected at {}", wal.display());
    let wal_mode = std::fs::metadata(&wal).unwrap().permissions().mode();
    assert_eq!(wal_mode & 0o077, 0, "WAL file mode {wal_mode:o}");

    // The PRAGMAs the store sets on its own connections, seen by a raw
    // connection on the same file: journal_mode is persistent, so WAL shows.
    let mut conn = raw(&db).await;
    let jm: String = sqlx::query("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(jm.to_lowercase(), "wal");
}

#[tokio::test]
async fn bad_urls_are_errors_not_panics() {
    assert!(matches!(
        Store::connect("mysql://localhost/x").await,
        Err(StoreError::InvalidUrl(_))
    ));
    assert!(matches!(
        Store::connect("").await,
        Err(StoreError::InvalidUrl(_))
    ));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let missing = format!("sqlite://{}/no/such/dir/x.db", dir.display());
    assert!(matches!(
        Store::connect(&missing).await,
        Err(StoreError::Io(_))
    ));
    // Nothing listens on this socket directory.
    let r = Store::connect(&format!("postgres://u@/db?host={}", dir.display())).await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}
