//! The store on a replicated PostgreSQL made here (`initdb`, `pg_basebackup -R`, `pg_ctl
//! promote`, unix sockets in temporary directories): a hot standby reads what the primary
//! committed, refuses writes as "unavailable" (503 to an API caller, never a 500), is seen as
//! a standby until promoted; and leadership (the CRL signer's advisory lock) is held by one
//! process at a time and passes on when its holder's connection ends.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, DatabaseRole, NewCertificate, Store, StoreError,
};
use signet_testkit::{Replication, TestDb};
use time::OffsetDateTime;

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}

fn certificate(serial: &str) -> NewCertificate {
    let now = OffsetDateTime::now_utc();
    NewCertificate {
        serial: sn(serial),
        issuer: "CN=Test Issuing CA".into(),
        issuer_key_id: "ab".into(),
        subject: format!("CN={serial}.internal"),
        sans: vec![format!("dns:{serial}.internal")],
        profile: "server".into(),
        not_before: now,
        not_after: now + Duration::from_secs(3600),
        requester: "test".into(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        crl_shard: None,
    }
}

fn audit(action: AuditAction, serial: &str) -> AuditEntry {
    AuditEntry {
        actor: "test".into(),
        action,
        serial: Some(sn(serial)),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

#[tokio::test]
async fn a_hot_standby_reads_refuses_writes_as_unavailable_and_writes_once_promoted() {
    let pair = TestDb::replicated(Replication::Asynchronous).await;
    let primary = Store::connect(pair.primary.url()).await.unwrap();
    primary.migrate().await.unwrap();
    primary
        .insert_certificate(&certificate("0a01"), &audit(AuditAction::Issue, "0a01"))
        .await
        .unwrap();
    pair.standby
        .wait_replayed(&pair.primary, Duration::from_secs(10))
        .await;

    let standby = Store::connect(pair.standby.url()).await.unwrap();
    assert_eq!(primary.role().await.unwrap(), DatabaseRole::Primary);
    assert_eq!(
        standby.role().await.unwrap(),
        DatabaseRole::Standby { streaming: true }
    );
    // Reads: what an OCSP responder asks.
    let status = standby
        .certificate_status(&sn("0a01"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.revoked_at, None);
    assert_eq!(standby.revocation_cursor().await.unwrap(), 0);
    // Readiness for writing: the standby is not ready, the primary is.
    primary.ping_writable().await.unwrap();
    let refused = standby.ping_writable().await.unwrap_err();
    assert!(matches!(refused, StoreError::Unavailable(_)), "{refused:?}");
    assert!(format!("{refused:?}").contains("read-only"), "{refused:?}");
    // A write on the standby is refused by PostgreSQL (25006) and reported as unavailable.
    let write = standby
        .revoke(
            &sn("0a01"),
            OffsetDateTime::now_utc(),
            RevocationReason::KeyCompromise,
            &audit(AuditAction::Revoke, "0a01"),
        )
        .await
        .unwrap_err();
    assert!(matches!(write, StoreError::Unavailable(_)), "{write:?}");
    // A standby refuses LISTEN: the responder polls instead (signet-responder's watch).
    assert!(standby.change_listener().await.is_err());

    // A revocation on the primary reaches the standby's revocation sequence.
    primary
        .revoke(
            &sn("0a01"),
            OffsetDateTime::now_utc(),
            RevocationReason::KeyCompromise,
            &audit(AuditAction::Revoke, "0a01"),
        )
        .await
        .unwrap();
    let lag = pair
        .standby
        .wait_replayed(&pair.primary, Duration::from_secs(10))
        .await;
    eprintln!("standby replayed the revocation after {lag:?}");
    let seen = standby.revocations_since(0, 10).await.unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].serial, Some(sn("0a01")));

    // The primary goes; the standby, promoted, takes writes on the same pool.
    primary.close().await;
    pair.primary.stop_immediate();
    pair.standby.promote();
    let deadline = Instant::now() + Duration::from_secs(10);
    while standby.role().await.ok() != Some(DatabaseRole::Primary) {
        assert!(Instant::now() < deadline, "still a standby after promotion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    standby.ping_writable().await.unwrap();
    standby
        .insert_certificate(&certificate("0a02"), &audit(AuditAction::Issue, "0a02"))
        .await
        .unwrap();
    assert!(standby.change_listener().await.unwrap().is_some());
    standby.close().await;
}

#[tokio::test]
async fn leadership_is_held_by_one_process_and_passes_on_when_its_connection_ends() {
    let db = TestDb::private_postgres().await;
    let a = Store::connect(db.url()).await.unwrap();
    let b = Store::connect(db.url()).await.unwrap();
    let mut first = a.leadership("crl:ab");
    let mut second = b.leadership("crl:ab");
    let mut other = b.leadership("crl:cd");
    assert!(first.check().await.unwrap());
    assert!(!second.check().await.unwrap());
    // Another name is another lock.
    assert!(other.check().await.unwrap());
    // Still held, checked again (a round trip on the holding session).
    assert!(first.check().await.unwrap());
    assert!(!second.check().await.unwrap());

    // The holder vanishes without releasing (its connection dropped, as on kill -9): the
    // server ends the session and the lock with it.
    drop(first);
    let started = Instant::now();
    while !second.check().await.unwrap() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lock was not handed on within 5 s of its holder's connection ending"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("leadership handed on after {:?}", started.elapsed());
    let mut third = a.leadership("crl:ab");
    assert!(!third.check().await.unwrap());
    second.release().await;
    assert!(third.check().await.unwrap());

    // The server going away: the holder learns it has lost the lead (an error, not a
    // stale "yes"), and takes it again once the server is back.
    db.stop();
    assert!(third.check().await.is_err());
    assert!(!third.is_held());
    db.start();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(true) = third.check().await {
            break;
        }
        assert!(Instant::now() < deadline, "no leadership after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn on_sqlite_leadership_is_always_held_and_the_database_is_a_primary() {
    let db = TestDb::sqlite().await;
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let mut one = store.leadership("crl:ab");
    let mut two = store.leadership("crl:ab");
    assert!(!one.is_held(), "not before the first check");
    assert!(one.check().await.unwrap());
    assert!(two.check().await.unwrap());
    assert!(one.is_held() && two.is_held());
    assert_eq!(store.role().await.unwrap(), DatabaseRole::Primary);
    store.ping_writable().await.unwrap();
    store.close().await;
}
