//! Naming the CA and its root: the validated CA URL, a root's SHA-256 fingerprint, and
//! certificates read from PEM. A leaf under both the client and the saved context (which
//! `client` reads, so these cannot live in `client` without a circle).

use std::fmt;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use crate::error::Refused;

/// A validated Signet API URL: https, a host, no query, fragment or user info. Kept exactly as
/// given minus trailing slashes, because provisioner tokens carry it as their audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaUrl(String);

impl CaUrl {
    /// Validate `--ca-url`.
    pub fn parse(raw: &str) -> anyhow::Result<CaUrl> {
        let trimmed = raw.trim().trim_end_matches('/');
        let bad =
            |why: &str| -> anyhow::Error { Refused(format!("--ca-url {trimmed:?}: {why}")).into() };
        if trimmed.is_empty() {
            return Err(bad("the CA URL is empty; it needs https://HOST:PORT"));
        }
        // `127.0.0.1:8443` is no URL at all, and `localhost:8443` parses as scheme
        // `localhost`: say what is missing instead of what the URL parser saw.
        let Some((scheme, _)) = trimmed.split_once("://") else {
            return Err(bad(&format!(
                "the CA URL needs https:// (try https://{trimmed})"
            )));
        };
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(bad(&format!(
                "the CA URL needs https://, not {scheme}:// (the API is served over TLS only)"
            )));
        }
        let url = reqwest::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("has no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(bad("must not have a query or fragment"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not contain user info"));
        }
        Ok(CaUrl(trimmed.to_string()))
    }

    /// The URL as given, without trailing slashes (a provisioner token's `aud`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL of an API path such as `/v1/ca/root`.
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }
}

impl fmt::Display for CaUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A root fingerprint given on the command line: 32 bytes of SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// Accepts `sha256:HEX`, bare `HEX`, and OpenSSL's `AB:CD:...` form.
    pub fn parse(s: &str) -> anyhow::Result<Fingerprint> {
        let s = s.trim();
        let body = match s.split_once(':') {
            Some((alg, rest)) if alg.eq_ignore_ascii_case("sha256") => rest,
            _ => s,
        };
        let hexdigits: String = body.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hexdigits).ok().filter(|b| b.len() == 32);
        match bytes {
            Some(b) => {
                let mut out = [0u8; 32];
                out.copy_from_slice(&b);
                Ok(Fingerprint(out))
            }
            None => Err(Refused(
                "--root-fingerprint must be sha256: followed by 64 hex digits".into(),
            )
            .into()),
        }
    }

    /// Whether `der` hashes to this fingerprint (compared without early exit).
    pub fn matches(&self, der: &[u8]) -> bool {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        digest
            .as_ref()
            .iter()
            .zip(self.0.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

/// Every certificate in a PEM file.
pub fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let certs =
        parse_certificates(&bytes).with_context(|| format!("reading {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// Every CERTIFICATE block in PEM text.
pub fn parse_certificates(pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("malformed PEM: {e}"))
}

/// PEM of one DER certificate.
pub fn certificate_pem(der: &[u8]) -> String {
    signet_ca::pem::certificate(der)
}

/// Exactly one certificate from PEM text.
pub fn single_certificate(pem: &[u8]) -> anyhow::Result<CertificateDer<'static>> {
    let mut certs = parse_certificates(pem)?;
    if certs.len() != 1 {
        bail!(
            "expected exactly one PEM certificate, found {}",
            certs.len()
        );
    }
    Ok(certs.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_urls_are_checked_and_kept_as_given() {
        let u = CaUrl::parse("https://ca.internal:8443/").expect("valid");
        assert_eq!(u.as_str(), "https://ca.internal:8443");
        assert_eq!(
            u.endpoint("/v1/ca/root"),
            "https://ca.internal:8443/v1/ca/root"
        );
        let u = CaUrl::parse("https://ca.internal/signet//").expect("valid");
        assert_eq!(u.as_str(), "https://ca.internal/signet");
        for bad in [
            "http://ca.internal",
            "ca.internal",
            "https://ca.internal/?x=1",
            "https://user:pw@ca.internal",
            "https://ca.internal/#frag",
        ] {
            let e = CaUrl::parse(bad).expect_err(bad);
            assert!(e.downcast_ref::<Refused>().is_some(), "{bad}: {e}");
        }
        for (bad, says) in [
            (
                "127.0.0.1:8443",
                "needs https:// (try https://127.0.0.1:8443)",
            ),
            (
                "localhost:8443",
                "needs https:// (try https://localhost:8443)",
            ),
            ("ca.internal", "needs https://"),
            ("http://ca.internal:8443", "needs https://, not http://"),
            ("", "empty"),
        ] {
            let e = CaUrl::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("relative URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn fingerprints_parse_in_common_forms() {
        let der = b"not really a certificate";
        let fp = signet_ca::sha256_fingerprint(der);
        let hexpart = fp.trim_start_matches("sha256:").to_string();
        let colons = hexpart
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        for form in [
            fp.clone(),
            hexpart.clone(),
            colons,
            format!("SHA256:{hexpart}"),
        ] {
            let parsed = Fingerprint::parse(&form).expect(&form);
            assert!(parsed.matches(der), "{form}");
            assert!(!parsed.matches(b"something else"));
            assert_eq!(parsed.to_string(), fp);
        }
        for bad in [
            "",
            "sha256:",
            "sha256:abcd",
            "sha1:00",
            &format!("{hexpart}00"),
        ] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }
}
