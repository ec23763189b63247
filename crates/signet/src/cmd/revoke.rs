//! `signet revoke`: revoke a certificate by serial number (admin token, or the holder over
//! mutual TLS with --client-cert/--client-key).

use std::path::PathBuf;

use clap::Args;
use serde::{Deserialize, Serialize};
use signet_ca::{RevocationReason, Serial};

use super::Refused;
use crate::client::{AdminArgs, ClientArgs, sanitize};

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// Serial number of the certificate, in hex (colons allowed).
    serial: String,
    /// Why the certificate is revoked (the RFC 5280 names the API accepts).
    #[arg(long, default_value = "unspecified", value_parser = RevocationReason::FOR_LEAF.map(RevocationReason::name))]
    reason: String,
    /// Data directory (for the default root_ca.crt and admin.token).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Debug, Serialize)]
struct RevokeRequest<'a> {
    reason: &'a str,
}

#[derive(Debug, Deserialize)]
struct RevokeResponse {
    serial_number: String,
    #[serde(default)]
    revoked_at: String,
    #[serde(default)]
    revocation_reason: String,
}

/// The serial as the API writes it (lowercase hex, no colons), or a refusal.
pub fn normalize_serial(s: &str) -> anyhow::Result<String> {
    Serial::from_hex(s.trim())
        .map(|s| s.to_hex())
        .map_err(|e| Refused(format!("serial {:?}: {e}", sanitize(s, 80))).into())
}

pub async fn run(args: RevokeArgs) -> anyhow::Result<()> {
    let serial = normalize_serial(&args.serial)?;
    // With a client certificate, the holder may revoke its own certificate: send the admin
    // token only when it was asked for explicitly.
    let holder = args.client.client_cert.is_some();
    let bearer = if holder {
        args.admin.credential(&args.dir, false)?
    } else {
        Some(args.admin.require(&args.dir)?)
    };
    let api = args.client.connect(&args.dir).await?;
    let answer: RevokeResponse = api
        .post_json(
            &format!("/v1/certificates/{serial}/revoke"),
            &RevokeRequest {
                reason: &args.reason,
            },
            bearer.as_ref(),
        )
        .await?;
    println!(
        "revoked {} at {} ({})",
        sanitize(&answer.serial_number, 80),
        sanitize(&answer.revoked_at, 40),
        sanitize(&answer.revocation_reason, 40)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_are_normalized_or_refused() {
        assert_eq!(normalize_serial("0A:1b:2C").expect("hex"), "0a1b2c");
        for bad in ["", "xyz", "../../admin", "12 34"] {
            let e = normalize_serial(bad).expect_err(bad);
            assert!(e.downcast_ref::<Refused>().is_some());
        }
    }
}
