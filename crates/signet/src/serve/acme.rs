//! The `acme` provisioners of `signet.toml`, turned into the ACME server's settings
//! (checked whole before any socket is bound), and the server itself once the database is
//! open.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use signet_acme::{IdentifierTypes, ProvisionerSettings};
use signet_api::{ProvisionerConfig, ProvisionerKind};
use signet_ca::{Lifetime, Profile};

use crate::config::Config;

/// The settings of every `acme` provisioner in `cfg`.
pub fn settings(cfg: &Config, config_path: &Path) -> anyhow::Result<Vec<ProvisionerSettings>> {
    cfg.provisioners
        .iter()
        .filter(|p| p.kind == ProvisionerKind::Acme)
        .map(|p| {
            one(p).with_context(|| {
                format!("ACME provisioner {:?} in {}", p.name, config_path.display())
            })
        })
        .collect()
}

fn one(p: &ProvisionerConfig) -> anyhow::Result<ProvisionerSettings> {
    let token_or_k8s = [
        ("public_key_file", p.public_key_file.is_some()),
        ("issuer", p.issuer.is_some()),
        ("audience", p.audience.is_some()),
        ("jwks_file", p.jwks_file.is_some()),
        ("jwks", p.jwks.is_some()),
        ("namespaces", !p.namespaces.is_empty()),
        ("service_accounts", !p.service_accounts.is_empty()),
        ("trust_domain", p.trust_domain.is_some()),
        ("names", p.names.is_some()),
        ("max_token_age", p.max_token_age.is_some()),
    ];
    if let Some((key, _)) = token_or_k8s.iter().find(|(_, set)| *set) {
        bail!("{key} is not a setting of type = \"acme\"");
    }
    if p.name.is_empty()
        || p.name.len() > 64
        || !p
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        bail!("names are 1-64 characters of letters, digits, '-', '_' and '.'");
    }
    let identifiers = match &p.identifiers {
        None => IdentifierTypes::default(),
        Some(list) => {
            let mut types = IdentifierTypes {
                dns: false,
                ip: false,
            };
            for t in list {
                match t.as_str() {
                    "dns" => types.dns = true,
                    "ip" => types.ip = true,
                    other => bail!("identifiers: {other:?} is not dns or ip"),
                }
            }
            if !types.dns && !types.ip {
                bail!("identifiers: name at least one of dns and ip");
            }
            types
        }
    };
    let profile: Profile = p
        .profile
        .as_deref()
        .unwrap_or("server")
        .parse()
        .context("profile")?;
    if !p.policy.profiles.contains(&profile) {
        bail!("profile {profile} is not among the provisioner's [provisioners.policy] profiles");
    }
    let lifetime = p
        .lifetime
        .unwrap_or(Lifetime::new(signet_acme::DEFAULT_LIFETIME).context("lifetime")?);
    let mut va = signet_va::VaConfig::default();
    if let Some(r) = &p.resolver {
        va.resolver = Some(
            r.parse::<SocketAddr>()
                .with_context(|| format!("resolver {r:?} is not IP:PORT"))?,
        );
    }
    if let Some(port) = p.http01_port {
        va.http01_port = port;
    }
    if let Some(port) = p.tls_alpn01_port {
        va.tls_alpn01_port = port;
    }
    if let Some(nets) = &p.validation_networks {
        va.networks =
            signet_va::NetworkPolicy::parse_list(&nets.join(",")).context("validation_networks")?;
    }
    va.timeout = Duration::from_secs(10);
    if p.rate_limit_per_second == 0 {
        bail!("rate_limit_per_second must be at least 1");
    }
    if p.rate_limit_per_identity_per_second == Some(0) {
        bail!("rate_limit_per_identity_per_second must be at least 1");
    }
    if p.rate_limit_per_identity_burst.is_some() && p.rate_limit_per_identity_per_second.is_none() {
        bail!("rate_limit_per_identity_burst needs rate_limit_per_identity_per_second");
    }
    Ok(ProvisionerSettings {
        name: p.name.clone(),
        policy: p.policy.clone(),
        profile,
        lifetime,
        eab_required: p.eab.unwrap_or(false),
        identifiers,
        va,
        rate_limit: (p.rate_limit_per_second, p.rate_limit_burst),
        rate_limit_per_account: p.rate_limit_per_identity_per_second.map(|rate| {
            (
                rate,
                p.rate_limit_per_identity_burst
                    .unwrap_or(rate.saturating_mul(2)),
            )
        }),
    })
}
