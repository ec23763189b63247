//! `signet provisioner add|list|remove` on a real data directory, then a real `signet serve`
//! using what it wrote: a Kubernetes service-account token gets a certificate, duplicates and
//! bad JWKS are refused with the configuration untouched, and SIGHUP makes a running server
//! pick up added and removed provisioners (and keep the old ones when the file is broken).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

mod common;
use common::{POLL, Server, p, text};

const RELOAD: Duration = Duration::from_secs(20);

fn signet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env_remove("SIGNET_CA_PASSPHRASE")
        .env_remove("SIGNET_DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A stand-in cluster: a P-256 service-account signing key and its JWKS.
struct Cluster {
    issuer: String,
    key_pem: String,
    kid: String,
}

impl Cluster {
    fn new(issuer: &str, kid: &str) -> Cluster {
        let key = rcgen::KeyPair::generate().unwrap();
        Cluster {
            issuer: issuer.into(),
            key_pem: key.serialize_pem(),
            kid: kid.into(),
        }
    }

    fn jwks(&self) -> String {
        let key = rcgen::KeyPair::from_pem(&self.key_pem).unwrap();
        let point = key.public_key_raw();
        json!({"keys": [{"use": "sig", "kty": "EC", "crv": "P-256", "kid": self.kid, "alg": "ES256",
            "x": B64.encode(&point[1..33]), "y": B64.encode(&point[33..])}]})
        .to_string()
    }

    fn token(&self, ns: &str, sa: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let claims = json!({
            "aud": ["signet"], "exp": now + 3600, "iat": now, "nbf": now, "iss": self.issuer,
            "jti": "0d6c1f0e-2b7a-4c1e-9f3d-5a6b7c8d9e0f",
            "kubernetes.io": {"namespace": ns,
                "pod": {"name": "p", "uid": "u1"}, "node": {"name": "n", "uid": "u2"},
                "serviceaccount": {"name": sa, "uid": "u3"}},
            "sub": format!("system:serviceaccount:{ns}:{sa}"),
        });
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let key = EncodingKey::from_ec_pem(self.key_pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }
}

fn csr() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// `signet serve --dir DIR --plain-http` (no responder), its log beside DIR, once it
/// answers `/healthz`.
async fn start(dir: &Path, client: &reqwest::Client) -> Server {
    let log_dir = dir.parent().unwrap();
    let mut server = Server::start(
        log_dir,
        &[],
        &["--dir", p(dir), "--plain-http", "--responder-listen", "off"],
    )
    .await;
    server.wait_for(client, &server.url("/healthz")).await;
    server
}

async fn issue(server: &Server, client: &reqwest::Client, token: &str) -> (u16, Value) {
    let resp = client
        .post(server.url("/v1/certificates"))
        .bearer_auth(token)
        .json(&json!({"csr": csr()}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Waits (at most [`RELOAD`]) until the log has `needle` `count` times.
async fn wait_log(server: &mut Server, needle: &str, count: usize) {
    let deadline = Instant::now() + RELOAD;
    while server.log().matches(needle).count() < count {
        server.alive();
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged {count} times:\n{}",
            server.log()
        );
        tokio::time::sleep(POLL).await;
    }
}

fn add_k8s(dir: &Path, name: &str, jwks: &Path, issuer: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "provisioner",
        "add",
        "kubernetes",
        "--dir",
        p(dir),
        "--name",
        name,
        "--jwks-file",
        p(jwks),
        "--issuer",
        issuer,
        "--audience",
        "signet",
    ];
    args.extend_from_slice(extra);
    signet(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioners_are_added_listed_removed_and_reloaded_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let out = signet(&["init", "--dir", p(&dir), "--name", "Test CA"]);
    assert!(out.status.success(), "init: {}", text(&out));
    let config = dir.join("signet.toml");
    let pristine = fs::read_to_string(&config).unwrap();

    let one = Cluster::new("https://one.cluster.test", "one-kid");
    let jwks_one = tmp.path().join("one.jwks.json");
    fs::write(&jwks_one, one.jwks()).unwrap();
    let out = add_k8s(
        &dir,
        "k8s",
        &jwks_one,
        &one.issuer,
        &[
            "--namespaces",
            "prod,staging",
            "--service-accounts",
            "prod/api,staging/api",
            "--trust-domain",
            "one.test",
        ],
    );
    assert!(out.status.success(), "add: {}", text(&out));
    let written = fs::read_to_string(&config).unwrap();
    // Comments and other settings are kept; the JWKS was copied next to the config.
    assert!(
        written.contains("# Signet configuration. Every setting below is at its default"),
        "{written}"
    );
    assert!(written.contains("name = \"Test CA\""), "{written}");
    assert!(
        written.contains("jwks_file = \"provisioners/k8s.jwks.json\""),
        "{written}"
    );
    assert_eq!(
        fs::read_to_string(dir.join("provisioners/k8s.jwks.json")).unwrap(),
        one.jwks()
    );

    // A token provisioner too, for parity.
    let out = signet(&[
        "provisioner",
        "add",
        "token",
        "--dir",
        p(&dir),
        "--name",
        "ci",
    ]);
    assert!(out.status.success(), "add token: {}", text(&out));
    assert!(dir.join("provisioners/ci.key").exists());

    let out = signet(&["provisioner", "list", "--dir", p(&dir)]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("k8s") && listing.contains("kubernetes") && listing.contains("ci"),
        "{listing}"
    );
    assert!(
        listing.contains("issuer=https://one.cluster.test"),
        "{listing}"
    );

    // Duplicates and bad JWKS are refused, and the configuration is unchanged.
    let before = fs::read(&config).unwrap();
    let out = add_k8s(&dir, "k8s", &jwks_one, "https://other.test", &[]);
    assert_eq!(out.status.code(), Some(2), "duplicate: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{}",
        text(&out)
    );
    let out = add_k8s(&dir, "again", &jwks_one, &one.issuer, &[]);
    assert_eq!(out.status.code(), Some(2), "same issuer: {}", text(&out));
    for (what, bad) in [
        ("not JSON", "{not json".to_string()),
        (
            "symmetric key",
            r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#.into(),
        ),
        ("no kid", one.jwks().replace("\"kid\":\"one-kid\",", "")),
        ("no keys", r#"{"keys":[]}"#.into()),
    ] {
        let bad_file = tmp.path().join("bad.jwks.json");
        fs::write(&bad_file, bad).unwrap();
        let out = add_k8s(&dir, "bad", &bad_file, "https://bad.test", &[]);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", text(&out));
        assert_eq!(fs::read(&config).unwrap(), before, "{what}: config changed");
        assert!(!dir.join("provisioners/bad.jwks.json").exists(), "{what}");
    }
    let out = add_k8s(
        &dir,
        "bad",
        &jwks_one,
        "https://bad.test",
        &["--service-accounts", "no-slash"],
    );
    assert!(!out.status.success(), "bad allow-list: {}", text(&out));
    assert_eq!(fs::read(&config).unwrap(), before, "config changed");
    assert!(!dir.join("provisioners/bad.jwks.json").exists());

    // The server starts with it, and a workload's token gets a certificate.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut server = start(&dir, &client).await;
    let (status, body) = issue(&server, &client, &one.token("prod", "api")).await;
    assert_eq!(status, 201, "{body}\n{}", server.log());
    let (status, body) = issue(&server, &client, &one.token("prod", "db")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:signet:problem:service-account-denied");

    // A second cluster, added while the server runs: unknown until SIGHUP.
    let two = Cluster::new("https://two.cluster.test", "two-kid");
    let jwks_two = tmp.path().join("two.jwks.json");
    fs::write(&jwks_two, two.jwks()).unwrap();
    let out = add_k8s(&dir, "k8s-two", &jwks_two, &two.issuer, &[]);
    assert!(out.status.success(), "add two: {}", text(&out));
    let (status, _) = issue(&server, &client, &two.token("default", "app")).await;
    assert_eq!(status, 401, "not loaded before SIGHUP");
    server.signal("HUP");
    wait_log(&mut server, "reloaded the provisioners", 1).await;
    let (status, body) = issue(&server, &client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "{body}\n{}", server.log());

    // A broken configuration on reload: logged, and the previous provisioners stay.
    let good = fs::read(&config).unwrap();
    fs::write(&config, b"[ca\nthis is not toml").unwrap();
    server.signal("HUP");
    wait_log(&mut server, "could not be reloaded", 1).await;
    let (status, body) = issue(&server, &client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "old provisioners kept: {body}");
    // A JWKS file that went bad is a reload error too.
    fs::write(&config, &good).unwrap();
    fs::write(dir.join("provisioners/k8s-two.jwks.json"), "{}").unwrap();
    server.signal("HUP");
    wait_log(&mut server, "could not be reloaded", 2).await;
    let (status, _) = issue(&server, &client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "old provisioners kept");
    fs::write(dir.join("provisioners/k8s-two.jwks.json"), two.jwks()).unwrap();

    // Removal, then SIGHUP: the second cluster's tokens are refused again.
    let out = signet(&["provisioner", "remove", "k8s-two", "--dir", p(&dir)]);
    assert!(out.status.success(), "remove: {}", text(&out));
    assert!(!dir.join("provisioners/k8s-two.jwks.json").exists());
    let out = signet(&["provisioner", "remove", "k8s-two", "--dir", p(&dir)]);
    assert_eq!(out.status.code(), Some(2), "remove twice: {}", text(&out));
    server.signal("HUP");
    wait_log(&mut server, "reloaded the provisioners", 2).await;
    let (status, _) = issue(&server, &client, &two.token("default", "app")).await;
    assert_eq!(status, 401, "removed");
    let (status, body) = issue(&server, &client, &one.token("staging", "api")).await;
    assert_eq!(status, 201, "{body}");
    assert!(
        !server.log().contains(&two.token("default", "app")[..40]),
        "tokens are never logged"
    );
    let written = fs::read_to_string(&config).unwrap();
    assert!(!written.contains("k8s-two"), "{written}");
    assert!(written.contains("name = \"k8s\""), "{written}");
    drop(server);

    // Removing what was added gives back the file `init` wrote, comments and all.
    for name in ["ci", "k8s"] {
        let out = signet(&["provisioner", "remove", name, "--dir", p(&dir)]);
        assert!(out.status.success(), "remove {name}: {}", text(&out));
    }
    assert_eq!(fs::read_to_string(&config).unwrap(), pristine);
}
