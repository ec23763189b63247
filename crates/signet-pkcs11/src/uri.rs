//! PKCS#11 URIs (RFC 7512): how a configuration names a key in a token, e.g.
//! `pkcs11:token=signet;object=issuing-ca`.
//!
//! Only what names a private key is accepted: the token (`token`, `serial`, `manufacturer`,
//! `model`), the object (`object`, `id`, `type=private`) and the `module-path` query
//! attribute. A PIN in the URI (`pin-value`, `pin-source`) is refused: a URI sits in
//! `signet.toml` and in logs, and the PIN must be in neither. Any other attribute is refused
//! too rather than ignored, so a URI never matches a key its writer did not mean.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::Pkcs11Error;

/// A PKCS#11 URI naming one private key (RFC 7512 section 2.3).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    /// `token`: the token's label (CKA_LABEL of the token, blank padding removed).
    pub token: Option<String>,
    /// `serial`: the token's serial number.
    pub serial: Option<String>,
    /// `manufacturer`: the token's manufacturer ID.
    pub manufacturer: Option<String>,
    /// `model`: the token's model.
    pub model: Option<String>,
    /// `object`: the key's CKA_LABEL.
    pub object: Option<String>,
    /// `id`: the key's CKA_ID, raw bytes.
    pub id: Option<Vec<u8>>,
    /// `module-path` (query): the module to load, overriding `[pkcs11] module`.
    pub module_path: Option<PathBuf>,
}

/// The URI scheme, with its colon.
pub const SCHEME: &str = "pkcs11:";

impl Pkcs11Uri {
    /// Whether `s` is written as a PKCS#11 URI (rather than a file path).
    pub fn is_uri(s: &str) -> bool {
        s.len() >= SCHEME.len() && s[..SCHEME.len()].eq_ignore_ascii_case(SCHEME)
    }

    /// A URI naming the key labelled `object` with CKA_ID `id` in the token labelled `token`.
    pub fn for_key(token: &str, object: &str, id: &[u8]) -> Self {
        Pkcs11Uri {
            token: Some(token.to_string()),
            object: Some(object.to_string()),
            id: Some(id.to_vec()),
            ..Pkcs11Uri::default()
        }
    }
}

impl FromStr for Pkcs11Uri {
    type Err = Pkcs11Error;

    fn from_str(s: &str) -> Result<Self, Pkcs11Error> {
        let bad = |why: String| Pkcs11Error::Uri(format!("{why} (in a PKCS#11 URI)"));
        if !Pkcs11Uri::is_uri(s) {
            return Err(bad("it does not start with \"pkcs11:\"".into()));
        }
        let rest = &s[SCHEME.len()..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mut uri = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("attribute {attr:?} has no '='")))?;
            let value = percent_decode(value).map_err(|e| bad(format!("{name}: {e}")))?;
            let text = || {
                String::from_utf8(value.clone())
                    .map_err(|_| bad(format!("{name} is not UTF-8 text")))
            };
            let slot: &mut Option<String> = match name {
                "token" => &mut uri.token,
                "serial" => &mut uri.serial,
                "manufacturer" => &mut uri.manufacturer,
                "model" => &mut uri.model,
                "object" => &mut uri.object,
                "id" => {
                    if uri.id.replace(value).is_some() {
                        return Err(bad("id is given twice".into()));
                    }
                    continue;
                }
                "type" => {
                    if text()? != "private" {
                        return Err(bad(format!("type={} does not name a private key", text()?)));
                    }
                    continue;
                }
                "pin-value" | "pin-source" => {
                    return Err(bad(
                        "a PIN does not belong in the key's name: use [pkcs11] pin_file or \
                         SIGNET_PKCS11_PIN"
                            .into(),
                    ));
                }
                other => {
                    return Err(bad(format!("attribute {other:?} is not supported")));
                }
            };
            if slot.replace(text()?).is_some() {
                return Err(bad(format!("{name} is given twice")));
            }
        }
        for attr in query.split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("query attribute {attr:?} has no '='")))?;
            let value = percent_decode(value).map_err(|e| bad(format!("{name}: {e}")))?;
            match name {
                "module-path" => {
                    let path = String::from_utf8(value)
                        .map_err(|_| bad("module-path is not UTF-8 text".into()))?;
                    if uri.module_path.replace(PathBuf::from(path)).is_some() {
                        return Err(bad("module-path is given twice".into()));
                    }
                }
                "pin-value" | "pin-source" => {
                    return Err(bad(
                        "a PIN does not belong in the key's name: use [pkcs11] pin_file or \
                         SIGNET_PKCS11_PIN"
                            .into(),
                    ));
                }
                other => return Err(bad(format!("query attribute {other:?} is not supported"))),
            }
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(bad("it names no key: give object= or id=".into()));
        }
        Ok(uri)
    }
}

impl fmt::Display for Pkcs11Uri {
    /// The URI in RFC 7512's order, every value percent-encoded where needed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (name, value) in [
            ("token", &self.token),
            ("serial", &self.serial),
            ("manufacturer", &self.manufacturer),
            ("model", &self.model),
            ("object", &self.object),
        ] {
            if let Some(v) = value {
                parts.push(format!("{name}={}", percent_encode(v.as_bytes(), false)));
            }
        }
        if let Some(id) = &self.id {
            parts.push(format!("id={}", percent_encode(id, true)));
        }
        write!(f, "{SCHEME}{}", parts.join(";"))?;
        if let Some(path) = &self.module_path {
            write!(
                f,
                "?module-path={}",
                percent_encode(path.to_string_lossy().as_bytes(), false)
            )?;
        }
        Ok(())
    }
}

/// RFC 3986 section 2.1 percent-decoding.
fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad percent-encoding at {:?}", &s[i..]))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// Percent-encode all but RFC 3986's unreserved characters (and `/` in a path); `all`
/// encodes every byte, as CKA_ID is usually written.
fn percent_encode(bytes: &[u8], all: bool) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        let keep = !all && (b.is_ascii_alphanumeric() || b"-._~/".contains(&b));
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_rfc7512_attributes() {
        let uri: Pkcs11Uri = "pkcs11:token=My%20Token;object=issuing-ca;id=%01%a2;type=private\
                              ?module-path=/usr/lib/softhsm/libsofthsm2.so"
            .parse()
            .unwrap();
        assert_eq!(uri.token.as_deref(), Some("My Token"));
        assert_eq!(uri.object.as_deref(), Some("issuing-ca"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xa2][..]));
        assert_eq!(
            uri.module_path.as_deref(),
            Some(std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so"))
        );
        // Written back and read again, it is the same key.
        let again: Pkcs11Uri = uri.to_string().parse().unwrap();
        assert_eq!(again, uri);
        assert_eq!(
            Pkcs11Uri::for_key("signet", "root-ca", &[7]).to_string(),
            "pkcs11:token=signet;object=root-ca;id=%07"
        );
        assert!(Pkcs11Uri::is_uri("PKCS11:object=x"));
        assert!(!Pkcs11Uri::is_uri("issuing_ca.key"));
    }

    #[test]
    fn refuses_what_it_would_not_match_or_must_not_hold() {
        for bad in [
            "issuing_ca.key",
            "pkcs11:",
            "pkcs11:token=signet",
            "pkcs11:object=a;object=b",
            "pkcs11:object=a;type=cert",
            "pkcs11:object=a;slot-id=1",
            "pkcs11:object=a;pin-value=1234",
            "pkcs11:object=a?pin-value=1234",
            "pkcs11:object=a?pin-source=file:/p",
            "pkcs11:object=%zz",
            "pkcs11:object=%4",
            "pkcs11:object",
            "pkcs11:object=%ff%fe",
        ] {
            assert!(
                matches!(bad.parse::<Pkcs11Uri>(), Err(Pkcs11Error::Uri(_))),
                "{bad}"
            );
        }
        // The refusal of a PIN does not repeat it.
        let e = "pkcs11:object=a;pin-value=s3cret"
            .parse::<Pkcs11Uri>()
            .unwrap_err()
            .to_string();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
