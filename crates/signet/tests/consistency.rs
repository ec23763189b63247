//! One behaviour per concept across commands, through the real binary and a running
//! `signet serve`: tokens on standard input (`--token-file -`, `--admin-token-file -`) and in
//! `SIGNET_TOKEN`, one exit code per outcome, errors that state their cause once, and RFC
//! 3339 times in output and log lines.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Output;

mod common;
use common::{Server, csr, p, signet_in, sqlite3, text};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether `s` starts with an RFC 3339 UTC time to the second (`2026-12-07T01:15:29`),
/// optionally with a fraction, then `Z`.
fn starts_with_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        r.into_iter()
            .all(|i| b.get(i).is_some_and(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let rest = &s[19..];
    let rest = rest
        .strip_prefix('.')
        .map(|r| r.trim_start_matches(|c: char| c.is_ascii_digit()))
        .unwrap_or(rest);
    rest.starts_with('Z')
}

/// Every value of `key=` in `text` (log fields, `key=VALUE` up to a space).
fn field_values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.match_indices(&format!("{key}="))
        .map(|(i, m)| {
            let v = &text[i + m.len()..];
            v.split_whitespace().next().unwrap_or("")
        })
        .collect()
}

fn count(data: &Path, table: &str) -> usize {
    sqlite3(
        &data.join("signet.db"),
        &format!("SELECT count(*) FROM {table}"),
    )[0]
    .parse()
    .unwrap()
}

#[test]
fn tokens_exit_codes_errors_and_times_agree_across_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start_blocking(tmp.path(), &[], &["--dir", p(&data)]);
    let url = server.base();
    let root = data.join("root_ca.crt");
    let client = tmp.path().join("client");
    std::fs::create_dir(&client).unwrap();
    let run =
        |args: &[&str], env: &[(&str, &str)], stdin: &str| signet_in(&client, env, args, stdin);
    let token = |san: &str| {
        let o = run(
            &[
                "token",
                "--ca-url",
                &url,
                "--dir",
                p(&data),
                "--subject",
                "s",
                "--san",
                san,
            ],
            &[],
            "",
        );
        assert!(o.status.success(), "{}", text(&o));
        stdout(&o)
    };

    // issue --token-file -: the token on standard input; the message's time is RFC 3339.
    csr(&client, "api.internal");
    let req = client.join("api.internal.csr");
    let out = client.join("api.pem");
    let issue = |stdin: &str, out: &Path| {
        run(
            &[
                "issue",
                "--ca-url",
                &url,
                "--ca-file",
                p(&root),
                "--csr",
                p(&req),
                "--out",
                p(out),
                "--token-file",
                "-",
            ],
            &[],
            stdin,
        )
    };
    let t = token("api.internal");
    let o = issue(&t, &out);
    assert!(o.status.success(), "{}", text(&o));
    let until = stderr(&o);
    let at = until.find("valid until ").unwrap() + "valid until ".len();
    assert!(starts_with_rfc3339(&until[at..]), "{until}");
    // The same token again: refused by the CA, exit 3; nothing written.
    let again = client.join("again.pem");
    let o = issue(&t, &again);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(stderr(&o).contains("token-replayed"), "{}", text(&o));
    assert!(!again.exists());
    // An empty standard input: bad input, exit 2, before any request.
    let used = count(&data, "used_tokens");
    let o = issue("", &again);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        stderr(&o).contains("the token on standard input is empty"),
        "{}",
        text(&o)
    );
    assert!(!again.exists());
    assert_eq!(count(&data, "used_tokens"), used);

    // list --admin-token-file -: the admin token on standard input.
    let admin = std::fs::read_to_string(data.join("admin.token")).unwrap();
    let o = run(
        &[
            "list",
            "--ca-url",
            &url,
            "--ca-file",
            p(&root),
            "--admin-token-file",
            "-",
            "--json",
        ],
        &[],
        &admin,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(stdout(&o).contains("serial_number"), "{}", text(&o));
    // Times in the listing are RFC 3339.
    let line: serde_json::Value = serde_json::from_str(stdout(&o).lines().next().unwrap()).unwrap();
    assert!(
        starts_with_rfc3339(line["not_after"].as_str().unwrap()),
        "{line}"
    );

    // bootstrap --token-file - (read once), then SIGNET_TOKEN with --token-file left at its
    // default; its log fields carry RFC 3339 times.
    let w1 = client.join("w1");
    let o = run(
        &[
            "bootstrap",
            "--ca-url",
            &url,
            "--ca-file",
            p(&root),
            "--out",
            p(&w1),
            "--token-file",
            "-",
            "--timeout",
            "30s",
        ],
        &[],
        &token("w1.internal"),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(w1.join("tls.crt").exists());
    let logged = stderr(&o);
    let times = field_values(&logged, "not_after");
    assert!(!times.is_empty(), "{logged}");
    assert!(times.iter().all(|t| starts_with_rfc3339(t)), "{logged}");
    assert!(
        logged.lines().all(starts_with_rfc3339),
        "every log line starts with an RFC 3339 time:\n{logged}"
    );
    let w2 = client.join("w2");
    let t2 = token("w2.internal");
    let o = run(
        &[
            "bootstrap",
            "--ca-url",
            &url,
            "--ca-file",
            p(&root),
            "--out",
            p(&w2),
            "--timeout",
            "30s",
        ],
        &[("SIGNET_TOKEN", t2.trim())],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let x509 = common::openssl(&[
        "x509",
        "-in",
        p(&w2.join("tls.crt")),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    assert!(stdout(&x509).contains("w2.internal"), "{}", text(&x509));

    // The server's log: RFC 3339 timestamps and time fields.
    let log = server.log();
    let log_lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            [" INFO ", " WARN ", " ERROR "]
                .iter()
                .any(|lvl| l.contains(lvl))
        })
        .collect();
    assert!(!log_lines.is_empty(), "{log}");
    assert!(log_lines.iter().all(|l| starts_with_rfc3339(l)), "{log}");
    let times = field_values(&log, "not_after");
    assert!(!times.is_empty(), "{log}");
    assert!(times.iter().all(|t| starts_with_rfc3339(t)), "{log}");

    // An error states its cause once: a missing provisioner key names the file and "No such
    // file or directory" one time each (exit 1: a local failure, nothing was asked).
    let missing = tmp.path().join("nowhere");
    let o = run(
        &[
            "token",
            "--ca-url",
            &url,
            "--dir",
            p(&missing),
            "--subject",
            "s",
            "--san",
            "a.internal",
        ],
        &[],
        "",
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    assert_eq!(err.matches("provisioners/default.key").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: "), "{err}");
}
