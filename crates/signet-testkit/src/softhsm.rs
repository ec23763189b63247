//! Throwaway SoftHSM2 tokens: a configuration file and a token directory in a temporary
//! directory, removed on drop. A process uses one by having `SOFTHSM2_CONF` point at
//! [`SoftHsm::conf`] when it initialises the module ([`SoftHsm::env`]). Debian's `softhsm2`
//! and `opensc` packages provide the module, `softhsm2-util` and `pkcs11-tool`; a test that
//! needs them and does not find them fails with the package to install, never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The user PIN of every test token.
pub const USER_PIN: &str = "24681357";
/// The security officer PIN of every test token.
pub const SO_PIN: &str = "97531864";

/// A SoftHSM2 configuration with its own token directory.
#[derive(Debug)]
pub struct SoftHsm {
    dir: tempfile::TempDir,
}

impl SoftHsm {
    /// A configuration with one initialised token labelled `label` (PINs [`USER_PIN`],
    /// [`SO_PIN`]).
    pub fn with_token(label: &str) -> SoftHsm {
        let dir = tempfile::Builder::new()
            .prefix("signet-softhsm-")
            .tempdir()
            .unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n\
                 slots.removable = false\n",
                tokens.display()
            ),
        )
        .unwrap();
        let hsm = SoftHsm { dir };
        hsm.init_token(label);
        hsm
    }

    /// Initialise one more token labelled `label` in a free slot.
    pub fn init_token(&self, label: &str) {
        let out = Command::new(softhsm2_util())
            .envs(self.env())
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", USER_PIN, "--so-pin", SO_PIN])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "softhsm2-util --init-token: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The configuration file (what `SOFTHSM2_CONF` names).
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// The directory holding the tokens' files.
    pub fn token_dir(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }

    /// The environment a process needs to see these tokens.
    pub fn env(&self) -> [(&'static str, PathBuf); 1] {
        [("SOFTHSM2_CONF", self.conf())]
    }

    /// `pkcs11-tool --module M --login --pin P ARGS...` against these tokens; its stdout.
    pub fn pkcs11_tool(&self, args: &[&str]) -> String {
        let out = Command::new(find_binary("pkcs11-tool", "opensc"))
            .envs(self.env())
            .arg("--module")
            .arg(module_path())
            .args(["--login", "--pin", USER_PIN])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pkcs11-tool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The SoftHSM2 PKCS#11 module (Debian: `/usr/lib/softhsm/libsofthsm2.so`).
pub fn module_path() -> PathBuf {
    for candidate in [
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        "/usr/local/lib/softhsm/libsofthsm2.so",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    panic!("the SoftHSM2 module is not installed: `apt-get install softhsm2`");
}

fn softhsm2_util() -> PathBuf {
    find_binary("softhsm2-util", "softhsm2")
}

fn find_binary(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/usr/local/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: `apt-get install {package}`"))
}
