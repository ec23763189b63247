//! Fault tests (issue 7, hardening; issue 14, faults met in production) against the real
//! `signet serve` binary. After each fault the database is read back with `psql` or
//! `sqlite3` (`common::db`), not through Signet: every certificate answered 201 is stored
//! once, whole (its DER holds its serial, its audit row is there), and no serial repeats.
//!
//! - PostgreSQL stopped under a running server: issuance, revocation and `/readyz` answer 503
//!   `database-unavailable` promptly, the OCSP responder still answers a cached request
//!   `good` and an uncached one with an OCSP error status (never an HTTP 500), and everything
//!   recovers by itself once the database is back, with nothing issued while it was down.
//! - PostgreSQL stopped, killed with SIGKILL (crash recovery on restart), frozen with SIGSTOP
//!   (503 within the configured `[database] timeout`, then SIGCONT), and the server's
//!   connection pool exhausted (a lock held on the certificates table), each under issuance
//!   load: requests meet the fault (503), and issuance recovers by itself afterwards.
//!   These tests stop or signal the database server, so they always start a private
//!   cluster (`TestDb::private_postgres`), also when `DATABASE_URL` names a shared server.
//! - `kill -9` under concurrent issuance and revocation, three times on one data directory
//!   and database (SQLite, PostgreSQL): every certificate a client received a 201 for is in
//!   the database afterwards, every acknowledged revocation holds, no serial repeats, and the
//!   CRL Number after a restart is never below one the responder served before.
//! - The audit log fails closed: with a trigger refusing every `audit_log` insert, issuance
//!   and revocation answer 503 `audit-unavailable` and record nothing (certificate and audit row are one
//!   transaction); with the trigger dropped, issuance works again without a restart.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_testkit::TestDb;

mod common;
use common::{
    Minter, POLL, STARTUP, Server, admin_token, base_command, client, csr, openssl, p, post_issue,
    problem, serials, text, token,
};

/// How long a refusal may take while the database is down: the store's pool acquire timeout
/// (10 s) plus slack, well under the API's 30 s request timeout.
const PROMPT_REFUSAL: Duration = Duration::from_secs(15);
/// How long the server may take to recover once the database is back.
const RECOVERY: Duration = Duration::from_secs(20);

/// The `responseStatus` of a DER OCSPResponse: `SEQUENCE { ENUMERATED status, ... }`.
fn ocsp_response_status(der: &[u8]) -> u8 {
    assert!(
        der.len() >= 5 && der[0] == 0x30,
        "not an OCSPResponse: {der:02x?}"
    );
    let header = match der[1] {
        n if n < 0x80 => 2,
        n => 2 + usize::from(n & 0x7f),
    };
    assert_eq!(
        &der[header..header + 2],
        &[0x0a, 0x01],
        "no responseStatus: {der:02x?}"
    );
    der[header + 2]
}

/// A DER OCSP request for `leaf` made by `openssl ocsp -reqout`, with or without a nonce.
fn ocsp_request(dir: &Path, tag: &str, issuing: &Path, leaf: &Path, nonce: bool) -> Vec<u8> {
    let out = dir.join(format!("{tag}.ocsp-req.der"));
    let mut args = vec!["ocsp"];
    args.push(if nonce { "-nonce" } else { "-no_nonce" });
    args.extend_from_slice(&["-issuer", p(issuing), "-cert", p(leaf), "-reqout", p(&out)]);
    let o = openssl(&args);
    assert!(o.status.success(), "{}", text(&o));
    fs::read(out).unwrap()
}

/// The GET form of an OCSP request (RFC 6960 appendix A.1): base64, URL-encoded.
fn ocsp_get_path(req: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(req);
    let enc = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!("/ocsp/{enc}")
}

/// openssl's verdict on a saved OCSP response for `leaf` (signature verified up to `root`).
fn ocsp_verdict(dir: &Path, resp: &[u8], issuing: &Path, leaf: &Path, root: &Path) -> String {
    ocsp_verdict_for(dir, false, resp, issuing, leaf, root)
}

/// As [`ocsp_verdict`], for a response to a request with a nonce: `openssl ocsp -respin`
/// cannot match a nonce it did not send itself (it says "Nonce Verify error" even with
/// `-reqin`), so the nonce is left to the responder's own tests
/// (`nonces_are_echoed_and_never_cached`) and everything else is verified.
fn ocsp_verdict_for(
    dir: &Path,
    had_nonce: bool,
    resp: &[u8],
    issuing: &Path,
    leaf: &Path,
    root: &Path,
) -> String {
    let file = dir.join("ocsp-resp.der");
    fs::write(&file, resp).unwrap();
    let chain = dir.join("ocsp-chain.pem");
    fs::write(
        &chain,
        format!(
            "{}{}",
            fs::read_to_string(root).unwrap(),
            fs::read_to_string(issuing).unwrap()
        ),
    )
    .unwrap();
    let mut args = vec![
        "ocsp",
        "-respin",
        p(&file),
        "-issuer",
        p(issuing),
        "-cert",
        p(leaf),
        "-CAfile",
        p(&chain),
    ];
    if had_nonce {
        args.push("-no_nonce");
    }
    let o = openssl(&args);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "openssl ocsp -respin:\n{all}");
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_refuses_promptly_ocsp_serves_cache_and_recovers() {
    // It stops and starts PostgreSQL: a private cluster, whatever DATABASE_URL says.
    let db = TestDb::private_postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let mut server = Server::start(
        tmp.path(),
        &[("SIGNET_DATABASE_URL", db.url())],
        &["--dir", p(&data)],
    )
    .await;
    let root = data.join("root_ca.crt");
    let https = client(&root);
    server.wait_ready(&https).await;
    assert!(
        !data.join("signet.db").exists(),
        "SQLite was used instead of PostgreSQL:\n{}",
        server.log()
    );
    let base = server.base();
    let admin = admin_token(&data);
    // The responder is plain HTTP; this client speaks both.
    let plain = https.clone();
    let issuing = data.join("issuing_ca.crt");

    // One certificate, and its OCSP answer fetched once by GET, so it is cached.
    let csr_pem = csr(&work, "faults.internal");
    let tok = token(&data, &base, "faults", &["faults.internal"]);
    let (resp, _) = post_issue(&https, &base, &tok, &csr_pem).await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let issued: Value = resp.json().await.unwrap();
    let serial = issued["serial_number"].as_str().unwrap().to_string();
    let leaf = work.join("leaf.pem");
    fs::write(&leaf, issued["certificate"].as_str().unwrap()).unwrap();
    let cached_req = ocsp_request(&work, "cached", &issuing, &leaf, false);
    let get_path = ocsp_get_path(&cached_req);
    let resp = plain.get(server.ocsp_url(&get_path)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let verdict = ocsp_verdict(&work, &body, &issuing, &leaf, &root);
    assert!(verdict.contains("Response verify OK"), "{verdict}");
    assert!(verdict.contains(": good"), "{verdict}");
    let before = serials(&https, &base, &admin).await;
    assert!(
        before.contains(&serial),
        "{serial} not listed in {before:?}"
    );

    // A second certificate whose status nobody has asked for: nothing about it is cached.
    let (resp, _) = post_issue(
        &https,
        &base,
        &token(&data, &base, "faults", &["faults.internal"]),
        &csr_pem,
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let issued: Value = resp.json().await.unwrap();
    let uncached_leaf = work.join("uncached-leaf.pem");
    fs::write(&uncached_leaf, issued["certificate"].as_str().unwrap()).unwrap();

    // Mint what the outage needs before it: `signet token` does not use the database.
    let down_tokens: Vec<String> = (0..2)
        .map(|_| token(&data, &base, "faults", &["faults.internal"]))
        .collect();
    let after_token = token(&data, &base, "faults", &["faults.internal"]);

    db.stop();

    // Issuance: 503 database-unavailable, promptly.
    for tok in &down_tokens {
        let (resp, took) = post_issue(&https, &base, tok, &csr_pem).await;
        assert!(
            took < PROMPT_REFUSAL,
            "issuance with the database down took {took:?}\n{}",
            server.log()
        );
        problem(resp, 503, "database-unavailable").await;
        eprintln!("issuance refused in {took:?} with the database down");
    }

    // Revocation (admin): 503 database-unavailable, promptly.
    let started = Instant::now();
    let resp = https
        .post(format!("{base}/v1/certificates/{serial}/revoke"))
        .bearer_auth(&admin)
        .json(&json!({ "reason": "keyCompromise" }))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < PROMPT_REFUSAL, "revocation took {took:?}");
    problem(resp, 503, "database-unavailable").await;
    eprintln!("revocation refused in {took:?} with the database down");

    // Readiness: 503, promptly.
    let started = Instant::now();
    let resp = https.get(server.url("/readyz")).send().await.unwrap();
    let took = started.elapsed();
    assert!(took < PROMPT_REFUSAL, "/readyz took {took:?}");
    problem(resp, 503, "database-unavailable").await;
    eprintln!("/readyz answered 503 in {took:?} with the database down");

    // OCSP: the cached answer is still served, good, by GET and by POST.
    let started = Instant::now();
    let resp = plain.get(server.ocsp_url(&get_path)).send().await.unwrap();
    assert!(started.elapsed() < PROMPT_REFUSAL);
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let verdict = ocsp_verdict(&work, &body, &issuing, &leaf, &root);
    assert!(verdict.contains("Response verify OK"), "{verdict}");
    assert!(verdict.contains(": good"), "{verdict}");
    let resp = plain
        .post(server.ocsp_url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(cached_req.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    assert!(
        ocsp_verdict(&work, &body, &issuing, &leaf, &root).contains(": good"),
        "cached POST"
    );

    // A request with a nonce is signed afresh, with the status the responder already holds
    // for the cached certificate: answered, good, with the database down.
    let nonce_req = ocsp_request(&work, "nonce", &issuing, &leaf, true);
    let resp = plain
        .post(server.ocsp_url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(nonce_req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.unwrap();
    let verdict = ocsp_verdict_for(&work, true, &body, &issuing, &leaf, &root);
    assert!(
        verdict.contains("Response verify OK") && verdict.contains(": good"),
        "nonce request for the cached certificate: {verdict}"
    );

    // A certificate whose status is not held needs the database: an OCSP error status over
    // HTTP 200 (internalError 2 or tryLater 3), never an HTTP 500.
    let uncached_req = ocsp_request(&work, "uncached", &issuing, &uncached_leaf, true);
    let started = Instant::now();
    let resp = plain
        .post(server.ocsp_url("/ocsp"))
        .header("content-type", "application/ocsp-request")
        .body(uncached_req)
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(took < PROMPT_REFUSAL, "uncached OCSP took {took:?}");
    assert_eq!(resp.status(), 200, "uncached OCSP with the database down");
    let body = resp.bytes().await.unwrap();
    let status = ocsp_response_status(&body);
    assert!(
        status == 2 || status == 3,
        "uncached OCSP answered responseStatus {status}, not internalError/tryLater"
    );
    eprintln!("uncached OCSP answered responseStatus {status} in {took:?}");

    db.start();

    // Recovery, by itself: /readyz 200, then issuance 201.
    let deadline = Instant::now() + RECOVERY;
    loop {
        match https.get(server.url("/readyz")).send().await {
            Ok(resp) if resp.status() == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "/readyz not 200 within {RECOVERY:?} of the database coming back: {other:?}\n{}",
                server.log()
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered_in = RECOVERY - deadline.saturating_duration_since(Instant::now());
    eprintln!("/readyz recovered in {recovered_in:?}");
    let (resp, _) = post_issue(&https, &base, &after_token, &csr_pem).await;
    assert_eq!(
        resp.status(),
        201,
        "issuance after recovery: {}\n{}",
        resp.text().await.unwrap(),
        server.log()
    );
    let issued: Value = resp.json().await.unwrap();
    let new_serial = issued["serial_number"].as_str().unwrap().to_string();

    // Nothing was issued while the database was down: exactly two more certificates (the
    // uncached one, issued before the outage, and this one).
    let after = serials(&https, &base, &admin).await;
    assert_eq!(after.len(), before.len() + 2, "{before:?} -> {after:?}");
    assert!(after.contains(&new_serial));
    let rec: Value = https
        .get(format!("{base}/v1/certificates/{serial}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rec["status"], "good",
        "the refused revocation changed nothing: {rec}"
    );
}

/// The CRL Number of the server's current issuing CRL, read by openssl.
async fn crl_number(https: &reqwest::Client, server: &Server, dir: &Path) -> u128 {
    let resp = https
        .get(server.ocsp_url("/crl/issuing.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let file = dir.join("issuing.crl");
    fs::write(&file, resp.bytes().await.unwrap()).unwrap();
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&file),
        "-noout",
        "-crlnumber",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let hex = out
        .trim()
        .strip_prefix("crlNumber=")
        .unwrap_or_else(|| panic!("{out}"));
    let hex = hex.trim_start_matches("0x");
    u128::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{out}: {e}"))
}

/// A CRL number fetch that tolerates the server dying under it (for use during the load).
async fn try_crl_number(https: &reqwest::Client, url: &str, file: &Path) -> Option<u128> {
    let resp = https.get(url).send().await.ok()?;
    if resp.status() != 200 {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    fs::write(file, body).unwrap();
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(file),
        "-noout",
        "-crlnumber",
    ]);
    assert!(
        o.status.success(),
        "a CRL openssl cannot read: {}",
        text(&o)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    let hex = out.trim().strip_prefix("crlNumber=0x")?;
    Some(u128::from_str_radix(hex, 16).unwrap())
}

/// What the clients were told while the server was being killed.
#[derive(Default)]
struct Told {
    /// Serials a client received a 201 for.
    issued: Vec<String>,
    /// Serials the admin received a 200 for revoking.
    revoked: Vec<String>,
    /// The highest CRL Number the responder served.
    max_crl: u128,
}

/// `kill -9` under concurrent issuance (with revocations, so CRLs are being published),
/// `ROUNDS` times on one data directory and database; then nothing acknowledged is lost.
async fn kill_9_scenario(db: Option<&TestDb>) {
    const ROUNDS: usize = 3;
    const WORKERS: usize = 8;
    let backend = db.map_or("sqlite", |db| db.name());
    let env: Vec<(&str, &str)> = db
        .iter()
        .map(|db| ("SIGNET_DATABASE_URL", db.url()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let root = data.join("root_ca.crt");
    let csr_pem = Arc::new(csr(&work, "load.internal"));

    let told: Arc<Mutex<Told>> = Arc::default();
    let mut crl_numbers = Vec::new();
    for round in 0..=ROUNDS {
        let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
        let https = client(&root);
        server.wait_ready(&https).await;
        // The CRL Number after a restart is never below any the responder served before.
        let number = crl_number(&https, &server, &work).await;
        let max_before = told.lock().unwrap().max_crl;
        assert!(
            number >= max_before,
            "[{backend}] the CRL Number went backwards across kill -9: {number} after {max_before} \
             was served\n{}",
            server.log()
        );
        crl_numbers.push(number);
        if round == ROUNDS {
            // Every task of the load has ended: take what they were told.
            let told = std::mem::take(&mut *told.lock().unwrap());
            check_nothing_lost(&server, &https, &data, &told, backend).await;
            // And read back without Signet: sqlite3 on the file, psql on the database.
            let url = common::db::url_of(&data, db.map(TestDb::url));
            let what = format!("{backend} kill -9");
            common::db::assert_recorded(&url, &what, &told.issued, &told.revoked);
            eprintln!("[{backend}] CRL numbers after each start: {crl_numbers:?}");
            return;
        }
        let base = server.base();

        // Tokens minted in process (as `signet token` does), so the load is issuance only.
        let minter = Arc::new(Minter::new(&data, &base));
        let cut_off = Arc::new(AtomicUsize::new(0));
        let (issued_before, revoked_before) = {
            let t = told.lock().unwrap();
            (t.issued.len(), t.revoked.len())
        };
        let mut workers = Vec::new();
        for _ in 0..WORKERS {
            // One client (so one connection) per worker.
            let https = client(&root);
            let base = base.clone();
            let csr_pem = csr_pem.clone();
            let minter = minter.clone();
            let told = told.clone();
            let cut_off = cut_off.clone();
            workers.push(tokio::spawn(async move {
                let mut ok = 0usize;
                loop {
                    let resp = https
                        .post(format!("{base}/v1/certificates"))
                        .bearer_auth(minter.token())
                        .json(&json!({ "csr": *csr_pem }))
                        .send()
                        .await;
                    // After the kill, requests fail without an answer: stop.
                    let Ok(resp) = resp else {
                        cut_off.fetch_add(1, Ordering::Relaxed);
                        return ok;
                    };
                    let status = resp.status().as_u16();
                    let Ok(body) = resp.text().await else {
                        cut_off.fetch_add(1, Ordering::Relaxed);
                        return ok;
                    };
                    match status {
                        201 => {
                            let v: Value = serde_json::from_str(&body).unwrap();
                            let serial = v["serial_number"].as_str().unwrap().to_string();
                            told.lock().unwrap().issued.push(serial);
                            ok += 1;
                        }
                        // The provisioner's rate limit: refused, nothing issued.
                        429 => tokio::time::sleep(Duration::from_millis(50)).await,
                        _ => panic!("issuance under load answered {status}: {body}"),
                    }
                }
            }));
        }
        // The admin revokes the newest certificate every 100 ms and watches the CRL Number.
        let revoker = {
            let https = client(&root);
            let base = base.clone();
            let admin = admin_token(&data);
            let told = told.clone();
            let crl_url = server.ocsp_url("/crl/issuing.crl");
            let file = work.join(format!("during-{round}.crl"));
            tokio::spawn(async move {
                let mut revoked = 0usize;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let Some(serial) = told.lock().unwrap().issued.last().cloned() else {
                        continue;
                    };
                    let Ok(resp) = https
                        .post(format!("{base}/v1/certificates/{serial}/revoke"))
                        .bearer_auth(&admin)
                        .json(&json!({ "reason": "superseded" }))
                        .send()
                        .await
                    else {
                        return revoked;
                    };
                    let status = resp.status().as_u16();
                    let Ok(body) = resp.text().await else {
                        return revoked;
                    };
                    match status {
                        200 => {
                            told.lock().unwrap().revoked.push(serial);
                            revoked += 1;
                        }
                        409 => {} // already revoked: no new certificate since the last turn
                        _ => panic!("revocation under load answered {status}: {body}"),
                    }
                    match try_crl_number(&https, &crl_url, &file).await {
                        Some(n) => {
                            let mut t = told.lock().unwrap();
                            t.max_crl = t.max_crl.max(n);
                        }
                        None => return revoked,
                    }
                }
            })
        };
        // Kill once the load is well under way: this round has issued two certificates per
        // worker and revoked one (so CRLs are being published), bounded.
        let started = Instant::now();
        loop {
            {
                let t = told.lock().unwrap();
                if t.issued.len() >= issued_before + 2 * WORKERS && t.revoked.len() > revoked_before
                {
                    break;
                }
            }
            assert!(
                started.elapsed() < STARTUP,
                "[{backend}] the load did not get going\n{}",
                server.log()
            );
            tokio::time::sleep(POLL).await;
        }
        server.kill9();
        let mut round_ok = 0;
        for w in workers {
            round_ok += w.await.unwrap();
        }
        let revoked = revoker.await.unwrap();
        let cut = cut_off.load(Ordering::Relaxed);
        eprintln!(
            "[{backend}] round {round}: {round_ok} issued and {revoked} revoked before kill -9, \
             {cut} issuance requests cut off"
        );
        assert!(
            round_ok > 0,
            "[{backend}] nothing issued under load\n{}",
            server.log()
        );
        assert_eq!(
            cut,
            WORKERS,
            "[{backend}] every worker must still be issuing when kill -9 lands\n{}",
            server.log()
        );
    }
}

/// After the last restart: every certificate handed out is recorded, every acknowledged
/// revocation holds, and no serial repeats.
async fn check_nothing_lost(
    server: &Server,
    https: &reqwest::Client,
    data: &Path,
    told: &Told,
    backend: &str,
) {
    let base = server.base();
    let unique: BTreeSet<&String> = told.issued.iter().collect();
    assert_eq!(
        unique.len(),
        told.issued.len(),
        "[{backend}] a serial was handed out twice"
    );
    let revoked: BTreeSet<&String> = told.revoked.iter().collect();
    for serial in &told.issued {
        let resp = https
            .get(format!("{base}/v1/certificates/{serial}"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_eq!(
            status, 200,
            "[{backend}] certificate {serial} was handed out with 201 but is not in the \
             database after kill -9: {body}"
        );
        if revoked.contains(serial) {
            let rec: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                rec["status"], "revoked",
                "[{backend}] an acknowledged revocation was lost: {rec}"
            );
        }
    }
    let all = serials(https, &base, &admin_token(data)).await;
    let all_unique: BTreeSet<&String> = all.iter().collect();
    assert_eq!(
        all_unique.len(),
        all.len(),
        "[{backend}] the listing repeats a serial"
    );
    eprintln!(
        "[{backend}] {} certificates handed out and {} revoked under kill -9, all recorded; {} in \
         the store",
        told.issued.len(),
        told.revoked.len(),
        all.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_issuance_loses_nothing_on_sqlite() {
    kill_9_scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_issuance_loses_nothing_on_postgres() {
    let db = TestDb::postgres().await;
    kill_9_scenario(Some(&db)).await;
}

/// Statements that make every INSERT into `audit_log` fail, and undo that, per backend.
fn audit_fault_sql(backend: &str) -> (&'static str, &'static str) {
    if backend == "postgres" {
        (
            "CREATE FUNCTION fault_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ \
             BEGIN RAISE EXCEPTION 'audit_log unwritable (fault test)'; END $$; \
             CREATE TRIGGER fault_audit_refuse BEFORE INSERT ON audit_log \
             FOR EACH ROW EXECUTE FUNCTION fault_audit_refuse();",
            "DROP TRIGGER fault_audit_refuse ON audit_log; DROP FUNCTION fault_audit_refuse();",
        )
    } else {
        (
            "CREATE TRIGGER fault_audit_refuse BEFORE INSERT ON audit_log \
             BEGIN SELECT RAISE(ABORT, 'audit_log unwritable (fault test)'); END;",
            "DROP TRIGGER fault_audit_refuse;",
        )
    }
}

/// A 503 `audit-unavailable` problem whose detail says nothing was done and leaks nothing of
/// the database's message.
fn assert_audit_unavailable(
    backend: &str,
    what: &str,
    status: u16,
    content_type: Option<&str>,
    body: &str,
) {
    assert_eq!(
        status, 503,
        "[{backend}] {what} with the audit log unwritable: {body}"
    );
    assert_eq!(content_type, Some("application/problem+json"), "{body}");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "urn:signet:problem:audit-unavailable", "{body}");
    assert_eq!(v["status"], 503, "{body}");
    assert_eq!(
        v["detail"], "the audit record could not be written; nothing was done",
        "{body}"
    );
    assert!(
        !body.contains("fault test"),
        "database detail leaked: {body}"
    );
}

/// The audit log fails closed: when its rows cannot be written, neither can the certificate
/// or the revocation they record (one transaction), and the client gets 503
/// `audit-unavailable` (not a 500: the store reports the refused audit row as such).
async fn audit_fails_closed(db: Option<&TestDb>) {
    let backend = db.map_or("sqlite", |db| db.name());
    let env: Vec<(&str, &str)> = db
        .iter()
        .map(|db| ("SIGNET_DATABASE_URL", db.url()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let https = client(&root);
    server.wait_ready(&https).await;
    let url = match db {
        Some(db) => db.url().to_string(),
        None => format!("sqlite://{}", p(&data.join("signet.db"))),
    };
    let base = server.base();
    let admin = admin_token(&data);
    let minter = Minter::new(&data, &base);
    let csr_pem = csr(&work, "load.internal");

    let (resp, _) = post_issue(&https, &base, &minter.token(), &csr_pem).await;
    assert_eq!(
        resp.status(),
        201,
        "[{backend}] {}",
        resp.text().await.unwrap()
    );
    let issued: Value = resp.json().await.unwrap();
    let serial = issued["serial_number"].as_str().unwrap().to_string();
    let before = serials(&https, &base, &admin).await;

    let (refuse, allow) = audit_fault_sql(backend);
    signet_testkit::execute(&url, refuse).await;

    // Issuance: signed, but neither recorded nor handed out.
    let (resp, took) = post_issue(&https, &base, &minter.token(), &csr_pem).await;
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    eprintln!("[{backend}] issuance with the audit log unwritable: {status} in {took:?}: {body}");
    assert_audit_unavailable(backend, "issuance", status, content_type.as_deref(), &body);
    assert!(!body.contains("BEGIN CERTIFICATE"), "{body}");

    // Revocation: refused, and the certificate stays good.
    let resp = https
        .post(format!("{base}/v1/certificates/{serial}/revoke"))
        .bearer_auth(&admin)
        .json(&json!({ "reason": "keyCompromise" }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string());
    let body = resp.text().await.unwrap();
    eprintln!("[{backend}] revocation with the audit log unwritable: {status}: {body}");
    assert_audit_unavailable(
        backend,
        "revocation",
        status,
        content_type.as_deref(),
        &body,
    );
    let rec: Value = https
        .get(format!("{base}/v1/certificates/{serial}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        rec["status"], "good",
        "[{backend}] revoked without an audit row: {rec}"
    );
    let during = serials(&https, &base, &admin).await;
    assert_eq!(
        during, before,
        "[{backend}] a certificate was recorded without its audit row"
    );

    // Writable again: issuance works, without a restart.
    signet_testkit::execute(&url, allow).await;
    let (resp, _) = post_issue(&https, &base, &minter.token(), &csr_pem).await;
    assert_eq!(
        resp.status(),
        201,
        "[{backend}] {}",
        resp.text().await.unwrap()
    );
    let after = serials(&https, &base, &admin).await;
    assert_eq!(after.len(), before.len() + 1, "[{backend}]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_unwritable_fails_closed_on_sqlite() {
    audit_fails_closed(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_log_unwritable_fails_closed_on_postgres() {
    let db = TestDb::postgres().await;
    audit_fails_closed(Some(&db)).await;
}

/// What an issuance load was told, by kind of answer.
#[derive(Default)]
struct Tally {
    /// Serials answered 201.
    issued: Vec<String>,
    /// Answers 503 `database-unavailable`.
    unavailable: usize,
    /// The slowest of them.
    slowest_refusal: Duration,
}

/// Eight tasks issuing one certificate after another (each over its own connection, tokens
/// minted in process) until told to stop. Every answer must come within `bound` and be 201
/// or 503 `database-unavailable` (429 `rate-limited` is backed off and counted for nothing).
struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(fixture: &PgFixture, bound: Duration) -> Load {
        const WORKERS: usize = 8;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let minter = Arc::new(Minter::new(&fixture.data, &fixture.server.base()));
        let csr_pem = Arc::new(csr(&fixture.work, "load.internal"));
        let workers = (0..WORKERS)
            .map(|_| {
                let https = client(&fixture.root);
                let base = fixture.server.base();
                let (minter, csr_pem) = (minter.clone(), csr_pem.clone());
                let (stop, tally) = (stop.clone(), tally.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let (resp, took) =
                            post_issue(&https, &base, &minter.token(), &csr_pem).await;
                        let status = resp.status().as_u16();
                        assert!(took < bound, "an issuance answered {status} after {took:?}");
                        match status {
                            201 => {
                                let v: Value = resp.json().await.unwrap();
                                let serial = v["serial_number"].as_str().unwrap().to_string();
                                tally.lock().unwrap().issued.push(serial);
                            }
                            429 => {
                                problem(resp, 429, "rate-limited").await;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            _ => {
                                problem(resp, 503, "database-unavailable").await;
                                let mut t = tally.lock().unwrap();
                                t.unavailable += 1;
                                t.slowest_refusal = t.slowest_refusal.max(took);
                            }
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            tally,
            workers,
        }
    }

    fn issued(&self) -> usize {
        self.tally.lock().unwrap().issued.len()
    }

    fn unavailable(&self) -> usize {
        self.tally.lock().unwrap().unavailable
    }

    /// Waits (at most `limit`) until `cond` holds of what the load was told. Panics with
    /// the server's log on timeout, and with a worker's own panic if one failed.
    async fn until(
        &mut self,
        server: &mut Server,
        what: &str,
        limit: Duration,
        cond: impl Fn(&Tally) -> bool,
    ) {
        let deadline = Instant::now() + limit;
        loop {
            if cond(&self.tally.lock().unwrap()) {
                return;
            }
            if let Some(i) = self.workers.iter().position(|w| w.is_finished()) {
                let ended = self.workers.swap_remove(i).await;
                panic!("a load worker ended: {ended:?}\n{}", server.log());
            }
            server.alive();
            assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?} ({} issued, {} refused 503)\n{}",
                self.issued(),
                self.unavailable(),
                server.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops the workers (each finishes the request it is in) and returns what they were
    /// told.
    async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        std::mem::take(&mut *self.tally.lock().unwrap())
    }
}

/// `signet serve` on a private PostgreSQL cluster (whatever `DATABASE_URL` says: these
/// tests stop, kill or freeze the database server), with `database` lines added to the
/// `[database]` section of its configuration.
struct PgFixture {
    db: TestDb,
    server: Server,
    data: PathBuf,
    work: PathBuf,
    root: PathBuf,
    https: reqwest::Client,
    _tmp: tempfile::TempDir,
}

impl PgFixture {
    async fn start(database: &str) -> PgFixture {
        let db = TestDb::private_postgres().await;
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let work = tmp.path().join("work");
        fs::create_dir(&work).unwrap();
        // The CA is recorded in the database it will be served from.
        let init = base_command()
            .args(["init", "--dir", p(&data)])
            .env("SIGNET_DATABASE_URL", db.url())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", text(&init));
        let config = data.join("signet.toml");
        let toml = fs::read_to_string(&config).unwrap();
        assert!(toml.contains("\n[database]\n"), "{toml}");
        fs::write(
            &config,
            toml.replace("\n[database]\n", &format!("\n[database]\n{database}\n")),
        )
        .unwrap();
        let mut server = Server::start(
            tmp.path(),
            &[("SIGNET_DATABASE_URL", db.url())],
            &["--dir", p(&data)],
        )
        .await;
        let root = data.join("root_ca.crt");
        let https = client(&root);
        server.wait_ready(&https).await;
        assert!(
            server.log().contains("database=\"postgres"),
            "{}",
            server.log()
        );
        PgFixture {
            db,
            server,
            data,
            work,
            root,
            https,
            _tmp: tmp,
        }
    }

    /// `/readyz`, timed; panics if it does not answer at all.
    async fn readyz(&self) -> (reqwest::Response, Duration) {
        let started = Instant::now();
        let resp = self
            .https
            .get(self.server.url("/readyz"))
            .send()
            .await
            .unwrap();
        (resp, started.elapsed())
    }

    /// Waits (at most [`RECOVERY`]) until `/readyz` answers 200.
    async fn until_ready_again(&mut self, what: &str) -> Duration {
        let started = Instant::now();
        loop {
            let (resp, _) = self.readyz().await;
            if resp.status() == 200 {
                return started.elapsed();
            }
            self.server.alive();
            assert!(
                started.elapsed() < RECOVERY,
                "{what}: /readyz still {} {RECOVERY:?} after the database came back\n{}",
                resp.status(),
                self.server.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every 201 the load was told is in the database (read with psql), once, whole.
    fn assert_recorded(&self, what: &str, tally: &Tally) {
        let rows = common::db::assert_recorded(self.db.url(), what, &tally.issued, &[]);
        eprintln!(
            "[{what}] {} answered 201 (all in the database, read by psql), {} answered 503 \
             (slowest {:?}); {} certificates in the database",
            tally.issued.len(),
            tally.unavailable,
            tally.slowest_refusal,
            rows.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_answers_201_or_503_and_loses_nothing() {
    let mut f = PgFixture::start("").await;
    let mut load = Load::start(&f, PROMPT_REFUSAL);
    load.until(&mut f.server, "issuance under load", STARTUP, |t| {
        !t.issued.is_empty()
    })
    .await;
    tokio::task::block_in_place(|| f.db.stop());
    // Requests meet the outage: 503 database-unavailable, promptly (Load checks the time).
    load.until(
        &mut f.server,
        "a 503 while PostgreSQL is stopped",
        PROMPT_REFUSAL * 2,
        |t| t.unavailable > 0,
    )
    .await;
    let refused_while_down = load.unavailable();
    tokio::task::block_in_place(|| f.db.start());
    // Issuance recovers by itself: new 201s after the database is back.
    let before = load.issued();
    load.until(
        &mut f.server,
        "issuance after PostgreSQL restarted",
        RECOVERY,
        |t| t.issued.len() > before,
    )
    .await;
    let tally = load.finish().await;
    assert!(refused_while_down > 0);
    assert!(tally.issued.len() > before);
    f.assert_recorded("postgres stopped", &tally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_killed_under_load_recovers_from_the_crash_and_loses_nothing() {
    let mut f = PgFixture::start("").await;
    let mut load = Load::start(&f, PROMPT_REFUSAL);
    load.until(&mut f.server, "issuance under load", STARTUP, |t| {
        t.issued.len() >= 8
    })
    .await;
    // Every PostgreSQL process SIGKILLed at once, mid-load: no clean shutdown, no checkpoint.
    tokio::task::block_in_place(|| f.db.kill());
    load.until(
        &mut f.server,
        "a 503 with PostgreSQL killed",
        PROMPT_REFUSAL * 2,
        |t| t.unavailable > 0,
    )
    .await;
    tokio::task::block_in_place(|| f.db.start());
    let log = f.db.server_log();
    assert!(
        log.contains("not properly shut down") && log.contains("automatic recovery"),
        "PostgreSQL did not run crash recovery:\n{log}"
    );
    let before = load.issued();
    load.until(
        &mut f.server,
        "issuance after crash recovery",
        RECOVERY,
        |t| t.issued.len() > before,
    )
    .await;
    let tally = load.finish().await;
    f.assert_recorded("postgres killed", &tally);
}

/// The bound the frozen and pool-exhaustion tests configure (`[database] timeout`), and the
/// most a 503 may take beyond it on a loaded machine (TLS, scheduling).
const DB_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_frozen_under_load_answers_503_within_the_bound_and_recovers() {
    let mut f = PgFixture::start(&format!("timeout = \"{}s\"", DB_TIMEOUT.as_secs())).await;
    let mut load = Load::start(&f, DB_TIMEOUT + SLACK);
    load.until(&mut f.server, "issuance under load", STARTUP, |t| {
        !t.issued.is_empty()
    })
    .await;
    // SIGSTOP: every connection stays open and nothing answers.
    f.db.freeze();
    let at_freeze = load.unavailable();
    load.until(
        &mut f.server,
        "every worker answered 503 while PostgreSQL is frozen",
        (DB_TIMEOUT + SLACK) * 3,
        |t| t.unavailable >= at_freeze + 8,
    )
    .await;
    let (resp, took) = f.readyz().await;
    problem(resp, 503, "database-unavailable").await;
    assert!(
        took < DB_TIMEOUT + SLACK,
        "/readyz took {took:?} with PostgreSQL frozen"
    );
    eprintln!("/readyz answered 503 in {took:?} with PostgreSQL frozen");
    f.db.thaw();
    let recovered = f.until_ready_again("postgres thawed").await;
    eprintln!("/readyz 200 again {recovered:?} after SIGCONT");
    let before = load.issued();
    load.until(&mut f.server, "issuance after SIGCONT", RECOVERY, |t| {
        t.issued.len() > before
    })
    .await;
    let tally = load.finish().await;
    assert!(
        tally.slowest_refusal < DB_TIMEOUT + SLACK,
        "slowest 503: {:?}",
        tally.slowest_refusal
    );
    f.assert_recorded("postgres frozen", &tally);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_pool_exhausted_answers_503_within_the_bound_and_recovers() {
    let mut f = PgFixture::start(&format!("timeout = \"{}s\"", DB_TIMEOUT.as_secs())).await;
    let mut load = Load::start(&f, DB_TIMEOUT + SLACK);
    load.until(&mut f.server, "issuance under load", STARTUP, |t| {
        !t.issued.is_empty()
    })
    .await;
    // Another client takes an exclusive lock on the certificates table and keeps it: every
    // query touching the table waits, holding its pooled connection.
    let mut locker = Command::new(common::db::psql_binary())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", f.db.url()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let stdin = locker.stdin.as_mut().unwrap();
        stdin
            .write_all(b"BEGIN; LOCK TABLE certificates IN ACCESS EXCLUSIVE MODE;\n")
            .unwrap();
        stdin.flush().unwrap();
    }
    let deadline = Instant::now() + STARTUP;
    while common::db::psql(
        f.db.url(),
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
         WHERE c.relname = 'certificates' AND l.mode = 'AccessExclusiveLock' AND l.granted",
    ) != ["1"]
    {
        assert!(Instant::now() < deadline, "the lock was not granted");
        tokio::time::sleep(POLL).await;
    }
    // Readers pile up behind the lock too, more of them than the pool has connections (16).
    let serial = load.tally.lock().unwrap().issued[0].clone();
    let stop_readers = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..24)
        .map(|_| {
            let https = client(&f.root);
            let url = f.server.url(&format!("/v1/certificates/{serial}"));
            let stop = stop_readers.clone();
            tokio::spawn(async move {
                let mut refused = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let resp = https.get(&url).send().await.unwrap();
                    let took = started.elapsed();
                    match resp.status().as_u16() {
                        200 => {}
                        _ => {
                            problem(resp, 503, "database-unavailable").await;
                            assert!(took < DB_TIMEOUT + SLACK, "a lookup took {took:?}");
                            refused += 1;
                        }
                    }
                }
                refused
            })
        })
        .collect();
    let at_lock = load.unavailable();
    load.until(
        &mut f.server,
        "every worker answered 503 with the pool exhausted",
        (DB_TIMEOUT + SLACK) * 3,
        |t| t.unavailable >= at_lock + 8,
    )
    .await;
    // /readyz runs no query on the locked table: it is refused because no pooled connection
    // is free (each answer within the bound; it may win a connection now and then).
    let deadline = Instant::now() + (DB_TIMEOUT + SLACK) * 5;
    loop {
        let (resp, took) = f.readyz().await;
        assert!(
            took < DB_TIMEOUT + SLACK,
            "/readyz took {took:?} with the pool exhausted"
        );
        if resp.status() == 503 {
            problem(resp, 503, "database-unavailable").await;
            eprintln!("/readyz answered 503 in {took:?} with the pool exhausted");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz never answered 503 with the pool exhausted\n{}",
            f.server.log()
        );
    }
    // Release the lock: everything drains and recovers by itself.
    drop(locker.stdin.take());
    let status = tokio::task::block_in_place(|| locker.wait()).unwrap();
    assert!(status.success(), "psql holding the lock: {status}");
    stop_readers.store(true, Ordering::Relaxed);
    let mut refused_lookups = 0;
    for r in readers {
        refused_lookups += r.await.unwrap();
    }
    assert!(refused_lookups > 0, "no lookup met the exhausted pool");
    let recovered = f.until_ready_again("lock released").await;
    eprintln!(
        "/readyz 200 again {recovered:?} after the lock was released; {refused_lookups} lookups refused"
    );
    let before = load.issued();
    load.until(
        &mut f.server,
        "issuance after the lock was released",
        RECOVERY,
        |t| t.issued.len() > before,
    )
    .await;
    let tally = load.finish().await;
    f.assert_recorded("pool exhausted", &tally);
}
