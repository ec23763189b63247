//! A provisioner as the authority sees it: its name, its policy, and for a `kubernetes`
//! provisioner the workloads it admits and the names its templates give them. How a
//! provisioner's tokens are verified (keys, JWKS, audiences) and how fast it may be used
//! (rate limits) is the API's business, not this crate's.

use std::collections::BTreeSet;

use signet_ca::{CaError, Policy, SubjectName};

use crate::Refusal;

/// The names a Kubernetes workload gets when its provisioner names no templates.
pub const DEFAULT_NAME_TEMPLATES: [&str; 3] = [
    "{sa}.{ns}.svc",
    "{sa}.{ns}.svc.cluster.local",
    "spiffe://{trust_domain}/ns/{ns}/sa/{sa}",
];
/// The SPIFFE trust domain when none is configured.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// What the authority needs to know of a provisioner.
#[derive(Debug)]
pub struct Provisioner {
    name: String,
    policy: Policy,
    kubernetes: Option<KubernetesNames>,
}

impl Provisioner {
    /// A `token` provisioner: its requesters may be issued names within their token's `sans`
    /// and its `policy`.
    pub fn token(name: &str, policy: Policy) -> Provisioner {
        Provisioner {
            name: name.to_string(),
            policy,
            kubernetes: None,
        }
    }

    /// An `acme` provisioner: its accounts may be issued the identifiers they proved
    /// control of (checked by the ACME server) that its `policy` allows.
    pub fn acme(name: &str, policy: Policy) -> Provisioner {
        Provisioner {
            name: name.to_string(),
            policy,
            kubernetes: None,
        }
    }

    /// A `kubernetes` provisioner: its workloads may be issued their template names, and
    /// names its `policy` allows.
    pub fn kubernetes(name: &str, policy: Policy, names: KubernetesNames) -> Provisioner {
        Provisioner {
            name: name.to_string(),
            policy,
            kubernetes: Some(names),
        }
    }

    /// The provisioner's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What its requesters may be issued (for `kubernetes`, beyond the template names).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// A `kubernetes` provisioner's workloads and names; `None` for a `token` provisioner.
    pub fn kubernetes_names(&self) -> Option<&KubernetesNames> {
        self.kubernetes.as_ref()
    }
}

/// A `kubernetes` provisioner's allow-lists and name templates over `{ns}`, `{sa}` and
/// `{trust_domain}`.
#[derive(Clone, Debug)]
pub struct KubernetesNames {
    namespaces: BTreeSet<String>,
    service_accounts: BTreeSet<String>,
    trust_domain: String,
    templates: Vec<String>,
}

/// A Kubernetes namespace: an RFC 1123 label.
pub fn is_namespace(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A service account name: an RFC 1123 subdomain.
pub fn is_service_account(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_namespace)
}

/// Fill a name template.
fn render(template: &str, ns: &str, sa: &str, trust_domain: &str) -> String {
    template
        .replace("{ns}", ns)
        .replace("{sa}", sa)
        .replace("{trust_domain}", trust_domain)
}

impl KubernetesNames {
    /// Check and build: `namespaces` allowed (empty: any), `service_accounts` allowed as
    /// `namespace/name` (empty: any), the trust domain (default [`DEFAULT_TRUST_DOMAIN`]) and
    /// the name templates (default [`DEFAULT_NAME_TEMPLATES`]). `Err` says what is wrong, in
    /// the words of the provisioner's settings.
    pub fn new(
        namespaces: &[String],
        service_accounts: &[String],
        trust_domain: Option<&str>,
        templates: Option<&[String]>,
    ) -> Result<KubernetesNames, String> {
        let mut namespace_set = BTreeSet::new();
        for ns in namespaces {
            if !is_namespace(ns) {
                return Err(format!(
                    "namespaces: {ns:?} is not a Kubernetes namespace name"
                ));
            }
            namespace_set.insert(ns.clone());
        }
        let mut service_account_set = BTreeSet::new();
        for entry in service_accounts {
            let ok = entry
                .split_once('/')
                .is_some_and(|(ns, sa)| is_namespace(ns) && is_service_account(sa));
            if !ok {
                return Err(format!(
                    "service_accounts: {entry:?} is not NAMESPACE/SERVICEACCOUNT"
                ));
            }
            service_account_set.insert(entry.clone());
        }
        let trust_domain = trust_domain.unwrap_or(DEFAULT_TRUST_DOMAIN).to_string();
        match signet_ca::DnsName::parse(&trust_domain) {
            Ok(d) if !d.is_wildcard() && d.as_str() == trust_domain => {}
            _ => {
                return Err(format!(
                    "trust_domain {trust_domain:?} is not a lowercase DNS name"
                ));
            }
        }
        let templates: Vec<String> = match templates {
            Some(t) => t.to_vec(),
            None => DEFAULT_NAME_TEMPLATES
                .iter()
                .map(|t| t.to_string())
                .collect(),
        };
        if templates.is_empty() {
            return Err("names: at least one name template is needed".into());
        }
        for t in &templates {
            // Every placeholder must be known, and a sample rendering must be a valid name.
            let rest = render(t, "", "", "");
            if rest.contains(['{', '}']) {
                return Err(format!(
                    "names: {t:?}: the placeholders are {{ns}}, {{sa}} and {{trust_domain}}"
                ));
            }
            let sample = render(t, "default", "app", &trust_domain);
            match SubjectName::parse_loose(&sample) {
                Ok(SubjectName::Dns(d)) if d.is_wildcard() => {
                    return Err(format!("names: {t:?}: wildcards are not templates"));
                }
                Ok(_) => {}
                Err(e) => return Err(format!("names: {t:?}: {e}")),
            }
        }
        Ok(KubernetesNames {
            namespaces: namespace_set,
            service_accounts: service_account_set,
            trust_domain,
            templates,
        })
    }

    /// The names the templates give the service account `ns/sa`.
    pub fn names_for(&self, ns: &str, sa: &str) -> Result<BTreeSet<SubjectName>, CaError> {
        // A valid template can still give an invalid name for a long service account
        // (over 253 characters): that is the requester's invalid name (400), not our error.
        self.templates
            .iter()
            .map(|t| SubjectName::parse_loose(&render(t, ns, sa, &self.trust_domain)))
            .collect()
    }

    /// Whether the allow-lists admit this workload; `Err` says why not.
    pub fn admit(&self, namespace: &str, service_account: &str) -> Result<(), Refusal> {
        if !self.namespaces.is_empty() && !self.namespaces.contains(namespace) {
            return Err(Refusal::ServiceAccountDenied(format!(
                "namespace {namespace:?} is not allowed by this provisioner"
            )));
        }
        let who = format!("{namespace}/{service_account}");
        if !self.service_accounts.is_empty() && !self.service_accounts.contains(&who) {
            return Err(Refusal::ServiceAccountDenied(format!(
                "service account {who} is not allowed by this provisioner"
            )));
        }
        Ok(())
    }

    /// The workload's policy: `policy` widened to allow exactly its template names.
    pub(crate) fn widen(
        &self,
        policy: &Policy,
        names: &BTreeSet<SubjectName>,
    ) -> Result<Policy, Refusal> {
        let mut policy = policy.clone();
        for name in names {
            allow_exactly(&mut policy, name)?;
        }
        Ok(policy)
    }
}

/// Widen `policy` to allow exactly `name` (a Kubernetes template name, already checked to be
/// the workload's own).
fn allow_exactly(policy: &mut Policy, name: &SubjectName) -> Result<(), Refusal> {
    match name {
        SubjectName::Dns(d) => policy.dns.push(signet_ca::DnsPattern::Exact(d.clone())),
        SubjectName::Ip(ip) => {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            policy.ip.push(
                format!("{ip}/{bits}")
                    .parse()
                    .map_err(|_| Refusal::Internal(format!("host network of {ip}")))?,
            );
        }
        // A prefix without a trailing '/' matches itself (and paths below it, which the
        // exact check before this excludes).
        SubjectName::Uri(u) => policy.uri_prefixes.push(u.clone()),
        SubjectName::Email(e) => policy.email.push(e.clone()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn templates_are_checked_and_rendered() {
        assert!(KubernetesNames::new(&[], &[], None, None).is_ok());
        for bad in ["{pod}.svc", "*.{ns}.svc", "spiffe://{ns}?x", ""] {
            let t = [bad.to_string()];
            assert!(
                KubernetesNames::new(&[], &[], None, Some(&t)).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            render(DEFAULT_NAME_TEMPLATES[2], "prod", "api", "cluster.local"),
            "spiffe://cluster.local/ns/prod/sa/api"
        );
        assert!(is_service_account("a.b-c"));
        assert!(!is_service_account("a/b"));
        assert!(!is_namespace("Prod"));
    }

    #[test]
    fn allow_lists_admit_only_their_workloads() {
        let names =
            KubernetesNames::new(&["prod".into()], &["prod/api".into()], None, None).unwrap();
        assert!(names.admit("prod", "api").is_ok());
        assert!(matches!(
            names.admit("dev", "api"),
            Err(Refusal::ServiceAccountDenied(m)) if m.contains("namespace \"dev\"")
        ));
        assert!(matches!(
            names.admit("prod", "web"),
            Err(Refusal::ServiceAccountDenied(m)) if m.contains("prod/web")
        ));
    }

    #[test]
    fn a_workload_policy_allows_exactly_its_template_names() {
        let names = KubernetesNames::new(&[], &[], None, None).unwrap();
        let own = names.names_for("prod", "api").unwrap();
        let policy = names.widen(&Policy::default(), &own).unwrap();
        for n in &own {
            assert!(policy.allows(n), "{n}");
        }
        assert!(!policy.allows(&SubjectName::parse_tagged("dns:web.prod.svc").unwrap()));
    }
}
