//! Partitioned and delta CRLs (issue 19) over a population filled through the store's bulk
//! path, on SQLite and PostgreSQL: after a retention sweep, every revoked unexpired
//! certificate is listed by the CRL its CRL distribution point names (its shard's, or the
//! full CRL for certificates of no shard) and by no other, nothing expired is listed, each
//! CRL carries the right critical Issuing Distribution Point; a revocation re-signs only
//! its shard; with deltas, only the delta, which names its base. Signatures and the
//! relying-party side (openssl, nginx) are checked in the binary's tests.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use signet_authority::{CrlLayout, CrlSchedule, RevocationPublisher};
use signet_ca::{
    InitOptions, IssuanceUrls, IssuingCa, OffsetDateTime, RevocationReason, Serial, delta_url,
    describe_crl, generate_ca, shard_of, shard_url,
};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, BulkCertificate, NewCertificate, RetentionMode,
    RevokeOutcome, Store,
};
use signet_testkit::TestDb;

const FULL_URL: &str = "http://ca.test:8080/crl/issuing.crl";
const SHARDS: u32 = 8;
const DEADLINE: Duration = Duration::from_secs(30);
const SCHEDULE: CrlSchedule = CrlSchedule {
    interval: Duration::from_secs(3600),
    validity: Duration::from_secs(86_400),
};

fn new_ca() -> IssuingCa {
    let bundle = generate_ca(&InitOptions::new("Shards"), OffsetDateTime::now_utc()).unwrap();
    IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap()
}

/// One filled certificate: its shard (None: names the full CRL), expiry, revocation.
struct Filled {
    serial: Serial,
    shard: Option<u32>,
    not_after: OffsetDateTime,
    revoked: bool,
}

/// `n` certificates of `ca`: a tenth name the full CRL (issued before sharding), the rest
/// their shard; every fifth revoked; a sixth expired an hour ago, a twentieth 40 days ago
/// (for the retention sweep).
fn population(ca: &IssuingCa, n: usize) -> (Vec<BulkCertificate>, Vec<Filled>) {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (mut rows, mut filled) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        let serial = Serial::random().unwrap();
        let shard = (i % 10 != 0).then(|| shard_of(&serial, SHARDS));
        let not_after = if i % 20 == 1 {
            now - time::Duration::days(40)
        } else if i % 6 == 2 {
            now - time::Duration::hours(1)
        } else {
            now + time::Duration::days(1)
        };
        let revoked = i % 5 == 0 || i % 20 == 1;
        let name = format!("{}.fill.test", serial.to_hex());
        rows.push(BulkCertificate {
            cert: NewCertificate {
                serial: serial.clone(),
                issuer: ca.subject().to_string(),
                issuer_key_id: hex::encode(ca.key_id()),
                subject: format!("CN={name}"),
                sans: vec![format!("dns:{name}")],
                profile: "server".into(),
                not_before: now - time::Duration::days(50),
                not_after,
                requester: "test".into(),
                der: vec![0x30, 0x00],
                crl_shard: shard,
            },
            revoked: revoked.then_some((
                now - time::Duration::minutes(5),
                RevocationReason::KeyCompromise,
            )),
        });
        filled.push(Filled {
            serial,
            shard,
            not_after,
            revoked,
        });
    }
    (rows, filled)
}

/// Every stored CRL partition of `ca` now: (shard, delta) -> (number, serials listed).
/// Checks each one's Issuing Distribution Point (critical, the URL of its partition byte
/// for byte) and Delta CRL Indicator (critical, on deltas only).
async fn stored(
    store: &Store,
    ca: &IssuingCa,
) -> BTreeMap<(Option<u32>, bool), (u64, BTreeSet<String>, Option<u64>)> {
    let key_id = hex::encode(ca.key_id());
    let mut out = BTreeMap::new();
    let mut infos = store.scoped_crls(&key_id).await.unwrap();
    while let Some(info) = infos.pop() {
        let Some(der) = store.crl_der(&key_id, info.number).await.unwrap() else {
            // Superseded while reading (a publisher is running): read them all again.
            out.clear();
            infos = store.scoped_crls(&key_id).await.unwrap();
            continue;
        };
        let view = describe_crl(&der).unwrap();
        assert!(view.problems.is_empty(), "{:?}", view.problems);
        let url = match info.shard {
            Some(n) => shard_url(FULL_URL, ca.key_id(), n),
            None => FULL_URL.to_string(),
        };
        let idp = view
            .extensions
            .iter()
            .find(|e| e.oid == "2.5.29.28")
            .unwrap_or_else(|| panic!("no IDP on {:?}", info.shard));
        assert!(idp.critical);
        // [6] IA5String: the same bytes as the certificate's CRL distribution point.
        let mut tlv = vec![0x86, u8::try_from(url.len()).unwrap()];
        tlv.extend_from_slice(url.as_bytes());
        assert!(der.windows(tlv.len()).any(|w| w == tlv), "{url}");
        let delta = view.extensions.iter().find(|e| e.oid == "2.5.29.27");
        assert_eq!(delta.is_some(), info.delta_base.is_some());
        assert!(delta.is_none_or(|d| d.critical));
        assert_eq!(
            view.crl_number.as_deref(),
            Some(info.number.to_string().as_str())
        );
        let serials = view.revoked.iter().map(|e| e.serial.clone()).collect();
        out.insert(
            (info.shard, info.delta_base.is_some()),
            (info.number, serials, info.delta_base),
        );
    }
    out
}

async fn revoke(store: &Store, serial: &Serial) {
    let audit = AuditEntry {
        actor: "test".into(),
        action: AuditAction::Revoke,
        serial: Some(serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    };
    assert_eq!(
        store
            .revoke(
                serial,
                OffsetDateTime::now_utc(),
                RevocationReason::KeyCompromise,
                &audit
            )
            .await
            .unwrap(),
        RevokeOutcome::Revoked
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_population_is_fully_covered_by_its_shards_and_full_crl() {
    for db in TestDb::all().await {
        let name = db.name();
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let ca = new_ca();
        let (rows, filled) = population(&ca, 6000);
        for chunk in rows.chunks(2500) {
            store.insert_bulk(chunk, "fill").await.unwrap();
        }
        assert_eq!(store.count_certificates().await.unwrap(), 6000, "[{name}]");

        // Retention takes out what expired more than 30 days ago (a twentieth), archived.
        let now = OffsetDateTime::now_utc();
        let swept = store
            .sweep_retention(
                now - time::Duration::days(30),
                RetentionMode::Archive,
                1000,
                "test",
            )
            .await
            .unwrap();
        let long_expired = filled
            .iter()
            .filter(|f| f.not_after < now - time::Duration::days(30))
            .count() as u64;
        assert_eq!(swept.certificates, long_expired, "[{name}]");
        assert_eq!(
            store.count_archived_certificates().await.unwrap(),
            long_expired,
            "[{name}]"
        );

        let publisher = RevocationPublisher::new(
            store.clone(),
            ca.crl_signer().unwrap(),
            vec![],
            SCHEDULE,
            None,
        )
        .with_layout(CrlLayout {
            full_url: Some(FULL_URL.into()),
            shards: SHARDS,
            delta: false,
        });
        publisher.publish_if_stale().await.unwrap();
        let crls = stored(&store, &ca).await;
        // The full CRL (certificates of no shard are unexpired) and every shard, no deltas.
        let mut parts: Vec<_> = (0..SHARDS).map(|n| (Some(n), false)).collect();
        parts.insert(0, (None, false));
        assert_eq!(crls.keys().copied().collect::<Vec<_>>(), parts, "[{name}]");

        // Exactly the revoked unexpired certificates, each in the CRL its CDP names.
        let mut want: BTreeMap<Option<u32>, BTreeSet<String>> = BTreeMap::new();
        for f in &filled {
            if f.revoked && f.not_after > now {
                want.entry(f.shard).or_default().insert(f.serial.to_hex());
            }
        }
        let listed: usize = crls.values().map(|(_, s, _)| s.len()).sum();
        assert_eq!(
            listed,
            want.values().map(BTreeSet::len).sum::<usize>(),
            "[{name}]"
        );
        assert!(listed > 500, "[{name}] {listed}");
        for ((shard, _), (_, serials, _)) in &crls {
            assert_eq!(
                serials,
                &want.get(shard).cloned().unwrap_or_default(),
                "[{name}] shard {shard:?}"
            );
        }

        // One revocation re-signs its shard alone, under the next number.
        let target = filled
            .iter()
            .find(|f| !f.revoked && f.shard.is_some() && f.not_after > now)
            .unwrap();
        let shard = target.shard;
        let top = crls.values().map(|(n, _, _)| *n).max().unwrap();
        let task = tokio::spawn(
            publisher
                .clone()
                .run(publisher.publish_if_stale().await.unwrap()),
        );
        revoke(&store, &target.serial).await;
        publisher.revoked(&target.serial, RevocationReason::KeyCompromise);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let after = loop {
            let now_crls = stored(&store, &ca).await;
            if now_crls[&(shard, false)].0 > top {
                break now_crls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{name}] not republished"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        task.abort();
        assert_eq!(after[&(shard, false)].0, top + 1, "[{name}]");
        assert!(
            after[&(shard, false)].1.contains(&target.serial.to_hex()),
            "[{name}]"
        );
        for (part, (number, serials, _)) in &after {
            if part.0 != shard {
                assert_eq!(
                    (number, serials),
                    (&crls[part].0, &crls[part].1),
                    "[{name}]"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_deltas_a_revocation_re_signs_only_its_delta() {
    for db in TestDb::all().await {
        let name = db.name();
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let ca = new_ca();
        let (rows, filled) = population(&ca, 400);
        store.insert_bulk(&rows, "fill").await.unwrap();
        let publisher = RevocationPublisher::new(
            store.clone(),
            ca.crl_signer().unwrap(),
            vec![],
            SCHEDULE,
            None,
        )
        .with_layout(CrlLayout {
            full_url: Some(FULL_URL.into()),
            shards: 2,
            delta: true,
        });
        let first = publisher.publish_if_stale().await.unwrap();
        let crls = stored(&store, &ca).await;
        // Base and (empty) delta of the full CRL and of both shards; each delta names its
        // base, and each base points at its delta (Freshest CRL).
        assert_eq!(crls.len(), 6, "[{name}] {:?}", crls.keys());
        for ((shard, delta), (_, serials, base)) in &crls {
            if *delta {
                assert!(serials.is_empty(), "[{name}]");
                assert_eq!(Some(crls[&(*shard, false)].0), *base, "[{name}]");
            }
        }
        let key_id = hex::encode(ca.key_id());
        let base_der = store
            .crl_der(&key_id, crls[&(None, false)].0)
            .await
            .unwrap()
            .unwrap();
        let fresh = delta_url(FULL_URL);
        assert!(
            base_der.windows(fresh.len()).any(|w| w == fresh.as_bytes()),
            "[{name}] no Freshest CRL pointer"
        );

        let now = OffsetDateTime::now_utc();
        let target = filled
            .iter()
            .find(|f| !f.revoked && f.shard == Some(1) && f.not_after > now)
            .unwrap();
        let task = tokio::spawn(publisher.clone().run(first));
        revoke(&store, &target.serial).await;
        publisher.revoked(&target.serial, RevocationReason::KeyCompromise);
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let after = loop {
            let now_crls = stored(&store, &ca).await;
            if now_crls[&(Some(1), true)].0 > crls[&(Some(1), true)].0 {
                break now_crls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{name}] no new delta"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        task.abort();
        let (_, serials, base) = &after[&(Some(1), true)];
        assert_eq!(
            serials,
            &BTreeSet::from([target.serial.to_hex()]),
            "[{name}] the delta lists only what was revoked since its base"
        );
        assert_eq!(*base, Some(crls[&(Some(1), false)].0), "[{name}]");
        for (part, v) in &after {
            if *part != (Some(1), true) {
                assert_eq!(v, &crls[part], "[{name}] {part:?} changed");
            }
        }
    }
}
