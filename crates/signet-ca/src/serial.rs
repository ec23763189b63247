//! Certificate serial numbers (RFC 5280 section 4.1.2.2).

use std::fmt;

use ring::rand::{SecureRandom, SystemRandom};

use crate::CaError;

/// A positive certificate serial number of at most 20 octets, kept as unsigned big-endian
/// bytes without leading zeros. Printed as lowercase hex, which is also how the store keys it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

impl Serial {
    /// A fresh serial with 126 bits from the OS CSPRNG.
    ///
    /// 16 octets; the top bit is cleared so the DER INTEGER is positive without a padding
    /// octet, and the next bit is set so the length is always 16 (CA/Browser Forum asks for
    /// at least 64 bits of CSPRNG output; we give 126).
    pub fn random() -> Result<Self, CaError> {
        let mut bytes = vec![0u8; 16];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CaError::Internal("the system random number generator failed".into()))?;
        bytes[0] = (bytes[0] & 0x7f) | 0x40;
        Ok(Serial(bytes))
    }

    /// From unsigned big-endian bytes (leading zero octets are dropped).
    pub fn from_be_bytes(bytes: &[u8]) -> Result<Self, CaError> {
        let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        let trimmed = &bytes[first..];
        if trimmed.is_empty() {
            return Err(CaError::InvalidSerial(
                "a serial number must be positive".into(),
            ));
        }
        // RFC 5280: at most 20 octets of DER INTEGER content, including a 0x00 pad octet.
        let der_len = trimmed.len() + usize::from(trimmed[0] & 0x80 != 0);
        if der_len > 20 {
            return Err(CaError::InvalidSerial(
                "a serial number is at most 20 octets".into(),
            ));
        }
        Ok(Serial(trimmed.to_vec()))
    }

    /// Parse the lowercase or uppercase hex form (optionally with `:` separators).
    pub fn from_hex(s: &str) -> Result<Self, CaError> {
        let cleaned: String = s.chars().filter(|c| *c != ':').collect();
        let padded = if cleaned.len() % 2 == 1 {
            format!("0{cleaned}")
        } else {
            cleaned
        };
        let bytes = hex::decode(&padded)
            .map_err(|_| CaError::InvalidSerial("a serial number is written in hex".into()))?;
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
}
