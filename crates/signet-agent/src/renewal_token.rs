//! The client side of renewal tokens (see `signet-api`'s `renewal` module for what the CA
//! checks): a compact JWS signed by the certificate's own private key, carrying the
//! certificate chain in `x5c`, for certificates that cannot authenticate their renewal as a
//! TLS client certificate (the `server` profile).
//!
//! The token lives one minute, names the renewal endpoint as its audience and the
//! certificate's serial number as its subject, and has a random `jti`, so it renews once.

use anyhow::{Context, anyhow};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use rustls::pki_types::CertificateDer;
use serde_json::json;
use signet_ca::{CsrKeyType, OffsetDateTime, PublicKey};
use zeroize::Zeroizing;

use crate::client::CaUrl;

/// The renewal endpoint, which the token names as its audience.
pub const RENEW_PATH: &str = "/v1/certificates/renew";
/// How long a token is good for: long enough for one request, far below the CA's limit.
const LIFETIME_SECS: i64 = 60;

/// A renewal token for the certificate `chain[0]`, signed with `key` (its private key).
pub fn renewal_token(
    key: &rcgen::KeyPair,
    chain: &[CertificateDer<'_>],
    serial_hex: &str,
    url: &CaUrl,
    now: OffsetDateTime,
) -> anyhow::Result<Zeroizing<String>> {
    if chain.is_empty() {
        return Err(anyhow!("no certificate to renew"));
    }
    let rng = SystemRandom::new();
    let mut jti = [0u8; 16];
    rng.fill(&mut jti)
        .map_err(|_| anyhow!("the system random number generator failed"))?;
    let public = PublicKey::from_spki_der(&rcgen::PublicKeyData::subject_public_key_info(key))
        .context("the private key")?;
    let alg = match public.key_type {
        CsrKeyType::EcdsaP256 => "ES256",
        CsrKeyType::EcdsaP384 => "ES384",
        CsrKeyType::Ed25519 => "EdDSA",
        CsrKeyType::Rsa(_) => "RS256",
    };
    let header = json!({
        "alg": alg,
        "typ": "JWT",
        "x5c": chain.iter().map(|c| STANDARD.encode(c)).collect::<Vec<_>>(),
    });
    let iat = now.unix_timestamp();
    let claims = json!({
        "aud": url.endpoint(RENEW_PATH),
        "sub": serial_hex,
        "iat": iat,
        "nbf": iat,
        "exp": iat + LIFETIME_SECS,
        "jti": URL_SAFE_NO_PAD.encode(jti),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let pkcs8 = Zeroizing::new(key.serialize_der());
    let sign_error = |e: ring::error::Unspecified| anyhow!("signing the renewal token: {e}");
    let sig: Vec<u8> = match public.key_type {
        CsrKeyType::EcdsaP256 | CsrKeyType::EcdsaP384 => {
            // JWS wants the fixed-width r||s form (RFC 7518 section 3.4), not ASN.1.
            let alg = if public.key_type == CsrKeyType::EcdsaP256 {
                &signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let pair = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng)
                .map_err(|e| anyhow!("reading the EC private key: {e}"))?;
            pair.sign(&rng, signing_input.as_bytes())
                .map_err(sign_error)?
                .as_ref()
                .to_vec()
        }
        CsrKeyType::Ed25519 => Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8)
            .map_err(|e| anyhow!("reading the Ed25519 private key: {e}"))?
            .sign(signing_input.as_bytes())
            .as_ref()
            .to_vec(),
        CsrKeyType::Rsa(_) => {
            let pair = RsaKeyPair::from_pkcs8(&pkcs8)
                .map_err(|e| anyhow!("reading the RSA private key: {e}"))?;
            let mut sig = vec![0u8; pair.public().modulus_len()];
            pair.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                signing_input.as_bytes(),
                &mut sig,
            )
            .map_err(sign_error)?;
            sig
        }
    };
    Ok(Zeroizing::new(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(sig)
    )))
}
