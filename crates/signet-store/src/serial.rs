//! How a certificate serial is spelled in the database: minimal lowercase hex, the
//! [`Display`](std::fmt::Display) of signet-pkix's [`Serial`] (`Serial::to_hex`).
//!
//! Which serials exist at all is not decided here: the store takes and returns [`Serial`],
//! whose length rule (RFC 5280 section 4.1.2.2, at most 20 octets of DER INTEGER content
//! counting the `0x00` sign octet) is the one the CA core issues and parses by. So the only
//! checks left here are on what comes back from the database: a stored serial must be
//! exactly the spelling the store writes, or the row is [`StoreError::Corrupt`] (a row
//! written by hand or by another program), never a panic and never a silently different
//! serial (keyset pagination and `ORDER BY serial` compare the stored text).

use signet_pkix::Serial;

use crate::StoreError;

/// The stored spelling of `serial`: lowercase hex, whole octets, no leading zero octet.
pub(crate) fn db_serial(serial: &Serial) -> String {
    serial.to_hex()
}

/// Parses a stored serial: only the exact spelling [`db_serial`] writes is one.
pub(crate) fn parse_db_serial(stored: &str) -> Option<Serial> {
    // Cheap bound before anything is decoded: no Serial prints longer than this.
    if stored.is_empty() || stored.len() > Serial::MAX_HEX_LEN {
        return None;
    }
    let serial = Serial::from_hex(stored).ok()?;
    (serial.to_hex() == stored).then_some(serial)
}

/// The serial stored in `column`, or [`StoreError::Corrupt`] naming the column and (at
/// most 64 characters of) what it holds.
pub(crate) fn serial_from_db(column: &str, stored: &str) -> Result<Serial, StoreError> {
    parse_db_serial(stored).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "{column} {:?} is not a serial number as the store writes it",
            stored.chars().take(64).collect::<String>()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_spelling_round_trips() {
        for ok in [
            "01",
            "7f",
            "0a1b",
            "7fffffffffffffffffffffffffffffffffffffff",
        ] {
            let serial = serial_from_db("serial", ok).expect(ok);
            assert_eq!(db_serial(&serial), ok);
        }
        let random = Serial::random().expect("rng");
        assert_eq!(
            serial_from_db("serial", &db_serial(&random)).ok(),
            Some(random)
        );
    }

    #[test]
    fn other_spellings_are_corrupt_rows() {
        for bad in [
            "",
            "0",
            "abc",
            "00ff",
            "00",
            "AB",
            "0x01",
            "01:02",
            "01'; DROP TABLE certificates; --",
            "g1",
            "ffffffffffffffffffffffffffffffffffffffff01",
            // 20 octets whose top bit is set: DER needs a 21st, the 0x00 sign octet.
            "ffffffffffffffffffffffffffffffffffffffff",
            "é1",
        ] {
            assert!(
                matches!(serial_from_db("serial", bad), Err(StoreError::Corrupt(_))),
                "{bad:?} accepted"
            );
        }
    }

    /// The store's rule is the CA core's: a serial one accepts, the other stores and reads
    /// back, spelled the same; one it refuses cannot be stored (it is no `Serial`), and
    /// its spelling read back from a row is corrupt.
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
            let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
            let spelled = hex_lower(&trimmed);
            match Serial::from_be_bytes(&bytes) {
                Ok(pkix) => {
                    assert_eq!(db_serial(&pkix), spelled, "{bytes:02x?}");
                    assert_eq!(parse_db_serial(&spelled), Some(pkix), "{bytes:02x?}");
                }
                Err(_) => assert_eq!(parse_db_serial(&spelled), None, "{bytes:02x?}"),
            }
        }
        assert!(parse_db_serial(&"ff".repeat(20)).is_none());
        assert!(parse_db_serial(&format!("7f{}", "ff".repeat(19))).is_some());
    }

    fn hex_lower(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
