//! CA keys in a PKCS#11 token, end to end with Debian's SoftHSM2 (a token made in a
//! temporary directory through `SOFTHSM2_CONF`) and OpenSC's `pkcs11-tool`:
//!
//! - `signet init --key-store pkcs11` makes both CA keys inside the token: `pkcs11-tool`
//!   lists them as sensitive and never extractable, and the data directory holds no key;
//!   `signet serve` issues over HTTPS through the token (`openssl verify`), revokes, and
//!   publishes a CRL (`openssl crl -verify`) and OCSP answers (`openssl ocsp`).
//! - A wrong PIN stops `serve` with a clear error before any socket is bound.
//! - The token going away under load gives 503 `ca-key-unavailable` (problem+json) while OCSP
//!   goes on; issuance recovers by itself when it returns, and every 201 is in the database.
//! - A CA made with file keys moves into the token as the README says (`pkcs11-tool
//!   --write-object`), after which the data directory holds no trace of the private scalar.
//! - `signet ca new-issuing` with the root and the new issuing key both in the token.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use signet_testkit::softhsm::{self, SoftHsm, USER_PIN};

mod common;
use common::{Server, base_command, client, openssl, p, text};

const TOKEN: &str = "signet";

/// `signet ARGS` with the token's environment; its output, which must be a success.
fn signet(hsm: &SoftHsm, args: &[&str]) -> std::process::Output {
    let out = base_command()
        .envs(hsm.env())
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "signet {args:?}: {}", text(&out));
    out
}

/// A PIN file (mode 0600) in `dir`.
fn pin_file(dir: &Path, pin: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("token.pin");
    fs::write(&path, format!("{pin}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `signet init` with both keys made in the token, of `key_type`.
fn init_in_token(hsm: &SoftHsm, data: &Path, pin: &Path, key_type: &str) {
    let module = softhsm::module_path();
    let out = signet(
        hsm,
        &[
            "init",
            "--dir",
            p(data),
            "--key-store",
            "pkcs11",
            "--pkcs11-module",
            p(&module),
            "--pkcs11-token",
            TOKEN,
            "--pin-file",
            p(pin),
            "--key-type",
            key_type,
        ],
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("pkcs11:token=signet;object=root-ca"),
        "{printed}"
    );
}

/// The private keys `pkcs11-tool` lists in the token: (label, access flags).
fn private_keys(hsm: &SoftHsm) -> Vec<(String, String)> {
    let listing = hsm.pkcs11_tool(&["--list-objects", "--type", "privkey"]);
    let mut keys = Vec::new();
    let mut label = None;
    for line in listing.lines().map(str::trim) {
        if let Some(l) = line.strip_prefix("label:") {
            label = Some(l.trim().to_string());
        }
        if let Some(access) = line.strip_prefix("Access:") {
            keys.push((label.take().unwrap_or_default(), access.trim().to_string()));
        }
    }
    keys
}

/// Each key is sensitive and not extractable (an imported key was never extractable in the
/// token, but only a key made there is "never extractable" to PKCS#11).
fn assert_not_extractable(keys: &[(String, String)]) {
    assert!(!keys.is_empty());
    for (label, access) in keys {
        assert!(access.contains("sensitive"), "{label}: {access}");
        assert!(
            !access.split(", ").any(|flag| flag == "extractable"),
            "{label}: {access}"
        );
    }
}

/// Each key was made in the token: sensitive, never extractable.
fn assert_kept_in_token(keys: &[(String, String)]) {
    assert_not_extractable(keys);
    for (label, access) in keys {
        assert!(access.contains("always sensitive"), "{label}: {access}");
        assert!(access.contains("never extractable"), "{label}: {access}");
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A P-256 key and CSR for `name` made by `openssl req`; the CSR PEM.
fn csr(dir: &Path, name: &str) -> String {
    common::csr(dir, name)
}

/// Issue a certificate for `name` over HTTPS; the JSON answer.
async fn issue(
    https: &reqwest::Client,
    server: &Server,
    data: &Path,
    dir: &Path,
    name: &str,
) -> Value {
    let bearer = common::token(data, &server.base(), name, &[name]);
    let (resp, _) = common::post_issue(https, &server.base(), &bearer, &csr(dir, name)).await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 201, "{body}\n{}", server.log_tail());
    serde_json::from_str(&body).unwrap()
}

/// Write an issued certificate and the chain; `openssl verify` against the root must pass.
fn verify_issued(data: &Path, dir: &Path, name: &str, issued: &Value) -> (PathBuf, PathBuf) {
    let leaf = dir.join(format!("{name}.crt"));
    fs::write(&leaf, issued["certificate"].as_str().unwrap()).unwrap();
    let chain = dir.join(format!("{name}.chain.pem"));
    let mut pem = String::new();
    for c in issued["chain"].as_array().unwrap() {
        pem.push_str(c.as_str().unwrap());
    }
    fs::write(&chain, &pem).unwrap();
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&data.join("root_ca.crt")),
        "-untrusted",
        p(&chain),
        "-purpose",
        "sslserver",
        p(&leaf),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(": OK"),
        "{}",
        text(&o)
    );
    (leaf, chain)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_made_in_a_token_issues_revokes_and_publishes() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::with_token(TOKEN);
    let data = tmp.path().join("data");
    let pin = pin_file(tmp.path(), USER_PIN);
    init_in_token(&hsm, &data, &pin, "p384");

    // The keys are in the token, sensitive and not extractable; the data directory holds
    // certificates and a configuration naming the key, but no key and no PIN.
    let keys = private_keys(&hsm);
    let mut labels: Vec<&str> = keys.iter().map(|(l, _)| l.as_str()).collect();
    labels.sort();
    assert_eq!(labels, ["issuing-ca", "root-ca"], "{keys:?}");
    assert_kept_in_token(&keys);
    for file in files(&data) {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".key"),
            "a key file in the data directory: {name}"
        );
        let bytes = fs::read(&file).unwrap();
        let as_text = String::from_utf8_lossy(&bytes);
        assert!(!as_text.contains(USER_PIN), "the PIN is in {name}");
        assert!(!as_text.contains("PRIVATE KEY"), "a private key in {name}");
    }
    let config = fs::read_to_string(data.join("signet.toml")).unwrap();
    assert!(
        config.contains("issuing_key = \"pkcs11:token=signet;object=issuing-ca;id=%"),
        "{config}"
    );
    let o = openssl(&[
        "x509",
        "-in",
        p(&data.join("issuing_ca.crt")),
        "-noout",
        "-text",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("ecdsa-with-SHA384"),
        "{}",
        text(&o)
    );

    let conf = hsm.conf();
    let env: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", p(&conf))];
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    assert!(!server.log().contains(USER_PIN));
    let https = client(&data.join("root_ca.crt"));
    let issued = issue(&https, &server, &data, tmp.path(), "web.internal").await;
    let (leaf, chain) = verify_issued(&data, tmp.path(), "web.internal", &issued);
    let serial = issued["serial_number"].as_str().unwrap().to_string();

    // Revoke it; the CRL the token signs lists it, and verifies with the chain.
    let admin = common::admin_token(&data);
    let resp = https
        .post(server.url(&format!("/v1/certificates/{serial}/revoke")))
        .bearer_auth(&admin)
        .json(&json!({ "reason": "keyCompromise" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let all = tmp.path().join("all.pem");
    fs::write(
        &all,
        fs::read_to_string(&chain).unwrap()
            + &fs::read_to_string(data.join("root_ca.crt")).unwrap(),
    )
    .unwrap();
    let crl = tmp.path().join("issuing.crl");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = https
            .get(server.ocsp_url("/crl/issuing.crl"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        fs::write(&crl, &body).unwrap();
        let o = openssl(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            p(&crl),
            "-CAfile",
            p(&all),
            "-noout",
            "-text",
        ]);
        let out = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        if out.contains(&serial.trim_start_matches('0').to_ascii_lowercase()) {
            assert!(o.status.success(), "{}", text(&o));
            assert!(err.contains("verify OK"), "{}", text(&o));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the CRL never listed {serial}: {}",
            text(&o)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // OCSP (answered by the delegated signer, whose certificate the token signed).
    let o = openssl(&[
        "ocsp",
        "-issuer",
        p(&chain),
        "-cert",
        p(&leaf),
        "-url",
        &server.ocsp_url("/ocsp"),
        "-CAfile",
        p(&all),
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(": revoked"), "{out}");

    let (status, _) = server.terminate().await;
    assert!(status.success(), "{}", server.log_tail());
    assert!(!server.log().contains(USER_PIN));
}

#[test]
fn a_wrong_pin_stops_serve_before_it_listens() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::with_token(TOKEN);
    let data = tmp.path().join("data");
    let pin = pin_file(tmp.path(), USER_PIN);
    init_in_token(&hsm, &data, &pin, "p256");
    fs::write(&pin, "11112222\n").unwrap();
    let conf = hsm.conf();
    let env: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", p(&conf))];
    let mut server = Server::spawn(tmp.path(), &env, &["--dir", p(&data)]);
    let status = server
        .ready_or_exit_blocking()
        .map(|_| ())
        .expect_err("serve started with a wrong PIN");
    assert!(!status.success());
    let log = server.log();
    assert!(log.contains("refused the PIN"), "{log}");
    assert!(log.contains("PinIncorrect"), "{log}");
    assert!(!log.contains("11112222"), "{log}");
    assert!(!log.contains("listening"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_gone_under_load_gives_503s_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::with_token(TOKEN);
    let data = tmp.path().join("data");
    let pin = pin_file(tmp.path(), USER_PIN);
    init_in_token(&hsm, &data, &pin, "p256");
    let conf = hsm.conf();
    let env: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", p(&conf))];
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    let before = issue(&https, &server, &data, tmp.path(), "before.internal").await;
    let (leaf, chain) = verify_issued(&data, tmp.path(), "before.internal", &before);
    let all = tmp.path().join("all.pem");
    fs::write(
        &all,
        fs::read_to_string(&chain).unwrap()
            + &fs::read_to_string(data.join("root_ca.crt")).unwrap(),
    )
    .unwrap();

    let minter = common::Minter::new(&data, &server.base());
    let csr = csr(tmp.path(), "load.internal");
    let tokens = tmp.path().join("tokens-away");
    let mut created = Vec::new();
    let (mut unavailable, mut after_return) = (0, 0);
    // When the first 201 came after the token returned: from then on, every answer is 201.
    let mut returned_at = None;
    let mut recovered_at: Option<Instant> = None;
    // The round of that first 201: requests of the same round ran concurrently with it and
    // may have been refused before the module was back, so only later rounds must be all 201.
    let mut recovered_round: Option<usize> = None;
    let started = Instant::now();
    for round in 0..70 {
        // Rounds 15 to 34: the token's store is gone.
        if round == 15 {
            fs::rename(hsm.token_dir(), &tokens).unwrap();
        }
        if round == 35 {
            fs::rename(&tokens, hsm.token_dir()).unwrap();
            returned_at = Some(Instant::now());
        }
        let batch: Vec<_> = (0..4)
            .map(|_| {
                let (https, base, bearer, csr) =
                    (https.clone(), server.base(), minter.token(), csr.clone());
                tokio::spawn(
                    async move { common::post_issue(&https, &base, &bearer, &csr).await.0 },
                )
            })
            .collect();
        for task in batch {
            let resp = task.await.unwrap();
            match resp.status().as_u16() {
                201 => {
                    let v: Value = resp.json().await.unwrap();
                    created.push(v["serial_number"].as_str().unwrap().to_string());
                    if round >= 35 {
                        after_return += 1;
                        recovered_at.get_or_insert_with(Instant::now);
                        recovered_round.get_or_insert(round);
                    }
                }
                503 => {
                    assert!(
                        recovered_round.is_none_or(|r| r == round),
                        "a 503 in a round after the one where issuance recovered"
                    );
                    let body = common::problem(resp, 503, "ca-key-unavailable").await;
                    assert!(
                        !body.contains("pkcs11:") && !body.contains("token="),
                        "{body}"
                    );
                    unavailable += 1;
                }
                other => panic!("{other}: {}", resp.text().await.unwrap()),
            }
        }
        if (15..35).contains(&round) && round == 20 {
            // OCSP goes on while the token is away.
            let o = openssl(&[
                "ocsp",
                "-issuer",
                p(&chain),
                "-cert",
                p(&leaf),
                "-url",
                &server.ocsp_url("/ocsp"),
                "-CAfile",
                p(&all),
            ]);
            let out = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            assert!(out.contains(": good"), "{out}");
        }
    }
    assert!(
        unavailable >= 40,
        "only {unavailable} answers were 503 while the token was away"
    );
    let recovery =
        recovered_at.expect("issuance never recovered") - returned_at.expect("the token returned");
    assert!(
        recovery < Duration::from_secs(5),
        "recovery took {recovery:?}"
    );
    assert!(
        after_return >= 80,
        "issuance did not stay up: {after_return} 201s after the token returned"
    );
    eprintln!("503s while away: {unavailable}; first 201 {recovery:?} after the token returned");
    assert!(started.elapsed() < Duration::from_secs(120));

    // Every 201 is recorded, and no other certificate for a token holder (the server's own
    // certificate and the delegated OCSP signer's have requesters of their own).
    let db = data.join("signet.db");
    let rows = common::sqlite3(
        &db,
        "SELECT serial FROM certificates WHERE requester LIKE 'token:%'",
    );
    let mut recorded: Vec<String> = rows.into_iter().collect();
    recorded.sort();
    let mut expected = created.clone();
    expected.push(before["serial_number"].as_str().unwrap().to_string());
    expected.sort();
    assert_eq!(recorded, expected);
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{}", server.log_tail());
}

/// The private scalar of a PKCS#8 P-256 key file, as `openssl pkey -text` prints it.
fn private_scalar(key: &Path) -> Vec<u8> {
    let o = openssl(&["pkey", "-in", p(key), "-noout", "-text"]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let hex: String = out
        .lines()
        .skip_while(|l| !l.starts_with("priv:"))
        .skip(1)
        .take_while(|l| l.starts_with(' '))
        .flat_map(|l| l.trim().split(':'))
        .filter(|b| !b.is_empty())
        .collect();
    let mut bytes = hex::decode(hex).unwrap();
    while bytes.len() > 32 && bytes[0] == 0 {
        bytes.remove(0);
    }
    assert_eq!(bytes.len(), 32, "{out}");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_key_ca_moves_into_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::with_token(TOKEN);
    let data = tmp.path().join("data");
    signet(&hsm, &["init", "--dir", p(&data)]);
    let key_file = data.join("issuing_ca.key");
    let scalar = private_scalar(&key_file);

    // The README's steps: the key (DER PKCS#8) and its public half into the token with
    // pkcs11-tool, then the configuration names the URI and the key file goes.
    let der = tmp.path().join("issuing.der");
    let public = tmp.path().join("issuing.pub.der");
    assert!(
        openssl(&[
            "pkey",
            "-in",
            p(&key_file),
            "-outform",
            "DER",
            "-out",
            p(&der)
        ])
        .status
        .success()
    );
    assert!(
        openssl(&[
            "pkey",
            "-in",
            p(&key_file),
            "-pubout",
            "-outform",
            "DER",
            "-out",
            p(&public)
        ])
        .status
        .success()
    );
    hsm.pkcs11_tool(&[
        "--write-object",
        p(&der),
        "--type",
        "privkey",
        "--label",
        "issuing-ca",
        "--id",
        "01",
        "--usage-sign",
        "--sensitive",
        "--private",
    ]);
    hsm.pkcs11_tool(&[
        "--write-object",
        p(&public),
        "--type",
        "pubkey",
        "--label",
        "issuing-ca",
        "--id",
        "01",
        "--usage-sign",
    ]);
    fs::remove_file(&der).unwrap();
    let config = fs::read_to_string(data.join("signet.toml")).unwrap();
    let config = config.replace(
        "issuing_key = \"issuing_ca.key\"",
        &format!(
            "issuing_key = \"pkcs11:token={TOKEN};object=issuing-ca\"\n[pkcs11]\nmodule = \"{}\"\n",
            p(&softhsm::module_path())
        ),
    );
    fs::write(data.join("signet.toml"), config).unwrap();
    fs::remove_file(&key_file).unwrap();
    fs::remove_file(data.join("root_ca.key")).unwrap();
    assert_not_extractable(&private_keys(&hsm));

    let conf = hsm.conf();
    let env: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", p(&conf)), ("SIGNET_PKCS11_PIN", USER_PIN)];
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    let issued = issue(&https, &server, &data, tmp.path(), "moved.internal").await;
    verify_issued(&data, tmp.path(), "moved.internal", &issued);
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{}", server.log_tail());

    // No trace of the private scalar (raw or hex) anywhere in the data directory.
    let hex_scalar = hex::encode(&scalar);
    for file in files(&data) {
        let bytes = fs::read(&file).unwrap();
        assert!(
            !bytes.windows(scalar.len()).any(|w| w == scalar.as_slice()),
            "the private scalar is in {}",
            file.display()
        );
        assert!(
            !String::from_utf8_lossy(&bytes)
                .to_ascii_lowercase()
                .contains(&hex_scalar),
            "the private scalar (hex) is in {}",
            file.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_in_the_token_certifies_a_new_issuing_key_in_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let hsm = SoftHsm::with_token(TOKEN);
    let data = tmp.path().join("data");
    let pin = pin_file(tmp.path(), USER_PIN);
    init_in_token(&hsm, &data, &pin, "rsa2048");
    let old_config = fs::read_to_string(data.join("signet.toml")).unwrap();
    let root_uri = format!("pkcs11:token={TOKEN};object=root-ca");

    let out = signet(
        &hsm,
        &[
            "ca",
            "new-issuing",
            "--dir",
            p(&data),
            "--root-key",
            &root_uri,
            "--key-type",
            "p256",
        ],
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(printed.contains("object=issuing-ca-"), "{printed}");

    // The new key is in the token beside the two of init, none extractable; the
    // configuration names it; the old key's URI is kept for its CRLs.
    let keys = private_keys(&hsm);
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.iter().any(|(l, _)| l.starts_with("issuing-ca-")),
        "{keys:?}"
    );
    assert_kept_in_token(&keys);
    let config = fs::read_to_string(data.join("signet.toml")).unwrap();
    assert!(config.contains("object=issuing-ca-"), "{config}");
    assert_ne!(config, old_config);
    let kept: Vec<PathBuf> = files(&data)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "uri"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        fs::read_to_string(&kept[0])
            .unwrap()
            .contains("object=issuing-ca;")
    );

    // The RSA root (in the token) signed it; openssl agrees.
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&data.join("root_ca.crt")),
        p(&data.join("issuing_ca.crt")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = openssl(&[
        "x509",
        "-in",
        p(&data.join("issuing_ca.crt")),
        "-noout",
        "-text",
    ]);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(shown.contains("sha256WithRSAEncryption"), "{shown}");
    assert!(shown.contains("prime256v1"), "{shown}");

    // The new issuing CA issues through the token.
    let conf = hsm.conf();
    let env: Vec<(&str, &str)> = vec![("SOFTHSM2_CONF", p(&conf))];
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"));
    let issued = issue(&https, &server, &data, tmp.path(), "next.internal").await;
    verify_issued(&data, tmp.path(), "next.internal", &issued);
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{}", server.log_tail());

    // The root's CRL, signed in the token, verifies.
    let crl = tmp.path().join("root.crl");
    signet(
        &hsm,
        &[
            "ca",
            "root-crl",
            "--dir",
            p(&data),
            "--root-key",
            &root_uri,
            "--out",
            p(&crl),
        ],
    );
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl),
        "-CAfile",
        p(&data.join("root_ca.crt")),
        "-noout",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("verify OK"),
        "{}",
        text(&o)
    );
}
