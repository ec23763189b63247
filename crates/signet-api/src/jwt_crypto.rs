//! jsonwebtoken's signature checks, done by ring.
//!
//! jsonwebtoken 11 verifies through a process-wide [`CryptoProvider`]. Its `rust_crypto`
//! provider (the only one without a C build) checks ES256 with the pure-Rust `p256` crate,
//! which a profile of `signet serve` under issuance load showed taking about 46% of the
//! server's CPU: more than TLS, CSR verification and certificate signing together. ring, which
//! Signet already uses for all of those, does the same check several times faster. So the
//! verifiers for every asymmetric algorithm here are ring's; signing (only `signet token` and
//! tests sign) and HMAC stay with the `rust_crypto` provider, as do the JWK helpers.
//!
//! What a token must be is unchanged: the algorithm is still pinned per provisioner by
//! [`jsonwebtoken::Validation`], and a key of the wrong family for the algorithm is refused
//! here exactly as `rust_crypto` refuses it.

use std::sync::OnceLock;

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER as RUST_CRYPTO;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{Error as SignatureError, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use ring::signature as sig;

/// Make ring-backed verification the process default. Idempotent; if another provider was
/// installed (or jsonwebtoken already picked its default) first, that one stays, which is
/// slower but just as correct.
pub(crate) fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| CryptoProvider {
        signer_factory: RUST_CRYPTO.signer_factory,
        verifier_factory: new_verifier,
        key_utils: RUST_CRYPTO.key_utils.clone(),
    });
    let _ = provider.install_default();
}

enum RingKey {
    /// What ring's `UnparsedPublicKey` takes: an uncompressed EC point, a raw Ed25519 key or
    /// a PKCS#1 RSAPublicKey, as jsonwebtoken's PEM and JWK loaders store them.
    Bytes(Vec<u8>),
    /// RSA from a JWK's `n` and `e`.
    RsaComponents { n: Vec<u8>, e: Vec<u8> },
}

enum RingAlgorithm {
    Plain(&'static dyn sig::VerificationAlgorithm),
    Rsa(&'static sig::RsaParameters),
}

struct RingVerifier {
    algorithm: Algorithm,
    ring: RingAlgorithm,
    key: RingKey,
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    use Algorithm::*;
    let (family, ring): (AlgorithmFamily, RingAlgorithm) = match algorithm {
        ES256 => (
            AlgorithmFamily::Ec,
            RingAlgorithm::Plain(&sig::ECDSA_P256_SHA256_FIXED),
        ),
        ES384 => (
            AlgorithmFamily::Ec,
            RingAlgorithm::Plain(&sig::ECDSA_P384_SHA384_FIXED),
        ),
        EdDSA => (AlgorithmFamily::Ed, RingAlgorithm::Plain(&sig::ED25519)),
        RS256 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        ),
        RS384 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        ),
        RS512 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        ),
        PS256 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PSS_2048_8192_SHA256),
        ),
        PS384 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PSS_2048_8192_SHA384),
        ),
        PS512 => (
            AlgorithmFamily::Rsa,
            RingAlgorithm::Rsa(&sig::RSA_PSS_2048_8192_SHA512),
        ),
        // HMAC (never accepted by Signet's provisioners, whose keys are public keys) and any
        // algorithm a later jsonwebtoken adds stay with rust_crypto, which also does the
        // family check.
        _ => return (RUST_CRYPTO.verifier_factory)(algorithm, key),
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let key = match key.kind() {
        // ring reads only uncompressed EC points; anything else goes to rust_crypto.
        DecodingKeyKind::SecretOrDer(bytes)
            if family == AlgorithmFamily::Ec && bytes.first() != Some(&0x04) =>
        {
            return (RUST_CRYPTO.verifier_factory)(algorithm, key);
        }
        DecodingKeyKind::SecretOrDer(bytes) => RingKey::Bytes(bytes.clone()),
        DecodingKeyKind::RsaModulusExponent { n, e } => {
            if family != AlgorithmFamily::Rsa {
                return Err(ErrorKind::InvalidKeyFormat.into());
            }
            RingKey::RsaComponents {
                n: n.clone(),
                e: e.clone(),
            }
        }
    };
    Ok(Box::new(RingVerifier {
        algorithm: *algorithm,
        ring,
        key,
    }))
}

impl Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), SignatureError> {
        let ok = match (&self.ring, &self.key) {
            (RingAlgorithm::Plain(alg), RingKey::Bytes(key)) => {
                sig::UnparsedPublicKey::new(*alg, key).verify(msg, signature)
            }
            (RingAlgorithm::Rsa(params), RingKey::Bytes(key)) => {
                sig::UnparsedPublicKey::new(*params, key).verify(msg, signature)
            }
            (RingAlgorithm::Rsa(params), RingKey::RsaComponents { n, e }) => {
                sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature)
            }
            (RingAlgorithm::Plain(_), RingKey::RsaComponents { .. }) => {
                Err(ring::error::Unspecified)
            }
        };
        ok.map_err(|_| SignatureError::new())
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header, Validation};
    use serde_json::json;

    use super::*;

    /// Sign with rust_crypto (jsonwebtoken's own signer), verify with ring, for each
    /// algorithm Signet's provisioners accept; a flipped bit and the wrong key fail.
    #[test]
    fn ring_verifies_what_jsonwebtoken_signs() {
        install();
        let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
        let cases: Vec<(Algorithm, rcgen::KeyPair)> = vec![
            (
                Algorithm::ES256,
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key"),
            ),
            (
                Algorithm::ES384,
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key"),
            ),
            (
                Algorithm::EdDSA,
                rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("key"),
            ),
        ];
        for (alg, key) in cases {
            let enc = match alg {
                Algorithm::EdDSA => EncodingKey::from_ed_der(&key.serialize_der()),
                _ => EncodingKey::from_ec_der(&key.serialize_der()),
            };
            let pem = key.public_key_pem();
            let dec = match alg {
                Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
                _ => DecodingKey::from_ec_pem(pem.as_bytes()),
            }
            .expect("decoding key");
            let token = jsonwebtoken::encode(&Header::new(alg), &claims, &enc).expect("sign");
            let mut v = Validation::new(alg);
            v.validate_aud = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &dec, &v)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));

            // A changed claim breaks the signature.
            let (h, rest) = token.split_once('.').expect("jwt");
            let (_, s) = rest.split_once('.').expect("jwt");
            let forged_claims = base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                br#"{"sub":"y","exp":4000000000}"#,
            );
            let forged = format!("{h}.{forged_claims}.{s}");
            assert!(
                jsonwebtoken::decode::<serde_json::Value>(&forged, &dec, &v).is_err(),
                "{alg:?}: forged claims accepted"
            );
        }
    }

    /// RS256 with the key from a SubjectPublicKeyInfo PEM (a `token` provisioner's
    /// `public_key_file`), made by openssl: ring reads the PKCS#1 key jsonwebtoken extracts.
    #[test]
    fn ring_verifies_rs256_with_a_pem_key() {
        install();
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("rsa.pem");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .expect("openssl must be installed (apt-get install openssl)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            out.stdout
        };
        let private_s = private.to_str().expect("utf-8 path");
        run(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            private_s,
        ]);
        let public = run(&["pkey", "-in", private_s, "-pubout"]);
        let enc = EncodingKey::from_rsa_pem(&std::fs::read(&private).expect("read")).expect("key");
        let dec = DecodingKey::from_rsa_pem(&public).expect("key");
        let claims = json!({"sub": "x", "exp": 4_000_000_000u64});
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &enc).expect("sign");
        let mut v = Validation::new(Algorithm::RS256);
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &dec, &v).expect("RS256 verifies");
        let mut bad = token.into_bytes();
        let last = bad.len() - 3;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("ascii");
        assert!(jsonwebtoken::decode::<serde_json::Value>(&bad, &dec, &v).is_err());
    }

    #[test]
    fn a_key_of_the_wrong_family_is_refused() {
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let dec = DecodingKey::from_ec_pem(ec.public_key_pem().as_bytes()).expect("key");
        assert!(new_verifier(&Algorithm::RS256, &dec).is_err());
        assert!(new_verifier(&Algorithm::EdDSA, &dec).is_err());
        assert!(new_verifier(&Algorithm::ES256, &dec).is_ok());
    }
}
