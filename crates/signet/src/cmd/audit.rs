//! `signet audit`: read the server's audit log (admin), as a table or as JSON lines.

use clap::Args;
use serde_json::Value;

use super::list::{Paging, cell};

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
    #[command(flatten)]
    paging: Paging,
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
    let header = ["ID", "AT", "ACTOR", "ACTION", "OUTCOME", "SERIAL", "DETAIL"];
    args.paging
        .print("/v1/audit", &filters, "records", &header, row)
        .await
}
