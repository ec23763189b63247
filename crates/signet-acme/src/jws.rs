//! JSON Web Signatures as ACME uses them (RFC 8555 section 6.2, RFC 7515 flattened JSON
//! serialization): parsing, the protected header, account keys as JWKs (RFC 7517) with
//! their RFC 7638 thumbprints, and signature verification with ring for ES256, ES384, RS256
//! and EdDSA (Ed25519). Also the HS256 MAC of an external account binding (section 7.3.4).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::signature::{self, UnparsedPublicKey};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::problem::{AcmeError, ProblemType};

/// A flattened JWS (RFC 7515 section 7.2.2), as received: nothing but these three members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlattenedJws {
    /// base64url of the protected header's JSON.
    pub protected: String,
    /// base64url of the payload ("" for POST-as-GET).
    pub payload: String,
    /// base64url of the signature.
    pub signature: String,
}

/// The protected header of an ACME request (RFC 8555 section 6.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protected {
    /// The signature algorithm.
    pub alg: String,
    /// The anti-replay nonce (absent only in inner JWSs: key change, EAB).
    #[serde(default)]
    pub nonce: Option<String>,
    /// The URL the request was sent to.
    pub url: String,
    /// The signing key (newAccount, revokeCert by the certificate's key, inner JWSs).
    #[serde(default)]
    pub jwk: Option<Map<String, Value>>,
    /// The account URL.
    #[serde(default)]
    pub kid: Option<String>,
    /// A media type some clients send; carries no meaning here.
    #[serde(default)]
    pub typ: Option<String>,
}

/// A JWS whose header and payload are decoded, not yet verified.
#[derive(Debug)]
pub struct ParsedJws {
    /// The protected header.
    pub header: Protected,
    /// The payload bytes (empty for POST-as-GET).
    pub payload: Vec<u8>,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

fn b64(what: &str, s: &str) -> Result<Vec<u8>, AcmeError> {
    B64.decode(s)
        .map_err(|_| AcmeError::malformed(format!("{what} is not base64url without padding")))
}

impl ParsedJws {
    /// Parse a request body (the flattened JSON serialization).
    pub fn parse(body: &[u8]) -> Result<ParsedJws, AcmeError> {
        let jws: FlattenedJws = serde_json::from_slice(body).map_err(|e| {
            AcmeError::malformed(format!(
                "the body is not a flattened JWS (protected, payload, signature): {e}"
            ))
        })?;
        ParsedJws::from_flattened(&jws)
    }

    /// Decode a flattened JWS already read as JSON.
    pub fn from_flattened(jws: &FlattenedJws) -> Result<ParsedJws, AcmeError> {
        let header_bytes = b64("the protected header", &jws.protected)?;
        // RFC 7515 section 4.1.11: an extension we do not understand must be refused, and
        // we understand none; so is every header member ACME does not define.
        let header: Protected = serde_json::from_slice(&header_bytes).map_err(|e| {
            AcmeError::malformed(format!("the protected header is not acceptable: {e}"))
        })?;
        if header.jwk.is_some() == header.kid.is_some() {
            return Err(AcmeError::malformed(
                "the protected header must have exactly one of jwk and kid",
            ));
        }
        let payload = b64("the payload", &jws.payload)?;
        let signature = b64("the signature", &jws.signature)?;
        let signing_input = format!("{}.{}", jws.protected, jws.payload).into_bytes();
        Ok(ParsedJws {
            header,
            payload,
            signing_input,
            signature,
        })
    }

    /// Verify the signature with `key`, whose type must fit the header's `alg`.
    pub fn verify(&self, key: &AccountKey) -> Result<(), AcmeError> {
        let alg = key.algorithm_for(&self.header.alg)?;
        UnparsedPublicKey::new(alg, &key.public)
            .verify(&self.signing_input, &self.signature)
            .map_err(|_| AcmeError::malformed("the JWS signature does not verify"))
    }

    /// Verify an HS256 MAC (external account binding) with `hmac_key`.
    pub fn verify_hmac(&self, hmac_key: &[u8]) -> Result<(), AcmeError> {
        if self.header.alg != "HS256" {
            return Err(AcmeError::new(
                ProblemType::BadSignatureAlgorithm,
                format!(
                    "the external account binding uses {:?}; Signet accepts HS256",
                    self.header.alg
                ),
            ));
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, hmac_key);
        ring::hmac::verify(&key, &self.signing_input, &self.signature).map_err(|_| {
            AcmeError::unauthorized("the external account binding's MAC does not verify")
        })
    }

    /// The payload as JSON of type `T`; POST-as-GET (an empty payload) is refused.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AcmeError> {
        if self.payload.is_empty() {
            return Err(AcmeError::malformed(
                "this request needs a JSON payload, not POST-as-GET",
            ));
        }
        serde_json::from_slice(&self.payload)
            .map_err(|e| AcmeError::malformed(format!("the payload is not acceptable: {e}")))
    }

    /// Refuse anything but POST-as-GET (an empty payload).
    pub fn expect_post_as_get(&self) -> Result<(), AcmeError> {
        if !self.payload.is_empty() {
            return Err(AcmeError::malformed(
                "this resource is read with POST-as-GET: the payload must be empty",
            ));
        }
        Ok(())
    }
}

/// The kinds of account key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// ECDSA P-256 (ES256).
    P256,
    /// ECDSA P-384 (ES384).
    P384,
    /// RSA, 2048 bits or more (RS256).
    Rsa,
    /// Ed25519 (EdDSA).
    Ed25519,
}

/// An account's public key, from its JWK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountKey {
    /// Its type.
    pub kind: KeyKind,
    /// The key as a SubjectPublicKeyInfo's subjectPublicKey carries it: the uncompressed EC
    /// point, the PKCS#1 RSAPublicKey DER, or the 32 Ed25519 bytes.
    pub public: Vec<u8>,
    /// RFC 7638 thumbprint (SHA-256), base64url.
    pub thumbprint: String,
    /// The JWK's required members only, as JSON (what is stored).
    pub jwk_json: String,
}

/// RSAPublicKey (RFC 8017 appendix A.1.1):
/// ```text
/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }
/// ```
#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, AcmeError> {
    jwk.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| AcmeError::malformed(format!("the JWK has no string member {name:?}")))
}

impl AccountKey {
    /// Read a JWK (RFC 7517); only the key types Signet accepts as account keys.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<AccountKey, AcmeError> {
        let bad_key = |d: &str| AcmeError::new(ProblemType::BadSignatureAlgorithm, d.to_string());
        let kty = member(jwk, "kty")?;
        let (kind, public, canonical) = match kty {
            "EC" => {
                let crv = member(jwk, "crv")?;
                let (kind, len) = match crv {
                    "P-256" => (KeyKind::P256, 32),
                    "P-384" => (KeyKind::P384, 48),
                    _ => return Err(bad_key("EC keys must be on P-256 or P-384")),
                };
                let x = b64("the JWK's x", member(jwk, "x")?)?;
                let y = b64("the JWK's y", member(jwk, "y")?)?;
                if x.len() != len || y.len() != len {
                    return Err(AcmeError::malformed(
                        "the JWK's coordinates have the wrong length",
                    ));
                }
                let mut point = vec![4u8];
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                // RFC 7638 section 3.2: the required members, in lexicographic order.
                let canonical = format!(
                    r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                    member(jwk, "x")?,
                    member(jwk, "y")?
                );
                (kind, point, canonical)
            }
            "RSA" => {
                let n = b64("the JWK's n", member(jwk, "n")?)?;
                let e = b64("the JWK's e", member(jwk, "e")?)?;
                if n.first() == Some(&0) || e.first() == Some(&0) {
                    return Err(AcmeError::malformed(
                        "the JWK's n and e must not have leading zero octets",
                    ));
                }
                if n.len() < 256 || n.len() > 1024 {
                    return Err(bad_key("RSA keys must have 2048 to 8192 bits"));
                }
                let key = RsaPublicKey {
                    modulus: der::asn1::UintRef::new(&n)
                        .map_err(|_| AcmeError::malformed("bad RSA modulus"))?,
                    public_exponent: der::asn1::UintRef::new(&e)
                        .map_err(|_| AcmeError::malformed("bad RSA exponent"))?,
                };
                let der =
                    der::Encode::to_der(&key).map_err(|_| AcmeError::malformed("bad RSA key"))?;
                let canonical = format!(
                    r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
                    member(jwk, "e")?,
                    member(jwk, "n")?
                );
                (KeyKind::Rsa, der, canonical)
            }
            "OKP" => {
                if member(jwk, "crv")? != "Ed25519" {
                    return Err(bad_key("OKP keys must be Ed25519"));
                }
                let x = b64("the JWK's x", member(jwk, "x")?)?;
                if x.len() != 32 {
                    return Err(AcmeError::malformed("an Ed25519 key is 32 bytes"));
                }
                let canonical = format!(
                    r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                    member(jwk, "x")?
                );
                (KeyKind::Ed25519, x, canonical)
            }
            _ => {
                return Err(bad_key(
                    "account keys are EC (P-256, P-384), RSA or OKP (Ed25519)",
                ));
            }
        };
        if jwk.contains_key("d") || jwk.contains_key("k") {
            return Err(AcmeError::malformed("the JWK holds private key material"));
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
        Ok(AccountKey {
            kind,
            public,
            thumbprint: B64.encode(digest.as_ref()),
            jwk_json: canonical,
        })
    }

    /// Read a stored JWK.
    pub fn from_json(json: &str) -> Result<AccountKey, AcmeError> {
        let map: Map<String, Value> = serde_json::from_str(json)
            .map_err(|e| AcmeError::internal(format!("stored JWK: {e}")))?;
        AccountKey::from_jwk(&map)
    }

    /// The ring algorithm for `alg` with this key; `badSignatureAlgorithm` when they do not
    /// fit.
    fn algorithm_for(
        &self,
        alg: &str,
    ) -> Result<&'static dyn signature::VerificationAlgorithm, AcmeError> {
        Ok(match (self.kind, alg) {
            (KeyKind::P256, "ES256") => &signature::ECDSA_P256_SHA256_FIXED,
            (KeyKind::P384, "ES384") => &signature::ECDSA_P384_SHA384_FIXED,
            (KeyKind::Rsa, "RS256") => &signature::RSA_PKCS1_2048_8192_SHA256,
            (KeyKind::Ed25519, "EdDSA") => &signature::ED25519,
            _ => {
                return Err(AcmeError::new(
                    ProblemType::BadSignatureAlgorithm,
                    format!(
                        "algorithm {alg:?} does not fit a {:?} key (ES256 for P-256, ES384 for P-384, RS256 for RSA, EdDSA for Ed25519)",
                        self.kind
                    ),
                ));
            }
        })
    }

    /// Whether `spki_der` (a CSR's or certificate's SubjectPublicKeyInfo) is this key.
    pub fn same_key_as_spki(&self, spki_der: &[u8]) -> bool {
        signet_ca::PublicKey::from_spki_der(spki_der).is_ok_and(|k| k.key == self.public)
    }
}

/// base64url without padding.
pub fn b64url(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decode base64url without padding, `malformed` naming `what` if it is not.
pub fn from_b64url(what: &str, s: &str) -> Result<Vec<u8>, AcmeError> {
    b64(what, s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 section 3.1.
        let jwk: Map<String, Value> = serde_json::from_str(r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#).unwrap();
        let key = AccountKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint,
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.kind, KeyKind::Rsa);
    }

    #[test]
    fn headers_need_exactly_one_key_and_no_strangers() {
        let enc = |h: &str| B64.encode(h);
        let body = |h: &str| {
            format!(
                r#"{{"protected":"{}","payload":"","signature":"AA"}}"#,
                enc(h)
            )
            .into_bytes()
        };
        let both = body(r#"{"alg":"ES256","url":"u","nonce":"n","kid":"k","jwk":{}}"#);
        assert!(ParsedJws::parse(&both).is_err());
        let none = body(r#"{"alg":"ES256","url":"u","nonce":"n"}"#);
        assert!(ParsedJws::parse(&none).is_err());
        let crit = body(r#"{"alg":"ES256","url":"u","nonce":"n","kid":"k","crit":["x"]}"#);
        assert!(ParsedJws::parse(&crit).is_err());
        let ok = body(r#"{"alg":"ES256","url":"u","nonce":"n","kid":"k"}"#);
        assert!(ParsedJws::parse(&ok).is_ok());
        let extra_member = br#"{"protected":"e30","payload":"","signature":"AA","header":{}}"#;
        assert!(ParsedJws::parse(extra_member).is_err());
    }
}
