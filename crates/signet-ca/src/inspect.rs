//! Reading back certificates Signet issued: what renewal and mTLS authentication need.

use const_oid::db::rfc5280;
use der::{Decode, Encode};
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectAltName};

use crate::CaError;
use crate::issue::find_extension;
use crate::names::SubjectName;
use crate::serial::Serial;

/// The parts of an issued certificate Signet acts on.
#[derive(Clone, Debug)]
pub struct CertificateInfo {
    /// Serial number.
    pub serial: Serial,
    /// SubjectPublicKeyInfo, DER.
    pub spki_der: Vec<u8>,
    /// Subject common name, if any.
    pub common_name: Option<String>,
    /// Names in the subjectAltName.
    pub names: Vec<SubjectName>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The authority key identifier (the issuer's key id), if present.
    pub authority_key_id: Option<Vec<u8>>,
}

impl CertificateInfo {
    /// Parse a DER certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, CaError> {
        let bad = |e: der::Error| CaError::CaCertificate(e.to_string());
        let cert = Certificate::from_der(der_bytes).map_err(bad)?;
        let tbs = &cert.tbs_certificate;
        let serial = Serial::from_be_bytes(tbs.serial_number.as_bytes())?;
        let spki_der = tbs.subject_public_key_info.to_der().map_err(bad)?;
        let mut common_name = None;
        for rdn in tbs.subject.0.iter() {
            for atv in rdn.0.iter().filter(|a| a.oid == const_oid::db::rfc4519::CN) {
                if let Ok(s) = atv.value.decode_as::<der::asn1::Utf8StringRef<'_>>() {
                    common_name = Some(s.as_str().to_string());
                } else if let Ok(s) = atv.value.decode_as::<der::asn1::PrintableStringRef<'_>>() {
                    common_name = Some(s.as_str().to_string());
                }
            }
        }
        let mut names = Vec::new();
        if let Some(san) = find_extension::<SubjectAltName>(&cert, rfc5280::ID_CE_SUBJECT_ALT_NAME)?
        {
            for gn in &san.0 {
                names.push(crate::csr::general_name(gn)?);
            }
        }
        let aki = find_extension::<AuthorityKeyIdentifier>(
            &cert,
            rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER,
        )?
        .and_then(|a| a.key_identifier.map(|k| k.as_bytes().to_vec()));
        let secs = |d: std::time::Duration| {
            i64::try_from(d.as_secs())
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(|| CaError::CaCertificate("validity out of range".into()))
        };
        Ok(CertificateInfo {
            serial,
            spki_der,
            common_name,
            names,
            not_before: secs(tbs.validity.not_before.to_unix_duration())?,
            not_after: secs(tbs.validity.not_after.to_unix_duration())?,
            authority_key_id: aki,
        })
    }
}
