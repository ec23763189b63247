//! The canonical spelling of a certificate serial number in the database: minimal
//! lowercase hex, checked before any query that takes one.

use crate::StoreError;

/// Longest accepted serial, in hex digits: RFC 5280 allows 20 octets.
pub const MAX_SERIAL_HEX_LEN: usize = 40;

/// Checks that `serial` is in canonical form: lowercase hex digits, an even
/// number of them (whole bytes), 2 to [`MAX_SERIAL_HEX_LEN`] long, and no
/// leading `00` byte (so every serial number has exactly one spelling).
pub fn validate_serial(serial: &str) -> Result<(), StoreError> {
    let bytes = serial.as_bytes();
    if bytes.is_empty() {
        return Err(StoreError::InvalidSerial("empty".to_owned()));
    }
    if bytes.len() > MAX_SERIAL_HEX_LEN {
        return Err(StoreError::InvalidSerial(format!(
            "{} hex digits, at most {MAX_SERIAL_HEX_LEN} allowed",
            bytes.len()
        )));
    }
    if !bytes.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(StoreError::InvalidSerial(
            "only lowercase hex digits 0-9a-f are allowed".to_owned(),
        ));
    }
    if bytes.len() & 1 == 1 {
        return Err(StoreError::InvalidSerial(
            "odd number of hex digits; write whole bytes".to_owned(),
        ));
    }
    if bytes.starts_with(b"00") {
        return Err(StoreError::InvalidSerial(
            "leading 00 byte; serials are stored without it".to_owned(),
        ));
    }
    Ok(())
}

/// Makes the canonical serial string from big-endian unsigned bytes (for
/// example x509-cert's `SerialNumber::as_bytes()`, which may start with a
/// `0x00` sign byte): leading zero bytes are dropped, the rest is lowercase hex.
/// Fails if nothing is left (serial zero) or it is longer than 20 bytes.
pub fn canonical_serial(bytes: &[u8]) -> Result<String, StoreError> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    let significant = &bytes[start..];
    let mut out = String::with_capacity(significant.len() * 2);
    for b in significant {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    if out.is_empty() {
        return Err(StoreError::InvalidSerial(
            "serial is zero; serials must be positive".to_owned(),
        ));
    }
    validate_serial(&out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_validation() {
        for ok in [
            "01",
            "7f",
            "0a1b",
            "ffffffffffffffffffffffffffffffffffffffff",
        ] {
            assert!(validate_serial(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "0",
            "abc",
            "00ff",
            "00",
            "AB",
            "0x01",
            "01'; DROP TABLE certificates; --",
            "g1",
            "ffffffffffffffffffffffffffffffffffffffff01",
            "é1",
        ] {
            assert!(
                matches!(validate_serial(bad), Err(StoreError::InvalidSerial(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn canonical_serial_strips_sign_byte() {
        assert_eq!(
            canonical_serial(&[0x00, 0x80, 0x01]).ok().as_deref(),
            Some("8001")
        );
        assert_eq!(canonical_serial(&[0x0a]).ok().as_deref(), Some("0a"));
        assert!(canonical_serial(&[]).is_err());
        assert!(canonical_serial(&[0, 0]).is_err());
        assert!(canonical_serial(&[1; 21]).is_err());
        assert_eq!(
            canonical_serial(&[0; 5].iter().chain(&[1; 20]).copied().collect::<Vec<_>>())
                .ok()
                .map(|s| s.len()),
            Some(40)
        );
    }
}
