//! End-to-end revocation: a real `signet serve` (and a standalone `signet responder`), a
//! certificate issued and revoked through the API with the CLI, and every answer checked by
//! the openssl CLI: `openssl ocsp` says good then revoked with "Response verify OK" (POST,
//! with and without a nonce, and a GET response fed back with -respin), and `openssl crl
//! -verify` accepts the published CRL and lists the serial with its reason. On PostgreSQL,
//! a second, standalone responder sharing the database answers revoked within a second.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use signet_testkit::TestDb;

mod common;
use common::{STARTUP, Server, base_command, free_port, openssl, p, text};

/// Waits (at most [`STARTUP`]) until `GET path` on `port` answers 200.
fn wait_ready(server: &mut Server, port: u16, path: &str) {
    let deadline = Instant::now() + STARTUP;
    loop {
        server.alive();
        if let Ok((200, _, _)) = http_get(port, path) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} not 200 in time:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signet(env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = base_command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// `openssl ocsp`'s whole output (its verdicts go to stdout, "Response verify OK" to stderr).
fn openssl_text(args: &[&str]) -> String {
    let o = openssl(args);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "openssl {args:?}:\n{all}");
    all
}

/// A plain HTTP/1.1 GET: (status, headers lowercased, body).
fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, head, raw[split + 4..].to_vec()))
}

/// A data directory made by `signet init` whose certificates point at a responder on
/// `responder_port`, which `signet serve` listens on (from the configuration).
/// `env` names the database (`SIGNET_DATABASE_URL`) the CA is recorded in, if not the
/// default SQLite file.
fn init_dir(tmp: &Path, responder_port: u16, env: &[(&str, &str)]) -> PathBuf {
    let data = tmp.join("data");
    let o = signet(env, &["init", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    let config = data.join("signet.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    let here = format!("127.0.0.1:{responder_port}");
    let toml = toml.replace("127.0.0.1:8080", &here).replace(
        &format!("# listen = \"{here}\""),
        &format!("listen = \"{here}\""),
    );
    assert!(toml.contains(&format!("\nlisten = \"{here}\"")), "{toml}");
    std::fs::write(&config, toml).unwrap();
    data
}

/// A P-256 key and CSR made by `openssl req`.
fn csr(dir: &Path, host: &str) -> PathBuf {
    let out = dir.join(format!("{host}.csr"));
    let o = openssl(&[
        "req",
        "-new",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        p(&dir.join(format!("{host}.key"))),
        "-out",
        p(&out),
        "-subj",
        &format!("/CN={host}"),
        "-addext",
        &format!("subjectAltName=DNS:{host}"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

/// What a client holds after issuance: its leaf, the issuing CA, and a root+issuing bundle.
struct Issued {
    leaf: PathBuf,
    issuing: PathBuf,
    chain: PathBuf,
    /// Lowercase hex, as the API writes it.
    serial: String,
}

/// Issue a server certificate for `host` through the API (admin credential from DIR).
fn issue(data: &Path, api: &str, dir: &Path, host: &str) -> Issued {
    let out = dir.join(format!("{host}.bundle.pem"));
    let o = signet(
        &[],
        &[
            "issue",
            "--admin",
            "--dir",
            p(data),
            "--ca-url",
            api,
            "--csr",
            p(&csr(dir, host)),
            "--out",
            p(&out),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let pem = std::fs::read_to_string(&out).unwrap();
    let end = "-----END CERTIFICATE-----\n";
    let split = pem.find(end).unwrap() + end.len();
    let issuing_end = split + pem[split..].find(end).unwrap() + end.len();
    let leaf = dir.join(format!("{host}.pem"));
    let issuing = dir.join("issuing.pem");
    let chain = dir.join("chain.pem");
    std::fs::write(&leaf, &pem[..split]).unwrap();
    std::fs::write(&issuing, &pem[split..issuing_end]).unwrap();
    let root = std::fs::read_to_string(data.join("root_ca.crt")).unwrap();
    std::fs::write(&chain, format!("{root}{}", &pem[split..issuing_end])).unwrap();
    let o = openssl(&["x509", "-in", p(&leaf), "-noout", "-serial"]);
    let serial = String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    Issued {
        leaf,
        issuing,
        chain,
        serial,
    }
}

fn revoke(data: &Path, api: &str, serial: &str) {
    let o = signet(
        &[],
        &[
            "revoke",
            serial,
            "--dir",
            p(data),
            "--ca-url",
            api,
            "--reason",
            "keyCompromise",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
}

/// `openssl ocsp` against the responder, POST; `extra` adds e.g. "-no_nonce" or "-sha256".
fn ocsp(cert: &Issued, url: &str, extra: &[&str]) -> String {
    let mut args = vec!["ocsp"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "-issuer",
        p(&cert.issuing),
        "-cert",
        p(&cert.leaf),
        "-url",
        url,
        "-CAfile",
        p(&cert.chain),
        "-resp_text",
    ]);
    openssl_text(&args)
}

/// A nonce-less request sent by GET (base64, URL-encoded, in the path), the response
/// checked by `openssl ocsp -respin`. Returns openssl's verdict and the HTTP headers.
fn ocsp_get(cert: &Issued, port: u16, dir: &Path) -> (String, String) {
    let req = dir.join("get-req.der");
    openssl_text(&[
        "ocsp",
        "-no_nonce",
        "-issuer",
        p(&cert.issuing),
        "-cert",
        p(&cert.leaf),
        "-reqout",
        p(&req),
    ]);
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&req).unwrap());
    let path = format!(
        "/ocsp/{}",
        b64.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
    );
    let (status, headers, body) = http_get(port, &path).unwrap();
    assert_eq!(status, 200, "{headers}");
    let resp = dir.join("get-resp.der");
    std::fs::write(&resp, body).unwrap();
    let verdict = openssl_text(&[
        "ocsp",
        "-respin",
        p(&resp),
        "-issuer",
        p(&cert.issuing),
        "-cert",
        p(&cert.leaf),
        "-CAfile",
        p(&cert.chain),
    ]);
    (verdict, headers)
}

fn assert_good(out: &str, leaf: &Path) {
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: good", p(leaf))), "{out}");
}

fn assert_revoked(out: &str, leaf: &Path) {
    assert!(out.contains("Response verify OK"), "{out}");
    assert!(out.contains(&format!("{}: revoked", p(leaf))), "{out}");
    assert!(
        out.contains("Key Compromise") || out.contains("keyCompromise"),
        "{out}"
    );
}

#[test]
fn openssl_sees_good_then_revoked_over_ocsp_and_crl() {
    let tmp = tempfile::tempdir().unwrap();
    // The certificates must name the responder's address, so it is chosen before serve
    // starts (bind-then-release: a configuration names it); the API binds port 0.
    let ocsp_port = free_port();
    let data = init_dir(tmp.path(), ocsp_port, &[]);
    let mut serve = Server::spawn_with(
        tmp.path(),
        &[],
        &["serve", "--dir", p(&data), "--listen", "127.0.0.1:0"],
    );
    serve.ready_blocking();
    assert_eq!(
        serve.ocsp_port(),
        ocsp_port,
        "the responder is not on its configured address"
    );
    let api = serve.base();
    wait_ready(&mut serve, ocsp_port, "/readyz");
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let cert = issue(&data, &api, &client, "web.internal");

    // The certificate names this responder, for OCSP and for the CRL.
    let url = format!("http://127.0.0.1:{ocsp_port}/ocsp");
    let names: String = ["-ocsp_uri", "-ext=crlDistributionPoints"]
        .iter()
        .map(|opt| {
            let opt: Vec<&str> = opt.splitn(2, '=').collect();
            let mut args = vec!["x509", "-in", p(&cert.leaf), "-noout", opt[0]];
            args.extend(opt.get(1));
            String::from_utf8_lossy(&openssl(&args).stdout).into_owned()
        })
        .collect();
    assert!(names.contains(&url), "{names}");
    assert!(
        names.contains(&format!("http://127.0.0.1:{ocsp_port}/crl/issuing.crl")),
        "{names}"
    );
    // AIA caIssuers serves the issuing CA, DER.
    let (status, _, der) = http_get(ocsp_port, "/ca/issuing.crt").unwrap();
    assert_eq!(status, 200);
    std::fs::write(client.join("ca-issuers.der"), der).unwrap();
    let o = openssl(&[
        "x509",
        "-inform",
        "DER",
        "-in",
        p(&client.join("ca-issuers.der")),
        "-noout",
        "-subject",
    ]);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Issuing CA"),
        "{}",
        text(&o)
    );

    // Good: with a nonce (echoed), without, with SHA-256 CertIDs, and by GET.
    let out = ocsp(&cert, &url, &[]);
    assert_good(&out, &cert.leaf);
    assert!(out.contains("OCSP Nonce"), "{out}");
    assert!(!out.contains("WARNING: no nonce"), "{out}");
    assert_good(&ocsp(&cert, &url, &["-no_nonce"]), &cert.leaf);
    assert_good(&ocsp(&cert, &url, &["-sha256"]), &cert.leaf);
    let (verdict, headers) = ocsp_get(&cert, ocsp_port, &client);
    assert_good(&verdict, &cert.leaf);
    assert!(headers.contains("cache-control: max-age="), "{headers}");
    assert!(
        headers.contains("etag:") && headers.contains("last-modified:"),
        "{headers}"
    );

    // Revoke through the API: the very next answers say revoked, signature verified.
    revoke(&data, &api, &cert.serial);
    assert_revoked(&ocsp(&cert, &url, &[]), &cert.leaf);
    assert_revoked(&ocsp(&cert, &url, &["-no_nonce"]), &cert.leaf);
    assert_revoked(&ocsp_get(&cert, ocsp_port, &client).0, &cert.leaf);

    // The CRL is republished on the revocation: openssl verifies it and lists the serial
    // with its reason; openssl verify -crl_check refuses the certificate.
    let crl = client.join("issuing.crl");
    let deadline = Instant::now() + Duration::from_secs(10);
    let listing = loop {
        let (status, _, body) = http_get(ocsp_port, "/crl/issuing.crl").unwrap();
        assert_eq!(status, 200);
        std::fs::write(&crl, body).unwrap();
        let out = openssl_text(&[
            "crl",
            "-inform",
            "DER",
            "-in",
            p(&crl),
            "-CAfile",
            p(&cert.chain),
            "-verify",
            "-noout",
            "-text",
        ]);
        if out.to_ascii_lowercase().contains(&cert.serial) {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the CRL never listed {}:\n{out}",
            cert.serial
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(listing.contains("verify OK"), "{listing}");
    assert!(listing.contains("Key Compromise"), "{listing}");
    assert!(listing.contains("X509v3 CRL Number"), "{listing}");
    let (status, _, pem) = http_get(ocsp_port, "/crl/issuing.pem").unwrap();
    assert_eq!(status, 200);
    let crl_pem = client.join("issuing.crl.pem");
    std::fs::write(&crl_pem, pem).unwrap();
    let o = openssl(&[
        "verify",
        "-crl_check",
        "-CRLfile",
        p(&crl_pem),
        "-CAfile",
        p(&cert.chain),
        p(&cert.leaf),
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("certificate revoked"), "{}", text(&o));

    // Shut down together, cleanly.
    let status = serve.terminate_blocking();
    assert!(status.success(), "{status}:\n{}", serve.log());
    assert!(
        TcpStream::connect(("127.0.0.1", ocsp_port)).is_err(),
        "the responder still listens"
    );
}

/// `[responder] threads = 2`: two responder threads, which take the accepted connections in
/// turn, so consecutive connections are answered by different threads. Every answer by GET
/// is byte-identical and verified by openssl; after a revocation, the next connections (on
/// both threads) say revoked, as does the path answered before from the cache.
#[test]
fn two_responder_threads_answer_alike_and_both_see_a_revocation() {
    let tmp = tempfile::tempdir().unwrap();
    let ocsp_port = free_port();
    let data = init_dir(tmp.path(), ocsp_port, &[]);
    let config = data.join("signet.toml");
    let toml = std::fs::read_to_string(&config).unwrap();
    assert!(toml.contains("\n# threads = 1\n"), "{toml}");
    std::fs::write(
        &config,
        toml.replace("\n# threads = 1\n", "\nthreads = 2\n"),
    )
    .unwrap();
    let mut serve = Server::spawn_with(
        tmp.path(),
        &[],
        &["serve", "--dir", p(&data), "--listen", "127.0.0.1:0"],
    );
    serve.ready_blocking();
    let api = serve.base();
    wait_ready(&mut serve, ocsp_port, "/readyz");
    let threads = std::fs::read_dir(format!("/proc/{}/task", serve.pid()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        // The kernel keeps 15 bytes of a thread's name.
        .filter(|name| name.trim() == "signet-responde")
        .count();
    assert_eq!(threads, 2, "responder threads");
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let cert = issue(&data, &api, &client, "two.internal");

    // Each GET is a connection of its own (Connection: close): four cover both threads.
    let mut first = None;
    for _ in 0..4 {
        let (verdict, headers) = ocsp_get(&cert, ocsp_port, &client);
        assert_good(&verdict, &cert.leaf);
        assert!(headers.contains("cache-control: max-age="), "{headers}");
        let body = std::fs::read(client.join("get-resp.der")).unwrap();
        assert_eq!(
            first.get_or_insert_with(|| body.clone()),
            &body,
            "same answer"
        );
    }
    revoke(&data, &api, &cert.serial);
    for _ in 0..4 {
        assert_revoked(&ocsp_get(&cert, ocsp_port, &client).0, &cert.leaf);
    }
    let status = serve.terminate_blocking();
    assert!(status.success(), "{status}:\n{}", serve.log());
}

#[tokio::test]
async fn a_standalone_responder_on_postgresql_sees_revocations_within_a_second() {
    let db = TestDb::postgres().await;
    let tmp = tempfile::tempdir().unwrap();
    // As above, the responder's address is named in the certificates; the API and the
    // standalone responder bind port 0 and report theirs.
    let ocsp_port = free_port();
    let env = [("SIGNET_DATABASE_URL", db.url())];
    let data = init_dir(tmp.path(), ocsp_port, &env);
    let serve = Server::start(
        tmp.path(),
        &env,
        &[
            "--dir",
            p(&data),
            "--responder-listen",
            &format!("127.0.0.1:{ocsp_port}"),
        ],
    )
    .await;
    let api = serve.base();
    // The standalone responder has the CA certificate and the database, not the key: it
    // gets its signing certificate from `signet serve` through the database.
    let only_cert = tmp.path().join("responder");
    std::fs::create_dir(&only_cert).unwrap();
    std::fs::copy(
        data.join("issuing_ca.crt"),
        only_cert.join("issuing_ca.crt"),
    )
    .unwrap();
    let mut standalone = Server::spawn_responder(
        tmp.path(),
        &[],
        &["--database-url", db.url(), "--dir", p(&only_cert)],
    );
    standalone.ready().await;
    let standalone_port = standalone.ocsp_port();
    wait_ready(&mut standalone, standalone_port, "/readyz");

    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let cert = issue(&data, &api, &client, "db.internal");
    let url = format!("http://127.0.0.1:{standalone_port}/ocsp");
    assert_good(&ocsp(&cert, &url, &["-no_nonce"]), &cert.leaf);
    // Cached now: the next answers come from memory until the revocation drops them.
    assert_good(&ocsp_get(&cert, standalone_port, &client).0, &cert.leaf);

    revoke(&data, &api, &cert.serial);
    let revoked = Instant::now();
    loop {
        let (verdict, _) = ocsp_get(&cert, standalone_port, &client);
        if verdict.contains(": revoked") {
            assert_revoked(&verdict, &cert.leaf);
            break;
        }
        assert_good(&verdict, &cert.leaf);
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "the standalone responder still says good {:?} after the revocation:\n{}",
            revoked.elapsed(),
            standalone.log()
        );
    }
    eprintln!(
        "standalone responder answered revoked after {:?}",
        revoked.elapsed()
    );
    assert_revoked(&ocsp(&cert, &url, &[]), &cert.leaf);

    // It serves the CRL the API process published.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = http_get(standalone_port, "/crl/issuing.crl").unwrap();
        if status == 200 {
            let crl = client.join("standalone.crl");
            std::fs::write(&crl, body).unwrap();
            let out = openssl_text(&[
                "crl",
                "-inform",
                "DER",
                "-in",
                p(&crl),
                "-CAfile",
                p(&cert.chain),
                "-verify",
                "-noout",
                "-text",
            ]);
            if out.to_ascii_lowercase().contains(&cert.serial) {
                assert!(out.contains("verify OK"), "{out}");
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no CRL with the serial:\n{}",
            standalone.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The signer certificate was issued to it and recorded, like every certificate.
    assert!(
        serve.log().contains("standalone responder"),
        "{}",
        serve.log()
    );
}
