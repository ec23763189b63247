//! The one place errors become HTTP: RFC 7807 `application/problem+json` with a stable
//! `type` URN per kind of problem. Internal errors are logged with detail and answered
//! without it.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signet_ca::{CaError, SigningError};
use signet_store::StoreError;
use utoipa::ToSchema;

/// Prefix of every problem `type`.
pub const PROBLEM_PREFIX: &str = "urn:signet:problem:";

/// An RFC 7807 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable identifier of the kind of problem, e.g. `urn:signet:problem:name-denied`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human summary of the kind of problem.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// What exactly went wrong with this request.
    pub detail: String,
}

/// Everything a request can end in other than success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The CA core refused or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The store failed. (A [`StoreError::Audit`] converts to
    /// [`ApiError::AuditFailed`] instead, see the `From` impl below.)
    #[error(transparent)]
    Store(StoreError),
    /// No or bad credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(String),
    /// A valid Kubernetes service-account token, but its namespace or service account is
    /// not on the provisioner's allow-lists.
    #[error("{0}")]
    ServiceAccountDenied(String),
    /// Requested names that a rule of this request does not allow. `rule` says which (the
    /// token's `sans` claim, a Kubernetes workload's own names, whose policy), so that the
    /// refusal points at what to change. The problem type is `name-denied` whatever the rule.
    #[error("{rule}: {}", .names.join(", "))]
    NameDenied {
        /// Which rule refused them, as a sentence.
        rule: String,
        /// Every refused name, in `type:value` form.
        names: Vec<String>,
    },
    /// A token was presented a second time.
    #[error("this token has already been used (tokens are single-use)")]
    TokenReplayed,
    /// The requester is over its rate limit.
    #[error("rate limit exceeded for {who}; retry after {retry_after_secs} s")]
    RateLimited {
        /// Whose limit.
        who: String,
        /// Seconds until a request would be accepted.
        retry_after_secs: u64,
    },
    /// The request (typically its body) did not arrive in full within the request timeout.
    #[error("the request was not completed within {} s", .0.as_secs_f64())]
    RequestTimeout(std::time::Duration),
    /// The request body or parameters are malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The body is larger than allowed.
    #[error("request body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// The body is not JSON.
    #[error("expected Content-Type: application/json")]
    UnsupportedMediaType,
    /// Nothing with that identifier.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The audit record could not be written, so the operation was not done.
    #[error("the audit record could not be written; nothing was done")]
    AuditFailed(#[source] StoreError),
    /// Something inside Signet failed.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// Status, stable problem slug and title.
    pub fn classify(&self) -> (StatusCode, &'static str, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::Ca(e) => match e {
                CaError::MalformedCsr(_) => (S::BAD_REQUEST, "bad-csr", "Malformed CSR"),
                CaError::CsrSignatureInvalid => (
                    S::BAD_REQUEST,
                    "bad-csr-signature",
                    "CSR signature does not verify",
                ),
                CaError::UnsupportedSignatureAlgorithm(_) => (
                    S::BAD_REQUEST,
                    "unsupported-signature-algorithm",
                    "Unsupported signature algorithm",
                ),
                CaError::UnsupportedKey(_) => {
                    (S::BAD_REQUEST, "unsupported-key", "Unsupported key")
                }
                CaError::CaRequested => (
                    S::BAD_REQUEST,
                    "ca-requested",
                    "CA certificates are not issued",
                ),
                CaError::InvalidName { .. } => (S::BAD_REQUEST, "invalid-name", "Invalid name"),
                CaError::TooManyNames { .. } => {
                    (S::BAD_REQUEST, "too-many-names", "Too many names")
                }
                CaError::NameDenied { .. } => {
                    (S::FORBIDDEN, "name-denied", "Name not allowed by policy")
                }
                CaError::MissingNames { .. } => {
                    (S::BAD_REQUEST, "missing-names", "Profile needs more names")
                }
                CaError::UnknownProfile(_) => {
                    (S::BAD_REQUEST, "unknown-profile", "Unknown profile")
                }
                CaError::ProfileDenied(_) => {
                    (S::FORBIDDEN, "profile-denied", "Profile not allowed")
                }
                CaError::InvalidLifetime(_) => (S::BAD_REQUEST, "invalid-ttl", "Invalid lifetime"),
                CaError::LifetimeTooLong { .. } => {
                    (S::BAD_REQUEST, "ttl-too-long", "Lifetime too long")
                }
                CaError::InvalidSerial(_) => {
                    (S::BAD_REQUEST, "invalid-serial", "Invalid serial number")
                }
                CaError::IssuerExpired(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "ca-unavailable",
                    "The issuing CA is not valid",
                ),
                CaError::SigningKey(SigningError::KeyUnavailable(_)) => (
                    S::SERVICE_UNAVAILABLE,
                    "ca-key-unavailable",
                    "The CA key is unavailable",
                ),
                _ => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
            ApiError::Store(e) => match e {
                StoreError::Unavailable(_) => (
                    S::SERVICE_UNAVAILABLE,
                    "database-unavailable",
                    "Database unavailable",
                ),
                StoreError::InvalidInput(_) => {
                    (S::BAD_REQUEST, "invalid-request", "Invalid request")
                }
                StoreError::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
                _ => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
            },
            ApiError::Unauthorized(_) => (S::UNAUTHORIZED, "unauthorized", "Authentication failed"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "forbidden", "Not allowed"),
            ApiError::ServiceAccountDenied(_) => (
                S::FORBIDDEN,
                "service-account-denied",
                "Service account not allowed",
            ),
            ApiError::NameDenied { .. } => (S::FORBIDDEN, "name-denied", "Name not allowed"),
            ApiError::TokenReplayed => (S::UNAUTHORIZED, "token-replayed", "Token already used"),
            ApiError::RateLimited { .. } => {
                (S::TOO_MANY_REQUESTS, "rate-limited", "Too many requests")
            }
            ApiError::RequestTimeout(_) => {
                (S::REQUEST_TIMEOUT, "request-timeout", "Request timeout")
            }
            ApiError::BadRequest(_) => (S::BAD_REQUEST, "invalid-request", "Invalid request"),
            ApiError::BodyTooLarge(_) => (
                S::PAYLOAD_TOO_LARGE,
                "body-too-large",
                "Request body too large",
            ),
            ApiError::UnsupportedMediaType => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            ApiError::NotFound(_) => (S::NOT_FOUND, "not-found", "Not found"),
            ApiError::Conflict(_) => (S::CONFLICT, "conflict", "Conflict"),
            ApiError::AuditFailed(_) => (
                S::SERVICE_UNAVAILABLE,
                "audit-unavailable",
                "Audit log unavailable",
            ),
            ApiError::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// What the client is told: the error itself, or for a server error only what kind of
    /// failure it was (the cause is logged here).
    pub(crate) fn client_detail(&self, status: StatusCode) -> String {
        if status.is_server_error() {
            tracing::error!(error = %self, problem = self.slug(), "request failed");
            match self {
                ApiError::Store(StoreError::Unavailable(_)) => {
                    "the database is unavailable; retry later".to_string()
                }
                // The cause (which token, the module's error code) stays in the log.
                ApiError::Ca(CaError::SigningKey(SigningError::KeyUnavailable(_))) => {
                    "the CA's signing key (its token or key store) is unavailable; nothing was \
                     signed or recorded; retry later"
                        .to_string()
                }
                ApiError::AuditFailed(_) | ApiError::Ca(CaError::IssuerExpired(_)) => {
                    self.to_string()
                }
                _ => "an internal error occurred; see the server log".to_string(),
            }
        } else {
            self.to_string()
        }
    }

    /// The stable slug (the part after [`PROBLEM_PREFIX`]), for metrics and audit.
    pub fn slug(&self) -> &'static str {
        self.classify().1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, slug, title) = self.classify();
        let detail = self.client_detail(status);
        let body = Problem {
            kind: format!("{PROBLEM_PREFIX}{slug}"),
            title: title.to_string(),
            status: status.as_u16(),
            detail,
        };
        let mut resp = (status, Json(body)).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthorized(_) | ApiError::TokenReplayed => {
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited {
                retry_after_secs, ..
            } => {
                if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    /// A refused audit row is its own problem (503 `audit-unavailable`): the store wrote
    /// nothing of the operation it recorded. Every other store error stays a store error.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Audit(_) => ApiError::AuditFailed(err),
            other => ApiError::Store(other),
        }
    }
}

impl From<signet_authority::Refusal> for ApiError {
    /// The authority's refusals, one to one onto the problems the API has always answered.
    fn from(refusal: signet_authority::Refusal) -> Self {
        use signet_authority::Refusal as R;
        match refusal {
            R::Ca(e) => ApiError::Ca(e),
            R::Store(e) => e.into(),
            R::NameDenied { rule, names } => ApiError::NameDenied { rule, names },
            R::ServiceAccountDenied(why) => ApiError::ServiceAccountDenied(why),
            R::RenewalDenied(why) => ApiError::Forbidden(why),
            R::TokenReplayed => ApiError::TokenReplayed,
            R::ReadOnly => ApiError::Forbidden(R::ReadOnly.to_string()),
            R::Internal(why) => ApiError::Internal(why),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// Configuration errors found while building the API state (before serving).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A provisioner is misconfigured.
    #[error("provisioner {name:?}: {reason}")]
    Provisioner {
        /// The provisioner.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The admin credential cannot be used.
    #[error("admin token {path}: {reason}")]
    AdminToken {
        /// Its file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signet_authority::Refusal;

    /// Each refusal of the authority is the problem the API answered before the authority
    /// existed: same `type`, status and detail.
    #[test]
    fn authority_refusals_keep_their_problems() {
        let cases: Vec<(Refusal, StatusCode, &str, String)> = vec![
            (
                Refusal::NameDenied {
                    rule: "names not in the token's sans claim".into(),
                    names: vec!["dns:a.example".into(), "ip:10.0.0.1".into()],
                },
                StatusCode::FORBIDDEN,
                "name-denied",
                "names not in the token's sans claim: dns:a.example, ip:10.0.0.1".into(),
            ),
            (
                Refusal::ServiceAccountDenied("namespace \"dev\" is not allowed".into()),
                StatusCode::FORBIDDEN,
                "service-account-denied",
                "namespace \"dev\" is not allowed".into(),
            ),
            (
                Refusal::RenewalDenied("request a new certificate".into()),
                StatusCode::FORBIDDEN,
                "forbidden",
                "request a new certificate".into(),
            ),
            (
                Refusal::TokenReplayed,
                StatusCode::UNAUTHORIZED,
                "token-replayed",
                ApiError::TokenReplayed.to_string(),
            ),
            (
                Refusal::Ca(CaError::UnknownProfile("gold".into())),
                StatusCode::BAD_REQUEST,
                "unknown-profile",
                CaError::UnknownProfile("gold".into()).to_string(),
            ),
            (
                Refusal::Store(StoreError::timed_out(std::time::Duration::from_secs(1))),
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                StoreError::timed_out(std::time::Duration::from_secs(1)).to_string(),
            ),
        ];
        for (refusal, status, slug, detail) in cases {
            let err = ApiError::from(refusal);
            let (s, k, _) = err.classify();
            assert_eq!((s, k), (status, slug), "{err:?}");
            assert_eq!(err.to_string(), detail);
        }
    }

    /// A CA key that cannot sign now (its token removed) is a 503 the client may retry,
    /// and the answer names neither the token nor the module's error; a key that refused
    /// this one signature stays a 500.
    #[tokio::test]
    async fn an_unavailable_ca_key_is_a_503_that_leaks_nothing() {
        let err = ApiError::from(Refusal::Ca(CaError::SigningKey(
            SigningError::KeyUnavailable("pkcs11:token=hsm-7;object=k: DeviceRemoved".into()),
        )));
        let (status, slug, _) = err.classify();
        assert_eq!(
            (status, slug),
            (StatusCode::SERVICE_UNAVAILABLE, "ca-key-unavailable")
        );
        let resp = err.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("urn:signet:problem:ca-key-unavailable"),
            "{body}"
        );
        assert!(
            !body.contains("hsm-7") && !body.contains("DeviceRemoved"),
            "{body}"
        );
        let failed = ApiError::Ca(CaError::SigningKey(SigningError::Failed("x".into())));
        assert_eq!(failed.classify().0, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
