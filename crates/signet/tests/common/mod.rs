//! Small helpers shared by the end-to-end tests in this directory. Each test binary compiles
//! its own copy and uses only some of them.
#![allow(dead_code)]

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

/// A loopback port that was free a moment ago.
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
