//! Issuance policy: which profiles, lifetimes and names a requester may have.
//!
//! Policy is data. The API layer builds one per provisioner (and the CLI one from
//! `signet.toml`) and passes it in; the core only evaluates it.

use std::fmt;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::CaError;
use crate::names::{DnsName, SubjectName};
use crate::profile::{Lifetime, Profile, ProfileLimits};

/// Most names one certificate may carry.
pub const MAX_NAMES: usize = 100;

/// A pattern for DNS names.
///
/// - `*` matches any DNS name;
/// - `*.example.com` matches any name under `example.com` at any depth (`a.example.com`,
///   `a.b.example.com`), but not `example.com` itself;
/// - anything else matches exactly that name.
#[derive(Clone, PartialEq, Eq)]
pub enum DnsPattern {
    /// Any name.
    Any,
    /// Strictly under this suffix.
    Suffix(DnsName),
    /// Exactly this name.
    Exact(DnsName),
}

impl DnsPattern {
    /// Whether `name` is allowed by this pattern. A requested wildcard `*.x` is treated as
    /// the name `x` plus one label, so it is allowed exactly where every name it covers is.
    pub fn matches(&self, name: &DnsName) -> bool {
        match self {
            DnsPattern::Any => true,
            DnsPattern::Exact(exact) => exact == name,
            DnsPattern::Suffix(suffix) => {
                let mut name_labels = name.labels_rev();
                let under = suffix.labels_rev().all(|l| name_labels.next() == Some(l));
                under && name_labels.next().is_some()
            }
        }
    }
}

impl FromStr for DnsPattern {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        if s == "*" {
            return Ok(DnsPattern::Any);
        }
        let name = DnsName::parse(s)?;
        match name.as_str().strip_prefix("*.") {
            Some(suffix) => Ok(DnsPattern::Suffix(DnsName::parse(suffix)?)),
            None => Ok(DnsPattern::Exact(name)),
        }
    }
}

impl fmt::Display for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsPattern::Any => f.write_str("*"),
            DnsPattern::Suffix(s) => write!(f, "*.{s}"),
            DnsPattern::Exact(e) => write!(f, "{e}"),
        }
    }
}

impl fmt::Debug for DnsPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsPattern({self})")
    }
}

impl Serialize for DnsPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DnsPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// What one requester may be issued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Allowed DNS name patterns (see [`DnsPattern`]).
    #[serde(default)]
    pub dns: Vec<DnsPattern>,
    /// Allowed IP ranges in CIDR form (`10.0.0.0/8`, `::1/128`).
    #[serde(default)]
    pub ip: Vec<IpNet>,
    /// Allowed URI prefixes, e.g. `spiffe://cluster.local/ns/`. A prefix that does not end in
    /// `/` matches itself exactly or followed by `/`, so `spiffe://a` never admits
    /// `spiffe://a.evil`.
    #[serde(default)]
    pub uri_prefixes: Vec<String>,
    /// Allowed email addresses: `*`, `@example.com` (any mailbox there) or an exact address.
    #[serde(default)]
    pub email: Vec<String>,
    /// Whether wildcard DNS names (`*.example.com`) may be issued at all.
    #[serde(default)]
    pub allow_wildcard_names: bool,
    /// Profiles this requester may use.
    #[serde(default = "all_profiles")]
    pub profiles: Vec<Profile>,
    /// Upper bound on lifetime for this requester, on top of each profile's own maximum.
    #[serde(default)]
    pub max_ttl: Option<Lifetime>,
}

impl Default for Policy {
    /// Allows every profile and no names at all: a policy must name what it allows.
    fn default() -> Self {
        Policy {
            dns: vec![],
            ip: vec![],
            uri_prefixes: vec![],
            email: vec![],
            allow_wildcard_names: false,
            profiles: all_profiles(),
            max_ttl: None,
        }
    }
}

fn all_profiles() -> Vec<Profile> {
    Profile::ALL.to_vec()
}

impl Policy {
    /// A policy that allows every well-formed name and every profile: for break-glass use
    /// and tests. Wildcards stay off.
    pub fn allow_all() -> Self {
        Policy {
            dns: vec![DnsPattern::Any],
            ip: vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())],
            uri_prefixes: vec![String::new()],
            email: vec!["*".into()],
            allow_wildcard_names: false,
            profiles: all_profiles(),
            max_ttl: None,
        }
    }

    /// The longest lifetime this policy grants under a profile's `limits`.
    pub fn max_lifetime(&self, limits: &ProfileLimits) -> Lifetime {
        match self.max_ttl {
            Some(p) => p.min(limits.max_ttl),
            None => limits.max_ttl,
        }
    }

    /// Check the profile, resolve and bound the lifetime, and approve every name. Returns the
    /// lifetime to issue for. Names must already be de-duplicated.
    pub fn approve(
        &self,
        profile: Profile,
        limits: &ProfileLimits,
        requested_ttl: Option<Lifetime>,
        names: &[SubjectName],
    ) -> Result<Lifetime, CaError> {
        if !self.profiles.contains(&profile) {
            return Err(CaError::ProfileDenied(profile.to_string()));
        }
        let max = self.max_lifetime(limits);
        let ttl = requested_ttl.unwrap_or(limits.default_ttl.min(max));
        if ttl > max {
            return Err(CaError::LifetimeTooLong {
                requested: ttl.duration(),
                max: max.duration(),
            });
        }
        if names.len() > MAX_NAMES {
            return Err(CaError::TooManyNames {
                count: names.len(),
                max: MAX_NAMES,
            });
        }
        check_profile_names(profile, names)?;
        let denied: Vec<String> = names
            .iter()
            .filter(|n| !self.allows(n))
            .map(|n| n.to_tagged())
            .collect();
        if !denied.is_empty() {
            return Err(CaError::NameDenied { names: denied });
        }
        Ok(ttl)
    }

    /// Whether policy allows this one name.
    pub fn allows(&self, name: &SubjectName) -> bool {
        match name {
            SubjectName::Dns(d) => {
                (self.allow_wildcard_names || !d.is_wildcard())
                    && self.dns.iter().any(|p| p.matches(d))
            }
            SubjectName::Ip(ip) => self.ip.iter().any(|net| net.contains(ip)),
            SubjectName::Uri(uri) => self.uri_prefixes.iter().any(|prefix| {
                prefix.is_empty()
                    || (prefix.ends_with('/') && uri.starts_with(prefix.as_str()))
                    || uri == prefix
                    || uri
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            }),
            SubjectName::Email(addr) => {
                let domain = addr.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
                self.email.iter().any(|p| {
                    p == "*"
                        || p.eq_ignore_ascii_case(addr)
                        || p.strip_prefix('@')
                            .is_some_and(|d| d.eq_ignore_ascii_case(domain))
                })
            }
        }
    }
}

fn check_profile_names(profile: Profile, names: &[SubjectName]) -> Result<(), CaError> {
    let has = |f: fn(&SubjectName) -> bool| names.iter().any(f);
    let host = has(|n| matches!(n, SubjectName::Dns(_) | SubjectName::Ip(_)));
    match profile {
        Profile::Server | Profile::Peer if !host => Err(CaError::MissingNames {
            profile: profile.to_string(),
            requirement: "at least one DNS or IP subject alternative name",
        }),
        Profile::Client if names.is_empty() => Err(CaError::MissingNames {
            profile: profile.to_string(),
            requirement: "at least one DNS, URI or email subject alternative name",
        }),
        Profile::Client if names.iter().all(|n| matches!(n, SubjectName::Ip(_))) => {
            Err(CaError::MissingNames {
                profile: profile.to_string(),
                requirement: "at least one DNS, URI or email subject alternative name",
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> SubjectName {
        SubjectName::parse_tagged(s).expect(s)
    }

    fn policy() -> Policy {
        Policy {
            dns: vec![
                "*.svc.cluster.local".parse().expect("p"),
                "api.example.com".parse().expect("p"),
            ],
            ip: vec!["10.0.0.0/8".parse().expect("net")],
            uri_prefixes: vec![
                "spiffe://cluster.local/ns/prod/".into(),
                "spiffe://other".into(),
            ],
            email: vec!["@example.com".into()],
            allow_wildcard_names: false,
            profiles: vec![Profile::Server, Profile::Peer],
            max_ttl: Some("48h".parse().expect("ttl")),
        }
    }

    #[test]
    fn names_are_checked_one_by_one_and_denials_are_named() {
        let p = policy();
        for ok in [
            "dns:a.svc.cluster.local",
            "dns:a.b.svc.cluster.local",
            "dns:api.example.com",
            "ip:10.1.2.3",
            "uri:spiffe://cluster.local/ns/prod/sa/x",
            "uri:spiffe://other",
            "uri:spiffe://other/x",
            "email:me@example.com",
        ] {
            assert!(p.allows(&name(ok)), "{ok} should be allowed");
        }
        for denied in [
            "dns:svc.cluster.local",
            "dns:x.example.com",
            "dns:*.svc.cluster.local",
            "ip:11.0.0.1",
            "uri:spiffe://cluster.local/ns/dev/sa/x",
            "uri:spiffe://other.evil/x",
            "email:me@evil.com",
        ] {
            assert!(!p.allows(&name(denied)), "{denied} should be denied");
        }
        let err = p
            .approve(
                Profile::Server,
                &ProfileLimits::default(),
                None,
                &[
                    name("dns:a.svc.cluster.local"),
                    name("dns:evil.com"),
                    name("ip:8.8.8.8"),
                ],
            )
            .expect_err("denied");
        match err {
            CaError::NameDenied { names } => assert_eq!(names, vec!["dns:evil.com", "ip:8.8.8.8"]),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn wildcards_need_permission() {
        let mut p = policy();
        p.allow_wildcard_names = true;
        assert!(p.allows(&name("dns:*.foo.svc.cluster.local")));
        assert!(
            !p.allows(&name("dns:*.example.com")),
            "the pattern allows api.example.com only"
        );
    }

    #[test]
    fn profile_and_lifetime_bounds() {
        let p = policy();
        let names = [name("dns:a.svc.cluster.local")];
        let limits = ProfileLimits::default();
        assert_eq!(
            p.approve(Profile::Server, &limits, None, &names)
                .expect("ok"),
            Lifetime::from_hours(24)
        );
        assert!(matches!(
            p.approve(Profile::Client, &limits, None, &names),
            Err(CaError::ProfileDenied(_))
        ));
        assert!(matches!(
            p.approve(
                Profile::Server,
                &limits,
                Some(Lifetime::from_hours(49)),
                &names
            ),
            Err(CaError::LifetimeTooLong { .. })
        ));
        assert!(matches!(
            p.approve(
                Profile::Server,
                &limits,
                None,
                &[name("uri:spiffe://other")]
            ),
            Err(CaError::MissingNames { .. })
        ));
        let many: Vec<_> = (0..=MAX_NAMES)
            .map(|i| name(&format!("dns:n{i}.svc.cluster.local")))
            .collect();
        assert!(matches!(
            p.approve(Profile::Server, &limits, None, &many),
            Err(CaError::TooManyNames { .. })
        ));
    }
}
