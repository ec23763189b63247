//! The issuing CA as the responder knows it: its certificate only, never its key.

use const_oid::db::rfc5280;
use der::{Decode, Encode};
use signet_pkix::ocsp::OcspIssuerIds;
use x509_cert::Certificate;
use x509_cert::ext::pkix::{AuthorityKeyIdentifier, SubjectKeyIdentifier};

use crate::ResponderError;

/// The issuing CA certificate and what is derived from it once: the OCSP issuer hashes, and
/// the key identifier under which the store files its certificates and CRLs.
#[derive(Clone)]
pub struct IssuerCertificate {
    der: Vec<u8>,
    pem: String,
    ids: OcspIssuerIds,
    key_id: Vec<u8>,
    key_id_hex: String,
    subject_der: Vec<u8>,
    not_after: time::OffsetDateTime,
    serial_hex: String,
}

impl std::fmt::Debug for IssuerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerCertificate")
            .field("key_id", &self.key_id_hex)
            .finish_non_exhaustive()
    }
}

impl IssuerCertificate {
    /// From the issuing CA certificate, DER.
    pub fn from_der(der: &[u8]) -> Result<Self, ResponderError> {
        let bad = |e: &dyn std::fmt::Display| ResponderError::IssuerCertificate(e.to_string());
        let cert = Certificate::from_der(der).map_err(|e| bad(&e))?;
        let ids = OcspIssuerIds::from_cert_der(der).map_err(|e| bad(&e))?;
        // The same rule as signet_ca::IssuingCa::key_id: the certificate's subject key
        // identifier, else the SHA-1 of its public key (RFC 5280 section 4.2.1.2, method 1).
        let ski = extension::<SubjectKeyIdentifier>(&cert, rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)
            .map_err(|e| bad(&e))?;
        let key_id = match ski {
            Some(ski) => ski.0.as_bytes().to_vec(),
            None => ids.sha1_key_hash().to_vec(),
        };
        let subject_der = cert.tbs_certificate.subject.to_der().map_err(|e| bad(&e))?;
        let serial_hex =
            signet_pkix::Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
                .map_err(|e| bad(&e))?
                .to_hex();
        let not_after = i64::try_from(
            cert.tbs_certificate
                .validity
                .not_after
                .to_unix_duration()
                .as_secs(),
        )
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .ok_or_else(|| bad(&"notAfter out of range"))?;
        let pem = signet_pkix::pem::certificate(der);
        Ok(IssuerCertificate {
            der: der.to_vec(),
            pem,
            ids,
            key_id_hex: hex::encode(&key_id),
            key_id,
            subject_der,
            not_after,
            serial_hex,
        })
    }

    /// From PEM: the first CERTIFICATE block (a chain file starts with the issuing CA).
    pub fn from_pem(pem: &str) -> Result<Self, ResponderError> {
        let start = pem.find("-----BEGIN CERTIFICATE-----").ok_or_else(|| {
            ResponderError::IssuerCertificate("no CERTIFICATE block in the PEM".into())
        })?;
        let end_marker = "-----END CERTIFICATE-----";
        let end = pem[start..]
            .find(end_marker)
            .map(|i| start + i + end_marker.len())
            .ok_or_else(|| ResponderError::IssuerCertificate("unterminated PEM block".into()))?;
        let (_, der) = pem_rfc7468::decode_vec(&pem.as_bytes()[start..end])
            .map_err(|e| ResponderError::IssuerCertificate(format!("bad PEM: {e}")))?;
        Self::from_der(&der)
    }

    /// The certificate's serial number, hex (as the store spells it).
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// The end of the certificate's validity.
    pub fn not_after(&self) -> time::OffsetDateTime {
        self.not_after
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CertID hashes that name this CA.
    pub fn ids(&self) -> &OcspIssuerIds {
        &self.ids
    }

    /// The key identifier, hex: how the store files this CA's certificates and CRLs.
    pub fn key_id_hex(&self) -> &str {
        &self.key_id_hex
    }

    /// Checks that `cert_der` was issued by this CA (its issuer is this CA's subject and its
    /// authority key identifier this CA's key identifier), so that a certificate from another
    /// CA sharing the database is never installed as the signer.
    pub(crate) fn check_issued(&self, cert_der: &[u8]) -> Result<(), ResponderError> {
        let bad = |why: String| ResponderError::Signer(why);
        let cert = Certificate::from_der(cert_der).map_err(|e| bad(e.to_string()))?;
        let issuer = cert
            .tbs_certificate
            .issuer
            .to_der()
            .map_err(|e| bad(e.to_string()))?;
        let aki =
            extension::<AuthorityKeyIdentifier>(&cert, rfc5280::ID_CE_AUTHORITY_KEY_IDENTIFIER)
                .map_err(|e| bad(e.to_string()))?
                .and_then(|a| a.key_identifier)
                .map(|k| k.as_bytes().to_vec());
        if issuer != self.subject_der || aki.as_deref() != Some(self.key_id.as_slice()) {
            return Err(bad(
                "the signer certificate was not issued by this responder's CA".into(),
            ));
        }
        Ok(())
    }
}

fn extension<T: for<'a> Decode<'a>>(
    cert: &Certificate,
    oid: const_oid::ObjectIdentifier,
) -> Result<Option<T>, der::Error> {
    let Some(exts) = &cert.tbs_certificate.extensions else {
        return Ok(None);
    };
    exts.iter()
        .find(|e| e.extn_id == oid)
        .map(|e| T::from_der(e.extn_value.as_bytes()))
        .transpose()
}
