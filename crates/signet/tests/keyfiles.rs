//! Secret files `signet serve` refuses to use (issue 7, hardening): an admin token or an
//! issuing CA key that group or others can read, and an encrypted CA key with a wrong or
//! missing passphrase. Each refusal happens before anything listens: the process exits
//! non-zero with a message naming the file (and its mode), the message never contains the
//! secret, and the "listening" line is never logged. The OCSP signer's key has no file at
//! all: after a start with the responder up, the only private keys in the data directory
//! are the root, the issuing CA and the provisioner's.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;
use common::{STARTUP, Server, base_command, p, text};

const PASSPHRASE: &str = "Keyfiles-Passphrase-4c1d8e2b";

/// `signet init` then one `signet serve` start (so `admin.token` and the default provisioner
/// exist), stopped once it listens.
fn prepared(env: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut cmd = base_command();
    cmd.args(["init", "--dir", p(&data)]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let (ok, log) = serve_until_listening(&data, env);
    assert!(ok, "a good directory did not start:\n{log}");
    (tmp, data)
}

/// Start `signet serve`; if it logs that it listens, SIGTERM it and return (true, log); if
/// it exits first, return (false, everything it printed) after checking the exit status is
/// non-zero.
fn serve_until_listening(data: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut server = Server::spawn(
        data.parent().unwrap(),
        env,
        &["--dir", p(data), "--responder-listen", "off"],
    );
    match server.ready_or_exit_blocking() {
        Ok(_) => {
            assert!(server.log().contains("signet serve is listening"));
            let status = server.terminate_blocking();
            assert!(status.success(), "{status}:\n{}", server.log());
            (true, server.log())
        }
        Err(status) => {
            let text = server.log();
            assert!(!status.success(), "serve exited 0:\n{text}");
            assert!(!text.contains("is listening"), "{text}");
            (false, text)
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A refused start: not listening, and the message names `file` and each of `needles`.
fn assert_refused(
    data: &Path,
    env: &[(&str, &str)],
    file: &Path,
    needles: &[&str],
    secrets: &[&str],
) {
    let (listened, log) = serve_until_listening(data, env);
    assert!(!listened, "serve started anyway:\n{log}");
    assert!(!log.contains("listening"), "{log}");
    let error = log
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("no error line:\n{log}"));
    assert!(
        error.contains(p(file)),
        "the message does not name {}: {error}",
        file.display()
    );
    for needle in needles {
        assert!(error.contains(needle), "expected {needle:?}: {error}");
    }
    for secret in secrets {
        assert!(!log.contains(secret), "the secret is in the message: {log}");
    }
    eprintln!("refused: {error}");
}

#[test]
fn serve_refuses_an_admin_token_others_can_read() {
    let (_tmp, data) = prepared(&[]);
    let token_file = data.join("admin.token");
    let token = fs::read_to_string(&token_file).unwrap().trim().to_string();
    assert!(token.starts_with("sa_") && token.len() > 40, "{token}");
    for mode in [0o640, 0o604, 0o644, 0o660] {
        chmod(&token_file, mode);
        assert_refused(
            &data,
            &[],
            &token_file,
            &[&format!("mode {mode:o}"), "chmod 600"],
            &[&token, &token[3..]],
        );
    }
    chmod(&token_file, 0o600);
    let (listened, log) = serve_until_listening(&data, &[]);
    assert!(listened, "0600 should start:\n{log}");
    assert!(!log.contains(&token), "the admin token is in the log");
}

#[test]
fn serve_refuses_an_issuing_key_others_can_read() {
    let (_tmp, data) = prepared(&[]);
    let key = data.join("issuing_ca.key");
    let pem = fs::read_to_string(&key).unwrap();
    let body: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!body.is_empty());
    for mode in [0o640, 0o644, 0o604] {
        chmod(&key, mode);
        assert_refused(
            &data,
            &[],
            &key,
            &[&format!("mode {mode:o}"), "chmod 600"],
            &body,
        );
    }
    chmod(&key, 0o600);
    let (listened, log) = serve_until_listening(&data, &[]);
    assert!(listened, "0600 should start:\n{log}");
}

#[test]
fn serve_refuses_an_encrypted_key_without_the_right_passphrase() {
    let env = [("SIGNET_CA_PASSPHRASE", PASSPHRASE)];
    let (_tmp, data) = prepared(&env);
    let key = data.join("issuing_ca.key");
    assert!(
        fs::read_to_string(&key)
            .unwrap()
            .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----")
    );
    // Missing: the message says which variable to set.
    assert_refused(&data, &[], &key, &["SIGNET_CA_PASSPHRASE"], &[PASSPHRASE]);
    // Empty counts as missing.
    assert_refused(
        &data,
        &[("SIGNET_CA_PASSPHRASE", "")],
        &key,
        &["SIGNET_CA_PASSPHRASE"],
        &[PASSPHRASE],
    );
    // Wrong: said so, and neither passphrase is repeated.
    let wrong = "Not-The-Passphrase-93a7f0";
    assert_refused(
        &data,
        &[("SIGNET_CA_PASSPHRASE", wrong)],
        &key,
        &["wrong passphrase"],
        &[PASSPHRASE, wrong],
    );
    let (listened, log) = serve_until_listening(&data, &env);
    assert!(listened, "the right passphrase should start:\n{log}");
    assert!(!log.contains(PASSPHRASE));
}

/// Every file under `dir` that holds a PEM private key.
fn private_key_files(dir: &Path, base: &Path, found: &mut Vec<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            private_key_files(&path, base, found);
        } else if fs::read(&path)
            .unwrap()
            .windows(11)
            .any(|w| w == b"PRIVATE KEY")
        {
            found.push(path.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

#[test]
fn the_ocsp_signer_key_is_never_written() {
    let (_tmp, data) = prepared(&[]);
    // With the responder on, until it has its delegated signer.
    let mut server = Server::start_blocking(data.parent().unwrap(), &[], &["--dir", p(&data)]);
    let url = server.ocsp_url("/readyz");
    let deadline = Instant::now() + STARTUP;
    loop {
        use std::io::{Read, Write};
        let ready =
            std::net::TcpStream::connect(("127.0.0.1", server.ocsp_port())).is_ok_and(|mut c| {
                let _ = c.write_all(b"GET /readyz HTTP/1.0\r\n\r\n");
                let mut answer = String::new();
                let _ = c.read_to_string(&mut answer);
                answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200")
            });
        if ready {
            break;
        }
        server.alive();
        assert!(
            Instant::now() < deadline,
            "{url}: not ready:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut found = Vec::new();
    private_key_files(&data, &data, &mut found);
    drop(server);
    found.sort();
    assert_eq!(
        found,
        ["issuing_ca.key", "provisioners/default.key", "root_ca.key"],
        "private keys in the data directory with the responder signing"
    );
}
