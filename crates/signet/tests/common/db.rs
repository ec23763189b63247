//! The database read back without Signet: the `sqlite3` shell for SQLite files and `psql`
//! for PostgreSQL, so that what a test checks after a fault is what is on disk, not what the
//! server's own code reads.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use der::Decode;

use super::{sqlite3, text};

/// The `psql` binary: on PATH, else beside `initdb` under /usr/lib/postgresql/<version>/bin.
pub fn psql_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("psql"))
            .find(|f| f.is_file())
    });
    if let Some(found) = on_path {
        return found;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| {
                    let v = e.file_name().to_str()?.parse::<u32>().ok()?;
                    let psql = e.path().join("bin/psql");
                    psql.is_file().then_some((v, psql))
                })
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().map(|(_, f)| f).unwrap_or_else(|| {
        panic!("psql not found on PATH or under /usr/lib/postgresql/*/bin (apt-get install postgresql-client)")
    })
}

/// `psql URL -c SQL` (unaligned, tuples only, stopping at the first error): its stdout
/// lines, fields separated by `|`.
pub fn psql(url: &str, sql: &str) -> Vec<String> {
    let o = Command::new(psql_binary())
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run psql");
    assert!(o.status.success(), "psql {sql}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A Signet database URL (`sqlite://PATH[?…]` or `postgres://…`), to be read independently.
pub fn query(url: &str, sql: &str) -> Vec<String> {
    match sqlite_path(url) {
        Some(path) => sqlite3(&path, sql),
        None => psql(url, sql),
    }
}

fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// The database URL a data directory's server uses: `db_url` if given (PostgreSQL), else
/// the SQLite file in `data`.
pub fn url_of(data: &Path, db_url: Option<&str>) -> String {
    match db_url {
        Some(url) => url.to_string(),
        None => format!("sqlite://{}", data.join("signet.db").display()),
    }
}

/// One `certificates` row as read by the independent client.
#[derive(Debug, Clone)]
pub struct Row {
    pub serial: String,
    pub requester: String,
    pub revoked: bool,
    pub reason: Option<i64>,
    /// The serial in the stored DER, decoded here, as canonical hex.
    pub der_serial: String,
}

/// Every certificate row, read with `sqlite3`/`psql`; each row's DER is decoded and must
/// hold the serial its row is keyed by.
pub fn certificates(url: &str) -> Vec<Row> {
    let der_hex = if sqlite_path(url).is_some() {
        "hex(der)"
    } else {
        "encode(der, 'hex')"
    };
    let sql = format!(
        "SELECT serial, requester, revoked_at IS NOT NULL, COALESCE(revocation_reason, -1), \
         {der_hex} FROM certificates ORDER BY serial"
    );
    query(url, &sql)
        .into_iter()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            assert_eq!(f.len(), 5, "unexpected row: {line}");
            let der = hex::decode(f[4].to_ascii_lowercase())
                .unwrap_or_else(|e| panic!("{}: DER column is not hex: {e}", f[0]));
            let cert = x509_cert::Certificate::from_der(&der)
                .unwrap_or_else(|e| panic!("{}: the stored DER is not a certificate: {e}", f[0]));
            let bytes = cert.tbs_certificate.serial_number.as_bytes();
            let trimmed = match bytes {
                [0, rest @ ..] if !rest.is_empty() => rest,
                b => b,
            };
            let reason: i64 = f[3].parse().unwrap();
            let revoked = matches!(f[2], "t" | "1" | "true");
            assert_eq!(
                revoked,
                reason >= 0,
                "{}: revoked_at and revocation_reason disagree",
                f[0]
            );
            Row {
                serial: f[0].to_string(),
                requester: f[1].to_string(),
                revoked,
                reason: (reason >= 0).then_some(reason),
                der_serial: hex::encode(trimmed),
            }
        })
        .collect()
}

/// `(action, serial)` of every `audit_log` row with outcome `ok` and a serial, with counts.
pub fn audited(url: &str) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for line in query(
        url,
        "SELECT action, serial FROM audit_log WHERE outcome = 'ok' AND serial IS NOT NULL",
    ) {
        let (action, serial) = line.split_once('|').unwrap();
        *out.entry((action.to_string(), serial.to_string()))
            .or_default() += 1;
    }
    out
}

/// What clients were told, held against the database read independently: every serial
/// answered 201 is stored once, with its DER holding that serial and an `issue` audit row;
/// every acknowledged revocation is stored with its audit row; no serial was handed out
/// twice; every row decodes. Returns the rows, for further checks. `what` prefixes messages.
pub fn assert_recorded(url: &str, what: &str, issued: &[String], revoked: &[String]) -> Vec<Row> {
    let unique: BTreeSet<&String> = issued.iter().collect();
    assert_eq!(
        unique.len(),
        issued.len(),
        "[{what}] a serial was handed out twice"
    );
    let rows = certificates(url);
    let by_serial: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.serial.as_str(), r)).collect();
    assert_eq!(by_serial.len(), rows.len(), "[{what}] a serial repeats");
    for row in &rows {
        assert_eq!(
            row.serial, row.der_serial,
            "[{what}] a row's DER holds another serial"
        );
    }
    let audit = audited(url);
    for serial in issued {
        let row = by_serial.get(serial.as_str()).unwrap_or_else(|| {
            panic!("[{what}] {serial} was answered 201 but is not in the database")
        });
        assert!(
            row.requester.starts_with("token:"),
            "[{what}] {serial} has requester {:?}",
            row.requester
        );
        assert!(
            audit.contains_key(&("issue".to_string(), serial.clone())),
            "[{what}] {serial} is stored without its issue audit row"
        );
    }
    for serial in revoked {
        let row = by_serial
            .get(serial.as_str())
            .unwrap_or_else(|| panic!("[{what}] revoked {serial} is not in the database"));
        assert!(
            row.revoked,
            "[{what}] the acknowledged revocation of {serial} was lost"
        );
        assert!(
            audit.contains_key(&("revoke".to_string(), serial.clone())),
            "[{what}] {serial} was revoked without its audit row"
        );
    }
    // A certificate issued through the API is never stored without its audit row, whether
    // or not its client was told (a request cut off by the fault may have committed).
    for row in rows.iter().filter(|r| r.requester.starts_with("token:")) {
        assert!(
            audit.contains_key(&("issue".to_string(), row.serial.clone())),
            "[{what}] {} is stored without its issue audit row (half-written)",
            row.serial
        );
        if row.revoked {
            assert!(
                audit.contains_key(&("revoke".to_string(), row.serial.clone())),
                "[{what}] {} is revoked without its audit row (half-written)",
                row.serial
            );
        }
    }
    rows
}
