//! The URLs of one ACME provisioner's resources, as the client reaches the server.
//!
//! They are built from the request's own scheme and host (`Host`, or the HTTP/2
//! `:authority`), so a client that knows the server as `localhost:8443` gets URLs under that
//! name and the JWS `url` it signs matches the request it sends, whichever of the server's
//! names or replicas it uses. The account URL (`kid`) is matched by its path alone for the
//! same reason.

use axum::http::{HeaderMap, Uri, header};

use crate::problem::AcmeError;

/// Where the ACME routes are mounted.
pub const PREFIX: &str = "/acme";

/// The resource URLs of one provisioner, for one request's origin.
#[derive(Clone, Debug)]
pub struct Urls {
    origin: String,
    provisioner: String,
}

impl Urls {
    /// The URLs under the origin the request was sent to.
    pub fn for_request(
        https: bool,
        headers: &HeaderMap,
        uri: &Uri,
        provisioner: &str,
    ) -> Result<Urls, AcmeError> {
        let host = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .ok_or_else(|| AcmeError::malformed("the request names no host"))?;
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(AcmeError::malformed("the request's host is malformed"));
        }
        let scheme = if https { "https" } else { "http" };
        Ok(Urls {
            origin: format!("{scheme}://{host}"),
            provisioner: provisioner.to_string(),
        })
    }

    /// The provisioner's name.
    pub fn provisioner(&self) -> &str {
        &self.provisioner
    }

    fn at(&self, path: &str) -> String {
        format!("{}{PREFIX}/{}/{path}", self.origin, self.provisioner)
    }

    /// The URL of the request with this `path` (as received).
    pub fn request_url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    /// The directory.
    pub fn directory(&self) -> String {
        self.at("directory")
    }
    /// newNonce.
    pub fn new_nonce(&self) -> String {
        self.at("new-nonce")
    }
    /// newAccount.
    pub fn new_account(&self) -> String {
        self.at("new-account")
    }
    /// newOrder.
    pub fn new_order(&self) -> String {
        self.at("new-order")
    }
    /// revokeCert.
    pub fn revoke_cert(&self) -> String {
        self.at("revoke-cert")
    }
    /// keyChange.
    pub fn key_change(&self) -> String {
        self.at("key-change")
    }
    /// renewalInfo (RFC 9773), without the CertID.
    pub fn renewal_info(&self) -> String {
        self.at("renewal-info")
    }
    /// An account.
    pub fn account(&self, id: &str) -> String {
        self.at(&format!("account/{id}"))
    }
    /// An account's orders list.
    pub fn orders(&self, account: &str) -> String {
        self.at(&format!("account/{account}/orders"))
    }
    /// An order.
    pub fn order(&self, id: &str) -> String {
        self.at(&format!("order/{id}"))
    }
    /// An order's finalize URL.
    pub fn finalize(&self, id: &str) -> String {
        self.at(&format!("order/{id}/finalize"))
    }
    /// An order's certificate.
    pub fn certificate(&self, order: &str) -> String {
        self.at(&format!("cert/{order}"))
    }
    /// An authorization.
    pub fn authz(&self, id: &str) -> String {
        self.at(&format!("authz/{id}"))
    }
    /// A challenge.
    pub fn challenge(&self, id: &str) -> String {
        self.at(&format!("chall/{id}"))
    }

    /// The account id a `kid` names, if it is an account URL of this provisioner (by path:
    /// any of the server's names may be in front).
    pub fn account_id_of(&self, kid: &str) -> Option<String> {
        let rest = kid
            .strip_prefix("https://")
            .or_else(|| kid.strip_prefix("http://"))?;
        let path = &rest[rest.find('/')?..];
        let id = path.strip_prefix(&format!("{PREFIX}/{}/account/", self.provisioner))?;
        (!id.is_empty() && id.bytes().all(is_id_byte)).then(|| id.to_string())
    }
}

/// Bytes of the ids Signet makes (base64url).
pub fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}
