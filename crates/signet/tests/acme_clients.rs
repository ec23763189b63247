//! ACME with the clients teams already run, each a real program from Debian's packages,
//! against a real `signet serve` on loopback ports in a temporary directory:
//!
//! - lego: http-01, tls-alpn-01, dns-01, and a wildcard (with its base name) through dns-01;
//!   `renew` and `revoke`;
//! - certbot: `certonly --standalone` (http-01), `renew --force-renewal`, `revoke`; and an
//!   EAB-required provisioner, refused without `--eab-kid/--eab-hmac-key`, accepted with them;
//! - Caddy: serves HTTPS with a certificate it obtained from Signet by itself, then renews it
//!   (the provisioner's lifetime is one minute, so Caddy's renewal window comes quickly).
//!
//! Every validation resolves names through `pebble-challtestsrv` (Debian's `pebble`), the
//! provisioner's `--resolver`: its A records default to 127.0.0.1, and lego's dns-01 sets
//! TXT records through its management API. openssl verifies every certificate a client
//! obtained against Signet's root for TLS servers (`-purpose sslserver`), and the database
//! (read with `sqlite3`) shows it recorded under the ACME account. Every child process is
//! killed when its guard drops, so also when an assertion fails.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{Server, Watched, free_port, openssl, p, signet_in, sqlite3, text};

/// How long one client run (an order from account to certificate) may take.
const CLIENT_LIMIT: Duration = Duration::from_secs(40);

/// A loopback port for a client to listen on later (certbot's and lego's http-01 and
/// tls-alpn-01 servers, Caddy's sites): free now, and outside the kernel's ephemeral range
/// (`ip_local_port_range`), from which `free_port` (a bind to port 0) draws. A port of that
/// range, released by the probe and bound by the client seconds later, may meanwhile have
/// become the local port of some outgoing connection (every test running in parallel
/// makes many, and so do the servers under test) or of another test's `bind(0)`; the
/// client then cannot bind it and the run fails. Ports below the range are never handed
/// out by the kernel; picking them at random keeps two tests apart.
fn client_port() -> u16 {
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_100));
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761)
        ^ CALLS
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .wrapping_mul(40_503);
    // Never the same port twice in one process.
    static CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    seed |= 1;
    for _ in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let port = from + u16::try_from(seed % u32::from(to - from)).unwrap();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.push(port);
            return port;
        }
    }
    free_port()
}

/// `name` on PATH or in the usual Debian directories, or a panic naming the package.
fn tool(name: &str, package: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} not found on PATH, in /usr/bin or /usr/sbin: apt-get install -y {package} (.ci/run does)")
        })
}

/// Runs `cmd` (stdin closed), killing it after `limit`; its status and output.
fn run(cmd: &mut Command, limit: Duration) -> Output {
    let started = Instant::now();
    let mut child = Watched::spawn(cmd);
    child.close_stdin();
    let out = child.finish(limit);
    assert!(
        started.elapsed() < limit,
        "{cmd:?} did not finish within {limit:?}:\n{}",
        text(&out)
    );
    out
}

// ---------------------------------------------------------------------------------------
// pebble-challtestsrv: the DNS server of every validation

/// A `pebble-challtestsrv` serving only DNS (A records default to 127.0.0.1, no AAAA) and
/// its management API, on loopback. Killed on drop.
struct ChallTestSrv {
    child: Child,
    dns: u16,
    management: u16,
}

impl ChallTestSrv {
    fn start() -> ChallTestSrv {
        let (dns, management) = (client_port(), client_port());
        let child = Command::new(tool("pebble-challtestsrv", "pebble"))
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-management", &format!("127.0.0.1:{management}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-defaultIPv6", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv starts");
        let srv = ChallTestSrv {
            child,
            dns,
            management,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in [management, dns] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "pebble-challtestsrv did not open port {port}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        srv
    }

    fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.dns)
    }

    fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.management)
    }
}

impl Drop for ChallTestSrv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------
// The CA

/// A running CA with one ACME provisioner.
struct Ca {
    data: PathBuf,
    server: Server,
    provisioner: String,
    /// What `provisioner add acme` printed (the EAB key with `--eab`).
    printed: String,
}

impl Ca {
    /// `signet init`, `signet provisioner add acme --name NAME` resolving through `dns`,
    /// validating on the given ports and allowed to reach loopback, with `extra` flags;
    /// `wildcards` allows wildcard names in its policy; then `signet serve`.
    fn start(
        tmp: &Path,
        name: &str,
        dns: &ChallTestSrv,
        http01: u16,
        tls_alpn01: u16,
        extra: &[&str],
        wildcards: bool,
    ) -> Ca {
        let data = tmp.join("data");
        let o = signet_in(tmp, &[], &["init", "--dir", p(&data)], "");
        assert!(o.status.success(), "{}", text(&o));
        let (http01, tls_alpn01, resolver) =
            (http01.to_string(), tls_alpn01.to_string(), dns.resolver());
        let mut args = vec![
            "provisioner",
            "add",
            "acme",
            "--dir",
            p(&data),
            "--name",
            name,
            "--resolver",
            &resolver,
            "--http01-port",
            &http01,
            "--tls-alpn01-port",
            &tls_alpn01,
            "--validation-networks",
            "127.0.0.0/8",
        ];
        args.extend_from_slice(extra);
        let o = signet_in(tmp, &[], &args, "");
        assert!(o.status.success(), "{}", text(&o));
        let printed = String::from_utf8_lossy(&o.stdout).to_string();
        if wildcards {
            let path = data.join("signet.toml");
            let mut doc: toml_edit::DocumentMut =
                fs::read_to_string(&path).unwrap().parse().unwrap();
            let provisioners = doc["provisioners"].as_array_of_tables_mut().unwrap();
            let entry = provisioners
                .iter_mut()
                .find(|t| t["name"].as_str() == Some(name))
                .unwrap();
            entry["policy"]["allow_wildcard_names"] = toml_edit::value(true);
            fs::write(&path, doc.to_string()).unwrap();
        }
        let server = Server::start_blocking(tmp, &[], &["--dir", p(&data)]);
        Ca {
            data,
            server,
            provisioner: name.to_string(),
            printed,
        }
    }

    /// A client's output and the end of the server's log, for assertion messages.
    fn explain(&self, o: &Output) -> String {
        format!("{}\nsignet serve:\n{}", text(o), self.server.log_tail())
    }

    fn directory(&self) -> String {
        self.server
            .url(&format!("/acme/{}/directory", self.provisioner))
    }

    fn root(&self) -> PathBuf {
        self.data.join("root_ca.crt")
    }

    fn db(&self) -> PathBuf {
        self.data.join("signet.db")
    }

    /// The serials (lowercase hex, as the database keeps them) and SANs of the certificates
    /// this provisioner's accounts were issued, oldest first.
    fn issued(&self) -> Vec<(String, String)> {
        sqlite3(
            &self.db(),
            &format!(
                "SELECT serial, sans FROM certificates WHERE requester LIKE 'acme:{}:%' ORDER BY not_before, rowid",
                self.provisioner
            ),
        )
        .into_iter()
        .map(|row| {
            let (serial, sans) = row.split_once('|').unwrap();
            (hex_serial(serial), sans.to_string())
        })
        .collect()
    }
}

// ---------------------------------------------------------------------------------------
// openssl, the independent judge

/// The PEM certificates in `pem`, in order.
fn pem_certs(pem: &str) -> Vec<String> {
    let mut certs = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end_marker = "-----END CERTIFICATE-----";
        let end = rest[start..].find(end_marker).unwrap() + start + end_marker.len();
        certs.push(format!("{}\n", &rest[start..end]));
        rest = &rest[end..];
    }
    certs
}

/// `openssl x509 -noout ARGS` of the certificate in `pem`, its output.
fn x509(tmp: &Path, pem: &str, args: &[&str]) -> String {
    let file = tmp.join("x509-input.pem");
    fs::write(&file, pem).unwrap();
    let mut all = vec!["x509", "-in", p(&file), "-noout"];
    all.extend_from_slice(args);
    let o = openssl(&all);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// `openssl verify -purpose sslserver` of the leaf of `chain_pem` (leaf first, then the
/// intermediates) against Signet's root only; the leaf must name every one of `names` as a
/// DNS SAN and be issued by Signet's issuing CA. Returns the leaf's serial (lowercase hex).
fn openssl_verifies(tmp: &Path, ca: &Ca, chain_pem: &str, names: &[&str]) -> String {
    let certs = pem_certs(chain_pem);
    assert!(
        certs.len() >= 2,
        "a leaf and the issuing CA expected:\n{chain_pem}"
    );
    let leaf = tmp.join("verify-leaf.pem");
    let untrusted = tmp.join("verify-untrusted.pem");
    fs::write(&leaf, &certs[0]).unwrap();
    fs::write(&untrusted, certs[1..].concat()).unwrap();
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&ca.root()),
        "-untrusted",
        p(&untrusted),
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
    let sans = x509(tmp, &certs[0], &["-ext", "subjectAltName"]);
    for name in names {
        assert!(
            sans.split([',', '\n'])
                .any(|s| s.trim() == format!("DNS:{name}")),
            "{name} not in the leaf's SANs: {sans}"
        );
    }
    let issuer = x509(tmp, &certs[0], &["-issuer"]);
    let issuing = x509(
        tmp,
        &fs::read_to_string(ca.data.join("issuing_ca.crt")).unwrap(),
        &["-subject"],
    );
    assert_eq!(
        issuer.strip_prefix("issuer="),
        issuing.strip_prefix("subject="),
        "issued by Signet's issuing CA"
    );
    hex_serial(
        x509(tmp, &certs[0], &["-serial"])
            .strip_prefix("serial=")
            .unwrap(),
    )
}

/// A serial in hex as one spelling: lowercase, no leading zeros (openssl pads to whole
/// bytes, the database does not).
fn hex_serial(hex: &str) -> String {
    hex.trim().trim_start_matches('0').to_lowercase()
}

/// `openssl ocsp` asks Signet's responder about the leaf `cert` (issued by `issuer`); the
/// status line it prints.
fn ocsp_status(ca: &Ca, cert: &Path, issuer: &Path) -> String {
    let url = ca.server.ocsp_url("/ocsp");
    let o = openssl(&[
        "ocsp",
        "-issuer",
        p(issuer),
        "-cert",
        p(cert),
        "-url",
        &url,
        "-CAfile",
        p(&ca.root()),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Response verify OK"),
        "{}",
        text(&o)
    );
    out.lines()
        .find_map(|l| {
            l.split_once(": ")
                .map(|(_, status)| status.trim().to_string())
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------
// lego

/// `lego --server DIRECTORY ... ARGS COMMAND` (`run`, `renew`, `revoke` and their flags),
/// trusting Signet's root, its files under `tmp/lego`.
fn lego(tmp: &Path, ca: &Ca, args: &[&str], command: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(tool("lego", "lego"));
    cmd.current_dir(tmp)
        .env("HOME", tmp)
        .env("LEGO_CA_CERTIFICATES", ca.root())
        .args(["--server", &ca.directory()])
        .args(["--accept-tos", "--email", "ops@example.com"])
        .args(["--path", p(&tmp.join("lego"))])
        .args(args)
        .args(command);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd, CLIENT_LIMIT);
    assert!(o.status.success(), "{}", ca.explain(&o));
    o
}

/// The chain lego stored for `name` (leaf, then the issuing CA).
fn lego_chain(tmp: &Path, name: &str) -> String {
    let file = name.replace('*', "_");
    fs::read_to_string(tmp.join("lego/certificates").join(format!("{file}.crt"))).unwrap()
}

#[test]
fn lego_obtains_renews_and_revokes_through_http01_and_tls_alpn01() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let dns = ChallTestSrv::start();
    let (http01, tls_alpn01) = (client_port(), client_port());
    let ca = Ca::start(tmp, "lego", &dns, http01, tls_alpn01, &[], false);

    let name = "lego-http.signet.internal";
    lego(
        tmp,
        &ca,
        &[
            "--domains",
            name,
            "--http",
            "--http.port",
            &format!("127.0.0.1:{http01}"),
        ],
        &["run"],
        &[],
    );
    let serial = openssl_verifies(tmp, &ca, &lego_chain(tmp, name), &[name]);

    let name2 = "lego-tls.signet.internal";
    lego(
        tmp,
        &ca,
        &[
            "--domains",
            name2,
            "--tls",
            "--tls.port",
            &format!("127.0.0.1:{tls_alpn01}"),
        ],
        &["run"],
        &[],
    );
    let serial2 = openssl_verifies(tmp, &ca, &lego_chain(tmp, name2), &[name2]);

    // Both recorded under lego's account, each with its one name.
    let issued = ca.issued();
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(issued[0].0, serial);
    assert!(issued[0].1.contains(name), "{issued:?}");
    assert_eq!(issued[1].0, serial2);
    assert!(issued[1].1.contains(name2), "{issued:?}");
    // Which challenge each authorization was validated with.
    let validated = sqlite3(
        &ca.db(),
        "SELECT kind FROM acme_challenges WHERE status = 'valid' ORDER BY rowid",
    );
    assert_eq!(validated, ["http-01", "tls-alpn-01"]);

    // Renewal (a 24 h certificate is within lego's default 30 days), then revocation by the
    // account with a reason (superseded).
    let http = [
        "--domains",
        name,
        "--http",
        "--http.port",
        &format!("127.0.0.1:{http01}"),
    ];
    lego(tmp, &ca, &http, &["renew", "--no-random-sleep"], &[]);
    let renewed = openssl_verifies(tmp, &ca, &lego_chain(tmp, name), &[name]);
    assert_ne!(renewed, serial, "renewal issued a new certificate");
    lego(tmp, &ca, &http, &["revoke", "--reason", "4"], &[]);
    let revoked = sqlite3(
        &ca.db(),
        "SELECT serial, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL",
    );
    let revoked: Vec<String> = revoked
        .iter()
        .map(|row| {
            let (serial, reason) = row.split_once('|').unwrap();
            format!("{}|{reason}", hex_serial(serial))
        })
        .collect();
    assert_eq!(revoked, [format!("{renewed}|4")]);
}

#[test]
fn lego_obtains_through_dns01_and_a_wildcard() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let dns = ChallTestSrv::start();
    // Nothing answers on these ports: only dns-01 can succeed.
    let ca = Ca::start(tmp, "lego", &dns, free_port(), free_port(), &[], true);

    // lego's `exec` DNS provider runs this script to set and clear the TXT record, here
    // through pebble-challtestsrv's management API.
    let script = tmp.join("lego-dns.sh");
    fs::write(
        &script,
        format!(
            r#"#!/bin/sh
# lego exec DNS provider: $1 is present or cleanup, $2 the record's FQDN, $3 its value.
set -e
case "$1" in
present) exec curl -sf --max-time 5 -d "{{\"host\":\"$2\",\"value\":\"$3\"}}" {mgmt}/set-txt ;;
cleanup) exec curl -sf --max-time 5 -d "{{\"host\":\"$2\"}}" {mgmt}/clear-txt ;;
esac
"#,
            mgmt = dns.management_url()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let env = [
        ("EXEC_PATH", p(&script)),
        ("EXEC_PROPAGATION_TIMEOUT", "20"),
        ("EXEC_POLLING_INTERVAL", "1"),
        // The pause between two challenges with one TXT name (a wildcard and its base).
        ("EXEC_SEQUENCE_INTERVAL", "1"),
    ];
    let resolver = dns.resolver();
    // pebble-challtestsrv answers no SOA query, so lego cannot look for the zone's
    // authoritative servers: it checks the record through the resolver alone.
    let dns01 = [
        "--dns",
        "exec",
        "--dns.resolvers",
        resolver.as_str(),
        "--dns.disable-cp",
    ];

    let name = "lego-dns.signet.internal";
    let mut args = vec!["--domains", name];
    args.extend_from_slice(&dns01);
    lego(tmp, &ca, &args, &["run"], &env);
    let serial = openssl_verifies(tmp, &ca, &lego_chain(tmp, name), &[name]);

    // A wildcard and its base name in one order: two authorizations whose TXT records
    // share one name.
    let (wildcard, base) = ("*.wild.signet.internal", "wild.signet.internal");
    let mut args = vec!["--domains", wildcard, "--domains", base];
    args.extend_from_slice(&dns01);
    lego(tmp, &ca, &args, &["run"], &env);
    let serial2 = openssl_verifies(tmp, &ca, &lego_chain(tmp, wildcard), &[wildcard, base]);

    let issued = ca.issued();
    assert_eq!(issued.len(), 2, "{issued:?}");
    assert_eq!(issued[0].0, serial);
    assert_eq!(issued[1].0, serial2);
    assert!(
        issued[1].1.contains(wildcard) && issued[1].1.contains(base),
        "{issued:?}"
    );
    let validated = sqlite3(
        &ca.db(),
        "SELECT DISTINCT kind FROM acme_challenges WHERE status = 'valid'",
    );
    assert_eq!(validated, ["dns-01"]);
}

// ---------------------------------------------------------------------------------------
// certbot

/// `certbot ARGS` with its directories under `tmp/certbot`, trusting Signet's root.
fn certbot(tmp: &Path, ca: &Ca, args: &[&str]) -> Output {
    let mut cmd = certbot_command(tmp, ca, args);
    run(&mut cmd, CLIENT_LIMIT)
}

fn certbot_command(tmp: &Path, ca: &Ca, args: &[&str]) -> Command {
    let dir = tmp.join("certbot");
    let mut cmd = Command::new(tool("certbot", "certbot"));
    cmd.current_dir(tmp)
        .env("HOME", tmp)
        .env("REQUESTS_CA_BUNDLE", ca.root())
        .args(args)
        .args(["--server", &ca.directory()])
        .args(["--config-dir", p(&dir.join("config"))])
        .args(["--work-dir", p(&dir.join("work"))])
        .args(["--logs-dir", p(&dir.join("logs"))])
        .arg("--non-interactive");
    cmd
}

/// `certbot certonly --standalone` for `name`, answering http-01 on `port`, with `extra`.
fn certbot_certonly(tmp: &Path, ca: &Ca, name: &str, port: u16, extra: &[&str]) -> Output {
    let port = port.to_string();
    let mut args = vec![
        "certonly",
        "--standalone",
        "--http-01-address",
        "127.0.0.1",
        "--http-01-port",
        &port,
        "--agree-tos",
        "--register-unsafely-without-email",
        "-d",
        name,
    ];
    args.extend_from_slice(extra);
    certbot(tmp, ca, &args)
}

fn live(tmp: &Path, name: &str, file: &str) -> PathBuf {
    tmp.join("certbot/config/live").join(name).join(file)
}

#[test]
fn certbot_obtains_renews_and_revokes() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let dns = ChallTestSrv::start();
    let http01 = client_port();
    let ca = Ca::start(tmp, "certbot", &dns, http01, client_port(), &[], false);
    let name = "certbot.signet.internal";

    let o = certbot_certonly(tmp, &ca, name, http01, &[]);
    assert!(o.status.success(), "{}", ca.explain(&o));
    let fullchain = fs::read_to_string(live(tmp, name, "fullchain.pem")).unwrap();
    let first = openssl_verifies(tmp, &ca, &fullchain, &[name]);

    // Renewal: the same name again through the stored renewal configuration.
    let o = certbot(
        tmp,
        &ca,
        &["renew", "--force-renewal", "--no-random-sleep-on-renew"],
    );
    assert!(o.status.success(), "{}", ca.explain(&o));
    let fullchain = fs::read_to_string(live(tmp, name, "fullchain.pem")).unwrap();
    let second = openssl_verifies(tmp, &ca, &fullchain, &[name]);
    assert_ne!(first, second, "renewal issued a new certificate");
    let issued = ca.issued();
    let serials: Vec<&str> = issued.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(serials, [first.as_str(), second.as_str()]);
    // One account for both: the renewal reused certbot's stored account.
    assert_eq!(
        sqlite3(&ca.db(), "SELECT count(*) FROM acme_accounts"),
        ["1"]
    );

    // Revocation by the account, with a reason; OCSP then says revoked.
    let cert = live(tmp, name, "cert.pem");
    let chain = live(tmp, name, "chain.pem");
    assert_eq!(ocsp_status(&ca, &cert, &chain), "good");
    let o = certbot(
        tmp,
        &ca,
        &[
            "revoke",
            "--cert-path",
            p(&cert),
            "--reason",
            "keycompromise",
            "--no-delete-after-revoke",
        ],
    );
    assert!(o.status.success(), "{}", ca.explain(&o));
    let revoked = sqlite3(
        &ca.db(),
        "SELECT serial, revocation_reason FROM certificates WHERE revoked_at IS NOT NULL",
    );
    let revoked: Vec<String> = revoked
        .iter()
        .map(|row| {
            let (serial, reason) = row.split_once('|').unwrap();
            format!("{}|{reason}", hex_serial(serial))
        })
        .collect();
    assert_eq!(revoked, [format!("{second}|1")]);
    let status = ocsp_status(&ca, &cert, &chain);
    assert!(status.starts_with("revoked"), "{status}");
}

#[test]
fn certbot_needs_external_account_binding_when_the_provisioner_requires_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let dns = ChallTestSrv::start();
    let http01 = client_port();
    let ca = Ca::start(tmp, "bound", &dns, http01, client_port(), &["--eab"], false);
    let field = |label: &str| {
        ca.printed
            .lines()
            .find_map(|l| l.strip_prefix(&format!("external account binding: {label} ")))
            .unwrap_or_else(|| panic!("{label} in {}", ca.printed))
            .to_string()
    };
    let (kid, hmac) = (field("kid"), field("hmac_key"));
    let name = "bound.signet.internal";

    // Without a binding: certbot reads `externalAccountRequired` in the directory and stops;
    // nothing is recorded.
    let o = certbot_certonly(tmp, &ca, name, http01, &[]);
    assert!(!o.status.success(), "{}", ca.explain(&o));
    assert!(
        text(&o).contains("external account binding"),
        "{}",
        ca.explain(&o)
    );
    assert_eq!(
        sqlite3(&ca.db(), "SELECT count(*) FROM acme_accounts"),
        ["0"]
    );
    assert!(ca.issued().is_empty());

    // With a wrong HMAC key: refused by the server.
    let wrong = "A".repeat(43);
    let o = certbot_certonly(
        tmp,
        &ca,
        name,
        http01,
        &["--eab-kid", &kid, "--eab-hmac-key", &wrong],
    );
    assert!(!o.status.success(), "{}", ca.explain(&o));
    assert!(
        text(&o).contains("the external account binding's MAC does not verify"),
        "{}",
        ca.explain(&o)
    );
    assert_eq!(
        sqlite3(&ca.db(), "SELECT count(*) FROM acme_accounts"),
        ["0"]
    );

    // With it: accepted.
    let o = certbot_certonly(
        tmp,
        &ca,
        name,
        http01,
        &["--eab-kid", &kid, "--eab-hmac-key", &hmac],
    );
    assert!(o.status.success(), "{}", ca.explain(&o));
    let fullchain = fs::read_to_string(live(tmp, name, "fullchain.pem")).unwrap();
    let serial = openssl_verifies(tmp, &ca, &fullchain, &[name]);
    let issued = ca.issued();
    assert_eq!(issued.len(), 1, "{issued:?}");
    assert_eq!(issued[0].0, serial);
    // The key is used now: `signet acme eab list` says so.
    let o = signet_in(tmp, &[], &["acme", "eab", "list", "--dir", p(&ca.data)], "");
    assert!(o.status.success(), "{}", text(&o));
    let listed = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(listed.contains(&kid) && listed.contains("used"), "{listed}");
}

// ---------------------------------------------------------------------------------------
// Caddy

/// The certificates a TLS server on `port` presents for `name` (`openssl s_client
/// -showcerts`), PEM, leaf first.
fn served_chain(port: u16, name: &str) -> String {
    let o = run(
        Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", name, "-showcerts"]),
        Duration::from_secs(15),
    );
    pem_certs(&String::from_utf8_lossy(&o.stdout)).concat()
}

/// curl over HTTPS to `name:port` (resolved to 127.0.0.1), trusting only `root`; the body,
/// or None if the request failed.
fn curl_https(name: &str, port: u16, root: &Path) -> Option<String> {
    let o = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "5", "--cacert", p(root)])
            .args(["--resolve", &format!("{name}:{port}:127.0.0.1")])
            .arg(format!("https://{name}:{port}/")),
        Duration::from_secs(15),
    );
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).to_string())
}

#[test]
fn caddy_serves_https_with_a_certificate_it_obtained_and_renews_it() {
    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path();
    let dns = ChallTestSrv::start();
    let (http_port, https_port) = (client_port(), client_port());
    // A one-minute lifetime (plus the 60 s backdate): Caddy renews when a third of the
    // validity is left, 20 s after issuance.
    let ca = Ca::start(
        tmp,
        "caddy",
        &dns,
        http_port,
        https_port,
        &["--lifetime", "60s"],
        false,
    );
    let name = "caddy.signet.internal";
    let caddyfile = tmp.join("Caddyfile");
    fs::write(
        &caddyfile,
        format!(
            "{{
	acme_ca {directory}
	acme_ca_root {root}
	default_bind 127.0.0.1
	http_port {http_port}
	https_port {https_port}
	storage file_system {storage}
	skip_install_trust
	admin off
	renew_interval 1s
}}

{name}:{https_port} {{
	respond \"hello\"
}}
",
            directory = ca.directory(),
            root = p(&ca.root()),
            storage = p(&tmp.join("caddy-storage")),
        ),
    )
    .unwrap();
    let mut caddy = Watched::spawn(
        Command::new(tool("caddy", "caddy"))
            .current_dir(tmp)
            .env("HOME", tmp)
            .env("XDG_DATA_HOME", tmp.join("xdg-data"))
            .env("XDG_CONFIG_HOME", tmp.join("xdg-config"))
            .args(["run", "--adapter", "caddyfile", "--config", p(&caddyfile)]),
    );
    caddy.close_stdin();

    // Caddy obtains a certificate by itself and serves "hello" with it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if curl_https(name, https_port, &ca.root()).as_deref() == Some("hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Caddy did not serve {name} within 30 s:\n{}\nsignet:\n{}",
            caddy.printed(),
            ca.server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let first = openssl_verifies(tmp, &ca, &served_chain(https_port, name), &[name]);
    assert_eq!(ca.issued()[0].0, first);

    // Then it renews it, and serves the new one.
    let deadline = Instant::now() + Duration::from_secs(45);
    let second = loop {
        let serial = openssl_verifies(tmp, &ca, &served_chain(https_port, name), &[name]);
        if serial != first {
            break serial;
        }
        assert!(
            Instant::now() < deadline,
            "Caddy did not renew within 45 s:\n{}\nsignet:\n{}",
            caddy.printed(),
            ca.server.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        curl_https(name, https_port, &ca.root()).as_deref(),
        Some("hello")
    );
    let serials: Vec<String> = ca.issued().into_iter().map(|(s, _)| s).collect();
    assert!(
        serials.len() >= 2 && serials[0] == first && serials.contains(&second),
        "{serials:?}"
    );
    drop(caddy);
}
