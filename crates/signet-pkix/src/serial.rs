//! Certificate serial numbers (RFC 5280 section 4.1.2.2), with Signet's one length rule.

use std::fmt;
use std::str::FromStr;

use ring::rand::{SecureRandom, SystemRandom};

use crate::PkixError;

/// A positive certificate serial number whose DER INTEGER encoding has at most 20 content
/// octets, kept as unsigned big-endian bytes without leading zeros. Printed as lowercase
/// hex, which is also how the store keys it.
///
/// # The one length rule: 20 octets of DER content, counting the sign octet
///
/// RFC 5280 section 4.1.2.2 says "Conforming CAs MUST NOT use serialNumber values longer
/// than 20 octets". The serialNumber is an ASN.1 INTEGER, and what has a length in octets is
/// its encoding: a positive value whose top bit is set is written with a leading `0x00`
/// (X.690 section 8.3), so a 20-octet magnitude such as `ff` x 20 takes 21 content octets.
/// Signet counts those content octets, pad included, and refuses the 21-octet form
/// everywhere (issuing, parsing a certificate, an OCSP CertID or a CRL entry, or a serial
/// typed into the API or the CLI). The reasons:
///
/// - It is the strict reading, and the one linters and careful issuers apply: Go's
///   `crypto/x509` makes its random serials "at most 20 octets when encoded" (it redraws a
///   20-octet value whose top bit is set because the pad would make it 21 octets), and
///   RFC 5280's users need only handle "up to 20 octets", so a longer one may be refused
///   by a relying party.
/// - The reading that counts only the magnitude accepts serials some verifiers are allowed
///   to reject, and gains nothing: Signet's own serials are 16 octets ([`Serial::random`]).
/// - One rule for every path means a serial the CA core accepts is one the store accepts
///   and the other way round (before, the store allowed 40 hex digits of magnitude while
///   the CA core counted the pad: `ff` x 20 passed one and failed the other).
///
/// Lenient verifiers (webpki, openssl) read longer serials from other issuers' certificates;
/// Signet only ever names serials of certificates it could have issued itself, so the
/// strict rule refuses nothing it has stored.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// At most this many octets of DER INTEGER content (RFC 5280 section 4.1.2.2), counting
    /// the `0x00` octet that keeps a value with its top bit set positive.
    pub const MAX_DER_OCTETS: usize = 20;

    /// The longest hex form [`Serial::to_hex`] can print: 20 octets of magnitude (whose top
    /// bit is then clear).
    pub const MAX_HEX_LEN: usize = 2 * Self::MAX_DER_OCTETS;

    /// A fresh serial with 126 bits from the OS CSPRNG.
    ///
    /// 16 octets; the top bit is cleared so the DER INTEGER is positive without a padding
    /// octet, and the next bit is set so the length is always 16 (CA/Browser Forum asks for
    /// at least 64 bits of CSPRNG output; we give 126).
    pub fn random() -> Result<Self, PkixError> {
        let mut bytes = vec![0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| PkixError::Random)?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Ok(Serial(bytes))
    }

    /// From unsigned big-endian bytes (leading zero octets are dropped), such as x509-cert's
    /// `SerialNumber::as_bytes()`, which is the DER content and may start with the pad.
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, PkixError> {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let trimmed = &bytes[first..];
        if trimmed.is_empty() {
            return Err(PkixError::InvalidSerial(
                "a serial number must be positive".into(),
            ));
        }
        // The one rule (see the type's documentation): DER content octets, pad included.
        let der_len = trimmed.len() + usize::from(trimmed[0] & 0x80 != 0);
        if der_len > Self::MAX_DER_OCTETS {
            return Err(PkixError::InvalidSerial(
                "a serial number is at most 20 octets".into(),
            ));
        }
        Ok(Serial(trimmed.to_vec()))
    }

    /// Parse the lowercase or uppercase hex form (optionally with `:` separators).
    pub fn from_hex(s: &str) -> Result<Self, PkixError> {
        let cleaned: String = s.chars().filter(|c| *c != ':').collect();
        let padded = if cleaned.len() % 2 == 1 {
            format!("0{cleaned}")
        } else {
            cleaned
        };
        let bytes = hex::decode(&padded)
            .map_err(|_| PkixError::InvalidSerial("a serial number is written in hex".into()))?;
        Self::from_be_bytes(&bytes)
    }

    /// Unsigned big-endian bytes, no leading zeros.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Lowercase hex without separators or leading zero octets.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }
}

impl FromStr for Serial {
    type Err = PkixError;

    /// Same as [`Serial::from_hex`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serials_are_positive_sixteen_octets_and_distinct() {
        let a = Serial::random().expect("rng");
        let b = Serial::random().expect("rng");
        assert_eq!(a.as_bytes().len(), 16);
        assert_eq!(a.as_bytes()[0] & 0x80, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_round_trip_and_limits() {
        let s = Serial::from_hex("00:0A:bc").expect("valid");
        assert_eq!(s.to_hex(), "0abc");
        assert!(Serial::from_hex("00").is_err());
        assert!(Serial::from_hex("zz").is_err());
        assert!(Serial::from_hex(&"7f".repeat(20)).is_ok());
        assert!(
            Serial::from_hex(&"ff".repeat(20)).is_err(),
            "needs a 21st pad octet"
        );
    }

    #[test]
    fn the_limit_counts_der_content_octets() {
        // 19 octets with the top bit set: 20 octets once padded, the longest allowed.
        let s = Serial::from_hex(&"ff".repeat(19)).expect("20 DER octets");
        assert_eq!(s.to_hex().len(), 38);
        // The pad octet as x509-cert hands it over is dropped, not counted twice.
        let padded = [&[0u8][..], &[0xff; 19][..]].concat();
        assert_eq!(Serial::from_be_bytes(&padded).expect("valid"), s);
        // 21 octets of magnitude fail whatever their top bit.
        assert!(Serial::from_hex(&"01".repeat(21)).is_err());
        let longest = Serial::from_hex(&"7f".repeat(20)).expect("valid");
        assert_eq!(longest.to_hex().len(), Serial::MAX_HEX_LEN);
        assert_eq!(
            "0a".parse::<Serial>().expect("FromStr"),
            Serial::from_hex("a").expect("hex")
        );
    }
}
