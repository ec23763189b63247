//! Output files: checking an output path before anything is spent, and writing files so that
//! a crash never leaves a half-written one (the workspace's one atomic write,
//! `signet_ca::files`, with the file named in the error).

use std::fs;
use std::path::Path;

pub use signet_agent::files::{write_atomic, write_new};

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
