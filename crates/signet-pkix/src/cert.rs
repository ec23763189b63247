//! Reading what Signet needs from a DER certificate without re-encoding it: the subject and
//! key bytes as signed, extensions by OID, and whether a signature verifies.

use der::{Decode, Header, Reader, SliceReader, Tag, Tagged};
use ring::signature as ring_sig;
use x509_cert::Certificate;

use crate::PkixError;

/// The issuer's subject Name (a complete TLV) and the contents of its subjectPublicKey BIT
/// STRING, sliced from the certificate as it was signed, never re-encoded: CRL issuer names
/// and OCSP issuer hashes must match these bytes exactly.
///
/// ```text
/// Certificate ::= SEQUENCE { tbsCertificate TBSCertificate, ... }
/// TBSCertificate ::= SEQUENCE { version [0] EXPLICIT Version DEFAULT v1,
///      serialNumber, signature, issuer, validity, subject Name,
///      subjectPublicKeyInfo SubjectPublicKeyInfo, ... }
/// ```
/// (RFC 5280 section 4.1.)
pub fn raw_subject_and_key(cert_der: &[u8]) -> Result<(&[u8], &[u8]), PkixError> {
    let bad = |e: der::Error| PkixError::Certificate(format!("unreadable certificate: {e}"));
    let mut cert = SliceReader::new(cert_der).map_err(bad)?;
    Header::decode(&mut cert)
        .and_then(|h| h.tag.assert_eq(Tag::Sequence))
        .map_err(bad)?;
    let tbs_tlv = cert.tlv_bytes().map_err(bad)?;
    let mut tbs = SliceReader::new(tbs_tlv).map_err(bad)?;
    Header::decode(&mut tbs)
        .and_then(|h| h.tag.assert_eq(Tag::Sequence))
        .map_err(bad)?;
    let version_tag = Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N0,
    };
    if tbs.peek_tag().map_err(bad)? == version_tag {
        tbs.tlv_bytes().map_err(bad)?;
    }
    for _ in 0..4 {
        // serialNumber, signature, issuer, validity
        tbs.tlv_bytes().map_err(bad)?;
    }
    let subject = tbs.tlv_bytes().map_err(bad)?;
    let spki_tlv = tbs.tlv_bytes().map_err(bad)?;
    let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_tlv).map_err(bad)?;
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or_else(|| PkixError::Certificate("subjectPublicKey has unused bits".into()))?;
    Ok((subject, key))
}

/// The extension `oid` of `cert`, decoded as `T`, or `None` when the certificate has none.
pub fn find_extension<T: for<'a> Decode<'a>>(
    cert: &Certificate,
    oid: const_oid::ObjectIdentifier,
) -> Result<Option<T>, PkixError> {
    let Some(exts) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    match exts.iter().find(|e| e.extn_id == oid) {
        Some(e) => T::from_der(e.extn_value.as_bytes())
            .map(Some)
            .map_err(|e| PkixError::Certificate(e.to_string())),
        None => Ok(None),
    }
}

/// The public-key types Signet's keys and verifiers know (what an SPKI's algorithm says).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyAlgorithm {
    /// id-ecPublicKey on prime256v1 (RFC 5480).
    EcdsaP256,
    /// id-ecPublicKey on secp384r1 (RFC 5480).
    EcdsaP384,
    /// id-Ed25519 (RFC 8410).
    Ed25519,
    /// rsaEncryption (RFC 8017).
    Rsa,
}

impl KeyAlgorithm {
    /// The algorithm of a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(spki_der: &[u8]) -> Result<Self, PkixError> {
        let spki = spki::SubjectPublicKeyInfoRef::from_der(spki_der)
            .map_err(|e| PkixError::UnsupportedKey(format!("unreadable public key: {e}")))?;
        Self::from_spki(&spki)
    }

    /// The algorithm of a parsed SubjectPublicKeyInfo.
    pub fn from_spki(spki: &spki::SubjectPublicKeyInfoRef<'_>) -> Result<Self, PkixError> {
        use der::asn1::ObjectIdentifier as Oid;
        const EC_PUBLIC_KEY: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
        const P256: Oid = Oid::new_unwrap("1.2.840.10045.3.1.7");
        const P384: Oid = Oid::new_unwrap("1.3.132.0.34");
        const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
        const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
        let alg = &spki.algorithm;
        if alg.oid == ED25519 && alg.parameters.is_none() {
            return Ok(KeyAlgorithm::Ed25519);
        }
        if alg.oid == RSA {
            return Ok(KeyAlgorithm::Rsa);
        }
        if alg.oid == EC_PUBLIC_KEY {
            match alg.parameters_oid() {
                Ok(P256) => return Ok(KeyAlgorithm::EcdsaP256),
                Ok(P384) => return Ok(KeyAlgorithm::EcdsaP384),
                _ => {}
            }
        }
        Err(PkixError::UnsupportedKey(format!(
            "a key of algorithm {}",
            alg.oid
        )))
    }
}

/// Whether `signature` over `message` verifies with the key in `spki_der` under the DER
/// AlgorithmIdentifier `algorithm`: ECDSA (P-256, P-384) with SHA-256 or SHA-384, Ed25519,
/// and RSA PKCS#1 v1.5 with SHA-256, SHA-384 or SHA-512 (2048 bits and up). Anything else
/// (SHA-1, RSA-PSS, other curves) does not verify.
pub fn signature_verifies(
    spki_der: &[u8],
    algorithm: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    use der::asn1::ObjectIdentifier as Oid;
    const ECDSA_SHA256: Oid = Oid::new_unwrap("1.2.840.10045.4.3.2");
    const ECDSA_SHA384: Oid = Oid::new_unwrap("1.2.840.10045.4.3.3");
    const ED25519: Oid = Oid::new_unwrap("1.3.101.112");
    const RSA_SHA256: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
    const RSA_SHA384: Oid = Oid::new_unwrap("1.2.840.113549.1.1.12");
    const RSA_SHA512: Oid = Oid::new_unwrap("1.2.840.113549.1.1.13");
    let Ok(alg) = spki::AlgorithmIdentifierRef::from_der(algorithm) else {
        return false;
    };
    let Ok(spki) = spki::SubjectPublicKeyInfoRef::from_der(spki_der) else {
        return false;
    };
    let Some(key) = spki.subject_public_key.as_bytes() else {
        return false;
    };
    let Ok(key_alg) = KeyAlgorithm::from_spki(&spki) else {
        return false;
    };
    use KeyAlgorithm as K;
    let verifier: &dyn ring_sig::VerificationAlgorithm = match (alg.oid, key_alg) {
        (ECDSA_SHA256, K::EcdsaP256) => &ring_sig::ECDSA_P256_SHA256_ASN1,
        (ECDSA_SHA256, K::EcdsaP384) => &ring_sig::ECDSA_P384_SHA256_ASN1,
        (ECDSA_SHA384, K::EcdsaP256) => &ring_sig::ECDSA_P256_SHA384_ASN1,
        (ECDSA_SHA384, K::EcdsaP384) => &ring_sig::ECDSA_P384_SHA384_ASN1,
        (ED25519, K::Ed25519) => &ring_sig::ED25519,
        (RSA_SHA256, K::Rsa) => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        (RSA_SHA384, K::Rsa) => &ring_sig::RSA_PKCS1_2048_8192_SHA384,
        (RSA_SHA512, K::Rsa) => &ring_sig::RSA_PKCS1_2048_8192_SHA512,
        _ => return false,
    };
    // ECDSA and Ed25519 take no parameters (RFC 5758 section 3.2, RFC 8410 section 3); the
    // RSA PKCS#1 ones take NULL or none.
    let params_ok = match &alg.parameters {
        None => true,
        Some(p) => key_alg == K::Rsa && p.tag() == der::Tag::Null,
    };
    params_ok
        && ring_sig::UnparsedPublicKey::new(verifier, key)
            .verify(message, signature)
            .is_ok()
}
