//! End-to-end tests of the API client commands (`token`, `issue` without `--local`, `list`,
//! `revoke`, `ca root`, `ca chain`) against a real `signet serve` on a free local port, with
//! CSRs from `openssl req` and the issued chain checked by `openssl verify`.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{Server, base_command, openssl, p, text};

/// Run `signet` in `cwd` (a directory without signet-data, like a client machine).
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

/// A P-256 key and CSR made by `openssl req`.
fn csr(dir: &Path, tag: &str, cn: &str, san: &str) -> PathBuf {
    let out = dir.join(format!("{tag}.csr"));
    let key = dir.join(format!("{tag}.key"));
    let subj = format!("/CN={cn}");
    let ext = format!("subjectAltName={san}");
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
        p(&out),
        "-subj",
        &subj,
        "-addext",
        &ext,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    out
}

fn root_fingerprint(root_pem: &Path) -> String {
    let pem = std::fs::read_to_string(root_pem).unwrap();
    let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap();
    assert_eq!(label, "CERTIFICATE");
    signet_ca::sha256_fingerprint(&der)
}

/// The serial of the first certificate in a PEM file, as the API writes it (lowercase hex).
fn serial_of(pem: &Path) -> String {
    let o = openssl(&["x509", "-in", p(pem), "-noout", "-serial"]);
    assert!(o.status.success(), "{}", text(&o));
    stdout(&o)
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase()
}

#[test]
fn client_commands_against_a_running_server() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_blocking(tmp.path(), &[], &["--dir", p(&data)]);
    let url = server.base();
    let url = url.as_str();
    // The client side works from a directory with no signet-data in it.
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let fp = root_fingerprint(&data.join("root_ca.crt"));

    // ca root: no trust given is refused.
    let o = signet(&client, &[], &["ca", "root", "--ca-url", url]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--root-fingerprint"), "{}", text(&o));

    // ca root: a wrong fingerprint is fatal, and nothing is written.
    let wrong = format!("sha256:{}", "00".repeat(32));
    let bad_out = client.join("bad-root.pem");
    let o = signet(
        &client,
        &[],
        &[
            "ca",
            "root",
            "--ca-url",
            url,
            "--root-fingerprint",
            &wrong,
            "--out",
            p(&bad_out),
        ],
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(stderr(&o).contains("FINGERPRINT MISMATCH"), "{}", text(&o));
    assert!(stderr(&o).contains(&fp), "{}", text(&o));
    assert!(!bad_out.exists());

    // ca root: the right fingerprint (OpenSSL's colon form works too) writes the root.
    let root = client.join("root.pem");
    let colon_form = fp
        .trim_start_matches("sha256:")
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
        .collect::<Vec<_>>()
        .join(":");
    for given in [fp.as_str(), colon_form.as_str()] {
        let o = signet(
            &client,
            &[],
            &[
                "ca",
                "root",
                "--ca-url",
                url,
                "--root-fingerprint",
                given,
                "--out",
                p(&root),
            ],
        );
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(
            std::fs::read_to_string(&root).unwrap(),
            std::fs::read_to_string(data.join("root_ca.crt")).unwrap()
        );
    }

    // ca root with --ca-file, and ca chain, to stdout.
    let o = signet(
        &client,
        &[],
        &["ca", "root", "--ca-url", url, "--ca-file", p(&root)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(stdout(&o), std::fs::read_to_string(&root).unwrap());
    let o = signet(
        &client,
        &[],
        &["ca", "chain", "--ca-url", url, "--ca-file", p(&root)],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).matches("BEGIN CERTIFICATE").count() >= 1);

    // A CA file holding another root does not verify the server.
    let other = client.join("other.pem");
    let o = openssl(&[
        "req",
        "-x509",
        "-nodes",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-keyout",
        "/dev/null",
        "-out",
        p(&other),
        "-subj",
        "/CN=Someone Else",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = signet(
        &client,
        &[],
        &["ca", "chain", "--ca-url", url, "--ca-file", p(&other)],
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // token: bounded lifetime; a good one is one JWT line.
    let token_args = |ttl: &str| -> Vec<String> {
        [
            "token",
            "--dir",
            p(&data),
            "--ca-url",
            &format!("{url}/"),
            "--subject",
            "billing-api",
            "--san",
            "api.internal",
            "--san",
            "10.0.0.1",
            "--ttl",
            ttl,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let args: Vec<String> = token_args("6m");
    let o = signet(
        &client,
        &[],
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let args = token_args("5m");
    let o = signet(
        &client,
        &[],
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = stdout(&o).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "{token}");

    // issue with the token; the chain verifies with openssl.
    let svc = csr(
        &client,
        "svc",
        "api.internal",
        "DNS:api.internal,IP:10.0.0.1",
    );
    let issued = client.join("svc.pem");
    let issue = |csr: &Path, out: &Path, env: &[(&str, &str)]| {
        signet(
            &client,
            env,
            &[
                "issue",
                "--ca-url",
                url,
                "--ca-file",
                p(&root),
                "--csr",
                p(csr),
                "--out",
                p(out),
            ],
        )
    };
    let o = issue(&svc, &issued, &[("SIGNET_TOKEN", &token)]);
    assert!(o.status.success(), "{}", text(&o));
    let pem = std::fs::read_to_string(&issued).unwrap();
    let split =
        pem.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    let chain = client.join("chain.pem");
    std::fs::write(&chain, &pem[split..]).unwrap();
    assert!(pem[split..].contains("BEGIN CERTIFICATE"), "{pem}");
    let o = openssl(&[
        "verify",
        "-CAfile",
        p(&root),
        "-untrusted",
        p(&chain),
        "-purpose",
        "sslserver",
        p(&issued),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let serial = serial_of(&issued);

    // The same token a second time is refused by the CA (exit 3), and the token is not echoed.
    let o = issue(&svc, &client.join("again.pem"), &[("SIGNET_TOKEN", &token)]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(!stderr(&o).contains(&token));

    // A name the token does not allow is refused.
    let o = signet(
        &client,
        &[],
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let token2 = stdout(&o).trim().to_string();
    let other_csr = csr(&client, "other", "other.internal", "DNS:other.internal");
    let o = issue(
        &other_csr,
        &client.join("other-cert.pem"),
        &[("SIGNET_TOKEN", &token2)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // No credential at all is refused before anything is sent.
    let o = issue(&svc, &client.join("none.pem"), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // list (admin): the table and JSON lines both show the certificate.
    let admin_file = data.join("admin.token");
    let admin_env = [("SIGNET_ADMIN_TOKEN_FILE", p(&admin_file))];
    let o = signet(
        &client,
        &admin_env,
        &["list", "--ca-url", url, "--ca-file", p(&root)],
    );
    assert!(o.status.success(), "{}", text(&o));
    let table = stdout(&o);
    assert!(table.starts_with("SERIAL"), "{table}");
    let line = table.lines().find(|l| l.starts_with(&serial)).unwrap();
    assert!(line.contains("good") && line.contains("server"), "{line}");
    assert!(line.contains("dns:api.internal"), "{line}");
    let o = signet(
        &client,
        &admin_env,
        &[
            "list",
            "--ca-url",
            url,
            "--root-fingerprint",
            &fp,
            "--json",
            "--limit",
            "1",
            "--all",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let items: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        items.len() >= 2,
        "the server's own certificate and ours: {items:?}"
    );
    assert!(items.iter().any(|i| i["serial_number"] == serial.as_str()));

    // A wrong admin token is refused and not echoed.
    let o = signet(
        &client,
        &[("SIGNET_ADMIN_TOKEN", "sa_notthetokennotthetoken")],
        &["list", "--ca-url", url, "--ca-file", p(&root)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(!stderr(&o).contains("sa_notthetoken"), "{}", text(&o));

    // revoke, then the listing shows it revoked; revoking again is refused.
    let revoke = || {
        signet(
            &client,
            &admin_env,
            &[
                "revoke",
                "--ca-url",
                url,
                "--ca-file",
                p(&root),
                &serial.to_ascii_uppercase(),
                "--reason",
                "keyCompromise",
            ],
        )
    };
    let o = revoke();
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        stdout(&o).contains(&serial) && stdout(&o).contains("keyCompromise"),
        "{}",
        text(&o)
    );
    let o = signet(
        &client,
        &admin_env,
        &[
            "list",
            "--ca-url",
            url,
            "--ca-file",
            p(&root),
            "--status",
            "revoked",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let revoked: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        revoked
            .iter()
            .any(|i| i["serial_number"] == serial.as_str() && i["status"] == "revoked"),
        "{revoked:?}"
    );
    let o = revoke();
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // audit (admin): the certificate's history, newest first, as a table and as JSON; the
    // refusals are there too.
    let o = signet(
        &client,
        &admin_env,
        &[
            "audit",
            "--ca-url",
            url,
            "--ca-file",
            p(&root),
            "--serial",
            &serial.to_ascii_uppercase(),
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let history = stdout(&o);
    assert!(history.starts_with("ID"), "{history}");
    let actions: Vec<&str> = history
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(3).unwrap_or_default())
        .collect();
    assert_eq!(actions, ["revoke", "revoke", "issue"], "{history}");
    assert!(
        history.lines().nth(1).unwrap().contains("refused"),
        "{history}"
    );
    let o = signet(
        &client,
        &admin_env,
        &[
            "audit",
            "--ca-url",
            url,
            "--ca-file",
            p(&root),
            "--outcome",
            "refused",
            "--json",
            "--limit",
            "1",
            "--all",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let refused: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(refused.len() >= 3, "{refused:?}");
    assert!(refused.iter().all(|r| r["outcome"] == "refused"));
    assert!(
        refused
            .iter()
            .all(|r| !r["detail"].as_str().unwrap().contains(&token)),
        "a token leaked into the audit log"
    );
    let o = signet(
        &client,
        &[("SIGNET_ADMIN_TOKEN", "sa_notthetokennotthetoken")],
        &["audit", "--ca-url", url, "--ca-file", p(&root)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));

    // The admin credential also issues, found as DIR/admin.token and trusting DIR/root_ca.crt.
    let o = signet(
        tmp.path(),
        &[],
        &[
            "issue",
            "--admin",
            "--dir",
            p(&data),
            "--ca-url",
            url,
            "--csr",
            p(&svc),
            "--profile",
            "peer",
            "--ttl",
            "2h",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).matches("BEGIN CERTIFICATE").count() >= 2);

    drop(server);
}
