//! Every behaviour of the store, run against both SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditFilter, AuditOutcome, Backend, CertStatus, CertificateFilter,
    CertificateRecord, MAX_PAGE_SIZE, NewCertificate, RevokeOutcome, Store, StoreError,
};
use signet_testkit::TestDb;
use sqlx::Connection;
use time::OffsetDateTime;

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}

fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("valid timestamp")
}

fn cert(serial: &str) -> NewCertificate {
    // DER-like bytes including NUL, 0xff and bytes that are not UTF-8.
    let mut der = vec![0x30, 0x82, 0x01, 0x0a, 0x00, 0xff, 0xc3, 0x28, 0x00, 0x00];
    der.extend((0u8..=255).cycle().take(1500));
    NewCertificate {
        serial: sn(serial),
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
        crl_shard: None,
    }
}

fn audit(action: AuditAction, serial: Option<&str>, detail: &str) -> AuditEntry {
    AuditEntry {
        actor: "user:alice".to_owned(),
        action,
        serial: serial.map(sn),
        outcome: AuditOutcome::Ok,
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
    // A private cluster gives postgres:///postgres?host=<dir>&user=signet; the
    // libpq spelling postgres://signet@/postgres?host=<dir> must work too. A
    // private cluster also with DATABASE_URL set: a shared server's URL has
    // another shape, and the test must not pass by returning early.
    let db = TestDb::private_postgres().await;
    let url = db.url();
    let query = url
        .strip_prefix("postgres:///postgres?")
        .unwrap_or_else(|| panic!("not a socket URL: {url}"));
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
            .insert_certificate(&cert("01"), &audit(AuditAction::Issue, Some("01"), ""))
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
    a.insert_certificate(&cert("02"), &audit(AuditAction::Issue, Some("02"), ""))
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
            .insert_certificate(
                &new,
                &audit(AuditAction::Issue, Some("7fa3c901"), "profile=server"),
            )
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
        let after = OffsetDateTime::now_utc().unix_timestamp();

        let got = store
            .get_certificate(&sn("7fa3c901"))
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
            store.get_certificate(&sn("7fa3c902")).await.unwrap(),
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
            .insert_certificate(&new, &audit(AuditAction::Issue, Some("0b"), ""))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
        let got = store.get_certificate(&sn("0b")).await.unwrap().unwrap();
        assert!(got.sans.is_empty(), "[{db}] {:?}", got.sans);
    }
}

#[tokio::test]
async fn duplicate_serial_is_conflict_and_writes_nothing() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(
                &cert("abcd"),
                &audit(AuditAction::Issue, Some("abcd"), "first"),
            )
            .await
            .unwrap_or_else(|e| panic!("[{db}] first insert: {e}"));

        let mut second = cert("abcd");
        second.subject = "CN=impostor".to_owned();
        let err = store
            .insert_certificate(&second, &audit(AuditAction::Issue, Some("abcd"), "second"))
            .await
            .expect_err("duplicate serial must fail");
        assert!(
            matches!(err, StoreError::Conflict(_)),
            "[{db}] expected Conflict, got {err:?}"
        );

        // The first row is untouched and the failed attempt's audit row is absent.
        let got = store.get_certificate(&sn("abcd")).await.unwrap().unwrap();
        assert_eq!(got.subject, cert("abcd").subject, "[{db}]");
        let log = store.list_audit(10).await.unwrap();
        assert_eq!(log.len(), 1, "[{db}] {log:?}");
        assert_eq!(log[0].detail, "first", "[{db}]");
        let mut conn = raw(&db).await;
        assert_eq!(audit_count(&mut conn).await, 1, "[{db}]");

        // The store still works after the failed transaction.
        store
            .insert_certificate(
                &cert("abce"),
                &audit(AuditAction::Issue, Some("abce"), "third"),
            )
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert after conflict: {e}"));
        assert_eq!(store.count_certificates().await.unwrap(), 2, "[{db}]");
    }
}

/// Serials are typed at the store's boundary: a string that is no serial (empty, zero, not
/// hex, SQL, more than 20 octets) cannot even be handed to the store, and every spelling of
/// one that is (upper case, leading zero octets, an odd number of digits, colons) is stored
/// in the one spelling, minimal lowercase hex, as the database's own rows show.
#[tokio::test]
async fn serials_are_typed_and_stored_in_one_spelling() {
    for bad in [
        "",
        "0",
        "00",
        "xyz1",
        "01' OR '1'='1",
        "01; DROP TABLE certificates",
        "ffffffffffffffffffffffffffffffffffffffffff",
        // 20 octets with the top bit set: 21 once the sign octet is counted.
        "ffffffffffffffffffffffffffffffffffffffff",
    ] {
        assert!(Serial::from_hex(bad).is_err(), "{bad:?} is a serial");
    }
    for db in TestDb::all().await {
        let store = open(&db).await;
        let spellings = [
            ("ABCD", "abcd"),
            ("00ab", "ab"),
            ("abc", "0abc"),
            ("01:02", "0102"),
        ];
        for (given, _) in spellings {
            store
                .insert_certificate(&cert(given), &audit(AuditAction::Issue, Some(given), ""))
                .await
                .unwrap_or_else(|e| panic!("[{db}] insert {given:?}: {e}"));
        }
        let mut conn = raw(&db).await;
        for (given, stored) in spellings {
            use sqlx::Row;
            let row = sqlx::query("SELECT serial FROM certificates WHERE serial = $1")
                .bind(stored)
                .fetch_optional(&mut conn)
                .await
                .unwrap();
            assert!(row.is_some(), "[{db}] {given:?} not stored as {stored:?}");
            let audited: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE serial = $1")
                .bind(stored)
                .fetch_one(&mut conn)
                .await
                .unwrap()
                .try_get("n")
                .unwrap();
            assert_eq!(audited, 1, "[{db}] audit row of {given:?}");
            // Any spelling finds it; it reads back as the same serial.
            let got = store.get_certificate(&sn(given)).await.unwrap().unwrap();
            assert_eq!(got.serial.to_hex(), stored, "[{db}]");
        }
        assert_eq!(store.count_certificates().await.unwrap(), 4, "[{db}]");
        // A reason outside RFC 5280's table (7, 11...) cannot be passed at all: `revoke`
        // takes a RevocationReason (signet-pkix refuses such codes when parsing).
    }
}

#[tokio::test]
async fn revoke_outcomes() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(&cert("1234"), &audit(AuditAction::Issue, Some("1234"), ""))
            .await
            .unwrap();

        let first = store
            .revoke(
                &sn("1234"),
                ts(1_700_000_500),
                RevocationReason::KeyCompromise,
                &audit(AuditAction::Revoke, Some("1234"), "keyCompromise"),
            )
            .await
            .unwrap_or_else(|e| panic!("[{db}] revoke: {e}"));
        assert_eq!(first, RevokeOutcome::Revoked, "[{db}]");
        let got = store.get_certificate(&sn("1234")).await.unwrap().unwrap();
        assert_eq!(got.revoked_at, Some(ts(1_700_000_500)), "[{db}]");
        assert_eq!(
            got.revocation_reason,
            Some(RevocationReason::KeyCompromise),
            "[{db}]"
        );

        // A second revocation does not overwrite the first, and writes no audit row.
        let second = store
            .revoke(
                &sn("1234"),
                ts(1_700_000_900),
                RevocationReason::Superseded,
                &audit(AuditAction::Revoke, Some("1234"), "superseded"),
            )
            .await
            .unwrap();
        assert_eq!(second, RevokeOutcome::AlreadyRevoked, "[{db}]");
        let got = store.get_certificate(&sn("1234")).await.unwrap().unwrap();
        assert_eq!(got.revoked_at, Some(ts(1_700_000_500)), "[{db}]");
        assert_eq!(
            got.revocation_reason,
            Some(RevocationReason::KeyCompromise),
            "[{db}]"
        );

        let missing = store
            .revoke(
                &sn("5678"),
                ts(1_700_000_900),
                RevocationReason::Unspecified,
                &audit(AuditAction::Revoke, Some("5678"), ""),
            )
            .await
            .unwrap();
        assert_eq!(missing, RevokeOutcome::NotFound, "[{db}]");
        assert_eq!(
            store.get_certificate(&sn("5678")).await.unwrap(),
            None,
            "[{db}]"
        );

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
            .insert_certificate(&cert("99"), &audit(AuditAction::Issue, Some("99"), ""))
            .await
            .unwrap();
        assert_eq!(
            store
                .revoke(
                    &sn("99"),
                    ts(1_700_001_000),
                    RevocationReason::AaCompromise,
                    &audit(AuditAction::Revoke, Some("99"), "")
                )
                .await
                .unwrap(),
            RevokeOutcome::Revoked,
            "[{db}]"
        );
        let got = store.get_certificate(&sn("99")).await.unwrap().unwrap();
        assert_eq!(
            got.revocation_reason,
            Some(RevocationReason::AaCompromise),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn concurrent_revokes_revoke_once() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(&cert("42"), &audit(AuditAction::Issue, Some("42"), ""))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8u8)
            .map(|i| {
                let s = store.clone();
                tokio::spawn(async move {
                    s.revoke(
                        &sn("42"),
                        ts(1_700_000_000 + i64::from(i)),
                        RevocationReason::KeyCompromise,
                        &audit(AuditAction::Revoke, Some("42"), "race"),
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
                    action: AuditAction::parse("login"),
                    serial: None,
                    outcome: AuditOutcome::parse(if i % 2 == 0 { "ok" } else { "denied" }),
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
            .append_audit(&audit(AuditAction::Issue, Some("01"), "original"))
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
            .append_audit(&audit(AuditAction::Issue, None, "second"))
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
                .insert_certificate(
                    &cert("c0ffee"),
                    &audit(AuditAction::Issue, Some("c0ffee"), "kept"),
                )
                .await
                .unwrap();
            store
                .revoke(
                    &sn("c0ffee"),
                    ts(1_700_000_777),
                    RevocationReason::CessationOfOperation,
                    &audit(AuditAction::Revoke, Some("c0ffee"), ""),
                )
                .await
                .unwrap();
            store.close().await;
        }
        let store = open(&db).await;
        let got = store
            .get_certificate(&sn("c0ffee"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("[{db}] certificate lost after reopen"));
        assert_eq!(got.der, cert("c0ffee").der, "[{db}]");
        assert_eq!(got.revoked_at, Some(ts(1_700_000_777)), "[{db}]");
        assert_eq!(
            got.revocation_reason,
            Some(RevocationReason::CessationOfOperation),
            "[{db}]"
        );
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
        .insert_certificate(&cert("01"), &audit(AuditAction::Issue, Some("01"), ""))
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

// ---------------------------------------------------------------------------
// One-time tokens
// ---------------------------------------------------------------------------

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn in_an_hour() -> OffsetDateTime {
    now() + time::Duration::hours(1)
}

async fn used_token_count(conn: &mut sqlx::AnyConnection) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) AS n FROM used_tokens")
        .fetch_one(conn)
        .await
        .expect("count used tokens")
        .try_get("n")
        .expect("decode count")
}

#[tokio::test]
async fn consume_token_first_use_then_replay() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let exp = in_an_hour();
        assert!(
            store.consume_token("acme", "jti-1", exp).await.unwrap(),
            "[{db}] first use"
        );
        assert!(
            !store.consume_token("acme", "jti-1", exp).await.unwrap(),
            "[{db}] replay"
        );
        // A different expiry does not make it a different token.
        assert!(
            !store
                .consume_token("acme", "jti-1", exp + time::Duration::hours(1))
                .await
                .unwrap(),
            "[{db}] replay with another exp"
        );
        // Keys are per provisioner, and exact.
        assert!(
            store.consume_token("other", "jti-1", exp).await.unwrap(),
            "[{db}]"
        );
        assert!(
            store.consume_token("acme", "jti-2", exp).await.unwrap(),
            "[{db}]"
        );
        assert!(
            store.consume_token("acme", "JTI-1", exp).await.unwrap(),
            "[{db}] case"
        );
        assert!(
            store.consume_token("acme", "jti-1 ", exp).await.unwrap(),
            "[{db}] space"
        );
        // Wildcards and quotes are plain characters.
        for jti in ["%", "_", "jti-%", "'; DROP TABLE used_tokens; --", "é\"\\"] {
            assert!(
                store.consume_token("acme", jti, exp).await.unwrap(),
                "[{db}] {jti:?}"
            );
            assert!(
                !store.consume_token("acme", jti, exp).await.unwrap(),
                "[{db}] {jti:?}"
            );
        }

        // Committed and shared: another store (another process) sees it.
        let other = Store::connect(db.url()).await.expect("second store");
        assert!(
            !other.consume_token("acme", "jti-1", exp).await.unwrap(),
            "[{db}]"
        );
        assert!(
            !other.consume_token("other", "jti-1", exp).await.unwrap(),
            "[{db}]"
        );
        let mut conn = raw(&db).await;
        assert_eq!(used_token_count(&mut conn).await, 10, "[{db}]");

        // used_at and expires_at are recorded in seconds.
        use sqlx::Row;
        let row = sqlx::query(
            "SELECT expires_at, used_at FROM used_tokens WHERE provisioner = $1 AND jti = $2",
        )
        .bind("acme")
        .bind("jti-1")
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(
            row.try_get::<i64, _>("expires_at").unwrap(),
            exp.unix_timestamp(),
            "[{db}]"
        );
        let used_at: i64 = row.try_get("used_at").unwrap();
        assert!(
            (now().unix_timestamp() - used_at).abs() < 60,
            "[{db}] used_at {used_at}"
        );
    }
}

#[tokio::test]
async fn consume_token_concurrently_has_one_winner() {
    for db in TestDb::all().await {
        let a = open(&db).await;
        // Two independent pools, as two processes would have.
        let b = Store::connect(db.url()).await.expect("second store");
        let exp = in_an_hour();
        for round in 0..3 {
            let jti = format!("race-{round}");
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let s = if i % 2 == 0 { a.clone() } else { b.clone() };
                    let jti = jti.clone();
                    tokio::spawn(async move { s.consume_token("acme", &jti, exp).await })
                })
                .collect();
            let mut wins = 0;
            for t in tasks {
                if t.await
                    .expect("join")
                    .unwrap_or_else(|e| panic!("[{db}] consume: {e}"))
                {
                    wins += 1;
                }
            }
            assert_eq!(wins, 1, "[{db}] round {round}: exactly one first use");
        }
        let mut conn = raw(&db).await;
        assert_eq!(used_token_count(&mut conn).await, 3, "[{db}]");
    }
}

#[tokio::test]
async fn consume_token_rejects_invalid_input_before_sql() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        // Lengths are bytes: 128 two-byte characters are 256 bytes.
        let jti_max = "é".repeat(128);
        let prov_max = "p".repeat(128);
        assert!(
            store
                .consume_token(&prov_max, &jti_max, in_an_hour())
                .await
                .unwrap(),
            "[{db}] at the limits"
        );
        // Recently expired (within leeway) is still recorded.
        let recent = now() - time::Duration::seconds(60);
        assert!(
            store.consume_token("acme", "recent", recent).await.unwrap(),
            "[{db}]"
        );

        store.close().await;
        let long_jti = format!("{jti_max}x");
        let long_prov = "p".repeat(129);
        let cases: [(&str, &str, OffsetDateTime); 7] = [
            ("acme", "", in_an_hour()),
            ("acme", &long_jti, in_an_hour()),
            ("", "jti", in_an_hour()),
            (&long_prov, "jti", in_an_hour()),
            ("acme", "a\0b", in_an_hour()),
            ("ac\0me", "jti", in_an_hour()),
            ("acme", "old", now() - time::Duration::minutes(6)),
        ];
        for (prov, jti, exp) in cases {
            let e = store
                .consume_token(prov, jti, exp)
                .await
                .expect_err("must fail");
            assert!(
                matches!(e, StoreError::InvalidInput(_)),
                "[{db}] ({prov:?}, {jti:?}): {e:?}"
            );
        }
        let mut conn = raw(&db).await;
        assert_eq!(
            used_token_count(&mut conn).await,
            2,
            "[{db}] nothing else written"
        );
    }
}

#[tokio::test]
async fn consume_token_purges_long_expired_rows() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let t = now().unix_timestamp();
        let mut conn = raw(&db).await;
        for (jti, expires_at) in [
            ("ancient", t - 86_400),
            ("old", t - 11 * 60),
            ("grace", t - 9 * 60),
            ("live", t + 3600),
        ] {
            sqlx::query(
                "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind("acme")
            .bind(jti)
            .bind(expires_at)
            .bind(expires_at - 300)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("[{db}] raw insert: {e}"));
        }
        // A fresh store purges on its first consumption.
        let fresh = Store::connect(db.url()).await.expect("fresh store");
        assert!(
            fresh
                .consume_token("acme", "new", in_an_hour())
                .await
                .unwrap(),
            "[{db}]"
        );
        use sqlx::Row;
        let left: Vec<String> = sqlx::query("SELECT jti FROM used_tokens ORDER BY jti")
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get("jti").unwrap())
            .collect();
        assert_eq!(left, ["grace", "live", "new"], "[{db}]");
        // Still replay-protected after the purge.
        assert!(
            !fresh
                .consume_token("acme", "live", in_an_hour())
                .await
                .unwrap(),
            "[{db}]"
        );

        // The explicit purge reports how many rows it removed.
        sqlx::query(
            "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
             VALUES ('acme', 'stale', $1, $1)",
        )
        .bind(t - 3600)
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(store.purge_used_tokens().await.unwrap(), 1, "[{db}]");
        assert_eq!(store.purge_used_tokens().await.unwrap(), 0, "[{db}]");
        assert_eq!(used_token_count(&mut conn).await, 3, "[{db}]");
    }
}

// ---------------------------------------------------------------------------
// Certificate listing
// ---------------------------------------------------------------------------

fn cert_with(
    serial: &str,
    profile: &str,
    sans: &[&str],
    not_after: OffsetDateTime,
) -> NewCertificate {
    let mut c = cert(serial);
    c.profile = profile.to_owned();
    c.sans = sans.iter().map(|s| (*s).to_owned()).collect();
    c.not_before = now() - time::Duration::days(100);
    c.not_after = not_after;
    c
}

/// Sets created_at directly, so that the listing order is known.
async fn set_created_at(conn: &mut sqlx::AnyConnection, serial: &str, at: i64) {
    let n = sqlx::query("UPDATE certificates SET created_at = $1 WHERE serial = $2")
        .bind(at)
        .bind(serial)
        .execute(conn)
        .await
        .expect("set created_at")
        .rows_affected();
    assert_eq!(n, 1, "set created_at of {serial}");
}

async fn list(store: &Store, filter: CertificateFilter) -> Vec<String> {
    let page = store
        .list_certificates(&filter)
        .await
        .unwrap_or_else(|e| panic!("list {filter:?}: {e}"));
    assert_eq!(page.next_cursor, None, "{filter:?}: expected a single page");
    page.items.into_iter().map(|r| r.serial.to_hex()).collect()
}

/// Six certificates, created_at 1000 + i so the order is fixed:
/// 01 good/server, 02 good/client expiring in 2 days, 03 expired/server,
/// 04 revoked/server, 05 good/server with awkward SANs, 06 revoked and expired.
async fn listing_fixture(db: &TestDb, store: &Store) {
    let days = time::Duration::days;
    let certs = [
        cert_with(
            "01",
            "server",
            &["dns:a.example", "ip:10.0.0.1"],
            now() + days(30),
        ),
        cert_with("02", "client", &["dns:b.example"], now() + days(2)),
        cert_with("03", "server", &["dns:a.example"], now() - days(1)),
        cert_with("04", "server", &["dns:c.example"], now() + days(30)),
        cert_with(
            "05",
            "server",
            &[
                "a,",
                ",b",
                "uri:x\"y\\z",
                "dns:ünïcödé.example",
                "dns:dup",
                "dns:dup",
            ],
            now() + days(10),
        ),
        cert_with("06", "client", &["dns:b.example"], now() - days(3)),
    ];
    let mut conn = raw(db).await;
    for (i, c) in certs.iter().enumerate() {
        store
            .insert_certificate(c, &audit(AuditAction::Issue, Some(&c.serial.to_hex()), ""))
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert {}: {e}", c.serial));
        set_created_at(&mut conn, &c.serial.to_hex(), 1000 + i as i64).await;
    }
    for serial in ["04", "06"] {
        let r = store
            .revoke(
                &sn(serial),
                now(),
                RevocationReason::KeyCompromise,
                &audit(AuditAction::Revoke, Some(serial), ""),
            )
            .await
            .unwrap();
        assert_eq!(r, RevokeOutcome::Revoked, "[{db}]");
    }
}

#[tokio::test]
async fn list_certificates_filters() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        listing_fixture(&db, &store).await;
        let f = CertificateFilter::default;

        assert_eq!(
            list(&store, f()).await,
            ["06", "05", "04", "03", "02", "01"],
            "[{db}]"
        );
        let status = |s| CertificateFilter {
            status: Some(s),
            ..f()
        };
        assert_eq!(
            list(&store, status(CertStatus::Good)).await,
            ["05", "02", "01"],
            "[{db}]"
        );
        assert_eq!(
            list(&store, status(CertStatus::Expired)).await,
            ["03"],
            "[{db}]"
        );
        assert_eq!(
            list(&store, status(CertStatus::Revoked)).await,
            ["06", "04"],
            "[{db}]"
        );

        let profile = |p: &str| CertificateFilter {
            profile: Some(p.to_owned()),
            ..f()
        };
        assert_eq!(
            list(&store, profile("client")).await,
            ["06", "02"],
            "[{db}]"
        );
        assert_eq!(
            list(&store, profile("server")).await,
            ["05", "04", "03", "01"],
            "[{db}]"
        );
        assert!(
            list(&store, profile("Server")).await.is_empty(),
            "[{db}] case-sensitive"
        );

        let name = |n: &str| CertificateFilter {
            name: Some(n.to_owned()),
            ..f()
        };
        assert_eq!(
            list(&store, name("dns:a.example")).await,
            ["03", "01"],
            "[{db}]"
        );
        assert_eq!(list(&store, name("ip:10.0.0.1")).await, ["01"], "[{db}]");
        assert_eq!(
            list(&store, name("dns:b.example")).await,
            ["06", "02"],
            "[{db}]"
        );
        assert_eq!(list(&store, name("a,")).await, ["05"], "[{db}]");
        assert_eq!(list(&store, name(",b")).await, ["05"], "[{db}]");
        assert_eq!(list(&store, name("uri:x\"y\\z")).await, ["05"], "[{db}]");
        assert_eq!(
            list(&store, name("dns:ünïcödé.example")).await,
            ["05"],
            "[{db}]"
        );
        assert_eq!(
            list(&store, name("dns:dup")).await,
            ["05"],
            "[{db}] duplicate SAN listed once"
        );
        // Exact whole-element matches only: no substrings, no JSON text
        // spanning two elements, no case folding.
        for miss in [
            "dns:a.exampl",
            "a.example",
            "DNS:A.EXAMPLE",
            "dns:a.example ",
            ",",
            "\",\"",
            "a,\",\",b",
            "dns",
            "ip:10.0.0",
        ] {
            assert!(
                list(&store, name(miss)).await.is_empty(),
                "[{db}] name {miss:?}"
            );
        }

        let within = |d: u64| CertificateFilter {
            expiring_within: Some(Duration::from_secs(d * 86_400)),
            ..f()
        };
        assert_eq!(list(&store, within(3)).await, ["02"], "[{db}]");
        assert_eq!(list(&store, within(11)).await, ["05", "02"], "[{db}]");
        assert_eq!(
            list(&store, within(365)).await,
            ["05", "02", "01"],
            "[{db}] never revoked/expired"
        );
        assert!(list(&store, within(1)).await.is_empty(), "[{db}]");
        assert_eq!(
            list(
                &store,
                CertificateFilter {
                    expiring_within: Some(Duration::MAX),
                    ..f()
                }
            )
            .await,
            ["05", "02", "01"],
            "[{db}] huge duration saturates"
        );

        // Filters combine with AND.
        assert_eq!(
            list(
                &store,
                CertificateFilter {
                    status: Some(CertStatus::Good),
                    name: Some("dns:a.example".to_owned()),
                    ..f()
                }
            )
            .await,
            ["01"],
            "[{db}]"
        );
        assert!(
            list(
                &store,
                CertificateFilter {
                    profile: Some("server".to_owned()),
                    expiring_within: Some(Duration::from_secs(3 * 86_400)),
                    ..f()
                }
            )
            .await
            .is_empty(),
            "[{db}]"
        );
        assert!(
            list(
                &store,
                CertificateFilter {
                    status: Some(CertStatus::Revoked),
                    expiring_within: Some(Duration::from_secs(365 * 86_400)),
                    ..f()
                }
            )
            .await
            .is_empty(),
            "[{db}]"
        );

        // Items are full records whose status agrees with the filter.
        for s in [CertStatus::Good, CertStatus::Expired, CertStatus::Revoked] {
            let page = store.list_certificates(&status(s)).await.unwrap();
            let t = now();
            for r in &page.items {
                assert_eq!(r.status(t), s, "[{db}] {}", r.serial);
                let stored = store.get_certificate(&r.serial).await.unwrap().unwrap();
                assert_eq!(r, &stored, "[{db}]");
            }
        }
    }
}

#[tokio::test]
async fn list_certificates_paginates_without_gaps_or_duplicates() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let mut conn = raw(&db).await;
        // 25 certificates, several sharing a created_at (ties break on serial).
        let mut expected: Vec<(i64, String)> = Vec::new();
        for i in 0..25u32 {
            let serial = format!("{:02x}{:02x}", 0x10 + (i * 7) % 25, i);
            let profile = if i % 3 == 0 { "client" } else { "server" };
            store
                .insert_certificate(
                    &cert_with(
                        &serial,
                        profile,
                        &["dns:p.example"],
                        now() + time::Duration::days(30),
                    ),
                    &audit(AuditAction::Issue, Some(&serial), ""),
                )
                .await
                .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
            let at = 2000 + i64::from(i % 6);
            set_created_at(&mut conn, &serial, at).await;
            expected.push((at, serial));
        }
        expected.sort_by(|a, b| b.cmp(a));
        let expected: Vec<String> = expected.into_iter().map(|(_, s)| s).collect();

        for (limit, pages) in [
            (10, vec![10, 10, 5]),
            (5, vec![5, 5, 5, 5, 5]),
            (25, vec![25]),
            (24, vec![24, 1]),
        ] {
            let mut seen = Vec::new();
            let mut sizes = Vec::new();
            let mut cursor = None;
            loop {
                let page = store
                    .list_certificates(&CertificateFilter {
                        limit,
                        cursor: cursor.take(),
                        ..Default::default()
                    })
                    .await
                    .unwrap_or_else(|e| panic!("[{db}] page: {e}"));
                sizes.push(page.items.len());
                seen.extend(page.items.into_iter().map(|r| r.serial.to_hex()));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
                assert!(sizes.len() < 30, "[{db}] runaway pagination");
            }
            assert_eq!(sizes, pages, "[{db}] limit {limit}");
            assert_eq!(
                seen, expected,
                "[{db}] limit {limit}: order, gaps or duplicates"
            );
            let unique: HashSet<&String> = seen.iter().collect();
            assert_eq!(unique.len(), 25, "[{db}]");
        }

        // Pagination composes with filters.
        let mut cursor = None;
        let mut seen = Vec::new();
        loop {
            let page = store
                .list_certificates(&CertificateFilter {
                    profile: Some("server".to_owned()),
                    limit: 4,
                    cursor: cursor.take(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert!(page.items.len() <= 4, "[{db}]");
            seen.extend(page.items.into_iter().map(|r| r.serial.to_hex()));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let servers: Vec<String> = expected
            .iter()
            .filter(|s| {
                let i = u32::from_str_radix(&s[2..], 16).unwrap();
                i % 3 != 0
            })
            .cloned()
            .collect();
        assert_eq!(seen, servers, "[{db}]");

        // Limits are clamped to 1..=MAX_PAGE_SIZE.
        let one = store
            .list_certificates(&CertificateFilter {
                limit: 0,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(one.items.len(), 1, "[{db}]");
        assert!(one.next_cursor.is_some(), "[{db}]");
        let all = store
            .list_certificates(&CertificateFilter {
                limit: u32::MAX,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(all.items.len(), 25, "[{db}]");
        const { assert!(MAX_PAGE_SIZE >= 25) };

        // A well-formed cursor past the end gives an empty last page.
        let empty = store
            .list_certificates(&CertificateFilter {
                cursor: Some("0:01".to_owned()),
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(
            empty.items.is_empty() && empty.next_cursor.is_none(),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn list_certificates_rejects_bad_cursors_and_filters_before_sql() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store.close().await;
        let long = "x".repeat(1025);
        let mut bad: Vec<CertificateFilter> = [
            "",
            "abc",
            "1700000000",
            ":01",
            "1700000000:",
            "01700000000:01",
            "-1:01",
            "+1:01",
            " 1:01",
            "1:01 ",
            "1:00ff",
            "1:AB",
            "1:1",
            "1:01:02",
            "99999999999999999999:01",
            "1:01' OR '1'='1",
            "1700000000%3A01",
            "１:01",
        ]
        .iter()
        .map(|c| CertificateFilter {
            cursor: Some((*c).to_owned()),
            ..Default::default()
        })
        .collect();
        for v in ["", "a\0b", long.as_str()] {
            bad.push(CertificateFilter {
                profile: Some(v.to_owned()),
                ..Default::default()
            });
            bad.push(CertificateFilter {
                name: Some(v.to_owned()),
                ..Default::default()
            });
        }
        for filter in bad {
            let e = store
                .list_certificates(&filter)
                .await
                .expect_err("must fail");
            assert!(
                matches!(e, StoreError::InvalidInput(_)),
                "[{db}] {filter:?}: {e:?}"
            );
        }
    }
}

#[tokio::test]
async fn list_certificates_sql_metacharacters_match_literally() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        listing_fixture(&db, &store).await;
        let tricky_profile = "100%_off'; --";
        let tricky = cert_with(
            "77",
            tricky_profile,
            &["dns:%", "dns:_x", "dns:a\\b"],
            now() + time::Duration::days(5),
        );
        store
            .insert_certificate(&tricky, &audit(AuditAction::Issue, Some("77"), ""))
            .await
            .unwrap();

        let hostile = [
            "%",
            "_",
            "%%",
            "\\",
            "*",
            "server%",
            "serv_r",
            "dns:a.exampl_",
            "dns:%.example",
            "' OR '1'='1",
            "'; DROP TABLE certificates; --",
            "\"; DROP TABLE certificates; --",
            "$1",
            "dns:a.example\"]",
            "[\"dns:a.example\"]",
            "100%",
            "100\\%_off'; --",
        ];
        for v in hostile {
            let by_profile = list(
                &store,
                CertificateFilter {
                    profile: Some(v.to_owned()),
                    ..Default::default()
                },
            )
            .await;
            assert!(
                by_profile.is_empty(),
                "[{db}] profile {v:?}: {by_profile:?}"
            );
            let by_name = list(
                &store,
                CertificateFilter {
                    name: Some(v.to_owned()),
                    ..Default::default()
                },
            )
            .await;
            assert!(by_name.is_empty(), "[{db}] name {v:?}: {by_name:?}");
        }
        // Exact values with metacharacters match exactly their certificate.
        let exact = list(
            &store,
            CertificateFilter {
                profile: Some(tricky_profile.to_owned()),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(exact, ["77"], "[{db}]");
        for n in ["dns:%", "dns:_x", "dns:a\\b"] {
            let got = list(
                &store,
                CertificateFilter {
                    name: Some(n.to_owned()),
                    ..Default::default()
                },
            )
            .await;
            assert_eq!(got, ["77"], "[{db}] {n:?}");
        }
        // Nothing was broken.
        assert_eq!(store.count_certificates().await.unwrap(), 7, "[{db}]");
        assert_eq!(
            list(&store, CertificateFilter::default()).await.len(),
            7,
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn name_index_follows_sans_changes() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        store
            .insert_certificate(
                &cert_with("0abc", "server", &["dns:old.example"], in_an_hour()),
                &audit(AuditAction::Issue, Some("0abc"), ""),
            )
            .await
            .unwrap();
        let name = |n: &str| CertificateFilter {
            name: Some(n.to_owned()),
            ..Default::default()
        };
        assert_eq!(
            list(&store, name("dns:old.example")).await,
            ["0abc"],
            "[{db}]"
        );
        // The store never rewrites sans, but the index follows if anything does.
        let mut conn = raw(&db).await;
        sqlx::query("UPDATE certificates SET sans = $1 WHERE serial = $2")
            .bind(r#"["dns:new.example","dns:new.example"]"#)
            .bind("0abc")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("[{db}] update sans: {e}"));
        assert!(
            list(&store, name("dns:old.example")).await.is_empty(),
            "[{db}]"
        );
        assert_eq!(
            list(&store, name("dns:new.example")).await,
            ["0abc"],
            "[{db}]"
        );
        // Revocation (an UPDATE of other columns) leaves names alone.
        store
            .revoke(
                &sn("0abc"),
                now(),
                RevocationReason::Superseded,
                &audit(AuditAction::Revoke, Some("0abc"), ""),
            )
            .await
            .unwrap();
        assert_eq!(
            list(&store, name("dns:new.example")).await,
            ["0abc"],
            "[{db}]"
        );
    }
}

/// Certificates recorded before migration 0002 are found by name after it.
#[tokio::test]
async fn migration_0002_backfills_names() {
    for db in TestDb::all().await {
        // Apply only 0001, from a copy of the real file.
        let dir = tempfile::tempdir().expect("tempdir");
        let src = format!(
            "{}/../../migrations/{}/0001_initial.sql",
            env!("CARGO_MANIFEST_DIR"),
            db.name()
        );
        std::fs::copy(&src, dir.path().join("0001_initial.sql")).expect("copy 0001");
        let first = sqlx::migrate::Migrator::new(dir.path())
            .await
            .expect("load 0001");
        // The store creates the SQLite file; the raw connection needs it.
        let store = Store::connect(db.url()).await.expect("connect");
        let mut conn = raw(&db).await;
        first
            .run(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("[{db}] apply 0001: {e}"));

        // Rows as 0001 knew them, written with 0001's columns (the store's own INSERT names
        // columns of later migrations).
        for (serial, sans, created) in [
            (
                "01",
                r#"["dns:x.example","dns:x.example","ip:10.0.0.9"]"#,
                1_000i64,
            ),
            ("02", "[]", 1_001),
        ] {
            sqlx::query(
                "INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, \
                 profile, not_before, not_after, requester, der, created_at) \
                 VALUES ($1, 'CN=x', '00', '', $2, 'server', 0, $3, 'test', $4, $5)",
            )
            .bind(serial)
            .bind(sans)
            .bind(in_an_hour().unix_timestamp())
            .bind(vec![0x30u8, 0x00])
            .bind(created)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("[{db}] insert before 0002: {e}"));
        }

        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("[{db}] apply 0002: {e}"));
        let name = |n: &str| CertificateFilter {
            name: Some(n.to_owned()),
            ..Default::default()
        };
        assert_eq!(list(&store, name("dns:x.example")).await, ["01"], "[{db}]");
        assert_eq!(list(&store, name("ip:10.0.0.9")).await, ["01"], "[{db}]");
        assert_eq!(
            list(&store, CertificateFilter::default()).await,
            ["02", "01"],
            "[{db}]"
        );
        assert!(
            store
                .consume_token("acme", "after-0002", in_an_hour())
                .await
                .unwrap(),
            "[{db}]"
        );
    }
}

#[test]
fn status_helper_and_names() {
    let at = ts(1_700_000_000);
    let mut rec = CertificateRecord {
        serial: sn("01"),
        issuer: String::new(),
        issuer_key_id: String::new(),
        subject: String::new(),
        sans: Vec::new(),
        profile: String::new(),
        not_before: ts(1_600_000_000),
        not_after: at,
        requester: String::new(),
        der: Vec::new(),
        created_at: ts(1_600_000_000),
        revoked_at: None,
        revocation_reason: None,
    };
    assert_eq!(
        rec.status(at),
        CertStatus::Expired,
        "not_after == now is expired"
    );
    assert_eq!(
        rec.status(at - time::Duration::seconds(1)),
        CertStatus::Good
    );
    assert_eq!(
        rec.status(at + time::Duration::seconds(1)),
        CertStatus::Expired
    );
    rec.revoked_at = Some(at + time::Duration::days(1));
    rec.revocation_reason = Some(RevocationReason::KeyCompromise);
    assert_eq!(
        rec.status(at - time::Duration::days(5)),
        CertStatus::Revoked
    );
    assert_eq!(
        rec.status(at + time::Duration::days(5)),
        CertStatus::Revoked
    );

    for s in [CertStatus::Good, CertStatus::Revoked, CertStatus::Expired] {
        assert_eq!(s.as_str().parse::<CertStatus>().unwrap(), s);
        assert_eq!(s.to_string(), s.as_str());
    }
    for bad in ["", "Good", "GOOD", "valid", "good "] {
        assert!(
            matches!(bad.parse::<CertStatus>(), Err(StoreError::InvalidInput(_))),
            "{bad:?}"
        );
    }
    assert_eq!(
        CertificateFilter::default().limit,
        signet_store::DEFAULT_PAGE_SIZE
    );
}

/// Audit pages: every filter narrows, pages follow one another by id without a gap or a
/// repeat even while rows are appended, and bad filters are refused.
#[tokio::test]
async fn audit_pages_filter_and_follow_each_other() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let entry = |actor: &str, action: AuditAction, serial: Option<&str>, outcome| AuditEntry {
            actor: actor.to_owned(),
            action,
            serial: serial.map(sn),
            outcome,
            detail: String::new(),
        };
        for i in 0..25 {
            let actor = if i % 5 == 0 {
                "admin"
            } else {
                "token:default:svc"
            };
            let outcome = if i % 7 == 0 {
                AuditOutcome::Refused
            } else {
                AuditOutcome::Ok
            };
            let serial = format!("{:02x}", 0x40 + i);
            store
                .append_audit(&entry(actor, AuditAction::Issue, Some(&serial), outcome))
                .await
                .unwrap();
        }
        store
            .append_audit(&entry(
                "admin",
                AuditAction::Revoke,
                Some("41"),
                AuditOutcome::Ok,
            ))
            .await
            .unwrap();

        let all = |f: AuditFilter| {
            let store = &store;
            async move {
                let mut out = Vec::new();
                let mut f = f;
                loop {
                    let page = store.list_audit_page(&f).await.unwrap();
                    out.extend(page.items.iter().map(|r| r.id));
                    match page.next_before {
                        Some(b) => f.before = Some(b),
                        None => return out,
                    }
                }
            }
        };
        let ids = all(AuditFilter {
            limit: 4,
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(ids.len(), 26, "[{db}]");
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "[{db}] newest first, no repeat"
        );

        let by_serial = store
            .list_audit_page(&AuditFilter {
                serial: Some(sn("41")),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        let actions: Vec<&str> = by_serial.items.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["revoke", "issue"], "[{db}]");
        let admin_issues = all(AuditFilter {
            actor: Some("admin".into()),
            action: Some(AuditAction::Issue),
            limit: 2,
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(admin_issues.len(), 5, "[{db}]");
        let refused = store
            .list_audit_page(&AuditFilter {
                outcome: Some(AuditOutcome::Refused),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(refused.items.len(), 4, "[{db}]");
        assert!(refused.items.iter().all(|r| r.outcome == "refused"));

        // A page taken, rows appended, the next page: still no gap and no repeat.
        let first = store
            .list_audit_page(&AuditFilter {
                limit: 10,
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        store
            .append_audit(&entry("admin", AuditAction::Issue, None, AuditOutcome::Ok))
            .await
            .unwrap();
        let rest = all(AuditFilter {
            before: first.next_before,
            ..AuditFilter::default()
        })
        .await;
        assert_eq!(first.items.len() + rest.len(), 26, "[{db}]");

        // A serial filter is a Serial: `0041` is the serial 41, however it was spelled.
        let spelled = store
            .list_audit_page(&AuditFilter {
                serial: Some(sn("0041")),
                ..AuditFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(spelled.items, by_serial.items, "[{db}]");

        for bad in [
            AuditFilter {
                actor: Some(String::new()),
                ..AuditFilter::default()
            },
            AuditFilter {
                action: Some(AuditAction::parse("a\0b")),
                ..AuditFilter::default()
            },
        ] {
            assert!(
                matches!(
                    store.list_audit_page(&bad).await,
                    Err(StoreError::InvalidInput(_))
                ),
                "[{db}] {bad:?}"
            );
        }
    }
}
