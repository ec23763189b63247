//! Which addresses validation may connect to (the provisioner's `validation_networks`).
//!
//! A validation connects wherever an ACME client's DNS records point, so without a limit
//! anyone with an account could make the CA probe its own host (loopback), the cloud
//! metadata service (169.254.169.254) or any internal port. The default allows every
//! unicast address except loopback, link-local (which holds the metadata service),
//! unspecified and broadcast; private ranges stay allowed, since an internal CA validates
//! internal hosts. An explicit list replaces the default entirely.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

use crate::VaError;

/// An allow-list of networks, minus a deny-list (empty for an explicit list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

/// Never reached by the default policy.
const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",          // "this network", 0.0.0.0 unspecified (RFC 1122 3.2.1.3)
    "127.0.0.0/8",        // loopback
    "169.254.0.0/16",     // link-local, with the cloud metadata service
    "224.0.0.0/4",        // multicast
    "255.255.255.255/32", // limited broadcast
    "::/128",             // unspecified
    "::1/128",            // loopback
    "fe80::/10",          // link-local
    "ff00::/8",           // multicast
];

impl Default for NetworkPolicy {
    fn default() -> Self {
        let nets = |list: &[&str]| -> Vec<IpNet> {
            list.iter()
                .filter_map(|s| IpNet::from_str(s).ok())
                .collect()
        };
        NetworkPolicy {
            allow: nets(&["0.0.0.0/0", "::/0"]),
            deny: nets(DEFAULT_DENY),
        }
    }
}

impl NetworkPolicy {
    /// Parses a list of CIDR blocks or single addresses, separated by commas and/or
    /// whitespace (`"10.0.0.0/8, 2001:db8::/32, 192.0.2.7"`). The result allows exactly
    /// those networks.
    pub fn parse_list(s: &str) -> Result<Self, VaError> {
        let mut allow = Vec::new();
        for entry in s
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty())
        {
            let net = match IpNet::from_str(entry) {
                Ok(net) => net,
                Err(net_err) => match IpAddr::from_str(entry) {
                    Ok(ip) => IpNet::from(canonical(ip)),
                    Err(_) => {
                        return Err(VaError::InvalidNetwork {
                            entry: entry.to_owned(),
                            reason: net_err.to_string(),
                        });
                    }
                },
            };
            allow.push(net);
        }
        if allow.is_empty() {
            return Err(VaError::EmptyNetworkList);
        }
        Ok(NetworkPolicy {
            allow,
            deny: Vec::new(),
        })
    }

    /// Allows exactly these networks.
    pub fn from_networks(nets: impl IntoIterator<Item = IpNet>) -> Result<Self, VaError> {
        let allow: Vec<IpNet> = nets.into_iter().collect();
        if allow.is_empty() {
            return Err(VaError::EmptyNetworkList);
        }
        Ok(NetworkPolicy {
            allow,
            deny: Vec::new(),
        })
    }

    /// Whether validation may connect to `ip`. An IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`) is judged as the IPv4 address it is.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip))
            && !self.deny.iter().any(|net| net.contains(&ip))
    }

    /// Whether this is the default policy (everything but loopback, link-local,
    /// unspecified, multicast and broadcast).
    pub fn is_default(&self) -> bool {
        *self == NetworkPolicy::default()
    }

    /// The allowed networks (for the default policy, `0.0.0.0/0` and `::/0`, less the
    /// default exclusions).
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`, so a mapped address cannot slip past an IPv4 rule.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn default_denies_loopback_link_local_metadata_unspecified_multicast() {
        let p = NetworkPolicy::default();
        for denied in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "ff02::1",
            "255.255.255.255",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!p.allows(ip(denied)), "{denied} allowed by default");
        }
        for allowed in [
            "10.1.2.3",
            "192.168.1.1",
            "8.8.8.8",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(p.allows(ip(allowed)), "{allowed} denied by default");
        }
        assert!(p.is_default());
    }

    #[test]
    fn explicit_list_allows_exactly_its_networks() {
        let p = NetworkPolicy::parse_list("127.0.0.0/8, ::1/128 10.9.8.7").expect("list");
        assert!(p.allows(ip("127.0.0.1")));
        assert!(p.allows(ip("::1")));
        assert!(p.allows(ip("::ffff:127.0.0.2")));
        assert!(p.allows(ip("10.9.8.7")));
        assert!(!p.allows(ip("10.9.8.6")));
        assert!(!p.allows(ip("169.254.169.254")));
        assert!(!p.is_default());
        assert_eq!(p.allowed().len(), 3);
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(matches!(
            NetworkPolicy::parse_list(" , "),
            Err(VaError::EmptyNetworkList)
        ));
        for bad in ["10.0.0.0/33", "example.com", "10.0.0.0/8,nope", "::1/129"] {
            match NetworkPolicy::parse_list(bad) {
                Err(VaError::InvalidNetwork { .. }) => {}
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(matches!(
            NetworkPolicy::from_networks(Vec::new()),
            Err(VaError::EmptyNetworkList)
        ));
    }
}
