//! Writing files so that a crash never leaves a half-written one.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;

/// Check, before anything is requested or spent, that `path` can be an output file: its
/// directory exists and it is not itself a directory. `flag` names the option in the error.
/// Writing can still fail later (permissions, a full disk), but the common mistake, a typo in
/// the directory, is caught while nothing has happened yet.
pub fn check_output_path(path: &Path, flag: &str) -> anyhow::Result<()> {
    let refuse = |why: String| -> anyhow::Error {
        crate::cmd::Refused(format!("{flag} {}: {why}", path.display())).into()
    };
    if path.file_name().is_none() || path.is_dir() {
        return Err(refuse("is a directory; name the file to write".into()));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(refuse(format!("{} is not a directory", dir.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(refuse(format!(
            "the directory {} does not exist",
            dir.display()
        ))),
        Err(e) => Err(refuse(format!(
            "cannot use the directory {}: {e}",
            dir.display()
        ))),
    }
}

/// Write `bytes` to `path` atomically: a temporary file in the same directory with `mode`,
/// fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .context("path has no file name")?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| -> anyhow::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()?;
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Write `bytes` to a new file `path` with `mode` from its creation on (never a moment more
/// open), and fsync it and its directory. Refuses to replace an existing file or symlink.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let result = (|| -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)?;
        // The umask may have taken bits away; set exactly `mode`.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = result {
        if e.kind() != std::io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(path);
        }
        return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing {}", dir.display()))
}
