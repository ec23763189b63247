//! `signet certificate NAME`: key, CSR, token and certificate in one command, against a real
//! `signet serve` over HTTPS. What it writes is checked by `openssl verify`, `openssl x509`
//! and `openssl pkey`; what it refuses leaves no file and, when refused before the request,
//! no trace on the server either.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

mod common;
use common::{Server, openssl, p, signet_in, text};

fn signet(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    signet_in(cwd, env, args, "")
}

fn signet_with_stdin(
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    signet_in(cwd, env, args, stdin)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// openssl ARGS, expected to succeed; its standard output.
fn openssl_ok(args: &[&str]) -> String {
    let o = openssl(args);
    assert!(o.status.success(), "openssl {args:?}: {}", text(&o));
    stdout(&o)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `openssl verify` of the leaf in `crt` against the root, with the rest of `crt` as the
/// untrusted chain, for `purpose`.
fn verify(root: &Path, crt: &Path, purpose: &str) {
    let pem = std::fs::read_to_string(crt).unwrap();
    let blocks: Vec<&str> = pem.split_inclusive("-----END CERTIFICATE-----\n").collect();
    assert!(
        blocks.len() >= 2,
        "{crt:?} holds the leaf and the chain:\n{pem}"
    );
    let dir = crt.parent().unwrap();
    let leaf = dir.join("leaf.tmp.pem");
    let chain = dir.join("chain.tmp.pem");
    std::fs::write(&leaf, blocks[0]).unwrap();
    std::fs::write(&chain, blocks[1..].concat()).unwrap();
    let out = openssl_ok(&[
        "verify",
        "-CAfile",
        p(root),
        "-untrusted",
        p(&chain),
        "-purpose",
        purpose,
        p(&leaf),
    ]);
    assert!(out.contains(": OK"), "{out}");
    std::fs::remove_file(leaf).unwrap();
    std::fs::remove_file(chain).unwrap();
}

/// The key in `key` is the key of the certificate in `crt` (compared by openssl).
fn key_matches(crt: &Path, key: &Path) {
    let from_cert = openssl_ok(&["x509", "-in", p(crt), "-noout", "-pubkey"]);
    let from_key = openssl_ok(&["pkey", "-in", p(key), "-pubout"]);
    assert_eq!(from_cert, from_key);
}

#[test]
fn one_command_gets_a_key_and_a_verified_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_blocking(tmp.path(), &[], &["--dir", p(&data)]);
    let base_url = server.base();
    let url = base_url.as_str();
    let root = data.join("root_ca.crt");
    let count = |table: &str| -> usize {
        common::sqlite3(
            &data.join("signet.db"),
            &format!("SELECT count(*) FROM {table}"),
        )[0]
        .parse()
        .unwrap()
    };
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let base = ["--ca-url", url, "--dir", p(&data), "--ca-file", p(&root)];

    // The default: a P-256 key, a token minted with the default provisioner's key for
    // exactly NAME, the server profile.
    let mut args = vec!["certificate", "api.internal"];
    args.extend(base);
    let o = signet(&client, &[], &args);
    assert!(o.status.success(), "{}", text(&o));
    let crt = client.join("api.internal.crt");
    let key = client.join("api.internal.key");
    assert!(stderr(&o).contains("api.internal.crt"), "{}", text(&o));
    assert!(stderr(&o).contains("dns:api.internal"), "{}", text(&o));
    assert!(stdout(&o).is_empty(), "{}", text(&o));
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&crt), 0o644);
    verify(&root, &crt, "sslserver");
    key_matches(&crt, &key);
    let x509 = openssl_ok(&["x509", "-in", p(&crt), "-noout", "-text"]);
    assert!(x509.contains("DNS:api.internal"), "{x509}");
    assert!(x509.contains("TLS Web Server Authentication"), "{x509}");
    let pkey = openssl_ok(&["pkey", "-in", p(&key), "-noout", "-text"]);
    assert!(pkey.contains("256 bit") && pkey.contains("P-256"), "{pkey}");
    // The files are exactly what the server recorded, under the minted token's subject.
    let serial = openssl_ok(&["x509", "-in", p(&crt), "-noout", "-serial"]);
    let serial = serial
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_lowercase();
    let requester = common::sqlite3(
        &data.join("signet.db"),
        &format!("SELECT requester FROM certificates WHERE serial = '{serial}'"),
    );
    assert_eq!(requester, ["token:default:api.internal"]);

    // Again without --force: refused before anything is generated or sent; the files are
    // untouched and the server saw nothing.
    let before = (std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap());
    let (certs, audit, tokens) = (
        count("certificates"),
        count("audit_log"),
        count("used_tokens"),
    );
    let o = signet(&client, &[], &args);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("api.internal.crt exists") && stderr(&o).contains("--force"),
        "{}",
        text(&o)
    );
    assert_eq!(
        (std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap()),
        before
    );
    assert_eq!(
        (
            count("certificates"),
            count("audit_log"),
            count("used_tokens")
        ),
        (certs, audit, tokens)
    );

    // --force with an RSA key, several names, the peer profile, and a token from `signet
    // token` on standard input (--token-file -).
    let o = signet(
        &client,
        &[],
        &[
            "token",
            "--ca-url",
            url,
            "--dir",
            p(&data),
            "--subject",
            "svc",
            "--san",
            "svc.internal",
            "--san",
            "10.0.0.7",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = stdout(&o);
    let mut args = vec![
        "certificate",
        "api.internal",
        "--force",
        "--key-type",
        "RSA-2048",
        "--san",
        "svc.internal",
        "--san",
        "10.0.0.7",
        "--profile",
        "peer",
        "--token-file",
        "-",
    ];
    args.extend(base);
    let o = signet_with_stdin(&client, &[], &args, &token);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&key), 0o600);
    verify(&root, &crt, "sslclient");
    key_matches(&crt, &key);
    let x509 = openssl_ok(&["x509", "-in", p(&crt), "-noout", "-text"]);
    assert!(
        x509.contains("DNS:svc.internal") && x509.contains("IP Address:10.0.0.7"),
        "{x509}"
    );
    assert!(
        x509.contains("TLS Web Client Authentication")
            && x509.contains("TLS Web Server Authentication"),
        "{x509}"
    );
    let pkey = openssl_ok(&["pkey", "-in", p(&key), "-noout", "-text"]);
    assert!(pkey.contains("2048 bit"), "{pkey}");
    // No temporary file is left beside them.
    let mut left: Vec<String> = std::fs::read_dir(&client)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["api.internal.crt", "api.internal.key"]);

    // An Ed25519 key into a subdirectory, the token from SIGNET_TOKEN.
    std::fs::create_dir(client.join("out")).unwrap();
    let o = signet(
        &client,
        &[],
        &[
            "token",
            "--ca-url",
            url,
            "--dir",
            p(&data),
            "--subject",
            "web",
            "--san",
            "web.internal",
        ],
    );
    let token = stdout(&o);
    let mut args = vec!["certificate", "out/web.internal", "--key-type", "ed25519"];
    args.extend(base);
    let o = signet(&client, &[("SIGNET_TOKEN", token.trim())], &args);
    assert!(o.status.success(), "{}", text(&o));
    let crt = client.join("out/web.internal.crt");
    let key = client.join("out/web.internal.key");
    assert_eq!(mode(&key), 0o600);
    verify(&root, &crt, "sslserver");
    key_matches(&crt, &key);
    let pkey = openssl_ok(&["pkey", "-in", p(&key), "-noout", "-text"]);
    assert!(pkey.contains("ED25519"), "{pkey}");
}

#[test]
fn refusals_leave_nothing_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_blocking(tmp.path(), &[], &["--dir", p(&data)]);
    let base_url = server.base();
    let url = base_url.as_str();
    let root = data.join("root_ca.crt");
    let count = |table: &str| -> usize {
        common::sqlite3(
            &data.join("signet.db"),
            &format!("SELECT count(*) FROM {table}"),
        )[0]
        .parse()
        .unwrap()
    };
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let base = ["--ca-url", url, "--dir", p(&data), "--ca-file", p(&root)];
    let run = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["certificate"];
        args.extend(extra);
        args.extend(base);
        signet(&client, env, &args)
    };
    let empty = |dir: &Path| std::fs::read_dir(dir).unwrap().next().is_none();
    let counts = || {
        (
            count("certificates"),
            count("audit_log"),
            count("used_tokens"),
        )
    };
    let start = counts();

    // Checked locally, before any request: nothing on the server changes.
    for (extra, says) in [
        (
            &["missing/api.internal"][..],
            "the directory missing does not exist",
        ),
        (&["bad name"][..], "pass --san NAME"),
        (&["x", "--san", "not a name!"][..], "--san \"not a name!\""),
        (&["api.internal", "--profile", "ca"][..], "--profile"),
        (&["api.internal", "--ttl", "soon"][..], "--ttl"),
        (
            &["api.internal", "--provisioner", "nobody"][..],
            "no token and no provisioner key",
        ),
        (
            &["api.internal", "--token-file", "absent.jwt"][..],
            "reading the token file absent.jwt",
        ),
    ] {
        let o = run(extra, &[]);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {}", text(&o));
        assert!(stderr(&o).contains(says), "{extra:?}: {}", text(&o));
        assert!(empty(&client), "{extra:?} wrote something");
        assert_eq!(counts(), start, "{extra:?} reached the server");
    }
    let o = run(&["api.internal", "--key-type", "rsa1024"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("RSA-4096"), "{}", text(&o));
    assert!(empty(&client));

    // Refused by the server: a name outside the CA's policy. The minted token asked for it,
    // so the server refuses (and audits) it; no file is written.
    let o = run(&["api.example.com"], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("refused by the CA"), "{}", text(&o));
    assert!(stderr(&o).contains("api.example.com"), "{}", text(&o));
    assert!(stderr(&o).contains("HTTP 403"), "{}", text(&o));
    assert!(empty(&client), "a refused request wrote files");
    assert_eq!(count("certificates"), start.0);

    // A token for other names than the ones asked for.
    let o = signet(
        &client,
        &[],
        &[
            "token",
            "--ca-url",
            url,
            "--dir",
            p(&data),
            "--subject",
            "a",
            "--san",
            "a.internal",
        ],
    );
    let token = stdout(&o);
    let o = run(&["b.internal", "--token", token.trim()], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("b.internal"), "{}", text(&o));
    assert!(empty(&client), "a refused request wrote files");
    assert_eq!(count("certificates"), start.0);
    // And the process never wrote a key anywhere else (its own directory stayed empty, and
    // no key file appeared in the data directory either).
    assert!(!data.join("b.internal.key").exists());
    assert!(openssl(&["version"]).status.success());
}
