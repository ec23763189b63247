//! The canonical spelling of a certificate serial number in the database: minimal
//! lowercase hex, checked before any query that takes one.
//!
//! Which serials exist at all is not decided here: the length rule is signet-pkix's
//! [`Serial`] (RFC 5280 section 4.1.2.2, at most 20 octets of DER INTEGER content counting
//! the `0x00` sign octet), the same rule the CA core issues and parses by. A serial the CA
//! core accepts is one the store accepts, and the other way round.

use signet_pkix::Serial;

use crate::StoreError;

/// Checks that `serial` is in canonical form: lowercase hex digits, an even
/// number of them (whole bytes), and no leading `00` byte (so every serial
/// number has exactly one spelling), naming a [`Serial`]: positive and at most
/// 20 octets of DER content, the sign octet included.
pub fn validate_serial(serial: &str) -> Result<(), StoreError> {
    let bytes = serial.as_bytes();
    if bytes.is_empty() {
        return Err(StoreError::InvalidSerial("empty".to_owned()));
    }
    // Cheap bound before anything is decoded: no Serial prints longer than this.
    if bytes.len() > Serial::MAX_HEX_LEN {
        return Err(StoreError::InvalidSerial(format!(
            "{} hex digits, at most {} allowed",
            bytes.len(),
            Serial::MAX_HEX_LEN
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
    // The one length rule (and positivity: "00" was refused above, but say it once).
    Serial::from_hex(serial).map_err(|e| StoreError::InvalidSerial(e.to_string()))?;
    Ok(())
}

/// Makes the canonical serial string from big-endian unsigned bytes (for
/// example x509-cert's `SerialNumber::as_bytes()`, which may start with a
/// `0x00` sign byte): leading zero bytes are dropped, the rest is lowercase hex.
/// Fails if nothing is left (serial zero) or it is not a [`Serial`] (more than
/// 20 octets of DER content, counting the sign octet).
pub fn canonical_serial(bytes: &[u8]) -> Result<String, StoreError> {
    Serial::from_be_bytes(bytes)
        .map(|s| s.to_hex())
        .map_err(|e| StoreError::InvalidSerial(e.to_string()))
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
            "7fffffffffffffffffffffffffffffffffffffff",
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
            // 20 octets whose top bit is set: DER needs a 21st, the 0x00 sign octet.
            "ffffffffffffffffffffffffffffffffffffffff",
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

    /// The store's rule is the CA core's: a serial one accepts, the other accepts, spelled
    /// the same; one it refuses, the other refuses.
    #[test]
    fn one_rule_with_the_ca_core() {
        let mut top_bit_19 = vec![0x80; 19];
        top_bit_19.insert(0, 0x00);
        for bytes in [
            vec![0x7f; 20],
            vec![0x80; 20],
            vec![0xff; 20],
            vec![0x01; 21],
            vec![0x00, 0x80],
            top_bit_19,
            vec![0x00; 3],
        ] {
            let pkix = Serial::from_be_bytes(&bytes);
            let store = canonical_serial(&bytes);
            assert_eq!(pkix.is_ok(), store.is_ok(), "{bytes:02x?}");
            if let (Ok(pkix), Ok(store)) = (pkix, store) {
                assert_eq!(store, pkix.to_hex());
                assert!(validate_serial(&store).is_ok(), "{store}");
            }
        }
        assert!(canonical_serial(&[0xff; 20]).is_err());
        assert!(validate_serial(&"ff".repeat(20)).is_err());
        assert!(validate_serial(&format!("7f{}", "ff".repeat(19))).is_ok());
    }
}
