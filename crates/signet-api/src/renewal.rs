//! Renewal tokens: how a certificate that cannot be a TLS client certificate (the `server`
//! profile has no clientAuth EKU) proves possession of its key to renew, as step-ca's renew
//! token does.
//!
//! The token is a compact JWS (RFC 7515) signed by the certificate's own private key, with
//! the certificate in the `x5c` header parameter (section 4.1.6: standard base64 DER, the
//! certificate first; further entries are ignored, since Signet completes the chain from the
//! issuing CAs it knows). What is checked, in order, before the store is asked anything:
//!
//! - the shape: three base64url parts, at most [`MAX_TOKEN_BYTES`];
//! - the header: no `crit` (RFC 7515 section 4.1.11: none of the extensions a JWS may mark
//!   critical is understood here, so any is refused), `typ` absent or `JWT`, and `alg`
//!   matching the key in the certificate: ES256 for P-256, ES384 for P-384, EdDSA for
//!   Ed25519, RS256 or PS256 for RSA (the header cannot choose a weaker algorithm, nor
//!   `none`, nor HMAC);
//! - the signature, with the certificate's public key;
//! - the certificate: signed by this CA's issuing CA, or by an earlier issuing CA of the same
//!   root that `signet ca new-issuing` kept;
//! - the claims: `aud` names this CA's renewal endpoint (`<url>/v1/certificates/renew`),
//!   `sub` is the certificate's serial number (hex), `iat` and `exp` are present, `exp` at
//!   most five minutes after `iat` and after now, `nbf` (if present) and `exp` hold now with
//!   [`LEEWAY_SECS`] of clock skew, and `jti` is 1 to 256 characters.
//!
//! The caller then checks the certificate against the store exactly as for mTLS (recorded,
//! the same bytes, not revoked, not expired) and burns the `jti` in the same transaction that
//! records the new certificate (under `renew:<serial>` in the used-token table), so a token
//! renews at most once, on every server sharing the database.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;
use signet_ca::{CertificateInfo, CsrKeyType, PublicKey};
use time::OffsetDateTime;

use crate::ApiError;
use crate::claims::{LEEWAY_SECS, MAX_TOKEN_LIFETIME_SECS};

/// The path a renewal token's audience names, after the CA's URL.
pub(crate) const RENEW_PATH: &str = "/v1/certificates/renew";
/// The longest renewal token accepted (a certificate chain fits several times over).
pub(crate) const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// The most certificates `x5c` may carry.
const MAX_X5C: usize = 8;

/// A verified renewal token: the certificate it speaks for, and its single-use id.
#[derive(Debug)]
pub(crate) struct RenewalToken {
    /// The certificate from `x5c`, DER, signed by one of our issuing CAs.
    pub(crate) der: Vec<u8>,
    /// The certificate, parsed.
    pub(crate) info: CertificateInfo,
    /// The token's `jti`.
    pub(crate) jti: String,
    /// The token's `exp`.
    pub(crate) expires_at: OffsetDateTime,
}

impl RenewalToken {
    /// The namespace its `jti` is burned under: one per certificate, apart from every
    /// provisioner's (whose names cannot contain `:`).
    pub(crate) fn burn_namespace(&self) -> String {
        format!("renew:{}", self.info.serial.to_hex())
    }
}

/// The JOSE header, as far as it matters here. Duplicate members are refused by serde (RFC
/// 7515 section 4 allows refusing them); members not named here are ignored, except that
/// `crit` is always refused.
#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    x5c: Option<Vec<String>>,
    #[serde(default)]
    crit: Option<serde_json::Value>,
}

/// `aud`: one string or an array of them (RFC 7519 section 4.1.3).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// Whether any of the values satisfies `names_us`.
    fn any(&self, names_us: impl Fn(&str) -> bool) -> bool {
        match self {
            Audience::One(a) => names_us(a),
            Audience::Many(all) => all.iter().any(|a| names_us(a)),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<serde_json::Number>,
    #[serde(default)]
    nbf: Option<serde_json::Number>,
    #[serde(default)]
    iat: Option<serde_json::Number>,
    #[serde(default)]
    jti: Option<String>,
}

fn refuse(why: impl std::fmt::Display) -> ApiError {
    ApiError::Unauthorized(format!("renewal token: {why}"))
}

/// A NumericDate (RFC 7519 section 2: seconds, possibly fractional), whole seconds down.
fn seconds(n: &serde_json::Number, claim: &str) -> Result<i64, ApiError> {
    n.as_i64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && f.abs() < 1e15)
                .map(|f| f.floor() as i64)
        })
        .ok_or_else(|| refuse(format!("{claim} is not a time in seconds")))
}

/// The JWS algorithm names that go with a key type, and ring's verifier for each.
fn verifier_for(
    key: CsrKeyType,
    alg: &str,
) -> Result<&'static dyn VerificationAlgorithm, &'static str> {
    match (key, alg) {
        (CsrKeyType::EcdsaP256, "ES256") => Ok(&signature::ECDSA_P256_SHA256_FIXED),
        (CsrKeyType::EcdsaP384, "ES384") => Ok(&signature::ECDSA_P384_SHA384_FIXED),
        (CsrKeyType::Ed25519, "EdDSA") => Ok(&signature::ED25519),
        (CsrKeyType::Rsa(_), "RS256") => Ok(&signature::RSA_PKCS1_2048_8192_SHA256),
        (CsrKeyType::Rsa(_), "PS256") => Ok(&signature::RSA_PSS_2048_8192_SHA256),
        (CsrKeyType::EcdsaP256, _) => Err("P-256: ES256"),
        (CsrKeyType::EcdsaP384, _) => Err("P-384: ES384"),
        (CsrKeyType::Ed25519, _) => Err("Ed25519: EdDSA"),
        (CsrKeyType::Rsa(_), _) => Err("RSA: RS256 or PS256"),
    }
}

fn b64url(part: &str, what: &str) -> Result<Vec<u8>, ApiError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| refuse(format!("the {what} is not unpadded base64url")))
}

/// Verify a renewal token up to the store: structure, header, signature, issuer, claims.
/// `issuers` are the DER issuing CA certificates whose certificates may renew (the current
/// one first); `audience` is this CA, whose renewal endpoint (under any of its names and
/// ports, see [`crate::audience`]) the token's `aud` must name.
pub(crate) fn verify(
    token: &str,
    issuers: &[&[u8]],
    audience: &crate::audience::Audience,
    now: OffsetDateTime,
) -> Result<RenewalToken, ApiError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(refuse(format!("longer than {MAX_TOKEN_BYTES} bytes")));
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(refuse(
            "not a compact JWS (header.payload.signature) signed by the certificate's key",
        ));
    };
    let header: Header = serde_json::from_slice(&b64url(h64, "header")?)
        .map_err(|e| refuse(format!("malformed header: {e}")))?;
    if let Some(crit) = &header.crit {
        let listed = crit.to_string().chars().take(200).collect::<String>();
        return Err(refuse(format!(
            "the header marks extensions critical (crit: {listed}), and Signet understands \
             none (RFC 7515 section 4.1.11)"
        )));
    }
    if let Some(typ) = &header.typ
        && !typ.eq_ignore_ascii_case("JWT")
    {
        return Err(refuse(format!(
            "typ {:?} is not JWT",
            typ.chars().take(40).collect::<String>()
        )));
    }
    let x5c = header.x5c.as_deref().unwrap_or_default();
    let Some(leaf64) = x5c.first() else {
        return Err(refuse(
            "the header has no x5c: a renewal token carries the certificate it renews",
        ));
    };
    if x5c.len() > MAX_X5C {
        return Err(refuse(format!(
            "x5c holds more than {MAX_X5C} certificates"
        )));
    }
    let der = STANDARD
        .decode(leaf64)
        .map_err(|_| refuse("the first x5c entry is not base64 (RFC 7515 section 4.1.6)"))?;
    let info = CertificateInfo::from_der(&der)
        .map_err(|e| refuse(format!("the certificate in x5c does not parse: {e}")))?;
    let key = PublicKey::from_spki_der(&info.spki_der)
        .map_err(|e| refuse(format!("the certificate's key: {e}")))?;
    let verifier = verifier_for(key.key_type, &header.alg).map_err(|expected| {
        refuse(format!(
            "algorithm {:?} does not match the certificate's key ({expected})",
            header.alg.chars().take(20).collect::<String>()
        ))
    })?;
    let signed = &token[..h64.len() + 1 + c64.len()];
    let sig = b64url(s64, "signature")?;
    UnparsedPublicKey::new(verifier, &key.key)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| {
            refuse("the signature does not verify with the key of the certificate in x5c")
        })?;
    // Possession of the key is proven; now, is the certificate ours?
    let mut ours = false;
    for issuer in issuers {
        // A certificate that does not parse was refused above; an issuer that does not is
        // a configuration fault, which the caller would have seen at start-up.
        if signet_ca::certificate_signed_by(&der, issuer)
            .map_err(|e| ApiError::Internal(format!("checking a renewal token's issuer: {e}")))?
        {
            ours = true;
            break;
        }
    }
    if !ours {
        return Err(refuse(
            "the certificate in x5c was not issued by this CA's issuing CA",
        ));
    }

    let claims: Claims = serde_json::from_slice(&b64url(c64, "payload")?)
        .map_err(|e| refuse(format!("malformed claims: {e}")))?;
    match &claims.aud {
        Some(aud) if aud.any(|a| audience.accepts_at(a, RENEW_PATH)) => {}
        _ => {
            return Err(refuse(format!(
                "aud must be this CA's renewal endpoint, {}",
                audience.describe_at(RENEW_PATH)
            )));
        }
    }
    let serial = info.serial.to_hex();
    match claims.sub.as_deref() {
        Some(sub) if sub.trim_start_matches("0x").eq_ignore_ascii_case(&serial) => {}
        _ => {
            return Err(refuse(format!(
                "sub must be the certificate's serial number ({serial})"
            )));
        }
    }
    let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(30);
    let now_s = now.unix_timestamp();
    let exp = seconds(
        claims
            .exp
            .as_ref()
            .ok_or_else(|| refuse("exp is missing"))?,
        "exp",
    )?;
    let iat = seconds(
        claims
            .iat
            .as_ref()
            .ok_or_else(|| refuse("iat is missing"))?,
        "iat",
    )?;
    if now_s > exp.saturating_add(leeway) {
        return Err(refuse("expired (exp)"));
    }
    if let Some(nbf) = &claims.nbf
        && now_s < seconds(nbf, "nbf")?.saturating_sub(leeway)
    {
        return Err(refuse("not yet valid (nbf)"));
    }
    if iat > now_s.saturating_add(leeway) {
        return Err(refuse("issued in the future (iat)"));
    }
    if exp.saturating_sub(iat) > MAX_TOKEN_LIFETIME_SECS
        || exp.saturating_sub(now_s) > MAX_TOKEN_LIFETIME_SECS + leeway
    {
        return Err(refuse(format!(
            "lives longer than {MAX_TOKEN_LIFETIME_SECS} s (exp - iat)"
        )));
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= signet_store::MAX_JTI_LEN)
        .ok_or_else(|| refuse("needs a jti of 1 to 256 characters"))?;
    let expires_at =
        OffsetDateTime::from_unix_timestamp(exp).map_err(|_| refuse("exp is out of range"))?;
    Ok(RenewalToken {
        der,
        info,
        jti,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn jws(header: &str, claims: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(b"sig")
        )
    }

    fn refusal(token: &str) -> String {
        verify(
            token,
            &[],
            &crate::audience::Audience::new("https://ca"),
            OffsetDateTime::now_utc(),
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_key_is_used() {
        assert!(refusal("a.b").contains("compact JWS"));
        assert!(refusal("a.b.c.d").contains("compact JWS"));
        assert!(refusal("!!!.b.c").contains("base64url"));
        assert!(refusal(&jws("[]", "{}")).contains("malformed header"));
        assert!(refusal(&jws(r#"{"alg":"ES256","alg":"none"}"#, "{}")).contains("duplicate"));
        let crit = refusal(&jws(r#"{"alg":"ES256","crit":["exp"],"exp":1}"#, "{}"));
        assert!(crit.contains("crit") && crit.contains("4.1.11"), "{crit}");
        assert!(refusal(&jws(r#"{"alg":"ES256","typ":"dpop+jwt"}"#, "{}")).contains("typ"));
        assert!(refusal(&jws(r#"{"alg":"ES256"}"#, "{}")).contains("no x5c"));
        assert!(refusal(&jws(r#"{"alg":"ES256","x5c":["%%%"]}"#, "{}")).contains("base64"));
        let many = format!(r#"{{"alg":"ES256","x5c":[{}]}}"#, ["\"AA==\""; 9].join(","));
        assert!(refusal(&jws(&many, "{}")).contains("more than 8"));
        assert!(refusal(&"a".repeat(MAX_TOKEN_BYTES + 1)).contains("longer than"));
    }

    #[test]
    fn algorithms_are_pinned_by_the_key_type() {
        assert!(verifier_for(CsrKeyType::EcdsaP256, "ES256").is_ok());
        assert!(verifier_for(CsrKeyType::EcdsaP384, "ES384").is_ok());
        assert!(verifier_for(CsrKeyType::Ed25519, "EdDSA").is_ok());
        assert!(verifier_for(CsrKeyType::Rsa(2048), "RS256").is_ok());
        assert!(verifier_for(CsrKeyType::Rsa(2048), "PS256").is_ok());
        for (key, alg) in [
            (CsrKeyType::EcdsaP256, "ES384"),
            (CsrKeyType::EcdsaP256, "none"),
            (CsrKeyType::EcdsaP256, "HS256"),
            (CsrKeyType::EcdsaP384, "ES256"),
            (CsrKeyType::Ed25519, "ES256"),
            (CsrKeyType::Rsa(4096), "RS512"),
        ] {
            assert!(verifier_for(key, alg).is_err(), "{key:?} {alg}");
        }
    }

    #[test]
    fn audiences_may_be_a_string_or_an_array() {
        let ca = crate::audience::Audience::new("https://ca");
        let names_us = |a: &str| ca.accepts_at(a, RENEW_PATH);
        let one: Audience = serde_json::from_str(r#""https://ca/v1/certificates/renew/""#).unwrap();
        assert!(one.any(names_us));
        let many: Audience =
            serde_json::from_str(r#"["x","https://ca/v1/certificates/renew"]"#).unwrap();
        assert!(many.any(names_us));
        let base: Audience = serde_json::from_str(r#"["x","https://ca"]"#).unwrap();
        assert!(!base.any(names_us));
    }
}
