//! The store's revocation publishing support (migration 0003), on SQLite and PostgreSQL:
//! CRL numbers, stored CRLs, CRL entries, OCSP status lookups, the revocation sequence and
//! its notices, and the OCSP signer hand-off.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::Duration;

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, NewCertificate, NewCrl, OcspSignerRequestState,
    RevokeOutcome, ScopedCrl, Store, StoreError,
};
use signet_testkit::TestDb;
use time::OffsetDateTime;

const KEY_ID: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334";

fn ts(secs: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(secs).unwrap()
}

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn cert(serial: &str, key_id: &str, not_after: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        serial: sn(serial),
        issuer: "CN=Signet Issuing CA".to_owned(),
        issuer_key_id: key_id.to_owned(),
        subject: format!("CN={serial}.internal"),
        sans: vec![format!("dns:{serial}.internal")],
        profile: "server".to_owned(),
        not_before: ts(1_700_000_000),
        not_after,
        requester: "test".to_owned(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        crl_shard: None,
    }
}

fn audit(action: AuditAction, serial: &str) -> AuditEntry {
    AuditEntry {
        actor: "test".to_owned(),
        action,
        serial: Some(sn(serial)),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
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

async fn add(store: &Store, serial: &str, not_after: OffsetDateTime) {
    store
        .insert_certificate(
            &cert(serial, KEY_ID, not_after),
            &audit(AuditAction::Issue, serial),
        )
        .await
        .unwrap();
}

async fn revoke(store: &Store, serial: &str, at: i64, reason: u8) -> RevokeOutcome {
    store
        .revoke(
            &sn(serial),
            ts(at),
            RevocationReason::from_code(reason).unwrap(),
            &audit(AuditAction::Revoke, serial),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn certificate_status_is_a_narrow_lookup() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let later = now() + Duration::from_secs(3600);
        add(&store, "0a01", later).await;
        assert_eq!(
            store.certificate_status(&sn("0b02")).await.unwrap(),
            None,
            "[{db}]"
        );
        let good = store
            .certificate_status(&sn("0a01"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(good.issuer_key_id, KEY_ID, "[{db}]");
        assert_eq!(good.not_after.unix_timestamp(), later.unix_timestamp());
        assert_eq!((good.revoked_at, good.reason), (None, None), "[{db}]");
        assert_eq!(
            revoke(&store, "0a01", 1_700_000_100, 1).await,
            RevokeOutcome::Revoked
        );
        let revoked = store
            .certificate_status(&sn("0a01"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.revoked_at, Some(ts(1_700_000_100)), "[{db}]");
        assert_eq!(
            revoked.reason,
            Some(RevocationReason::KeyCompromise),
            "[{db}]"
        );
        // The lookup is by serial, however it was spelled.
        assert_eq!(
            store.certificate_status(&sn("0A:01")).await.unwrap(),
            Some(revoked),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn revocations_are_sequenced_in_commit_order() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let later = now() + Duration::from_secs(3600);
        for s in ["01", "02", "03", "04"] {
            add(&store, s, later).await;
        }
        assert_eq!(store.revocation_cursor().await.unwrap(), 0, "[{db}]");
        let start = store.revocation_cursor().await.unwrap();
        assert_eq!(
            revoke(&store, "02", 1_700_000_000, 0).await,
            RevokeOutcome::Revoked
        );
        // Attempts that revoke nothing take no number.
        assert_eq!(
            revoke(&store, "02", 1_700_000_000, 0).await,
            RevokeOutcome::AlreadyRevoked
        );
        assert_eq!(
            revoke(&store, "99", 1_700_000_000, 0).await,
            RevokeOutcome::NotFound
        );
        assert_eq!(
            revoke(&store, "04", 1_700_000_000, 0).await,
            RevokeOutcome::Revoked
        );
        let events = store.revocations_since(start, 100).await.unwrap();
        let serials: Vec<_> = events.iter().map(|e| e.serial.clone()).collect();
        assert_eq!(serials, [Some(sn("02")), Some(sn("04"))], "[{db}]");
        assert!(events[0].seq < events[1].seq, "[{db}]");
        assert_eq!(store.revocation_cursor().await.unwrap(), events[1].seq);
        assert!(
            store
                .revocations_since(events[1].seq, 100)
                .await
                .unwrap()
                .is_empty()
        );
        // Paging by cursor.
        let first = store.revocations_since(start, 1).await.unwrap();
        assert_eq!(first.len(), 1);
        let rest = store.revocations_since(first[0].seq, 1).await.unwrap();
        assert_eq!(rest[0].serial, Some(sn("04")), "[{db}]");

        // Concurrent revocations from separate pools each get a distinct number.
        let other = Store::connect(db.url()).await.unwrap();
        for i in 0..20 {
            add(&store, &format!("1{i:03x}"), later).await;
        }
        let mut tasks = Vec::new();
        for i in 0..20 {
            let s = if i % 2 == 0 {
                store.clone()
            } else {
                other.clone()
            };
            tasks.push(tokio::spawn(async move {
                let serial = format!("1{i:03x}");
                s.revoke(
                    &sn(&serial),
                    ts(1_700_000_000),
                    RevocationReason::Superseded,
                    &audit(AuditAction::Revoke, &serial),
                )
                .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), RevokeOutcome::Revoked, "[{db}]");
        }
        let events = store.revocations_since(rest[0].seq, 100).await.unwrap();
        assert_eq!(events.len(), 20, "[{db}]");
        let seqs: HashSet<_> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs.len(), 20, "[{db}] duplicate sequence numbers");
        other.close().await;
    }
}

#[tokio::test]
async fn crl_numbers_increase_across_stores_and_restarts() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        assert_eq!(store.next_crl_number(KEY_ID).await.unwrap(), 1, "[{db}]");
        assert_eq!(store.next_crl_number(KEY_ID).await.unwrap(), 2, "[{db}]");
        // Another issuer has its own sequence.
        assert_eq!(store.next_crl_number("ff").await.unwrap(), 1, "[{db}]");
        store.close().await;

        // A "restart", and two processes at once.
        let a = open(&db).await;
        let b = Store::connect(db.url()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40 {
            let s = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move { s.next_crl_number(KEY_ID).await }));
        }
        let mut got = Vec::new();
        for t in tasks {
            got.push(t.await.unwrap().unwrap());
        }
        got.sort_unstable();
        assert_eq!(got, (3..=42).collect::<Vec<u64>>(), "[{db}]");
        assert!(matches!(
            a.next_crl_number("not hex").await,
            Err(StoreError::InvalidInput(_))
        ));
    }
}

#[tokio::test]
async fn crls_are_stored_and_the_latest_is_served() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        assert_eq!(store.latest_crl(KEY_ID).await.unwrap(), None, "[{db}]");
        assert_eq!(store.latest_crl_number(KEY_ID).await.unwrap(), None);
        let n1 = store.next_crl_number(KEY_ID).await.unwrap();
        let n2 = store.next_crl_number(KEY_ID).await.unwrap();
        let crl = |n: u64| NewCrl {
            issuer_key_id: KEY_ID.to_owned(),
            number: n,
            this_update: ts(1_700_000_000 + n as i64),
            next_update: ts(1_700_086_400 + n as i64),
            der: vec![0x30, 0x00, n as u8, 0xff, 0x00],
        };
        // Stored out of order: the largest number wins.
        store.store_crl(&crl(n2)).await.unwrap();
        store.store_crl(&crl(n1)).await.unwrap();
        let latest = store.latest_crl(KEY_ID).await.unwrap().unwrap();
        assert_eq!(latest.number, n2, "[{db}]");
        assert_eq!(latest.der, crl(n2).der, "[{db}]");
        assert_eq!(latest.this_update, crl(n2).this_update);
        assert_eq!(latest.next_update, crl(n2).next_update);
        assert_eq!(store.latest_crl_number(KEY_ID).await.unwrap(), Some(n2));
        assert!(
            matches!(
                store.store_crl(&crl(n2)).await,
                Err(StoreError::Conflict(_))
            ),
            "[{db}]"
        );
        assert_eq!(store.latest_crl("ff").await.unwrap(), None, "[{db}]");
    }
}

/// Rows of `crls` for KEY_ID with `shard` and base (`delta` false) or delta kind.
async fn crl_rows(url: &str, shard: i64, delta: bool) -> Vec<i64> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let kind = if delta {
        "delta_base > 0"
    } else {
        "delta_base = 0"
    };
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT number FROM crls WHERE issuer_key_id = $1 AND shard = $2 AND {kind} \
         ORDER BY number"
    )))
    .bind(KEY_ID)
    .bind(shard)
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| r.try_get::<i64, _>("number").unwrap())
    .collect()
}

#[tokio::test]
async fn superseded_crls_are_removed_as_newer_ones_are_stored() {
    sqlx::any::install_default_drivers();
    for db in TestDb::all().await {
        let store = open(&db).await;
        let crl = |n: u64| NewCrl {
            issuer_key_id: KEY_ID.to_owned(),
            number: n,
            this_update: ts(1_700_000_000 + n as i64),
            next_update: ts(1_700_086_400 + n as i64),
            der: vec![0x30, 0x01, n as u8],
        };
        let scoped = |n: u64, shard: Option<u32>, delta_base: Option<u64>| ScopedCrl {
            crl: crl(n),
            shard,
            delta_base,
            revocation_cursor: 0,
        };
        // Full CRLs, stored one after another as a CA without shards does on every
        // revocation: one row stays, the newest.
        let mut numbers = Vec::new();
        for _ in 0..5 {
            let n = store.next_crl_number(KEY_ID).await.unwrap();
            store.store_crl(&crl(n)).await.unwrap();
            numbers.push(n);
        }
        let newest = *numbers.last().unwrap() as i64;
        assert_eq!(crl_rows(db.url(), -1, false).await, [newest], "[{db}]");
        // One stored late (a smaller number after a larger one, as two replicas both
        // believing they lead could) removes nothing newer and is not served.
        let late = numbers[0] + 100;
        let later = late + 1;
        store.store_crl(&crl(later)).await.unwrap();
        store.store_crl(&crl(late)).await.unwrap();
        assert_eq!(
            crl_rows(db.url(), -1, false).await,
            [late as i64, later as i64],
            "[{db}]"
        );
        assert_eq!(
            store.latest_crl(KEY_ID).await.unwrap().unwrap().number,
            later
        );
        // The full CRL through the scoped path (a sharded CA's full CRL), its delta, and a
        // shard's base and delta: each keeps only its newest, and none touches another.
        store
            .store_scoped_crl(&scoped(later + 1, None, None))
            .await
            .unwrap();
        store
            .store_scoped_crl(&scoped(later + 2, None, Some(later + 1)))
            .await
            .unwrap();
        store
            .store_scoped_crl(&scoped(later + 3, Some(7), None))
            .await
            .unwrap();
        store
            .store_scoped_crl(&scoped(later + 4, Some(7), Some(later + 3)))
            .await
            .unwrap();
        store
            .store_scoped_crl(&scoped(later + 5, None, Some(later + 1)))
            .await
            .unwrap();
        store
            .store_scoped_crl(&scoped(later + 6, Some(7), None))
            .await
            .unwrap();
        let n = |k: u64| (later + k) as i64;
        assert_eq!(crl_rows(db.url(), -1, false).await, [n(1)], "[{db}]");
        assert_eq!(crl_rows(db.url(), -1, true).await, [n(5)], "[{db}]");
        assert_eq!(crl_rows(db.url(), 7, false).await, [n(6)], "[{db}]");
        assert_eq!(crl_rows(db.url(), 7, true).await, [n(4)], "[{db}]");
        // Another CA's CRLs are its own.
        let other = NewCrl {
            issuer_key_id: "ff".to_owned(),
            ..crl(1)
        };
        store.store_crl(&other).await.unwrap();
        assert_eq!(crl_rows(db.url(), -1, false).await, [n(1)], "[{db}]");
        assert_eq!(store.latest_crl("ff").await.unwrap().unwrap().number, 1);
    }
}

#[tokio::test]
async fn a_crl_being_read_while_a_newer_one_replaces_it_reads_whole() {
    // A reader takes the newest CRL's length, then its slices; meanwhile newer CRLs are
    // stored, each removing the one before. Every read must give one CRL whole (its
    // bytes all its number's), never an error or a mix.
    for db in TestDb::all().await {
        let store = open(&db).await;
        // Three read slices (4 MiB each), so each read spans several statements.
        let der_of = |n: u64| -> Vec<u8> {
            let mut der = vec![n as u8; (9 << 20) + 7];
            der[0] = 0x30;
            der
        };
        let first = store.next_crl_number(KEY_ID).await.unwrap();
        store
            .store_crl(&NewCrl {
                issuer_key_id: KEY_ID.to_owned(),
                number: first,
                this_update: ts(1_700_000_000),
                next_update: ts(1_700_086_400),
                der: der_of(first),
            })
            .await
            .unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    let n = store.next_crl_number(KEY_ID).await.unwrap();
                    store
                        .store_crl(&NewCrl {
                            issuer_key_id: KEY_ID.to_owned(),
                            number: n,
                            this_update: ts(1_700_000_000),
                            next_update: ts(1_700_086_400),
                            der: der_of(n),
                        })
                        .await
                        .unwrap();
                }
            })
        };
        let mut reads = 0;
        while !writer.is_finished() || reads == 0 {
            let crl = store
                .latest_crl(KEY_ID)
                .await
                .unwrap_or_else(|e| panic!("[{db}] read {reads}: {e}"))
                .unwrap();
            assert!(
                crl.der == der_of(crl.number),
                "[{db}] CRL {} mixed",
                crl.number
            );
            reads += 1;
        }
        writer.await.unwrap();
        assert!(reads > 0);
    }
}

#[tokio::test]
async fn large_crls_read_back_exactly_and_their_info_needs_no_der() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        assert_eq!(store.latest_crl_info(KEY_ID).await.unwrap(), None, "[{db}]");
        // Larger than two read slices (4 MiB each) and not a multiple of one, with every
        // byte value, so a slice boundary that drops, repeats or shifts a byte shows.
        let der: Vec<u8> = (0..(9 << 20) + 12_345u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let n = store.next_crl_number(KEY_ID).await.unwrap();
        let crl = NewCrl {
            issuer_key_id: KEY_ID.to_owned(),
            number: n,
            this_update: ts(1_700_000_000),
            next_update: ts(1_700_086_400),
            der: der.clone(),
        };
        store.store_crl(&crl).await.unwrap();
        let latest = store.latest_crl(KEY_ID).await.unwrap().unwrap();
        assert_eq!(latest.number, n, "[{db}]");
        assert_eq!(latest.der.len(), der.len(), "[{db}]");
        assert!(latest.der == der, "[{db}] the DER read back differs");
        let info = store.latest_crl_info(KEY_ID).await.unwrap().unwrap();
        assert_eq!(
            (info.number, info.this_update, info.next_update),
            (n, crl.this_update, crl.next_update),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn crl_entries_page_through_unexpired_revoked_certificates_of_one_issuer() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let t = now();
        let later = t + Duration::from_secs(3600);
        let mut want = Vec::new();
        for i in 0..25u32 {
            let serial = format!("{:02x}{i:02x}", 0x10 + i);
            add(&store, &serial, later).await;
            if i % 3 != 0 {
                revoke(&store, &serial, 1_700_000_000 + i64::from(i), (i % 6) as u8).await;
                want.push(serial);
            }
        }
        // Revoked but expired: left off. Revoked by another issuer: left off.
        add(&store, "7001", t - Duration::from_secs(1)).await;
        revoke(&store, "7001", 1_700_000_000, 1).await;
        store
            .insert_certificate(
                &cert("7002", "ff", later),
                &audit(AuditAction::Issue, "7002"),
            )
            .await
            .unwrap();
        revoke(&store, "7002", 1_700_000_000, 1).await;

        let mut got = Vec::new();
        let mut after: Option<Serial> = None;
        loop {
            let page = store
                .revoked_for_crl(KEY_ID, t, after.as_ref(), 7)
                .await
                .unwrap();
            let done = page.len() < 7;
            after = page.last().map(|r| r.serial.clone());
            got.extend(page);
            if done {
                break;
            }
        }
        want.sort();
        let serials: Vec<_> = got.iter().map(|r| r.serial.to_hex()).collect();
        assert_eq!(serials, want, "[{db}]");
        let one = got.iter().find(|r| r.serial == sn("1101")).unwrap();
        assert_eq!(
            (one.revoked_at, one.reason),
            (ts(1_700_000_001), Some(RevocationReason::KeyCompromise)),
            "[{db}]"
        );
    }
}

#[tokio::test]
async fn postgres_listeners_hear_revocations_and_crls() {
    let db = TestDb::postgres().await;
    let store = open(&db).await;
    let mut listener = store.change_listener().await.unwrap().expect("a listener");
    add(&store, "0c01", now() + Duration::from_secs(60)).await;
    let other = Store::connect(db.url()).await.unwrap();
    assert_eq!(
        revoke(&other, "0c01", 1_700_000_000, 0).await,
        RevokeOutcome::Revoked
    );
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notice within 5 s")
        .unwrap();
    let n = other.next_crl_number(KEY_ID).await.unwrap();
    other
        .store_crl(&NewCrl {
            issuer_key_id: KEY_ID.into(),
            number: n,
            this_update: now(),
            next_update: now() + Duration::from_secs(60),
            der: vec![0x30, 0x00],
        })
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a notice within 5 s")
        .unwrap();

    let sqlite = TestDb::sqlite().await;
    assert!(
        open(&sqlite)
            .await
            .change_listener()
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn ocsp_signer_requests_are_fulfilled_once_and_recorded() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        let spki = vec![0x30, 0x59, 0x01, 0x02];
        let id = store.request_ocsp_signer(KEY_ID, &spki).await.unwrap();
        assert_eq!(
            store.ocsp_signer_request(id).await.unwrap(),
            OcspSignerRequestState::Pending,
            "[{db}]"
        );
        let since = now() - Duration::from_secs(600);
        let pending = store
            .pending_ocsp_signer_requests(KEY_ID, since, 10)
            .await
            .unwrap();
        assert_eq!(pending.len(), 1, "[{db}]");
        assert_eq!((pending[0].id, &pending[0].spki), (id, &spki), "[{db}]");
        // Addressed to one CA: another CA's processes do not see it.
        assert!(
            store
                .pending_ocsp_signer_requests("ff", since, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let mut signer = cert("5e01", KEY_ID, now() + Duration::from_secs(86_400));
        signer.profile = "ocsp-signer".into();
        assert!(
            store
                .fulfil_ocsp_signer_request(
                    id,
                    &signer,
                    &audit(AuditAction::IssueOcspSigner, "5e01")
                )
                .await
                .unwrap()
        );
        // A second CA process that signed too writes nothing.
        let mut late = cert("5e02", KEY_ID, now() + Duration::from_secs(86_400));
        late.profile = "ocsp-signer".into();
        assert!(
            !store
                .fulfil_ocsp_signer_request(id, &late, &audit(AuditAction::IssueOcspSigner, "5e02"))
                .await
                .unwrap()
        );
        assert!(
            store.get_certificate(&sn("5e02")).await.unwrap().is_none(),
            "[{db}]"
        );
        assert_eq!(
            store
                .get_certificate(&sn("5e01"))
                .await
                .unwrap()
                .unwrap()
                .profile,
            "ocsp-signer"
        );
        assert_eq!(
            store.ocsp_signer_request(id).await.unwrap(),
            OcspSignerRequestState::Fulfilled(signer.der.clone()),
            "[{db}]"
        );
        assert!(
            store
                .pending_ocsp_signer_requests(KEY_ID, since, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // Too old to answer: left alone.
        assert!(
            store
                .pending_ocsp_signer_requests(KEY_ID, now() + Duration::from_secs(5), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .purge_ocsp_signer_requests(now() + Duration::from_secs(5))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store.ocsp_signer_request(id).await.unwrap(),
            OcspSignerRequestState::Missing,
            "[{db}]"
        );
    }
}
