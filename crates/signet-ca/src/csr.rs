//! CSR intake: PKCS#10 (RFC 2986) parsing, self-signature verification and key checks.
//!
//! rcgen's own CSR parser refuses any requested extension it does not know (SKI, certificate
//! policies...), which CSRs from Go, Java and Windows tools carry. So we parse with x509-cert,
//! verify the signature with ring, and read only what we use: the public key, the common name
//! and the subjectAltName. Everything else the CSR asks for is ignored, never copied.

use std::collections::BTreeSet;
use std::net::IpAddr;

use const_oid::ObjectIdentifier;
use const_oid::db::{rfc4519, rfc5280, rfc5912};
use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
use der::{Decode, Encode, Reader, SliceReader};
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};
use x509_cert::request::CertReq;

use crate::CaError;
use crate::names::SubjectName;

/// Largest CSR accepted, in bytes of DER. An 8192-bit RSA CSR with 100 names is well under.
pub const MAX_CSR_DER_LEN: usize = 32 * 1024;

const OID_EXTENSION_REQUEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.14");
const OID_RSA_ENCRYPTION: ObjectIdentifier = rfc5912::RSA_ENCRYPTION;
const OID_EC_PUBLIC_KEY: ObjectIdentifier = rfc5912::ID_EC_PUBLIC_KEY;
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_P256: ObjectIdentifier = rfc5912::SECP_256_R_1;
const OID_P384: ObjectIdentifier = rfc5912::SECP_384_R_1;

/// The key types Signet issues certificates for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CsrKeyType {
    /// RSA with the modulus size in bits (2048 to 8192).
    Rsa(usize),
    /// ECDSA on NIST P-256.
    EcdsaP256,
    /// ECDSA on NIST P-384.
    EcdsaP384,
    /// Ed25519.
    Ed25519,
}

impl CsrKeyType {
    /// Whether the key can do key transport (only RSA).
    pub fn is_rsa(self) -> bool {
        matches!(self, CsrKeyType::Rsa(_))
    }
}

/// A parsed, signature-checked certificate signing request.
#[derive(Debug, Clone)]
pub struct Csr {
    spki_der: Vec<u8>,
    key_type: CsrKeyType,
    common_name: Option<String>,
    names: Vec<SubjectName>,
}

impl Csr {
    /// Accept PEM (`CERTIFICATE REQUEST` or `NEW CERTIFICATE REQUEST`, one block, nothing
    /// but whitespace around it) or DER (nothing after the outer SEQUENCE).
    pub fn from_pem_or_der(input: &[u8]) -> Result<Self, CaError> {
        let trimmed = input.trim_ascii();
        if trimmed.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(trimmed)
                .map_err(|_| CaError::MalformedCsr("PEM is not ASCII".into()))?;
            Self::from_pem(text)
        } else {
            Self::from_der(input)
        }
    }

    /// Parse PEM.
    pub fn from_pem(pem: &str) -> Result<Self, CaError> {
        let trimmed = pem.trim();
        // pem-rfc7468 rejects anything after the END line except one newline; we also allow
        // surrounding whitespace, and nothing else.
        let (label, der) = pem_rfc7468::decode_vec(trimmed.as_bytes())
            .map_err(|e| CaError::MalformedCsr(format!("bad PEM: {e}")))?;
        if label != "CERTIFICATE REQUEST" && label != "NEW CERTIFICATE REQUEST" {
            return Err(CaError::MalformedCsr(format!(
                "expected a CERTIFICATE REQUEST PEM block, found {label:?}"
            )));
        }
        Self::from_der(&der)
    }

    /// Parse DER, verify the self-signature, check the key, and collect the requested names.
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, CaError> {
        if der_bytes.len() > MAX_CSR_DER_LEN {
            return Err(CaError::MalformedCsr(format!(
                "CSR larger than {MAX_CSR_DER_LEN} bytes"
            )));
        }
        let tbs = raw_certification_request_info(der_bytes)?;
        let req = CertReq::from_der(der_bytes).map_err(|e| CaError::MalformedCsr(e.to_string()))?;

        let spki = &req.info.public_key;
        let spk = spki.subject_public_key.as_bytes().ok_or_else(|| {
            CaError::UnsupportedKey("public key BIT STRING has unused bits".into())
        })?;
        let key_type = key_type(spki)?;
        let alg = verification_algorithm(key_type, &req.algorithm.oid)?;
        let sig = req
            .signature
            .as_bytes()
            .ok_or_else(|| CaError::MalformedCsr("signature BIT STRING has unused bits".into()))?;
        UnparsedPublicKey::new(alg, spk)
            .verify(tbs, sig)
            .map_err(|_| CaError::CsrSignatureInvalid)?;

        let common_name = common_name(&req)?;
        let mut names = BTreeSet::new();
        for ext_attr in req
            .info
            .attributes
            .iter()
            .filter(|a| a.oid == OID_EXTENSION_REQUEST)
        {
            for value in ext_attr.values.iter() {
                let exts: Vec<x509_cert::ext::Extension> = value
                    .decode_as()
                    .map_err(|e| CaError::MalformedCsr(format!("extensionRequest: {e}")))?;
                for ext in exts {
                    if ext.extn_id == rfc5280::ID_CE_BASIC_CONSTRAINTS {
                        let bc = BasicConstraints::from_der(ext.extn_value.as_bytes())
                            .map_err(|e| CaError::MalformedCsr(format!("basicConstraints: {e}")))?;
                        if bc.ca || bc.path_len_constraint.is_some() {
                            return Err(CaError::CaRequested);
                        }
                    } else if ext.extn_id == rfc5280::ID_CE_SUBJECT_ALT_NAME {
                        let san = SubjectAltName::from_der(ext.extn_value.as_bytes())
                            .map_err(|e| CaError::MalformedCsr(format!("subjectAltName: {e}")))?;
                        for gn in san.0 {
                            names.insert(general_name(&gn)?);
                        }
                    }
                    // Every other requested extension (KU, EKU, SKI, policies...) is ignored:
                    // the certificate's extensions come from the profile, never the CSR.
                }
            }
        }
        if let Some(cn) = &common_name {
            // A CN is a name claim like any other: it must pass policy and is added to the SAN.
            names.insert(SubjectName::parse_host(cn)?);
        }
        Ok(Csr {
            spki_der: spki.to_der().map_err(CaError::internal)?,
            key_type,
            common_name,
            names: names.into_iter().collect(),
        })
    }

    /// A request for an already-vetted key and names, e.g. to renew a certificate: the key
    /// type is still checked, but there is no self-signature to verify.
    pub fn from_parts(
        spki_der: &[u8],
        common_name: Option<String>,
        names: Vec<SubjectName>,
    ) -> Result<Self, CaError> {
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der)
            .map_err(|e| CaError::UnsupportedKey(e.to_string()))?;
        let key_type = key_type(&spki)?;
        let mut names: Vec<SubjectName> = names;
        names.sort();
        names.dedup();
        Ok(Csr {
            spki_der: spki_der.to_vec(),
            key_type,
            common_name,
            names,
        })
    }

    /// The SubjectPublicKeyInfo, DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The key type.
    pub fn key_type(&self) -> CsrKeyType {
        self.key_type
    }

    /// The subject common name, when the CSR has one.
    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    /// Every name requested (SANs plus the CN), de-duplicated and sorted.
    pub fn names(&self) -> &[SubjectName] {
        &self.names
    }
}

/// The exact bytes of CertificationRequestInfo, as signed. Re-encoding the parsed structure
/// would be wrong for any CSR whose encoder was not perfectly canonical.
fn raw_certification_request_info(der_bytes: &[u8]) -> Result<&[u8], CaError> {
    let malformed = |e: der::Error| CaError::MalformedCsr(e.to_string());
    let mut reader = SliceReader::new(der_bytes).map_err(malformed)?;
    let tbs = reader
        .sequence(|r| {
            let tbs = r.tlv_bytes()?;
            // Skip signatureAlgorithm and signature; CertReq::from_der checks them properly.
            r.tlv_bytes()?;
            r.tlv_bytes()?;
            Ok(tbs)
        })
        .map_err(malformed)?;
    reader
        .finish(tbs)
        .map_err(|_| CaError::MalformedCsr("trailing data after the CSR".into()))
}

/// A subject public key as a signature verifier takes it: its type, and the contents of the
/// subjectPublicKey BIT STRING of its SubjectPublicKeyInfo (RFC 5280 section 4.1.2.7): an
/// uncompressed EC point, a PKCS#1 RSAPublicKey, or the 32 bytes of an Ed25519 key, which is
/// what ring's `UnparsedPublicKey` wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The key's type (the same ones a CSR may carry).
    pub key_type: CsrKeyType,
    /// The subjectPublicKey bits.
    pub key: Vec<u8>,
}

impl PublicKey {
    /// Read a DER `SubjectPublicKeyInfo`; only the key types [`Csr`] accepts.
    pub fn from_spki_der(der_bytes: &[u8]) -> Result<PublicKey, CaError> {
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(der_bytes)
            .map_err(|e| CaError::UnsupportedKey(format!("malformed public key: {e}")))?;
        let key_type = key_type(&spki)?;
        let key = spki
            .subject_public_key
            .as_bytes()
            .ok_or_else(|| CaError::UnsupportedKey("public key with unused bits".into()))?
            .to_vec();
        Ok(PublicKey { key_type, key })
    }
}

fn key_type(spki: &spki::SubjectPublicKeyInfoOwned) -> Result<CsrKeyType, CaError> {
    let oid = spki.algorithm.oid;
    if oid == OID_RSA_ENCRYPTION {
        let bits = rsa_modulus_bits(spki.subject_public_key.raw_bytes())?;
        if !(2048..=8192).contains(&bits) {
            return Err(CaError::UnsupportedKey(format!(
                "RSA {bits} bits (accepted: 2048 to 8192)"
            )));
        }
        Ok(CsrKeyType::Rsa(bits))
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve: ObjectIdentifier = spki
            .algorithm
            .parameters
            .as_ref()
            .ok_or_else(|| CaError::UnsupportedKey("EC key without a named curve".into()))?
            .decode_as()
            .map_err(|_| {
                CaError::UnsupportedKey(
                    "EC key with explicit curve parameters (use a named curve)".into(),
                )
            })?;
        match curve {
            c if c == OID_P256 => Ok(CsrKeyType::EcdsaP256),
            c if c == OID_P384 => Ok(CsrKeyType::EcdsaP384),
            other => Err(CaError::UnsupportedKey(format!(
                "EC curve {} (accepted: P-256, P-384)",
                oid_name(&other)
            ))),
        }
    } else if oid == OID_ED25519 {
        Ok(CsrKeyType::Ed25519)
    } else {
        Err(CaError::UnsupportedKey(format!(
            "key algorithm {} (accepted: RSA 2048-8192, ECDSA P-256/P-384, Ed25519)",
            oid_name(&oid)
        )))
    }
}

/// RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER } (RFC 8017 A.1.1)
fn rsa_modulus_bits(rsa_public_key: &[u8]) -> Result<usize, CaError> {
    let bad = |_| CaError::UnsupportedKey("malformed RSA public key".into());
    let mut reader = SliceReader::new(rsa_public_key).map_err(bad)?;
    let modulus = reader
        .sequence(|r| {
            let n = der::asn1::UintRef::decode(r)?;
            let _e = der::asn1::UintRef::decode(r)?;
            Ok(n.as_bytes().to_vec())
        })
        .map_err(bad)?;
    reader.finish(()).map_err(bad)?;
    let first = modulus.first().copied().unwrap_or(0);
    Ok(modulus.len() * 8 - first.leading_zeros() as usize)
}

fn verification_algorithm(
    key: CsrKeyType,
    sig_oid: &ObjectIdentifier,
) -> Result<&'static dyn VerificationAlgorithm, CaError> {
    use rfc5912::{
        ECDSA_WITH_SHA_256, ECDSA_WITH_SHA_384, SHA_256_WITH_RSA_ENCRYPTION,
        SHA_384_WITH_RSA_ENCRYPTION, SHA_512_WITH_RSA_ENCRYPTION,
    };
    let alg: &'static dyn VerificationAlgorithm = match key {
        CsrKeyType::Rsa(_) if *sig_oid == SHA_256_WITH_RSA_ENCRYPTION => {
            &signature::RSA_PKCS1_2048_8192_SHA256
        }
        CsrKeyType::Rsa(_) if *sig_oid == SHA_384_WITH_RSA_ENCRYPTION => {
            &signature::RSA_PKCS1_2048_8192_SHA384
        }
        CsrKeyType::Rsa(_) if *sig_oid == SHA_512_WITH_RSA_ENCRYPTION => {
            &signature::RSA_PKCS1_2048_8192_SHA512
        }
        CsrKeyType::EcdsaP256 if *sig_oid == ECDSA_WITH_SHA_256 => {
            &signature::ECDSA_P256_SHA256_ASN1
        }
        CsrKeyType::EcdsaP256 if *sig_oid == ECDSA_WITH_SHA_384 => {
            &signature::ECDSA_P256_SHA384_ASN1
        }
        CsrKeyType::EcdsaP384 if *sig_oid == ECDSA_WITH_SHA_256 => {
            &signature::ECDSA_P384_SHA256_ASN1
        }
        CsrKeyType::EcdsaP384 if *sig_oid == ECDSA_WITH_SHA_384 => {
            &signature::ECDSA_P384_SHA384_ASN1
        }
        CsrKeyType::Ed25519 if *sig_oid == OID_ED25519 => &signature::ED25519,
        _ => {
            return Err(CaError::UnsupportedSignatureAlgorithm(format!(
                "{} for a {key:?} key (accepted: SHA-256/384/512 with RSA PKCS#1 v1.5, ECDSA with SHA-256/384, Ed25519)",
                oid_name(sig_oid)
            )));
        }
    };
    Ok(alg)
}

fn oid_name(oid: &ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

fn common_name(req: &CertReq) -> Result<Option<String>, CaError> {
    let mut found = None;
    for rdn in req.info.subject.0.iter() {
        for atv in rdn.0.iter().filter(|atv| atv.oid == rfc4519::CN) {
            let value = directory_string(&atv.value)?;
            if found.replace(value).is_some() {
                return Err(CaError::MalformedCsr(
                    "more than one common name in the subject".into(),
                ));
            }
        }
    }
    Ok(found.filter(|cn| !cn.is_empty()))
}

fn directory_string(any: &der::asn1::Any) -> Result<String, CaError> {
    let bad = || {
        CaError::MalformedCsr(
            "common name is not a UTF8String, PrintableString or IA5String".into(),
        )
    };
    let s = if let Ok(s) = any.decode_as::<Utf8StringRef<'_>>() {
        s.as_str().to_string()
    } else if let Ok(s) = any.decode_as::<PrintableStringRef<'_>>() {
        s.as_str().to_string()
    } else if let Ok(s) = any.decode_as::<Ia5StringRef<'_>>() {
        s.as_str().to_string()
    } else {
        return Err(bad());
    };
    Ok(s)
}

pub(crate) fn general_name(gn: &GeneralName) -> Result<SubjectName, CaError> {
    match gn {
        GeneralName::DnsName(s) => Ok(SubjectName::Dns(crate::names::DnsName::parse(s.as_str())?)),
        GeneralName::UniformResourceIdentifier(s) => SubjectName::parse_uri(s.as_str()),
        GeneralName::Rfc822Name(s) => SubjectName::parse_email(s.as_str()),
        GeneralName::IpAddress(octets) => match octets.as_bytes().len() {
            4 => {
                let b: [u8; 4] = octets.as_bytes().try_into().map_err(CaError::internal)?;
                Ok(SubjectName::Ip(IpAddr::from(b)))
            }
            16 => {
                let b: [u8; 16] = octets.as_bytes().try_into().map_err(CaError::internal)?;
                Ok(SubjectName::Ip(IpAddr::from(b)))
            }
            n => Err(CaError::InvalidName {
                name: format!("ip:<{n} octets>"),
                reason: "an IP address is 4 or 16 octets".into(),
            }),
        },
        other => {
            let kind = match other {
                GeneralName::OtherName(_) => "otherName",
                GeneralName::DirectoryName(_) => "directoryName",
                GeneralName::EdiPartyName(_) => "ediPartyName",
                _ => "registeredID",
            };
            Err(CaError::InvalidName {
                name: kind.to_string(),
                reason: "unsupported subjectAltName type (accepted: DNS, IP, URI, email)".into(),
            })
        }
    }
}
