//! Writing files so that a crash never leaves a half-written one: the one implementation the
//! whole workspace uses (CA keys here, the binary's data directory, the workload agent's
//! files), so every file is written with the same modes and the same fsyncs.
//!
//! Both functions write a temporary file beside the target with exactly `mode` from its
//! creation on (the umask cannot widen or narrow it, and a key is never readable by others,
//! not even for a moment), fsync it, put it in place in one step (rename, or a hard link
//! when an existing file must not be replaced), and fsync the directory so that the
//! directory entry is durable too. A reader never sees a half-written file. Errors are plain
//! [`std::io::Error`]s; callers name the file in their own error type or message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replace `path` with `bytes` atomically: a temporary file in the same directory created
/// with `mode`, fsync, rename over `path`, fsync of the directory. A reader sees the old or
/// the new contents, never a mix; on failure the temporary file is removed and `path` is
/// untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let tmp = temporary(path)?;
    let result = (|| -> io::Result<()> {
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
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Create `path` holding `bytes`, with `mode` from its creation on, unless it exists: the
/// bytes go to a temporary file in the same directory, fsynced, then hard-linked to `path`
/// (which fails if `path` exists, even when another process creates it at the same moment),
/// then the directory is fsynced. So `path` is never replaced and never seen half-written.
/// If `path` exists (as a file or a symlink) the error is `ErrorKind::AlreadyExists` and
/// nothing is written.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let tmp = temporary(path)?;
    let result = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have taken bits away; set exactly `mode`.
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::hard_link(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// A temporary file name beside `path`, unique to this process and call: `.NAME.tmp.PID.N`.
fn temporary(path: &Path) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(parent(path).join(format!(".{name}.tmp.{}.{n}", std::process::id())))
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn atomic_writes_replace_with_exactly_the_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        fs::write(&path, "old").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomic(&path, b"new", 0o600).expect("write_atomic");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(mode_of(&path), 0o600);
        // Nothing else is left in the directory (no temporary file).
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("admin.token")]);
        // A path naming no file is refused, and nothing is written.
        assert!(write_atomic(Path::new("/"), b"x", 0o600).is_err());
        // A missing directory fails and leaves nothing behind.
        let missing = dir.path().join("missing").join("f");
        assert!(write_atomic(&missing, b"x", 0o644).is_err());
        assert!(!dir.path().join("missing").exists());
    }

    #[test]
    fn new_files_are_never_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("root_ca.key");
        write_new(&path, b"secret", 0o600).expect("write_new");
        assert_eq!(mode_of(&path), 0o600);
        let e = write_new(&path, b"other", 0o600).expect_err("exists");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).expect("read"), b"secret");
        // A symlink in the way is not followed nor replaced.
        let link = dir.path().join("admin.token");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).expect("symlink");
        let e = write_new(&link, b"x", 0o600).expect_err("symlink");
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(!dir.path().join("elsewhere").exists());
        // No temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["admin.token", "root_ca.key"]);
    }
}
