//! `signet provisioner add|list|remove` on a real data directory, then a real `signet serve`
//! using what it wrote: a Kubernetes service-account token gets a certificate, duplicates and
//! bad JWKS are refused with the configuration untouched, and SIGHUP makes a running server
//! pick up added and removed provisioners (and keep the old ones when the file is broken).
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

mod common;
use common::{p, text};

const STARTUP: Duration = Duration::from_secs(90);
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

struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.with_extension(format!("serve-{port}.log"));
        let out = fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["serve", "--dir", p(dir), "--plain-http"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--responder-listen", "off"])
            .env_remove("SIGNET_CA_PASSPHRASE")
            .env_remove("SIGNET_DATABASE_URL")
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Server { child, port, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_ready(&mut self, client: &reqwest::Client) {
        let deadline = Instant::now() + STARTUP;
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("signet serve exited early ({status}):\n{}", self.log());
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
                && self.log().contains("signet serve is listening")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no answer from {url}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn issue(&self, client: &reqwest::Client, token: &str) -> (u16, Value) {
        let resp = client
            .post(format!("http://127.0.0.1:{}/v1/certificates", self.port))
            .bearer_auth(token)
            .json(&json!({"csr": csr()}))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn hangup(&self) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-HUP", &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// Wait until the log has `needle` `count` times.
    async fn wait_log(&mut self, needle: &str, count: usize) {
        let deadline = Instant::now() + RELOAD;
        while self.log().matches(needle).count() < count {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("signet serve exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {count} times:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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
    let mut server = Server::start(&dir);
    server.wait_ready(&client).await;
    let (status, body) = server.issue(&client, &one.token("prod", "api")).await;
    assert_eq!(status, 201, "{body}\n{}", server.log());
    let (status, body) = server.issue(&client, &one.token("prod", "db")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:signet:problem:service-account-denied");

    // A second cluster, added while the server runs: unknown until SIGHUP.
    let two = Cluster::new("https://two.cluster.test", "two-kid");
    let jwks_two = tmp.path().join("two.jwks.json");
    fs::write(&jwks_two, two.jwks()).unwrap();
    let out = add_k8s(&dir, "k8s-two", &jwks_two, &two.issuer, &[]);
    assert!(out.status.success(), "add two: {}", text(&out));
    let (status, _) = server.issue(&client, &two.token("default", "app")).await;
    assert_eq!(status, 401, "not loaded before SIGHUP");
    server.hangup();
    server.wait_log("reloaded the provisioners", 1).await;
    let (status, body) = server.issue(&client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "{body}\n{}", server.log());

    // A broken configuration on reload: logged, and the previous provisioners stay.
    let good = fs::read(&config).unwrap();
    fs::write(&config, b"[ca\nthis is not toml").unwrap();
    server.hangup();
    server.wait_log("could not be reloaded", 1).await;
    let (status, body) = server.issue(&client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "old provisioners kept: {body}");
    // A JWKS file that went bad is a reload error too.
    fs::write(&config, &good).unwrap();
    fs::write(dir.join("provisioners/k8s-two.jwks.json"), "{}").unwrap();
    server.hangup();
    server.wait_log("could not be reloaded", 2).await;
    let (status, _) = server.issue(&client, &two.token("default", "app")).await;
    assert_eq!(status, 201, "old provisioners kept");
    fs::write(dir.join("provisioners/k8s-two.jwks.json"), two.jwks()).unwrap();

    // Removal, then SIGHUP: the second cluster's tokens are refused again.
    let out = signet(&["provisioner", "remove", "k8s-two", "--dir", p(&dir)]);
    assert!(out.status.success(), "remove: {}", text(&out));
    assert!(!dir.join("provisioners/k8s-two.jwks.json").exists());
    let out = signet(&["provisioner", "remove", "k8s-two", "--dir", p(&dir)]);
    assert_eq!(out.status.code(), Some(2), "remove twice: {}", text(&out));
    server.hangup();
    server.wait_log("reloaded the provisioners", 2).await;
    let (status, _) = server.issue(&client, &two.token("default", "app")).await;
    assert_eq!(status, 401, "removed");
    let (status, body) = server.issue(&client, &one.token("staging", "api")).await;
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
