//! `signet acme eab create|list|revoke`: the external account binding keys of `acme`
//! provisioners (RFC 8555 section 7.3.4), kept in the CA's database so that every `signet
//! serve` on it accepts them. An ACME client binds a new account with the key id and HMAC
//! key printed by `create` (certbot `--eab-kid`/`--eab-hmac-key`, lego `--eab --kid
//! --hmac`); each key binds one account.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use ring::rand::{SecureRandom, SystemRandom};
use signet_api::ProvisionerKind;
use signet_authority::Requester;
use signet_store::{AuditAction, AuditEntry, AuditOutcome, Store};

use super::Refused;
use crate::config::Config;

#[derive(Debug, Args)]
pub struct AcmeArgs {
    #[command(subcommand)]
    command: AcmeCommand,
}

#[derive(Debug, Subcommand)]
enum AcmeCommand {
    /// External account binding keys.
    #[command(subcommand)]
    Eab(EabCommand),
}

#[derive(Debug, Subcommand)]
enum EabCommand {
    /// Make a key for one new account of an ACME provisioner; prints its key id and HMAC key.
    Create(EabCreateArgs),
    /// List the keys (never their HMAC keys), and the accounts they bound.
    List(EabListArgs),
    /// Revoke a key: it binds no account from now on (an account it bound stays).
    Revoke(EabRevokeArgs),
}

#[derive(Debug, Args)]
struct EabCreateArgs {
    /// Data directory.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The ACME provisioner whose accounts the key binds.
    #[arg(long)]
    provisioner: String,
}

#[derive(Debug, Args)]
struct EabListArgs {
    /// Data directory.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// Only this provisioner's keys.
    #[arg(long)]
    provisioner: Option<String>,
}

#[derive(Debug, Args)]
struct EabRevokeArgs {
    /// Data directory.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The key id to revoke.
    kid: String,
}

pub async fn run(args: AcmeArgs) -> anyhow::Result<()> {
    match args.command {
        AcmeCommand::Eab(EabCommand::Create(a)) => {
            let cfg = Config::load_dir(&a.dir)?;
            let store = super::open_store(&cfg.database_url()).await?;
            let result = create(&cfg, &store, &a.provisioner).await;
            store.close().await;
            let (kid, hmac) = result?;
            println!("kid: {kid}");
            println!("hmac_key: {hmac}");
            Ok(())
        }
        AcmeCommand::Eab(EabCommand::List(a)) => {
            let cfg = Config::load_dir(&a.dir)?;
            let store = super::open_store(&cfg.database_url()).await?;
            let keys = store.acme_eab_keys(a.provisioner.as_deref()).await;
            store.close().await;
            let keys = keys?;
            println!(
                "{:<24} {:<16} {:<22} {:<24} STATE",
                "KID", "PROVISIONER", "CREATED", "ACCOUNT"
            );
            for k in keys {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.account_id.is_some() {
                    "used"
                } else {
                    "unused"
                };
                println!(
                    "{:<24} {:<16} {:<22} {:<24} {state}",
                    k.kid,
                    k.provisioner,
                    signet_ca::rfc3339(k.created_at),
                    k.account_id.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        AcmeCommand::Eab(EabCommand::Revoke(a)) => {
            let cfg = Config::load_dir(&a.dir)?;
            let store = super::open_store(&cfg.database_url()).await?;
            let audit = AuditEntry {
                actor: Requester::local_user().to_string(),
                action: AuditAction::AcmeEabKey,
                serial: None,
                outcome: AuditOutcome::Ok,
                detail: format!("revoke {}", a.kid),
            };
            let revoked = store.acme_revoke_eab_key(&a.kid, &audit).await;
            store.close().await;
            if !revoked? {
                return Err(Refused(format!(
                    "there is no unrevoked external account binding key {:?}",
                    a.kid
                ))
                .into());
            }
            println!("revoked external account binding key {}", a.kid);
            Ok(())
        }
    }
}

/// Make and store a key for `provisioner` (which must be an `acme` provisioner of `cfg`):
/// its key id and HMAC key, base64url.
pub async fn create(
    cfg: &Config,
    store: &Store,
    provisioner: &str,
) -> anyhow::Result<(String, String)> {
    let known = cfg
        .provisioners
        .iter()
        .any(|p| p.name == provisioner && p.kind == ProvisionerKind::Acme);
    if !known {
        return Err(Refused(format!(
            "there is no ACME provisioner named {provisioner:?} (signet provisioner add acme --name {provisioner})"
        ))
        .into());
    }
    let rng = SystemRandom::new();
    let mut kid = [0u8; 12];
    let mut hmac = [0u8; 32];
    rng.fill(&mut kid)
        .and_then(|()| rng.fill(&mut hmac))
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    let kid = signet_acme::jws::b64url(&kid);
    let hmac = signet_acme::jws::b64url(&hmac);
    let audit = AuditEntry {
        actor: Requester::local_user().to_string(),
        action: AuditAction::AcmeEabKey,
        serial: None,
        outcome: AuditOutcome::Ok,
        detail: format!("create {kid} for {provisioner}"),
    };
    store
        .acme_create_eab_key(&kid, provisioner, &hmac, &audit)
        .await
        .context("storing the external account binding key")?;
    Ok((kid, hmac))
}
