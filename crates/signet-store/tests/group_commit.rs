//! Group commit: concurrent writes share transactions, on both backends.
//!
//! Every test checks what callers were told against what a *separate* pool
//! reads back, so an acknowledged row that was not committed would show.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use signet_pkix::Serial;
use signet_store::{AuditAction, AuditEntry, AuditOutcome, NewCertificate, Store, StoreError};
use signet_testkit::TestDb;
use time::OffsetDateTime;
use tokio::task::JoinSet;

fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).expect("valid timestamp")
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}

fn cert(serial: &str) -> NewCertificate {
    NewCertificate {
        serial: sn(serial),
        issuer: "CN=Signet Intermediate CA".to_owned(),
        issuer_key_id: "a1b2c3".to_owned(),
        subject: format!("CN={serial}.example"),
        sans: vec![
            format!("dns:{serial}.example"),
            "dns:shared.example".to_owned(),
        ],
        profile: "server".to_owned(),
        not_before: ts(1_700_000_000),
        not_after: ts(4_000_000_000),
        requester: "token:default:test".to_owned(),
        der: serial.as_bytes().repeat(40),
        crl_shard: None,
    }
}

fn audit(serial: &str) -> AuditEntry {
    AuditEntry {
        actor: "token:default:test".to_owned(),
        action: AuditAction::Issue,
        serial: Some(sn(serial)),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

fn serial(i: usize) -> String {
    format!("7f{i:06x}")
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(db.url())
        .await
        .unwrap_or_else(|e| panic!("[{db}] connect: {e}"));
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("[{db}] migrate: {e}"));
    store
}

async fn audit_rows_for(reader: &Store, serial: &str) -> usize {
    reader
        .list_audit(100_000)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.serial.as_deref() == Some(serial))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_all_land_and_are_visible_on_return() {
    const N: usize = 600;
    for db in TestDb::all().await {
        let store = open(&db).await;
        // A second pool: it sees only what is committed.
        let reader = Store::connect(db.url()).await.unwrap();
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let store = store.clone();
            let reader = reader.clone();
            tasks.spawn(async move {
                let s = serial(i);
                store.insert_certificate(&cert(&s), &audit(&s)).await?;
                // Committed by the time the call returned.
                let got = reader.get_certificate(&sn(&s)).await?;
                Ok::<_, StoreError>((s, got))
            });
        }
        let mut done = 0;
        while let Some(joined) = tasks.join_next().await {
            let (s, got) = joined
                .unwrap()
                .unwrap_or_else(|e| panic!("[{db}] insert: {e}"));
            let got = got.unwrap_or_else(|| panic!("[{db}] {s} not visible after Ok"));
            assert_eq!(got.der, cert(&s).der, "[{db}] {s}");
            assert_eq!(got.sans, cert(&s).sans, "[{db}] {s}");
            done += 1;
        }
        assert_eq!(done, N);
        assert_eq!(
            reader.count_certificates().await.unwrap(),
            N as u64,
            "[{db}]"
        );
        assert_eq!(reader.list_audit(100_000).await.unwrap().len(), N, "[{db}]");
        // The name index (kept by triggers) followed the multi-row insert.
        let shared = reader
            .list_certificates(&signet_store::CertificateFilter {
                name: Some("dns:shared.example".to_owned()),
                limit: 500,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(shared.items.len(), 500, "[{db}]");
        assert!(shared.next_cursor.is_some(), "[{db}]");
        store.close().await;
        reader.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_fails_only_itself() {
    const N: usize = 300;
    for db in TestDb::all().await {
        let store = open(&db).await;
        let reader = Store::connect(db.url()).await.unwrap();
        store
            .insert_certificate(&cert("dd"), &audit("dd"))
            .await
            .unwrap();

        // Many concurrent inserts, among them a copy of a stored serial
        // ("dd") and a serial sent twice at once ("ee").
        let mut serials: Vec<String> = (0..N).map(serial).collect();
        serials.insert(N / 3, "dd".to_owned());
        serials.insert(N / 2, "ee".to_owned());
        serials.insert(N / 2 + 7, "ee".to_owned());
        let mut tasks = JoinSet::new();
        for s in serials {
            let store = store.clone();
            tasks.spawn(async move {
                let r = store.insert_certificate(&cert(&s), &audit(&s)).await;
                (s, r)
            });
        }
        let mut outcomes: HashMap<String, Vec<Result<(), StoreError>>> = HashMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (s, r) = joined.unwrap();
            outcomes.entry(s).or_default().push(r);
        }
        for (s, rs) in &outcomes {
            match s.as_str() {
                "dd" => assert!(
                    matches!(rs.as_slice(), [Err(StoreError::Conflict(_))]),
                    "[{db}] dd: {rs:?}"
                ),
                "ee" => {
                    let ok = rs.iter().filter(|r| r.is_ok()).count();
                    let conflict = rs
                        .iter()
                        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
                        .count();
                    assert_eq!((ok, conflict), (1, 1), "[{db}] ee: {rs:?}");
                }
                _ => assert!(matches!(rs.as_slice(), [Ok(())]), "[{db}] {s}: {rs:?}"),
            }
        }
        // Everything but the duplicates landed, with one audit row each.
        assert_eq!(
            reader.count_certificates().await.unwrap(),
            N as u64 + 2,
            "[{db}]"
        );
        assert_eq!(audit_rows_for(&reader, "dd").await, 1, "[{db}]");
        assert_eq!(audit_rows_for(&reader, "ee").await, 1, "[{db}]");
        assert_eq!(
            reader.list_audit(100_000).await.unwrap().len(),
            N + 2,
            "[{db}]"
        );
        // The conflict message names the serial, as before group commit.
        let e = store
            .insert_certificate(&cert("dd"), &audit("dd"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("serial dd"), "[{db}] {e}");
        store.close().await;
        reader.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_and_audits_are_batched_correctly() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let reader = Store::connect(db.url()).await.unwrap();
        let exp = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        // 200 distinct tokens, one token presented 50 times, plus refusals'
        // audit rows and certificates, all at once.
        let mut tasks = JoinSet::new();
        for i in 0..200 {
            let store = store.clone();
            tasks.spawn(async move {
                let first = store
                    .consume_token("default", &format!("jti-{i}"), exp)
                    .await?;
                Ok::<_, StoreError>(("distinct", first))
            });
        }
        for _ in 0..50 {
            let store = store.clone();
            tasks.spawn(async move {
                let first = store.consume_token("default", "replayed", exp).await?;
                Ok(("same", first))
            });
        }
        for i in 0..100 {
            let store = store.clone();
            tasks.spawn(async move {
                store
                    .append_audit(&AuditEntry {
                        actor: "anonymous".to_owned(),
                        action: AuditAction::Issue,
                        serial: None,
                        outcome: AuditOutcome::Refused,
                        detail: format!("refusal {i}"),
                    })
                    .await?;
                Ok(("audit", true))
            });
        }
        for i in 0..100 {
            let store = store.clone();
            tasks.spawn(async move {
                let s = serial(i);
                store.insert_certificate(&cert(&s), &audit(&s)).await?;
                Ok(("cert", true))
            });
        }
        let mut firsts: HashMap<&str, (usize, usize)> = HashMap::new();
        while let Some(joined) = tasks.join_next().await {
            let (kind, first) = joined.unwrap().unwrap_or_else(|e| panic!("[{db}] {e}"));
            let e = firsts.entry(kind).or_default();
            if first {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        assert_eq!(firsts["distinct"], (200, 0), "[{db}]");
        assert_eq!(firsts["same"], (1, 49), "[{db}] exactly one first use");
        assert_eq!(firsts["audit"], (100, 0), "[{db}]");
        assert_eq!(firsts["cert"], (100, 0), "[{db}]");
        // All committed: replays are seen from another pool too.
        for i in [0, 99, 199] {
            assert!(
                !reader
                    .consume_token("default", &format!("jti-{i}"), exp)
                    .await
                    .unwrap(),
                "[{db}] jti-{i} must be used already"
            );
        }
        assert_eq!(
            reader.list_audit(100_000).await.unwrap().len(),
            200,
            "[{db}]"
        );
        assert_eq!(reader.count_certificates().await.unwrap(), 100, "[{db}]");
        store.close().await;
        reader.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn close_flushes_and_never_loses_an_acknowledged_row() {
    const N: usize = 400;
    for db in TestDb::all().await {
        let store = open(&db).await;
        let reader = Store::connect(db.url()).await.unwrap();
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let store = store.clone();
            tasks.spawn(async move {
                let s = serial(i);
                (
                    s.clone(),
                    store.insert_certificate(&cert(&s), &audit(&s)).await,
                )
            });
        }
        // Close while inserts are queued and in flight.
        tokio::task::yield_now().await;
        store.close().await;
        let mut acknowledged = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            match joined.unwrap() {
                (s, Ok(())) => acknowledged.push(s),
                (_, Err(StoreError::Unavailable(_))) => {}
                (s, Err(e)) => panic!("[{db}] {s}: unexpected {e:?}"),
            }
        }
        for s in &acknowledged {
            assert!(
                reader.get_certificate(&sn(s)).await.unwrap().is_some(),
                "[{db}] {s} acknowledged but not stored"
            );
        }
        assert_eq!(
            reader.count_certificates().await.unwrap(),
            acknowledged.len() as u64,
            "[{db}] a row was stored without being acknowledged (or the reverse)"
        );
        // After close, a write fails rather than hanging or succeeding.
        assert!(matches!(
            store.insert_certificate(&cert("0c"), &audit("0c")).await,
            Err(StoreError::Unavailable(_))
        ));
        reader.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropping_the_store_drains_the_queue() {
    const N: usize = 300;
    for db in TestDb::all().await {
        let store = open(&db).await;
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let store = store.clone();
            tasks.spawn(async move {
                let s = serial(i);
                store.insert_certificate(&cert(&s), &audit(&s)).await
            });
        }
        drop(store);
        while let Some(joined) = tasks.join_next().await {
            joined.unwrap().unwrap_or_else(|e| panic!("[{db}] {e}"));
        }
        let reader = Store::connect(db.url()).await.unwrap();
        assert_eq!(
            reader.count_certificates().await.unwrap(),
            N as u64,
            "[{db}]"
        );
        reader.close().await;
    }
}

/// A store made on one runtime keeps working from another after the first
/// is gone (the dispatcher lives on the runtime of the first write).
#[test]
fn survives_the_runtime_that_started_the_writer() {
    let db_rt = tokio::runtime::Runtime::new().unwrap();
    let db = db_rt.block_on(TestDb::sqlite());
    let store = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = open(&db).await;
            store
                .insert_certificate(&cert("01"), &audit("01"))
                .await
                .unwrap();
            store
        })
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        store
            .insert_certificate(&cert("02"), &audit("02"))
            .await
            .unwrap();
        assert_eq!(store.count_certificates().await.unwrap(), 2);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn certificate_with_token_is_one_transaction() {
    const N: usize = 200;
    for db in TestDb::all().await {
        let store = open(&db).await;
        let reader = Store::connect(db.url()).await.unwrap();
        let exp = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        // A token used before: its certificate must not be written.
        assert!(store.consume_token("default", "used", exp).await.unwrap());
        let mut tasks = JoinSet::new();
        for i in 0..N {
            let store = store.clone();
            tasks.spawn(async move {
                let s = serial(i);
                // Every 50th reuses the old token; i = 7 and 8 share one.
                let jti = match i {
                    _ if i % 50 == 0 => "used".to_owned(),
                    7 | 8 => "shared".to_owned(),
                    _ => format!("t{i}"),
                };
                let r = store
                    .insert_certificate_with_token("default", &jti, exp, &cert(&s), &audit(&s))
                    .await;
                (i, s, r)
            });
        }
        let mut recorded = 0;
        let mut shared_wins = 0;
        while let Some(joined) = tasks.join_next().await {
            let (i, s, r) = joined.unwrap();
            let first = r.unwrap_or_else(|e| panic!("[{db}] {s}: {e}"));
            let stored = reader.get_certificate(&sn(&s)).await.unwrap().is_some();
            assert_eq!(first, stored, "[{db}] {s}: answer and database disagree");
            match i {
                _ if i % 50 == 0 => assert!(!first, "[{db}] replayed token accepted"),
                7 | 8 => shared_wins += usize::from(first),
                _ => assert!(first, "[{db}] {s} refused"),
            }
            recorded += usize::from(first);
        }
        assert_eq!(
            shared_wins, 1,
            "[{db}] one of two calls sharing a token wins"
        );
        assert_eq!(recorded, N - N / 50 - 1, "[{db}]");
        assert_eq!(reader.count_certificates().await.unwrap(), recorded as u64);
        assert_eq!(reader.list_audit(100_000).await.unwrap().len(), recorded);
        // A duplicate serial is a conflict and leaves its token unused.
        let e = store
            .insert_certificate_with_token(
                "default",
                "fresh",
                exp,
                &cert(&serial(1)),
                &audit(&serial(1)),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Conflict(_)), "[{db}] {e:?}");
        assert!(store.consume_token("default", "fresh", exp).await.unwrap());
        store.close().await;
        reader.close().await;
    }
}
