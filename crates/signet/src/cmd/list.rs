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
    /// Only certificates of this profile.
    #[arg(long, value_parser = ["server", "client", "peer"])]
    profile: Option<String>,
    /// Only certificates carrying this name (subject or SAN).
    #[arg(long)]
    name: Option<String>,
    /// Only good certificates expiring within this long, e.g. 24h.
    #[arg(long, value_name = "DURATION")]
    expiring_within: Option<String>,
    /// Page size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: Option<u32>,
    /// Start from this cursor (printed when there are more results).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow cursors until every matching certificate is listed.
    #[arg(long)]
    all: bool,
    /// Print one JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Data directory (for the default root_ca.crt and admin.token).
    #[arg(long, default_value = "signet-data")]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<Value>,
    #[serde(default)]
    next_cursor: Option<String>,
}

/// One table row: serial, status, profile, not_after, sans.
fn row(item: &Value) -> [String; 5] {
    let field = |k: &str| sanitize(item.get(k).and_then(Value::as_str).unwrap_or("-"), 200);
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
    [
        field("serial_number"),
        field("status"),
        field("profile"),
        field("not_after"),
        sanitize(&sans, 2000),
    ]
}

/// Render rows as an aligned table with a header.
fn table(items: &[Value]) -> String {
    let header = ["SERIAL", "STATUS", "PROFILE", "NOT_AFTER", "SANS"].map(String::from);
    let rows: Vec<[String; 5]> = std::iter::once(header)
        .chain(items.iter().map(row))
        .collect();
    let mut widths = [0usize; 5];
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
    let bearer = args.admin.require(&args.dir)?;
    let api = args.client.connect(&args.dir).await?;
    let mut query: Vec<(&str, String)> = Vec::new();
    for (k, v) in [
        ("status", &args.status),
        ("profile", &args.profile),
        ("name", &args.name),
        ("expiring_within", &args.expiring_within),
    ] {
        if let Some(v) = v {
            query.push((k, v.clone()));
        }
    }
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }

    let mut cursor = args.cursor.clone();
    let mut collected = Vec::new();
    let stdout = std::io::stdout();
    let mut pages = 0usize;
    let more = loop {
        let mut q = query.clone();
        if let Some(c) = &cursor {
            q.push(("cursor", c.clone()));
        }
        let page: Page = api.get_json("/v1/certificates", &q, Some(&bearer)).await?;
        if args.json {
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
            Some(n) if args.all => {
                if cursor.as_deref() == Some(n.as_str()) || pages >= MAX_PAGES {
                    bail!("the server's listing cursor does not advance; stopping");
                }
                cursor = Some(n);
            }
            other => break other,
        }
    };
    if !args.json {
        print!("{}", table(&collected));
    }
    if let Some(next) = more {
        eprintln!(
            "more certificates match: pass --all, or --cursor {}",
            sanitize(&next, 200)
        );
    }
    Ok(())
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
        let t = table(&items);
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
