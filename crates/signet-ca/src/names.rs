//! Names a certificate may carry in its subjectAltName (RFC 5280 section 4.2.1.6), parsed
//! and validated before policy ever sees them.

use std::fmt;
use std::net::IpAddr;

use crate::CaError;

/// Longest URI Signet puts in a certificate.
const MAX_URI_LEN: usize = 2048;

/// A DNS name in preferred name syntax (RFC 1034 section 3.5, as relaxed by RFC 1123):
/// lowercase ASCII letters, digits and hyphens, labels of 1-63 octets, at most 253 in all.
/// The leftmost label may be `*` (a wildcard name).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DnsName(String);

impl DnsName {
    /// Parse and normalise (lowercase, no trailing dot).
    pub fn parse(input: &str) -> Result<Self, CaError> {
        let invalid = |reason: &str| CaError::InvalidName {
            name: format!("dns:{input}"),
            reason: reason.to_string(),
        };
        if !input.is_ascii() {
            return Err(invalid(
                "DNS names must be ASCII (use the punycode A-label form)",
            ));
        }
        let name = input
            .strip_suffix('.')
            .unwrap_or(input)
            .to_ascii_lowercase();
        if name.is_empty() || name.len() > 253 {
            return Err(invalid("a DNS name is 1 to 253 characters"));
        }
        for (i, label) in name.split('.').enumerate() {
            if label == "*" && i == 0 {
                continue;
            }
            if label.is_empty() || label.len() > 63 {
                return Err(invalid("each DNS label is 1 to 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(invalid(
                    "DNS labels hold only letters, digits and hyphens (a wildcard only as the whole leftmost label)",
                ));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(invalid("a DNS label neither starts nor ends with a hyphen"));
            }
        }
        if name == "*" {
            return Err(invalid("a bare wildcard is not a name"));
        }
        // RFC 3696 section 2: a top-level label is never all-numeric. This is what keeps an
        // IP address literal ("10.0.0.1", "0.0.0.0") out of a dNSName: it is an `ip:` name
        // and goes in an iPAddress SAN (RFC 5280 4.2.1.6), never in both.
        if name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid(
                "the last DNS label is not all digits (an IP address is an ip: name)",
            ));
        }
        Ok(DnsName(name))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `*.example.com`.
    pub fn is_wildcard(&self) -> bool {
        self.0.starts_with("*.")
    }

    /// Labels from the right (`a.b.c` gives `c`, `b`, `a`).
    pub(crate) fn labels_rev(&self) -> impl Iterator<Item = &str> {
        self.0.rsplit('.')
    }
}

impl fmt::Display for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DnsName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DnsName({})", self.0)
    }
}

/// One subjectAltName entry Signet can issue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectName {
    /// dNSName
    Dns(DnsName),
    /// iPAddress
    Ip(IpAddr),
    /// uniformResourceIdentifier, e.g. a SPIFFE ID
    Uri(String),
    /// rfc822Name
    Email(String),
}

impl SubjectName {
    /// Parse the `type:value` form used in the store, audit records and CLI
    /// (`dns:`, `ip:`, `uri:`, `email:`). A bare value is a DNS name or an IP address.
    pub fn parse_tagged(s: &str) -> Result<Self, CaError> {
        match s.split_once(':') {
            Some(("dns", v)) => Ok(SubjectName::Dns(DnsName::parse(v)?)),
            Some(("ip", v)) => Self::parse_ip(v),
            Some(("uri", v)) => Self::parse_uri(v),
            Some(("email", v)) => Self::parse_email(v),
            _ => Self::parse_host(s),
        }
    }

    /// A name as people write it: `type:value` when tagged, else a URI if it has `://`, an
    /// email address if it has `@`, else a DNS name or IP address. Used for token `sans`.
    pub fn parse_loose(s: &str) -> Result<Self, CaError> {
        match s.split_once(':') {
            Some(("dns" | "ip" | "uri" | "email", _)) => Self::parse_tagged(s),
            _ if s.contains("://") => Self::parse_uri(s),
            _ if s.contains('@') => Self::parse_email(s),
            _ => Self::parse_host(s),
        }
    }

    /// A DNS name or an IP address, as found in a CSR's common name.
    pub fn parse_host(s: &str) -> Result<Self, CaError> {
        match s.parse::<IpAddr>() {
            Ok(ip) => Ok(SubjectName::Ip(ip)),
            Err(_) => Ok(SubjectName::Dns(DnsName::parse(s)?)),
        }
    }

    fn parse_ip(s: &str) -> Result<Self, CaError> {
        s.parse::<IpAddr>()
            .map(SubjectName::Ip)
            .map_err(|_| CaError::InvalidName {
                name: format!("ip:{s}"),
                reason: "not an IPv4 or IPv6 address".into(),
            })
    }

    /// A URI: an RFC 3986 scheme, then printable ASCII without spaces.
    pub fn parse_uri(s: &str) -> Result<Self, CaError> {
        let invalid = |reason: &str| CaError::InvalidName {
            name: format!("uri:{s}"),
            reason: reason.to_string(),
        };
        if s.len() > MAX_URI_LEN {
            return Err(invalid("URI too long"));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("URIs hold only printable ASCII without spaces"));
        }
        let Some((scheme, rest)) = s.split_once(':') else {
            return Err(invalid("a URI starts with a scheme"));
        };
        let scheme_ok = scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok || rest.is_empty() {
            return Err(invalid("a URI starts with a scheme"));
        }
        if scheme.eq_ignore_ascii_case("spiffe") {
            // SPIFFE ID (SPIFFE spec section 2): spiffe://trust-domain/path, no query or fragment.
            let Some(after) = rest.strip_prefix("//") else {
                return Err(invalid("a SPIFFE ID is spiffe://trust-domain/path"));
            };
            let domain = after.split('/').next().unwrap_or_default();
            if domain.is_empty() || after.contains(['?', '#']) || DnsName::parse(domain).is_err() {
                return Err(invalid(
                    "a SPIFFE ID is spiffe://trust-domain/path with no query or fragment",
                ));
            }
        }
        Ok(SubjectName::Uri(s.to_string()))
    }

    /// An email address: a printable local part, `@`, and a DNS domain.
    pub fn parse_email(s: &str) -> Result<Self, CaError> {
        let invalid = |reason: &str| CaError::InvalidName {
            name: format!("email:{s}"),
            reason: reason.to_string(),
        };
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(invalid("an email address is local@domain"));
        };
        if local.is_empty()
            || local.len() > 64
            || !local.bytes().all(|b| b.is_ascii_graphic() && b != b'@')
        {
            return Err(invalid(
                "the local part is 1 to 64 printable ASCII characters",
            ));
        }
        let domain = DnsName::parse(domain)?;
        if domain.is_wildcard() {
            return Err(invalid("an email domain cannot be a wildcard"));
        }
        Ok(SubjectName::Email(format!("{local}@{domain}")))
    }

    /// The `type:value` form.
    pub fn to_tagged(&self) -> String {
        match self {
            SubjectName::Dns(d) => format!("dns:{d}"),
            SubjectName::Ip(ip) => format!("ip:{ip}"),
            SubjectName::Uri(u) => format!("uri:{u}"),
            SubjectName::Email(e) => format!("email:{e}"),
        }
    }

    /// The value alone, as it appears in the certificate.
    pub fn value(&self) -> String {
        match self {
            SubjectName::Dns(d) => d.to_string(),
            SubjectName::Ip(ip) => ip.to_string(),
            SubjectName::Uri(u) | SubjectName::Email(u) => u.clone(),
        }
    }
}

impl fmt::Display for SubjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_tagged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_normalised_and_checked() {
        assert_eq!(
            DnsName::parse("API.Example.COM.").expect("ok").as_str(),
            "api.example.com"
        );
        assert!(
            DnsName::parse("*.svc.cluster.local")
                .expect("ok")
                .is_wildcard()
        );
        for bad in [
            "",
            "a..b",
            "-a.b",
            "a-.b",
            "a.*.b",
            "*",
            "a b",
            "a\0b",
            "bücher.de",
            "a_b.c",
            &"a".repeat(64),
            "0.0.0.0",
            "10.1.2.3",
            "api.123",
            "8",
        ] {
            assert!(DnsName::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn tagged_names_round_trip() {
        for s in [
            "dns:a.b",
            "ip:10.0.0.1",
            "ip:::1",
            "uri:spiffe://cluster.local/ns/a/sa/b",
            "email:ops@example.com",
        ] {
            assert_eq!(SubjectName::parse_tagged(s).expect(s).to_tagged(), s);
        }
        assert!(SubjectName::parse_tagged("uri:spiffe://x/y?q").is_err());
        assert!(SubjectName::parse_tagged("uri:no scheme").is_err());
        assert!(SubjectName::parse_tagged("email:@x.y").is_err());
    }
}
