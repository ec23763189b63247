//! The end-to-end harness shared by the tests in this directory (each test binary compiles
//! its own copy and uses only some of it):
//!
//! - [`server`]: `signet serve` and `signet responder` started on port 0 with
//!   `--ready-file`, waited for with a deadline, signalled, killed when dropped;
//! - [`pki`]: the openssl CLI, HTTPS clients trusting the test root, one-time tokens,
//!   CSRs, problem+json answers;
//! - [`db`]: the database read back with `sqlite3` or `psql`, never through Signet;
//! - here: command lines, the `signet` binary with a clean environment, paths.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod pki;
pub mod server;

pub use pki::{
    Minter, admin_token, client, client_with, csr, openssl, post_issue, problem, provider, serials,
    tls_config, token,
};
pub use server::{POLL, PROMPT_EXIT, Ready, STARTUP, Server, Watched};

use std::path::Path;
use std::process::{Command, Output};

/// A path as the `&str` a command line wants (test paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A finished command's status and output, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A loopback port that was free a moment ago: bind-then-release, which can race with
/// another process taking the port. Only for addresses a test must name before the process
/// using them starts and that cannot report a port of its own (nginx's `listen`, a URL
/// written into a configuration file, an address where nothing must listen); a `signet`
/// server binds port 0 and reports its port (see [`server::Server`]).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The `signet` binary under test, inheriting none of the settings it reads from the
/// environment (nor a log filter or a tuning knob), without colour codes.
pub fn base_command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_signet"));
    for var in [
        "SIGNET_CA_URL",
        "SIGNET_ROOT_FINGERPRINT",
        "SIGNET_CA_FILE",
        "SIGNET_TOKEN",
        "SIGNET_TOKEN_FILE",
        "SIGNET_OUT",
        "SIGNET_DIR",
        "SIGNET_PROFILE",
        "SIGNET_TTL",
        "SIGNET_KEY_TYPE",
        "SIGNET_SANS",
        "SIGNET_TIMEOUT",
        "SIGNET_ADMIN_TOKEN",
        "SIGNET_ADMIN_TOKEN_FILE",
        "SIGNET_CA_PASSPHRASE",
        "SIGNET_DATABASE_URL",
        "SIGNET_STORE_GROUP_WRITERS",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    // Never a saved client context of the machine's user (`signet context`): a test that
    // wants one sets XDG_CONFIG_HOME itself.
    cmd.env("XDG_CONFIG_HOME", "/nonexistent/signet-tests/config");
    cmd
}

/// `sqlite3 DB SQL` (the CLI is an independent reader of the file), its stdout lines.
pub fn sqlite3(db: &Path, sql: &str) -> Vec<String> {
    let o = Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI must be installed (apt-get install sqlite3)");
    assert!(o.status.success(), "sqlite3 {sql}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs `signet ARGS` in `cwd` (a client's working directory) with `env` added to the clean
/// environment of [`base_command`] and `stdin` written to its standard input.
pub fn signet_in(cwd: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = base_command();
    cmd.current_dir(cwd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    // A command that does not read its input may exit first: a broken pipe is fine.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    child.wait_with_output().unwrap()
}
