//! Time rules shared by every JWT the API reads (provisioner tokens, Kubernetes
//! service-account tokens, renewal tokens). A leaf module: it imports nothing of the crate,
//! so `auth`, `kubernetes` and `renewal` can all use it without importing one another.

/// Longest a token may live, from now to its `exp`.
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 300;
/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY_SECS: u64 = 30;
