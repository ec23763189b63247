//! `signet migrate`: apply the embedded migrations explicitly (they also apply at start).

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Data directory whose signet.toml names the database (SIGNET_DATABASE_URL or
    /// --database-url take precedence).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Database URL (sqlite://FILE or postgres://...).
    #[arg(long, env = crate::config::DATABASE_URL_ENV)]
    database_url: Option<String>,
}

pub async fn run(args: MigrateArgs) -> anyhow::Result<()> {
    let url = match (args.database_url, args.dir) {
        (Some(url), _) => url,
        (None, Some(dir)) => Config::load_dir(&dir)?.database_url(),
        (None, None) => bail!("give --dir DIR or --database-url URL"),
    };
    let store = super::open_store(&url).await?;
    println!("migrations applied ({} database)", store.backend());
    store.close().await;
    Ok(())
}
