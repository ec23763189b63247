//! One `signet serve` per data directory: an exclusive lock on `DIR/serve.lock`, taken before
//! anything else is written, and held (by the open file) until the process exits. The file
//! holds the pid of the holder, for the message a second server gets. The lock is `flock(2)`,
//! which the kernel releases when the process dies however it dies, so a crashed server
//! never leaves a stale lock; the file itself stays and is reused.
//!
//! Also the `--pid-file` of `serve`, written once the server is ready and removed when it
//! stops.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

/// Takes the data directory's lock, or says which process holds it.
pub fn lock_data_dir(dir: &Path) -> anyhow::Result<DirLock> {
    let path = crate::datadir::DataDir::new(dir).lock_file();
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path);
    let (mut file, writable) = match opened {
        Ok(f) => (f, true),
        // A read-only directory or file system: the lock still works on a read-only
        // descriptor of an existing file (whatever then needs writing will say so).
        Err(e) if path.exists() => match File::open(&path) {
            Ok(f) => (f, false),
            Err(_) => return Err(e).with_context(|| format!("opening {}", path.display())),
        },
        Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let pid = text.trim();
            let pid = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                format!("pid {pid}")
            } else {
                "pid unknown".to_string()
            };
            bail!(
                "signet serve is already running on {} ({pid}; it holds {}): stop it first, \
                 or give this server a data directory of its own",
                dir.display(),
                path.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    if writable {
        let pid = format!("{}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(pid.as_bytes()));
        if let Err(e) = written {
            tracing::warn!(file = %path.display(), error = %e, "could not write the pid into the lock file");
        }
    }
    Ok(DirLock { _file: file })
}

/// The `--pid-file` of a running server: written (atomically, mode 0644) once it is ready,
/// removed when it stops, if it still names this process.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: String,
}

impl PidFile {
    pub fn write(path: &Path) -> anyhow::Result<PidFile> {
        let pid = format!("{}\n", std::process::id());
        crate::files::write_atomic(path, pid.as_bytes(), 0o644)
            .with_context(|| format!("writing the pid file {}", path.display()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
            pid,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if std::fs::read_to_string(&self.path).is_ok_and(|t| t == self.pid) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
