//! `signet context`: save, show or remove the client context (see [`signet_agent::context`]).
//!
//! `save` is `step ca bootstrap`: the root is fetched from the CA once without verifying
//! the connection, kept only if its SHA-256 is the fingerprint given, and then the CA's
//! `/v1/ca/chain` is fetched over a connection that trusts only that root, proving the
//! server chains to it. Only then is anything written. A fingerprint mismatch exits 4 and
//! writes nothing.

use clap::{Args, Subcommand};
use serde::Serialize;

use super::Refused;
use crate::client::{Api, CaUrl, Fingerprint, fetch_pinned_root, parse_certificates};
use signet_agent::context;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ContextArgs {
    #[command(subcommand)]
    command: Option<ContextCommand>,
    /// Without a subcommand: `save` with these flags (or, with none, `show`).
    #[command(flatten)]
    save: SaveArgs,
}

#[derive(Debug, Subcommand)]
enum ContextCommand {
    /// Fetch the CA's root, check it against --root-fingerprint, and save the CA URL and
    /// the root in the user's configuration directory ($XDG_CONFIG_HOME/signet or
    /// ~/.config/signet) for the client commands.
    Save(SaveArgs),
    /// Print the saved context.
    Show(ShowArgs),
    /// Remove the saved context.
    Remove,
}

#[derive(Debug, Args)]
struct SaveArgs {
    /// The Signet API URL, e.g. https://ca.internal:8443.
    #[arg(long, env = "SIGNET_CA_URL", value_name = "URL")]
    ca_url: Option<String>,
    /// The SHA-256 fingerprint of the CA's root, as `signet init` and `signet serve` print
    /// it (sha256:HEX; colons and case are ignored).
    #[arg(long, env = "SIGNET_ROOT_FINGERPRINT", value_name = "sha256:HEX")]
    root_fingerprint: Option<String>,
    /// Replace a saved context for another CA or root.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ShowArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Shown<'a> {
    ca_url: &'a str,
    root_fingerprint: String,
    root_file: String,
    root_subject: String,
    root_not_after: String,
    context_file: String,
    saved_at: &'a str,
}

pub async fn run(args: ContextArgs) -> anyhow::Result<()> {
    match args.command {
        Some(ContextCommand::Save(a)) => save(a).await,
        Some(ContextCommand::Show(a)) => show(a),
        Some(ContextCommand::Remove) => remove(),
        None if args.save.ca_url.is_none()
            && args.save.root_fingerprint.is_none()
            && !args.save.force =>
        {
            show(ShowArgs { json: false })
        }
        None => save(args.save).await,
    }
}

async fn save(args: SaveArgs) -> anyhow::Result<()> {
    let url = CaUrl::parse(args.ca_url.as_deref().ok_or_else(|| {
        Refused("pass --ca-url https://HOST:PORT (or set SIGNET_CA_URL)".into())
    })?)?;
    let fingerprint = Fingerprint::parse(args.root_fingerprint.as_deref().ok_or_else(|| {
        Refused(
            "pass --root-fingerprint sha256:HEX (as `signet init` or `signet serve` printed it)"
                .into(),
        )
    })?)?;
    // An existing context for another CA is kept unless --force; an unreadable one may be
    // replaced (that is how it is repaired).
    if !args.force
        && let Ok(Some(existing)) = context::load()
        && (existing.ca_url != url || existing.fingerprint != fingerprint)
    {
        return Err(Refused(format!(
            "a context for {} (root {}) is saved in {}; --force replaces it",
            existing.ca_url,
            existing.fingerprint,
            existing.path.display()
        ))
        .into());
    }
    let root = fetch_pinned_root(&url, &fingerprint).await?;
    // The pinned fetch did not verify the connection: prove the server chains to the root.
    let api = Api::new(url.clone(), std::slice::from_ref(&root), None)?;
    let chain = api.get_text("/v1/ca/chain", None).await.map_err(|e| {
        e.context("confirming that the server's TLS certificate chains to the fetched root")
    })?;
    parse_certificates(chain.as_bytes())?;
    let path = context::save(&url, &fingerprint, &root)?;
    eprintln!(
        "saved the context for {url} (root {fingerprint}) in {}",
        path.display()
    );
    Ok(())
}

fn show(args: ShowArgs) -> anyhow::Result<()> {
    let Some(ctx) = context::load()? else {
        let dir = context::dir()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "(no configuration directory: HOME is not set)".into());
        return Err(Refused(format!(
            "no saved context in {dir}; save one with `signet context save --ca-url URL \
             --root-fingerprint sha256:HEX`"
        ))
        .into());
    };
    let root = signet_ca::describe_certificate(&ctx.root)?;
    let shown = Shown {
        ca_url: ctx.ca_url.as_str(),
        root_fingerprint: ctx.fingerprint.to_string(),
        root_file: ctx.root_path.display().to_string(),
        root_subject: root.subject,
        root_not_after: root.not_after,
        context_file: ctx.path.display().to_string(),
        saved_at: &ctx.saved_at,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&shown)?);
    } else {
        println!("CA URL:           {}", shown.ca_url);
        println!("Root fingerprint: {}", shown.root_fingerprint);
        println!(
            "Root:             {} (valid until {})",
            crate::client::sanitize(&shown.root_subject, 500),
            shown.root_not_after
        );
        println!("Root file:        {}", shown.root_file);
        println!("Context file:     {}", shown.context_file);
        println!(
            "Saved at:         {}",
            crate::client::sanitize(shown.saved_at, 40)
        );
    }
    Ok(())
}

fn remove() -> anyhow::Result<()> {
    match context::remove()? {
        Some(path) => eprintln!("removed the saved context {}", path.display()),
        None => eprintln!("no saved context to remove"),
    }
    Ok(())
}
