//! High availability on PostgreSQL, end to end, with real servers made by the tests
//! (`initdb`, `pg_basebackup -R`, `pg_ctl promote`, on unix sockets in temporary
//! directories) and real `signet` processes:
//!
//! - a standalone `signet responder` on a read-only hot standby: it refuses to start without
//!   somewhere to file its signer request but the standby; given the primary for that, it
//!   answers `revoked` within 1 s plus the replication lag of a revocation made on the
//!   primary (judged by `openssl ocsp`), serves the CRL (`openssl crl -verify`), writes
//!   nothing to the standby, reports not ready once its standby stops streaming (the primary
//!   killed) and ready again once the standby is promoted;
//! - CRL leadership across `serve` replicas: one replica signs, revocations made through the
//!   other are in its next CRL, and when the leader is killed with SIGKILL the other
//!   publishes the next number within one `crl_interval`; CRL numbers are unique and grow
//!   in the order the CRLs were stored, across replicas and restarts.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_testkit::{Replication, TestDb};

mod common;
use common::db::psql;
use common::{Minter, Server, admin_token, client, csr, openssl, p, text};

/// What a client keeps of an issued certificate, as files openssl reads.
struct Issued {
    serial: String,
    leaf: PathBuf,
    issuing: PathBuf,
    /// Root then issuing CA: what `-CAfile` needs.
    chain: PathBuf,
}

/// Issues a certificate for `name` through `base` with a one-time token, and writes its
/// files under `dir`.
async fn issue(
    https: &reqwest::Client,
    base: &str,
    minter: &Minter,
    data: &Path,
    dir: &Path,
    name: &str,
) -> Issued {
    let csr = csr(dir, name);
    let resp = https
        .post(format!("{base}/v1/certificates"))
        .bearer_auth(minter.token_for(name, &[name]))
        .json(&json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let leaf = dir.join(format!("{name}.pem"));
    let issuing = dir.join("issuing.pem");
    let chain = dir.join("chain.pem");
    std::fs::write(&leaf, body["certificate"].as_str().unwrap()).unwrap();
    let issuing_pem = body["chain"][0].as_str().unwrap();
    std::fs::write(&issuing, issuing_pem).unwrap();
    let root = std::fs::read_to_string(data.join("root_ca.crt")).unwrap();
    std::fs::write(&chain, format!("{root}{issuing_pem}")).unwrap();
    Issued {
        serial: body["serial_number"].as_str().unwrap().to_string(),
        leaf,
        issuing,
        chain,
    }
}

async fn revoke(https: &reqwest::Client, base: &str, admin: &str, serial: &str) {
    let resp = https
        .post(format!("{base}/v1/certificates/{serial}/revoke"))
        .bearer_auth(admin)
        .json(&json!({ "reason": "keyCompromise" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// `openssl ocsp` (POST, with a nonce) against `url`: its verdict, with "Response verify
/// OK" checked.
fn ocsp(cert: &Issued, url: &str) -> String {
    let o = openssl(&[
        "ocsp",
        "-issuer",
        p(&cert.issuing),
        "-cert",
        p(&cert.leaf),
        "-url",
        url,
        "-CAfile",
        p(&cert.chain),
        "-timeout",
        "10",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "openssl ocsp {url}:\n{all}");
    assert!(all.contains("Response verify OK"), "{all}");
    all
}

/// `openssl crl -verify` of the DER CRL at `url`: its text, with "verify OK" checked.
async fn crl_text(http: &reqwest::Client, cert: &Issued, url: &str, dir: &Path) -> String {
    let der = http.get(url).send().await.unwrap();
    assert_eq!(der.status(), 200, "{url}");
    let file = dir.join("fetched.crl");
    std::fs::write(&file, der.bytes().await.unwrap()).unwrap();
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&file),
        "-CAfile",
        p(&cert.chain),
        "-verify",
        "-noout",
        "-text",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success() && all.contains("verify OK"), "{all}");
    all
}

/// A directory holding only the CA certificates (no key): what a standalone responder is
/// given.
fn certificates_only(data: &Path, at: &Path) -> PathBuf {
    std::fs::create_dir(at).unwrap();
    for file in ["issuing_ca.crt", "root_ca.crt"] {
        std::fs::copy(data.join(file), at.join(file)).unwrap();
    }
    at.to_path_buf()
}

/// Waits (at most `limit`) until `GET url` answers `status`; returns how long it took.
async fn wait_status(
    http: &reqwest::Client,
    server: &mut Server,
    url: &str,
    status: u16,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    loop {
        server.alive();
        if let Ok(r) = http.get(url).send().await
            && r.status().as_u16() == status
        {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{url} did not answer {status} within {limit:?}:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_responder_on_a_hot_standby_answers_revoked_within_a_second_plus_lag_and_writes_nothing()
{
    let pair = TestDb::replicated(Replication::Asynchronous).await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("SIGNET_DATABASE_URL", pair.primary.url())];
    let mut serve = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    let base = serve.base();
    serve.wait_for(&https, &serve.url("/readyz")).await;
    let minter = Minter::new(&data, &base);
    let admin = admin_token(&data);
    let certs = certificates_only(&data, &tmp.path().join("responder"));

    // On the standby alone it refuses to start: its signer request would need a write.
    let mut refused = Server::spawn_responder(
        tmp.path(),
        &[],
        &["--database-url", pair.standby.url(), "--dir", p(&certs)],
    );
    let status = refused.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1), "{}", refused.log());
    assert!(
        refused.log().contains("read-only PostgreSQL hot standby")
            && refused.log().contains("--signer-database-url"),
        "{}",
        refused.log()
    );

    // Reading from the standby, filing its signer request on the primary.
    let mut standby_responder = Server::spawn_responder(
        tmp.path(),
        &[],
        &[
            "--database-url",
            pair.standby.url(),
            "--signer-database-url",
            pair.primary.url(),
            "--dir",
            p(&certs),
        ],
    );
    standby_responder.ready().await;
    let port = standby_responder.ocsp_port();
    let ready = format!("http://127.0.0.1:{port}/readyz");
    wait_status(
        &https,
        &mut standby_responder,
        &ready,
        200,
        Duration::from_secs(60),
    )
    .await;
    assert!(
        standby_responder.log().contains("hot standby"),
        "{}",
        standby_responder.log()
    );
    // Its signer certificate was answered (and recorded) on the primary.
    let answered = psql(
        pair.primary.url(),
        "SELECT count(*) FROM ocsp_signer_requests WHERE cert_der IS NOT NULL",
    );
    assert_eq!(answered, ["1"], "{}", serve.log());

    let client_dir = tmp.path().join("client");
    std::fs::create_dir(&client_dir).unwrap();
    let cert = issue(&https, &base, &minter, &data, &client_dir, "ha.internal").await;
    let url = format!("http://127.0.0.1:{port}/ocsp");
    // Replicated by now or soon: "good" once the standby has the certificate.
    pair.standby
        .wait_replayed(&pair.primary, Duration::from_secs(10))
        .await;
    assert!(ocsp(&cert, &url).contains(": good"));

    revoke(&https, &base, &admin, &cert.serial).await;
    let revoked_at = Instant::now();
    let lag = pair
        .standby
        .wait_replayed(&pair.primary, Duration::from_secs(10))
        .await;
    let bound = Duration::from_secs(1) + lag;
    loop {
        let verdict = ocsp(&cert, &url);
        if verdict.contains(": revoked") {
            break;
        }
        assert!(verdict.contains(": good"), "{verdict}");
        assert!(
            revoked_at.elapsed() < bound,
            "the responder on the standby still says good {:?} after the revocation \
             (replication lag {lag:?}):\n{}",
            revoked_at.elapsed(),
            standby_responder.log_tail()
        );
    }
    eprintln!(
        "revoked on the standby's responder after {:?} (replication lag {lag:?})",
        revoked_at.elapsed()
    );
    // And the CRL it serves (published by serve on the primary, replicated) lists it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = crl_text(
            &https,
            &cert,
            &format!("http://127.0.0.1:{port}/crl/issuing.crl"),
            &client_dir,
        )
        .await;
        if text.to_ascii_lowercase().contains(&cert.serial) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CRL listing {}: {text}",
            cert.serial
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The primary dies: the standby stops streaming, and the responder says it is not
    // ready (its view can no longer be known fresh) while still answering.
    serve.kill9();
    pair.primary.stop_immediate();
    let unready = wait_status(
        &https,
        &mut standby_responder,
        &ready,
        503,
        Duration::from_secs(10),
    )
    .await;
    eprintln!("not ready {unready:?} after the primary stopped");
    assert!(ocsp(&cert, &url).contains(": revoked"));
    // Promoted, the former standby is a primary: ready again, listening for changes.
    pair.standby.promote();
    let back = wait_status(
        &https,
        &mut standby_responder,
        &ready,
        200,
        Duration::from_secs(10),
    )
    .await;
    eprintln!("ready again {back:?} after the promotion");
    assert!(
        standby_responder.log().contains("now accepts writes"),
        "{}",
        standby_responder.log()
    );
}

/// `[responder] crl_interval` and `crl_validity` set in a data directory's signet.toml.
fn set_crl_schedule(data: &Path, interval: &str) {
    let config = data.join("signet.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("crl_interval = \"1h\""), "{toml}");
    let toml = toml.replace(
        "crl_interval = \"1h\"",
        &format!("crl_interval = \"{interval}\""),
    );
    std::fs::write(&config, toml).unwrap();
}

/// The stored CRLs of the issuing CA: (number, created_at), by number, read with psql.
fn stored_crls(url: &str, key_id: &str) -> Vec<(u64, i64)> {
    psql(
        url,
        &format!(
            "SELECT number, created_at FROM crls WHERE issuer_key_id = '{key_id}' ORDER BY number"
        ),
    )
    .iter()
    .map(|line| {
        let (n, at) = line.split_once('|').unwrap();
        (n.parse().unwrap(), at.parse().unwrap())
    })
    .collect()
}

#[tokio::test]
async fn one_replica_signs_the_crls_and_another_takes_over_within_one_interval_when_it_dies() {
    // The shortest interval the configuration allows; the hand-over is asserted well
    // inside it.
    const INTERVAL: Duration = Duration::from_secs(60);
    const TAKEOVER: Duration = Duration::from_secs(5);
    let db = TestDb::private_postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("SIGNET_DATABASE_URL", db.url())];
    let o = common::signet_in(tmp.path(), &env, &["init", "--dir", p(&data)], "");
    assert!(o.status.success(), "{}", text(&o));
    set_crl_schedule(&data, "1m");
    let copy = tmp.path().join("copy");
    let o = Command::new("cp")
        .args(["-a", p(&data), p(&copy)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    let mut first = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    first.wait_for(&https, &first.url("/readyz")).await;
    let mut second = Server::start(tmp.path(), &env, &["--dir", p(&copy)]).await;
    second.wait_for(&https, &second.url("/readyz")).await;
    // The issuing CA's key id: the one that signed the servers' own certificates.
    let key_id = psql(
        db.url(),
        "SELECT DISTINCT c.issuer_key_id FROM certificates c JOIN audit_log a \
         ON a.serial = c.serial WHERE a.action = 'issue-server-cert'",
    );
    assert_eq!(key_id.len(), 1, "{key_id:?}");
    let key_id = key_id[0].clone();

    // The first to start leads; the second asks every second and is refused.
    let leads = |s: &Server| s.log().contains("now signs the CA's CRLs");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !leads(&first) {
        assert!(Instant::now() < deadline, "{}", first.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let initial = stored_crls(db.url(), &key_id);
    assert_eq!(
        initial.len(),
        1,
        "one CRL published at the first start: {initial:?}"
    );

    // A revocation made through the replica that does not lead is in the leader's next
    // CRL, within about a second (it watches the revocation sequence); the replica that
    // revoked signs nothing.
    let minter = Minter::new(&copy, &second.base());
    let dir = tmp.path().join("client");
    std::fs::create_dir(&dir).unwrap();
    let cert = issue(
        &https,
        &second.base(),
        &minter,
        &copy,
        &dir,
        "leader.internal",
    )
    .await;
    revoke(&https, &second.base(), &admin_token(&copy), &cert.serial).await;
    let revoked = Instant::now();
    let responder = format!("http://127.0.0.1:{}/crl/issuing.crl", first.ocsp_port());
    loop {
        let text = crl_text(&https, &cert, &responder, &dir).await;
        if text.to_ascii_lowercase().contains(&cert.serial) {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(3),
            "the leader's CRL does not list a revocation made through the other replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "listed by the leader's CRL {:?} after the revocation",
        revoked.elapsed()
    );
    assert!(!leads(&second), "{}", second.log());
    assert!(
        !second.log().contains("published a CRL"),
        "the second replica signed a CRL while the first led:\n{}",
        second.log()
    );

    // The leader dies: the other replica publishes the next number within one interval
    // (at once, on taking the lead).
    let last = stored_crls(db.url(), &key_id).last().unwrap().0;
    first.kill9();
    let killed = Instant::now();
    loop {
        let now = stored_crls(db.url(), &key_id);
        if now.last().unwrap().0 > last {
            break;
        }
        assert!(
            killed.elapsed() < TAKEOVER,
            "no CRL after {last} within {TAKEOVER:?} of the leader's death:\n{}",
            second.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = killed.elapsed();
    eprintln!("the other replica published the next CRL {took:?} after the leader died");
    assert!(took < INTERVAL);
    assert!(leads(&second), "{}", second.log());

    // The first comes back: it does not lead, and signs nothing.
    let mut again = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    again.wait_for(&https, &again.url("/readyz")).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!leads(&again), "{}", again.log());
    assert!(!again.log().contains("published a CRL"), "{}", again.log());

    // Numbers: unique (the table's key), growing in the order they were stored, and the
    // newest verifies and lists the revocation.
    let all = stored_crls(db.url(), &key_id);
    for pair in all.windows(2) {
        assert!(
            pair[0].0 < pair[1].0 && pair[0].1 <= pair[1].1,
            "CRL numbers out of order: {all:?}"
        );
    }
    let newest = crl_text(
        &https,
        &cert,
        &format!("http://127.0.0.1:{}/crl/issuing.crl", again.ocsp_port()),
        &dir,
    )
    .await;
    assert!(
        newest.to_ascii_lowercase().contains(&cert.serial),
        "{newest}"
    );
    for server in [&mut second, &mut again] {
        let (status, _) = server.terminate().await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
}

/// What the load's clients were told.
#[derive(Default, Debug)]
struct Told {
    /// Serials answered 201, with when.
    issued: Vec<(String, Instant)>,
    /// Answers other than 201, by status (0: no answer, the connection failed).
    other: std::collections::BTreeMap<u16, usize>,
}

/// Issuance load: `workers` clients, worker `i` sending to `targets[i % len]` (a replica's
/// URL and a minter of tokens for its audience), each request a fresh one-time token and
/// the same CSR, until `stop` is set. Only 201, 429 (rate limit)
/// and 503 are acceptable answers while a server is up; a replica killed gives no answer.
fn start_load(
    targets: &[(String, std::sync::Arc<Minter>)],
    workers: usize,
    root: &Path,
    csr_pem: &std::sync::Arc<String>,
    told: &std::sync::Arc<std::sync::Mutex<Told>>,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..workers)
        .map(|i| {
            let https = common::client_with(root, None, Duration::from_secs(20));
            let (base, minter) = targets[i % targets.len()].clone();
            let (csr_pem, told, stop) = (csr_pem.clone(), told.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let resp = https
                        .post(format!("{base}/v1/certificates"))
                        .bearer_auth(minter.token())
                        .json(&json!({ "csr": *csr_pem }))
                        .send()
                        .await;
                    let (status, body) = match resp {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            (status, r.text().await.unwrap_or_default())
                        }
                        Err(_) => (0, String::new()),
                    };
                    match status {
                        201 => {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            let serial = v["serial_number"].as_str().unwrap().to_string();
                            told.lock().unwrap().issued.push((serial, Instant::now()));
                        }
                        0 | 429 | 503 => {
                            *told.lock().unwrap().other.entry(status).or_default() += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        _ => panic!("issuance through {base} answered {status}: {body}"),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn serve_follows_a_failover_to_the_promoted_standby_and_loses_no_acknowledged_certificate() {
    let pair = TestDb::replicated(Replication::Synchronous).await;
    let url = pair.multi_host_url("target_session_attrs=read-write");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("SIGNET_DATABASE_URL", url.as_str())];
    let mut first = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let https = client(&root);
    first.wait_for(&https, &first.url("/readyz")).await;
    let copy = tmp.path().join("copy");
    let o = Command::new("cp")
        .args(["-a", p(&data), p(&copy)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut second = Server::start(tmp.path(), &env, &["--dir", p(&copy)]).await;
    second.wait_for(&https, &second.url("/readyz")).await;

    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let csr_pem = std::sync::Arc::new(csr(&work, "load.internal"));
    let told: std::sync::Arc<std::sync::Mutex<Told>> = std::sync::Arc::default();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let targets: Vec<_> = [&first, &second]
        .iter()
        .map(|s| (s.base(), std::sync::Arc::new(Minter::new(&data, &s.base()))))
        .collect();
    let load = start_load(&targets, 4, &root, &csr_pem, &told, &stop);
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The primary goes down hard; for a moment there is no primary at all.
    pair.primary.stop_immediate();
    let down = Instant::now();
    let before = told.lock().unwrap().issued.len();
    assert!(before > 0, "nothing issued before the failover: {told:?}");
    // /readyz tells the load balancer the truth meanwhile.
    let mut unready = false;
    while down.elapsed() < Duration::from_secs(2) {
        let r = https.get(first.url("/readyz")).send().await.unwrap();
        unready |= r.status() == 503;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unready, "/readyz never said 503 with no primary");
    pair.standby.promote();
    let promoted = Instant::now();

    // Issuance resumes on the new primary within 10 s, without restarting anything.
    let resumed = loop {
        let issued = told.lock().unwrap().issued.clone();
        if let Some((_, at)) = issued.iter().find(|(_, at)| *at > promoted) {
            break *at - promoted;
        }
        assert!(
            promoted.elapsed() < Duration::from_secs(10),
            "no certificate issued within 10 s of the promotion: {:?}\n{}\n{}",
            told.lock().unwrap().other,
            first.log_tail(),
            second.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // Each replica follows the failover on its own (its host check runs every 500 ms): one
    // may issue on the new primary while the other is still moving, so each gets the same
    // bound as issuance, 10 s from the promotion, to say ready again.
    for server in [&first, &second] {
        loop {
            let r = https.get(server.url("/readyz")).send().await.unwrap();
            if r.status() == 200 {
                break;
            }
            assert!(
                promoted.elapsed() < Duration::from_secs(10),
                "/readyz still {} 10 s after the promotion\n{}",
                r.status(),
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in load {
        w.await.unwrap();
    }
    let told = std::mem::take(&mut *told.lock().unwrap());
    eprintln!(
        "issuance resumed {resumed:?} after the promotion ({:?} after the primary stopped); \
         {} issued ({before} before the failover), other answers {:?}",
        promoted - down + resumed,
        told.issued.len(),
        told.other
    );
    assert!(
        !told.other.contains_key(&0),
        "a live replica did not answer: {told:?}"
    );
    // Every 201, before and after the failover, is on the new primary (read with psql).
    let serials: Vec<String> = told.issued.iter().map(|(s, _)| s.clone()).collect();
    common::db::assert_recorded(pair.standby.url(), "failover", &serials, &[]);
    for server in [&mut first, &mut second] {
        assert!(
            server
                .log()
                .contains("switched to another server of the list"),
            "{}",
            server.log()
        );
        let (status, _) = server.terminate().await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
}
