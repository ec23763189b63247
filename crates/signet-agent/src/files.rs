//! The agent's file writes, through the workspace's one atomic write
//! ([`signet_ca::files::write_atomic`]), with the file named in the error.

use std::path::Path;

use anyhow::Context;

/// Replace `path` with `bytes` atomically, with exactly `mode` (see
/// [`signet_ca::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    signet_ca::files::write_atomic(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))
}

/// Write a new file `path` with exactly `mode`, refusing to replace one (see
/// [`signet_ca::files::write_new`]).
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    signet_ca::files::write_new(path, bytes, mode)
        .with_context(|| format!("writing {}", path.display()))
}
