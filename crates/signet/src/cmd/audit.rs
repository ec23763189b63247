//! `signet audit`: read the server's audit log (admin), as a table or as JSON lines.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::list::{Paging, cell, table};
use crate::client::{AdminArgs, ClientArgs};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only records about this certificate (serial, hex).
    #[arg(long)]
    serial: Option<String>,
    /// Only records by this actor, exactly (e.g. admin, token:default:svc, mtls:SERIAL).
    #[arg(long)]
    actor: Option<String>,
    /// Only this action (e.g. issue, renew, revoke).
    #[arg(long)]
    action: Option<String>,
    /// Only this outcome.
    #[arg(long, value_parser = ["ok", "refused"])]
    outcome: Option<String>,
    /// Page size.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=500))]
    limit: Option<u32>,
    /// Start from this cursor (printed when there are more records).
    #[arg(long)]
    cursor: Option<String>,
    /// Follow cursors until every matching record is listed.
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

/// One table row: id, time, actor, action, outcome, serial, detail.
fn row(item: &Value) -> Vec<String> {
    ["id", "at", "actor", "action", "outcome", "serial", "detail"]
        .iter()
        .map(|k| cell(item, k, 300))
        .collect()
}

pub async fn run(args: AuditArgs) -> anyhow::Result<()> {
    let filters = [
        ("serial", &args.serial),
        ("actor", &args.actor),
        ("action", &args.action),
        ("outcome", &args.outcome),
    ];
    let paging = Paging {
        limit: args.limit,
        cursor: args.cursor.clone(),
        all: args.all,
        json: args.json,
    };
    let bearer = args.admin.require(&args.dir)?;
    let api = args.client.connect(&args.dir).await?;
    let rows = paging
        .fetch(&api, "/v1/audit", &filters, &bearer, "records")
        .await?;
    if !args.json {
        let header = ["ID", "AT", "ACTOR", "ACTION", "OUTCOME", "SERIAL", "DETAIL"];
        print!("{}", table(&header, &rows, row));
    }
    Ok(())
}
