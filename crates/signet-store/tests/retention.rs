//! Retention (issue 19, migration 0008): `Store::sweep_retention` takes certificates long
//! expired out of `certificates` and `certificate_names` (archived or deleted), in batches,
//! keeps every audit row and adds one, purges burnt token ids past their retention, and is
//! idempotent; on SQLite and PostgreSQL. Rows are checked with the database's own client
//! (sqlite3 / psql) as well as through the store.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::process::Command;

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, NewCertificate, RetentionMode, RevokeOutcome, Store,
};
use signet_testkit::TestDb;
use time::{Duration, OffsetDateTime};

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn serial(n: u32) -> Serial {
    Serial::from_hex(&format!("7e{n:06x}")).unwrap()
}

fn cert(n: u32, not_after: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        serial: serial(n),
        issuer: "CN=Test CA".to_owned(),
        issuer_key_id: "abcdef".to_owned(),
        subject: format!("CN=svc{n}"),
        // Two names each, one shared by every certificate.
        sans: vec![
            format!("dns:svc{n}.internal"),
            "dns:shared.internal".to_owned(),
        ],
        profile: "server".to_owned(),
        not_before: not_after - Duration::days(1),
        not_after,
        requester: "test".to_owned(),
        der: vec![0x30, 0x03, 0x02, 0x01, u8::try_from(n % 256).unwrap()],
        crl_shard: None,
    }
}

fn audit(action: AuditAction, n: Option<u32>) -> AuditEntry {
    AuditEntry {
        actor: "test".to_owned(),
        action,
        serial: n.map(serial),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

/// The population: which certificates a sweep with `expired_after` = 30 days must take.
struct Population {
    /// Expired more than 30 days ago (some revoked): must leave.
    old: BTreeSet<String>,
    /// Everything else (valid, expired recently, revoked and unexpired, revoked and
    /// recently expired): must stay.
    kept: BTreeSet<String>,
}

async fn fill(store: &Store, now: OffsetDateTime) -> Population {
    let mut old = BTreeSet::new();
    let mut kept = BTreeSet::new();
    // 25 long expired (91 to 115 days ago), every fifth revoked; 7 recently expired
    // (1 to 7 days ago), 2 of them revoked; 10 valid, 3 of them revoked; one exactly at the
    // edge (expired 30 days ago less a minute): kept.
    let mut n = 0;
    let mut add = |not_after: OffsetDateTime, revoke: bool, leaves: bool| {
        n += 1;
        (n, not_after, revoke, leaves)
    };
    let mut plan = Vec::new();
    for i in 0..25 {
        plan.push(add(now - Duration::days(91 + i), i % 5 == 0, true));
    }
    for i in 0..7 {
        plan.push(add(now - Duration::days(1 + i), i < 2, false));
    }
    for i in 0..10 {
        plan.push(add(now + Duration::days(1 + i), i < 3, false));
    }
    plan.push(add(
        now - Duration::days(30) + Duration::minutes(1),
        false,
        false,
    ));
    for (n, not_after, revoke, leaves) in plan {
        store
            .insert_certificate(&cert(n, not_after), &audit(AuditAction::Issue, Some(n)))
            .await
            .unwrap();
        if revoke {
            let outcome = store
                .revoke(
                    &serial(n),
                    now - Duration::days(120),
                    RevocationReason::KeyCompromise,
                    &audit(AuditAction::Revoke, Some(n)),
                )
                .await
                .unwrap();
            assert_eq!(outcome, RevokeOutcome::Revoked);
        }
        let hex = serial(n).to_string();
        if leaves {
            old.insert(hex);
        } else {
            kept.insert(hex);
        }
    }
    Population { old, kept }
}

fn lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// Runs `sql` with the database's own client and returns its output.
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

fn count(db: &TestDb, sql: &str) -> u64 {
    run_sql(db, sql).trim().parse().unwrap()
}

#[tokio::test]
async fn archive_takes_exactly_the_long_expired_certificates_in_batches() {
    for db in TestDb::all().await {
        let store = store(&db).await;
        let now = OffsetDateTime::now_utc();
        let pop = fill(&store, now).await;
        // Burnt tokens: one long expired (purged), one that could still be presented
        // within the clock-skew allowance (kept), one valid (kept).
        assert!(
            store
                .consume_token("p", "live", now + Duration::minutes(5))
                .await
                .unwrap()
        );
        assert!(
            store
                .consume_token("p", "recent", now - Duration::minutes(4))
                .await
                .unwrap()
        );
        run_sql(
            &db,
            &format!(
                "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
             VALUES ('p', 'ancient', {}, {})",
                (now - Duration::days(2)).unix_timestamp(),
                (now - Duration::days(2)).unix_timestamp()
            ),
        );
        let audit_before = count(&db, "SELECT COUNT(*) FROM audit_log");

        let swept = store
            .sweep_retention(now - Duration::days(30), RetentionMode::Archive, 10, "t")
            .await
            .unwrap();
        assert_eq!(swept.certificates, 25, "[{db}] {swept:?}");
        assert_eq!(swept.names, 50, "[{db}] two names each: {swept:?}");
        // 25 rows, 10 per transaction: 10 + 10 + 5.
        assert_eq!(swept.batches, 3, "[{db}] {swept:?}");
        assert_eq!(swept.used_tokens, 1, "[{db}] {swept:?}");

        // The hot table holds exactly the kept ones, the archive exactly the old ones,
        // revocations included.
        assert_eq!(
            lines(&run_sql(&db, "SELECT serial FROM certificates")),
            pop.kept,
            "[{db}]"
        );
        assert_eq!(
            lines(&run_sql(&db, "SELECT serial FROM certificates_archive")),
            pop.old,
            "[{db}]"
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM certificates_archive \
                 WHERE revoked_at IS NOT NULL AND revocation_reason = 1 \
                 AND revocation_seq IS NOT NULL"
            ),
            5,
            "[{db}] the archived revocations"
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM certificates_archive a WHERE archived_at < 1 OR length(der) <> 5"
            ),
            0,
            "[{db}]"
        );
        assert_eq!(store.count_archived_certificates().await.unwrap(), 25);
        // The names index follows: no row names a certificate that left; the kept ones keep
        // both of theirs.
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM certificate_names n \
                 WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = n.serial)"
            ),
            0,
            "[{db}]"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM certificate_names"),
            2 * pop.kept.len() as u64,
            "[{db}]"
        );
        for gone in &pop.old {
            assert!(
                store
                    .get_certificate(&Serial::from_hex(gone).unwrap())
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        // Burnt tokens: the ancient one is gone, the other two stay burnt.
        assert_eq!(
            lines(&run_sql(&db, "SELECT jti FROM used_tokens")),
            lines("live\nrecent"),
            "[{db}]"
        );
        assert!(
            !store
                .consume_token("p", "recent", now - Duration::minutes(4))
                .await
                .unwrap(),
            "[{db}] a token still presentable was un-burnt"
        );

        // Every audit row stays; exactly one is added, with the counts.
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM audit_log"),
            audit_before + 1,
            "[{db}]"
        );
        let newest = store.list_audit(1).await.unwrap().remove(0);
        assert_eq!(newest.action, AuditAction::RetentionSweep);
        assert_eq!(newest.actor, "t");
        assert!(
            newest.detail.starts_with("archived 25 certificates")
                && newest.detail.contains("50 names-index rows")
                && newest.detail.contains("3 batches"),
            "[{db}] {}",
            newest.detail
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM audit_log WHERE action = 'issue'"),
            43,
            "[{db}] the issue rows of swept certificates stay"
        );

        // Idempotent: nothing more to take, and no audit row for nothing.
        let again = store
            .sweep_retention(now - Duration::days(30), RetentionMode::Archive, 10, "t")
            .await
            .unwrap();
        assert_eq!((again.certificates, again.batches), (0, 0), "[{db}]");
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM audit_log"),
            audit_before + 1,
            "[{db}]"
        );
        assert_eq!(store.count_certificates().await.unwrap(), 18);

        // Revoking a swept serial finds nothing; the store keeps working.
        assert_eq!(
            store
                .revoke(
                    &Serial::from_hex(pop.old.first().unwrap()).unwrap(),
                    now,
                    RevocationReason::Superseded,
                    &audit(AuditAction::Revoke, None),
                )
                .await
                .unwrap(),
            RevokeOutcome::NotFound
        );
        store.close().await;
    }
}

#[tokio::test]
async fn delete_mode_archives_nothing_and_a_batch_exactly_full_ends_cleanly() {
    for db in TestDb::all().await {
        let store = store(&db).await;
        let now = OffsetDateTime::now_utc();
        let pop = fill(&store, now).await;
        // Batches of 5 over 25 rows: five full batches, then an empty one that ends the
        // sweep without counting.
        let swept = store
            .sweep_retention(now - Duration::days(30), RetentionMode::Delete, 5, "t")
            .await
            .unwrap();
        assert_eq!((swept.certificates, swept.batches), (25, 5), "[{db}]");
        assert_eq!(
            lines(&run_sql(&db, "SELECT serial FROM certificates")),
            pop.kept,
            "[{db}]"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM certificates_archive"),
            0,
            "[{db}]"
        );
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM certificate_names n \
                 WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = n.serial)"
            ),
            0,
            "[{db}]"
        );
        let newest = store.list_audit(1).await.unwrap().remove(0);
        assert!(
            newest.detail.starts_with("deleted 25 certificates"),
            "[{db}] {}",
            newest.detail
        );
        // A shorter expired_after then takes the recently expired ones too (7 and the edge
        // one), never a valid one.
        let swept = store
            .sweep_retention(now, RetentionMode::Delete, 1000, "t")
            .await
            .unwrap();
        assert_eq!(swept.certificates, 8, "[{db}]");
        assert_eq!(store.count_certificates().await.unwrap(), 10, "[{db}]");
        store.close().await;
    }
}

/// Two stores (two processes) sweeping the same database at once while revocations of the
/// long expired certificates race them: every one leaves exactly once (no archive conflict,
/// no error), and a revocation either commits first, and the archive holds it, or finds the
/// row gone (`NotFound`); none is lost between the copy and the delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweeps_and_racing_revocations_lose_nothing() {
    for db in TestDb::all().await {
        let a = store(&db).await;
        let b = Store::connect(db.url()).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let pop = fill(&a, now).await;
        let revoked_before = lines(&run_sql(
            &db,
            "SELECT serial FROM certificates WHERE revoked_at IS NOT NULL",
        ));
        let targets: Vec<String> = pop
            .old
            .iter()
            .filter(|s| !revoked_before.contains(*s))
            .cloned()
            .collect();
        assert_eq!(targets.len(), 20);
        let cutoff = now - Duration::days(30);
        let revoker = {
            let a = a.clone();
            let targets = targets.clone();
            async move {
                let mut revoked = BTreeSet::new();
                for hex in targets {
                    let outcome = a
                        .revoke(
                            &Serial::from_hex(&hex).unwrap(),
                            now,
                            RevocationReason::Superseded,
                            &audit(AuditAction::Revoke, None),
                        )
                        .await
                        .unwrap();
                    match outcome {
                        RevokeOutcome::Revoked => {
                            revoked.insert(hex);
                        }
                        RevokeOutcome::NotFound => {}
                        other => panic!("{hex}: {other:?}"),
                    }
                }
                revoked
            }
        };
        let (ra, rb, revoked) = tokio::join!(
            a.sweep_retention(cutoff, RetentionMode::Archive, 3, "a"),
            b.sweep_retention(cutoff, RetentionMode::Archive, 3, "b"),
            revoker
        );
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            ra.certificates + rb.certificates,
            25,
            "[{db}] {ra:?} {rb:?}"
        );
        assert_eq!(
            lines(&run_sql(&db, "SELECT serial FROM certificates_archive")),
            pop.old,
            "[{db}]"
        );
        assert_eq!(
            lines(&run_sql(&db, "SELECT serial FROM certificates")),
            pop.kept,
            "[{db}]"
        );
        // Reason 4 (superseded) was written only by the racing revocations: the archive
        // holds exactly the ones told Revoked.
        assert_eq!(
            lines(&run_sql(
                &db,
                "SELECT serial FROM certificates_archive WHERE revocation_reason = 4"
            )),
            revoked,
            "[{db}]"
        );
        a.close().await;
        b.close().await;
    }
}
