//! ACME problem documents (RFC 8555 section 6.7, RFC 7807): [`AcmeError`], the one place an
//! ACME error becomes HTTP. Internal errors are logged with their detail and answered
//! without it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signet_authority::Refusal;
use signet_ca::CaError;
use signet_store::StoreError;

/// The error types of RFC 8555 section 6.7 that Signet sends (and RFC 9773's
/// `alreadyReplaced`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemType {
    /// The request message was malformed.
    Malformed,
    /// The JWS was signed with an algorithm the server does not support.
    BadSignatureAlgorithm,
    /// The client sent an unacceptable anti-replay nonce.
    BadNonce,
    /// The request specified an account that does not exist.
    AccountDoesNotExist,
    /// The client lacks sufficient authorization.
    Unauthorized,
    /// The CSR is unacceptable.
    BadCsr,
    /// The request attempted to finalize an order that is not ready.
    OrderNotReady,
    /// The server will not issue certificates for the identifier.
    RejectedIdentifier,
    /// An identifier is of an unsupported type.
    UnsupportedIdentifier,
    /// The request must include a value for `externalAccountBinding`.
    ExternalAccountRequired,
    /// The revocation reason provided is not allowed by the server.
    BadRevocationReason,
    /// The request specified a certificate to be revoked that has already been revoked.
    AlreadyRevoked,
    /// The certificate named in `replaces` was already replaced (RFC 9773).
    AlreadyReplaced,
    /// The server experienced an internal error.
    ServerInternal,
    /// The server could not connect to the validation target.
    Connection,
    /// A problem with a DNS query during identifier validation.
    Dns,
    /// The response received did not match the challenge's requirements.
    IncorrectResponse,
    /// The server received a TLS error during validation.
    Tls,
    /// The request exceeds a rate limit.
    RateLimited,
}

impl ProblemType {
    /// The `type` URN.
    pub fn urn(self) -> &'static str {
        match self {
            ProblemType::Malformed => "urn:ietf:params:acme:error:malformed",
            ProblemType::BadSignatureAlgorithm => {
                "urn:ietf:params:acme:error:badSignatureAlgorithm"
            }
            ProblemType::BadNonce => "urn:ietf:params:acme:error:badNonce",
            ProblemType::AccountDoesNotExist => "urn:ietf:params:acme:error:accountDoesNotExist",
            ProblemType::Unauthorized => "urn:ietf:params:acme:error:unauthorized",
            ProblemType::BadCsr => "urn:ietf:params:acme:error:badCSR",
            ProblemType::OrderNotReady => "urn:ietf:params:acme:error:orderNotReady",
            ProblemType::RejectedIdentifier => "urn:ietf:params:acme:error:rejectedIdentifier",
            ProblemType::UnsupportedIdentifier => {
                "urn:ietf:params:acme:error:unsupportedIdentifier"
            }
            ProblemType::ExternalAccountRequired => {
                "urn:ietf:params:acme:error:externalAccountRequired"
            }
            ProblemType::BadRevocationReason => "urn:ietf:params:acme:error:badRevocationReason",
            ProblemType::AlreadyRevoked => "urn:ietf:params:acme:error:alreadyRevoked",
            ProblemType::AlreadyReplaced => "urn:ietf:params:acme:error:alreadyReplaced",
            ProblemType::ServerInternal => "urn:ietf:params:acme:error:serverInternal",
            ProblemType::Connection => "urn:ietf:params:acme:error:connection",
            ProblemType::Dns => "urn:ietf:params:acme:error:dns",
            ProblemType::IncorrectResponse => "urn:ietf:params:acme:error:incorrectResponse",
            ProblemType::Tls => "urn:ietf:params:acme:error:tls",
            ProblemType::RateLimited => "urn:ietf:params:acme:error:rateLimited",
        }
    }

    /// The type's name, the URN's last part (`badNonce`), as audit rows and metrics say it.
    pub fn name(self) -> &'static str {
        let urn = self.urn();
        urn.rsplit(':').next().unwrap_or(urn)
    }

    fn default_status(self) -> StatusCode {
        match self {
            ProblemType::Unauthorized => StatusCode::FORBIDDEN,
            ProblemType::OrderNotReady => StatusCode::FORBIDDEN,
            ProblemType::AccountDoesNotExist => StatusCode::BAD_REQUEST,
            ProblemType::ServerInternal => StatusCode::INTERNAL_SERVER_ERROR,
            ProblemType::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ProblemType::AlreadyReplaced => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// An ACME request that ends in a problem document.
#[derive(Debug, thiserror::Error)]
#[error("{detail}")]
pub struct AcmeError {
    /// The problem's type.
    pub kind: ProblemType,
    /// What went wrong, for the client (never internal detail).
    pub detail: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// `Location` sent with the problem (a `keyChange` to a key another account has: that
    /// account's URL, RFC 8555 section 7.3.5).
    pub location: Option<String>,
    /// `Retry-After` sent with the problem, in seconds (`rateLimited`).
    pub retry_after: Option<u64>,
}

/// A problem document as sent, and as stored on an invalid challenge or order.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct ProblemDocument {
    /// The `type` URN.
    #[serde(rename = "type")]
    pub kind: String,
    /// Human-readable detail.
    pub detail: String,
    /// The HTTP status.
    pub status: u16,
}

impl AcmeError {
    /// A problem of `kind` with its usual status.
    pub fn new(kind: ProblemType, detail: impl Into<String>) -> AcmeError {
        AcmeError {
            kind,
            detail: detail.into(),
            status: kind.default_status(),
            location: None,
            retry_after: None,
        }
    }

    /// The same problem, answered with `status`.
    pub fn with_status(mut self, status: StatusCode) -> AcmeError {
        self.status = status;
        self
    }

    /// `malformed`.
    pub fn malformed(detail: impl Into<String>) -> AcmeError {
        AcmeError::new(ProblemType::Malformed, detail)
    }

    /// `unauthorized`.
    pub fn unauthorized(detail: impl Into<String>) -> AcmeError {
        AcmeError::new(ProblemType::Unauthorized, detail)
    }

    /// 404 `malformed`: no such object (or not this account's).
    pub fn not_found(what: &str) -> AcmeError {
        AcmeError::malformed(format!("no such {what}")).with_status(StatusCode::NOT_FOUND)
    }

    /// `rateLimited`, to be retried after `retry_after` (rounded up to whole seconds).
    pub fn rate_limited(detail: impl Into<String>, retry_after: std::time::Duration) -> AcmeError {
        let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
        let mut err = AcmeError::new(ProblemType::RateLimited, detail);
        err.retry_after = Some(secs.max(1));
        err
    }

    /// `serverInternal`, logging `detail` and answering without it.
    pub fn internal(detail: impl std::fmt::Display) -> AcmeError {
        tracing::error!(error = %detail, "ACME request failed");
        AcmeError::new(
            ProblemType::ServerInternal,
            "internal error (logged by the server)",
        )
    }

    /// The problem document.
    pub fn document(&self) -> ProblemDocument {
        ProblemDocument {
            kind: self.kind.urn().to_string(),
            detail: self.detail.clone(),
            status: self.status.as_u16(),
        }
    }
}

impl From<StoreError> for AcmeError {
    fn from(err: StoreError) -> AcmeError {
        match err {
            StoreError::Unavailable(_) => {
                tracing::error!(error = %err, "database unavailable");
                AcmeError::new(ProblemType::ServerInternal, "the database is unavailable")
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
            }
            other => AcmeError::internal(other),
        }
    }
}

impl From<Refusal> for AcmeError {
    fn from(refusal: Refusal) -> AcmeError {
        match refusal {
            Refusal::Store(e) => e.into(),
            Refusal::NameDenied { .. } => {
                AcmeError::new(ProblemType::RejectedIdentifier, refusal.to_string())
            }
            Refusal::Ca(CaError::NameDenied { names }) => AcmeError::new(
                ProblemType::RejectedIdentifier,
                format!(
                    "names not allowed by this provisioner's policy: {}",
                    names.join(", ")
                ),
            ),
            Refusal::Ca(e @ CaError::Internal(_)) => AcmeError::internal(e),
            Refusal::Ca(e) => AcmeError::new(ProblemType::BadCsr, e.to_string()),
            Refusal::Internal(e) => AcmeError::internal(e),
            other => AcmeError::unauthorized(other.to_string()),
        }
    }
}

impl IntoResponse for AcmeError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.document()).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(Ok(v)) = self.location.as_deref().map(HeaderValue::from_str) {
            headers.insert(header::LOCATION, v);
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}
