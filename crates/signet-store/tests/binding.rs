//! Which CA a database belongs to (migration 0005), on SQLite and PostgreSQL: a new CA's
//! first records in one transaction, one binding only, contents told apart by key id.

#![allow(clippy::unwrap_used)]

use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, NewCaBinding, NewCertificate, NewCrl, Store, StoreError,
};
use signet_testkit::TestDb;
use time::OffsetDateTime;

const ROOT: &str = "0a0b0c0d0e0f101112131415161718191a1b1c1d";
const ISSUING: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334";

fn binding(key: &str, fill: char) -> NewCaBinding {
    NewCaBinding {
        root_key_id: key.to_owned(),
        root_fingerprint: format!("sha256:{}", fill.to_string().repeat(64)),
    }
}

fn audit(action: AuditAction) -> AuditEntry {
    AuditEntry {
        actor: "test".to_owned(),
        action,
        serial: None,
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

fn crl(key: &str, number: u64) -> NewCrl {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    NewCrl {
        issuer_key_id: key.to_owned(),
        number,
        this_update: now,
        next_update: now + time::Duration::days(90),
        der: vec![0x30, 0x00],
    }
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn audit_count(store: &Store) -> usize {
    store.list_audit(100).await.unwrap().len()
}

#[tokio::test]
async fn a_new_ca_is_recorded_whole_once_and_only_once() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        assert_eq!(store.ca_binding().await.unwrap(), None, "[{db}]");
        let empty = store.contents(&[ROOT]).await.unwrap();
        assert!(empty.is_empty() && !empty.of_these_keys, "[{db}] {empty:?}");

        let number = store.next_crl_number(ROOT).await.unwrap();
        store
            .record_new_ca(
                &binding(ROOT, 'a'),
                Some(&crl(ROOT, number)),
                &[
                    audit(AuditAction::BindDatabase),
                    audit(AuditAction::PublishRootCrl),
                ],
            )
            .await
            .unwrap();
        let bound = store.ca_binding().await.unwrap().unwrap();
        assert_eq!(bound.root_key_id, ROOT, "[{db}]");
        assert_eq!(bound.root_fingerprint, binding(ROOT, 'a').root_fingerprint);
        assert_eq!(
            store.latest_crl(ROOT).await.unwrap().unwrap().number,
            number
        );
        assert_eq!(audit_count(&store).await, 2, "[{db}]");
        let contents = store.contents(&[ISSUING, ROOT]).await.unwrap();
        assert!(
            contents.crls && contents.audit && contents.of_these_keys,
            "[{db}]"
        );
        assert!(!contents.certificates, "[{db}]");
        assert!(!store.contents(&[ISSUING]).await.unwrap().of_these_keys);

        // A second CA is refused, and writes nothing: not its CRL, not its audit rows.
        let other = "ffffffffffffffffffffffffffffffffffffffff";
        let r = store
            .record_new_ca(
                &binding(other, 'b'),
                Some(&crl(other, 1)),
                &[audit(AuditAction::BindDatabase)],
            )
            .await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "[{db}] {r:?}");
        assert_eq!(store.latest_crl(other).await.unwrap(), None, "[{db}]");
        assert_eq!(audit_count(&store).await, 2, "[{db}]");

        // bind_ca keeps the first binding and says which it is; audits only a new one.
        let kept = store
            .bind_ca(&binding(other, 'b'), &audit(AuditAction::BindDatabase))
            .await
            .unwrap();
        assert_eq!(kept.root_key_id, ROOT, "[{db}]");
        assert_eq!(audit_count(&store).await, 2, "[{db}]");
        store.close().await;
    }
}

#[tokio::test]
async fn a_failed_record_leaves_nothing_and_a_bad_binding_runs_no_query() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        // The CRL's number is taken: the whole record fails, the binding included.
        store.store_crl(&crl(ROOT, 1)).await.unwrap();
        let r = store
            .record_new_ca(
                &binding(ROOT, 'a'),
                Some(&crl(ROOT, 1)),
                &[audit(AuditAction::parse("x"))],
            )
            .await;
        assert!(matches!(r, Err(StoreError::Conflict(_))), "[{db}] {r:?}");
        assert_eq!(store.ca_binding().await.unwrap(), None, "[{db}]");
        assert_eq!(audit_count(&store).await, 0, "[{db}]");

        for bad in [
            NewCaBinding {
                root_key_id: "NOT-HEX".into(),
                root_fingerprint: binding(ROOT, 'a').root_fingerprint,
            },
            NewCaBinding {
                root_key_id: ROOT.into(),
                root_fingerprint: "sha1:abcd".into(),
            },
        ] {
            let r = store.bind_ca(&bad, &audit(AuditAction::parse("x"))).await;
            assert!(
                matches!(r, Err(StoreError::InvalidInput(_))),
                "[{db}] {r:?}"
            );
        }
        assert_eq!(store.ca_binding().await.unwrap(), None, "[{db}]");

        // Records under a key tell whose the database is, before any binding.
        let now = OffsetDateTime::now_utc();
        store
            .insert_certificate(
                &NewCertificate {
                    serial: "0123ab".parse().unwrap(),
                    issuer: "CN=Issuing".into(),
                    issuer_key_id: ISSUING.into(),
                    subject: "CN=a.internal".into(),
                    sans: vec!["dns:a.internal".into()],
                    profile: "server".into(),
                    not_before: now,
                    not_after: now + time::Duration::days(1),
                    requester: "test".into(),
                    der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
                    crl_shard: None,
                },
                &audit(AuditAction::Issue),
            )
            .await
            .unwrap();
        let contents = store.contents(&[ISSUING]).await.unwrap();
        assert!(contents.certificates && contents.of_these_keys, "[{db}]");
        store.close().await;
    }
}
