//! Secrets never reach the logs, at any level (issue 7, hardening).
//!
//! The real binary runs with `RUST_LOG=trace` (every crate, including hyper, h2, rustls,
//! reqwest and sqlx): `signet init` with a passphrase-encrypted CA, `signet serve`, and over
//! HTTPS admin requests, provisioner tokens (from `signet token` and minted in process), a
//! refused token, a replayed token, a wrong admin token, a Kubernetes service-account token,
//! `signet bootstrap` and `signet renew`, revocation, OCSP, a SIGHUP reload, and the one-shot
//! commands (`token`, `issue`, `issue --local`, `list`, `revoke`, `ca root`, `ca chain`,
//! `ca root-crl`). Everything any of them printed is then searched for every secret in play:
//! the admin token (and a wrong one that was presented), every bearer token (whole and its
//! signature), the CA passphrase, the root and issuing CA keys, the provisioner key and the
//! workload keys (PEM body lines, base64 and hex of the DER, the private scalar in hex,
//! base64, base64url and as a Rust byte list), the Kubernetes issuer's key and, on
//! PostgreSQL, the password in the database URL. The logs must be non-trivial (trace lines
//! from several crates) for the search to mean anything.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use signet_testkit::TestDb;

mod common;
use common::{Server, client, p, text};

const PASSPHRASE: &str = "Correct-Horse-Battery-Staple-7f3a9e";
const DB_PASSWORD: &str = "pg-Secret-Password-5b7d2a9c1e";

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

/// The binary with no Signet settings inherited from the environment, logging everything.
fn base_command() -> Command {
    let mut cmd = common::base_command();
    cmd.env("RUST_LOG", "trace");
    cmd
}

/// Everything the processes of one scenario printed, by label.
#[derive(Default)]
struct Logs {
    entries: Vec<(String, String)>,
}

impl Logs {
    /// Run a one-shot command (with `env`), keep its stderr and, if `scan_stdout`, its
    /// stdout (not for commands whose output *is* a secret, like `signet token`).
    fn run(
        &mut self,
        label: &str,
        env: &[(&str, &str)],
        args: &[&str],
        scan_stdout: bool,
    ) -> Output {
        let mut cmd = base_command();
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        self.keep(label, &out, scan_stdout);
        out
    }

    fn keep(&mut self, label: &str, out: &Output, scan_stdout: bool) {
        if scan_stdout {
            self.entries.push((
                format!("{label} (stdout)"),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            ));
        }
        self.entries.push((
            format!("{label} (stderr)"),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
}

/// A named secret value and the forms it could be printed in.
struct Secrets {
    items: Vec<(String, String)>,
}

impl Secrets {
    fn add(&mut self, name: &str, value: &str) {
        let value = value.trim();
        assert!(
            value.len() >= 12,
            "secret {name} is too short to search for meaningfully"
        );
        self.items.push((name.to_string(), value.to_string()));
    }

    /// A bearer token: whole, and its signature (the part that makes it usable).
    fn token(&mut self, name: &str, jwt: &str) {
        self.add(name, jwt);
        let sig = jwt.rsplit('.').next().unwrap();
        self.add(&format!("{name} signature"), sig);
    }

    /// A private key file (PEM, maybe encrypted with PASSPHRASE): the body lines of its
    /// unencrypted PKCS#8 PEM, the base64 and hex of its DER, and the private scalar.
    fn key(&mut self, name: &str, file: &Path, work: &Path) {
        let der_file = work.join(format!(
            "{}.der",
            name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let pass = format!("pass:{PASSPHRASE}");
        let o = openssl(&[
            "pkey",
            "-in",
            p(file),
            "-passin",
            &pass,
            "-outform",
            "DER",
            "-out",
            p(&der_file),
        ]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let der = fs::read(&der_file).unwrap();
        fs::remove_file(&der_file).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        self.add(&format!("{name} PKCS#8 DER base64"), &b64);
        for (i, line) in b64.as_bytes().chunks(64).enumerate() {
            let line = std::str::from_utf8(line).unwrap();
            if line.len() >= 24 {
                self.add(&format!("{name} PEM line {}", i + 1), line);
            }
        }
        self.add(&format!("{name} DER hex"), &hex::encode(&der));

        let o = openssl(&["pkey", "-in", p(file), "-passin", &pass, "-noout", "-text"]);
        assert!(o.status.success(), "{name}: {}", text(&o));
        let dump = String::from_utf8(o.stdout).unwrap();
        let scalar = private_scalar(&dump).unwrap_or_else(|| panic!("{name}: no priv in\n{dump}"));
        assert!(scalar.len() >= 16, "{name}: scalar {} bytes", scalar.len());
        self.add(&format!("{name} private scalar hex"), &hex::encode(&scalar));
        self.add(
            &format!("{name} private scalar HEX"),
            &hex::encode_upper(&scalar),
        );
        self.add(
            &format!("{name} private scalar base64"),
            &base64::engine::general_purpose::STANDARD.encode(&scalar),
        );
        self.add(
            &format!("{name} private scalar base64url"),
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&scalar),
        );
        // As `{:?}` of a byte slice prints it (first 12 bytes are plenty).
        let list: Vec<String> = scalar[..12].iter().map(u8::to_string).collect();
        self.add(
            &format!("{name} private scalar as a byte list"),
            &list.join(", "),
        );
    }

    /// Every secret found in `logs`: (log label, secret name, the text around it with the
    /// secret itself masked).
    fn find_in(&self, logs: &Logs) -> Vec<String> {
        let mut found = Vec::new();
        for (label, log) in &logs.entries {
            for (name, value) in &self.items {
                if let Some(at) = log.find(value.as_str()) {
                    let start = log[..at]
                        .char_indices()
                        .rev()
                        .nth(120)
                        .map_or(0, |(i, _)| i);
                    let end = (at + value.len() + 120).min(log.len());
                    let end = (end..=log.len())
                        .find(|&i| log.is_char_boundary(i))
                        .unwrap();
                    let context = log[start..end].replace(value.as_str(), "<SECRET>");
                    found.push(format!("{name} in {label}: …{context}…"));
                }
            }
        }
        found
    }
}

/// The private scalar (or RSA private exponent) from `openssl pkey -text`, without a
/// leading zero octet.
fn private_scalar(dump: &str) -> Option<Vec<u8>> {
    let mut lines = dump.lines();
    lines.find(|l| {
        let l = l.trim();
        l == "priv:" || l == "privateExponent:"
    })?;
    let mut hex_text = String::new();
    for l in lines {
        let l = l.trim();
        if l.is_empty() || !l.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            break;
        }
        hex_text.extend(l.chars().filter(|c| *c != ':'));
    }
    let mut bytes = hex::decode(hex_text).ok()?;
    while bytes.first() == Some(&0) {
        bytes.remove(0);
    }
    Some(bytes)
}

/// The last lines of a (possibly huge, trace-level) log, for panic messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// `common::csr`, with the paths of the key and CSR files it wrote: (key, CSR, CSR PEM).
fn csr(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let pem = common::csr(dir, name);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.csr")),
        pem,
    )
}

/// Mints provisioner tokens in process, as `signet token` does.
struct Minter {
    key: jsonwebtoken::EncodingKey,
}

impl Minter {
    fn new(data: &Path) -> Minter {
        let pem = fs::read(data.join("provisioners/default.key")).unwrap();
        Minter {
            key: jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
        }
    }

    fn token(&self, aud: &str, sans: &[&str]) -> String {
        use ring::rand::SecureRandom;
        let mut jti = [0u8; 16];
        ring::rand::SystemRandom::new().fill(&mut jti).unwrap();
        let now = unix_now();
        let claims = json!({
            "iss": "default", "aud": aud, "sub": "secrets", "sans": sans,
            "iat": now, "nbf": now, "exp": now + 300, "jti": hex::encode(jti),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("default".into());
        jsonwebtoken::encode(&header, &claims, &self.key).unwrap()
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A simulated Kubernetes service-account issuer (as in `bootstrap.rs`).
struct ClusterIssuer {
    key: rcgen::KeyPair,
}

const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

impl ClusterIssuer {
    fn jwks(&self) -> String {
        let raw = rcgen::PublicKeyData::der_bytes(&self.key);
        assert_eq!(raw.len(), 65, "uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": "cluster-key-1", "crv": "P-256", "alg": "ES256",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]})
        .to_string()
    }

    fn token(&self, namespace: &str, sa: &str) -> String {
        let now = unix_now();
        let claims = json!({
            "aud": ["signet"], "exp": now + 3600, "iat": now, "nbf": now,
            "iss": CLUSTER_ISSUER, "jti": format!("{namespace}-{sa}-{now}"),
            "kubernetes.io": {
                "namespace": namespace,
                "pod": {"name": format!("{sa}-7d9f8-abcde"), "uid": "8b7c1e2a-0000-4000-8000-000000000002"},
                "serviceaccount": {"name": sa, "uid": "8b7c1e2a-0000-4000-8000-000000000003"},
            },
            "sub": format!("system:serviceaccount:{namespace}:{sa}"),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some("cluster-key-1".into());
        let key =
            jsonwebtoken::EncodingKey::from_ec_pem(self.key.serialize_pem().as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

async fn post_issue(https: &reqwest::Client, base: &str, bearer: &str, csr: &str) -> (u16, Value) {
    let resp = https
        .post(format!("{base}/v1/certificates"))
        .bearer_auth(bearer)
        .json(&json!({ "csr": csr }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    let v = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{status}: {body}"));
    (status, v)
}

fn assert_problem(what: &str, got: (u16, Value), status: u16, slug: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert_eq!(
        got.1["type"],
        format!("urn:signet:problem:{slug}"),
        "{what}: {}",
        got.1
    );
}

fn root_fingerprint(root: &Path) -> String {
    let o = openssl(&["x509", "-in", p(root), "-noout", "-fingerprint", "-sha256"]);
    assert!(o.status.success(), "{}", text(&o));
    let s = String::from_utf8(o.stdout).unwrap();
    let hex = s.trim().rsplit('=').next().unwrap().replace(':', "");
    format!("sha256:{}", hex.to_lowercase())
}

/// Whether `log` has a TRACE or DEBUG line from `krate` (its target, `krate::module`, may
/// follow span names).
fn logs_from(log: &str, krate: &str) -> usize {
    let target = format!("{krate}::");
    log.lines()
        .filter(|l| (l.contains(" TRACE ") || l.contains(" DEBUG ")) && l.contains(&target))
        .count()
}

async fn scenario(db: Option<&TestDb>) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let work = tmp.path().join("work");
    fs::create_dir(&work).unwrap();
    let mut logs = Logs::default();
    let mut secrets = Secrets { items: Vec::new() };
    secrets.add("CA passphrase", PASSPHRASE);

    // The database URL, with a password on PostgreSQL. The throwaway cluster trusts local
    // connections, so the password is carried everywhere but never checked: exactly what a
    // log leak needs.
    let db_url = db.map(|db| {
        secrets.add("database password", DB_PASSWORD);
        format!("{}&password={DB_PASSWORD}", db.url())
    });
    if let Some(url) = &db_url {
        assert!(url.contains("?"), "unexpected test database URL form");
    }
    let mut env: Vec<(&str, &str)> = vec![("SIGNET_CA_PASSPHRASE", PASSPHRASE)];
    if let Some(url) = &db_url {
        env.push(("SIGNET_DATABASE_URL", url));
    }

    // init: both CA keys encrypted with the passphrase.
    let o = logs.run(
        "init",
        &env,
        &["init", "--dir", p(&data), "--name", "Secrets CA"],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    for key in ["issuing_ca.key", "root_ca.key"] {
        let pem = fs::read_to_string(data.join(key)).unwrap();
        assert!(
            pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key} is not encrypted"
        );
    }
    secrets.key("issuing CA key", &data.join("issuing_ca.key"), &work);
    secrets.key("root CA key", &data.join("root_ca.key"), &work);

    // A Kubernetes provisioner next to the default one.
    let cluster = ClusterIssuer {
        key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
    };
    let cluster_key = work.join("cluster.key");
    fs::write(&cluster_key, cluster.key.serialize_pem()).unwrap();
    secrets.key("Kubernetes issuer key", &cluster_key, &work);
    // Every server process of this test logs at trace level (see `base_command`).
    let mut env = env.to_vec();
    env.push(("RUST_LOG", "trace"));
    let mut server = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let https = client(&root);
    server.wait_ready(&https).await;
    server.wait_for(&https, &server.ocsp_url("/readyz")).await;
    let base = server.base();

    let admin = fs::read_to_string(data.join("admin.token"))
        .unwrap()
        .trim()
        .to_string();
    secrets.add("admin token", &admin);
    secrets.key(
        "default provisioner key",
        &data.join("provisioners/default.key"),
        &work,
    );
    let minter = Minter::new(&data);

    // Admin: listing and issuance.
    let resp = https
        .get(format!("{base}/v1/certificates"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let (_, _, admin_csr) = csr(&work, "admin.internal");
    let (status, v) = post_issue(&https, &base, &admin, &admin_csr).await;
    assert_eq!(status, 201, "{v}");
    // A wrong admin token, presented once: it is a credential too.
    let wrong_admin = format!("sa_{}", "Wr0ngAdminTokenXyZ".repeat(2));
    secrets.add("wrong admin token", &wrong_admin);
    assert_problem(
        "wrong admin token",
        post_issue(&https, &base, &wrong_admin, &admin_csr).await,
        401,
        "unauthorized",
    );

    // `signet token`, then `signet issue` with it (over HTTPS, HTTP/2).
    let (leaf_key, leaf_csr, _) = csr(&work, "app.internal");
    secrets.key("leaf key", &leaf_key, &work);
    let o = logs.run(
        "token",
        &[],
        &[
            "token",
            "--dir",
            p(&data),
            "--ca-url",
            &base,
            "--subject",
            "app",
            "--san",
            "app.internal",
        ],
        false,
    );
    assert!(o.status.success(), "{}", text(&o));
    let cli_token = String::from_utf8(o.stdout).unwrap().trim().to_string();
    secrets.token("token from signet token", &cli_token);
    let leaf = work.join("app.pem");
    let o = logs.run(
        "issue",
        &[],
        &[
            "issue",
            "--dir",
            p(&data),
            "--ca-url",
            &base,
            "--csr",
            p(&leaf_csr),
            "--token",
            &cli_token,
            "--out",
            p(&leaf),
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));

    // The same token again: replayed.
    let (_, _, app_csr) = csr(&work, "app2.internal");
    assert_problem(
        "replayed token",
        post_issue(&https, &base, &cli_token, &app_csr).await,
        401,
        "token-replayed",
    );
    // In-process tokens: one good, one refused (name outside its sans), one for another CA,
    // one with its signature tampered.
    let good = minter.token(&base, &["app2.internal"]);
    secrets.token("minted token", &good);
    let (status, v) = post_issue(&https, &base, &good, &app_csr).await;
    assert_eq!(status, 201, "{v}");
    let good_serial = v["serial_number"].as_str().unwrap().to_string();
    let denied = minter.token(&base, &["other.internal"]);
    secrets.token("refused token", &denied);
    assert_problem(
        "name outside the token",
        post_issue(&https, &base, &denied, &app_csr).await,
        403,
        "name-denied",
    );
    let foreign = minter.token("https://another-ca.example", &["app2.internal"]);
    secrets.token("token for another CA", &foreign);
    assert_problem(
        "another audience",
        post_issue(&https, &base, &foreign, &app_csr).await,
        401,
        "unauthorized",
    );
    let fresh = minter.token(&base, &["app2.internal"]);
    let (head, sig) = fresh.rsplit_once('.').unwrap();
    let mut sig: Vec<char> = sig.chars().collect();
    sig[10] = if sig[10] == 'A' { 'B' } else { 'A' };
    let tampered = format!("{head}.{}", sig.into_iter().collect::<String>());
    secrets.token("tampered token", &tampered);
    assert_problem(
        "tampered signature",
        post_issue(&https, &base, &tampered, &app_csr).await,
        401,
        "unauthorized",
    );

    // A Kubernetes provisioner added to signet.toml, loaded by SIGHUP; a provisioner
    // token still works afterwards.
    fs::write(data.join("kubernetes-jwks.json"), cluster.jwks()).unwrap();
    let mut toml = fs::read_to_string(data.join("signet.toml")).unwrap();
    toml.push_str(&format!(
        "\n[[provisioners]]\nname = \"kubernetes\"\ntype = \"kubernetes\"\nissuer = {CLUSTER_ISSUER:?}\n\
         audience = \"signet\"\njwks_file = \"kubernetes-jwks.json\"\n\
         trust_domain = \"cluster.local\"\nnamespaces = [\"demo\"]\n"
    ));
    fs::write(data.join("signet.toml"), toml).unwrap();

    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("SIGHUP: reloaded the provisioners") {
        assert!(
            Instant::now() < deadline,
            "no reload:\n{}",
            tail(&server.log())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reloaded = server.log();
    let line = reloaded
        .lines()
        .find(|l| l.contains("SIGHUP: reloaded the provisioners"))
        .unwrap();
    assert!(line.contains("kubernetes (kubernetes)"), "{line}");
    let after = minter.token(&base, &["app2.internal"]);
    secrets.token("token after SIGHUP", &after);
    let (_, _, hup_csr) = csr(&work, "app2.internal");
    let (status, v) = post_issue(&https, &base, &after, &hup_csr).await;
    assert_eq!(status, 201, "{v}");

    // Kubernetes: a service-account token over HTTPS, and through `signet bootstrap`, then
    // `signet renew` over mTLS.
    let sa_token = cluster.token("demo", "billing");
    secrets.token("service-account token", &sa_token);
    let (_, _, sa_csr) = csr(&work, "billing.demo.svc");
    let (status, v) = post_issue(&https, &base, &sa_token, &sa_csr).await;
    assert_eq!(status, 201, "{v}");
    let sa_token2 = cluster.token("demo", "frontend");
    secrets.token("service-account token (bootstrap)", &sa_token2);
    let token_file = work.join("sa-token");
    fs::write(&token_file, &sa_token2).unwrap();
    let workload = work.join("workload");
    let fingerprint = root_fingerprint(&root);
    let o = logs.run(
        "bootstrap",
        &[],
        &[
            "bootstrap",
            "--ca-url",
            &base,
            "--root-fingerprint",
            &fingerprint,
            "--token-file",
            p(&token_file),
            "--out",
            p(&workload),
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    secrets.key("workload key (bootstrap)", &workload.join("tls.key"), &work);
    let o = logs.run(
        "renew",
        &[],
        &[
            "renew",
            "--once",
            "--force",
            "--ca-url",
            &base,
            "--dir",
            p(&workload),
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    secrets.key("workload key (renew)", &workload.join("tls.key"), &work);

    // OCSP for the leaf from `signet issue` (good), then revoke it with `signet revoke`
    // (admin token from the data directory), then OCSP again (revoked).
    let issuing = data.join("issuing_ca.crt");
    let chain = work.join("chain.pem");
    fs::write(
        &chain,
        format!(
            "{}{}",
            fs::read_to_string(&root).unwrap(),
            fs::read_to_string(&issuing).unwrap()
        ),
    )
    .unwrap();
    let ocsp = |expect: &str| {
        let o = openssl(&[
            "ocsp",
            "-issuer",
            p(&issuing),
            "-cert",
            p(&leaf),
            "-url",
            &server.ocsp_url("/ocsp"),
            "-CAfile",
            p(&chain),
            "-no_nonce",
        ]);
        let all = text(&o);
        assert!(o.status.success(), "{all}");
        assert!(all.contains(expect), "expected {expect}: {all}");
    };
    ocsp(": good");
    let o = openssl(&["x509", "-in", p(&leaf), "-noout", "-serial"]);
    let serial = String::from_utf8(o.stdout)
        .unwrap()
        .trim()
        .trim_start_matches("serial=")
        .to_lowercase();
    let o = logs.run(
        "revoke",
        &[],
        &[
            "revoke",
            &serial,
            "--dir",
            p(&data),
            "--ca-url",
            &base,
            "--reason",
            "keyCompromise",
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    ocsp(": revoked");
    // Revocation over HTTPS with the admin bearer too.
    let resp = https
        .post(format!("{base}/v1/certificates/{good_serial}/revoke"))
        .bearer_auth(&admin)
        .json(&json!({ "reason": "superseded" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());

    // The other one-shot commands.
    let o = logs.run(
        "list",
        &[],
        &["list", "--dir", p(&data), "--ca-url", &base, "--all"],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    for sub in ["root", "chain"] {
        let o = logs.run(
            &format!("ca {sub}"),
            &[],
            &["ca", sub, "--ca-url", &base, "--ca-file", p(&root)],
            true,
        );
        assert!(o.status.success(), "{}", text(&o));
    }
    let root_crl = work.join("root.crl");
    let o = logs.run(
        "ca root-crl",
        &env,
        &[
            "ca",
            "root-crl",
            "--dir",
            p(&data),
            "--root-key",
            p(&data.join("root_ca.key")),
            "--out",
            p(&root_crl),
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));
    let (_, local_csr, _) = csr(&work, "local.internal");
    let o = logs.run(
        "issue --local",
        &env,
        &[
            "issue",
            "--local",
            "--dir",
            p(&data),
            "--csr",
            p(&local_csr),
        ],
        true,
    );
    assert!(o.status.success(), "{}", text(&o));

    // SIGTERM and a clean exit (40 s: a trace-level log is slow to write).
    server.signal("TERM");
    let status = tokio::task::block_in_place(|| server.wait_exit(Duration::from_secs(40)));
    assert!(
        status.success(),
        "serve exited {status}:\n{}",
        tail(&server.log())
    );
    let serve_log = server.log();
    logs.entries.push(("serve".to_string(), serve_log.clone()));

    // The search means something only if everything was logged.
    let lines = serve_log.lines().count();
    let trace_lines = serve_log.matches(" TRACE ").count();
    eprintln!(
        "serve log: {lines} lines ({trace_lines} TRACE), {} bytes",
        serve_log.len()
    );
    // hyper 1.x logs nothing unless built with `--cfg hyper_unstable_tracing` (it is not),
    // so hyper itself cannot print a header; h2 (HTTP/2 framing), rustls and sqlx do log.
    for krate in ["h2", "rustls", "sqlx", "signet_responder"] {
        let n = logs_from(&serve_log, krate);
        eprintln!("  {krate}: {n} trace/debug lines");
        assert!(
            n > 0,
            "no trace or debug lines from {krate}: RUST_LOG=trace did not reach it"
        );
    }
    assert!(
        serve_log.contains(" INFO signet"),
        "no info lines from signet itself"
    );
    assert!(
        lines > 500 && trace_lines > 200,
        "only {lines} lines ({trace_lines} TRACE) at trace level"
    );
    let client_trace: usize = logs
        .entries
        .iter()
        .filter(|(label, _)| label.starts_with("issue (") || label.starts_with("bootstrap"))
        .map(|(_, log)| log.matches(" TRACE ").count())
        .sum();
    let clients: String = logs
        .entries
        .iter()
        .filter(|(label, _)| label != "serve")
        .map(|(_, log)| log.as_str())
        .collect();
    for krate in ["reqwest", "hyper_util", "rustls", "h2", "sqlx"] {
        eprintln!(
            "  one-shot commands, {krate}: {} trace/debug lines",
            logs_from(&clients, krate)
        );
    }
    assert!(
        client_trace > 20,
        "the client commands logged no trace lines"
    );

    // The search itself finds what it looks for (a planted admin token, CA scalar and
    // token signature, printed as a leak would print them).
    let scalar = &secrets
        .items
        .iter()
        .find(|(name, _)| name == "issuing CA key private scalar hex")
        .unwrap()
        .1;
    let planted = Logs {
        entries: vec![(
            "planted".to_string(),
            format!(
                "DEBUG x: authorization=Bearer {admin} key={scalar} sig={}",
                after.rsplit('.').next().unwrap()
            ),
        )],
    };
    assert_eq!(
        secrets.find_in(&planted).len(),
        3,
        "the search misses planted secrets"
    );

    let found = secrets.find_in(&logs);
    assert!(
        found.is_empty(),
        "{} secret(s) in the logs:\n{}",
        found.len(),
        found.join("\n\n")
    );
    eprintln!(
        "searched {} log(s), {} bytes, for {} secret forms: none found",
        logs.entries.len(),
        logs.entries.iter().map(|(_, l)| l.len()).sum::<usize>(),
        secrets.items.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level_on_sqlite() {
    scenario(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs_at_trace_level_on_postgres_with_a_password() {
    let db = TestDb::postgres().await;
    scenario(Some(&db)).await;
}
