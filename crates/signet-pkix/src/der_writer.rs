//! The small DER writer (X.690) that CRLs and OCSP responses are written with: headers with
//! the shortest definite length, INTEGERs, BIT STRINGs, extensions and RFC 5280 times.
//!
//! Hand-written rather than built with the `der` crate's encoders because CRL encoding
//! streams up to a million entries into one buffer whose headers are filled in afterwards
//! (see `signet-ca`'s CRL module); the OCSP responder uses it to copy precomputed parts.

use time::{OffsetDateTime, UtcOffset};

use crate::PkixError;

pub const TAG_INTEGER: u8 = 0x02;
pub const TAG_OCTET_STRING: u8 = 0x04;
pub const TAG_SEQUENCE: u8 = 0x30;
pub const TAG_BIT_STRING: u8 = 0x03;
pub const TAG_UTC_TIME: u8 = 0x17;
pub const TAG_GENERALIZED_TIME: u8 = 0x18;

/// The longest header we write: a tag and a length of up to four octets.
pub const MAX_HEADER: usize = 6;

/// The length of a header for `len` content octets (X.690 section 8.1.3, definite form).
pub fn header_len(len: usize) -> usize {
    match len {
        0..=0x7f => 2,
        0x80..=0xff => 3,
        0x100..=0xffff => 4,
        0x1_0000..=0xff_ffff => 5,
        _ => 6,
    }
}

/// A tag and the shortest definite length for `len` (X.690 sections 8.1.3 and 10.1).
pub fn push_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// A complete TLV: `tag`, the shortest definite length, `content`.
pub fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    push_header(out, tag, content.len());
    out.extend_from_slice(content);
}

/// A BIT STRING holding whole octets (no unused bits), as signatures are.
pub fn push_bit_string(out: &mut Vec<u8>, bits: &[u8]) {
    push_header(out, TAG_BIT_STRING, bits.len() + 1);
    out.push(0);
    out.extend_from_slice(bits);
}

/// A non-negative INTEGER from unsigned big-endian bytes: leading zeros dropped, one 0x00
/// added when the top bit is set (X.690 section 8.3).
pub fn push_unsigned_integer(out: &mut Vec<u8>, be: &[u8]) {
    let skip = be.iter().take_while(|b| **b == 0).count();
    let digits = &be[skip..];
    if digits.is_empty() {
        out.extend_from_slice(&[TAG_INTEGER, 0x01, 0x00]);
        return;
    }
    let pad = digits[0] & 0x80 != 0;
    push_header(out, TAG_INTEGER, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// `Extension ::= SEQUENCE { extnID OBJECT IDENTIFIER, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }` (RFC 5280 section 4.1), non-critical, so `critical` is absent.
pub fn push_extension(out: &mut Vec<u8>, oid_content: &[u8], value_der: &[u8]) {
    let len = 2 + oid_content.len() + header_len(value_der.len()) + value_der.len();
    push_header(out, TAG_SEQUENCE, len);
    push_tlv(out, 0x06, oid_content);
    push_tlv(out, TAG_OCTET_STRING, value_der);
}

/// `t` in UTC with the fraction of a second dropped: certificates, CRLs and OCSP answers
/// carry whole seconds.
pub fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    let t = t.to_offset(UtcOffset::UTC);
    t - time::Duration::nanoseconds(i64::from(t.nanosecond()))
}

/// RFC 5280 section 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
pub fn uses_utc_time(t: OffsetDateTime) -> bool {
    (1950..2050).contains(&t.year())
}

/// `Time ::= CHOICE { utcTime UTCTime, generalTime GeneralizedTime }` (RFC 5280 section
/// 4.1.2.5, 5.1.2.4): "YYMMDDHHMMSSZ" before 2050, "YYYYMMDDHHMMSSZ" after.
pub fn push_time(out: &mut Vec<u8>, t: OffsetDateTime) -> Result<(), PkixError> {
    let t = whole_seconds(t);
    if uses_utc_time(t) {
        out.extend_from_slice(&[TAG_UTC_TIME, 13]);
        push_two_digits(out, (t.year() % 100) as u8);
        push_time_tail(out, t);
        Ok(())
    } else {
        push_generalized_time(out, t)
    }
}

/// GeneralizedTime "YYYYMMDDHHMMSSZ", whole seconds, UTC (RFC 5280 section 4.1.2.5.2; RFC
/// 6960 uses the same form).
pub fn push_generalized_time(out: &mut Vec<u8>, t: OffsetDateTime) -> Result<(), PkixError> {
    let t = whole_seconds(t);
    let year = t.year();
    if !(1950..=9999).contains(&year) {
        return Err(PkixError::Encoding(format!(
            "time {t} is outside the years 1950 to 9999"
        )));
    }
    out.extend_from_slice(&[TAG_GENERALIZED_TIME, 15]);
    push_two_digits(out, (year / 100) as u8);
    push_two_digits(out, (year % 100) as u8);
    push_time_tail(out, t);
    Ok(())
}

fn push_time_tail(out: &mut Vec<u8>, t: OffsetDateTime) {
    push_two_digits(out, u8::from(t.month()));
    push_two_digits(out, t.day());
    push_two_digits(out, t.hour());
    push_two_digits(out, t.minute());
    push_two_digits(out, t.second());
    out.push(b'Z');
}

fn push_two_digits(out: &mut Vec<u8>, n: u8) {
    out.push(b'0' + n / 10);
    out.push(b'0' + n % 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_shortest_form() {
        for (len, want) in [
            (0usize, vec![0x30, 0x00]),
            (0x7f, vec![0x30, 0x7f]),
            (0x80, vec![0x30, 0x81, 0x80]),
            (0x100, vec![0x30, 0x82, 0x01, 0x00]),
            (0x1234567, vec![0x30, 0x84, 0x01, 0x23, 0x45, 0x67]),
        ] {
            let mut out = Vec::new();
            push_header(&mut out, TAG_SEQUENCE, len);
            assert_eq!(out, want, "{len:#x}");
            assert_eq!(header_len(len), want.len());
        }
    }

    #[test]
    fn integers_and_times() {
        let mut out = Vec::new();
        push_unsigned_integer(&mut out, &0u64.to_be_bytes());
        push_unsigned_integer(&mut out, &42u64.to_be_bytes());
        push_unsigned_integer(&mut out, &0x80u64.to_be_bytes());
        assert_eq!(out, [2, 1, 0, 2, 1, 42, 2, 2, 0, 0x80]);

        let t = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid");
        let mut out = Vec::new();
        push_time(&mut out, t + time::Duration::milliseconds(999)).expect("in range");
        assert_eq!(out[2..], *b"231114221320Z");
        let later = OffsetDateTime::from_unix_timestamp(2_600_000_000).expect("valid");
        let mut out = Vec::new();
        push_time(&mut out, later).expect("in range");
        assert_eq!(out[..2], [TAG_GENERALIZED_TIME, 15]);
        assert_eq!(out[2..], *b"20520522141320Z");
    }
}
