//! `signet backup`: a consistent copy of the SQLite database, taken while `serve` runs.
//!
//! SQLite's `VACUUM INTO` reads the database in one transaction, so the copy holds every
//! certificate, revocation and audit row committed before it started and nothing half
//! written, without stopping the server. The copy is a plain SQLite file: to restore, stop
//! the server and put it in place of the database (then `signet serve` as usual). The
//! copy is created with mode 0600 and never overwrites an existing file. PostgreSQL
//! deployments use PostgreSQL's own tools (`pg_dump`, or base backups with WAL
//! archiving), which this command points to. SQLite does not fsync the file `VACUUM INTO`
//! writes, so this command does, with its directory, before it reports success.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use signet_store::Backend;

use crate::config::Config;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Data directory whose signet.toml names the database (SIGNET_DATABASE_URL overrides
    /// it).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// Where to write the copy (a new file; mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    let url = Config::load_dir(&args.dir)?.database_url();
    let store = super::open_store(&url).await?;
    if store.backend() != Backend::Sqlite {
        store.close().await;
        bail!(
            "the database is PostgreSQL: back it up with PostgreSQL's tools (pg_dump, or base \
             backups with WAL archiving for point-in-time recovery)"
        );
    }
    let path = args
        .out
        .to_str()
        .context("the --out path is not valid UTF-8")?
        .to_string();
    // Created empty first, exclusively and private, so the copy is never readable by others
    // and never replaces an earlier backup.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let taken = store.snapshot_sqlite(&path).await;
    store.close().await;
    if let Err(e) = taken {
        // An empty file is not a backup: do not leave one that looks like it.
        let _ = std::fs::remove_file(&args.out);
        return Err(e).context("copying the database");
    }
    // SQLite does not fsync what VACUUM INTO writes: a backup that a power cut can undo is
    // no backup. The file, then its directory entry.
    std::fs::File::open(&args.out)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("syncing {}", args.out.display()))?;
    let parent = match args.out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::File::open(&parent)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", parent.display()))?;
    let size = std::fs::metadata(&args.out).map(|m| m.len()).unwrap_or(0);
    println!(
        "Wrote a consistent copy of the database ({size} bytes) to {}.",
        args.out.display()
    );
    println!(
        "It holds the records only: keep the data directory's keys (root offline, issuing CA, \
         provisioners) backed up separately."
    );
    Ok(())
}
