//! tls-alpn-01 (RFC 8737, with RFC 8738 section 6 for IP addresses): a TLS handshake with
//! ALPN `acme-tls/1`; the certificate the server presents must name exactly the identifier
//! and carry the critical acmeIdentifier extension holding SHA-256(key authorization).

use std::net::IpAddr;
use std::sync::Arc;

use const_oid::ObjectIdentifier;
use der::Decode;
use der::asn1::OctetString;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::cert::Certificate;
use crate::dial::{Host, dial};
use crate::name::{Target, reverse_name};
use crate::{FailureKind, Inner, ValidationFailure, ValidationRecord, sha256};

/// The ALPN protocol of RFC 8737 section 6.2.
pub(crate) const ALPN: &[u8] = b"acme-tls/1";

/// id-pe-acmeIdentifier (RFC 8737 section 6.1):
///
/// ```text
/// id-pe-acmeIdentifier OBJECT IDENTIFIER ::= { id-pe 31 }
/// Authorization ::= OCTET STRING (SIZE (32))
/// ```
const ID_PE_ACME_IDENTIFIER: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.31");

pub(crate) async fn validate(
    va: &Inner,
    target: &Target,
    key_authorization: &str,
) -> Result<ValidationRecord, ValidationFailure> {
    let (host, sni) = match target {
        Target::Name(name) => (Host::Name(name.clone()), name.clone()),
        Target::Ip(ip) => (Host::Ip(*ip), reverse_name(*ip)),
    };
    let sni = ServerName::try_from(sni).map_err(|e| {
        ValidationFailure::new(
            FailureKind::RejectedIdentifier,
            format!(
                "{} cannot be sent as a TLS server name: {e}",
                target.hostname()
            ),
        )
    })?;
    let port = va.cfg.tls_alpn01_port;
    let dialed = dial(va, &host, port).await?;
    let connector = TlsConnector::from(Arc::clone(&va.alpn_tls));
    let stream = connector.connect(sni, dialed.stream).await.map_err(|e| {
        ValidationFailure::new(
            FailureKind::Tls,
            format!(
                "TLS handshake with {}:{port} ({}) failed: {e}",
                target.url_host(),
                dialed.used
            ),
        )
    })?;
    let (_, conn) = stream.get_ref();
    if conn.alpn_protocol() != Some(ALPN) {
        return Err(ValidationFailure::new(
            FailureKind::Tls,
            format!(
                "{}:{port} did not negotiate the ALPN protocol acme-tls/1",
                target.url_host()
            ),
        ));
    }
    let Some(leaf) = conn.peer_certificates().and_then(|certs| certs.first()) else {
        return Err(ValidationFailure::new(
            FailureKind::Tls,
            format!("{}:{port} presented no certificate", target.url_host()),
        ));
    };
    check_certificate(leaf.as_ref(), target, key_authorization)?;
    Ok(ValidationRecord {
        url: None,
        hostname: target.hostname(),
        port: Some(port),
        addresses_resolved: dialed.resolved,
        address_used: Some(dialed.used),
    })
}

/// RFC 8737 section 3: exactly one subjectAltName entry, the identifier, and a critical
/// acmeIdentifier extension whose value is SHA-256 of the key authorization.
fn check_certificate(
    der: &[u8],
    target: &Target,
    key_authorization: &str,
) -> Result<(), ValidationFailure> {
    let wrong = |detail: String| ValidationFailure::new(FailureKind::IncorrectResponse, detail);
    let cert = Certificate::from_der(der).map_err(|e| {
        wrong(format!(
            "the tls-alpn-01 certificate could not be read: {e}"
        ))
    })?;
    let extensions = cert.tbs_certificate.extensions.unwrap_or_default();

    let san = extensions
        .iter()
        .find(|ext| ext.extn_id == const_oid::db::rfc5280::ID_CE_SUBJECT_ALT_NAME)
        .ok_or_else(|| wrong("the tls-alpn-01 certificate has no subjectAltName".into()))?;
    let names = SubjectAltName::from_der(san.extn_value.as_bytes()).map_err(|e| {
        wrong(format!(
            "the tls-alpn-01 subjectAltName could not be read: {e}"
        ))
    })?;
    let [only] = names.0.as_slice() else {
        return Err(wrong(format!(
            "the tls-alpn-01 certificate names {} identifiers; it must name exactly {}",
            names.0.len(),
            target.hostname()
        )));
    };
    let matches = match (only, target) {
        (GeneralName::DnsName(dns), Target::Name(name)) => dns.as_str().eq_ignore_ascii_case(name),
        (GeneralName::IpAddress(octets), Target::Ip(ip)) => match ip {
            IpAddr::V4(v4) => octets.as_bytes() == v4.octets().as_slice(),
            IpAddr::V6(v6) => octets.as_bytes() == v6.octets().as_slice(),
        },
        _ => false,
    };
    if !matches {
        return Err(wrong(format!(
            "the tls-alpn-01 certificate does not name {}",
            target.hostname()
        )));
    }

    let acme = extensions
        .iter()
        .find(|ext| ext.extn_id == ID_PE_ACME_IDENTIFIER)
        .ok_or_else(|| {
            wrong("the tls-alpn-01 certificate has no acmeIdentifier extension".into())
        })?;
    if !acme.is_critical() {
        return Err(wrong(
            "the tls-alpn-01 acmeIdentifier extension is not marked critical".into(),
        ));
    }
    let value = OctetString::from_der(acme.extn_value.as_bytes()).map_err(|e| {
        wrong(format!(
            "the tls-alpn-01 acmeIdentifier extension could not be read: {e}"
        ))
    })?;
    if value.as_bytes() != sha256(key_authorization.as_bytes()).as_slice() {
        return Err(wrong(
            "the tls-alpn-01 acmeIdentifier extension does not hold this challenge's key authorization digest"
                .into(),
        ));
    }
    Ok(())
}
