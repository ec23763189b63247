//! One module per subcommand.

pub mod acme;
pub mod audit;
pub mod backup;
pub mod bootstrap;
pub mod ca;
pub mod certificate;
pub mod context;
pub mod init;
pub mod inspect;
pub mod issue;
pub mod list;
pub mod migrate;
pub mod provisioner;
pub mod renew;
pub mod responder;
pub mod revoke;
pub mod serve;
pub mod staple;
pub mod token;

pub use signet_agent::error::{Causes, Refused, RefusedByCa, describe, exit_code};

/// The CA key passphrase from `SIGNET_CA_PASSPHRASE`, if set and non-empty.
pub fn passphrase() -> Option<zeroize::Zeroizing<String>> {
    std::env::var(crate::config::PASSPHRASE_ENV)
        .ok()
        .filter(|p| !p.is_empty())
        .map(zeroize::Zeroizing::new)
}

/// Open the store and bring its schema up to date.
pub async fn open_store(url: &str) -> anyhow::Result<signet_store::Store> {
    use anyhow::Context;
    let store = signet_store::Store::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!(connect_error_message(&e)))
        .with_context(|| format!("opening the {} database", backend_name(url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

/// Why the database could not be opened, said once: the store's error displays its source
/// too, and the source of an unreachable database is the message naming where and why.
pub fn connect_error_message(e: &signet_store::StoreError) -> String {
    match e {
        signet_store::StoreError::Unavailable(inner) => match std::error::Error::source(inner) {
            Some(cause) => cause.to_string(),
            None => e.to_string(),
        },
        other => other.to_string(),
    }
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}
