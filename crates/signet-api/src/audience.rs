//! Who this CA is, for a provisioner token's `aud`: its URL, or the same URL under any of the
//! server's own names and ports.
//!
//! RFC 7519 section 4.1.3 asks the recipient to identify itself with a value of `aud`. A CA
//! reached as `https://localhost:8443` is the same CA as `https://127.0.0.1:8443` when its
//! certificate names both and it listens there, and users mint tokens for the URL they type;
//! comparing one string made `--ca-url https://localhost:8443` fail against a server that
//! listens on 127.0.0.1:8443. So the audience is compared as a URL: scheme, host (DNS names
//! case-insensitively, IP addresses by value, IPv6 with or without brackets), port (the
//! scheme's default when absent) and an empty path (for a renewal token, the renewal
//! endpoint's path). Nothing else: no user info, no query, no other path.

use std::collections::BTreeSet;
use std::net::IpAddr;

use axum::http::Uri;

/// The `aud` values a provisioner token may carry for this CA.
#[derive(Clone, Debug)]
pub(crate) struct Audience {
    /// The configured CA URL (`[server] url`, else derived from the listen address).
    url: String,
    schemes: BTreeSet<String>,
    hosts: BTreeSet<String>,
    ports: BTreeSet<u16>,
}

/// A URL's scheme, normalised host and port, if it names an origin followed by `path` (a
/// trailing `/` aside) and nothing else.
fn origin(url: &str, path: &str) -> Option<(String, String, u16)> {
    let uri: Uri = url.trim().parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || uri.query().is_some() {
        return None;
    }
    if uri.path().trim_end_matches('/') != path {
        return None;
    }
    let port = match (authority.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "https") => 443,
        (None, "http") => 80,
        _ => return None,
    };
    Some((scheme, host_key(authority.host())?, port))
}

/// A host as compared: an IP address in its canonical form, a DNS name in lowercase without
/// a trailing dot.
fn host_key(host: &str) -> Option<String> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip.to_string());
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

impl Audience {
    /// This CA as `url` names it (a trailing `/` is ignored). Tokens may also use `https`
    /// when the URL is plain `http` (a server behind a TLS-terminating proxy).
    pub(crate) fn new(url: &str) -> Audience {
        let url = url.trim().trim_end_matches('/').to_string();
        let mut audience = Audience {
            url: url.clone(),
            schemes: BTreeSet::new(),
            hosts: BTreeSet::new(),
            ports: BTreeSet::new(),
        };
        if let Some((scheme, host, port)) = origin(&url, "") {
            audience.schemes.insert(scheme);
            audience.schemes.insert("https".into());
            audience.hosts.insert(host);
            audience.ports.insert(port);
        }
        audience
    }

    /// Also accept the CA under these names (DNS names or IP addresses) and ports, each name
    /// with each port.
    pub(crate) fn with_names_and_ports<S: AsRef<str>>(
        mut self,
        names: impl IntoIterator<Item = S>,
        ports: impl IntoIterator<Item = u16>,
    ) -> Audience {
        self.hosts
            .extend(names.into_iter().filter_map(|n| host_key(n.as_ref())));
        self.ports.extend(ports);
        if self.schemes.is_empty() {
            self.schemes.insert("https".into());
        }
        self
    }

    /// Whether `aud` names this CA.
    pub(crate) fn accepts(&self, aud: &str) -> bool {
        self.accepts_at(aud, "")
    }

    /// Whether `aud` names this CA's endpoint `path` (e.g. `/v1/certificates/renew`).
    pub(crate) fn accepts_at(&self, aud: &str, path: &str) -> bool {
        if aud.trim_end_matches('/') == format!("{}{path}", self.url) {
            return true;
        }
        match origin(aud, path) {
            Some((scheme, host, port)) => {
                self.schemes.contains(&scheme)
                    && self.hosts.contains(&host)
                    && self.ports.contains(&port)
            }
            None => false,
        }
    }

    /// What tokens may name, for a refusal's message.
    pub(crate) fn describe(&self) -> String {
        self.describe_at("")
    }

    /// What tokens for the endpoint `path` may name, for a refusal's message.
    pub(crate) fn describe_at(&self, path: &str) -> String {
        let hosts: Vec<String> = self
            .hosts
            .iter()
            .map(|h| {
                if h.contains(':') {
                    format!("[{h}]")
                } else {
                    h.clone()
                }
            })
            .collect();
        let ports: Vec<String> = self.ports.iter().map(u16::to_string).collect();
        if hosts.len() <= 1 && ports.len() <= 1 {
            return format!("{}{path}", self.url);
        }
        format!(
            "{}{path}, or the same CA under any of its names ({}) and ports ({})",
            self.url,
            hosts.join(", "),
            ports.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_recognised_under_its_own_names_and_ports() {
        let a = Audience::new("https://127.0.0.1:8443/")
            .with_names_and_ports(["localhost", "127.0.0.1", "::1", "CA.Internal"], [8443]);
        for ok in [
            "https://127.0.0.1:8443",
            "https://127.0.0.1:8443/",
            "https://localhost:8443",
            "HTTPS://LOCALHOST:8443",
            "https://localhost.:8443",
            "https://[::1]:8443",
            "https://[0:0:0:0:0:0:0:1]:8443",
            "https://ca.internal:8443/",
        ] {
            assert!(a.accepts(ok), "{ok}");
        }
        for bad in [
            "https://localhost:9443",
            "https://localhost",
            "http://localhost:8443",
            "https://evil.example:8443",
            "https://localhost:8443/v1",
            "https://localhost:8443?x=1",
            "https://user@localhost:8443",
            "localhost:8443",
            "",
            "https://127.0.0.2:8443",
        ] {
            assert!(!a.accepts(bad), "{bad}");
        }
        let d = a.describe();
        assert!(d.starts_with("https://127.0.0.1:8443, or"), "{d}");
        assert!(d.contains("[::1]") && d.contains("ca.internal"), "{d}");
        // An endpoint of the CA (a renewal token's audience), under the same names.
        let renew = "/v1/certificates/renew";
        for ok in [
            "https://127.0.0.1:8443/v1/certificates/renew",
            "https://localhost:8443/v1/certificates/renew/",
            "https://[::1]:8443/v1/certificates/renew",
        ] {
            assert!(a.accepts_at(ok, renew), "{ok}");
        }
        for bad in [
            "https://localhost:8443",
            "https://localhost:8443/v1/certificates",
            "https://localhost:9443/v1/certificates/renew",
        ] {
            assert!(!a.accepts_at(bad, renew), "{bad}");
        }
        assert!(
            a.describe_at(renew)
                .starts_with("https://127.0.0.1:8443/v1/certificates/renew, or")
        );
    }

    #[test]
    fn a_url_with_the_default_port_and_a_proxy_url() {
        let a = Audience::new("https://ca.example.com").with_names_and_ports(["localhost"], [8443]);
        assert!(a.accepts("https://ca.example.com:443"));
        assert!(a.accepts("https://ca.example.com:8443"));
        assert!(a.accepts("https://localhost"));
        // Plain HTTP behind a TLS-terminating proxy: tokens name what clients use.
        let a = Audience::new("http://127.0.0.1:8080");
        assert!(a.accepts("http://127.0.0.1:8080"));
        assert!(a.accepts("https://127.0.0.1:8080"));
        assert!(!a.accepts("https://127.0.0.1:443"));
        assert_eq!(a.describe(), "http://127.0.0.1:8080");
        // A URL that is not an origin is still matched exactly.
        let a = Audience::new("urn:example:ca");
        assert!(a.accepts("urn:example:ca"));
        assert!(!a.accepts("urn:example:other"));
    }
}
