//! The authority on its own, against a real CA and a real (SQLite) store: what it decides for
//! each kind of requester, what it records, and that a refusal records nothing. The API's
//! tests (`crates/signet-api/tests`) drive the same paths over HTTP.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use signet_authority::{
    Authority, HolderProof, IssueRequest, KubernetesNames, Provisioner, Refusal, RenewRequest,
    Requester, SingleUse,
};
use signet_ca::{
    InitOptions, IssuanceUrls, IssuingCa, KeyType, OffsetDateTime, Policy, Profile, ProfileLimits,
    SubjectName, generate_ca,
};
use signet_store::Store;
use signet_testkit::TestDb;

struct Env {
    _db: TestDb,
    store: Store,
    authority: Authority,
}

async fn env() -> Env {
    let db = TestDb::sqlite().await;
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    let bundle = generate_ca(&InitOptions::new("Authority CA"), OffsetDateTime::now_utc()).unwrap();
    let ca = IssuingCa::new(
        &bundle.issuing_cert_pem,
        &bundle.root_cert_pem,
        bundle.issuing_key,
        IssuanceUrls::default(),
    )
    .unwrap();
    let profiles: BTreeMap<Profile, ProfileLimits> = Profile::ALL
        .iter()
        .map(|p| (*p, ProfileLimits::default()))
        .collect();
    let ca_wide = Policy {
        dns: vec!["*.internal".parse().unwrap()],
        ..Policy::default()
    };
    let authority = Authority::new(Arc::new(ca), store.clone(), ca_wide, profiles);
    Env {
        _db: db,
        store,
        authority,
    }
}

fn csr(names: &[&str]) -> String {
    let key = KeyType::P256.generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn names(tagged: &[&str]) -> BTreeSet<SubjectName> {
    tagged
        .iter()
        .map(|n| SubjectName::parse_tagged(n).unwrap())
        .collect()
}

fn token_provisioner() -> Arc<Provisioner> {
    Arc::new(Provisioner::token(
        "ci",
        Policy {
            dns: vec!["*.svc.internal".parse().unwrap()],
            ..Policy::default()
        },
    ))
}

fn request(csr: &str) -> IssueRequest<'_> {
    IssueRequest {
        csr: csr.as_bytes(),
        profile: None,
        ttl: None,
    }
}

#[tokio::test]
async fn a_token_bounds_the_names_and_the_record_names_its_requester() {
    let e = env().await;
    let requester = Requester::Token {
        provisioner: token_provisioner(),
        subject: "build:7".into(),
        sans: names(&["dns:api.svc.internal"]),
    };
    // A name outside the token's sans: refused, nothing recorded.
    let outside = csr(&["api.svc.internal", "db.svc.internal"]);
    match e.authority.issue(request(&outside), &requester, None).await {
        Err(Refusal::NameDenied { rule, names }) => {
            assert!(rule.contains("token's sans"), "{rule}");
            assert_eq!(names, vec!["dns:db.svc.internal"]);
        }
        other => panic!("expected name-denied, got {other:?}"),
    }
    assert_eq!(e.store.count_certificates().await.unwrap(), 0);

    let inside = csr(&["api.svc.internal"]);
    let recorded = e
        .authority
        .issue(request(&inside), &requester, None)
        .await
        .unwrap();
    assert_eq!(recorded.requester, "token:ci:build:7");
    assert_eq!(recorded.counted_against, "ci");
    assert_eq!(recorded.certificate.profile, Profile::Server);
    let rec = e
        .store
        .get_certificate(&recorded.serial)
        .await
        .unwrap()
        .expect("recorded before success");
    assert_eq!(rec.requester, "token:ci:build:7");
    assert_eq!(rec.der, recorded.certificate.der);
    assert_eq!(rec.sans, vec!["dns:api.svc.internal"]);
}

#[tokio::test]
async fn a_token_within_its_sans_still_meets_its_provisioners_policy() {
    let e = env().await;
    let requester = Requester::Token {
        provisioner: token_provisioner(),
        subject: "build:7".into(),
        sans: names(&["dns:api.example.com"]),
    };
    let out_of_policy = csr(&["api.example.com"]);
    match e
        .authority
        .issue(request(&out_of_policy), &requester, None)
        .await
    {
        Err(Refusal::NameDenied { rule, .. }) => {
            assert_eq!(
                rule,
                "names not allowed by the policy of provisioner \"ci\""
            );
        }
        other => panic!("expected name-denied, got {other:?}"),
    }
    assert_eq!(e.store.count_certificates().await.unwrap(), 0);
}

#[tokio::test]
async fn a_replayed_single_use_token_records_nothing() {
    let e = env().await;
    let requester = Requester::Token {
        provisioner: token_provisioner(),
        subject: "build:7".into(),
        sans: names(&["dns:api.svc.internal"]),
    };
    let burn = SingleUse {
        namespace: "ci".into(),
        jti: "jti-1".into(),
        expires_at: OffsetDateTime::now_utc() + time::Duration::minutes(5),
    };
    let first = csr(&["api.svc.internal"]);
    e.authority
        .issue(request(&first), &requester, Some(&burn))
        .await
        .unwrap();
    let again = csr(&["api.svc.internal"]);
    assert!(matches!(
        e.authority
            .issue(request(&again), &requester, Some(&burn))
            .await,
        Err(Refusal::TokenReplayed)
    ));
    assert_eq!(e.store.count_certificates().await.unwrap(), 1);
}

#[tokio::test]
async fn a_kubernetes_workload_gets_its_template_names_and_only_if_admitted() {
    let e = env().await;
    let templates = KubernetesNames::new(&["prod".into()], &[], None, None).unwrap();
    let provisioner = Arc::new(Provisioner::kubernetes(
        "cluster",
        Policy::default(),
        templates.clone(),
    ));
    let workload = |ns: &str| Requester::Kubernetes {
        provisioner: provisioner.clone(),
        namespace: ns.into(),
        service_account: "api".into(),
        names: templates.names_for(ns, "api").unwrap(),
    };
    // A CSR without names gets the templates; the default profile is peer.
    let bare = csr(&[]);
    let recorded = e
        .authority
        .issue(request(&bare), &workload("prod"), None)
        .await
        .unwrap();
    assert_eq!(recorded.requester, "k8s:cluster:prod/api");
    assert_eq!(recorded.certificate.profile, Profile::Peer);
    let got: BTreeSet<String> = recorded
        .certificate
        .names
        .iter()
        .map(SubjectName::to_tagged)
        .collect();
    let want: BTreeSet<String> = [
        "dns:api.prod.svc",
        "dns:api.prod.svc.cluster.local",
        "uri:spiffe://cluster.local/ns/prod/sa/api",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);
    // Another workload's name is refused; a namespace the allow-list lacks too.
    let foreign = csr(&["web.prod.svc"]);
    assert!(matches!(
        e.authority
            .issue(request(&foreign), &workload("prod"), None)
            .await,
        Err(Refusal::NameDenied { .. })
    ));
    assert!(matches!(
        e.authority
            .issue(request(&bare), &workload("dev"), None)
            .await,
        Err(Refusal::ServiceAccountDenied(_))
    ));
    assert_eq!(e.store.count_certificates().await.unwrap(), 1);
}

#[tokio::test]
async fn a_renewal_follows_its_line_to_the_provisioner_in_force_now() {
    let e = env().await;
    let provisioner = token_provisioner();
    let requester = Requester::Token {
        provisioner: provisioner.clone(),
        subject: "build:7".into(),
        sans: names(&["dns:api.svc.internal"]),
    };
    let first = e
        .authority
        .issue(request(&csr(&["api.svc.internal"])), &requester, None)
        .await
        .unwrap();
    let rec = e
        .store
        .get_certificate(&first.serial)
        .await
        .unwrap()
        .unwrap();
    let info = signet_ca::CertificateInfo::from_der(&rec.der).unwrap();
    let holder = Requester::Holder {
        serial: info.serial.clone(),
        proof: HolderProof::Mtls,
    };
    let renewal = RenewRequest {
        record: &rec,
        spki_der: &info.spki_der,
        common_name: info.common_name.as_deref(),
        csr: None,
        ttl: None,
    };
    // The provisioner still configured: renewed as the line's, by the holder.
    let renewed = e
        .authority
        .renew(
            renewal,
            &holder,
            |n| (n == "ci").then(|| provisioner.clone()),
            None,
        )
        .await
        .unwrap();
    assert_eq!(renewed.requester, "token:ci:build:7");
    assert_eq!(renewed.counted_against, "ci");
    assert_eq!(renewed.certificate.names, first.certificate.names);
    // Once the provisioner is gone, the line cannot renew, and nothing more is recorded.
    match e.authority.renew(renewal, &holder, |_| None, None).await {
        Err(Refusal::RenewalDenied(why)) => assert!(why.contains("\"ci\""), "{why}"),
        other => panic!("expected a refused renewal, got {other:?}"),
    }
    assert_eq!(e.store.count_certificates().await.unwrap(), 2);
}

#[tokio::test]
async fn the_local_holder_meets_the_ca_wide_policy_in_the_ca_cores_words() {
    let e = env().await;
    let local = Requester::Local {
        user: Some("ops".into()),
        uid: Some(1000),
    };
    let recorded = e
        .authority
        .issue(request(&csr(&["db.internal"])), &local, None)
        .await
        .unwrap();
    assert_eq!(recorded.requester, "local:ops(uid 1000)");
    assert_eq!(recorded.counted_against, "admin");
    assert!(matches!(
        e.authority
            .issue(request(&csr(&["db.example.com"])), &local, None)
            .await,
        Err(Refusal::Ca(signet_ca::CaError::NameDenied { .. }))
    ));
    assert_eq!(e.store.count_certificates().await.unwrap(), 1);
}

#[tokio::test]
async fn the_server_and_ocsp_signers_are_recorded_as_themselves() {
    let e = env().await;
    // The server names itself: any name, outside the CA-wide policy too.
    let server = e
        .authority
        .issue_csr(
            signet_ca::Csr::from_pem_or_der(csr(&["localhost", "127.0.0.1"]).as_bytes()).unwrap(),
            Profile::Server,
            signet_authority::Ttl::Default,
            &Requester::Server,
            None,
        )
        .await
        .unwrap();
    let rec = e
        .store
        .get_certificate(&server.serial)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec.requester, signet_store::SERVER_REQUESTER);
    assert_eq!(rec.sans, vec!["dns:localhost", "ip:127.0.0.1"]);

    let key = KeyType::P256.generate().unwrap();
    let signer = e
        .authority
        .certify_ocsp_signer(
            &rcgen::PublicKeyData::subject_public_key_info(&key),
            std::time::Duration::from_secs(3600),
            None,
        )
        .await
        .unwrap();
    let rec = e
        .store
        .get_certificate(&signer.serial)
        .await
        .unwrap()
        .expect("recorded before it is handed out");
    assert_eq!(rec.requester, "signet-responder");
    assert_eq!(rec.profile, signet_ca::OcspSignerCertificate::PROFILE);
    assert_eq!(rec.der, signer.der);
    assert!(rec.sans.is_empty());
    assert_eq!(e.store.count_certificates().await.unwrap(), 2);
}
