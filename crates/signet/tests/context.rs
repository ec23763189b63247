//! `signet context`: the CA URL and pinned root saved once (like `step ca bootstrap`) and
//! used by every client command, against a running `signet serve` over HTTPS. A wrong
//! fingerprint exits 4 and saves nothing; flags and `SIGNET_*` variables override the
//! context; a root swapped on disk after saving is refused.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

mod common;
use common::{Server, csr, p, signet_in, text};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn fingerprint(pem_file: &Path) -> String {
    let pem = std::fs::read_to_string(pem_file).unwrap();
    let (_, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes()).unwrap();
    signet_ca::sha256_fingerprint(&der)
}

#[test]
fn a_saved_context_serves_every_client_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_blocking(tmp.path(), &[], &["--dir", p(&data)]);
    let url = server.base();
    let fp = fingerprint(&data.join("root_ca.crt"));
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let xdg = tmp.path().join("xdg");
    let saved = xdg.join("signet");
    let xdg_env = [("XDG_CONFIG_HOME", p(&xdg))];
    let run = |args: &[&str]| signet_in(&client, &xdg_env, args, "");
    let admin = data.join("admin.token");

    // A wrong fingerprint: exit 4, the real fingerprint named, nothing saved (not even the
    // directory).
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let o = run(&[
        "context",
        "save",
        "--ca-url",
        &url,
        "--root-fingerprint",
        &wrong,
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).contains("ROOT FINGERPRINT MISMATCH"),
        "{}",
        text(&o)
    );
    assert!(stderr(&o).contains(&fp), "{}", text(&o));
    assert!(!xdg.exists(), "a refused context wrote {}", xdg.display());
    // Nothing saved: a client command without --ca-url says how to give one.
    let o = run(&["ca", "chain"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("signet context save"), "{}", text(&o));

    // The right one (bare `signet context` with flags saves): the root is kept, private.
    let o = run(&["context", "--ca-url", &url, "--root-fingerprint", &fp]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(mode(&saved), 0o700);
    assert_eq!(mode(&saved.join("context.toml")), 0o600);
    assert_eq!(mode(&saved.join("root_ca.crt")), 0o600);
    assert_eq!(fingerprint(&saved.join("root_ca.crt")), fp);
    let o = run(&["context", "show", "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(shown["ca_url"], url.as_str());
    assert_eq!(shown["root_fingerprint"], fp.as_str());
    assert!(shown["root_subject"].as_str().unwrap().contains("Root"));
    assert!(shown["saved_at"].as_str().unwrap().ends_with('Z'));
    let o = run(&["context"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains(&fp), "{}", text(&o));

    // Every client command, with neither --ca-url nor a root: the context gives both. The
    // client directory holds no signet-data, so the root can only come from the context.
    let o = run(&["ca", "root"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        stdout(&o),
        std::fs::read_to_string(data.join("root_ca.crt")).unwrap()
    );
    let o = run(&["ca", "chain"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("BEGIN CERTIFICATE"));
    // token: the context's URL is the audience; issue reads it from standard input.
    let o = run(&[
        "token",
        "--dir",
        p(&data),
        "--subject",
        "svc",
        "--san",
        "api.internal",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let token = stdout(&o);
    csr(&client, "api.internal");
    let req = client.join("api.internal.csr");
    let o = signet_in(
        &client,
        &xdg_env,
        &["issue", "--csr", p(&req), "--token-file", "-"],
        &token,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("BEGIN CERTIFICATE"));
    // certificate: minted with the provisioner key of --dir, trusted through the context.
    let o = run(&["certificate", "web.internal", "--dir", p(&data)]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(client.join("web.internal.crt").exists());
    let o = run(&[
        "list",
        "--admin-token-file",
        p(&admin),
        "--name",
        "web.internal",
        "--json",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let listed: Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    let serial = listed["serial_number"].as_str().unwrap().to_string();
    let o = run(&["revoke", &serial, "--admin-token-file", p(&admin)]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&[
        "audit",
        "--admin-token-file",
        p(&admin),
        "--serial",
        &serial,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("revoke"), "{}", text(&o));

    // Flags and variables override it: another URL does not get the context's root.
    for o in [
        run(&["ca", "chain", "--ca-url", "https://127.0.0.1:1"]),
        signet_in(
            &client,
            &[
                ("XDG_CONFIG_HOME", p(&xdg)),
                ("SIGNET_CA_URL", "https://127.0.0.1:1"),
            ],
            &["ca", "chain"],
            "",
        ),
    ] {
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(
            stderr(&o).contains("no saved context for https://127.0.0.1:1"),
            "{}",
            text(&o)
        );
    }
    // ...and an explicit --ca-file (here another CA's root) is used instead of the saved
    // root: the connection fails verification.
    let other = client.join("other-root.pem");
    let o = common::openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        p(&client.join("other-root.key")),
        "-out",
        p(&other),
        "-subj",
        "/CN=Another Root",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = run(&["ca", "chain", "--ca-file", p(&other)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(stderr(&o).contains("certificate"), "{}", text(&o));

    // Another CA's fingerprint does not replace the context without --force.
    let before = std::fs::read(saved.join("context.toml")).unwrap();
    let o = run(&[
        "context",
        "save",
        "--ca-url",
        &url,
        "--root-fingerprint",
        &wrong,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("--force"), "{}", text(&o));
    assert_eq!(std::fs::read(saved.join("context.toml")).unwrap(), before);

    // A root replaced on disk after saving is refused (exit 4), not trusted.
    let good_root = std::fs::read(saved.join("root_ca.crt")).unwrap();
    std::fs::copy(data.join("issuing_ca.crt"), saved.join("root_ca.crt")).unwrap();
    let o = run(&["ca", "chain"]);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        stderr(&o).contains("replaced after it was saved"),
        "{}",
        text(&o)
    );
    std::fs::write(saved.join("root_ca.crt"), good_root).unwrap();

    // Removed: nothing left, and the commands ask for --ca-url again.
    let o = run(&["context", "remove"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!saved.join("context.toml").exists());
    assert!(!saved.join("root_ca.crt").exists());
    let o = run(&["context", "show"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(stderr(&o).contains("no saved context"), "{}", text(&o));
}
