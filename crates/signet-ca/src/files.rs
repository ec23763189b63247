//! Writing files so that a crash never leaves a half-written one: the one implementation the
//! whole workspace uses (CA keys here, the binary's data directory, the workload agent's
//! files), so every file is written with the same modes and the same fsyncs.
//!
//! Both functions set exactly `mode` on the file from its creation on (the umask cannot widen
//! or narrow it, and a key is never readable by others, not even for a moment), fsync the
//! file, and fsync its directory so that the directory entry is durable too. Errors are plain
//! [`std::io::Error`]s; callers name the file in their own error type or message.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Replace `path` with `bytes` atomically: a temporary file in the same directory created
/// with `mode`, fsync, rename over `path`, fsync of the directory. A reader sees the old or
/// the new contents, never a mix; on failure the temporary file is removed and `path` is
/// untouched.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
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

/// Write `bytes` to a new file `path` with `mode` from its creation on, and fsync it and its
/// directory. Refuses to replace an existing file or symlink (`ErrorKind::AlreadyExists`); a
/// file it created but could not finish is removed.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let result = (|| -> io::Result<()> {
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
        if e.kind() != io::ErrorKind::AlreadyExists {
            let _ = fs::remove_file(path);
        }
        return Err(e);
    }
    File::open(parent(path))?.sync_all()
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
    }
}
