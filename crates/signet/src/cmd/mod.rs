//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod bootstrap;
pub mod ca;
pub mod init;
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

/// The request was refused (bad input or policy), as opposed to failing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refused(pub String);

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
        .with_context(|| format!("opening the {} database", backend_name(url)))?;
    store
        .migrate()
        .await
        .context("applying database migrations")?;
    Ok(store)
}

fn backend_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}
