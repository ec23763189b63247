//! Signet certificates in a real nginx (Debian's package), as operators deploy them:
//!
//! - OCSP stapling: nginx fetches the staple itself from the responder named in the
//!   certificate's AIA (`ssl_stapling on; ssl_stapling_verify on`), and serves a file written
//!   by `signet staple` (`ssl_stapling_file`); `openssl s_client -status` reads what is
//!   stapled, and `openssl ocsp -respin` verifies the file `signet staple` wrote.
//! - mTLS with CRLs: `ssl_verify_client on` with `ssl_crl` holding the CRLs the responder
//!   publishes at `/crl/chain.pem` (the issuing CA's, then the root's, which `signet init`
//!   and `signet ca root-crl` sign with the root key): a Signet client certificate gets 200,
//!   a revoked one gets nginx's 400 "The SSL certificate error".
//! - The root CRL itself: served at `/crl/root.crl` and `.pem` with ETags and 304s, by
//!   `signet serve` and a standalone `signet responder`, and replaced when
//!   `signet ca root-crl` stores a newer one.
//!
//! Every process listens on its own free loopback port; nothing touches a system nginx.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{Server, base_command, free_port, p, text};

/// How long a process may take to come up (it may create a CA and migrate a database first).
const STARTUP: Duration = common::STARTUP;

/// A child process, killed when dropped; its output goes to a log file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Proc {
            child: cmd.spawn().unwrap(),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_listening(&mut self, port: u16, extra_log: &Path) {
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "exited early ({status}):\n{}\n{}",
                    self.log(),
                    std::fs::read_to_string(extra_log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "not listening in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

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

fn signet(args: &[&str]) -> Output {
    base_command().args(args).output().unwrap()
}

fn openssl(args: &[&str]) -> Output {
    Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)")
}

/// openssl's whole output (verdicts go to stdout, "Response verify OK" to stderr).
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
    http_get_with(port, path, "")
}

/// [`http_get`] with extra request header lines (each ending in `\r\n`).
fn http_get_with(port: u16, path: &str, extra: &str) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}Connection: close\r\n\r\n"
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

/// nginx from PATH or where Debian puts it (/usr/sbin, not on a normal user's PATH).
fn nginx_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/nginx", "/usr/local/sbin/nginx"].map(PathBuf::from))
        .find(|p| p.is_file())
        .expect(
            "nginx is not installed: these tests run a real nginx. Install it with \
             `apt-get install nginx` (Debian puts it in /usr/sbin)",
        )
}

/// A `signet serve` on two free ports (HTTPS API, plain-HTTP responder) with its data
/// directory, its certificates naming the responder by IP literal (nginx needs no resolver).
struct Ca {
    _serve: Server,
    data: PathBuf,
    api: String,
    ocsp_port: u16,
}

impl Ca {
    fn start(tmp: &Path) -> Ca {
        Ca::start_with_crl(tmp, "shards = 0\ndelta = false")
    }

    /// [`Ca::start`] with `[crl]` holding `crl` (TOML lines).
    fn start_with_crl(tmp: &Path, crl: &str) -> Ca {
        // The certificates name the responder's address, so it is picked before the server
        // starts (bind-then-release, see `common::free_port`); the API binds port 0.
        let ocsp_port = free_port();
        let data = tmp.join("data");
        let o = signet(&["init", "--dir", p(&data)]);
        assert!(o.status.success(), "{}", text(&o));
        let config = data.join("signet.toml");
        let toml = std::fs::read_to_string(&config).unwrap();
        let here = format!("127.0.0.1:{ocsp_port}");
        let toml = toml.replace("127.0.0.1:8080", &here).replace(
            &format!("# listen = \"{here}\""),
            &format!("listen = \"{here}\""),
        );
        assert!(toml.contains(&format!("\nlisten = \"{here}\"")), "{toml}");
        let toml = toml.replace("[crl]\nshards = 0\ndelta = false", &format!("[crl]\n{crl}"));
        assert!(toml.contains(&format!("[crl]\n{crl}")), "{toml}");
        std::fs::write(&config, toml).unwrap();
        Ca::serve(tmp, data, ocsp_port)
    }

    /// `signet serve` on the initialised `data`, its responder on `ocsp_port` (as
    /// signet.toml says), until it is ready.
    fn serve(tmp: &Path, data: PathBuf, ocsp_port: u16) -> Ca {
        let mut serve = Server::spawn_with(
            tmp,
            &[],
            &["serve", "--dir", p(&data), "--listen", "127.0.0.1:0"],
        );
        serve.ready_blocking();
        assert_eq!(
            serve.ocsp_port(),
            ocsp_port,
            "the responder is not where signet.toml says"
        );
        wait_ready(&mut serve, ocsp_port, "/readyz");
        Ca {
            api: serve.base(),
            _serve: serve,
            data,
            ocsp_port,
        }
    }

    /// Stop the server, run `signet ca new-issuing`, and serve again (the responder on the
    /// same address, which the certificates name).
    fn new_issuing(self, tmp: &Path) -> Ca {
        let (data, ocsp_port) = (self.data.clone(), self.ocsp_port);
        drop(self);
        let o = signet(&["ca", "new-issuing", "--dir", p(&data)]);
        assert!(o.status.success(), "{}", text(&o));
        Ca::serve(tmp, data, ocsp_port)
    }

    /// Root, then the issuing CA: what verifiers trust.
    fn chain(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca-chain.pem");
        let root = std::fs::read_to_string(self.data.join("root_ca.crt")).unwrap();
        let issuing = std::fs::read_to_string(self.data.join("issuing_ca.crt")).unwrap();
        std::fs::write(&path, format!("{root}{issuing}")).unwrap();
        path
    }

    /// A certificate for `host` under `profile`, issued through the API with `signet issue`.
    fn issue(&self, dir: &Path, host: &str, profile: &str) -> Issued {
        let key = dir.join(format!("{host}.key"));
        let csr = dir.join(format!("{host}.csr"));
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
            &format!("/CN={host}"),
            "-addext",
            &format!("subjectAltName=DNS:{host}"),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let bundle = dir.join(format!("{host}.bundle.pem"));
        let o = signet(&[
            "issue",
            "--admin",
            "--dir",
            p(&self.data),
            "--ca-url",
            &self.api,
            "--csr",
            p(&csr),
            "--profile",
            profile,
            "--out",
            p(&bundle),
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let pem = std::fs::read_to_string(&bundle).unwrap();
        let end = "-----END CERTIFICATE-----\n";
        let split = pem.find(end).unwrap() + end.len();
        let leaf = dir.join(format!("{host}.pem"));
        std::fs::write(&leaf, &pem[..split]).unwrap();
        let o = openssl(&["x509", "-in", p(&leaf), "-noout", "-serial"]);
        let serial = String::from_utf8_lossy(&o.stdout)
            .trim()
            .trim_start_matches("serial=")
            .to_ascii_lowercase();
        Issued {
            leaf,
            bundle,
            key,
            serial,
        }
    }

    fn revoke(&self, serial: &str) {
        let o = signet(&[
            "revoke",
            serial,
            "--dir",
            p(&self.data),
            "--ca-url",
            &self.api,
            "--reason",
            "keyCompromise",
        ]);
        assert!(o.status.success(), "{}", text(&o));
    }

    /// The issuing CA's CRL (PEM) from the responder, once it lists every serial in `listing`.
    fn crl_pem(&self, chain: &Path, dir: &Path, listing: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, _, body) = http_get(self.ocsp_port, "/crl/issuing.pem").unwrap();
            if status == 200 {
                let path = dir.join("issuing.crl.pem");
                std::fs::write(&path, &body).unwrap();
                let out = openssl_text(&[
                    "crl",
                    "-in",
                    p(&path),
                    "-CAfile",
                    p(chain),
                    "-verify",
                    "-noout",
                    "-text",
                ]);
                assert!(out.contains("verify OK"), "{out}");
                let lower = out.to_ascii_lowercase();
                if listing.iter().all(|s| lower.contains(s)) {
                    return String::from_utf8(body).unwrap();
                }
            }
            assert!(
                Instant::now() < deadline,
                "the responder's CRL never listed {listing:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Ca {
    /// `/crl/chain.pem` from the responder, once its issuing CA's CRL lists every serial in
    /// `listing`: two CRLs, the issuing CA's (verified against `chain`) and the root's
    /// (verified against the root alone), which is the one `signet init` wrote.
    fn chain_crl_pem(&self, chain: &Path, dir: &Path, listing: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        let root = self.data.join("root_ca.crt");
        loop {
            let (status, head, body) = http_get(self.ocsp_port, "/crl/chain.pem").unwrap();
            assert_eq!(status, 200, "{head}");
            assert!(
                head.contains("content-type: application/x-pem-file"),
                "{head}"
            );
            let body = String::from_utf8(body).unwrap();
            let end = "-----END X509 CRL-----\n";
            let blocks: Vec<&str> = body.split_inclusive(end).collect();
            assert_eq!(blocks.len(), 2, "{body}");
            let (issuing_path, root_path) =
                (dir.join("chain-issuing.pem"), dir.join("chain-root.pem"));
            std::fs::write(&issuing_path, blocks[0]).unwrap();
            std::fs::write(&root_path, blocks[1]).unwrap();
            let issuing = openssl_text(&[
                "crl",
                "-in",
                p(&issuing_path),
                "-CAfile",
                p(chain),
                "-verify",
                "-noout",
                "-text",
            ]);
            assert!(issuing.contains("Issuing CA"), "{issuing}");
            let root_out = openssl_text(&[
                "crl",
                "-in",
                p(&root_path),
                "-CAfile",
                p(&root),
                "-verify",
                "-noout",
                "-issuer",
            ]);
            assert!(root_out.contains("verify OK"), "{root_out}");
            assert!(root_out.contains("Root CA"), "{root_out}");
            assert_eq!(
                blocks[1],
                std::fs::read_to_string(self.data.join("root_ca.crl")).unwrap(),
                "the root CRL served is the one init wrote"
            );
            let lower = issuing.to_ascii_lowercase();
            if listing.iter().all(|s| lower.contains(s)) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "the responder's chain CRL never listed {listing:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// What `signet issue` gave: the leaf alone, leaf + issuing CA, the key, the serial.
struct Issued {
    leaf: PathBuf,
    bundle: PathBuf,
    key: PathBuf,
    /// Lowercase hex, as openssl prints it.
    serial: String,
}

/// An nginx on a free loopback port, run in the foreground as a single process with every
/// path (pid, logs, temp directories) inside `dir`.
struct Nginx {
    _proc: Proc,
    port: u16,
    error_log: PathBuf,
}

impl Nginx {
    /// Starts nginx with `server` (the directives inside `server { }`, after `listen`).
    fn start(dir: &Path, name: &str, server: &str) -> Nginx {
        let prefix = dir.join(name);
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let port = free_port();
        let error_log = prefix.join("logs/error.log");
        // As root, nginx would switch its workers to `nobody`; in single-process mode it does
        // not, but name root anyway so the files need not be readable by nobody.
        let user = if is_root() { "user root;" } else { "" };
        let conf = format!(
            "{user}
daemon off;
master_process off;
pid {prefix}/nginx.pid;
error_log {error_log} info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/logs/access.log;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name web.internal;
        {server}
        location / {{ return 200 \"hello from nginx\\n\"; }}
    }}
}}
",
            prefix = p(&prefix),
            error_log = p(&error_log),
        );
        let conf_path = prefix.join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let mut cmd = Command::new(nginx_binary());
        cmd.args(["-p", p(&prefix), "-e", p(&error_log), "-c", p(&conf_path)]);
        let mut proc = Proc::spawn(cmd, prefix.join("logs/stdout.log"));
        proc.wait_listening(port, &error_log);
        Nginx {
            _proc: proc,
            port,
            error_log,
        }
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(&self.error_log).unwrap_or_default()
    }

    /// `openssl s_client -status`: the handshake's output, including the stapled OCSP
    /// response ("OCSP response: no response sent" when there is none).
    fn s_client_status(&self, chain: &Path) -> String {
        let o = openssl(&[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{}", self.port),
            "-servername",
            "web.internal",
            "-status",
            "-CAfile",
            p(chain),
            "-verify_return_error",
        ]);
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        out
    }

    /// Handshakes until a staple is served (nginx fetches it lazily, after the first
    /// handshake asks for one), for at most 15 s. Returns s_client's output.
    fn wait_for_staple(&self, chain: &Path) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = self.s_client_status(chain);
            if out.contains("OCSP Response Status") {
                return out;
            }
            assert!(
                out.contains("OCSP response: no response sent"),
                "unexpected s_client output:\n{out}"
            );
            assert!(
                Instant::now() < deadline,
                "nginx never stapled a response:\n{out}\nnginx error log:\n{}",
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A server answering one request with 200 and a body that is not an OCSP response.
fn junk_http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/ocsp", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n\
                  Content-Length: 8\r\nConnection: close\r\n\r\nnot ocsp",
            );
        }
    });
    url
}

/// `signet staple`, returning its output.
fn staple(cert: &Path, issuer: Option<&Path>, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["staple", "--cert", p(cert), "--out", p(out)];
    if let Some(issuer) = issuer {
        args.extend(["--issuer", p(issuer)]);
    }
    args.extend_from_slice(extra);
    signet(&args)
}

/// `openssl ocsp -respin` on a staple file: its verdict. Only the root is trusted; the
/// issuing CA is an untrusted intermediate that the responder's certificate chains through.
fn verify_staple_file(file: &Path, leaf: &Path, issuing: &Path, root: &Path) -> String {
    openssl_text(&[
        "ocsp",
        "-respin",
        p(file),
        "-issuer",
        p(issuing),
        "-verify_other",
        p(issuing),
        "-cert",
        p(leaf),
        "-CAfile",
        p(root),
        "-resp_text",
    ])
}

#[test]
fn nginx_staples_signet_ocsp_responses_fetched_itself_and_from_signet_staple() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start(tmp.path());
    let dir = tmp.path().join("web");
    std::fs::create_dir(&dir).unwrap();
    let chain = ca.chain(&dir);
    let issuing = ca.data.join("issuing_ca.crt");
    let root = ca.data.join("root_ca.crt");
    let web = ca.issue(&dir, "web.internal", "server");
    let ocsp_url = format!("http://127.0.0.1:{}/ocsp", ca.ocsp_port);
    let aia = String::from_utf8_lossy(
        &openssl(&["x509", "-in", p(&web.leaf), "-noout", "-ocsp_uri"]).stdout,
    )
    .into_owned();
    assert_eq!(aia.trim(), ocsp_url);

    let tls = format!(
        "ssl_certificate {bundle};
        ssl_certificate_key {key};",
        bundle = p(&web.bundle),
        key = p(&web.key),
    );
    let fetching = format!(
        "{tls}
        ssl_stapling on;
        ssl_stapling_verify on;
        ssl_trusted_certificate {chain};",
        chain = p(&chain),
    );

    // (i) nginx fetches the staple from the responder in the AIA, verifies it, staples it.
    let nginx = Nginx::start(tmp.path(), "fetching", &fetching);
    let out = nginx.wait_for_staple(&chain);
    assert!(
        out.contains("OCSP Response Status: successful (0x0)"),
        "{out}"
    );
    assert!(out.contains("Cert Status: good"), "{out}");
    drop(nginx);

    // `signet staple` writes a verified staple (issuer from the chain file: its second
    // certificate), mode 0644; openssl verifies it against the root.
    let good = dir.join("good.ocsp");
    let o = staple(&web.bundle, None, &good, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("good;"),
        "{}",
        text(&o)
    );
    let mode = std::fs::metadata(&good).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let verdict = verify_staple_file(&good, &web.leaf, &issuing, &root);
    assert!(verdict.contains("Response verify OK"), "{verdict}");
    assert!(
        verdict.contains(&format!("{}: good", p(&web.leaf))),
        "{verdict}"
    );
    assert!(verdict.contains("Next Update:"), "{verdict}");

    // Refusals write nothing: the wrong issuer, nothing listening, a non-OCSP URL.
    let nothing = dir.join("nothing.ocsp");
    let o = staple(&web.leaf, Some(&web.leaf), &nothing, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("issuer"), "{}", text(&o));
    let o = staple(&web.leaf, None, &nothing, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("--issuer"), "{}", text(&o));
    let dead = format!("http://127.0.0.1:{}/ocsp", free_port());
    let started = Instant::now();
    let o = staple(
        &web.leaf,
        Some(&issuing),
        &nothing,
        &["--url", &dead, "--timeout", "3s"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(started.elapsed() < Duration::from_secs(10));
    // A responder that accepts the connection and never answers: --timeout bounds the wait.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}/ocsp", silent.local_addr().unwrap());
    let started = Instant::now();
    let o = staple(
        &web.leaf,
        Some(&issuing),
        &nothing,
        &["--url", &silent_url, "--timeout", "2s"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(10)).contains(&started.elapsed()),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
    let junk = junk_http_server();
    let o = staple(&web.leaf, Some(&issuing), &nothing, &["--url", &junk]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("OCSP response"), "{}", text(&o));
    assert!(!nothing.exists());

    // (iii) nginx serves the file `signet staple` wrote.
    let from_file = format!(
        "{tls}
        ssl_stapling on;
        ssl_stapling_file {file};",
        file = p(&good),
    );
    let nginx = Nginx::start(tmp.path(), "file-good", &from_file);
    let out = nginx.s_client_status(&chain);
    assert!(
        out.contains("OCSP Response Status: successful (0x0)"),
        "{out}"
    );
    assert!(out.contains("Cert Status: good"), "{out}");
    drop(nginx);

    // Revoke. `signet staple` now exits 5, says so, and still writes the (verified,
    // truthful) revoked staple.
    ca.revoke(&web.serial);
    let revoked = dir.join("revoked.ocsp");
    let o = staple(&web.leaf, Some(&issuing), &revoked, &[]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("revoked at"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("keyCompromise"), "{}", text(&o));
    assert!(text(&o).contains("REVOKED"), "{}", text(&o));
    let verdict = verify_staple_file(&revoked, &web.leaf, &issuing, &root);
    assert!(verdict.contains("Response verify OK"), "{verdict}");
    assert!(
        verdict.contains(&format!("{}: revoked", p(&web.leaf))),
        "{verdict}"
    );

    // (ii) A restarted nginx fetches afresh and learns of the revocation. nginx refuses to
    // staple a response that does not say "good" (it logs the status and staples nothing),
    // so clients asking for a staple get none, rather than the old "good" one.
    let nginx = Nginx::start(tmp.path(), "fetching-after-revocation", &fetching);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = nginx.s_client_status(&chain);
        assert!(!out.contains("Cert Status: good"), "{out}");
        if nginx
            .error_log()
            .contains("certificate status \"revoked\" in the OCSP response")
        {
            break;
        }
        assert!(out.contains("OCSP response: no response sent"), "{out}");
        assert!(
            Instant::now() < deadline,
            "nginx never fetched the revoked status:\n{}",
            nginx.error_log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Later handshakes still get no staple: nginx keeps answering without one.
    for _ in 0..3 {
        let out = nginx.s_client_status(&chain);
        assert!(out.contains("OCSP response: no response sent"), "{out}");
    }
    drop(nginx);

    // (iii) The revoked staple from `signet staple`, served from a file, reaches the client.
    let from_file = format!(
        "{tls}
        ssl_stapling on;
        ssl_stapling_file {file};",
        file = p(&revoked),
    );
    let nginx = Nginx::start(tmp.path(), "file-revoked", &from_file);
    let out = nginx.s_client_status(&chain);
    assert!(
        out.contains("OCSP Response Status: successful (0x0)"),
        "{out}"
    );
    assert!(out.contains("Cert Status: revoked"), "{out}");
    assert!(out.contains("Revocation Reason: keyCompromise"), "{out}");
    drop(nginx);
}

/// A rustls client, with `client`'s certificate and key if given, asks nginx for `/`:
/// Ok((status, body)) or the connection error.
fn mtls_get(port: u16, chain: &Path, client: Option<&Issued>) -> Result<(u16, String), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let root = std::fs::read(chain).unwrap();
    use rustls::pki_types::pem::PemObject;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&root) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let tls = match client {
        Some(c) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(&c.bundle)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&c.key).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("web.internal", ([127, 0, 0, 1], port).into())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = http
            .get(format!("https://web.internal:{port}/"))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| format!("{e:?}"))?;
        Ok((status, body))
    })
}

#[test]
fn nginx_mtls_refuses_a_revoked_client_certificate_by_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start(tmp.path());
    let dir = tmp.path().join("mtls");
    std::fs::create_dir(&dir).unwrap();
    let chain = ca.chain(&dir);
    let web = ca.issue(&dir, "web.internal", "server");
    let alice = ca.issue(&dir, "alice.internal", "client");
    let mallory = ca.issue(&dir, "mallory.internal", "client");
    ca.revoke(&mallory.serial);
    let issuing_crl = ca.crl_pem(&chain, &dir, &[&mallory.serial]);

    let server = |crl: &Path| {
        format!(
            "ssl_certificate {bundle};
        ssl_certificate_key {key};
        ssl_verify_client on;
        ssl_client_certificate {chain};
        ssl_verify_depth 2;
        ssl_crl {crl};",
            bundle = p(&web.bundle),
            key = p(&web.key),
            chain = p(&chain),
            crl = p(crl),
        )
    };

    // nginx turns on X509_V_FLAG_CRL_CHECK_ALL with ssl_crl: every certificate in the chain
    // needs a CRL from its issuer, the issuing CA's from the root too. With the issuing
    // CA's CRL alone, even a good client is refused ("unable to get certificate CRL").
    let only_issuing = dir.join("only-issuing.crl.pem");
    std::fs::write(&only_issuing, &issuing_crl).unwrap();
    let nginx = Nginx::start(tmp.path(), "crl-issuing-only", &server(&only_issuing));
    assert_refused(mtls_get(nginx.port, &chain, Some(&alice)));
    assert!(
        nginx
            .error_log()
            .contains("client SSL certificate verify error: (3:unable to get certificate CRL)"),
        "{}",
        nginx.error_log()
    );
    drop(nginx);

    // With the root's CRL as well, exactly as the responder serves both at /crl/chain.pem:
    // the good client gets 200, the revoked one nginx's 400 "The SSL certificate error", the
    // reason in the error log; no certificate, 400 too.
    let both = dir.join("both.crl.pem");
    std::fs::write(&both, ca.chain_crl_pem(&chain, &dir, &[&mallory.serial])).unwrap();
    let nginx = Nginx::start(tmp.path(), "crl-full", &server(&both));
    assert_eq!(
        mtls_get(nginx.port, &chain, Some(&alice)),
        Ok((200, "hello from nginx\n".to_string())),
        "{}",
        nginx.error_log()
    );
    assert_refused(mtls_get(nginx.port, &chain, Some(&mallory)));
    assert!(
        nginx
            .error_log()
            .contains("client SSL certificate verify error: (23:certificate revoked)"),
        "{}",
        nginx.error_log()
    );
    let (status, body) = mtls_get(nginx.port, &chain, None).unwrap();
    assert_eq!(status, 400);
    assert!(
        body.contains("No required SSL certificate was sent"),
        "{body}"
    );
    // Revoking alice and reloading the fresh CRL shuts her out too.
    ca.revoke(&alice.serial);
    let both = dir.join("both-2.crl.pem");
    std::fs::write(
        &both,
        ca.chain_crl_pem(&chain, &dir, &[&mallory.serial, &alice.serial]),
    )
    .unwrap();
    drop(nginx);
    let nginx = Nginx::start(tmp.path(), "crl-full-2", &server(&both));
    assert_refused(mtls_get(nginx.port, &chain, Some(&alice)));
    assert_refused(mtls_get(nginx.port, &chain, Some(&mallory)));
}

/// After `signet ca new-issuing`, nginx with `ssl_crl` on the responder's `/crl/chain.pem`
/// (the new issuing CA's CRL, the old one's, the root's) still accepts a client certificate
/// of the old issuing CA and one of the new, and refuses the old one once it is revoked.
#[test]
fn nginx_mtls_accepts_both_issuing_cas_across_a_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start(tmp.path());
    let dir = tmp.path().join("rotation");
    std::fs::create_dir(&dir).unwrap();
    let web = ca.issue(&dir, "web.internal", "server");
    let alice = ca.issue(&dir, "alice.internal", "client");
    let ca = ca.new_issuing(tmp.path());
    let bob = ca.issue(&dir, "bob.internal", "client");
    let root = ca.data.join("root_ca.crt");

    let chain_crls = |listing: Option<&str>| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (status, _, body) = http_get(ca.ocsp_port, "/crl/chain.pem").unwrap();
            assert_eq!(status, 200);
            let body = String::from_utf8(body).unwrap();
            // The old CA's CRL joins once the responder's watch loop has loaded it.
            if body.matches("-----BEGIN X509 CRL-----").count() < 3 {
                assert!(Instant::now() < deadline, "never three CRLs: {body}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            let file = dir.join("chain-crls.pem");
            std::fs::write(&file, &body).unwrap();
            // `openssl crl` reads one CRL per file.
            let mut listed = String::new();
            for (i, block) in body.split_inclusive("-----END X509 CRL-----\n").enumerate() {
                let one = dir.join(format!("chain-crl-{i}.pem"));
                std::fs::write(&one, block).unwrap();
                listed.push_str(&openssl_text(&["crl", "-in", p(&one), "-noout", "-text"]));
            }
            if listing.is_none_or(|s| listed.to_ascii_lowercase().contains(s)) {
                return file;
            }
            assert!(Instant::now() < deadline, "never listed {listing:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let server = |crl: &Path| {
        format!(
            "ssl_certificate {bundle};
        ssl_certificate_key {key};
        ssl_verify_client on;
        ssl_client_certificate {root};
        ssl_verify_depth 2;
        ssl_crl {crl};",
            bundle = p(&web.bundle),
            key = p(&web.key),
            root = p(&root),
            crl = p(crl),
        )
    };
    let crls = chain_crls(None);
    let nginx = Nginx::start(tmp.path(), "rotation", &server(&crls));
    for client in [&alice, &bob] {
        assert_eq!(
            mtls_get(nginx.port, &root, Some(client)),
            Ok((200, "hello from nginx\n".to_string())),
            "{}",
            nginx.error_log()
        );
    }
    drop(nginx);

    ca.revoke(&alice.serial);
    let crls = chain_crls(Some(&alice.serial));
    let nginx = Nginx::start(tmp.path(), "rotation-2", &server(&crls));
    assert_refused(mtls_get(nginx.port, &root, Some(&alice)));
    assert!(
        nginx
            .error_log()
            .contains("client SSL certificate verify error: (23:certificate revoked)"),
        "{}",
        nginx.error_log()
    );
    assert_eq!(
        mtls_get(nginx.port, &root, Some(&bob)),
        Ok((200, "hello from nginx\n".to_string()))
    );
}

/// nginx completes the handshake and answers 400 "The SSL certificate error".
fn assert_refused(got: Result<(u16, String), String>) {
    let (status, body) = got.unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("The SSL certificate error"), "{body}");
}

/// `GET path` on `port`: (status, ETag) once it answers 200, with the body's CRL Number as
/// openssl reads it (the body written to `file`, DER or PEM by `der`).
fn fetch_crl(port: u16, path: &str, file: &Path, root: &Path, der: bool) -> (String, String) {
    let (status, head, body) = http_get(port, path).unwrap();
    assert_eq!(status, 200, "{path}: {head}");
    let want = if der {
        "content-type: application/pkix-crl"
    } else {
        "content-type: application/x-pem-file"
    };
    assert!(head.contains(want), "{head}");
    assert!(head.contains("cache-control: max-age="), "{head}");
    assert!(head.contains("last-modified: "), "{head}");
    let etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    std::fs::write(file, &body).unwrap();
    let mut args = vec![
        "crl",
        "-in",
        p(file),
        "-CAfile",
        p(root),
        "-verify",
        "-noout",
    ];
    if der {
        args.extend(["-inform", "DER"]);
    }
    args.push("-crlnumber");
    let out = openssl_text(&args);
    assert!(out.contains("verify OK"), "{out}");
    let number = out
        .lines()
        .find_map(|l| l.strip_prefix("crlNumber="))
        .unwrap()
        .trim()
        .to_string();
    (etag, number)
}

/// `If-None-Match: etag` on `path`: the status.
fn conditional_status(port: u16, path: &str, etag: &str) -> u16 {
    let (status, _, body) =
        http_get_with(port, path, &format!("If-None-Match: {etag}\r\n")).unwrap();
    if status == 304 {
        assert!(body.is_empty());
    }
    status
}

#[test]
fn the_root_crl_is_served_with_etags_and_replaced_by_ca_root_crl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start(tmp.path());
    let root = ca.data.join("root_ca.crt");
    let dir = tmp.path().join("root-crl");
    std::fs::create_dir(&dir).unwrap();
    let port = ca.ocsp_port;

    // init's CRL, number 1, in both forms, with ETags that give 304.
    let der_file = dir.join("root.crl");
    let (etag, number) = fetch_crl(port, "/crl/root.crl", &der_file, &root, true);
    assert_eq!(number, "0x01");
    let (pem_etag, _) = fetch_crl(port, "/crl/root.pem", &dir.join("root.pem"), &root, false);
    assert_ne!(etag, pem_etag);
    assert_eq!(
        std::fs::read_to_string(dir.join("root.pem")).unwrap(),
        std::fs::read_to_string(ca.data.join("root_ca.crl")).unwrap()
    );
    assert_eq!(conditional_status(port, "/crl/root.crl", &etag), 304);
    assert_eq!(conditional_status(port, "/crl/root.pem", &pem_etag), 304);
    assert_eq!(conditional_status(port, "/crl/root.crl", "\"other\""), 200);
    let (status, head, chain) = http_get(port, "/crl/chain.pem").unwrap();
    assert_eq!(status, 200, "{head}");
    let chain_etag = head
        .lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(conditional_status(port, "/crl/chain.pem", &chain_etag), 304);
    assert!(
        String::from_utf8(chain)
            .unwrap()
            .ends_with(&std::fs::read_to_string(ca.data.join("root_ca.crl")).unwrap())
    );

    // `signet ca root-crl` (offline, with the root key) stores number 2; the running
    // responder picks it up by itself, and the old ETags no longer match.
    let o = signet(&["ca", "root-crl", "--dir", p(&ca.data), "--validity", "30d"]);
    assert!(o.status.success(), "{}", text(&o));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (new_etag, number) = fetch_crl(port, "/crl/root.crl", &der_file, &root, true);
        if number == "0x02" {
            assert_ne!(new_etag, etag);
            break;
        }
        assert!(Instant::now() < deadline, "the responder kept CRL {number}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(conditional_status(port, "/crl/root.crl", &etag), 200);
    assert_eq!(conditional_status(port, "/crl/chain.pem", &chain_etag), 200);
    let o = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&der_file),
        "-noout",
        "-nextupdate",
    ]);
    assert!(o.status.success(), "{}", text(&o));

    // A standalone `signet responder` on the same database reads the root certificate from
    // the data directory and serves the same CRL; one without a root certificate answers
    // 404 for it, and says so once at start.
    let sqlite = format!("sqlite://{}", ca.data.join("signet.db").display());
    let mut standalone = Server::spawn_responder(tmp.path(), &[], &["--dir", p(&ca.data)]);
    standalone.ready_blocking();
    let with_root = standalone.ocsp_port();
    wait_ready(&mut standalone, with_root, "/healthz");
    let (_, number) = fetch_crl(with_root, "/crl/root.crl", &dir.join("s.crl"), &root, true);
    assert_eq!(number, "0x02");
    assert_eq!(
        std::fs::read(dir.join("s.crl")).unwrap(),
        std::fs::read(&der_file).unwrap()
    );
    drop(standalone);

    let only_issuing = tmp.path().join("only-issuing");
    std::fs::create_dir(&only_issuing).unwrap();
    std::fs::copy(
        ca.data.join("issuing_ca.crt"),
        only_issuing.join("issuing_ca.crt"),
    )
    .unwrap();
    let mut standalone = Server::spawn_responder(
        tmp.path(),
        &[],
        &["--dir", p(&only_issuing), "--database-url", &sqlite],
    );
    standalone.ready_blocking();
    let no_root = standalone.ocsp_port();
    wait_ready(&mut standalone, no_root, "/healthz");
    for path in ["/crl/root.crl", "/crl/root.pem", "/crl/chain.pem"] {
        assert_eq!(http_get(no_root, path).unwrap().0, 404, "{path}");
    }
    assert_eq!(http_get(no_root, "/crl/issuing.crl").unwrap().0, 200);
    assert!(
        standalone.log().contains("no root CA certificate"),
        "{}",
        standalone.log()
    );
    // An explicit --root-cert that does not exist is an error, not a silent 404.
    let o = signet(&[
        "responder",
        "--listen",
        "127.0.0.1:0",
        "--dir",
        p(&only_issuing),
        "--database-url",
        &sqlite,
        "--root-cert",
        p(&only_issuing.join("missing.crt")),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("missing.crt"), "{}", text(&o));
}

/// The one URI of `leaf`'s extension `ext` (crlDistributionPoints, freshestCRL), as openssl
/// prints it.
fn extension_uri(leaf: &Path, ext: &str) -> String {
    let out = openssl_text(&["x509", "-in", p(leaf), "-noout", "-ext", ext]);
    let uris: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("URI:"))
        .collect();
    assert_eq!(uris.len(), 1, "{out}");
    uris[0].to_string()
}

/// The path of an http URL on the responder.
fn url_path(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_string()
}

/// `der` holds `uri` as a `[6] IA5String` (a GeneralName URI), byte for byte.
fn holds_uri(der: &[u8], uri: &str) -> bool {
    let mut tlv = vec![0x86, u8::try_from(uri.len()).unwrap()];
    tlv.extend_from_slice(uri.as_bytes());
    der.windows(tlv.len()).any(|w| w == tlv)
}

/// The CRL at `path` (PEM and DER) once it lists every serial in `listing`: (PEM file, DER,
/// `openssl crl -text`).
fn crl_listing(
    port: u16,
    path: &str,
    dir: &Path,
    chain: &Path,
    listing: &[&str],
) -> (PathBuf, Vec<u8>, String) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let pem_path = path.replace(".crl", ".pem");
    let file = dir.join(format!(
        "{}.pem",
        pem_path.trim_start_matches('/').replace('/', "_")
    ));
    loop {
        let (status, head, body) = http_get(port, &pem_path).unwrap();
        if status == 200 {
            std::fs::write(&file, &body).unwrap();
            let text = openssl_text(&[
                "crl",
                "-in",
                p(&file),
                "-CAfile",
                p(chain),
                "-verify",
                "-noout",
                "-text",
            ]);
            assert!(text.contains("verify OK"), "{text}");
            let lower = text.to_ascii_lowercase();
            if listing.iter().all(|s| lower.contains(s)) {
                let (status, head, der) = http_get(port, path).unwrap();
                assert_eq!(status, 200, "{head}");
                return (file, der, text);
            }
        } else {
            assert_eq!(status, 404, "{head}");
        }
        assert!(Instant::now() < deadline, "{path} never listed {listing:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `openssl verify -crl_check` of `leaf` against `chain` with the CRL files `crls`: its
/// whole output (success or not).
fn verify_with_crls(chain: &Path, leaf: &Path, crls: &[&Path], extra: &[&str]) -> String {
    let mut args = vec!["verify", "-crl_check", "-CAfile", p(chain)];
    args.extend_from_slice(extra);
    for c in crls {
        args.extend(["-CRLfile", p(c)]);
    }
    args.push(p(leaf));
    let o = openssl(&args);
    text(&o)
}

/// Partitioned CRLs end to end (issue 19): with `[crl] shards = 4`, each certificate's CRL
/// distribution point names its shard, whose CRL carries that URL byte for byte as a
/// critical Issuing Distribution Point with onlyContainsUserCerts; `openssl verify
/// -crl_check` with the shard a certificate names decides, and a shard of another
/// certificate is out of scope for it; nginx with `ssl_crl` over `/crl/chain.pem` (every
/// shard and the root's CRL in one file) or over the shard files alone accepts a client of
/// one shard and refuses a revoked one of another; shards have ETags and 304s and are
/// listed in `/crl/index.json`.
#[test]
fn nginx_and_openssl_check_clients_against_their_crl_shards() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_with_crl(tmp.path(), "shards = 4\ndelta = false");
    let dir = tmp.path().join("shards");
    std::fs::create_dir(&dir).unwrap();
    let chain = ca.chain(&dir);
    let root_crl = ca.data.join("root_ca.crl");
    let web = ca.issue(&dir, "web.internal", "server");
    // Two clients whose CDPs name different shards.
    let alice = ca.issue(&dir, "alice.internal", "client");
    let alice_cdp = extension_uri(&alice.leaf, "crlDistributionPoints");
    let mut mallory = None;
    for i in 0..40 {
        let c = ca.issue(&dir, &format!("mallory{i}.internal"), "client");
        if extension_uri(&c.leaf, "crlDistributionPoints") != alice_cdp {
            mallory = Some(c);
            break;
        }
    }
    let mallory = mallory.expect("40 certificates all in alice's shard");
    let mallory_cdp = extension_uri(&mallory.leaf, "crlDistributionPoints");
    let kid_prefix = format!("http://127.0.0.1:{}/crl/shard/", ca.ocsp_port);
    for cdp in [&alice_cdp, &mallory_cdp] {
        let rest = cdp
            .strip_prefix(&kid_prefix)
            .unwrap_or_else(|| panic!("{cdp}"));
        let (kid, file) = rest.split_once('/').unwrap();
        assert_eq!(kid.len(), 16, "{cdp}");
        let n: u32 = file.strip_suffix(".crl").unwrap().parse().unwrap();
        assert!(n < 4, "{cdp}");
    }

    ca.revoke(&mallory.serial);
    let (mallory_crl, mallory_der, text_m) = crl_listing(
        ca.ocsp_port,
        &url_path(&mallory_cdp),
        &dir,
        &chain,
        &[&mallory.serial],
    );
    let (alice_crl, alice_der, text_a) =
        crl_listing(ca.ocsp_port, &url_path(&alice_cdp), &dir, &chain, &[]);
    assert!(
        !text_a.to_ascii_lowercase().contains(&mallory.serial),
        "{text_a}"
    );
    for (text, cdp) in [(&text_m, &mallory_cdp), (&text_a, &alice_cdp)] {
        assert!(
            text.contains("X509v3 Issuing Distribution Point: critical"),
            "{text}"
        );
        assert!(text.contains(&format!("URI:{cdp}")), "{text}");
        assert!(text.contains("Only User Certificates"), "{text}");
    }
    // The certificate's CDP and its shard's IDP: the same URI bytes.
    for (leaf, der, cdp) in [
        (&alice.leaf, &alice_der, &alice_cdp),
        (&mallory.leaf, &mallory_der, &mallory_cdp),
    ] {
        let leaf_der = std::fs::read(leaf).unwrap();
        let leaf_der = pem_rfc7468_der(&leaf_der);
        assert!(holds_uri(&leaf_der, cdp), "{cdp}");
        assert!(holds_uri(der, cdp), "{cdp}");
    }

    // openssl verify -crl_check with the shard each certificate names (and the root's CRL
    // for -crl_check_all).
    let ok = verify_with_crls(
        &chain,
        &alice.leaf,
        &[&alice_crl, &root_crl],
        &["-crl_check_all"],
    );
    assert!(ok.contains(": OK"), "{ok}");
    let revoked = verify_with_crls(
        &chain,
        &mallory.leaf,
        &[&mallory_crl, &root_crl],
        &["-crl_check_all"],
    );
    assert!(revoked.contains("certificate revoked"), "{revoked}");
    // Alice's shard does not cover mallory: its IDP is not her CDP, and OpenSSL says so.
    let out_of_scope = verify_with_crls(&chain, &mallory.leaf, &[&alice_crl], &[]);
    assert!(
        out_of_scope.contains("different CRL scope"),
        "{out_of_scope}"
    );

    // nginx, ssl_crl over /crl/chain.pem: every shard and the root's CRL in one file.
    let server = |crl: &Path| {
        format!(
            "ssl_certificate {bundle};
        ssl_certificate_key {key};
        ssl_verify_client on;
        ssl_client_certificate {chain};
        ssl_verify_depth 2;
        ssl_crl {crl};",
            bundle = p(&web.bundle),
            key = p(&web.key),
            chain = p(&chain),
            crl = p(crl),
        )
    };
    let (status, head, body) = http_get(ca.ocsp_port, "/crl/chain.pem").unwrap();
    assert_eq!(status, 200, "{head}");
    let body = String::from_utf8(body).unwrap();
    assert_eq!(
        body.matches("-----BEGIN X509 CRL-----").count(),
        4 + 1,
        "{body}"
    );
    let chain_crl = dir.join("chain.crl.pem");
    std::fs::write(&chain_crl, &body).unwrap();
    let nginx = Nginx::start(tmp.path(), "crl-shards-chain", &server(&chain_crl));
    assert_eq!(
        mtls_get(nginx.port, &chain, Some(&alice)),
        Ok((200, "hello from nginx\n".to_string())),
        "{}",
        nginx.error_log()
    );
    assert_refused(mtls_get(nginx.port, &chain, Some(&mallory)));
    assert!(
        nginx
            .error_log()
            .contains("client SSL certificate verify error: (23:certificate revoked)"),
        "{}",
        nginx.error_log()
    );
    drop(nginx);
    // ssl_crl over the two shard files and the root's CRL, nothing else.
    let shards_only = dir.join("two-shards.crl.pem");
    std::fs::write(
        &shards_only,
        [&alice_crl, &mallory_crl, &root_crl]
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap())
            .collect::<String>(),
    )
    .unwrap();
    let nginx = Nginx::start(tmp.path(), "crl-shards-files", &server(&shards_only));
    assert_eq!(
        mtls_get(nginx.port, &chain, Some(&alice)),
        Ok((200, "hello from nginx\n".to_string())),
        "{}",
        nginx.error_log()
    );
    assert_refused(mtls_get(nginx.port, &chain, Some(&mallory)));
    drop(nginx);

    // ETag and 304 on a shard; the index lists every shard with its URL, size and SHA-256.
    let path = url_path(&alice_cdp);
    let (etag, _) = fetch_crl(ca.ocsp_port, &path, &dir.join("alice.der"), &chain, true);
    assert_eq!(conditional_status(ca.ocsp_port, &path, &etag), 304);
    let (status, head, index) = http_get(ca.ocsp_port, "/crl/index.json").unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    let index: serde_json::Value = serde_json::from_slice(&index).unwrap();
    let crls = index["crls"].as_array().unwrap();
    let shards: Vec<&serde_json::Value> = crls.iter().filter(|c| c["shard"].is_u64()).collect();
    assert_eq!(shards.len(), 4, "{index}");
    for (cdp, der) in [(&alice_cdp, &alice_der), (&mallory_cdp, &mallory_der)] {
        let entry = shards.iter().find(|c| c["url"] == cdp.as_str()).unwrap();
        assert_eq!(entry["size"].as_u64(), Some(der.len() as u64));
        let sha = ring::digest::digest(&ring::digest::SHA256, der);
        assert_eq!(entry["sha256"].as_str(), Some(hex::encode(sha).as_str()));
        assert_eq!(entry["delta"], false);
    }
    assert!(crls.iter().any(|c| c["url"] == "/crl/root.crl"), "{index}");
}

/// Delta CRLs (issue 19, RFC 5280 5.2.4) with `[crl] delta = true`: new certificates carry a
/// Freshest CRL pointer to the delta of the CRL their CDP names; a revocation re-signs only
/// the delta (critical Delta CRL Indicator naming the base), so `openssl verify -crl_check
/// -use_deltas` with base and delta refuses the certificate while the base alone still
/// passes it.
#[test]
fn openssl_uses_delta_crls_with_use_deltas() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = Ca::start_with_crl(tmp.path(), "shards = 2\ndelta = true");
    let dir = tmp.path().join("deltas");
    std::fs::create_dir(&dir).unwrap();
    let chain = ca.chain(&dir);
    let bob = ca.issue(&dir, "bob.internal", "client");
    let cdp = extension_uri(&bob.leaf, "crlDistributionPoints");
    let freshest = extension_uri(&bob.leaf, "freshestCRL");
    assert_eq!(freshest, cdp.replace(".crl", "-delta.crl"));

    let (base, _, base_text) = crl_listing(ca.ocsp_port, &url_path(&cdp), &dir, &chain, &[]);
    assert!(base_text.contains("X509v3 Freshest CRL"), "{base_text}");
    assert!(
        base_text.contains(&format!("URI:{freshest}")),
        "{base_text}"
    );
    let before = verify_with_crls(&chain, &bob.leaf, &[&base], &["-use_deltas"]);
    assert!(before.contains(": OK"), "{before}");

    ca.revoke(&bob.serial);
    let (delta, _, delta_text) = crl_listing(
        ca.ocsp_port,
        &url_path(&freshest),
        &dir,
        &chain,
        &[&bob.serial],
    );
    assert!(
        delta_text.contains("X509v3 Delta CRL Indicator: critical"),
        "{delta_text}"
    );
    assert!(delta_text.contains(&format!("URI:{cdp}")), "{delta_text}");
    // The base is not re-signed on a revocation: it still does not list bob.
    let (base_again, _, base_text) = crl_listing(ca.ocsp_port, &url_path(&cdp), &dir, &chain, &[]);
    assert!(
        !base_text.to_ascii_lowercase().contains(&bob.serial),
        "{base_text}"
    );
    let with_delta = verify_with_crls(&chain, &bob.leaf, &[&base_again, &delta], &["-use_deltas"]);
    assert!(with_delta.contains("certificate revoked"), "{with_delta}");
    let base_only = verify_with_crls(&chain, &bob.leaf, &[&base_again], &["-use_deltas"]);
    assert!(base_only.contains(": OK"), "{base_only}");
}

/// The DER of the first PEM block in `pem`.
fn pem_rfc7468_der(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let b64: String = text
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}
