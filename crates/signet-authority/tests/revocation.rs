//! The revocation publisher against a real store (SQLite and PostgreSQL): what it publishes
//! before serving, what a revocation makes it publish for every CA it holds, what it tells
//! its listener, and the root's CRLs. The CRLs are read back with the CA core's own CRL
//! reader (`describe_crl`); their signatures are checked by openssl in the binary's tests.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::PublicKeyData;
use signet_authority::{CrlSchedule, RevocationListener, RevocationPublisher};
use signet_ca::{
    Csr, InitOptions, IssuanceUrls, IssuingCa, KeyType, OffsetDateTime, Policy, Profile,
    ProfileLimits, RevocationReason, Serial, SubjectName, describe_crl, generate_ca,
    root_crl_signer,
};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, NewCertificate, RevokeOutcome, Store};
use signet_testkit::TestDb;

/// How long a test waits for a publication before failing.
const DEADLINE: Duration = Duration::from_secs(30);

const SCHEDULE: CrlSchedule = CrlSchedule {
    interval: Duration::from_secs(3600),
    validity: Duration::from_secs(86_400),
};

/// What the publisher told its listener.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Heard {
    Revoked(String),
    Crl(u64),
}

#[derive(Debug, Default)]
struct Ears(Mutex<Vec<Heard>>);

impl Ears {
    fn heard(&self) -> Vec<Heard> {
        self.0.lock().unwrap().clone()
    }
}

impl RevocationListener for Ears {
    fn certificate_revoked(&self, serial: &Serial) {
        self.0.lock().unwrap().push(Heard::Revoked(serial.to_hex()));
    }

    fn crl_published(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    ) {
        assert!(next_update > this_update);
        assert!(!der.is_empty());
        self.0.lock().unwrap().push(Heard::Crl(number));
    }
}

fn new_ca(name: &str) -> IssuingCa {
    let bundle = generate_ca(&InitOptions::new(name), OffsetDateTime::now_utc()).unwrap();
    IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap()
}

fn audit(action: AuditAction, serial: &Serial) -> AuditEntry {
    AuditEntry {
        actor: "test".into(),
        action,
        serial: Some(serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

/// A leaf of `ca`, recorded in the store, then revoked with `reason`.
async fn revoked_leaf(
    store: &Store,
    ca: &IssuingCa,
    host: &str,
    reason: RevocationReason,
) -> Serial {
    let serial = recorded_leaf(store, ca, host).await;
    let outcome = store
        .revoke(
            &serial,
            OffsetDateTime::now_utc(),
            reason,
            &audit(AuditAction::Revoke, &serial),
        )
        .await
        .unwrap();
    assert_eq!(outcome, RevokeOutcome::Revoked);
    serial
}

/// A leaf of `ca`, recorded in the store.
async fn recorded_leaf(store: &Store, ca: &IssuingCa, host: &str) -> Serial {
    let spki = KeyType::P256.generate().unwrap().subject_public_key_info();
    let csr = Csr::from_parts(&spki, None, vec![SubjectName::parse_loose(host).unwrap()]).unwrap();
    let cert = ca
        .issue(
            &csr,
            Profile::Server,
            &ProfileLimits::default(),
            None,
            &Policy::allow_all(),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
    let record = NewCertificate {
        serial: cert.serial.clone(),
        issuer: ca.subject().to_string(),
        issuer_key_id: hex::encode(ca.key_id()),
        subject: cert.subject.clone(),
        sans: vec![format!("dns:{host}")],
        profile: "server".into(),
        not_before: cert.not_before,
        not_after: cert.not_after,
        requester: "test".into(),
        der: cert.der.clone(),
        crl_shard: None,
    };
    store
        .insert_certificate(&record, &audit(AuditAction::Issue, &record.serial))
        .await
        .unwrap();
    cert.serial
}

/// The newest stored CRL of `ca`: its number and the serials it lists.
async fn latest(store: &Store, key_id: &[u8]) -> Option<(u64, Vec<String>)> {
    let crl = store.latest_crl(&hex::encode(key_id)).await.unwrap()?;
    let view = describe_crl(&crl.der).unwrap();
    assert!(view.problems.is_empty(), "{:?}", view.problems);
    assert_eq!(view.crl_number, Some(crl.number.to_string()));
    assert_eq!(view.authority_key_id, Some(hex::encode(key_id)));
    Some((
        crl.number,
        view.revoked.into_iter().map(|e| e.serial).collect(),
    ))
}

/// Wait (bounded) until `ca`'s newest CRL has a number above `above`.
async fn published_after(store: &Store, key_id: &[u8], above: u64) -> (u64, Vec<String>) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some((n, listed)) = latest(store, key_id).await
            && n > above
        {
            return (n, listed);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CRL above number {above} within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_republishes_every_cas_crl_and_tells_the_listener() {
    for db in TestDb::all().await {
        let name = db.name();
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let current = new_ca("Current");
        let kept = new_ca("Kept");
        let ears = Arc::new(Ears::default());
        let publisher = RevocationPublisher::new(
            store.clone(),
            current.crl_signer().unwrap(),
            vec![kept.crl_signer().unwrap()],
            SCHEDULE,
            Some(ears.clone()),
        );

        // Before serving: each CA gets its first CRL, empty; only the current CA's goes to
        // the listener (responders load the kept CAs' from the store).
        let first = publisher.publish_if_stale().await.unwrap();
        assert_eq!(
            latest(&store, current.key_id()).await,
            Some((1, vec![])),
            "[{name}]"
        );
        assert_eq!(
            latest(&store, kept.key_id()).await,
            Some((1, vec![])),
            "[{name}]"
        );
        assert_eq!(ears.heard(), [Heard::Crl(1)], "[{name}]");

        // Still valid: a second start publishes nothing and waits about an interval.
        let again = publisher.publish_if_stale().await.unwrap();
        assert_eq!(
            latest(&store, current.key_id()).await.unwrap().0,
            1,
            "[{name}]"
        );
        assert_eq!(
            latest(&store, kept.key_id()).await.unwrap().0,
            1,
            "[{name}]"
        );
        assert_eq!(ears.heard().len(), 1, "[{name}]");
        assert_ne!(again, first, "[{name}] the wait shrinks as time passes");

        let running = tokio::spawn(publisher.clone().run(first));

        // A revocation of a kept CA's certificate: both CAs re-sign, each listing its own.
        let old = revoked_leaf(
            &store,
            &kept,
            "old.example",
            RevocationReason::KeyCompromise,
        )
        .await;
        publisher.revoked(&old, RevocationReason::KeyCompromise);
        let (n, listed) = published_after(&store, kept.key_id(), 1).await;
        assert_eq!(listed, [old.to_hex()], "[{name}] kept CA's CRL {n}");
        let (n, listed) = published_after(&store, current.key_id(), 1).await;
        assert!(
            listed.is_empty(),
            "[{name}] current CA's CRL {n}: {listed:?}"
        );
        assert_eq!(ears.heard()[1], Heard::Revoked(old.to_hex()), "[{name}]");

        // Two of the current CA's, revoked as superseded (4) and as removeFromCRL (8), which
        // the store accepts: both listed, the latter without a reason (8 belongs in delta
        // CRLs only, and a full CRL that carried it would be refused by the CA core).
        let (before, _) = latest(&store, current.key_id()).await.unwrap();
        let new = revoked_leaf(
            &store,
            &current,
            "new.example",
            RevocationReason::Superseded,
        )
        .await;
        let odd = revoked_leaf(
            &store,
            &current,
            "odd.example",
            RevocationReason::RemoveFromCrl,
        )
        .await;
        publisher.revoked(&new, RevocationReason::Superseded);
        publisher.revoked(&odd, RevocationReason::RemoveFromCrl);
        let (n, mut listed) = loop {
            let (n, listed) = published_after(&store, current.key_id(), before).await;
            if listed.len() == 2 {
                break (n, listed);
            }
        };
        listed.sort();
        let mut want = vec![new.to_hex(), odd.to_hex()];
        want.sort();
        assert_eq!(listed, want, "[{name}] CRL {n}");
        let crl = store
            .latest_crl(&hex::encode(current.key_id()))
            .await
            .unwrap()
            .unwrap();
        let reasons: Vec<(String, Option<String>)> = describe_crl(&crl.der)
            .unwrap()
            .revoked
            .into_iter()
            .map(|e| (e.serial, e.reason))
            .collect();
        assert!(
            reasons.contains(&(new.to_hex(), Some("superseded".into()))),
            "{reasons:?}"
        );
        assert!(reasons.contains(&(odd.to_hex(), None)), "{reasons:?}");

        // The listener hears of each current CRL just after it is stored, numbers only
        // growing, and of every revocation.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        let numbers = loop {
            let numbers: Vec<u64> = ears
                .heard()
                .into_iter()
                .filter_map(|h| match h {
                    Heard::Crl(n) => Some(n),
                    Heard::Revoked(_) => None,
                })
                .collect();
            if numbers.contains(&n) {
                break numbers;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "[{name}] {numbers:?} lacks {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "[{name}] {numbers:?}"
        );
        for serial in [&old, &new, &odd] {
            assert!(ears.heard().contains(&Heard::Revoked(serial.to_hex())));
        }

        running.abort();
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_crls_are_numbered_stored_and_audited() {
    for db in TestDb::all().await {
        let name = db.name();
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let bundle = generate_ca(&InitOptions::new("Root"), OffsetDateTime::now_utc()).unwrap();
        let root = root_crl_signer(&bundle.root_cert_pem, bundle.root_key).unwrap();
        let key_id = hex::encode(root.key_id());
        let validity = Duration::from_secs(90 * 86_400);

        // `signet init`: signed and numbered, but not stored (the CA's record stores it).
        let first = RevocationPublisher::sign_first_root_crl(&store, &root, validity)
            .await
            .unwrap();
        assert_eq!(
            (first.number, first.issuer_key_id.as_str()),
            (1, key_id.as_str())
        );
        assert_eq!(first.next_update - first.this_update, validity, "[{name}]");
        assert!(
            store.latest_crl(&key_id).await.unwrap().is_none(),
            "[{name}]"
        );

        // `signet ca root-crl`: the next number, stored, with an audit row.
        let crl = RevocationPublisher::publish_root_crl(&store, &root, validity, "local:test")
            .await
            .unwrap();
        assert_eq!((crl.number, crl.entries), (2, 0), "[{name}]");
        let stored = store.latest_crl(&key_id).await.unwrap().unwrap();
        assert_eq!((stored.number, &stored.der), (2, &crl.der), "[{name}]");
        assert_eq!(stored.next_update, crl.next_update);
        let view = describe_crl(&crl.der).unwrap();
        assert!(view.revoked.is_empty());
        assert_eq!(view.authority_key_id, Some(key_id.clone()));
        let audit = store.list_audit(1).await.unwrap();
        assert_eq!(audit[0].action, AuditAction::PublishRootCrl, "[{name}]");
        assert_eq!(audit[0].actor, "local:test");
        assert!(
            audit[0]
                .detail
                .contains(&format!("root {key_id}: CRL number 2, 0 entries")),
            "{}",
            audit[0].detail
        );

        let again = RevocationPublisher::publish_root_crl(&store, &root, validity, "local:test")
            .await
            .unwrap();
        assert_eq!(again.number, 3, "[{name}]");
        store.close().await;
    }
}

/// Revocation reasons outside RFC 5280's table, written into the database directly (7,
/// unused; 11, past the end; 300 and -1, not even a byte), never make CRL publishing fail
/// nor drop the certificate from the CRL: each is listed, revoked, with no reasonCode entry
/// extension (reason unknown), next to a normal keyCompromise entry. The CRL is read back
/// with x509-cert (`describe_crl`) and with openssl, which also checks its signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_stored_reasons_are_listed_without_a_reason() {
    for db in TestDb::all().await {
        let name = db.name();
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let ca = new_ca("Odd Reasons");
        let known = revoked_leaf(
            &store,
            &ca,
            "known.example",
            RevocationReason::KeyCompromise,
        )
        .await;
        let mut odd = Vec::new();
        for (i, code) in [7, 11, 300, -1].into_iter().enumerate() {
            let serial = recorded_leaf(&store, &ca, &format!("odd{i}.example")).await;
            signet_testkit::execute(
                db.url(),
                &format!(
                    "UPDATE certificates SET revoked_at = {}, revocation_reason = {code} \
                     WHERE serial = '{}'",
                    OffsetDateTime::now_utc().unix_timestamp(),
                    serial.to_hex()
                ),
            )
            .await;
            odd.push(serial);
        }
        let publisher = RevocationPublisher::new(
            store.clone(),
            ca.crl_signer().unwrap(),
            vec![],
            SCHEDULE,
            None,
        );
        publisher.publish_if_stale().await.unwrap();
        let crl = store
            .latest_crl(&hex::encode(ca.key_id()))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(crl.number, 1, "[{name}]");

        let view = describe_crl(&crl.der).unwrap();
        assert!(view.problems.is_empty(), "[{name}] {:?}", view.problems);
        let mut listed: Vec<(String, Option<String>)> = view
            .revoked
            .into_iter()
            .map(|e| (e.serial, e.reason))
            .collect();
        listed.sort();
        let mut want: Vec<(String, Option<String>)> =
            odd.iter().map(|s| (s.to_hex(), None)).collect();
        want.push((known.to_hex(), Some("keyCompromise".into())));
        want.sort();
        assert_eq!(listed, want, "[{name}]");

        // openssl: the signature verifies under the issuing CA, every serial is listed, and
        // only the keyCompromise entry carries a reason.
        let dir = tempfile::tempdir().unwrap();
        let (crl_path, ca_path) = (dir.path().join("issuing.crl"), dir.path().join("ca.pem"));
        std::fs::write(&crl_path, &crl.der).unwrap();
        std::fs::write(&ca_path, ca.chain_pem().concat()).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
            .arg(&crl_path)
            .arg("-CAfile")
            .arg(&ca_path)
            .output()
            .expect("openssl (apt-get install -y openssl)");
        let text = String::from_utf8_lossy(&out.stdout);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "[{name}] {err}");
        assert!(err.contains("verify OK"), "[{name}] {err}");
        for serial in odd.iter().chain([&known]) {
            assert!(
                text.to_uppercase().contains(&format!(
                    "SERIAL NUMBER: {}",
                    serial.to_hex().to_uppercase()
                )),
                "[{name}] {serial:?} not listed:\n{text}"
            );
        }
        assert_eq!(
            text.matches("X509v3 CRL Reason Code").count(),
            1,
            "[{name}]\n{text}"
        );
        assert_eq!(
            text.matches("Key Compromise").count(),
            1,
            "[{name}]\n{text}"
        );
        store.close().await;
    }
}
