//! Configuration loading: `signet.toml` through the binary's own `Config::load` (the file
//! `crates/signet/src/config.rs`, included by path since the binary has no library target,
//! with the data directory's file names it takes its defaults from, `datadir/layout.rs`),
//! plus the pieces it is made of that other code parses on their own: `Policy` and
//! `ProvisionerConfig`.
//!
//! Invariants: whatever loads can be written back with `toml::to_string` and loads again;
//! a `Policy` that parses serialises and parses back equal.
#![no_main]

#[allow(dead_code, clippy::all)]
#[path = "../../crates/signet/src/config.rs"]
mod config;
// config.rs takes its default file names from the binary's data-directory layout.
#[allow(dead_code, clippy::all)]
#[path = "../../crates/signet/src/datadir/layout.rs"]
mod datadir;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use signet_api::ProvisionerConfig;
use signet_ca::Policy;

/// One scratch file per process: `Config::load` reads a path.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("signet-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir.join("signet.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = scratch();
    std::fs::write(path, text).expect("write the scratch config");
    if let Ok(cfg) = config::Config::load(path) {
        let again = toml::to_string(&cfg).expect("a loaded config serialises");
        std::fs::write(path, &again).expect("write the scratch config");
        if let Err(e) = config::Config::load(path) {
            panic!(
                "a loaded config does not load again: {e:#}\n--- input\n{text}\n--- written\n{again}"
            );
        }
    }
    if let Ok(policy) = toml::from_str::<Policy>(text) {
        let again = toml::to_string(&policy).expect("a policy serialises");
        let back: Policy = toml::from_str(&again)
            .unwrap_or_else(|e| panic!("a policy does not parse back: {e}\n{again}"));
        assert_eq!(back, policy, "policy round trip\n{again}");
    }
    if let Ok(p) = toml::from_str::<ProvisionerConfig>(text) {
        let again = toml::to_string(&p).expect("a provisioner config serialises");
        let back: ProvisionerConfig = toml::from_str(&again)
            .unwrap_or_else(|e| panic!("a provisioner config does not parse back: {e}\n{again}"));
        assert_eq!(back, p, "provisioner config round trip\n{again}");
    }
});
