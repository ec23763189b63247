//! Renewal with a token the certificate's own key signs (`x5c`), for certificates that
//! cannot be TLS client certificates (profile `server`), against a real `signet serve` over
//! real HTTPS: `signet renew` uses it by itself, and curl sends hand-made tokens to check
//! each refusal (problem type, message, and nothing stored), with the renewed certificates
//! checked by `openssl verify`.
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

mod common;
use common::{base_command, p, sqlite3, text};

/// `signet serve` on port 0 (common::Server, killed when dropped) and what clients use.
struct Server {
    /// Held so that the process lives as long as this.
    _proc: common::Server,
    url: String,
    data: PathBuf,
}

impl Server {
    fn start(tmp: &Path) -> Server {
        let data = tmp.join("data");
        let proc = common::Server::start_blocking(
            tmp,
            &[],
            &["--init", "--dir", p(&data), "--responder-listen", "off"],
        );
        Server {
            url: proc.base(),
            _proc: proc,
            data,
        }
    }

    fn root(&self) -> PathBuf {
        self.data.join("root_ca.crt")
    }

    fn db(&self, sql: &str) -> Vec<String> {
        sqlite3(&self.data.join("signet.db"), sql)
    }

    /// Certificates and burned tokens: what a renewal leaves behind (not the server's own
    /// certificates, which it records in the background).
    fn stored(&self) -> (String, String) {
        (
            self.db("SELECT count(*) FROM certificates \
                 WHERE requester NOT IN ('signet-serve', 'signet-responder')")
                .concat(),
            self.db("SELECT count(*) FROM used_tokens").concat(),
        )
    }

    /// A `server`-profile certificate for `name` from `signet bootstrap`, in `dir`.
    fn bootstrap(&self, work: &Path, dir: &Path, name: &str, ttl: &str) {
        let o = signet(
            work,
            &[
                "token",
                "--dir",
                p(&self.data),
                "--ca-url",
                &self.url,
                "--subject",
                name,
                "--san",
                name,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let token = work.join(format!("{name}.token"));
        std::fs::write(&token, &o.stdout).unwrap();
        let o = signet(
            work,
            &[
                "bootstrap",
                "--ca-url",
                &self.url,
                "--ca-file",
                p(&self.root()),
                "--token-file",
                p(&token),
                "--dir",
                p(dir),
                "--profile",
                "server",
                "--ttl",
                ttl,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
    }
}

fn signet(cwd: &Path, args: &[&str]) -> Output {
    base_command().current_dir(cwd).args(args).output().unwrap()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

/// `openssl verify` of the leaf in `chain_pem` (leaf, then issuing CA) against `root`, as a
/// TLS server certificate.
fn assert_verifies(root: &Path, chain_pem: &Path) {
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(root),
        "-untrusted",
        p(chain_pem),
        "-purpose",
        "sslserver",
        p(chain_pem),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

fn serial_of(pem: &Path) -> String {
    let o = openssl(&["x509", "-in", p(pem), "-noout", "-serial"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_ascii_lowercase()
}

fn pem_blocks(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(path).unwrap();
    let end = "-----END CERTIFICATE-----";
    text.split_inclusive(end)
        .filter(|b| b.contains("-----BEGIN"))
        .map(|b| pem_rfc7468::decode_vec(b.trim().as_bytes()).unwrap().1)
        .collect()
}

fn key_pair(pem_file: &Path) -> EcdsaKeyPair {
    let pem = std::fs::read_to_string(pem_file).unwrap();
    let (_, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new()).unwrap()
}

/// A compact JWS of `header` and `claims`, ES256 with `key`.
fn jws(key: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The token `signet renew` would make for the files in `dir`, with `tweak` applied.
fn token_for(server: &Server, dir: &Path, tweak: impl FnOnce(&mut Value, &mut Value)) -> String {
    let chain = pem_blocks(&dir.join("tls.crt"));
    let mut header = json!({
        "alg": "ES256",
        "typ": "JWT",
        "x5c": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
    });
    let t = now();
    let mut claims = json!({
        "aud": format!("{}/v1/certificates/renew", server.url),
        "sub": serial_of(&dir.join("tls.crt")),
        "iat": t, "nbf": t, "exp": t + 60,
        "jti": format!("test-{}", URL_SAFE_NO_PAD.encode(ring::rand::generate::<[u8; 16]>(&SystemRandom::new()).unwrap().expose())),
    });
    tweak(&mut header, &mut claims);
    jws(&key_pair(&dir.join("tls.key")), &header, &claims)
}

/// POST /v1/certificates/renew with curl (an independent HTTPS client): status and body.
fn post_renew(server: &Server, token: &str) -> (u16, Value) {
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-X",
            "POST",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
        ])
        .args(["--cacert", p(&server.root())])
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{}/v1/certificates/renew", server.url))
        .output()
        .expect("curl must be installed (apt-get install curl)");
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let (body, code) = out.rsplit_once('\n').unwrap();
    (
        code.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

fn assert_refused(server: &Server, token: &str, status: u16, slug: &str, says: &str) {
    let before = server.stored();
    let (code, body) = post_renew(server, token);
    assert_eq!(code, status, "{body}");
    assert_eq!(body["type"], format!("urn:signet:problem:{slug}"), "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains(says), "{detail:?} does not say {says:?}");
    assert_eq!(
        server.stored().0,
        before.0,
        "a certificate was stored: {body}"
    );
}

#[test]
fn a_server_certificate_renews_with_a_token_its_key_signs() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path();
    // A one-minute certificate, to see an expired one refused at the end.
    let short = work.join("short");
    server.bootstrap(work, &short, "short.internal", "1m");
    let dir = work.join("svc");
    server.bootstrap(work, &dir, "api.internal", "24h");
    let first = serial_of(&dir.join("tls.crt"));

    // `signet renew` sees a certificate without clientAuth and renews with a token.
    let o = signet(
        work,
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
    assert!(o.status.success(), "{}", text(&o));
    let second = serial_of(&dir.join("tls.crt"));
    assert_ne!(first, second);
    assert_verifies(&server.root(), &dir.join("tls.crt"));
    let o = openssl(&[
        "x509",
        "-in",
        p(&dir.join("tls.crt")),
        "-noout",
        "-ext",
        "extendedKeyUsage,subjectAltName",
    ]);
    let ext = String::from_utf8_lossy(&o.stdout);
    assert!(
        ext.contains("TLS Web Server Authentication") && !ext.contains("Client"),
        "{ext}"
    );
    assert!(ext.contains("DNS:api.internal"), "{ext}");
    // Recorded as a renewal by the certificate's token, on the line of the first token.
    assert_eq!(
        server.db(&format!(
            "SELECT actor || ' ' || outcome FROM audit_log WHERE action = 'renew' AND serial = '{second}'"
        )),
        [format!("x5c:{first} ok")]
    );
    assert_eq!(
        server.db(&format!(
            "SELECT requester, profile FROM certificates WHERE serial = '{second}'"
        )),
        ["token:default:api.internal|server"]
    );
    assert_eq!(
        server.db(&format!(
            "SELECT count(*) FROM used_tokens WHERE provisioner = 'renew:{first}'"
        )),
        ["1"]
    );

    // A hand-made token (curl, not the signet client) renews too, once.
    let token = token_for(&server, &dir, |_, _| {});
    let (code, body) = post_renew(&server, &token);
    assert_eq!(code, 201, "{body}");
    let third = body["serial_number"].as_str().unwrap().to_string();
    let bundle = work.join("third.pem");
    let chain: Vec<&str> = body["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    std::fs::write(
        &bundle,
        format!(
            "{}{}",
            body["certificate"].as_str().unwrap(),
            chain.concat()
        ),
    )
    .unwrap();
    assert_verifies(&server.root(), &bundle);
    // Replayed: refused, nothing stored.
    assert_refused(&server, &token, 401, "token-replayed", "already been used");
    assert!(
        server.db(&format!(
            "SELECT count(*) FROM certificates WHERE serial = '{third}'"
        )) == ["1"]
    );

    // Signed by another key, with this certificate in x5c.
    let other = work.join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(dir.join("tls.crt"), other.join("tls.crt")).unwrap();
    let o = openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        p(&other.join("tls.key")),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let forged = token_for(&server, &other, |_, _| {});
    let before = server.stored();
    assert_refused(
        &server,
        &forged,
        401,
        "unauthorized",
        "signature does not verify",
    );
    assert_eq!(server.stored(), before, "a forged token was burned");

    // Audience of another endpoint; alg that does not fit the key; a crit extension; no
    // x5c; a lifetime over five minutes; a subject other than the serial.
    for (tweak, says) in [
        (
            Box::new(|_: &mut Value, c: &mut Value| c["aud"] = json!(server.url.clone()))
                as Box<dyn Fn(&mut Value, &mut Value)>,
            "aud must be this CA's renewal endpoint",
        ),
        (
            Box::new(|h: &mut Value, _: &mut Value| h["alg"] = json!("ES384")),
            "does not match the certificate's key (P-256: ES256)",
        ),
        (
            Box::new(|h: &mut Value, _: &mut Value| h["alg"] = json!("none")),
            "does not match",
        ),
        (
            Box::new(|h: &mut Value, _: &mut Value| {
                h["crit"] = json!(["exp"]);
                h["exp"] = json!(1);
            }),
            "crit",
        ),
        (
            Box::new(|h: &mut Value, _: &mut Value| {
                h.as_object_mut().unwrap().remove("x5c");
            }),
            "no x5c",
        ),
        (
            Box::new(|_: &mut Value, c: &mut Value| c["exp"] = json!(now() + 3600)),
            "lives longer than 300 s",
        ),
        (
            Box::new(|_: &mut Value, c: &mut Value| {
                c["exp"] = json!(now() - 120);
                c["iat"] = json!(now() - 180);
            }),
            "expired (exp)",
        ),
        (
            Box::new(|_: &mut Value, c: &mut Value| c["sub"] = json!("01")),
            "sub must be the certificate's serial number",
        ),
    ] {
        let bad = token_for(&server, &dir, tweak);
        let before = server.stored();
        assert_refused(&server, &bad, 401, "unauthorized", says);
        assert_eq!(
            server.stored(),
            before,
            "{says}: something was stored or burned"
        );
    }

    // A revoked certificate cannot renew.
    let current = serial_of(&dir.join("tls.crt"));
    let o = signet(
        work,
        &[
            "revoke",
            "--dir",
            p(&server.data),
            "--ca-url",
            &server.url,
            &current,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let revoked = token_for(&server, &dir, |_, _| {});
    assert_refused(
        &server,
        &revoked,
        403,
        "forbidden",
        "the certificate is revoked",
    );
    let o = signet(
        work,
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
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("revoked"),
        "{}",
        text(&o)
    );
    assert_eq!(
        serial_of(&dir.join("tls.crt")),
        current,
        "the files were rewritten"
    );

    // An expired one neither: wait (bounded) until the one-minute certificate has expired.
    let not_after = openssl(&[
        "x509",
        "-in",
        p(&short.join("tls.crt")),
        "-noout",
        "-checkend",
        "0",
    ]);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut expired = !not_after.status.success();
    while !expired {
        assert!(
            Instant::now() < deadline,
            "the 1m certificate did not expire in 90 s"
        );
        std::thread::sleep(Duration::from_millis(500));
        let o = openssl(&[
            "x509",
            "-in",
            p(&short.join("tls.crt")),
            "-noout",
            "-checkend",
            "0",
        ]);
        expired = !o.status.success();
    }
    // Past the 30 s of clock skew the server allows nothing for certificates: at once.
    let late = token_for(&server, &short, |_, _| {});
    assert_refused(
        &server,
        &late,
        401,
        "unauthorized",
        "the certificate has expired",
    );
}

/// Wait (bounded) until `log` holds a line with `needle` after its first `skip` bytes;
/// answer the text after `skip`.
fn wait_for_log(log: &Path, skip: usize, needle: &str, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.len() > skip && text[skip..].contains(needle) {
            return text[skip..].to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the process exited ({status}) before logging {needle:?}:\n{text}");
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not logged within 30 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The port of the `listen=127.0.0.1:PORT` field of the "listening" line in `log` (the
/// process bound port 0 and says which port it got).
fn bound_port(log: &str) -> u16 {
    log.lines()
        .find(|l| l.contains("listening"))
        .and_then(|l| l.split("listen=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no listen=ADDR in:\n{log}"))
}

fn kill(child: &Child, signal: &str) {
    let o = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

/// Wait (bounded) for a child to exit after SIGTERM; its exit code.
fn terminate(mut child: Child) -> Option<i32> {
    kill(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        assert!(Instant::now() < deadline, "no exit within 20 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn renew_works_on_any_file_names_and_sighup_keeps_renew_and_responder_running() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path();
    let boot = work.join("boot");
    server.bootstrap(work, &boot, "files.internal", "24h");
    // The files under other names, in a directory of their own; no --dir at all.
    let mine = work.join("mine");
    std::fs::create_dir(&mine).unwrap();
    let (cert, key, roots) = (
        mine.join("svc.pem"),
        mine.join("svc-key.pem"),
        mine.join("roots.pem"),
    );
    std::fs::rename(boot.join("tls.crt"), &cert).unwrap();
    std::fs::rename(boot.join("tls.key"), &key).unwrap();
    std::fs::rename(boot.join("ca.crt"), &roots).unwrap();
    let files = ["--cert", p(&cert), "--key", p(&key), "--ca-file", p(&roots)];
    let before = serial_of(&cert);
    let mut args = vec!["renew", "--once", "--force", "--ca-url", &server.url];
    args.extend(files);
    let o = signet(work, &args);
    assert!(o.status.success(), "{}", text(&o));
    let renewed = serial_of(&cert);
    assert_ne!(renewed, before);
    assert_verifies(&roots, &cert);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let written: Vec<_> = std::fs::read_dir(&mine)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written.len(), 3, "{written:?}");
    assert!(
        std::fs::read_dir(&boot).unwrap().next().is_none(),
        "something was written to the default layout"
    );

    // The sidecar: logs its next renewal in RFC 3339, lives through SIGHUP and re-reads.
    let log = work.join("renew.log");
    let mut args = vec!["renew", "--ca-url", server.url.as_str()];
    args.extend(files);
    let mut child = base_command()
        .current_dir(work)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let seen = wait_for_log(&log, 0, "next renewal at ", &mut child);
    let line = seen
        .lines()
        .find(|l| l.contains("next renewal at "))
        .unwrap();
    let at = line
        .split("next renewal at ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        at.len() == 20 && at.as_bytes()[10] == b'T' && at.ends_with('Z'),
        "not RFC 3339: {line}"
    );
    assert!(line.contains(&renewed), "{line}");
    // Replace the certificate behind its back, then SIGHUP: it stays up and reads the new one.
    let mut args = vec!["renew", "--once", "--force", "--ca-url", &server.url];
    args.extend(files);
    let o = signet(work, &args);
    assert!(o.status.success(), "{}", text(&o));
    let third = serial_of(&cert);
    let mark = std::fs::metadata(&log).unwrap().len() as usize;
    kill(&child, "HUP");
    let after = wait_for_log(&log, mark, &third, &mut child);
    assert!(after.contains("SIGHUP: re-reading"), "{after}");
    assert!(child.try_wait().unwrap().is_none(), "renew ended on SIGHUP");
    assert_eq!(terminate(child), Some(0));

    // The standalone responder: SIGHUP with nothing changed, then with a change it cannot
    // apply in place; it says so and stays up.
    let rlog = work.join("responder.log");
    let mut responder = base_command()
        .current_dir(work)
        .args([
            "responder",
            "--dir",
            p(&server.data),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&rlog).unwrap())
        .spawn()
        .unwrap();
    let port = bound_port(&wait_for_log(
        &rlog,
        0,
        "listening over HTTP",
        &mut responder,
    ));
    let mark = std::fs::metadata(&rlog).unwrap().len() as usize;
    kill(&responder, "HUP");
    wait_for_log(&rlog, mark, "nothing to do", &mut responder);
    let toml = server.data.join("signet.toml");
    let config = std::fs::read_to_string(&toml).unwrap();
    assert!(config.contains("ocsp_validity = \"4h\""), "{config}");
    std::fs::write(
        &toml,
        config.replace("ocsp_validity = \"4h\"", "ocsp_validity = \"2h\""),
    )
    .unwrap();
    let mark = std::fs::metadata(&rlog).unwrap().len() as usize;
    kill(&responder, "HUP");
    let said = wait_for_log(&rlog, mark, "NOT applied", &mut responder);
    assert!(
        said.contains("ocsp_validity") && said.contains("restart"),
        "{said}"
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the responder stopped listening"
    );
    assert!(
        responder.try_wait().unwrap().is_none(),
        "the responder ended on SIGHUP"
    );
    assert_eq!(terminate(responder), Some(0));
}

#[test]
fn renewal_tokens_are_signed_with_each_key_type_signet_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path();
    // P-384 and Ed25519 keys from bootstrap (ES384, EdDSA).
    let mut dirs = Vec::new();
    for (name, key_type) in [("p384.internal", "P-384"), ("ed.internal", "Ed25519")] {
        let o = signet(
            work,
            &[
                "token",
                "--dir",
                p(&server.data),
                "--ca-url",
                &server.url,
                "--subject",
                name,
                "--san",
                name,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        let token = work.join(format!("{name}.token"));
        std::fs::write(&token, &o.stdout).unwrap();
        let dir = work.join(name);
        let o = signet(
            work,
            &[
                "bootstrap",
                "--ca-url",
                &server.url,
                "--ca-file",
                p(&server.root()),
                "--token-file",
                p(&token),
                "--dir",
                p(&dir),
                "--profile",
                "server",
                "--key-type",
                key_type,
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        dirs.push(dir);
    }
    // An RSA key and CSR from openssl, issued by the admin (RS256), in a layout of its own.
    let rsa = work.join("rsa");
    std::fs::create_dir(&rsa).unwrap();
    let o = openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p(&rsa.join("tls.key")),
        "-out",
        p(&rsa.join("req.csr")),
        "-subj",
        "/CN=rsa.internal",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = signet(
        work,
        &[
            "issue",
            "--admin",
            "--dir",
            p(&server.data),
            "--ca-url",
            &server.url,
            "--csr",
            p(&rsa.join("req.csr")),
            "--out",
            p(&rsa.join("tls.crt")),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    std::fs::copy(server.root(), rsa.join("ca.crt")).unwrap();
    dirs.push(rsa);
    for dir in dirs {
        let before = serial_of(&dir.join("tls.crt"));
        let o = signet(
            work,
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
        assert!(o.status.success(), "{}: {}", dir.display(), text(&o));
        let after = serial_of(&dir.join("tls.crt"));
        assert_ne!(after, before);
        assert_verifies(&server.root(), &dir.join("tls.crt"));
        assert_eq!(
            server.db(&format!(
                "SELECT actor FROM audit_log WHERE action = 'renew' AND serial = '{after}'"
            )),
            [format!("x5c:{before}")],
            "{}",
            dir.display()
        );
    }
}

/// GET a responder path with curl: the status code.
fn http_status(url: &str) -> u16 {
    let o = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .expect("curl must be installed (apt-get install curl)");
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn a_standalone_responder_applies_the_kept_issuing_cas_on_sighup() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path();
    // serve goes on publishing the CRL of the issuing CA it started with; after
    // `ca new-issuing` that CA is kept beside the new one, which the responder starts with.
    let o = signet(work, &["ca", "new-issuing", "--dir", p(&server.data)]);
    assert!(o.status.success(), "{}", text(&o));
    let kept: Vec<PathBuf> = std::fs::read_dir(&server.data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("issuing_ca.") && n.ends_with(".crt") && n != "issuing_ca.crt"
        })
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    let kept = kept[0].clone();
    let serial = kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_start_matches("issuing_ca.")
        .trim_end_matches(".crt")
        .to_string();
    let rlog = work.join("responder.log");
    let mut responder = base_command()
        .current_dir(work)
        .args([
            "responder",
            "--dir",
            p(&server.data),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&rlog).unwrap())
        .spawn()
        .unwrap();
    let port = bound_port(&wait_for_log(
        &rlog,
        0,
        "listening over HTTP",
        &mut responder,
    ));
    let url = format!("http://127.0.0.1:{port}/crl/issuing-{serial}.crl");
    // The old CA's CRL, which serve stored under its key.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_status(&url) != 200 {
        assert!(
            Instant::now() < deadline,
            "{url} never served:\n{}",
            std::fs::read_to_string(&rlog).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Its files removed (its certificates have expired, say) and SIGHUP: no longer served.
    let aside = work.join("kept.crt");
    std::fs::rename(&kept, &aside).unwrap();
    let mark = std::fs::metadata(&rlog).unwrap().len() as usize;
    kill(&responder, "HUP");
    let said = wait_for_log(
        &rlog,
        mark,
        "applied the kept earlier issuing CAs",
        &mut responder,
    );
    assert!(!said.contains("NOT applied"), "{said}");
    assert_eq!(http_status(&url), 404);
    // Back, and SIGHUP: served again, from the database.
    std::fs::rename(&aside, &kept).unwrap();
    let mark = std::fs::metadata(&rlog).unwrap().len() as usize;
    kill(&responder, "HUP");
    wait_for_log(
        &rlog,
        mark,
        "applied the kept earlier issuing CAs",
        &mut responder,
    );
    assert_eq!(http_status(&url), 200);
    assert!(
        responder.try_wait().unwrap().is_none(),
        "the responder ended on SIGHUP"
    );
    assert_eq!(terminate(responder), Some(0));
}

#[test]
fn sighup_does_not_end_renew_once_while_it_retries() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let work = tmp.path();
    let dir = work.join("svc");
    server.bootstrap(work, &dir, "once.internal", "24h");
    let before = serial_of(&dir.join("tls.crt"));
    // A CA URL where nothing listens: renew --once retries until --timeout.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let log = work.join("once.log");
    let mut child = base_command()
        .current_dir(work)
        .args([
            "renew",
            "--once",
            "--force",
            "--timeout",
            "4s",
            "--ca-url",
            &url,
            "--dir",
        ])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_log(&log, 0, "will retry", &mut child);
    kill(&child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "renew --once did not finish");
        std::thread::sleep(Duration::from_millis(50));
    };
    let said = std::fs::read_to_string(&log).unwrap();
    // Ended by its own timeout (1: gave up), not by the signal (129, or no code at all).
    assert_eq!(status.code(), Some(1), "{status:?}\n{said}");
    assert!(said.contains("SIGHUP received during --once"), "{said}");
    assert!(said.contains("gave up"), "{said}");
    assert_eq!(serial_of(&dir.join("tls.crt")), before, "the files changed");
}
