//! Reloading the provisioners of a running `signet serve` on SIGHUP.
//!
//! Only `[[provisioners]]` are reloaded (with their key and JWKS files); every other setting
//! needs a restart. The new set replaces the old one at once for new requests; requests in
//! flight and open connections are not touched. If the configuration does not load, or the
//! provisioners do not build, the error is logged and the previous provisioners stay.

use std::path::{Path, PathBuf};

use anyhow::Context;
use signet_api::{AppState, Provisioner};
use tokio::signal::unix::Signal;

use crate::config::Config;

/// Build the provisioners of `cfg` and check that they can serve together.
pub fn build_provisioners(cfg: &Config, config_path: &Path) -> anyhow::Result<Vec<Provisioner>> {
    // `acme` provisioners are served by the ACME server, not the API: checked here, built
    // by `serve`.
    super::acme::settings(cfg, config_path)?;
    let provisioners = cfg
        .provisioners
        .iter()
        .filter(|p| p.kind != signet_api::ProvisionerKind::Acme)
        .map(|p| {
            Provisioner::from_config(p, &cfg.base_dir)
                .with_context(|| format!("provisioner {:?} in {}", p.name, config_path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    signet_api::check_provisioners(&provisioners)
        .with_context(|| format!("provisioners in {}", config_path.display()))?;
    Ok(provisioners)
}

/// Read the configuration again and build its provisioners.
fn load_provisioners(config_path: &Path) -> anyhow::Result<Vec<Provisioner>> {
    let cfg = Config::load(config_path)?;
    build_provisioners(&cfg, config_path)
}

/// Reload the provisioners into `state` on every SIGHUP, until the signal stream ends.
pub async fn reload_on_sighup(mut hangup: Signal, config_path: PathBuf, state: AppState) {
    while hangup.recv().await.is_some() {
        let result = load_provisioners(&config_path)
            .and_then(|provisioners| Ok(state.replace_provisioners(provisioners)?));
        match result {
            Ok(()) => {
                let names: Vec<String> = state
                    .provisioner_names()
                    .into_iter()
                    .map(|(name, kind)| format!("{name} ({})", kind.as_str()))
                    .collect();
                tracing::info!(
                    config = %config_path.display(),
                    provisioners = names.join(", "),
                    "SIGHUP: reloaded the provisioners"
                );
                if names.is_empty() {
                    tracing::warn!(
                        "no provisioner is configured: only the admin credential can issue now"
                    );
                }
            }
            Err(e) => tracing::error!(
                config = %config_path.display(),
                error = crate::cmd::describe(&e),
                "SIGHUP: the provisioners could not be reloaded; the previous ones stay in force"
            ),
        }
    }
}
