//! ACME Renewal Information (RFC 9773): the CertID that names a certificate
//! (`base64url(AKI keyIdentifier) "." base64url(serial DER content octets)`, section 4.1)
//! and the suggested renewal window: the middle third of the validity period, so that
//! renewals of many certificates issued together spread out, well before expiry.

use signet_ca::Serial;
use signet_store::CertificateRecord;
use time::OffsetDateTime;

use crate::jws::{b64url, from_b64url};
use crate::problem::AcmeError;

/// A parsed CertID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertId {
    /// The authority key identifier, hex.
    pub key_id_hex: String,
    /// The serial.
    pub serial: Serial,
}

/// The CertID of a certificate issued by the CA with key identifier `key_id`.
pub fn cert_id(key_id: &[u8], serial: &Serial) -> String {
    // The DER INTEGER's content octets: a value with its top bit set gets the 0x00 pad.
    let magnitude = serial.as_bytes();
    let mut content = Vec::with_capacity(magnitude.len() + 1);
    if magnitude.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(magnitude);
    format!("{}.{}", b64url(key_id), b64url(&content))
}

impl CertId {
    /// Parse `aki.serial`.
    pub fn parse(s: &str) -> Result<CertId, AcmeError> {
        let (aki, serial) = s
            .split_once('.')
            .ok_or_else(|| AcmeError::malformed("a CertID is base64url(AKI).base64url(serial)"))?;
        let aki = from_b64url("the CertID's key identifier", aki)?;
        let serial = from_b64url("the CertID's serial", serial)?;
        if aki.is_empty() || serial.is_empty() {
            return Err(AcmeError::malformed("the CertID has an empty part"));
        }
        let serial = Serial::from_be_bytes(&serial)
            .map_err(|e| AcmeError::malformed(format!("the CertID's serial: {e}")))?;
        Ok(CertId {
            key_id_hex: hex::encode(aki),
            serial,
        })
    }

    /// Whether `record` is the certificate this CertID names.
    pub fn names(&self, record: &CertificateRecord) -> bool {
        record.issuer_key_id.eq_ignore_ascii_case(&self.key_id_hex) && record.serial == self.serial
    }
}

/// The suggested window (start, end) for a certificate valid from `not_before` to
/// `not_after`: its middle third.
pub fn suggested_window(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> (OffsetDateTime, OffsetDateTime) {
    let third = (not_after - not_before) / 3;
    (not_before + third, not_before + third * 2)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rfc9773_example_cert_id() {
        // RFC 9773 section 4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:
        // DE:01:C8:D4, serial 00:87:65:43:21.
        let id = CertId::parse("aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE").unwrap();
        assert_eq!(id.key_id_hex, "69885b6b87464041e1b37b847ba0ae2cde01c8d4");
        assert_eq!(id.serial.to_hex(), "87654321");
        assert_eq!(
            cert_id(&hex::decode(&id.key_id_hex).unwrap(), &id.serial),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
        assert!(CertId::parse("nodot").is_err());
        assert!(CertId::parse(".AIdlQyE").is_err());
    }

    #[test]
    fn the_window_is_the_middle_third() {
        let nb = OffsetDateTime::from_unix_timestamp(0).unwrap();
        let na = OffsetDateTime::from_unix_timestamp(90).unwrap();
        let (s, e) = suggested_window(nb, na);
        assert_eq!((s.unix_timestamp(), e.unix_timestamp()), (30, 60));
    }
}
