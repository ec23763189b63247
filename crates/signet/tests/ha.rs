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
//!   in the order the CRLs were stored, across replicas and restarts;
//! - `serve` replicas following a failover to a promoted standby under load;
//! - rate limits shared by three replicas: together within rate x time + burst;
//! - load through three `serve` replicas and two `signet responder`s (one on the standby)
//!   for over 30 s while one replica and one responder are killed with SIGKILL and
//!   restarted: every 201 stored, no serial twice, every revocation answered `revoked` by
//!   every live standalone responder within 1 s plus the replication lag, judged by
//!   `openssl ocsp`, and afterwards by every responder (the replicas' own too), with the
//!   CRLs they serve verified by `openssl crl` and listing every revocation.
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
#[derive(Debug)]
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

    // Numbers: unique (the table's key), growing in the order they were stored (each
    // seen along the way was newer than the one before), only the newest kept (a new CRL
    // removes the one it supersedes), and the newest verifies and lists the revocation.
    let all = stored_crls(db.url(), &key_id);
    assert_eq!(all.len(), 1, "superseded CRLs are removed: {all:?}");
    assert!(
        initial[0].0 <= last && last < all[0].0 && initial[0].1 <= all[0].1,
        "CRL numbers out of order: {initial:?}, then {last}, then {all:?}"
    );
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
    /// Every answer by (target index, status), with the last time each was seen.
    by_target: std::collections::BTreeMap<(usize, u16), (usize, Option<Instant>)>,
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
            let target = i % targets.len();
            let (base, minter) = targets[target].clone();
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
                    {
                        let mut told = told.lock().unwrap();
                        let seen = told.by_target.entry((target, status)).or_default();
                        seen.0 += 1;
                        seen.1 = Some(Instant::now());
                    }
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

/// `n` `signet serve` replicas of one CA on `url`: the first start makes the data directory
/// (CA, default provisioner), `edit` then changes its signet.toml, and each replica runs on
/// its own copy of the directory (`data`, `copy-1`, ...), as replicas behind a load balancer
/// share one configuration and one database. Returns the replicas, ready, and the directories.
async fn replicas(
    tmp: &Path,
    url: &str,
    n: usize,
    edit: impl Fn(&str) -> String,
) -> (Vec<Server>, Vec<PathBuf>) {
    let data = tmp.join("data");
    let env = [("SIGNET_DATABASE_URL", url)];
    let mut first = Server::start(tmp, &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    first.wait_for(&https, &first.url("/readyz")).await;
    let (status, _) = first.terminate().await;
    assert!(status.success(), "{status}:\n{}", first.log());
    let config = data.join("signet.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, edit(&toml)).unwrap();
    let mut dirs = vec![data.clone()];
    for i in 1..n {
        let copy = tmp.join(format!("copy-{i}"));
        let o = Command::new("cp")
            .args(["-a", p(&data), p(&copy)])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        dirs.push(copy);
    }
    let mut servers = Vec::new();
    for dir in &dirs {
        let mut s = Server::start(tmp, &env, &["--dir", p(dir)]).await;
        s.wait_for(&https, &s.url("/readyz")).await;
        servers.push(s);
    }
    (servers, dirs)
}

/// Three replicas on one PostgreSQL, the provisioner limited to 5/s with a burst of 5:
/// six clients flood them round-robin for 4 s. Together the replicas grant at most
/// 5 + 5 x elapsed certificates (the budget is shared through the database, not kept per
/// process, which would allow three times as much), refuse the rest with 429 rate-limited
/// and a Retry-After, and every 201 is in the database (read with psql).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_hold_across_replicas() {
    const RATE: f64 = 5.0;
    const FLOOD: Duration = Duration::from_secs(4);
    let db = TestDb::private_postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let (mut servers, dirs) = replicas(tmp.path(), db.url(), 3, |toml| {
        let entry = "name = \"default\"\ntype = \"token\"\n";
        assert!(toml.contains(entry), "{toml}");
        toml.replace(
            entry,
            &format!("{entry}rate_limit_per_second = 5\nrate_limit_burst = 5\n"),
        )
    })
    .await;
    let root = dirs[0].join("root_ca.crt");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let csr_pem = std::sync::Arc::new(csr(&work, "load.internal"));
    let targets: Vec<_> = servers
        .iter()
        .map(|s| {
            (
                s.base(),
                std::sync::Arc::new(Minter::new(&dirs[0], &s.base())),
            )
        })
        .collect();

    let started = Instant::now();
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let https = common::client_with(&root, None, Duration::from_secs(20));
            let (base, minter) = targets[i % targets.len()].clone();
            let csr_pem = csr_pem.clone();
            tokio::spawn(async move {
                let (mut issued, mut refused) = (Vec::new(), 0usize);
                while started.elapsed() < FLOOD {
                    let resp = https
                        .post(format!("{base}/v1/certificates"))
                        .bearer_auth(minter.token())
                        .json(&json!({ "csr": *csr_pem }))
                        .send()
                        .await
                        .unwrap();
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    let body: Value = resp.json().await.unwrap();
                    match status {
                        201 => issued.push(body["serial_number"].as_str().unwrap().to_string()),
                        429 => {
                            assert_eq!(body["type"], "urn:signet:problem:rate-limited", "{body}");
                            let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
                            assert!((1..=2).contains(&secs), "Retry-After {secs}");
                            refused += 1;
                            // Bounded load: a refused client pauses a moment.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        _ => panic!("{base} answered {status}: {body}"),
                    }
                }
                (issued, refused, Instant::now())
            })
        })
        .collect();
    let (mut issued, mut refused, mut end) = (Vec::new(), 0, started);
    for c in clients {
        let (i, r, e) = c.await.unwrap();
        issued.extend(i);
        refused += r;
        end = end.max(e);
    }
    let elapsed = (end - started).as_secs_f64();
    let budget = RATE + RATE * elapsed;
    eprintln!(
        "3 replicas: {} issued, {refused} refused in {elapsed:.2} s (shared budget {budget:.1})",
        issued.len()
    );
    assert!(
        issued.len() as f64 <= budget,
        "{} issued in {elapsed:.2} s through 3 replicas, over the shared budget {budget:.1}",
        issued.len()
    );
    assert!(
        issued.len() as f64 >= 0.6 * budget,
        "{} issued: the budget was not used",
        issued.len()
    );
    assert!(
        (issued.len() + refused) as f64 > 3.0 * budget,
        "the flood ({} requests) would not have exceeded per-process budgets",
        issued.len() + refused
    );
    common::db::assert_recorded(db.url(), "rate limits", &issued, &[]);
    for server in &mut servers {
        let (status, _) = server.terminate().await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
}

/// `openssl ocsp` against `url` as [`ocsp`] does, but `None` when it fails (the responder
/// is down).
fn try_ocsp(cert: &Issued, url: &str) -> Option<String> {
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
        "5",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    if !o.status.success() {
        return None;
    }
    assert!(all.contains("Response verify OK"), "{all}");
    Some(all)
}

/// A standalone responder reading `db` (and filing its signer request on `signer`, when
/// given), over a certificates-only copy of `data` of its own, on `listen`.
fn spawn_responder(
    tmp: &Path,
    data: &Path,
    name: &str,
    db: &str,
    signer: Option<&str>,
    listen: &str,
) -> Server {
    let dir = tmp.join(name);
    if !dir.exists() {
        certificates_only(data, &dir);
    }
    let mut args = vec!["--database-url", db, "--dir", p(&dir), "--listen", listen];
    if let Some(signer) = signer {
        args.extend_from_slice(&["--signer-database-url", signer]);
    }
    Server::spawn_responder(tmp, &[], &args)
}

/// One revocation made during the load, and how each responder came to say so.
struct Revocation {
    cert: Issued,
    /// The replication lag measured after it (the standby's bound is 1 s plus this).
    lag: Duration,
    /// Per responder: how long after the revocation the first `revoked` was asked for
    /// (None: the responder was down meanwhile).
    seen: Vec<Option<Duration>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn load_through_three_replicas_and_two_responders_survives_kill_9_of_one_of_each() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    const LOAD: Duration = Duration::from_secs(32);
    let pair = Arc::new(TestDb::replicated(Replication::Asynchronous).await);
    let tmp = tempfile::tempdir().unwrap();
    let (mut servers, dirs) =
        replicas(tmp.path(), pair.primary.url(), 3, |toml| toml.to_string()).await;
    let data = dirs[0].clone();
    let root = data.join("root_ca.crt");
    let https = client(&root);
    let admin = admin_token(&data);

    // Responder 0 reads the primary; responder 1 the standby (its signer certificate comes
    // through the primary).
    let primary_url = pair.primary.url().to_string();
    let standby_url = pair.standby.url().to_string();
    let mut responders = vec![
        spawn_responder(
            tmp.path(),
            &data,
            "responder-0",
            &primary_url,
            None,
            "127.0.0.1:0",
        ),
        spawn_responder(
            tmp.path(),
            &data,
            "responder-1",
            &standby_url,
            Some(&primary_url),
            "127.0.0.1:0",
        ),
    ];
    // The standalone responders' ports (the replicas' own are added for the final checks).
    let mut ports = Vec::new();
    for r in &mut responders {
        r.ready().await;
        let port = r.ocsp_port();
        let ready = format!("http://127.0.0.1:{port}/readyz");
        wait_status(&https, r, &ready, 200, Duration::from_secs(60)).await;
        ports.push(port);
    }
    let ocsp_urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/ocsp"))
        .collect();
    let down: Arc<Vec<AtomicBool>> = Arc::new(vec![AtomicBool::new(false), AtomicBool::new(false)]);

    // Issuance load: four clients round-robin over the three replicas.
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let csr_pem = Arc::new(csr(&work, "load.internal"));
    let told: Arc<Mutex<Told>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<_> = servers
        .iter()
        .map(|s| (s.base(), Arc::new(Minter::new(&data, &s.base()))))
        .collect();
    let started = Instant::now();
    let load = start_load(&targets, 4, &root, &csr_pem, &told, &stop);

    // Revocations: about one a second, issued through replica 0 and revoked through
    // replica 2 (neither is killed), each then asked of every live responder until it
    // says revoked. A "good" asked for later than 1 s plus the replication lag after the
    // revocation fails the test.
    let revoker = {
        let (pair, stop, down, ocsp_urls) =
            (pair.clone(), stop.clone(), down.clone(), ocsp_urls.clone());
        let (issue_base, revoke_base) = (servers[0].base(), servers[2].base());
        let minter = Minter::new(&data, &issue_base);
        let (data, admin, root) = (data.clone(), admin.clone(), root.clone());
        let dir = tmp.path().join("revoked");
        std::fs::create_dir(&dir).unwrap();
        tokio::spawn(async move {
            let https = client(&root);
            let mut done: Vec<Revocation> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let name = format!("rev-{}.internal", done.len());
                let cert = issue(&https, &issue_base, &minter, &data, &dir, &name).await;
                // The certificate is on the standby before the revocation, so that the
                // standby's responder has something to say "good" about.
                pair.standby
                    .wait_replayed(&pair.primary, Duration::from_secs(10))
                    .await;
                revoke(&https, &revoke_base, &admin, &cert.serial).await;
                let revoked_at = Instant::now();
                let lag = pair
                    .standby
                    .wait_replayed(&pair.primary, Duration::from_secs(10))
                    .await;
                let bound = Duration::from_secs(1) + lag;
                let cert = Arc::new(cert);
                let mut seen = Vec::new();
                for (i, url) in ocsp_urls.iter().enumerate() {
                    let mut first = None;
                    while !down[i].load(Ordering::Relaxed) {
                        let asked = revoked_at.elapsed();
                        let (c, u) = (cert.clone(), url.clone());
                        let verdict = tokio::task::spawn_blocking(move || try_ocsp(&c, &u))
                            .await
                            .unwrap();
                        match verdict {
                            Some(v) if v.contains(": revoked") => {
                                first = Some(asked);
                                break;
                            }
                            Some(v) => {
                                assert!(v.contains(": good"), "{v}");
                                assert!(
                                    asked < bound,
                                    "responder {i} said good {asked:?} after the revocation of \
                                     {} (bound {bound:?})",
                                    cert.serial
                                );
                            }
                            // Down (being killed): checked again after the restart.
                            None => assert!(
                                revoked_at.elapsed() < Duration::from_secs(30),
                                "responder {i} does not answer"
                            ),
                        }
                    }
                    seen.push(first);
                }
                done.push(Revocation {
                    cert: Arc::try_unwrap(cert).unwrap(),
                    lag,
                    seen,
                });
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
            done
        })
    };

    // The faults: replica 1 and the standby's responder killed with SIGKILL, and restarted
    // on the same addresses 5 s later.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let serve_port = servers[1].port();
    down[1].store(true, Ordering::Relaxed);
    responders[1].kill9();
    servers[1].kill9();
    let killed = Instant::now();
    eprintln!(
        "killed replica 1 and responder 1 at {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut restarted = Server::start(
        tmp.path(),
        &[("SIGNET_DATABASE_URL", pair.primary.url())],
        &[
            "--dir",
            p(&dirs[1]),
            "--listen",
            &format!("127.0.0.1:{serve_port}"),
        ],
    )
    .await;
    restarted.wait_for(&https, &restarted.url("/readyz")).await;
    servers[1] = restarted;
    let back = Instant::now();
    let mut again = spawn_responder(
        tmp.path(),
        &data,
        "responder-1",
        &standby_url,
        Some(&primary_url),
        &format!("127.0.0.1:{}", ports[1]),
    );
    again.ready().await;
    let ready = format!("http://127.0.0.1:{}/readyz", ports[1]);
    wait_status(&https, &mut again, &ready, 200, Duration::from_secs(30)).await;
    responders[1] = again;
    down[1].store(false, Ordering::Relaxed);
    eprintln!(
        "replica 1 and responder 1 back {:?} after the kill",
        killed.elapsed()
    );

    while started.elapsed() < LOAD {
        for s in servers.iter_mut() {
            s.alive();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in load {
        w.await.unwrap();
    }
    let revocations = revoker.await.unwrap();
    let ran = started.elapsed();
    let told = std::mem::take(&mut *told.lock().unwrap());
    eprintln!(
        "{} issued in {ran:?} through 3 replicas, {} revoked; other answers {:?}; by replica \
         and status {:?}",
        told.issued.len(),
        revocations.len(),
        told.other,
        told.by_target
    );
    assert!(ran >= Duration::from_secs(30));
    // The replicas never killed answered every request; the killed one answered before
    // its death and after its restart.
    for t in [0, 2] {
        assert!(
            !told.by_target.contains_key(&(t, 0)),
            "replica {t} did not answer: {:?}",
            told.by_target
        );
    }
    let last_201_of_1 = told.by_target.get(&(1, 201)).and_then(|s| s.1);
    assert!(
        last_201_of_1.is_some_and(|at| at > back),
        "replica 1 issued nothing after its restart: {:?}",
        told.by_target
    );
    assert!(
        revocations.len() >= 10,
        "only {} revocations",
        revocations.len()
    );

    // Every 201 is on the primary once, whole, with its audit row; every revocation too.
    let mut issued: Vec<String> = told.issued.iter().map(|(s, _)| s.clone()).collect();
    issued.extend(revocations.iter().map(|r| r.cert.serial.clone()));
    let revoked: Vec<String> = revocations.iter().map(|r| r.cert.serial.clone()).collect();
    common::db::assert_recorded(pair.primary.url(), "load with faults", &issued, &revoked);

    // Every revocation made during the run is answered revoked by every responder now:
    // both standalone ones (the restarted one included) and the three replicas' own; and
    // their CRLs verify and list every one.
    pair.standby
        .wait_replayed(&pair.primary, Duration::from_secs(10))
        .await;
    ports.extend(servers.iter().map(|s| s.ocsp_port()));
    let every_ocsp: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/ocsp"))
        .collect();
    for r in &revocations {
        for url in &every_ocsp {
            let verdict = ocsp(&r.cert, url);
            assert!(
                verdict.contains(": revoked"),
                "{}: {verdict}",
                r.cert.serial
            );
        }
    }
    let check = tmp.path().join("crl-check");
    std::fs::create_dir(&check).unwrap();
    for port in &ports {
        let url = format!("http://127.0.0.1:{port}/crl/issuing.crl");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = crl_text(&https, &revocations[0].cert, &url, &check)
                .await
                .to_ascii_lowercase();
            let missing: Vec<_> = revoked.iter().filter(|s| !text.contains(*s)).collect();
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the CRL of {url} lacks {missing:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let worst: Vec<Option<Duration>> = (0..2)
        .map(|i| revocations.iter().filter_map(|r| r.seen[i]).max())
        .collect();
    let max_lag = revocations.iter().map(|r| r.lag).max();
    eprintln!(
        "slowest first `revoked` per responder {worst:?} (max replication lag {max_lag:?}); \
         seen while up: {:?}",
        (0..2)
            .map(|i| revocations.iter().filter(|r| r.seen[i].is_some()).count())
            .collect::<Vec<_>>()
    );
    for s in servers.iter_mut().chain(responders.iter_mut()) {
        let (status, _) = s.terminate().await;
        assert!(status.success(), "{status}:\n{}", s.log());
    }
}
