//! Client commands check their own arguments before they send anything, and use only the
//! credential they were given: against a real `signet serve`, each mistake is told (exit 2,
//! a message naming it) and the server's database shows that nothing happened (no audit row,
//! no certificate, no burned token).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{base_command, p, sqlite3, text};

/// A running `signet serve` on port 0 (common::Server, killed when dropped).
struct Server {
    proc: common::Server,
    url: String,
    data: PathBuf,
}

impl Server {
    fn start(tmp: &Path) -> Server {
        Server::start_with(tmp, "off")
    }

    fn start_with(tmp: &Path, responder: &str) -> Server {
        let data = tmp.join("data");
        let proc = common::Server::start_blocking(
            tmp,
            &[],
            &["--init", "--dir", p(&data), "--responder-listen", responder],
        );
        Server {
            url: proc.base(),
            proc,
            data,
        }
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    /// Rows of audit, certificates and used tokens that a client's request leaves behind
    /// (not what the server writes for itself in the background: its own certificate, the
    /// OCSP signer's, CRLs).
    fn footprint(&self) -> Vec<String> {
        let db = self.data.join("signet.db");
        [
            "SELECT count(*) FROM audit_log WHERE action IN ('issue', 'renew', 'revoke')",
            "SELECT count(*) FROM certificates \
             WHERE requester NOT IN ('signet-serve', 'signet-responder')",
            "SELECT count(*) FROM used_tokens",
        ]
        .iter()
        .flat_map(|q| sqlite3(&db, q))
        .collect()
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

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn csr(dir: &Path, name: &str) -> PathBuf {
    let out = dir.join(format!("{name}.csr"));
    let o = Command::new("openssl")
        .args(["req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-keyout"])
        .arg(dir.join(format!("{name}.key")))
        .arg("-out")
        .arg(&out)
        .args(["-subj", &format!("/CN={name}")])
        .output()
        .expect("the openssl CLI must be installed (apt-get install openssl)");
    assert!(o.status.success(), "{}", text(&o));
    out
}

#[test]
fn issue_uses_only_the_credential_it_is_given_and_checks_its_arguments_first() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let url = server.url.as_str();
    let data = p(&server.data);
    let csr = csr(tmp.path(), "api.internal");
    let before = server.footprint();

    // No --token and no --admin: refused locally, although DIR/admin.token is right there.
    let o = signet(
        tmp.path(),
        &[],
        &["issue", "--dir", data, "--ca-url", url, "--csr", p(&csr)],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("no credential"), "{}", text(&o));
    assert!(stderr(&o).contains("--admin"), "{}", text(&o));
    assert!(o.stdout.is_empty(), "{}", text(&o));
    assert_eq!(server.footprint(), before, "the server was asked something");

    // A token, but --out names a directory that does not exist: refused before the token is
    // spent, so the same token still works afterwards.
    let o = signet(
        tmp.path(),
        &[],
        &[
            "token",
            "--dir",
            data,
            "--ca-url",
            url,
            "--subject",
            "svc",
            "--san",
            "api.internal",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let missing = tmp.path().join("no-such-dir").join("leaf.pem");
    let o = signet(
        tmp.path(),
        &[],
        &[
            "issue",
            "--dir",
            data,
            "--ca-url",
            url,
            "--csr",
            p(&csr),
            "--token",
            &token,
            "--out",
            p(&missing),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains("no-such-dir"),
        "{}",
        text(&o)
    );
    assert!(!missing.parent().unwrap().exists());
    assert_eq!(server.footprint(), before, "the token was spent");
    // --out naming a directory is refused the same way.
    let o = signet(
        tmp.path(),
        &[],
        &[
            "issue",
            "--dir",
            data,
            "--ca-url",
            url,
            "--csr",
            p(&csr),
            "--token",
            &token,
            "--out",
            p(tmp.path()),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("is a directory"), "{}", text(&o));
    assert_eq!(server.footprint(), before);

    // The same token, now with a good --out: it was never burned, so it issues, and stderr
    // says which credential was used (never the token itself).
    let leaf = tmp.path().join("leaf.pem");
    let o = signet(
        tmp.path(),
        &[("SIGNET_TOKEN", &token)],
        &[
            "issue",
            "--dir",
            data,
            "--ca-url",
            url,
            "--csr",
            p(&csr),
            "--out",
            p(&leaf),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = stderr(&o);
    assert!(
        err.contains("using the token from SIGNET_TOKEN (issuer \"default\", subject \"svc\")"),
        "{err}"
    );
    assert!(!err.contains(&token));
    let o = Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(server.data.join("root_ca.crt"))
        .arg("-untrusted")
        .arg(&leaf)
        .arg(&leaf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));

    // --admin asks for the admin token, and says where it came from.
    let o = signet(
        tmp.path(),
        &[],
        &[
            "issue",
            "--admin",
            "--dir",
            data,
            "--ca-url",
            url,
            "--csr",
            p(&csr),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let admin_file = server.data.join("admin.token");
    assert!(
        stderr(&o).contains(&format!(
            "using the admin token from {} (--admin)",
            admin_file.display()
        )),
        "{}",
        text(&o)
    );
    let secret = std::fs::read_to_string(&admin_file).unwrap();
    assert!(!stderr(&o).contains(secret.trim()));
    // Both at once is a contradiction, refused locally.
    let after = server.footprint();
    let o = signet(
        tmp.path(),
        &[],
        &[
            "issue",
            "--admin",
            "--token",
            &token,
            "--dir",
            data,
            "--ca-url",
            url,
            "--csr",
            p(&csr),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert_eq!(server.footprint(), after);
}

#[test]
fn every_client_command_says_the_ca_url_needs_https() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path());
    let data = p(&server.data);
    let port = server.url.rsplit(':').next().unwrap().to_string();
    let bare = format!("127.0.0.1:{port}");
    let csr = csr(tmp.path(), "api.internal");
    let before = server.footprint();
    let root = server.data.join("root_ca.crt");
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "x.y.z").unwrap();
    let commands: Vec<Vec<&str>> = vec![
        vec!["issue", "--dir", data, "--admin", "--csr", p(&csr)],
        vec!["list", "--dir", data],
        vec!["audit", "--dir", data],
        vec!["revoke", "--dir", data, "01"],
        vec!["ca", "root", "--ca-file", p(&root)],
        vec!["ca", "chain", "--dir", data],
        vec![
            "token",
            "--dir",
            data,
            "--subject",
            "s",
            "--san",
            "a.internal",
        ],
        vec![
            "bootstrap",
            "--ca-file",
            p(&root),
            "--token-file",
            p(&token_file),
            "--dir",
            p(tmp.path()),
        ],
        vec!["renew", "--dir", p(tmp.path()), "--once"],
    ];
    for args in commands {
        for url in [bare.as_str(), &format!("http://{bare}")] {
            let mut full = args.clone();
            full.extend(["--ca-url", url]);
            let o = signet(tmp.path(), &[], &full);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{full:?}: {}", text(&o));
            assert!(err.contains("needs https://"), "{full:?}: {err}");
            assert!(!err.contains("relative URL"), "{full:?}: {err}");
            if !url.contains("://") {
                assert!(
                    err.contains(&format!("try https://{bare}")),
                    "{full:?}: {err}"
                );
            }
        }
    }
    assert_eq!(server.footprint(), before, "a request reached the server");
    // Nothing was written where the workload commands would write.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| ["ca.crt", "tls.crt", "tls.key"].contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn list_shows_requested_certificates_unless_asked_for_all() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start_with(tmp.path(), "127.0.0.1:0");
    let url = server.url.as_str();
    let data = p(&server.data);
    let db = server.data.join("signet.db");
    // The server's own certificate and the OCSP signer's are recorded at start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while sqlite3(
        &db,
        "SELECT count(*) FROM certificates WHERE profile = 'ocsp-signer'",
    ) == ["0"]
    {
        assert!(
            Instant::now() < deadline,
            "no OCSP signer recorded:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut issued = Vec::new();
    for name in ["a.internal", "b.internal"] {
        let csr = csr(tmp.path(), name);
        let o = signet(
            tmp.path(),
            &[],
            &[
                "issue",
                "--admin",
                "--dir",
                data,
                "--ca-url",
                url,
                "--csr",
                p(&csr),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        issued.push(name);
    }
    let list = |extra: &[&str]| -> (Vec<Value>, String) {
        let mut args = vec!["list", "--dir", data, "--ca-url", url, "--json"];
        args.extend_from_slice(extra);
        let o = signet(tmp.path(), &[], &args);
        assert!(o.status.success(), "{}", text(&o));
        let rows = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (rows, stderr(&o))
    };
    let requesters = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["profile"].as_str().unwrap(),
                    r["requester"].as_str().unwrap()
                )
            })
            .collect()
    };
    // By default: the two certificates asked for, newest first, nothing of the CA's own.
    let (rows, _) = list(&[]);
    assert_eq!(
        requesters(&rows),
        ["server/admin", "server/admin"],
        "{rows:?}"
    );
    // Page by page, the same two, and the cursor hint on stderr.
    let (first, hint) = list(&["--limit", "1"]);
    assert_eq!(first.len(), 1);
    let cursor = hint.split("--cursor ").nth(1).unwrap().trim().to_string();
    let (second, hint) = list(&["--limit", "1", "--cursor", &cursor]);
    assert_eq!(second.len(), 1, "{second:?}");
    assert!(!hint.contains("more"), "{hint}");
    assert_ne!(first[0]["serial_number"], second[0]["serial_number"]);
    // --all: everything the CA recorded, which the database confirms.
    let (all, _) = list(&["--all"]);
    let everything = sqlite3(&db, "SELECT count(*) FROM certificates");
    assert_eq!(all.len().to_string(), everything.concat());
    let all = requesters(&all);
    assert!(all.contains(&"server/signet-serve".to_string()), "{all:?}");
    assert!(
        all.contains(&"ocsp-signer/signet-responder".to_string()),
        "{all:?}"
    );
    // --profile: that profile's certificates of any origin.
    let (signers, _) = list(&["--profile", "ocsp-signer"]);
    assert!(!signers.is_empty());
    assert!(
        requesters(&signers)
            .iter()
            .all(|r| r == "ocsp-signer/signet-responder")
    );
    let (servers, _) = list(&["--profile", "server"]);
    let servers = requesters(&servers);
    assert!(
        servers.contains(&"server/signet-serve".to_string()),
        "{servers:?}"
    );
    assert_eq!(servers.iter().filter(|r| *r == "server/admin").count(), 2);
    let (cas, _) = list(&["--profile", "ca"]);
    assert!(cas.is_empty(), "{cas:?}");
}
