//! The ACME tables (migration 0006) on SQLite and PostgreSQL: accounts (one per key and
//! provisioner, EAB keys bound once), the nonce replay filter and the shared nonce key,
//! orders with their authorizations and challenges moving through their states in
//! conditional updates (one caller wins each transition), and the cleanup.

#![allow(clippy::unwrap_used)]

use signet_pkix::Serial;
use signet_store::{
    AcmeAccount, AcmeAccountCreated, AuditAction, AuditEntry, AuditOutcome, ChallengeOutcome,
    NewAcmeAuthorization, NewAcmeOrder, Store, StoreError,
};
use signet_testkit::TestDb;
use time::{Duration, OffsetDateTime};

fn audit(action: AuditAction) -> AuditEntry {
    AuditEntry {
        actor: "acme:web:a1".to_owned(),
        action,
        serial: None,
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

fn account(id: &str, thumbprint: &str, eab: Option<&str>) -> AcmeAccount {
    AcmeAccount {
        id: id.to_owned(),
        provisioner: "web".to_owned(),
        thumbprint: thumbprint.to_owned(),
        jwk: "{}".to_owned(),
        status: "valid".to_owned(),
        contact: vec!["mailto:a@example.com".to_owned()],
        eab_kid: eab.map(str::to_owned),
        created_at: OffsetDateTime::now_utc(),
    }
}

async fn open(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

fn order(id: &str, account: &str, expires_at: OffsetDateTime) -> NewAcmeOrder {
    NewAcmeOrder {
        id: id.to_owned(),
        account_id: account.to_owned(),
        identifiers: r#"[{"type":"dns","value":"a.internal"},{"type":"dns","value":"b.internal"}]"#
            .to_owned(),
        expires_at,
        replaces: None,
        authorizations: ["a", "b"]
            .iter()
            .map(|n| NewAcmeAuthorization {
                id: format!("{id}-authz-{n}"),
                identifier_type: "dns".to_owned(),
                identifier_value: format!("{n}.internal"),
                challenges: vec![
                    (
                        format!("{id}-{n}-http"),
                        "http-01".to_owned(),
                        format!("tok-{n}-1"),
                    ),
                    (
                        format!("{id}-{n}-dns"),
                        "dns-01".to_owned(),
                        format!("tok-{n}-2"),
                    ),
                ],
            })
            .collect(),
    }
}

#[tokio::test]
async fn acme_objects_on_both_backends() {
    for db in TestDb::all().await {
        let store = open(&db).await;
        // The nonce key: the first candidate wins, for every later caller.
        let key = store.acme_secret("nonce", "first").await.unwrap();
        assert_eq!(key, "first", "[{db}]");
        assert_eq!(store.acme_secret("nonce", "second").await.unwrap(), "first");
        // A nonce is used once.
        let later = OffsetDateTime::now_utc() + Duration::minutes(10);
        assert!(store.acme_use_nonce("n1", later).await.unwrap());
        assert!(!store.acme_use_nonce("n1", later).await.unwrap(), "[{db}]");

        // EAB: bound once, only to its provisioner's accounts; a refused binding writes
        // nothing.
        store
            .acme_create_eab_key("kid1", "web", "hmac", &audit(AuditAction::AcmeEabKey))
            .await
            .unwrap();
        let created = store
            .acme_create_account(
                &account("a1", "t1", Some("kid1")),
                &audit(AuditAction::AcmeNewAccount),
            )
            .await
            .unwrap();
        assert!(matches!(created, AcmeAccountCreated::Created(_)), "[{db}]");
        let again = store
            .acme_create_account(
                &account("a2", "t2", Some("kid1")),
                &audit(AuditAction::AcmeNewAccount),
            )
            .await;
        assert!(
            matches!(again, Err(StoreError::Conflict(_))),
            "[{db}] {again:?}"
        );
        assert!(store.acme_account("a2").await.unwrap().is_none());
        // The same key under the same provisioner: the existing account.
        let same = store
            .acme_create_account(
                &account("a3", "t1", None),
                &audit(AuditAction::AcmeNewAccount),
            )
            .await
            .unwrap();
        assert!(
            matches!(same, AcmeAccountCreated::Existing(a) if a.id == "a1"),
            "[{db}]"
        );
        let keys = store.acme_eab_keys(Some("web")).await.unwrap();
        assert_eq!(keys[0].account_id.as_deref(), Some("a1"));
        assert!(store.acme_eab_keys(Some("other")).await.unwrap().is_empty());
        assert_eq!(store.acme_eab_keys(None).await.unwrap().len(), 1);
        assert!(
            store
                .acme_revoke_eab_key("kid1", &audit(AuditAction::AcmeEabKey))
                .await
                .unwrap()
        );
        assert!(
            !store
                .acme_revoke_eab_key("kid1", &audit(AuditAction::AcmeEabKey))
                .await
                .unwrap()
        );

        // An order: both authorizations must be valid before it is ready; one challenge per
        // authorization is started once.
        let expires = OffsetDateTime::now_utc() + Duration::hours(8);
        store
            .acme_create_order(
                &order("o1", "a1", expires),
                &audit(AuditAction::AcmeNewOrder),
            )
            .await
            .unwrap();
        let o = store.acme_order("o1").await.unwrap().unwrap();
        assert_eq!(
            (o.status.as_str(), o.authorizations.len()),
            ("pending", 2),
            "[{db}]"
        );
        for (n, authz_id) in o.authorizations.iter().enumerate() {
            let authz = store.acme_authorization(authz_id).await.unwrap().unwrap();
            assert_eq!(authz.challenges.len(), 2);
            let chall = authz
                .challenges
                .iter()
                .find(|c| c.kind == "http-01")
                .unwrap();
            assert!(store.acme_start_challenge(&chall.id).await.unwrap());
            assert!(
                !store.acme_start_challenge(&chall.id).await.unwrap(),
                "[{db}] once"
            );
            store
                .acme_finish_challenge(
                    chall,
                    ChallengeOutcome::Valid,
                    None,
                    &audit(AuditAction::AcmeValidate),
                )
                .await
                .unwrap();
            let status = store.acme_order("o1").await.unwrap().unwrap().status;
            assert_eq!(status, if n == 0 { "pending" } else { "ready" }, "[{db}]");
        }
        assert!(store.acme_begin_finalize("o1").await.unwrap());
        assert!(
            !store.acme_begin_finalize("o1").await.unwrap(),
            "[{db}] once"
        );
        store
            .acme_finish_order("o1", Some(&"0abc".parse::<Serial>().unwrap()), None)
            .await
            .unwrap();
        let o = store.acme_order("o1").await.unwrap().unwrap();
        assert_eq!(
            (
                o.status.as_str(),
                o.certificate_serial.as_ref().map(Serial::to_hex).as_deref()
            ),
            ("valid", Some("0abc"))
        );
        assert_eq!(store.acme_order_ids("a1", None, 10).await.unwrap(), ["o1"]);

        // A failed challenge makes its authorization and order invalid at once.
        store
            .acme_create_order(
                &order("o2", "a1", expires),
                &audit(AuditAction::AcmeNewOrder),
            )
            .await
            .unwrap();
        let o2 = store.acme_order("o2").await.unwrap().unwrap();
        let authz = store
            .acme_authorization(&o2.authorizations[0])
            .await
            .unwrap()
            .unwrap();
        let chall = &authz.challenges[0];
        assert!(store.acme_start_challenge(&chall.id).await.unwrap());
        let problem =
            r#"{"type":"urn:ietf:params:acme:error:connection","detail":"refused","status":400}"#;
        store
            .acme_finish_challenge(
                chall,
                ChallengeOutcome::Invalid,
                Some(problem),
                &audit(AuditAction::AcmeValidate),
            )
            .await
            .unwrap();
        let o2 = store.acme_order("o2").await.unwrap().unwrap();
        assert_eq!(o2.status, "invalid", "[{db}]");
        assert_eq!(o2.error.as_deref(), Some(problem));

        // Account changes; a key taken by another account is a conflict.
        assert!(
            store
                .acme_update_account(
                    "a1",
                    Some(&["mailto:b@example.com".to_owned()]),
                    None,
                    &audit(AuditAction::AcmeUpdateAccount)
                )
                .await
                .unwrap()
        );
        store
            .acme_create_account(
                &account("a4", "t4", None),
                &audit(AuditAction::AcmeNewAccount),
            )
            .await
            .unwrap();
        let taken = store
            .acme_change_key("a1", "t4", "{}", &audit(AuditAction::AcmeKeyChange))
            .await;
        assert!(
            matches!(taken, Err(StoreError::Conflict(_))),
            "[{db}] {taken:?}"
        );
        assert!(
            store
                .acme_change_key("a1", "t5", "{}", &audit(AuditAction::AcmeKeyChange))
                .await
                .unwrap()
        );
        assert!(
            store
                .acme_update_account(
                    "a1",
                    None,
                    Some("deactivated"),
                    &audit(AuditAction::AcmeUpdateAccount)
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .acme_update_account(
                    "a1",
                    None,
                    Some("deactivated"),
                    &audit(AuditAction::AcmeUpdateAccount)
                )
                .await
                .unwrap(),
            "[{db}] a deactivated account stays so"
        );

        // Cleanup: expired orders go with their authorizations and challenges. A used nonce
        // stays in the replay filter until USED_TOKEN_RETENTION after its expiry.
        store
            .acme_create_order(
                &order("old", "a4", OffsetDateTime::now_utc() - Duration::days(2)),
                &audit(AuditAction::AcmeNewOrder),
            )
            .await
            .unwrap();
        assert!(
            store
                .acme_use_nonce("stale", OffsetDateTime::now_utc() - Duration::minutes(1))
                .await
                .unwrap()
        );
        assert!(
            !store
                .acme_use_nonce("stale", OffsetDateTime::now_utc() - Duration::minutes(1))
                .await
                .unwrap(),
            "[{db}] a nonce is used once"
        );
        let purged = store
            .acme_purge(OffsetDateTime::now_utc() - Duration::days(1))
            .await
            .unwrap();
        assert_eq!((purged.orders, purged.nonces), (1, 0), "[{db}]");
        assert!(
            !store
                .acme_use_nonce("stale", OffsetDateTime::now_utc() - Duration::minutes(1))
                .await
                .unwrap(),
            "[{db}] still used after the cleanup"
        );
        assert!(store.acme_order("old").await.unwrap().is_none());
        assert!(
            store
                .acme_authorization("old-authz-a")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.acme_challenge("old-a-http").await.unwrap().is_none());
        assert!(
            store.acme_order("o1").await.unwrap().is_some(),
            "[{db}] live orders stay"
        );
        store.close().await;
    }
}
