//! The JSON objects of RFC 8555 section 7.1 as Signet sends them, built from stored rows,
//! and the request payloads it accepts (unknown members refused).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use signet_store::{AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder};
use time::OffsetDateTime;

use crate::jws::FlattenedJws;
use crate::problem::ProblemDocument;
use crate::urls::Urls;

/// RFC 3339, as ACME writes times.
pub fn rfc3339(t: OffsetDateTime) -> String {
    signet_ca::rfc3339(t)
}

/// An identifier object (section 7.1.3, 9.7.7; RFC 8738 for `ip`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentifierObject {
    /// `dns` or `ip`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The name or address.
    pub value: String,
}

/// newAccount's payload (section 7.3), and an account update's (7.3.2, 7.3.6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AccountRequest {
    /// Contact URLs.
    #[serde(default)]
    pub contact: Option<Vec<String>>,
    /// Whether the client agreed to the terms of service (Signet has none: accepted,
    /// not used).
    #[serde(default)]
    #[allow(dead_code)]
    pub terms_of_service_agreed: Option<bool>,
    /// Only look up the key's account; create nothing.
    #[serde(default)]
    pub only_return_existing: Option<bool>,
    /// The external account binding (section 7.3.4).
    #[serde(default)]
    pub external_account_binding: Option<FlattenedJws>,
    /// `deactivated` to deactivate (updates only; ignored by newAccount).
    #[serde(default)]
    pub status: Option<String>,
    /// Ignored if sent (RFC 8555 section 7.3: the server's to set).
    #[serde(default)]
    #[allow(dead_code)]
    pub orders: Option<Value>,
}

/// newOrder's payload (section 7.4; RFC 9773 `replaces`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OrderRequest {
    /// What the certificate is for.
    pub identifiers: Vec<IdentifierObject>,
    /// Requested validity start: Signet does not honour one, so it must be absent.
    #[serde(default)]
    pub not_before: Option<String>,
    /// Requested validity end: as `not_before`.
    #[serde(default)]
    pub not_after: Option<String>,
    /// The ARI CertID of the certificate this order replaces.
    #[serde(default)]
    pub replaces: Option<String>,
    /// The members of the order object (section 7.1.3) that only the server sets: ignored
    /// if sent, as an account's `status` and `orders` are in newAccount. acmez (Caddy's
    /// client) sends its whole order object, with an empty `status` and a zero `expires`.
    #[serde(default)]
    #[allow(dead_code)]
    pub status: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub expires: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub authorizations: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub finalize: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub certificate: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    pub error: Option<Value>,
}

/// finalize's payload (section 7.4).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeRequest {
    /// The CSR, DER, base64url.
    pub csr: String,
}

/// An authorization update's payload (section 7.5.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationUpdate {
    /// `deactivated`.
    pub status: String,
}

/// revokeCert's payload (section 7.6).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// The certificate, DER, base64url.
    pub certificate: String,
    /// The CRLReason code.
    #[serde(default)]
    pub reason: Option<u8>,
}

/// keyChange's inner payload (section 7.3.5).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KeyChangeRequest {
    /// The account URL.
    pub account: String,
    /// The old key, JWK.
    pub old_key: serde_json::Map<String, Value>,
}

/// The account object (section 7.1.2).
pub fn account(urls: &Urls, a: &AcmeAccount) -> Value {
    serde_json::json!({
        "status": a.status,
        "contact": a.contact,
        "orders": urls.orders(&a.id),
    })
}

/// The order object (section 7.1.3).
pub fn order(urls: &Urls, o: &AcmeOrder) -> Value {
    let identifiers: Value = serde_json::from_str(&o.identifiers).unwrap_or(Value::Null);
    let mut v = serde_json::json!({
        "status": o.status,
        "expires": rfc3339(o.expires_at),
        "identifiers": identifiers,
        "authorizations": o.authorizations.iter().map(|a| urls.authz(a)).collect::<Vec<_>>(),
        "finalize": urls.finalize(&o.id),
    });
    if let Some(error) = o.error.as_deref().and_then(problem) {
        v["error"] = error;
    }
    if o.certificate_serial.is_some() && o.status == "valid" {
        v["certificate"] = Value::String(urls.certificate(&o.id));
    }
    if let Some(r) = &o.replaces {
        v["replaces"] = Value::String(r.clone());
    }
    v
}

/// The authorization object (section 7.1.4): a wildcard's identifier without `*.`, and
/// `wildcard: true`.
pub fn authorization(urls: &Urls, a: &AcmeAuthorization) -> Value {
    let (value, wildcard) = match a.identifier_value.strip_prefix("*.") {
        Some(base) => (base.to_string(), true),
        None => (a.identifier_value.clone(), false),
    };
    let mut v = serde_json::json!({
        "identifier": { "type": a.identifier_type, "value": value },
        "status": a.status,
        "expires": rfc3339(a.expires_at),
        "challenges": a.challenges.iter().map(|c| challenge(urls, c)).collect::<Vec<_>>(),
    });
    if wildcard {
        v["wildcard"] = Value::Bool(true);
    }
    v
}

/// The challenge object (section 8).
pub fn challenge(urls: &Urls, c: &AcmeChallenge) -> Value {
    let mut v = serde_json::json!({
        "type": c.kind,
        "url": urls.challenge(&c.id),
        "status": c.status,
        "token": c.token,
    });
    if let Some(at) = c.validated_at {
        v["validated"] = Value::String(rfc3339(at));
    }
    if let Some(error) = c.error.as_deref().and_then(problem) {
        v["error"] = error;
    }
    v
}

fn problem(stored: &str) -> Option<Value> {
    serde_json::from_str::<ProblemDocument>(stored)
        .ok()
        .and_then(|p| serde_json::to_value(p).ok())
}
