//! End-to-end tests of `signet serve`: the real binary in a real process, reached over real
//! HTTPS. The server's certificate is checked with rustls (through reqwest) and with the
//! openssl CLI; client certificates go through the API's mTLS renewal; shutdown is by
//! SIGTERM. PostgreSQL runs two servers on one database.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use signet_testkit::TestDb;

mod common;
use common::{STARTUP, Server, p, text};

/// `scheme://ADDR/path` on the server's API address.
fn url(server: &Server, scheme: &str, path: &str) -> String {
    format!("{scheme}://{}{path}", server.addr())
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

fn signet(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_signet"))
        .args(args)
        .env_remove("SIGNET_CA_PASSPHRASE")
        .env_remove("SIGNET_DATABASE_URL")
        .output()
        .unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting only `root`, optionally presenting a client certificate.
fn client(root: &Path, identity: Option<(&Path, &Path)>) -> reqwest::Client {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let tls = match identity {
        Some((chain, key)) => {
            let chain = CertificateDer::pem_file_iter(chain)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `sha256:` + hex of the first certificate in a PEM file, as the server logs it.
fn fingerprint(pem_file: &Path) -> String {
    let der = CertificateDer::from_pem_file(pem_file).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &der);
    format!("sha256:{}", hex::encode(digest.as_ref()))
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `openssl s_client` against the server; Ok(output) when it exits 0.
fn s_client(port: u16, extra: &[&str]) -> Output {
    let connect = format!("127.0.0.1:{port}");
    let mut args = vec!["s_client", "-connect", &connect];
    args.extend_from_slice(extra);
    openssl(&args)
}

/// A key and CSR made by openssl, and the certificate `signet issue --local` signs for it.
fn local_client_cert(dir: &Path, data: &Path, tag: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{tag}.key"));
    let csr = dir.join(format!("{tag}.csr"));
    let cert = dir.join(format!("{tag}.pem"));
    let o = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        p(&key),
        "-out",
        p(&csr),
        "-subj",
        "/CN=worker.internal",
        "-addext",
        "subjectAltName=DNS:worker.internal",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = signet(&[
        "issue",
        "--local",
        "--dir",
        p(data),
        "--csr",
        p(&csr),
        "--profile",
        "client",
        "--out",
        p(&cert),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    (cert, key)
}

/// A self-signed certificate from no CA of ours.
fn foreign_client_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("foreign.key");
    let cert = dir.join("foreign.pem");
    let o = openssl(&[
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        p(&key),
        "-out",
        p(&cert),
        "-subj",
        "/CN=worker.internal",
        "-days",
        "1",
        "-addext",
        "subjectAltName=DNS:worker.internal",
        "-addext",
        "extendedKeyUsage=clientAuth",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    (cert, key)
}

#[tokio::test]
async fn first_start_initialises_the_directory_and_serves_https() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    // Ready (every socket bound) only once the directory is initialised.
    let root = data.join("root_ca.crt");
    assert!(root.exists());
    let https = client(&root, None);

    // Health over HTTPS, trusting only our root, with the API's security headers.
    let resp = server
        .wait_for(&https, &url(&server, "https", "/healthz"))
        .await;
    assert_eq!(resp.version(), reqwest::Version::HTTP_2, "ALPN h2");
    let headers = resp.headers();
    assert!(
        headers.contains_key("strict-transport-security"),
        "{headers:?}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    server
        .wait_for(&https, &url(&server, "https", "/readyz"))
        .await;
    // The certificate names localhost too.
    let by_name = https
        .get(format!("https://localhost:{}/healthz", server.port()))
        .send()
        .await
        .unwrap();
    assert!(by_name.status().is_success());

    // The admin token: private, `sa_` + base64url, no dots; logged by path, never by value.
    let token_file = data.join("admin.token");
    assert_eq!(mode(&token_file), 0o600);
    let token = fs::read_to_string(&token_file).unwrap();
    let token = token.trim();
    assert!(token.starts_with("sa_") && token.len() == 46, "{token:?}");
    assert!(!token.contains('.'));
    let log = server.log();
    assert!(!log.contains(token), "the token was logged:\n{log}");
    assert!(log.contains(p(&token_file)), "{log}");
    assert!(log.contains(&fingerprint(&root)), "{log}");

    // The default provisioner: a private key, its public key, and its entry in the config.
    let prov = data.join("provisioners");
    assert_eq!(mode(&prov.join("default.key")), 0o600);
    assert!(
        fs::read_to_string(prov.join("default.key"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        fs::read_to_string(prov.join("default.pub"))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----")
    );
    let config = fs::read_to_string(data.join("signet.toml")).unwrap();
    assert!(
        config.contains(
            "[[provisioners]]\nname = \"default\"\ntype = \"token\"\npublic_key_file = \"provisioners/default.pub\"\n\n[provisioners.policy]\n"
        ),
        "{config}"
    );

    // openssl agrees: the chain verifies to our root for localhost and 127.0.0.1.
    let root_arg = p(&root);
    for check in [
        ["-servername", "localhost", "-verify_hostname", "localhost"],
        ["-servername", "localhost", "-verify_ip", "127.0.0.1"],
    ] {
        let mut args = vec!["-CAfile", root_arg, "-verify_return_error"];
        args.extend_from_slice(&check);
        let o = s_client(server.port(), &args);
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Verify return code: 0 (ok)"),
            "{}",
            text(&o)
        );
    }
    // TLS 1.2 and 1.3 only: 1.1 is refused even by a client willing to use it.
    for version in ["-tls1_2", "-tls1_3"] {
        let o = s_client(server.port(), &["-CAfile", root_arg, version]);
        assert!(o.status.success(), "{version}: {}", text(&o));
    }
    let o = s_client(
        server.port(),
        &[
            "-CAfile",
            root_arg,
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ],
    );
    assert!(!o.status.success(), "TLS 1.1 was accepted: {}", text(&o));

    // Client certificates: one from our CA reaches the API (mTLS renewal works with it and
    // not without it); one from elsewhere is refused in the handshake.
    let (cert, key) = local_client_cert(tmp.path(), &data, "worker");
    let renew = url(&server, "https", "/v1/certificates/renew");
    let mtls = client(&root, Some((&cert, &key)));
    let resp = mtls.post(&renew).send().await.unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let resp = https.post(&renew).send().await.unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    let (cert, key) = foreign_client_cert(tmp.path());
    let foreign = client(&root, Some((&cert, &key)));
    assert!(
        foreign
            .get(url(&server, "https", "/healthz"))
            .send()
            .await
            .is_err(),
        "a certificate from another CA was accepted"
    );

    // The server's certificate is in the store, with its audit row.
    let store = signet_store::Store::connect(&format!("sqlite://{}", p(&data.join("signet.db"))))
        .await
        .unwrap();
    let audit = store.list_audit(100).await.unwrap();
    assert!(
        audit.iter().any(|a| a.action == "issue-server-cert"
            && a.actor == "signet-serve"
            && a.outcome == "ok"),
        "{audit:?}"
    );
    store.close().await;

    let (status, took) = server.terminate().await;
    assert!(status.success(), "{status}:\n{}", server.log());
    eprintln!("exited {took:?} after SIGTERM");

    // A second start reuses everything: same token, no second provisioner entry.
    let mut again = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    again
        .wait_for(&https, &url(&again, "https", "/readyz"))
        .await;
    assert_eq!(fs::read_to_string(&token_file).unwrap().trim(), token);
    let config = fs::read_to_string(data.join("signet.toml")).unwrap();
    assert_eq!(
        config.matches("\n[[provisioners]]\n").count(),
        1,
        "{config}"
    );
    let (status, _) = again.terminate().await;
    assert!(status.success(), "{status}:\n{}", again.log());
}

#[tokio::test]
async fn plain_http_serves_the_same_router_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data), "--plain-http"]).await;
    // reqwest builds its TLS settings even for plain HTTP; give it our one provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = server
        .wait_for(&http, &url(&server, "http", "/healthz"))
        .await;
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let log = server.log();
    assert!(log.contains("WARN") && log.contains("plain HTTP"), "{log}");
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{status}:\n{}", server.log());
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_before_listening() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = signet(&["init", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let config = data.join("signet.toml");
    let good = fs::read_to_string(&config).unwrap();
    let missing_key = format!(
        "{good}\n[[provisioners]]\nname = \"ci\"\ntype = \"token\"\npublic_key_file = \"nowhere.pub\"\n"
    );
    for (bad, expect) in [
        (
            good.replace("listen = \"127.0.0.1:8443\"", "listen = \"nowhere\""),
            "listen",
        ),
        (
            good.replace("hostnames = []", "hostnames = [\"bad name!\"]"),
            "hostname",
        ),
        (
            good.replace("hostnames = []", "hostnames = []\nport = 1"),
            "port",
        ),
        (missing_key, "ci"),
    ] {
        fs::write(&config, &bad).unwrap();
        let started = Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_signet"))
            .args(["serve", "--dir", p(&data), "--listen", "127.0.0.1:0"])
            .env_remove("SIGNET_DATABASE_URL")
            .env_remove("SIGNET_CA_PASSPHRASE")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{bad}\n{}", text(&o));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("error:") && stderr.contains(expect),
            "expected {expect:?}: {}",
            text(&o)
        );
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    // A flag is checked like the file.
    fs::write(&config, &good).unwrap();
    let o = signet(&["serve", "--dir", p(&data), "--hostname", "*.internal"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
}

#[tokio::test]
async fn two_servers_share_one_postgresql_database() {
    let db = TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let env = [("SIGNET_DATABASE_URL", db.url())];
    let mut first = Server::start(tmp.path(), &env, &["--dir", p(&data)]).await;
    let root = data.join("root_ca.crt");
    let https = client(&root, None);
    first
        .wait_for(&https, &url(&first, "https", "/readyz"))
        .await;
    // The second has the same CA (a copy of the directory: one server per directory) and
    // shares the database.
    let copy = tmp.path().join("copy");
    let o = Command::new("cp")
        .args(["-a", p(&data), p(&copy)])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let mut second = Server::start(tmp.path(), &env, &["--dir", p(&copy)]).await;
    second
        .wait_for(&https, &url(&second, "https", "/readyz"))
        .await;
    for server in [&first, &second] {
        let resp = https
            .get(url(server, "https", "/readyz"))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        assert!(
            server.log().contains("database=\"postgres"),
            "{}",
            server.log()
        );
    }
    assert!(
        !data.join("signet.db").exists(),
        "SQLite was used instead of PostgreSQL"
    );

    // Each recorded its own server certificate in the shared database.
    let store = signet_store::Store::connect(db.url()).await.unwrap();
    let server_certs = store
        .list_audit(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|a| a.action == "issue-server-cert")
        .count();
    assert_eq!(server_certs, 2);
    store.close().await;

    for server in [&mut first, &mut second] {
        let (status, _) = server.terminate().await;
        assert!(status.success(), "{status}:\n{}", server.log());
    }
}

#[tokio::test]
async fn a_client_that_never_completes_the_handshake_is_disconnected() {
    use tokio::io::AsyncReadExt;
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let https = client(&data.join("root_ca.crt"), None);
    server
        .wait_for(&https, &url(&server, "https", "/healthz"))
        .await;
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", server.port()))
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf))
        .await
        .expect("the server kept a silent connection open for 20 s");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(8), "closed after {waited:?}");
    let (status, _) = server.terminate().await;
    assert!(status.success(), "{status}:\n{}", server.log());
}

/// The issuing CA is replaced with `ca new-issuing` between two runs of the server: a
/// client certificate from the old CA still authenticates over real mTLS and renews onto
/// the new CA, whose chain openssl verifies; the server logs which kept CA it accepts.
#[tokio::test]
async fn after_new_issuing_old_certificates_renew_onto_the_new_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = signet(&["init", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let (cert, key) = local_client_cert(tmp.path(), &data, "worker");
    let o = signet(&["ca", "new-issuing", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));

    let mut server = Server::start(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--responder-listen", "off"],
    )
    .await;
    let root = data.join("root_ca.crt");
    let https = client(&root, None);
    server
        .wait_for(&https, &url(&server, "https", "/readyz"))
        .await;
    let mtls = client(&root, Some((&cert, &key)));
    let resp = mtls
        .post(url(&server, "https", "/v1/certificates/renew"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", server.log());
    let body: serde_json::Value = resp.json().await.unwrap();
    let chain: String = body["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(
        chain,
        fs::read_to_string(data.join("issuing_ca.crt")).unwrap(),
        "the new issuing CA's chain"
    );
    let leaf = tmp.path().join("renewed.pem");
    let chain_file = tmp.path().join("chain.pem");
    fs::write(&leaf, body["certificate"].as_str().unwrap()).unwrap();
    fs::write(&chain_file, &chain).unwrap();
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&chain_file),
        "-purpose",
        "sslclient",
        p(&leaf),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // The renewed certificate authenticates too (through the new CA).
    let mtls = client(&root, Some((&leaf_with_chain(&leaf, &chain_file), &key)));
    let resp = mtls
        .post(url(&server, "https", "/v1/certificates/renew"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(
        server
            .log()
            .contains("certificates of this earlier issuing CA may renew onto the current one"),
        "{}",
        server.log()
    );
}

/// `leaf` followed by `chain`, in a new file beside `leaf`.
fn leaf_with_chain(leaf: &Path, chain: &Path) -> PathBuf {
    let out = leaf.with_extension("full.pem");
    let mut pem = fs::read_to_string(leaf).unwrap();
    pem.push_str(&fs::read_to_string(chain).unwrap());
    fs::write(&out, pem).unwrap();
    out
}

/// After `ca new-issuing`, `serve` goes on signing the old issuing CA's CRL with its kept
/// key and serves it in `/crl/chain.pem`: openssl, checking CRLs for the whole chain as
/// nginx `ssl_crl` does, accepts a certificate of the old CA, and refuses it once the admin
/// revokes it.
#[tokio::test]
async fn the_old_issuing_cas_crl_is_still_published_after_new_issuing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let o = signet(&["init", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let old_ca = data.join("issuing_ca.crt");
    let old_serial = {
        let o = openssl(&["x509", "-in", p(&old_ca), "-noout", "-serial"]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    };
    let (cert, _key) = local_client_cert(tmp.path(), &data, "old");
    let o = signet(&["ca", "new-issuing", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let kept = data.join(format!("issuing_ca.{old_serial}.crt"));
    assert!(kept.exists());

    let mut server = Server::start(tmp.path(), &[], &["--dir", p(&data)]).await;
    let ocsp_listen = format!("127.0.0.1:{}", server.ocsp_port());
    let root = data.join("root_ca.crt");
    let https = client(&root, None);
    server
        .wait_for(&https, &url(&server, "https", "/readyz"))
        .await;
    let plain = client(&root, None);
    let chain_file = tmp.path().join("chain.pem");
    // openssl checking the old certificate with CRLs for the whole chain, from `chain`.
    let verify_with = |chain: &str| {
        fs::write(&chain_file, chain).unwrap();
        openssl(&[
            "verify",
            "-crl_check_all",
            "-CAfile",
            p(&root),
            "-untrusted",
            p(&kept),
            "-CRLfile",
            p(&chain_file),
            p(&cert),
        ])
    };
    let verify_old = async || {
        let resp = plain
            .get(format!("http://{ocsp_listen}/crl/chain.pem"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let chain = resp.text().await.unwrap();
        let o = verify_with(&chain);
        (chain, o)
    };
    // The old CA's CRL joins once the responder's watch loop has loaded it.
    let deadline = Instant::now() + Duration::from_secs(10);
    let o = loop {
        let (chain, o) = verify_old().await;
        if chain.matches("-----BEGIN X509 CRL-----").count() == 3 {
            break o;
        }
        assert!(Instant::now() < deadline, "never three CRLs: {chain}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(o.status.success(), "{}\n{}", text(&o), server.log());
    // The old CA's CRL alone, under its own name.
    let resp = plain
        .get(format!("http://{ocsp_listen}/crl/issuing-{old_serial}.crl"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let der = tmp.path().join("old.crl");
    fs::write(&der, resp.bytes().await.unwrap()).unwrap();
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&der),
        "-CAfile",
        p(&kept),
        "-noout",
    ]);
    assert!(text(&o).contains("verify OK"), "{}", text(&o));

    // Revoked by the admin: the old CA's next CRL lists it and openssl refuses it.
    let leaf_serial = {
        let o = openssl(&["x509", "-in", p(&cert), "-noout", "-serial"]);
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase()
    };
    let admin = fs::read_to_string(data.join("admin.token")).unwrap();
    let resp = https
        .post(url(
            &server,
            "https",
            &format!("/v1/certificates/{leaf_serial}/revoke"),
        ))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"reason": "keyCompromise"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, o) = verify_old().await;
        if !o.status.success() {
            assert!(text(&o).contains("certificate revoked"), "{}", text(&o));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old CA's CRL never listed the revocation:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A standalone responder on the same data directory and database serves the same three
    // CRLs: it finds the kept certificate beside the issuing one and checks it with the root.
    let sqlite = format!("sqlite://{}", p(&data.join("signet.db")));
    let mut standalone = Server::spawn_responder(
        tmp.path(),
        &[],
        &["--dir", p(&data), "--database-url", &sqlite],
    );
    let standalone_port = standalone.ready().await.responder.unwrap().port();
    let deadline = Instant::now() + STARTUP;
    let chain = loop {
        if let Ok(resp) = plain
            .get(format!("http://127.0.0.1:{standalone_port}/crl/chain.pem"))
            .send()
            .await
            && resp.status() == 200
        {
            // The earlier CA's CRL joins once the responder's watch loop has loaded it.
            let body = resp.text().await.unwrap();
            if body.matches("-----BEGIN X509 CRL-----").count() == 3 {
                break body;
            }
        }
        standalone.alive();
        assert!(Instant::now() < deadline, "{}", standalone.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(standalone);
    assert_eq!(
        chain.matches("-----BEGIN X509 CRL-----").count(),
        3,
        "{chain}"
    );
    let o = verify_with(&chain);
    assert!(text(&o).contains("certificate revoked"), "{}", text(&o));
}
