//! The one PEM encoder (RFC 7468): every certificate, chain and CRL Signet writes as PEM,
//! whether to a file, an HTTP answer or the terminal, goes through [`encode`].

use base64::Engine;

/// What a PEM block holds: its label (RFC 7468 section 4 names them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Label {
    /// `CERTIFICATE` (RFC 7468 section 5).
    Certificate,
    /// `X509 CRL` (RFC 7468 section 6).
    Crl,
    /// `CERTIFICATE REQUEST` (RFC 7468 section 7).
    CertificateRequest,
}

impl Label {
    /// The label as written between the dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Certificate => "CERTIFICATE",
            Label::Crl => "X509 CRL",
            Label::CertificateRequest => "CERTIFICATE REQUEST",
        }
    }
}

/// `der` as one PEM block: the BEGIN line, standard base64 in lines of 64 characters, the
/// END line, each ending in LF (RFC 7468's strict form, what openssl writes). Cannot fail:
/// the labels are fixed and base64 takes any bytes.
pub fn encode(label: Label, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let label = label.as_str();
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut rest = b64.as_str();
    while !rest.is_empty() {
        // base64 is ASCII, so any index is a char boundary.
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// A DER certificate as a `CERTIFICATE` block.
pub fn certificate(der: &[u8]) -> String {
    encode(Label::Certificate, der)
}

/// A DER CRL as an `X509 CRL` block.
pub fn crl(der: &[u8]) -> String {
    encode(Label::Crl, der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_pem_rfc7468_for_every_length_around_a_line() {
        for len in [1usize, 47, 48, 49, 96, 1000] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            for label in [Label::Certificate, Label::Crl, Label::CertificateRequest] {
                let want =
                    pem_rfc7468::encode_string(label.as_str(), pem_rfc7468::LineEnding::LF, &der)
                        .expect("encode");
                assert_eq!(encode(label, &der), want, "{len} {label:?}");
                let (got_label, got) = pem_rfc7468::decode_vec(want.as_bytes()).expect("decode");
                assert_eq!((got_label, got), (label.as_str(), der.clone()));
            }
        }
        // Nothing to encode: no base64 line at all (pem-rfc7468 writes an empty one).
        assert_eq!(
            crl(&[]),
            "-----BEGIN X509 CRL-----\n-----END X509 CRL-----\n"
        );
    }
}
