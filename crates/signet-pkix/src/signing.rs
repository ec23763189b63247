//! The key-custody seam: [`SigningKey`] is everything Signet asks of a private key (sign
//! bytes, say the algorithm and the public key), so the root, the issuing CA and the OCSP
//! signer hold their keys through it and a key kept elsewhere (a PKCS#11 token, a KMS) is one
//! more implementation, with nothing above it changed. [`Pkcs8Key`] is the in-memory one:
//! a PKCS#8 key signed with by ring.

use ring::rand::SystemRandom;
use ring::signature::{self as ring_sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};

use crate::der_writer::{TAG_SEQUENCE, push_bit_string, push_tlv};

/// The signature algorithms Signet's keys sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignatureAlgorithm {
    /// ecdsa-with-SHA256 with a P-256 key (RFC 5758 section 3.2).
    EcdsaP256Sha256,
    /// ecdsa-with-SHA384 with a P-384 key (RFC 5758 section 3.2).
    EcdsaP384Sha384,
    /// Ed25519 (RFC 8410).
    Ed25519,
    /// sha256WithRSAEncryption, PKCS#1 v1.5 (RFC 4055 section 5).
    RsaPkcs1Sha256,
    /// sha384WithRSAEncryption, PKCS#1 v1.5 (RFC 4055 section 5).
    RsaPkcs1Sha384,
    /// sha512WithRSAEncryption, PKCS#1 v1.5 (RFC 4055 section 5).
    RsaPkcs1Sha512,
}

impl SignatureAlgorithm {
    /// The DER AlgorithmIdentifier written next to the signature (RFC 5280 section
    /// 4.1.1.2): ECDSA and Ed25519 with parameters absent, RSA with NULL parameters.
    pub fn algorithm_identifier(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
            ],
            Self::EcdsaP384Sha384 => &[
                0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
            ],
            Self::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            Self::RsaPkcs1Sha256 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05,
                0x00,
            ],
            Self::RsaPkcs1Sha384 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c, 0x05,
                0x00,
            ],
            Self::RsaPkcs1Sha512 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d, 0x05,
                0x00,
            ],
        }
    }

    /// The AlgorithmIdentifier of the public key in a SubjectPublicKeyInfo (RFC 5480
    /// section 2.1.1 for EC, RFC 8410 section 3, RFC 8017 appendix A.1 for RSA).
    fn key_algorithm_identifier(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => &[
                0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
                0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ],
            Self::EcdsaP384Sha384 => &[
                0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b,
                0x81, 0x04, 0x00, 0x22,
            ],
            Self::Ed25519 => &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70],
            Self::RsaPkcs1Sha256 | Self::RsaPkcs1Sha384 | Self::RsaPkcs1Sha512 => &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00,
            ],
        }
    }

    /// A DER SubjectPublicKeyInfo for the raw `subject_public_key` of a key of this
    /// algorithm (RFC 5280 section 4.1.2.7).
    pub fn spki_der(self, subject_public_key: &[u8]) -> Vec<u8> {
        let mut content = Vec::with_capacity(subject_public_key.len() + 32);
        content.extend_from_slice(self.key_algorithm_identifier());
        push_bit_string(&mut content, subject_public_key);
        let mut out = Vec::with_capacity(content.len() + 4);
        push_tlv(&mut out, TAG_SEQUENCE, &content);
        out
    }
}

/// Why a [`SigningKey`] did not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// The key cannot be used now: a token removed or logged out, a KMS unreachable. Nothing
    /// was signed; retrying later may work.
    #[error("the signing key is unavailable: {0}")]
    KeyUnavailable(String),
    /// The key refused or failed to sign this message.
    #[error("signing failed: {0}")]
    Failed(String),
}

/// A private key Signet signs with, wherever it is kept.
///
/// Implementations must be shareable between threads (the issuing CA signs on many at once)
/// and must never expose the private key. `sign` returns the signature as it goes into a
/// certificate, CRL or OCSP response: DER `Ecdsa-Sig-Value` for ECDSA (never r||s), 64 bytes
/// for Ed25519, the PKCS#1 v1.5 block for RSA.
pub trait SigningKey: Send + Sync {
    /// The algorithm of the signatures [`SigningKey::sign`] makes.
    fn algorithm(&self) -> SignatureAlgorithm;

    /// The contents of the subjectPublicKey BIT STRING: the EC point, the Ed25519 key, or
    /// the DER RSAPublicKey.
    fn subject_public_key(&self) -> &[u8];

    /// Sign `message`.
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError>;

    /// The public key as a DER SubjectPublicKeyInfo.
    fn spki_der(&self) -> Vec<u8> {
        self.algorithm().spki_der(self.subject_public_key())
    }
}

enum Pkcs8Inner {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn ring_sig::RsaEncoding),
}

/// A PKCS#8 private key held in memory and signed with by ring: ECDSA P-256 (SHA-256),
/// P-384 (SHA-384), Ed25519, or RSA 2048 to 8192 bits (PKCS#1 v1.5 with the hash asked for).
pub struct Pkcs8Key {
    algorithm: SignatureAlgorithm,
    inner: Pkcs8Inner,
    rng: SystemRandom,
}

impl std::fmt::Debug for Pkcs8Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs8Key")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Pkcs8Key {
    /// Load a DER PKCS#8 key that signs with `algorithm`.
    pub fn from_pkcs8_der(
        pkcs8: &[u8],
        algorithm: SignatureAlgorithm,
    ) -> Result<Self, crate::PkixError> {
        use SignatureAlgorithm as A;
        let rng = SystemRandom::new();
        let bad = |e: &dyn std::fmt::Display| {
            crate::PkixError::UnsupportedKey(format!("PKCS#8 key for {algorithm:?}: {e}"))
        };
        let ecdsa = |alg: &'static ring_sig::EcdsaSigningAlgorithm| {
            EcdsaKeyPair::from_pkcs8(alg, pkcs8, &rng).map_err(|e| bad(&e))
        };
        let inner = match algorithm {
            A::EcdsaP256Sha256 => {
                Pkcs8Inner::Ecdsa(ecdsa(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING)?)
            }
            A::EcdsaP384Sha384 => {
                Pkcs8Inner::Ecdsa(ecdsa(&ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING)?)
            }
            // Accepts PKCS#8 v1 (no public key inside), as openssl writes it.
            A::Ed25519 => Pkcs8Inner::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|e| bad(&e))?,
            ),
            A::RsaPkcs1Sha256 | A::RsaPkcs1Sha384 | A::RsaPkcs1Sha512 => {
                let encoding: &'static dyn ring_sig::RsaEncoding = match algorithm {
                    A::RsaPkcs1Sha384 => &ring_sig::RSA_PKCS1_SHA384,
                    A::RsaPkcs1Sha512 => &ring_sig::RSA_PKCS1_SHA512,
                    _ => &ring_sig::RSA_PKCS1_SHA256,
                };
                Pkcs8Inner::Rsa(
                    RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| bad(&e))?,
                    encoding,
                )
            }
        };
        Ok(Pkcs8Key {
            algorithm,
            inner,
            rng,
        })
    }
}

impl SigningKey for Pkcs8Key {
    fn algorithm(&self) -> SignatureAlgorithm {
        self.algorithm
    }

    fn subject_public_key(&self) -> &[u8] {
        match &self.inner {
            Pkcs8Inner::Ecdsa(k) => k.public_key().as_ref(),
            Pkcs8Inner::Ed25519(k) => k.public_key().as_ref(),
            Pkcs8Inner::Rsa(k, _) => k.public_key().as_ref(),
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        let failed = |_| SigningError::Failed("ring could not sign".into());
        match &self.inner {
            Pkcs8Inner::Ecdsa(k) => k
                .sign(&self.rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(failed),
            Pkcs8Inner::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            Pkcs8Inner::Rsa(k, encoding) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(*encoding, &self.rng, message, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
        }
    }
}

impl<K: SigningKey + ?Sized> SigningKey for std::sync::Arc<K> {
    fn algorithm(&self) -> SignatureAlgorithm {
        (**self).algorithm()
    }

    fn subject_public_key(&self) -> &[u8] {
        (**self).subject_public_key()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        (**self).sign(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkcs8_keys_sign_what_their_spki_verifies() {
        let rng = SystemRandom::new();
        let cases = [
            (
                SignatureAlgorithm::EcdsaP256Sha256,
                EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                    .expect("p256"),
            ),
            (
                SignatureAlgorithm::EcdsaP384Sha384,
                EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P384_SHA384_ASN1_SIGNING, &rng)
                    .expect("p384"),
            ),
            (
                SignatureAlgorithm::Ed25519,
                Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519"),
            ),
        ];
        for (alg, pkcs8) in cases {
            let key = Pkcs8Key::from_pkcs8_der(pkcs8.as_ref(), alg).expect("load");
            let sig = key.sign(b"tbs").expect("sign");
            assert!(
                crate::cert::signature_verifies(
                    &key.spki_der(),
                    alg.algorithm_identifier(),
                    b"tbs",
                    &sig
                ),
                "{alg:?}"
            );
            assert!(!crate::cert::signature_verifies(
                &key.spki_der(),
                alg.algorithm_identifier(),
                b"other",
                &sig
            ));
        }
        // A P-256 key is not a P-384 key.
        let p256 = EcdsaKeyPair::generate_pkcs8(&ring_sig::ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .expect("p256");
        assert!(matches!(
            Pkcs8Key::from_pkcs8_der(p256.as_ref(), SignatureAlgorithm::EcdsaP384Sha384),
            Err(crate::PkixError::UnsupportedKey(_))
        ));
    }
}
