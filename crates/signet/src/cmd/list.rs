//! `signet list`: list issued certificates (admin), as a table or as JSON lines.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{AdminArgs, ClientArgs, sanitize};

/// Most pages followed by --all before giving up (a server whose cursors never end).
const MAX_PAGES: usize = 100_000;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only certificates with this status.
    #[arg(long, value_parser = ["good", "revoked", "expired"])]
    status: Option<String>,
    /// Only certificates of this profile (of any origin: `server` includes the server's own
    /// TLS certificates; `ocsp-signer` lists the OCSP responders' certificates, `ca` the CA
    /// certificates).
    #[arg(long, value_parser = ["server", "client", "peer", "ocsp-signer", "ca"])]
    profile: Option<String>,
    /// Only certificates carrying this name (subject or SAN).
    #[arg(long)]
    name: Option<String>,
    /// Only good certificates expiring within this long, e.g. 24h.
    #[arg(long, value_name = "DURATION")]
    expiring_within: Option<String>,
    #[command(flatten)]
    paging: Paging,
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<Value>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// A string field of `item` for a table cell: control characters removed, `-` if absent.
pub(crate) fn cell(item: &Value, key: &str, max: usize) -> String {
    match item.get(key) {
        Some(Value::String(s)) => sanitize(s, max),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".to_string(),
    }
}

/// One table row: serial, status, profile, not_after, sans.
fn row(item: &Value) -> Vec<String> {
    let field = |k: &str| cell(item, k, 200);
    let sans = item
        .get("sans")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    vec![
        field("serial_number"),
        field("status"),
        field("profile"),
        field("not_after"),
        sanitize(&sans, 2000),
    ]
}

/// Render rows as an aligned table under `header`; the last column is not padded.
fn table(header: &[&str], items: &[Value], row: impl Fn(&Value) -> Vec<String>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(header.iter().map(|h| h.to_string()).collect())
        .chain(items.iter().map(row))
        .collect();
    let mut widths = vec![0usize; header.len()];
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

pub async fn run(args: ListArgs) -> anyhow::Result<()> {
    if let Some(d) = &args.expiring_within {
        d.parse::<signet_ca::Lifetime>()
            .map_err(|e| crate::cmd::Refused(format!("--expiring-within {d:?}: {e}")))?;
    }
    // By default only the certificates people asked for; the server's own and the OCSP
    // signers' (and CA certificates) come with --all or by asking for their --profile.
    let scope = (!args.paging.all && args.profile.is_none()).then(|| "requested".to_string());
    let filters = [
        ("status", &args.status),
        ("profile", &args.profile),
        ("name", &args.name),
        ("expiring_within", &args.expiring_within),
        ("scope", &scope),
    ];
    let header = ["SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "SANS"];
    args.paging
        .print("/v1/certificates", &filters, "certificates", &header, row)
        .await
}

/// The flags every admin listing shares, and how to walk one (keyset pages).
#[derive(Debug, Args)]
pub(crate) struct Paging {
    /// Page size (the server caps a page at 500).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// Start from this cursor (printed when there are more results).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow cursors until every match is listed (`list`: and include the server's own
    /// TLS certificates, the OCSP signers' and the CA certificates).
    #[arg(long)]
    all: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Data directory (for the default root_ca.crt and admin.token).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

impl Paging {
    /// List `path` with the given filters as the admin: a table under `header` with one
    /// `row` per item, or JSON lines with `--json`. `what` names the items.
    pub(crate) async fn print(
        &self,
        path: &str,
        filters: &[(&'static str, &Option<String>)],
        what: &str,
        header: &[&str],
        row: impl Fn(&Value) -> Vec<String>,
    ) -> anyhow::Result<()> {
        let bearer = self.admin.require(&self.dir)?;
        let api = self.client.connect(&self.dir).await?;
        let rows = self.fetch(&api, path, filters, &bearer, what).await?;
        if !self.json {
            print!("{}", table(header, &rows, row));
        }
        Ok(())
    }

    /// GET `path` with the given filters, page after page while `all`; returns the items
    /// collected (none with `json`, which prints them) and tells on stderr how to go on
    /// when more match. `what` names the items in that message.
    async fn fetch(
        &self,
        api: &crate::client::Api,
        path: &str,
        filters: &[(&'static str, &Option<String>)],
        bearer: &crate::client::Bearer,
        what: &str,
    ) -> anyhow::Result<Vec<Value>> {
        let mut query: Vec<(&str, String)> = filters
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (*k, v.clone())))
            .collect();
        if let Some(limit) = self.limit {
            query.push(("limit", limit.to_string()));
        }
        let mut cursor = self.cursor.clone();
        let mut collected = Vec::new();
        let stdout = std::io::stdout();
        let mut pages = 0usize;
        let more = loop {
            let mut q = query.clone();
            if let Some(c) = &cursor {
                q.push(("cursor", c.clone()));
            }
            let page: Page = api.get_json(path, &q, Some(bearer)).await?;
            if self.json {
                let mut out = stdout.lock();
                for item in &page.items {
                    writeln!(out, "{}", serde_json::to_string(item)?).context("writing output")?;
                }
            } else {
                collected.extend(page.items);
            }
            let next = page.next_cursor.filter(|c| !c.is_empty());
            pages += 1;
            match next {
                Some(n) if self.all => {
                    if cursor.as_deref() == Some(n.as_str()) || pages >= MAX_PAGES {
                        bail!("the server's listing cursor does not advance; stopping");
                    }
                    cursor = Some(n);
                }
                other => break other,
            }
        };
        if let Some(next) = more {
            eprintln!(
                "more {what} match: pass --all, or --cursor {}",
                sanitize(&next, 200)
            );
        }
        Ok(collected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_strips_control_characters() {
        let items = vec![
            serde_json::json!({"serial_number": "4a1b", "status": "good", "profile": "server",
                "not_after": "2030-01-01T00:00:00Z", "sans": ["dns:api.internal", "ip:10.0.0.1"]}),
            serde_json::json!({"serial_number": "7f00aa", "status": "revoked\u{1b}[2J", "profile": "client",
                "not_after": "2030-01-02T00:00:00Z", "sans": []}),
        ];
        let t = table(
            &["SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "SANS"],
            &items,
            row,
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("SERIAL  STATUS"));
        assert!(lines[1].starts_with("4a1b    good"));
        assert!(lines[1].ends_with("dns:api.internal,ip:10.0.0.1"));
        assert!(!t.contains('\u{1b}'));
        let col = lines[0].find("PROFILE").expect("header");
        assert_eq!(lines[1].find("server"), Some(col));
        assert_eq!(lines[2].find("client"), Some(col));
    }
}
