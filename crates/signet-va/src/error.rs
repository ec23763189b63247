//! The VA's two kinds of error: a configuration it cannot work with ([`VaError`], at start)
//! and a validation that did not succeed ([`ValidationFailure`], an ACME problem for the
//! challenge's `error` field).

use std::fmt;

/// A VA configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaError {
    /// An entry of a network list is not an address or CIDR block.
    #[error("validation network {entry:?} is not an IP address or CIDR block ({reason})")]
    InvalidNetwork {
        /// The entry as written.
        entry: String,
        /// What the parser said.
        reason: String,
    },
    /// A network list with no entry.
    #[error("the validation network list is empty")]
    EmptyNetworkList,
    /// The system resolver configuration (`/etc/resolv.conf`) could not be read.
    #[error("the system resolver configuration could not be read: {0}")]
    SystemResolver(String),
    /// TLS client settings could not be built (a rustls provider problem).
    #[error("the TLS client settings could not be built: {0}")]
    Tls(String),
    /// Another setting out of range.
    #[error("invalid validation setting: {0}")]
    InvalidConfig(String),
}

/// Why a validation failed, as an ACME error type (RFC 8555 section 6.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// No connection could be made, or it broke, or it timed out; or every address the name
    /// had is outside the allowed validation networks.
    Connection,
    /// The DNS lookup failed (no such name, no records, server failure, timeout).
    Dns,
    /// The answer did not show control: an http-01 status other than 200, no TXT record.
    Unauthorized,
    /// The answer was there but wrong: another key authorization, another TXT value, a
    /// tls-alpn-01 certificate without the right extension or name.
    IncorrectResponse,
    /// The TLS handshake failed or did not negotiate `acme-tls/1`.
    Tls,
    /// The identifier cannot be validated this way (a wildcard with http-01, an IP
    /// address with dns-01, an IP address outside the validation networks, a malformed name).
    RejectedIdentifier,
    /// Signet itself failed.
    ServerInternal,
}

impl FailureKind {
    /// The ACME problem type URN.
    pub fn acme_type(&self) -> &'static str {
        match self {
            FailureKind::Connection => "urn:ietf:params:acme:error:connection",
            FailureKind::Dns => "urn:ietf:params:acme:error:dns",
            FailureKind::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            FailureKind::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            FailureKind::Tls => "urn:ietf:params:acme:error:tls",
            FailureKind::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            FailureKind::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
        }
    }
}

/// A failed validation: the ACME error type and a detail meant for the client's operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationFailure {
    /// The error type.
    pub kind: FailureKind,
    /// What happened, in a sentence.
    pub detail: String,
}

impl ValidationFailure {
    pub(crate) fn new(kind: FailureKind, detail: impl Into<String>) -> Self {
        ValidationFailure {
            kind,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ValidationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.acme_type(), self.detail)
    }
}

impl std::error::Error for ValidationFailure {}

/// Text from the network, made safe to quote in a detail: at most `max` characters,
/// control characters escaped.
pub(crate) fn quote(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    format!("\"{out}\"")
}
