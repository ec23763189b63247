//! End-to-end tests of the workload commands, `signet bootstrap` (init container) and
//! `signet renew` (sidecar), against a real `signet serve` over HTTPS on a free local port.
//! Certificates are checked with `openssl verify`, and a real mutual-TLS handshake between
//! two workloads uses nothing but the files they were given (`openssl s_server` /
//! `openssl s_client`). The Kubernetes case mints service-account tokens from a simulated
//! cluster issuer (an EC key published as a JWKS), exactly as a kubelet-projected token looks.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

mod common;
use common::{Watched, base_command, free_port, p, text};

// ---------------------------------------------------------------------------------------
// Harness: a server, the binary, openssl.
// ---------------------------------------------------------------------------------------

/// A running `signet serve` (killed when dropped) and what a workload is given to reach it.
struct Server {
    proc: common::Server,
    url: String,
    data: PathBuf,
    fingerprint: String,
}

impl Server {
    /// A first start: `serve` initialises the directory and makes the `default` token
    /// provisioner.
    fn start(tmp: &Path) -> Server {
        Server::start_with(tmp, |_| {})
    }

    /// `signet init`, then `setup(data_dir)` (e.g. to add a provisioner to signet.toml), then
    /// `signet serve`.
    fn start_with(tmp: &Path, setup: impl FnOnce(&Path)) -> Server {
        Server::start_full(tmp, setup, None)
    }

    /// With the OCSP responder on `responder_port`, which the certificates' AIA names (so
    /// it is picked before the server starts: see `common::free_port`).
    fn start_with_responder(tmp: &Path, responder_port: u16) -> Server {
        let mut server = Server::start_full(
            tmp,
            |data| {
                let path = data.join("signet.toml");
                let toml = std::fs::read_to_string(&path).unwrap();
                let toml = toml.replace("127.0.0.1:8080", &format!("127.0.0.1:{responder_port}"));
                std::fs::write(&path, toml).unwrap();
            },
            Some(responder_port),
        );
        assert_eq!(server.proc.ocsp_port(), responder_port);
        // Ready once its delegated signer is installed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", responder_port)).is_ok_and(|mut c| {
                let _ = c.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = c.read_to_string(&mut answer);
                answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
            });
            if ready {
                break server;
            }
            server.proc.alive();
            assert!(
                Instant::now() < deadline,
                "the responder never became ready:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_full(tmp: &Path, setup: impl FnOnce(&Path), responder_port: Option<u16>) -> Server {
        let data = tmp.join("data");
        let o = signet(tmp, &[], &["init", "--dir", p(&data)]);
        assert!(o.status.success(), "{}", text(&o));
        setup(&data);
        let responder =
            responder_port.map_or_else(|| "off".to_string(), |p| format!("127.0.0.1:{p}"));
        let proc = common::Server::start_blocking(
            tmp,
            &[],
            &["--dir", p(&data), "--responder-listen", &responder],
        );
        Server {
            url: proc.base(),
            fingerprint: root_fingerprint(&data.join("root_ca.crt")),
            proc,
            data,
        }
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    /// A one-time token of the `default` provisioner for these names.
    fn token(&self, subject: &str, sans: &[&str]) -> String {
        let mut args = vec![
            "token",
            "--dir",
            p(&self.data),
            "--ca-url",
            &self.url,
            "--subject",
            subject,
        ];
        for s in sans {
            args.extend(["--san", s]);
        }
        let o = signet(&self.data, &[], &args);
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o).trim().to_string()
    }

    /// How many certificates the CA has recorded (admin listing).
    fn certificate_count(&self) -> usize {
        let o = signet(
            &self.data,
            &[],
            &[
                "list",
                "--dir",
                p(&self.data),
                "--ca-url",
                &self.url,
                "--all",
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o).lines().filter(|l| !l.trim().is_empty()).count()
    }

    /// `signet bootstrap` with this server's URL and pinned root, the token in a file.
    fn bootstrap(&self, work: &Path, out: &Path, token: &str, extra: &[&str]) -> Output {
        let token_file = work.join(format!(
            "token-{}",
            out.file_name().unwrap().to_string_lossy()
        ));
        std::fs::write(&token_file, token).unwrap();
        let mut args = vec![
            "bootstrap",
            "--ca-url",
            &self.url,
            "--root-fingerprint",
            &self.fingerprint,
            "--token-file",
            p(&token_file),
            "--dir",
            p(out),
        ];
        args.extend_from_slice(extra);
        signet(work, &[], &args)
    }
}

fn signet(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = base_command();
    cmd.current_dir(cwd).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

fn root_fingerprint(root_pem: &Path) -> String {
    let pem = std::fs::read_to_string(root_pem).unwrap();
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE");
    signet_ca::sha256_fingerprint(&der)
}

/// The workload's three files.
struct Written {
    ca: PathBuf,
    key: PathBuf,
    cert: PathBuf,
}

fn written(dir: &Path) -> Written {
    Written {
        ca: dir.join("ca.crt"),
        key: dir.join("tls.key"),
        cert: dir.join("tls.crt"),
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// `openssl x509 -noout <flag>` of the first certificate in a file.
fn x509(cert: &Path, flags: &[&str]) -> String {
    let mut args = vec!["x509", "-in", p(cert), "-noout"];
    args.extend_from_slice(flags);
    let o = openssl(&args);
    assert!(o.status.success(), "{}", text(&o));
    stdout(&o)
}

fn serial_of(cert: &Path) -> String {
    x509(cert, &["-serial"])
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

fn sans_of(cert: &Path) -> String {
    x509(cert, &["-ext", "subjectAltName"])
}

fn not_after(cert: &Path) -> i64 {
    let pem = std::fs::read_to_string(cert).unwrap();
    let first = pem
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap();
    let (_, der) = pem_rfc7468::decode_vec(first.as_bytes()).unwrap();
    let info = signet_ca::CertificateInfo::from_der(&der).unwrap();
    info.not_after.unix_timestamp()
}

fn pem_count(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .matches("-----BEGIN CERTIFICATE-----")
        .count()
}

/// tls.crt verifies against ca.crt alone (the intermediates are in tls.crt itself) for
/// `purpose`, with openssl.
fn assert_verifies(files: &Written, purpose: &str) {
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&files.ca),
        "-untrusted",
        p(&files.cert),
        "-purpose",
        purpose,
        p(&files.cert),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains(": OK"), "{}", text(&o));
}

/// The public key of a private key file, as openssl prints it.
fn public_of_key(key: &Path) -> String {
    let o = openssl(&["pkey", "-in", p(key), "-pubout"]);
    assert!(o.status.success(), "{}", text(&o));
    stdout(&o)
}

fn public_of_cert(cert: &Path) -> String {
    x509(cert, &["-pubkey"])
}

/// Everything a freshly written set of files must satisfy.
fn assert_good_files(files: &Written, purpose: &str) {
    assert_eq!(mode(&files.key), 0o600, "tls.key mode");
    assert_eq!(mode(&files.cert), 0o644, "tls.crt mode");
    assert_eq!(mode(&files.ca), 0o644, "ca.crt mode");
    assert_eq!(pem_count(&files.ca), 1, "ca.crt holds the root");
    assert_eq!(
        pem_count(&files.cert),
        2,
        "tls.crt holds the leaf, then the issuing CA"
    );
    assert_eq!(public_of_key(&files.key), public_of_cert(&files.cert));
    assert_verifies(files, purpose);
}

// ---------------------------------------------------------------------------------------
// Mutual TLS between two workloads with openssl, from the written files only.
// ---------------------------------------------------------------------------------------

/// `openssl s_server` requiring a client certificate (`-Verify 1`) that chains to its ca.crt;
/// `openssl s_client` presenting the other workload's certificate, checking the server's
/// against its ca.crt and `server_name`, and sending one line. Returns both outputs.
fn run_mtls(server: &Written, client: &Written, server_name: &str) -> (Output, Output) {
    const LIMIT: Duration = Duration::from_secs(20);
    // Port 0: s_server prints the address it bound ("ACCEPT 127.0.0.1:PORT").
    let mut s_server = Watched::spawn(Command::new("openssl").args([
        "s_server",
        "-accept",
        "127.0.0.1:0",
        "-cert",
        p(&server.cert),
        "-cert_chain",
        p(&server.cert),
        "-key",
        p(&server.key),
        "-CAfile",
        p(&server.ca),
        "-Verify",
        "1",
        "-verify_return_error",
    ]));
    assert!(
        s_server.wait_for("ACCEPT 127.0.0.1:", LIMIT),
        "openssl s_server did not listen:\n{}",
        s_server.printed()
    );
    let printed = s_server.printed();
    let port: u16 = printed
        .lines()
        .find_map(|l| l.strip_prefix("ACCEPT 127.0.0.1:"))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in {printed:?}"));
    let mut s_client = Watched::spawn(Command::new("openssl").args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-cert",
        p(&client.cert),
        "-cert_chain",
        p(&client.cert),
        "-key",
        p(&client.key),
        "-CAfile",
        p(&client.ca),
        "-verify_return_error",
        "-verify_hostname",
        server_name,
        "-servername",
        server_name,
    ]));
    // The handshake is over (from the client's side) once it prints its verification
    // result; then one line, and close.
    s_client.wait_for("Verify return code", LIMIT);
    let _ = s_client.stdin().write_all(b"hello over mutual TLS\n");
    s_client.close_stdin();
    let client_out = s_client.finish(LIMIT);
    // The server is done with the connection once it says so: DONE when the client closed
    // after its line, ERROR when the handshake failed.
    s_server.wait_for_any(&["\nDONE\n", "\nERROR\n"], LIMIT);
    let server_out = s_server.finish(Duration::ZERO);
    (client_out, server_out)
}

/// A successful mutual-TLS exchange: the client verified the server, and the server (which
/// demands a verified client certificate) received the line.
fn assert_mtls(server: &Written, client: &Written, server_name: &str) -> (Output, Output) {
    let (c, s) = run_mtls(server, client, server_name);
    let all = format!("s_client:\n{}\ns_server:\n{}", text(&c), text(&s));
    assert!(
        stdout(&c).contains("Verify return code: 0 (ok)"),
        "the client did not verify the server:\n{all}"
    );
    assert!(
        stdout(&s).contains("hello over mutual TLS"),
        "the server did not accept the client:\n{all}"
    );
    (c, s)
}

/// The subjectAltName of the first certificate openssl printed in `out` (s_client prints the
/// server's certificate, s_server the client's), as `openssl x509 -ext subjectAltName` says.
fn peer_sans(out: &Output, dir: &Path) -> String {
    let text = stdout(out);
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no peer certificate printed:\n{text}"));
    let end = text[begin..].find("-----END CERTIFICATE-----").unwrap() + begin + 25;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = dir.join(format!("peer-{n}.pem"));
    std::fs::write(&file, format!("{}\n", &text[begin..end])).unwrap();
    sans_of(&file)
}

// ---------------------------------------------------------------------------------------
// A simulated Kubernetes cluster issuer: an EC P-256 key, its JWKS, and projected tokens.
// ---------------------------------------------------------------------------------------

/// The cluster's service-account signer.
struct ClusterIssuer {
    key: rcgen::KeyPair,
    kid: String,
    issuer: String,
}

impl ClusterIssuer {
    fn new() -> ClusterIssuer {
        ClusterIssuer {
            key: rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            kid: "test-cluster-key-1".into(),
            issuer: "https://kubernetes.default.svc.cluster.local".into(),
        }
    }

    /// The JWKS as `kubectl get --raw /openid/v1/jwks` prints it.
    fn jwks(&self) -> String {
        use base64::Engine;
        let raw = rcgen::PublicKeyData::der_bytes(&self.key);
        assert_eq!(raw.len(), 65, "uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        serde_json::json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
            "x": b64(&raw[1..33]), "y": b64(&raw[33..65]),
        }]})
        .to_string()
    }

    /// A projected token for `namespace/service_account` with `audience`.
    fn token(&self, namespace: &str, service_account: &str, audience: &str) -> String {
        self.token_issued_at(namespace, service_account, audience, 0)
    }

    /// The same, issued `ago` seconds ago with the kubelet's default one-hour lifetime (so
    /// `ago` over 3600 gives an expired token).
    fn token_issued_at(
        &self,
        namespace: &str,
        service_account: &str,
        audience: &str,
        ago: i64,
    ) -> String {
        let now = signet_ca::OffsetDateTime::now_utc().unix_timestamp() - ago;
        let claims = serde_json::json!({
            "aud": [audience],
            "exp": now + 3600,
            "iat": now,
            "nbf": now,
            "iss": self.issuer,
            "jti": format!("{namespace}-{service_account}-{now}"),
            "kubernetes.io": {
                "namespace": namespace,
                "node": {"name": "node-1", "uid": "8b7c1e2a-0000-4000-8000-000000000001"},
                "pod": {"name": format!("{service_account}-7d9f8-abcde"), "uid": "8b7c1e2a-0000-4000-8000-000000000002"},
                "serviceaccount": {"name": service_account, "uid": "8b7c1e2a-0000-4000-8000-000000000003"},
                "warnafter": now + 2880,
            },
            "sub": format!("system:serviceaccount:{namespace}:{service_account}"),
        });
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let pem = self.key.serialize_pem();
        let key = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    }

    /// The `[[provisioners]]` entry for this cluster.
    fn provisioner_toml(&self, jwks_file: &str, namespaces: &[&str]) -> String {
        let ns = namespaces
            .iter()
            .map(|n| format!("{n:?}"))
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "\n[[provisioners]]\nname = \"kubernetes\"\ntype = \"kubernetes\"\nissuer = {:?}\n\
             audience = \"signet\"\njwks_file = {jwks_file:?}\ntrust_domain = \"cluster.local\"\n\
             namespaces = [{ns}]\n",
            self.issuer
        )
    }
}

// ---------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------

#[test]
fn bootstrap_writes_checked_files_and_rerunning_requests_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let out = work.join("signet");

    // No --san: the names come from the token's sans claim.
    let token = server.token("billing", &["billing.internal", "10.1.2.3"]);
    let o = server.bootstrap(&work, &out, &token, &["--profile", "peer"]);
    assert!(
        o.status.success(),
        "{}\nserver log:\n{}",
        text(&o),
        server.log()
    );
    // The token is never printed.
    assert!(
        !text(&o).contains(&token),
        "the token leaked into the output"
    );
    let files = written(&out);
    assert_good_files(&files, "sslserver");
    assert_verifies(&files, "sslclient");
    let sans = sans_of(&files.cert);
    assert!(sans.contains("DNS:billing.internal"), "{sans}");
    assert!(sans.contains("IP Address:10.1.2.3"), "{sans}");
    // ca.crt is the pinned root.
    assert_eq!(root_fingerprint(&files.ca), server.fingerprint);
    let serial = serial_of(&files.cert);

    // A re-run with a good certificate requests nothing: no new certificate on the server,
    // the files untouched (the token is not even read: this one was already used).
    let before = server.certificate_count();
    let stamps = [mtime(&files.key), mtime(&files.cert), mtime(&files.ca)];
    let key_before = std::fs::read(&files.key).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let o = server.bootstrap(&work, &out, &token, &["--profile", "peer"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("nothing requested"), "{}", text(&o));
    assert_eq!(
        server.certificate_count(),
        before,
        "a re-run issued a certificate"
    );
    assert_eq!(
        [mtime(&files.key), mtime(&files.cert), mtime(&files.ca)],
        stamps,
        "a re-run rewrote the files"
    );
    assert_eq!(serial_of(&files.cert), serial);

    // --force re-issues: new serial, new key, one more certificate on the server.
    let token = server.token("billing", &["billing.internal", "10.1.2.3"]);
    let o = server.bootstrap(&work, &out, &token, &["--profile", "peer", "--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(server.certificate_count(), before + 1);
    assert_ne!(
        serial_of(&files.cert),
        serial,
        "--force kept the old certificate"
    );
    assert_ne!(
        std::fs::read(&files.key).unwrap(),
        key_before,
        "--force kept the old key"
    );
    assert_good_files(&files, "sslserver");

    // A key that does not match the certificate (a crash between the two renames) makes
    // the files unusable: the next run issues anew.
    let stray = work.join("stray");
    let token2 = server.token("other", &["other.internal"]);
    let o = server.bootstrap(&work, &stray, &token2, &[]);
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(stray.join("tls.key"), &files.key).unwrap();
    let token = server.token("billing", &["billing.internal", "10.1.2.3"]);
    let o = server.bootstrap(&work, &out, &token, &["--profile", "peer"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("not usable"), "{}", text(&o));
    assert_good_files(&files, "sslserver");

    // Explicit --san names and an Ed25519 key; names outside the token are refused (3).
    let ed = work.join("ed");
    let token = server.token("api", &["api.internal", "api2.internal"]);
    let o = server.bootstrap(
        &work,
        &ed,
        &token,
        &["--san", "api.internal", "--key-type", "Ed25519"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_good_files(&written(&ed), "sslserver");
    assert!(x509(&ed.join("tls.crt"), &["-text"]).contains("ED25519"));
    let sans = sans_of(&ed.join("tls.crt"));
    assert!(
        sans.contains("DNS:api.internal") && !sans.contains("api2"),
        "{sans}"
    );
    let token = server.token("api", &["api.internal"]);
    let o = server.bootstrap(
        &work,
        &work.join("denied"),
        &token,
        &["--san", "evil.internal"],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("name-denied"), "{}", text(&o));
    assert!(!work.join("denied").join("tls.crt").exists());
}

#[test]
fn bootstrap_refusals_and_a_wrong_root_exit_at_once_with_their_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();

    // A bad token: 401, exit 3 at once (no retries), the server's problem on stderr.
    let started = Instant::now();
    let out = work.join("bad-token");
    let o = server.bootstrap(
        &work,
        &out,
        "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",
        &[],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a refusal was retried"
    );
    let err = stderr(&o);
    assert!(err.contains("refused by the CA"), "{err}");
    assert!(err.contains("HTTP 401"), "{err}");
    assert!(err.contains("urn:signet:problem:unauthorized"), "{err}");
    assert!(!out.join("tls.crt").exists() && !out.join("tls.key").exists());

    // A replayed token is refused too (401 token-replayed), after its first use worked.
    let token = server.token("once", &["once.internal"]);
    let o = server.bootstrap(&work, &work.join("first"), &token, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let o = server.bootstrap(&work, &work.join("replay"), &token, &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("token-replayed"), "{}", text(&o));

    // A wrong root fingerprint: exit 4, says so, writes nothing.
    let token = server.token("x", &["x.internal"]);
    let out = work.join("wrong-root");
    std::fs::write(work.join("tok"), &token).unwrap();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let o = signet(
        &work,
        &[],
        &[
            "bootstrap",
            "--ca-url",
            &server.url,
            "--root-fingerprint",
            &wrong,
            "--token-file",
            p(&work.join("tok")),
            "--dir",
            p(&out),
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).contains("ROOT FINGERPRINT MISMATCH"),
        "{}",
        text(&o)
    );
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().next().is_none());

    // The same with --ca-file holding another root than --root-fingerprint names.
    let o = signet(
        &work,
        &[
            ("SIGNET_CA_URL", &server.url),
            ("SIGNET_TOKEN_FILE", p(&work.join("tok"))),
        ],
        &[
            "bootstrap",
            "--ca-file",
            p(&server.data.join("root_ca.crt")),
            "--root-fingerprint",
            &wrong,
            // The old name of --dir, kept as a hidden alias.
            "--out",
            p(&out),
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));

    // --ca-file alone, all settings from the environment (the init container's way).
    let o = signet(
        &work,
        &[
            ("SIGNET_CA_URL", &server.url),
            ("SIGNET_CA_FILE", p(&server.data.join("root_ca.crt"))),
            ("SIGNET_TOKEN_FILE", p(&work.join("tok"))),
            ("SIGNET_DIR", p(&work.join("from-env"))),
            ("SIGNET_PROFILE", "server"),
        ],
        &["bootstrap"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_good_files(&written(&work.join("from-env")), "sslserver");

    // Usage errors: 2. A missing token file, a bad profile, no trust.
    let o = server.bootstrap(&work, &work.join("u1"), "t", &["--profile", "admin"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let o = signet(
        &work,
        &[],
        &[
            "bootstrap",
            "--ca-url",
            &server.url,
            "--root-fingerprint",
            &server.fingerprint,
            "--token-file",
            p(&work.join("no-such-token")),
            "--dir",
            p(&work.join("u2")),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("no-such-token"), "{}", text(&o));
    let o = signet(
        &work,
        &[],
        &[
            "bootstrap",
            "--ca-url",
            &server.url,
            "--dir",
            p(&work.join("u3")),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--root-fingerprint"), "{}", text(&o));

    // --help documents the exit codes.
    let o = signet(&work, &[], &["bootstrap", "--help"]);
    assert!(o.status.success());
    let help = stdout(&o);
    for needle in ["Exit codes", "3  refused", "4  root fingerprint mismatch"] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}

#[test]
fn bootstrap_retries_an_unreachable_ca_then_gives_up_after_its_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    // Nothing listens on this port: every connection is refused.
    let port = free_port();
    std::fs::write(work.join("tok"), "a.b.c").unwrap();
    let started = Instant::now();
    let o = signet(
        work,
        &[],
        &[
            "bootstrap",
            "--ca-url",
            &format!("https://127.0.0.1:{port}"),
            "--root-fingerprint",
            &format!("sha256:{}", "cd".repeat(32)),
            "--token-file",
            p(&work.join("tok")),
            "--dir",
            p(&work.join("out")),
            "--timeout",
            "3s",
        ],
    );
    let took = started.elapsed();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(8),
        "took {took:?}"
    );
    let err = stderr(&o);
    // It retried (warned at least once), then gave up.
    assert!(err.contains("will retry"), "{err}");
    assert!(err.contains("gave up after"), "{err}");
    assert!(!work.join("out").join("tls.crt").exists());
}

#[test]
fn two_workloads_speak_mutual_tls_with_only_the_written_files() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let a = work.join("a");
    let b = work.join("b");
    let o = server.bootstrap(
        &work,
        &a,
        &server.token("a", &["svc-a.internal"]),
        &["--profile", "peer"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = server.bootstrap(
        &work,
        &b,
        &server.token("b", &["svc-b.internal"]),
        &["--profile", "client"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_mtls(&written(&a), &written(&b), "svc-a.internal");

    // A client certificate from another CA is rejected by the same server (-Verify 1).
    let other_tmp = tempfile::tempdir().unwrap();
    let other = Server::start(other_tmp.path());
    let c = work.join("c");
    let o = other.bootstrap(
        &work,
        &c,
        &other.token("c", &["svc-c.internal"]),
        &["--profile", "client"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let foreign = Written {
        ca: written(&a).ca, // trusts a's root, so only the server side can fail
        key: written(&c).key,
        cert: written(&c).cert,
    };
    let (c, s) = run_mtls(&written(&a), &foreign, "svc-a.internal");
    assert!(
        !stdout(&s).contains("hello over mutual TLS"),
        "a client certificate from another CA was accepted:\n{}\n{}",
        text(&c),
        text(&s)
    );
    assert!(
        format!("{}{}", text(&c), text(&s)).contains("alert"),
        "no TLS alert:\n{}\n{}",
        text(&c),
        text(&s)
    );
}

#[test]
fn renew_once_replaces_a_near_expiry_certificate_and_tells_the_workload() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dir = work.join("svc");
    let files = written(&dir);
    // The shortest lifetime: 60 s, plus the 60 s backdating = 120 s; due at 80 s, that is
    // about 20 s after issuance.
    let o = server.bootstrap(
        &work,
        &dir,
        &server.token("svc", &["svc.internal", "10.9.8.7"]),
        &["--profile", "peer", "--ttl", "1m"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let issued_at = Instant::now();
    let serial = serial_of(&files.cert);
    let sans = sans_of(&files.cert);
    let old_not_after = not_after(&files.cert);
    let old_key = std::fs::read(&files.key).unwrap();
    let renew = |extra: &[&str]| {
        let mut args = vec!["renew", "--once", "--ca-url", &server.url, "--dir", p(&dir)];
        args.extend_from_slice(extra);
        signet(&work, &[], &args)
    };

    // Not due yet: nothing happens.
    let o = renew(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stderr(&o).contains("not due"), "{}", text(&o));
    assert_eq!(serial_of(&files.cert), serial);

    // Past two thirds of the lifetime: renewed, with a new key, the same names, a later
    // notAfter; then --exec runs and --signal reaches the process in --pid-file.
    let wait = Duration::from_secs(22).saturating_sub(issued_at.elapsed());
    std::thread::sleep(wait);
    let marker = work.join("exec-ran");
    // The workload stands in as perl (perl-base is in every Debian): it installs its own
    // SIGHUP handler, so the test holds even when run under `nohup` (a plain `sleep` would
    // inherit SIGHUP ignored and never notice).
    let mut victim = Command::new("perl")
        .args(["-e", "$SIG{HUP} = sub { exit 42 }; sleep 120; exit 0"])
        .spawn()
        .expect("perl must be installed (Debian: perl-base)");
    let pid_file = work.join("app.pid");
    std::fs::write(&pid_file, format!("{}\n", victim.id())).unwrap();
    let exec = format!("echo \"$SIGNET_SERIAL\" > {}", p(&marker));
    let o = renew(&[
        "--exec",
        &exec,
        "--signal",
        "HUP",
        "--pid-file",
        p(&pid_file),
    ]);
    assert!(
        o.status.success(),
        "{}\nserver log:\n{}",
        text(&o),
        server.log()
    );
    let new_serial = serial_of(&files.cert);
    assert_ne!(new_serial, serial, "not renewed");
    assert_eq!(sans_of(&files.cert), sans, "the names changed");
    assert!(
        not_after(&files.cert) > old_not_after,
        "notAfter is not later"
    );
    assert_ne!(
        std::fs::read(&files.key).unwrap(),
        old_key,
        "the key was reused"
    );
    assert_good_files(&files, "sslserver");
    assert_eq!(
        std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .trim_start_matches('0'),
        new_serial.trim_start_matches('0'),
        "--exec did not run after the renewal"
    );
    let status = victim.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(42),
        "SIGHUP was not delivered: {status:?}"
    );

    // --force renews a certificate that is not due.
    let o = renew(&["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(serial_of(&files.cert), new_serial);
}

#[test]
fn the_renew_sidecar_renews_when_due_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dir = work.join("svc");
    let files = written(&dir);
    let o = server.bootstrap(
        &work,
        &dir,
        &server.token("svc", &["sidecar.internal"]),
        &["--profile", "peer", "--ttl", "1m"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let serial = serial_of(&files.cert);
    let log = work.join("renew.log");
    let mut sidecar = base_command()
        .current_dir(&work)
        .args([
            "renew",
            "--ca-url",
            &server.url,
            "--dir",
            p(&dir),
            "--exec",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // Due within about 20 s (less with jitter).
    let deadline = Instant::now() + Duration::from_secs(45);
    while serial_of(&files.cert) == serial {
        if let Some(status) = sidecar.try_wait().unwrap() {
            panic!(
                "renew exited with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the sidecar did not renew:\n{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_good_files(&files, "sslclient");
    // SIGTERM: a clean exit (0).
    let o = Command::new("kill")
        .args(["-TERM", &sidecar.id().to_string()])
        .status()
        .unwrap();
    assert!(o.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = sidecar.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "renew did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}\n{log}");
    assert!(log.contains("certificate renewed"), "{log}");
    assert!(log.contains("SIGTERM"), "{log}");
}

#[test]
fn renewal_is_refused_for_a_revoked_certificate_and_a_server_only_one_renews_by_token() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dir = work.join("svc");
    let files = written(&dir);
    // A server-profile certificate (no clientAuth) cannot be a TLS client certificate:
    // renew authenticates with a renewal token its key signs instead (see renewal.rs).
    let server_only = work.join("server-only");
    let o = server.bootstrap(
        &work,
        &server_only,
        &server.token("svc", &["web.internal"]),
        &["--profile", "server"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let before = serial_of(&written(&server_only).cert);
    let o = signet(
        &work,
        &[],
        &[
            "renew",
            "--once",
            "--force",
            "--ca-url",
            &server.url,
            "--dir",
            p(&server_only),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(serial_of(&written(&server_only).cert), before);
    assert_good_files(&written(&server_only), "sslserver");

    let o = server.bootstrap(
        &work,
        &dir,
        &server.token("svc", &["gone.internal"]),
        &["--profile", "peer"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let serial = serial_of(&files.cert);
    let o = signet(
        &server.data,
        &[],
        &[
            "revoke",
            &serial,
            "--dir",
            p(&server.data),
            "--ca-url",
            &server.url,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = signet(
        &work,
        &[],
        &[
            "renew",
            "--once",
            "--force",
            "--ca-url",
            &server.url,
            "--dir",
            p(&dir),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("revoked"), "{}", text(&o));
    // The files are kept.
    assert_eq!(serial_of(&files.cert), serial);
}

#[test]
fn kubernetes_workloads_get_their_service_account_names_and_speak_mutual_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = ClusterIssuer::new();
    let server = Server::start_with(tmp.path(), |data| {
        std::fs::write(data.join("kubernetes-jwks.json"), cluster.jwks()).unwrap();
        let mut toml = std::fs::read_to_string(data.join("signet.toml")).unwrap();
        toml.push_str(&cluster.provisioner_toml("kubernetes-jwks.json", &["demo"]));
        std::fs::write(data.join("signet.toml"), toml).unwrap();
    });
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let billing = work.join("billing");
    let frontend = work.join("frontend");

    // No --san, no --profile: the server fills in the template names, profile peer.
    let token = cluster.token("demo", "billing", "signet");
    let o = server.bootstrap(&work, &billing, &token, &[]);
    assert!(
        o.status.success(),
        "{}\nserver log:\n{}",
        text(&o),
        server.log()
    );
    assert_good_files(&written(&billing), "sslserver");
    assert_verifies(&written(&billing), "sslclient");
    let sans = sans_of(&written(&billing).cert);
    for name in [
        "DNS:billing.demo.svc",
        "DNS:billing.demo.svc.cluster.local",
        "URI:spiffe://cluster.local/ns/demo/sa/billing",
    ] {
        assert!(sans.contains(name), "{name} missing: {sans}");
    }
    // Kubernetes tokens are reusable (the kubelet hands the same one out until it refreshes
    // it): --force with the same token works.
    let o = server.bootstrap(&work, &billing, &token, &["--force"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = server.bootstrap(
        &work,
        &frontend,
        &cluster.token("demo", "frontend", "signet"),
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sans = sans_of(&written(&frontend).cert);
    assert!(
        sans.contains("URI:spiffe://cluster.local/ns/demo/sa/frontend"),
        "{sans}"
    );

    // frontend (client) calls billing (server) with mutual TLS, each with its own files, and
    // each side sees the other's SPIFFE ID in the certificate it verified.
    let (client_side, server_side) =
        assert_mtls(&written(&billing), &written(&frontend), "billing.demo.svc");
    let seen_by_client = peer_sans(&client_side, &work);
    assert!(
        seen_by_client.contains("URI:spiffe://cluster.local/ns/demo/sa/billing"),
        "the client saw: {seen_by_client}"
    );
    let seen_by_server = peer_sans(&server_side, &work);
    assert!(
        seen_by_server.contains("URI:spiffe://cluster.local/ns/demo/sa/frontend"),
        "the server saw: {seen_by_server}"
    );

    // The sidecar renews over mTLS with a new key; the SPIFFE ID stays.
    let o = signet(
        &work,
        &[],
        &[
            "renew",
            "--once",
            "--force",
            "--ca-url",
            &server.url,
            "--dir",
            p(&billing),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let sans = sans_of(&written(&billing).cert);
    assert!(
        sans.contains("URI:spiffe://cluster.local/ns/demo/sa/billing"),
        "{sans}"
    );

    // Refusals: a namespace the provisioner does not allow, a token for another audience,
    // a name outside the templates, an expired token, a tampered signature: all exit 3 at
    // once with the server's reason.
    let tampered = {
        let good = cluster.token("demo", "billing", "signet");
        let (rest, sig) = good.rsplit_once('.').unwrap();
        // Flip one bit in the middle of the signature (base64url: swap one character).
        let mut sig = sig.as_bytes().to_vec();
        let i = sig.len() / 2;
        sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
        format!("{rest}.{}", String::from_utf8(sig).unwrap())
    };
    for (token, extra, why) in [
        (
            cluster.token_issued_at("demo", "billing", "signet", 7200),
            vec![],
            "expired",
        ),
        (tampered, vec![], "signature"),
        (
            cluster.token("kube-system", "default", "signet"),
            vec![],
            "kube-system",
        ),
        (
            cluster.token("demo", "billing", "vault"),
            vec![],
            "audience",
        ),
        (
            cluster.token("demo", "billing", "signet"),
            vec!["--san", "admin.demo.svc"],
            "admin.demo.svc",
        ),
    ] {
        let out = work.join("refused");
        let o = server.bootstrap(&work, &out, &token, &extra);
        assert_eq!(o.status.code(), Some(3), "{why}: {}", text(&o));
        assert!(stderr(&o).contains(why), "{why}: {}", text(&o));
        assert!(!out.join("tls.crt").exists());
    }
}

#[test]
fn renew_keeps_a_verified_ocsp_staple_next_to_the_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with_responder(tmp.path(), free_port());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dir = work.join("web");
    let files = written(&dir);
    let o = server.bootstrap(
        &work,
        &dir,
        &server.token("web", &["web.internal"]),
        &["--profile", "peer"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let staple = work.join("web.ocsp");
    let exec_log = work.join("reloads");
    let exec = format!("echo reload >> {}", p(&exec_log));
    let renew = |extra: &[&str]| {
        let mut args = vec![
            "renew",
            "--once",
            "--ca-url",
            &server.url,
            "--dir",
            p(&dir),
            "--staple-file",
            p(&staple),
            "--exec",
            &exec,
        ];
        args.extend_from_slice(extra);
        signet(&work, &[], &args)
    };
    let check_staple = || {
        let issuer = work.join("issuer.pem");
        let chain = std::fs::read_to_string(&files.cert).unwrap();
        let second = chain
            .split_inclusive("-----END CERTIFICATE-----\n")
            .nth(1)
            .unwrap();
        std::fs::write(&issuer, second).unwrap();
        let o = openssl(&[
            "ocsp",
            "-respin",
            p(&staple),
            "-issuer",
            p(&issuer),
            "-cert",
            p(&files.cert),
            "-CAfile",
            p(&files.ca),
        ]);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        assert!(out.contains("Response verify OK"), "{out}");
        assert!(out.contains(": good"), "{out}");
    };

    // Not due: no renewal, but the staple is fetched, verified by openssl, and --exec runs.
    let o = renew(&[]);
    assert!(o.status.success(), "{}\n{}", text(&o), server.log());
    assert!(stderr(&o).contains("not due"), "{}", text(&o));
    check_staple();
    assert_eq!(
        std::fs::read_to_string(&exec_log).unwrap().lines().count(),
        1
    );

    // A renewal staples the new certificate.
    let serial = serial_of(&files.cert);
    let o = renew(&["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_ne!(serial_of(&files.cert), serial);
    check_staple();
    assert_eq!(
        std::fs::read_to_string(&exec_log).unwrap().lines().count(),
        2
    );

    // A revoked certificate's "revoked" answer is never written as a staple: exit 1, the
    // previous staple stays.
    let before = std::fs::read(&staple).unwrap();
    let o = signet(
        &server.data,
        &[],
        &[
            "revoke",
            &serial_of(&files.cert),
            "--dir",
            p(&server.data),
            "--ca-url",
            &server.url,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Wait until the responder the certificate names says revoked (openssl asks it).
    let ocsp_url = format!("http://127.0.0.1:{}/ocsp", server.proc.ocsp_port());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = openssl(&[
            "ocsp",
            "-issuer",
            p(&work.join("issuer.pem")),
            "-cert",
            p(&files.cert),
            "-url",
            &ocsp_url,
            "-CAfile",
            p(&files.ca),
        ]);
        if text(&o).contains(": revoked") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the responder never said revoked:\n{}",
            text(&o)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = renew(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("REVOKED"), "{}", text(&o));
    assert_eq!(std::fs::read(&staple).unwrap(), before);
}
