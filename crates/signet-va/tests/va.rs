//! signet-va against real servers on loopback.
//!
//! `pebble-challtestsrv` (Debian's `pebble` package, Let's Encrypt's Go test responder) is
//! the DNS server every test resolves through, and the independent http-01, dns-01 and
//! tls-alpn-01 responder for the cases that must pass. Small servers written here play the
//! hostile parts: redirects, oversized and slow answers, wrong certificates, and a counter
//! of concurrent validations.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, CustomExtension, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use signet_va::{
    ChallengeKind, FailureKind, Identifier, NetworkPolicy, Va, VaConfig, VaError,
    ValidationFailure, dns01_txt_value,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY_AUTH: &str = "tok-123.thumbprint-abc";
const TOKEN: &str = "tok-123";

// ---------------------------------------------------------------------------------------
// pebble-challtestsrv

/// A `pebble-challtestsrv` on free loopback ports: DNS (A records default to 127.0.0.1, no
/// AAAA), an http-01 responder, a tls-alpn-01 responder and its management API. Killed on
/// drop.
struct ChallTestSrv {
    child: Child,
    dns: SocketAddr,
    management: SocketAddr,
    http01: u16,
    tls_alpn01: u16,
}

fn find_binary(name: &str) -> String {
    let from_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].iter().map(|d| std::path::Path::new(d).join(name)))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| {
            panic!("{name} not found on PATH, in /usr/bin or /usr/sbin: install Debian's `pebble` package (.ci/run does)")
        })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl ChallTestSrv {
    async fn start() -> ChallTestSrv {
        let bin = find_binary("pebble-challtestsrv");
        let (dns, management, http01, tls_alpn01) =
            (free_port(), free_port(), free_port(), free_port());
        let child = Command::new(bin)
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", &format!("127.0.0.1:{http01}")])
            .args(["-tlsalpn01", &format!("127.0.0.1:{tls_alpn01}")])
            .args(["-https01", "", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts");
        let srv = ChallTestSrv {
            child,
            dns: SocketAddr::from(([127, 0, 0, 1], dns)),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            http01,
            tls_alpn01,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [management, dns, http01, tls_alpn01] {
            while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pebble-challtestsrv did not open port {port}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        srv
    }

    /// POSTs JSON to the management API and insists on 200.
    async fn manage(&self, path: &str, body: serde_json::Value) {
        let body = body.to_string();
        let mut stream = TcpStream::connect(self.management)
            .await
            .expect("management API");
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.management,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.expect("read");
        assert!(
            answer.starts_with("HTTP/1.1 200"),
            "{path} {body}: {answer}"
        );
    }

    async fn set_txt(&self, host: &str, value: &str) {
        self.manage(
            "/set-txt",
            serde_json::json!({ "host": host, "value": value }),
        )
        .await;
    }

    async fn add_a(&self, host: &str, addresses: &[&str]) {
        self.manage(
            "/add-a",
            serde_json::json!({ "host": host, "addresses": addresses }),
        )
        .await;
    }

    /// A VA that resolves through this server and may reach loopback.
    fn va(&self, edit: impl FnOnce(&mut VaConfig)) -> Va {
        let mut cfg = VaConfig {
            resolver: Some(self.dns),
            http01_port: self.http01,
            tls_alpn01_port: self.tls_alpn01,
            networks: NetworkPolicy::parse_list("127.0.0.0/8").expect("loopback policy"),
            timeout: Duration::from_secs(5),
            max_concurrency: 8,
        };
        edit(&mut cfg);
        Va::new(cfg).expect("VA")
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dns(name: &str) -> Identifier {
    Identifier::Dns(name.to_owned())
}

fn ip(s: &str) -> Identifier {
    Identifier::Ip(s.parse().expect("test address"))
}

#[track_caller]
fn expect_failure(
    outcome: Result<signet_va::ValidationRecord, ValidationFailure>,
    kind: FailureKind,
    detail_has: &str,
) -> ValidationFailure {
    let failure = outcome.expect_err("validation must fail");
    assert_eq!(failure.kind, kind, "{failure}");
    assert!(
        failure.detail.contains(detail_has),
        "detail {:?} lacks {detail_has:?}",
        failure.detail
    );
    failure
}

// ---------------------------------------------------------------------------------------
// Against pebble-challtestsrv's responders

#[tokio::test]
async fn http01_against_challtestsrv() {
    let srv = ChallTestSrv::start().await;
    srv.manage(
        "/add-http01",
        serde_json::json!({ "token": TOKEN, "content": KEY_AUTH }),
    )
    .await;
    let va = srv.va(|_| {});

    let record = va
        .validate(
            ChallengeKind::Http01,
            &dns("www.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await
        .expect("http-01 validates");
    assert_eq!(record.hostname, "www.example.test");
    assert_eq!(record.port, Some(srv.http01));
    assert_eq!(record.address_used, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(
        record.addresses_resolved,
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]
    );
    assert_eq!(
        record.url.as_deref(),
        Some(
            format!(
                "http://www.example.test:{}/.well-known/acme-challenge/{TOKEN}",
                srv.http01
            )
            .as_str()
        )
    );

    // RFC 8738: an IP identifier is fetched at the address itself.
    let record = va
        .validate(ChallengeKind::Http01, &ip("127.0.0.1"), TOKEN, KEY_AUTH)
        .await
        .expect("http-01 validates an IP address");
    assert_eq!(record.hostname, "127.0.0.1");
    assert_eq!(record.address_used, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));

    expect_failure(
        va.validate(
            ChallengeKind::Http01,
            &dns("www.example.test"),
            TOKEN,
            "tok-123.other",
        )
        .await,
        FailureKind::IncorrectResponse,
        "does not match",
    );
    // challtestsrv answers an unknown token with 200 and an empty body.
    expect_failure(
        va.validate(
            ChallengeKind::Http01,
            &dns("www.example.test"),
            "unknown",
            "unknown.x",
        )
        .await,
        FailureKind::IncorrectResponse,
        "got \"\"",
    );
    // A name with no address.
    srv.manage(
        "/set-servfail",
        serde_json::json!({ "host": "broken.example.test." }),
    )
    .await;
    expect_failure(
        va.validate(
            ChallengeKind::Http01,
            &dns("broken.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await,
        FailureKind::Dns,
        "broken.example.test",
    );
    // A name with an AAAA record is tried over IPv6 first (as Boulder does); nothing
    // listens on [::1], so the VA falls back to the A record's address.
    srv.manage(
        "/add-aaaa",
        serde_json::json!({ "host": "dual.example.test.", "addresses": ["::1"] }),
    )
    .await;
    let dual = srv.va(|cfg| {
        cfg.networks = NetworkPolicy::parse_list("127.0.0.0/8, ::1/128").expect("policy");
    });
    let record = dual
        .validate(
            ChallengeKind::Http01,
            &dns("dual.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await
        .expect("falls back to IPv4");
    assert_eq!(
        record.addresses_resolved,
        vec![
            "::1".parse::<IpAddr>().expect("ip"),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        ]
    );
    assert_eq!(record.address_used, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    // Nothing listens on the port.
    let closed = srv.va(|cfg| cfg.http01_port = free_port());
    expect_failure(
        closed
            .validate(
                ChallengeKind::Http01,
                &dns("www.example.test"),
                TOKEN,
                KEY_AUTH,
            )
            .await,
        FailureKind::Connection,
        "could not connect",
    );
}

#[tokio::test]
async fn dns01_against_challtestsrv() {
    let srv = ChallTestSrv::start().await;
    let va = srv.va(|_| {});
    let expected = dns01_txt_value(KEY_AUTH);
    // RFC 8555 section 8.1's example: base64url(SHA-256("token.thumbprint")).
    assert_eq!(expected.len(), 43);

    // No record yet, then the record: seen at once (no negative caching).
    expect_failure(
        va.validate(ChallengeKind::Dns01, &dns("example.test"), TOKEN, KEY_AUTH)
            .await,
        FailureKind::Unauthorized,
        "no TXT record found at _acme-challenge.example.test",
    );
    srv.set_txt("_acme-challenge.example.test.", "some-other-value")
        .await;
    srv.set_txt("_acme-challenge.example.test.", &expected)
        .await;
    let record = va
        .validate(ChallengeKind::Dns01, &dns("example.test"), TOKEN, KEY_AUTH)
        .await
        .expect("dns-01 validates");
    assert_eq!(record.hostname, "example.test");
    assert_eq!(record.url, None);
    assert!(record.addresses_resolved.is_empty());

    // A wildcard is validated at the base name's _acme-challenge.
    let record = va
        .validate(
            ChallengeKind::Dns01,
            &dns("*.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await
        .expect("dns-01 validates a wildcard");
    assert_eq!(record.hostname, "example.test");

    // Delegation through a CNAME (as acme-dns setups do): the TXT record is followed to
    // the name the CNAME points at.
    srv.manage(
        "/set-cname",
        serde_json::json!({
            "host": "_acme-challenge.delegated.example.test.",
            "target": "token1.auth.example.test."
        }),
    )
    .await;
    srv.set_txt("token1.auth.example.test.", &expected).await;
    va.validate(
        ChallengeKind::Dns01,
        &dns("delegated.example.test"),
        TOKEN,
        KEY_AUTH,
    )
    .await
    .expect("dns-01 validates through a CNAME");

    // A record that is there but wrong.
    srv.set_txt("_acme-challenge.wrong.example.test.", "not-the-digest")
        .await;
    expect_failure(
        va.validate(
            ChallengeKind::Dns01,
            &dns("wrong.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await,
        FailureKind::IncorrectResponse,
        "\"not-the-digest\"",
    );
    // The server fails.
    srv.manage(
        "/set-servfail",
        serde_json::json!({ "host": "_acme-challenge.broken.example.test." }),
    )
    .await;
    expect_failure(
        va.validate(
            ChallengeKind::Dns01,
            &dns("broken.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await,
        FailureKind::Dns,
        "_acme-challenge.broken.example.test",
    );
    // dns-01 cannot prove an IP address (RFC 8738 section 7).
    expect_failure(
        va.validate(ChallengeKind::Dns01, &ip("127.0.0.1"), TOKEN, KEY_AUTH)
            .await,
        FailureKind::RejectedIdentifier,
        "dns-01",
    );
    // A DNS server that does not answer: a dns failure within the validation's bound.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mute = srv.va(|cfg| {
        cfg.resolver = Some(silent.local_addr().expect("addr"));
        cfg.timeout = Duration::from_secs(2);
    });
    let started = Instant::now();
    let failure = mute
        .validate(ChallengeKind::Dns01, &dns("example.test"), TOKEN, KEY_AUTH)
        .await
        .expect_err("no DNS answer");
    assert_eq!(failure.kind, FailureKind::Dns, "{failure}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn tls_alpn01_against_challtestsrv() {
    let srv = ChallTestSrv::start().await;
    srv.manage(
        "/add-tlsalpn01",
        serde_json::json!({ "host": "alpn.example.test", "content": KEY_AUTH }),
    )
    .await;
    let va = srv.va(|_| {});
    let record = va
        .validate(
            ChallengeKind::TlsAlpn01,
            &dns("alpn.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await
        .expect("tls-alpn-01 validates");
    assert_eq!(record.hostname, "alpn.example.test");
    assert_eq!(record.port, Some(srv.tls_alpn01));
    assert_eq!(record.address_used, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert_eq!(record.url, None);

    expect_failure(
        va.validate(
            ChallengeKind::TlsAlpn01,
            &dns("alpn.example.test"),
            TOKEN,
            "tok-123.other",
        )
        .await,
        FailureKind::IncorrectResponse,
        "key authorization digest",
    );
    // challtestsrv has no certificate for this name and ends the handshake.
    expect_failure(
        va.validate(
            ChallengeKind::TlsAlpn01,
            &dns("other.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await,
        FailureKind::Tls,
        "handshake",
    );
    // Wildcards only through dns-01.
    expect_failure(
        va.validate(
            ChallengeKind::TlsAlpn01,
            &dns("*.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await,
        FailureKind::RejectedIdentifier,
        "wildcard",
    );
}

// ---------------------------------------------------------------------------------------
// The network policy

#[tokio::test]
async fn default_policy_refuses_loopback_and_metadata_without_connecting() {
    let srv = ChallTestSrv::start().await;
    let server = HttpServer::start(|_, _| Reply::Ok(KEY_AUTH.into())).await;
    let tls_port = free_port();
    let va = srv.va(|cfg| {
        cfg.networks = NetworkPolicy::default();
        cfg.http01_port = server.port;
        cfg.tls_alpn01_port = tls_port;
    });
    for kind in [ChallengeKind::Http01, ChallengeKind::TlsAlpn01] {
        // www.example.test resolves to 127.0.0.1.
        expect_failure(
            va.validate(kind, &dns("www.example.test"), TOKEN, KEY_AUTH)
                .await,
            FailureKind::Connection,
            "outside the validation networks",
        );
        for address in [
            "127.0.0.1",
            "::1",
            "169.254.169.254",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            expect_failure(
                va.validate(kind, &ip(address), TOKEN, KEY_AUTH).await,
                FailureKind::RejectedIdentifier,
                "outside the validation networks",
            );
        }
    }
    assert_eq!(
        server.requests(),
        0,
        "a refused validation reached the server"
    );
}

// ---------------------------------------------------------------------------------------
// http-01 against a hostile server

/// What the in-test HTTP server does with a request (path, Host header).
enum Reply {
    Ok(Vec<u8>),
    Raw(Vec<u8>),
    Redirect(String),
    /// Answers after a pause (for the concurrency count).
    SlowOk(Duration, Vec<u8>),
    /// Reads the request and never answers.
    Hang,
}

type Handler = dyn Fn(&str, &str) -> Reply + Send + Sync;

struct HttpServer {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
    in_flight_max: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    async fn start(handler: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let in_flight_max = Arc::new(AtomicUsize::new(0));
        let (seen2, max2) = (Arc::clone(&seen), Arc::clone(&in_flight_max));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let (handler, seen, in_flight, max) = (
                    Arc::clone(&handler),
                    Arc::clone(&seen2),
                    Arc::clone(&in_flight),
                    Arc::clone(&max2),
                );
                tokio::spawn(async move {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                in_flight.fetch_sub(1, Ordering::SeqCst);
                                return;
                            }
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                    let host = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("host: ")
                                .or_else(|| l.strip_prefix("Host: "))
                        })
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock()
                        .expect("lock")
                        .push((path.clone(), host.clone()));
                    let response = match handler(&path, &host) {
                        Reply::Ok(body) => ok(&body),
                        Reply::Raw(raw) => raw,
                        Reply::Redirect(to) => format!(
                            "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
                        )
                        .into_bytes(),
                        Reply::SlowOk(pause, body) => {
                            tokio::time::sleep(pause).await;
                            ok(&body)
                        }
                        Reply::Hang => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            Vec::new()
                        }
                    };
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let _ = stream.write_all(&response).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        HttpServer {
            port,
            seen,
            in_flight_max,
            task,
        }
    }

    fn requests(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    fn seen(&self) -> Vec<(String, String)> {
        self.seen.lock().expect("lock").clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn ok(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

#[tokio::test]
async fn http01_redirects_are_bounded_and_rechecked() {
    let srv = ChallTestSrv::start().await;
    srv.add_a("elsewhere.example.test.", &["127.0.0.2"]).await;
    let port = Arc::new(AtomicUsize::new(0));
    let p = Arc::clone(&port);
    let server = HttpServer::start(move |path, _host| {
        let port = p.load(Ordering::SeqCst);
        let step = path.rsplit('/').next().unwrap_or_default();
        match step {
            // A relative redirect, then an absolute one to another name, then the answer.
            "start" => Reply::Redirect("/hop/one".into()),
            "one" => Reply::Redirect(format!("http://final.example.test:{port}/hop/final")),
            "final" => Reply::Ok(format!("{KEY_AUTH}\r\n \t\n").into_bytes()),
            "to-other-port" => Reply::Redirect("http://final.example.test:8080/hop/final".into()),
            "to-ftp" => Reply::Redirect("ftp://final.example.test/hop/final".into()),
            "to-creds" => Reply::Redirect(format!(
                "http://user:pw@final.example.test:{port}/hop/final"
            )),
            "to-denied-name" => {
                Reply::Redirect(format!("http://elsewhere.example.test:{port}/hop/final"))
            }
            "to-denied-ip" => Reply::Redirect(format!("http://127.0.0.2:{port}/hop/final")),
            "loop" => Reply::Redirect("/.well-known/acme-challenge/loop".into()),
            "no-location" => {
                Reply::Raw(b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n".to_vec())
            }
            "huge" => Reply::Ok(vec![b'a'; 1024 * 1024]),
            "huge-head" => Reply::Raw(
                format!(
                    "HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n",
                    "b".repeat(64 * 1024)
                )
                .into_bytes(),
            ),
            "hang" => Reply::Hang,
            _ => Reply::Raw(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()),
        }
    })
    .await;
    port.store(usize::from(server.port), Ordering::SeqCst);
    // Only 127.0.0.1 may be reached: 127.0.0.2 stands for an address outside the networks.
    let va = srv.va(|cfg| {
        cfg.http01_port = server.port;
        cfg.networks = NetworkPolicy::parse_list("127.0.0.1/32").expect("policy");
        cfg.timeout = Duration::from_secs(2);
    });
    let id = dns("www.example.test");

    let record = va
        .validate(ChallengeKind::Http01, &id, "start", KEY_AUTH)
        .await
        .expect("redirects followed, trailing whitespace ignored");
    assert_eq!(
        record.url.as_deref(),
        Some(format!("http://final.example.test:{}/hop/final", server.port).as_str())
    );
    assert_eq!(record.hostname, "www.example.test");
    let seen = server.seen();
    assert_eq!(
        seen,
        vec![
            (
                "/.well-known/acme-challenge/start".to_owned(),
                format!("www.example.test:{}", server.port)
            ),
            (
                "/hop/one".to_owned(),
                format!("www.example.test:{}", server.port)
            ),
            (
                "/hop/final".to_owned(),
                format!("final.example.test:{}", server.port)
            ),
        ]
    );

    let before = server.requests();
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "to-other-port", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "only port 80 or",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "to-ftp", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "not http or https",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "to-creds", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "credentials",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "to-denied-name", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "outside the validation networks (127.0.0.2)",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "to-denied-ip", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "outside the validation networks",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "no-location", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "without a usable Location",
    );
    // Each refused redirect stopped before connecting anywhere new: one request apiece.
    assert_eq!(server.requests(), before + 6);

    let before = server.requests();
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "loop", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "too many redirects",
    );
    assert_eq!(server.requests(), before + 1 + signet_va::MAX_REDIRECTS);

    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "huge", KEY_AUTH)
            .await,
        FailureKind::Unauthorized,
        "larger than",
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "huge-head", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "fetching",
    );
    let started = Instant::now();
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "hang", KEY_AUTH)
            .await,
        FailureKind::Connection,
        "timed out after 2000 ms",
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "missing", KEY_AUTH)
            .await,
        FailureKind::Unauthorized,
        "HTTP 404",
    );
    // A token that is not base64url never reaches the network.
    let before = server.requests();
    expect_failure(
        va.validate(ChallengeKind::Http01, &id, "../../etc", KEY_AUTH)
            .await,
        FailureKind::ServerInternal,
        "base64url",
    );
    assert_eq!(server.requests(), before);
}

#[tokio::test]
async fn concurrency_is_capped() {
    let srv = ChallTestSrv::start().await;
    let server =
        HttpServer::start(|_, _| Reply::SlowOk(Duration::from_millis(200), KEY_AUTH.into())).await;
    let va = srv.va(|cfg| {
        cfg.http01_port = server.port;
        cfg.max_concurrency = 2;
    });
    let runs: Vec<_> = (0..6)
        .map(|i| {
            let va = va.clone();
            tokio::spawn(async move {
                va.validate(
                    ChallengeKind::Http01,
                    &dns(&format!("n{i}.example.test")),
                    TOKEN,
                    KEY_AUTH,
                )
                .await
            })
        })
        .collect();
    let started = Instant::now();
    for run in runs {
        run.await.expect("task").expect("validates");
    }
    // Six 200 ms answers two at a time: three rounds.
    assert!(
        started.elapsed() >= Duration::from_millis(550),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.in_flight_max.load(Ordering::SeqCst), 2);
    assert_eq!(server.requests(), 6);
}

// ---------------------------------------------------------------------------------------
// tls-alpn-01 against certificates made here

/// How the in-test tls-alpn-01 server builds its certificate.
#[derive(Clone, Copy, Debug)]
enum AlpnCert {
    Good,
    NoExtension,
    NotCritical,
    TwoNames,
    OtherName,
    WrongDigest,
    /// A good certificate, but the server does not speak acme-tls/1.
    NoAlpn,
    /// Good certificates with other keys, on a server that speaks only TLS 1.2 (whose
    /// handshake signature the VA checks against the certificate's key by itself).
    Tls12P256,
    Tls12P384,
    Tls12Ed25519,
}

struct AlpnServer {
    port: u16,
    sni: Arc<Mutex<Vec<Option<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AlpnServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn alpn_config(id: &Identifier, how: AlpnCert) -> Arc<rustls::ServerConfig> {
    let san = |id: &Identifier| match id {
        Identifier::Dns(name) => SanType::DnsName(name.as_str().try_into().expect("name")),
        Identifier::Ip(ip) => SanType::IpAddress(*ip),
    };
    let mut params = CertificateParams::default();
    params.subject_alt_names = match how {
        AlpnCert::TwoNames => vec![san(id), san(&dns("extra.example.test"))],
        AlpnCert::OtherName => vec![san(&dns("other.example.test"))],
        _ => vec![san(id)],
    };
    let digest = ring::digest::digest(&ring::digest::SHA256, KEY_AUTH.as_bytes());
    match how {
        AlpnCert::NoExtension => {}
        AlpnCert::WrongDigest => params
            .custom_extensions
            .push(CustomExtension::new_acme_identifier(&[7u8; 32])),
        AlpnCert::NotCritical => {
            // OCTET STRING (SIZE (32)), DER: 04 20 || digest.
            let mut value = vec![0x04, 0x20];
            value.extend_from_slice(digest.as_ref());
            let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 1, 31], value);
            ext.set_criticality(false);
            params.custom_extensions.push(ext);
        }
        _ => params
            .custom_extensions
            .push(CustomExtension::new_acme_identifier(digest.as_ref())),
    }
    let key = match how {
        AlpnCert::Tls12P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384),
        AlpnCert::Tls12Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519),
        _ => KeyPair::generate(),
    }
    .expect("key");
    let cert = params.self_signed(&key).expect("self-signed");
    // with_single_cert would refuse the certificate (webpki does not know the critical
    // acmeIdentifier extension), so the key is served through a resolver.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let signing_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            key.serialize_der(),
        )))
        .expect("signing key");
    let certified = Arc::new(rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing_key,
    ));
    let versions: &[&rustls::SupportedProtocolVersion] = match how {
        AlpnCert::Tls12P256 | AlpnCert::Tls12P384 | AlpnCert::Tls12Ed25519 => {
            &[&rustls::version::TLS12]
        }
        _ => rustls::DEFAULT_VERSIONS,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(certified)));
    if !matches!(how, AlpnCert::NoAlpn) {
        config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    }
    Arc::new(config)
}

#[derive(Debug)]
struct Fixed(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

impl AlpnServer {
    async fn start(configs: HashMap<String, Arc<rustls::ServerConfig>>) -> AlpnServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let sni = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&sni);
        let configs = Arc::new(configs);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (seen, configs) = (Arc::clone(&seen), Arc::clone(&configs));
                tokio::spawn(async move {
                    let acceptor = tokio_rustls::LazyConfigAcceptor::new(
                        rustls::server::Acceptor::default(),
                        stream,
                    );
                    let Ok(start) = acceptor.await else { return };
                    let name = start.client_hello().server_name().map(str::to_owned);
                    seen.lock().expect("lock").push(name.clone());
                    // The certificate is chosen by SNI, as a tls-alpn-01 responder does.
                    let Some(config) = configs.get(name.as_deref().unwrap_or_default()) else {
                        return;
                    };
                    if let Ok(mut tls) = start.into_stream(Arc::clone(config)).await {
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        AlpnServer { port, sni, task }
    }
}

#[tokio::test]
async fn tls_alpn01_checks_the_certificate() {
    let srv = ChallTestSrv::start().await;
    let cases = [
        ("good.example.test", AlpnCert::Good),
        ("tls12-p256.example.test", AlpnCert::Tls12P256),
        ("tls12-p384.example.test", AlpnCert::Tls12P384),
        ("tls12-ed25519.example.test", AlpnCert::Tls12Ed25519),
        ("noext.example.test", AlpnCert::NoExtension),
        ("noncritical.example.test", AlpnCert::NotCritical),
        ("two.example.test", AlpnCert::TwoNames),
        ("othername.example.test", AlpnCert::OtherName),
        ("digest.example.test", AlpnCert::WrongDigest),
        ("noalpn.example.test", AlpnCert::NoAlpn),
    ];
    let mut configs: HashMap<String, Arc<rustls::ServerConfig>> = cases
        .iter()
        .map(|(name, how)| ((*name).to_owned(), alpn_config(&dns(name), *how)))
        .collect();
    // RFC 8738 section 6: an IP identifier is asked for by its reverse-mapping name, and
    // the certificate names the address itself.
    configs.insert(
        "1.0.0.127.in-addr.arpa".into(),
        alpn_config(&ip("127.0.0.1"), AlpnCert::Good),
    );
    let server = AlpnServer::start(configs).await;
    let va = srv.va(|cfg| cfg.tls_alpn01_port = server.port);

    let record = va
        .validate(
            ChallengeKind::TlsAlpn01,
            &dns("good.example.test"),
            TOKEN,
            KEY_AUTH,
        )
        .await
        .expect("validates");
    assert_eq!(record.port, Some(server.port));
    let record = va
        .validate(ChallengeKind::TlsAlpn01, &ip("127.0.0.1"), TOKEN, KEY_AUTH)
        .await
        .expect("validates an IP address");
    assert_eq!(record.hostname, "127.0.0.1");
    assert_eq!(
        server.sni.lock().expect("lock").clone(),
        vec![
            Some("good.example.test".to_owned()),
            Some("1.0.0.127.in-addr.arpa".to_owned())
        ]
    );
    for name in [
        "tls12-p256.example.test",
        "tls12-p384.example.test",
        "tls12-ed25519.example.test",
    ] {
        va.validate(ChallengeKind::TlsAlpn01, &dns(name), TOKEN, KEY_AUTH)
            .await
            .unwrap_or_else(|e| panic!("{name} over TLS 1.2: {e}"));
    }

    for (name, how, kind, detail) in [
        (
            "noext.example.test",
            AlpnCert::NoExtension,
            FailureKind::IncorrectResponse,
            "no acmeIdentifier",
        ),
        (
            "noncritical.example.test",
            AlpnCert::NotCritical,
            FailureKind::IncorrectResponse,
            "not marked critical",
        ),
        (
            "two.example.test",
            AlpnCert::TwoNames,
            FailureKind::IncorrectResponse,
            "names 2 identifiers",
        ),
        (
            "othername.example.test",
            AlpnCert::OtherName,
            FailureKind::IncorrectResponse,
            "does not name othername.example.test",
        ),
        (
            "digest.example.test",
            AlpnCert::WrongDigest,
            FailureKind::IncorrectResponse,
            "digest",
        ),
        (
            "noalpn.example.test",
            AlpnCert::NoAlpn,
            FailureKind::Tls,
            "acme-tls/1",
        ),
    ] {
        let failure = va
            .validate(ChallengeKind::TlsAlpn01, &dns(name), TOKEN, KEY_AUTH)
            .await
            .expect_err(name);
        assert_eq!(failure.kind, kind, "{how:?}: {failure}");
        assert!(failure.detail.contains(detail), "{how:?}: {failure}");
    }
}

// ---------------------------------------------------------------------------------------
// Configuration

#[tokio::test]
async fn impossible_configurations_are_refused() {
    for edit in [
        (|cfg: &mut VaConfig| cfg.max_concurrency = 0) as fn(&mut VaConfig),
        |cfg| cfg.timeout = Duration::ZERO,
        |cfg| cfg.http01_port = 0,
    ] {
        let mut cfg = VaConfig {
            resolver: Some(SocketAddr::from(([127, 0, 0, 1], 53))),
            ..VaConfig::default()
        };
        edit(&mut cfg);
        assert!(matches!(Va::new(cfg), Err(VaError::InvalidConfig(_))));
    }
    let defaults = VaConfig::default();
    assert_eq!((defaults.http01_port, defaults.tls_alpn01_port), (80, 443));
    assert!(defaults.networks.is_default());
    assert_eq!(
        FailureKind::IncorrectResponse.acme_type(),
        "urn:ietf:params:acme:error:incorrectResponse"
    );
}
