//! What a challenge reaches for an identifier: a checked DNS name or an IP address. The
//! caller has already decided the identifier is acceptable; this only makes sure it can be
//! put in a URL, a DNS query and an SNI without surprises.

use std::net::IpAddr;

use crate::{ChallengeKind, FailureKind, Identifier, ValidationFailure};

/// A validation target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// A DNS name, lowercase, without a trailing dot; for dns-01 without `*.`.
    Name(String),
    /// An IP address (RFC 8738).
    Ip(IpAddr),
}

impl Target {
    pub(crate) fn for_challenge(
        kind: ChallengeKind,
        id: &Identifier,
    ) -> Result<Target, ValidationFailure> {
        match id {
            Identifier::Ip(ip) => {
                if kind == ChallengeKind::Dns01 {
                    return Err(rejected(format!(
                        "dns-01 cannot validate the IP address {ip} (RFC 8738 section 7)"
                    )));
                }
                Ok(Target::Ip(ip.to_canonical()))
            }
            Identifier::Dns(raw) => {
                let lower = raw.trim_end_matches('.').to_ascii_lowercase();
                let name = match lower.strip_prefix("*.") {
                    Some(base) if kind == ChallengeKind::Dns01 => base.to_owned(),
                    Some(_) => {
                        return Err(rejected(format!(
                            "{kind} cannot validate the wildcard {raw}: only dns-01 can"
                        )));
                    }
                    None => lower,
                };
                if !is_dns_name(&name) {
                    return Err(rejected(format!("{raw:?} is not a valid DNS name")));
                }
                if name.parse::<IpAddr>().is_ok() {
                    return Err(rejected(format!("{raw} is an IP address, not a DNS name")));
                }
                Ok(Target::Name(name))
            }
        }
    }

    /// How the target is written in a URL's host (`[::1]` for IPv6).
    pub(crate) fn url_host(&self) -> String {
        match self {
            Target::Name(name) => name.clone(),
            Target::Ip(IpAddr::V4(ip)) => ip.to_string(),
            Target::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        }
    }

    /// The hostname as a validation record shows it.
    pub(crate) fn hostname(&self) -> String {
        match self {
            Target::Name(name) => name.clone(),
            Target::Ip(ip) => ip.to_string(),
        }
    }
}

fn rejected(detail: String) -> ValidationFailure {
    ValidationFailure::new(FailureKind::RejectedIdentifier, detail)
}

/// A DNS name of letters, digits, hyphens and underscores in dot-separated labels of 1 to 63
/// characters, 253 at most, no label starting or ending with a hyphen. (Underscores appear
/// in real internal names; they are harmless in a query and a URL.)
pub(crate) fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A challenge token: base64url characters only (RFC 8555 section 8.3), so it is safe in a
/// URL path.
pub(crate) fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// RFC 8738 section 6: the reverse-mapping name of an IP address, the SNI tls-alpn-01 sends
/// for an IP identifier (`4.3.2.1.in-addr.arpa`, nibbles for IPv6 under `ip6.arpa`).
pub(crate) fn reverse_name(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}.in-addr.arpa")
        }
        IpAddr::V6(v6) => {
            let mut out = String::with_capacity(72);
            for byte in v6.octets().iter().rev() {
                out.push_str(&format!("{:x}.{:x}.", byte & 0x0f, byte >> 4));
            }
            out.push_str("ip6.arpa");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names_follow_rfc_8738() {
        assert_eq!(
            reverse_name("192.0.2.5".parse().expect("ip")),
            "5.2.0.192.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().expect("ip")),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }

    #[test]
    fn targets() {
        let dns = |s: &str| Identifier::Dns(s.to_owned());
        assert_eq!(
            Target::for_challenge(ChallengeKind::Dns01, &dns("*.Example.COM.")),
            Ok(Target::Name("example.com".into()))
        );
        for (kind, id) in [
            (ChallengeKind::Http01, dns("*.example.com")),
            (ChallengeKind::TlsAlpn01, dns("*.example.com")),
            (ChallengeKind::Http01, dns("exa mple.com")),
            (ChallengeKind::Http01, dns("example.com/evil")),
            (ChallengeKind::Http01, dns("user@example.com")),
            (ChallengeKind::Http01, dns("")),
            (ChallengeKind::Http01, dns("-a.example.com")),
            (ChallengeKind::Http01, dns("a..example.com")),
            (ChallengeKind::Http01, dns("127.0.0.1")),
            (ChallengeKind::Dns01, dns("*.*.example.com")),
            (
                ChallengeKind::Dns01,
                Identifier::Ip("192.0.2.1".parse().expect("ip")),
            ),
        ] {
            let failure = Target::for_challenge(kind, &id).expect_err("must be rejected");
            assert_eq!(failure.kind, FailureKind::RejectedIdentifier, "{id}");
        }
        assert!(is_token("abc-DEF_123"));
        assert!(!is_token("../x"));
        assert!(!is_token(""));
    }
}
