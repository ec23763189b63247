//! CA keys kept in a PKCS#11 module (a hardware security module, a smart card, SoftHSM2),
//! behind Signet's key-custody seam: [`Pkcs11Key`] is a [`signet_pkix::SigningKey`], so the
//! issuing CA, the root and the CRL signer sign through a token with nothing above them
//! changed. The private key never leaves the token; Signet asks it for signatures.
//!
//! What this crate owns:
//! - [`Pkcs11Uri`]: RFC 7512 names of keys (`pkcs11:token=signet;object=issuing-ca`).
//! - [`Module`]: one loaded and initialised module per path, re-initialised when the token
//!   goes away and comes back.
//! - [`Pkcs11Key`]: a key in a token, with a pool of sessions (a PKCS#11 session is never
//!   used by two threads at once), re-login when the token forgets the login, and the
//!   token's failures reported as [`signet_pkix::SigningError::KeyUnavailable`].
//! - [`generate_key_pair`]: new CA keys made inside the token, sensitive and not
//!   extractable.

#![forbid(unsafe_code)]

mod key;
mod module;
mod uri;

pub use key::{
    INLINE_SIGN_LIMIT, KeyKind, Pkcs11Key, TOKEN_CHECK_INTERVAL, destroy_key_pair,
    generate_key_pair,
};
pub use module::{Module, Pin};
pub use uri::Pkcs11Uri;

/// Environment variable holding the user PIN of the token (instead of `[pkcs11] pin_file`).
pub const PIN_ENV: &str = "SIGNET_PKCS11_PIN";

/// Why a PKCS#11 key could not be named, found, made or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// The PKCS#11 URI is malformed, names no key, or carries what it must not (a PIN).
    #[error("{0}")]
    Uri(String),
    /// The module could not be loaded or initialised.
    #[error("PKCS#11 module {path}: {reason}")]
    Module {
        /// The module's path.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// No token present matches the URI.
    #[error("no token matching {0} is present")]
    TokenNotFound(String),
    /// The token refused the PIN (or it is locked). The PIN itself is never in the message.
    #[error("the token {token} refused the PIN: {reason}")]
    Login {
        /// The token's label.
        token: String,
        /// The module's reason (CKR_PIN_INCORRECT, CKR_PIN_LOCKED...).
        reason: String,
    },
    /// No private key, or more than one, matches the URI.
    #[error("{0}")]
    KeyNotFound(String),
    /// A key with that label or id is in the token already (generation never overwrites).
    #[error("{0}")]
    KeyExists(String),
    /// The key is of a type or curve Signet does not sign with.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// The PIN could not be read.
    #[error("PIN: {0}")]
    Pin(String),
    /// The module failed an operation.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
}
