//! Retention through the real `signet serve` (issue 19): with `[retention] interval = "1s"`
//! the server's own sweep moves certificates whose notAfter lies more than `expired_after`
//! back into `certificates_archive`, with their names-index rows gone and one audit row
//! added, while valid certificates stay; the API then answers 404 for a swept serial and
//! OCSP (asked by `openssl ocsp`) `unknown`. The
//! database is read with the sqlite3 CLI, never through Signet.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use signet_testkit::TestDb;

mod common;
use common::db::psql;
use common::{Server, client, p, sqlite3};

#[tokio::test]
async fn serve_archives_long_expired_certificates_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // A first start makes the CA and writes signet.toml with every default.
    let first = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    drop(first);
    let db = data.join("signet.db");
    let config = data.join("signet.toml");
    let text = fs::read_to_string(&config).unwrap();
    let defaults = "[retention]\n";
    assert!(text.contains(defaults), "{text}");
    let defaults = "mode = \"archive\"\nexpired_after = \"30d\"\ninterval = \"1h\"\n";
    assert!(text.contains(defaults), "{text}");
    fs::write(
        &config,
        text.replace(
            defaults,
            "mode = \"archive\"\nexpired_after = \"30d\"\ninterval = \"1s\"\n",
        ),
    )
    .unwrap();

    // Two certificates expired 40 days ago (one of them revoked) and one that expired
    // 20 days ago, as rows copied from the server's own certificate with new serials.
    let kept_before: Vec<String> = sqlite3(&db, "SELECT serial FROM certificates ORDER BY serial");
    assert!(!kept_before.is_empty());
    for (serial, days, revoked) in [
        ("7a0001", 40, true),
        ("7a0002", 40, false),
        ("7a0003", 20, false),
    ] {
        let (revoked_at, reason) = if revoked {
            ("strftime('%s','now') - 50 * 86400", "1")
        } else {
            ("NULL", "NULL")
        };
        sqlite3(
            &db,
            &format!(
                "INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, \
                 not_before, not_after, requester, der, created_at, revoked_at, revocation_reason) \
                 SELECT '{serial}', issuer, issuer_key_id, subject, '[\"dns:old{serial}.internal\"]', \
                 profile, strftime('%s','now') - ({days} + 1) * 86400, \
                 strftime('%s','now') - {days} * 86400, requester, der, created_at, \
                 {revoked_at}, {reason} FROM certificates LIMIT 1"
            ),
        );
    }
    assert_eq!(
        sqlite3(
            &db,
            "SELECT COUNT(*) FROM certificate_names WHERE name LIKE 'dns:old%'"
        ),
        ["3"]
    );

    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if sqlite3(&db, "SELECT COUNT(*) FROM certificates_archive") == ["2"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing archived within 30 s: {}",
            server.log_tail()
        );
        server.alive();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        sqlite3(
            &db,
            "SELECT serial, revocation_reason FROM certificates_archive ORDER BY serial"
        ),
        ["7a0001|1", "7a0002|"]
    );
    assert_eq!(
        sqlite3(
            &db,
            "SELECT name FROM certificate_names WHERE name LIKE 'dns:old%'"
        ),
        ["dns:old7a0003.internal"]
    );
    let now: Vec<String> = sqlite3(
        &db,
        "SELECT serial FROM certificates WHERE serial NOT LIKE '7a000%' ORDER BY serial",
    );
    // Every certificate of the first start (and any the second start issued itself) stays.
    for serial in &kept_before {
        assert!(now.contains(serial), "{serial} left: {now:?}");
    }
    assert_eq!(
        sqlite3(
            &db,
            "SELECT serial FROM certificates WHERE serial LIKE '7a000%'"
        ),
        ["7a0003"]
    );
    let audit = sqlite3(
        &db,
        "SELECT actor || '|' || outcome || '|' || detail FROM audit_log \
         WHERE action = 'retention-sweep'",
    );
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("signet-serve|ok|archived 2 certificates"),
        "{audit:?}"
    );

    // The API no longer knows the swept serial; it still knows the kept one.
    let https = client(&data.join("root_ca.crt"));
    let gone = https
        .get(server.url("/v1/certificates/7a0001"))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let kept = https
        .get(server.url("/v1/certificates/7a0003"))
        .send()
        .await
        .unwrap();
    assert_eq!(kept.status(), 200);
    assert!(
        server
            .log()
            .contains("retention: expired certificates left the hot tables"),
        "{}",
        server.log_tail()
    );

    // OCSP, asked by openssl by serial: the swept serial is unknown, the kept one (expired,
    // never revoked) good; the responses verify against the root.
    let chain = tmp.path().join("chain.pem");
    fs::write(
        &chain,
        format!(
            "{}{}",
            fs::read_to_string(data.join("root_ca.crt")).unwrap(),
            fs::read_to_string(data.join("issuing_ca.crt")).unwrap()
        ),
    )
    .unwrap();
    for (serial, status) in [("7a0001", "unknown"), ("7a0003", "good")] {
        let out = Command::new("openssl")
            .args(["ocsp", "-issuer", p(&data.join("issuing_ca.crt"))])
            .args(["-serial", &format!("0x{serial}")])
            .args(["-url", &server.ocsp_url("/ocsp"), "-CAfile", p(&chain)])
            .output()
            .expect("the openssl CLI must be installed (apt-get install openssl)");
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{said}");
        assert!(said.contains("Response verify OK"), "{said}");
        assert!(
            said.to_ascii_lowercase()
                .contains(&format!("0x{serial}: {status}")),
            "{serial}: {said}"
        );
    }

    // Later sweeps (one a second) find nothing more and write no audit row.
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.alive();
    assert_eq!(
        sqlite3(
            &db,
            "SELECT COUNT(*) FROM audit_log WHERE action = 'retention-sweep'"
        ),
        ["1"]
    );
}

/// Two `signet serve` replicas of one CA on one PostgreSQL database, each sweeping every
/// second under the `retention` leadership: the long expired rows are archived once (no
/// conflict, no error in either log), the rest stay, and exactly one `retention-sweep`
/// audit row is written (a sweep that finds nothing writes none). Read with psql.
#[tokio::test]
async fn two_replicas_on_postgresql_archive_once() {
    let db = TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("SIGNET_DATABASE_URL", db.url())];
    let o = common::signet_in(tmp.path(), &env, &["init", "--dir", p(&data)], "");
    assert!(o.status.success(), "{}", common::text(&o));
    let config = data.join("signet.toml");
    let text = fs::read_to_string(&config).unwrap();
    let defaults = "mode = \"archive\"\nexpired_after = \"30d\"\ninterval = \"1h\"\n";
    assert!(text.contains(defaults), "{text}");
    fs::write(
        &config,
        text.replace(
            defaults,
            "mode = \"archive\"\nexpired_after = \"30d\"\ninterval = \"1s\"\n",
        ),
    )
    .unwrap();
    let copy = tmp.path().join("copy");
    let o = Command::new("cp")
        .args(["-a", p(&data), p(&copy)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::text(&o));

    // The first replica makes its own certificate; then 30 rows expired 40 days ago (every
    // third revoked) and one expired 20 days ago, copied from it with new serials.
    let mut first = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    first.alive();
    // One statement, so a sweep sees all of them or none.
    psql(
        db.url(),
        "INSERT INTO certificates (serial, issuer, issuer_key_id, subject, sans, profile, \
         not_before, not_after, requester, der, created_at, revoked_at, revocation_reason) \
         SELECT '7b' || lpad(to_hex(i), 4, '0'), c.issuer, c.issuer_key_id, c.subject, \
         '[\"dns:old' || i || '.internal\"]', c.profile, \
         EXTRACT(EPOCH FROM now())::bigint - 41 * 86400, \
         EXTRACT(EPOCH FROM now())::bigint - (CASE WHEN i = 30 THEN 20 ELSE 40 END) * 86400, \
         c.requester, c.der, c.created_at, \
         CASE WHEN i % 3 = 0 AND i <> 30 THEN EXTRACT(EPOCH FROM now())::bigint - 50 * 86400 END, \
         CASE WHEN i % 3 = 0 AND i <> 30 THEN 1 END \
         FROM generate_series(0, 30) AS i, (SELECT * FROM certificates LIMIT 1) AS c",
    );
    let mut second = Server::start(tmp.path(), &env, &["--dir", p(&copy)]).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    while psql(db.url(), "SELECT COUNT(*) FROM certificates_archive") != ["30"] {
        assert!(
            Instant::now() < deadline,
            "not archived within 30 s:\n{}\n{}",
            first.log_tail(),
            second.log_tail()
        );
        first.alive();
        second.alive();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A few more sweeps by both.
    tokio::time::sleep(Duration::from_secs(3)).await;
    first.alive();
    second.alive();
    assert_eq!(
        psql(
            db.url(),
            "SELECT COUNT(*) FROM certificates_archive WHERE revocation_reason = 1"
        ),
        ["10"]
    );
    assert_eq!(
        psql(
            db.url(),
            "SELECT serial FROM certificates WHERE serial LIKE '7b%'"
        ),
        ["7b001e"]
    );
    assert_eq!(
        psql(
            db.url(),
            "SELECT name FROM certificate_names WHERE name LIKE 'dns:old%'"
        ),
        ["dns:old30.internal"]
    );
    let audit = psql(
        db.url(),
        "SELECT detail FROM audit_log WHERE action = 'retention-sweep'",
    );
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(
        audit[0].starts_with("archived 30 certificates"),
        "{audit:?}"
    );
    for server in [&first, &second] {
        assert!(
            !server.log().contains("retention: the sweep failed"),
            "{}",
            server.log_tail()
        );
    }
}
