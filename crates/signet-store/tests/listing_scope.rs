//! `CertificateFilter::requested_only`: the certificates people asked for, without the
//! server's own, the OCSP signers' and the CA certificates, on both backends, with keyset
//! pages that neither skip nor repeat a row when the left-out rows sit between them.

#![allow(clippy::unwrap_used)]

use signet_pkix::Serial;
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, CertificateFilter, NewCertificate, SERVER_REQUESTER,
    Store,
};
use signet_testkit::TestDb;
use sqlx::Connection;
use time::OffsetDateTime;

/// A serial from its hex spelling.
fn sn(hex: &str) -> Serial {
    Serial::from_hex(hex).unwrap_or_else(|e| panic!("serial {hex:?}: {e}"))
}

fn record(serial: &str, profile: &str, requester: &str) -> NewCertificate {
    let now = OffsetDateTime::now_utc();
    NewCertificate {
        serial: sn(serial),
        issuer: "CN=Signet Intermediate CA".to_owned(),
        issuer_key_id: "a1b2c3d4".to_owned(),
        subject: String::new(),
        sans: vec!["dns:a.example".to_owned()],
        profile: profile.to_owned(),
        not_before: now - time::Duration::hours(1),
        not_after: now + time::Duration::days(1),
        requester: requester.to_owned(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        crl_shard: None,
    }
}

#[tokio::test]
async fn requested_only_leaves_out_the_ca_s_own_certificates_and_pages_cleanly() {
    for db in TestDb::all().await {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        // Interleaved, so that every page boundary falls next to a left-out row.
        let rows = [
            ("01", "server", SERVER_REQUESTER),
            ("02", "server", "token:default:api"),
            ("03", "ocsp-signer", "signet-responder"),
            ("04", "peer", "k8s:k8s:prod/api"),
            ("05", "ca", "local:root"),
            ("06", "client", "admin"),
            ("07", "server", SERVER_REQUESTER),
            ("08", "server", "local:alice(uid 1000)"),
            ("09", "ocsp-signer", "signet-responder"),
        ];
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(db.url()).await.unwrap();
        for (i, (serial, profile, requester)) in rows.iter().enumerate() {
            let audit = AuditEntry {
                actor: (*requester).to_owned(),
                action: AuditAction::Issue,
                serial: Some(sn(serial)),
                outcome: AuditOutcome::Ok,
                detail: String::new(),
            };
            store
                .insert_certificate(&record(serial, profile, requester), &audit)
                .await
                .unwrap();
            // A fixed order: created_at 1000 + i.
            sqlx::query("UPDATE certificates SET created_at = $1 WHERE serial = $2")
                .bind(1000 + i as i64)
                .bind(*serial)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        for limit in 1..=5 {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = store
                    .list_certificates(&CertificateFilter {
                        requested_only: true,
                        limit,
                        cursor: cursor.clone(),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                assert!(page.items.len() <= limit as usize, "[{db}]");
                seen.extend(page.items.into_iter().map(|r| r.serial.to_hex()));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            assert_eq!(seen, ["08", "06", "04", "02"], "[{db}] limit {limit}");
        }
        // Without it, everything; with a profile, the profile's certificates of any origin.
        let all = store
            .list_certificates(&CertificateFilter::default())
            .await
            .unwrap();
        assert_eq!(all.items.len(), rows.len(), "[{db}]");
        let signers = store
            .list_certificates(&CertificateFilter {
                profile: Some("ocsp-signer".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let serials: Vec<_> = signers.items.iter().map(|r| r.serial.to_hex()).collect();
        assert_eq!(serials, ["09", "03"], "[{db}]");
    }
}

/// The provisioner filter (migration 0012's indexed expression for a name without a
/// colon, prefix ranges for one with a colon) matches exactly the requesters recorded as
/// `token:<name>:…`, `k8s:<name>:…` or `acme:<name>:…`, on both backends.
#[tokio::test]
async fn provisioner_filter_matches_exactly_that_provisioner_s_requesters() {
    for db in TestDb::all().await {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let rows = [
            ("01", "token:ci:build-1"),
            ("02", "k8s:ci:prod/api"),
            ("03", "acme:ci:17"),
            ("04", "token:ci2:build-1"),
            ("05", "token:c:i:x"),
            ("06", "token:ci"),
            ("07", "mtls:ci:01"),
            ("08", "local:ci:x"),
            ("09", "admin"),
            ("0a", "token::ci:x"),
            ("0b", "TOKEN:ci:x"),
            ("0c", "token:ci:"),
        ];
        for (serial, requester) in rows {
            let audit = AuditEntry {
                actor: requester.to_owned(),
                action: AuditAction::Issue,
                serial: Some(sn(serial)),
                outcome: AuditOutcome::Ok,
                detail: String::new(),
            };
            store
                .insert_certificate(&record(serial, "server", requester), &audit)
                .await
                .unwrap();
        }
        for (provisioner, want) in [
            ("ci", vec!["01", "02", "03", "0c"]),
            ("ci2", vec!["04"]),
            ("c", vec!["05"]),
            ("c:i", vec!["05"]),
            ("i", vec![]),
            ("CI", vec![]),
        ] {
            for order in [
                signet_store::CertificateOrder::Newest,
                signet_store::CertificateOrder::ExpiringFirst,
            ] {
                let page = store
                    .list_certificates(&CertificateFilter {
                        provisioner: Some(provisioner.to_owned()),
                        order,
                        ..CertificateFilter::default()
                    })
                    .await
                    .unwrap();
                let mut got: Vec<String> = page.items.iter().map(|c| c.serial.to_hex()).collect();
                got.sort();
                let want: Vec<String> = want.iter().map(|s| sn(s).to_hex()).collect();
                assert_eq!(
                    got,
                    want,
                    "provisioner {provisioner:?}, {order:?} on {}",
                    db.url()
                );
            }
        }
    }
}
