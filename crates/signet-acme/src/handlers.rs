//! The ACME endpoints (RFC 8555 section 7) and the pipeline every POST goes through:
//! the body (size, `application/jose+json`), the JWS (flattened, protected header), `url`
//! equal to the request's URL, the key (`jwk` or an account's `kid`), the signature, and
//! last the nonce, used once. Nothing is changed before all of those pass. Every response
//! carries a fresh `Replay-Nonce` and the directory as `Link: rel="index"`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use signet_authority::{Requester, Ttl};
use signet_ca::{Csr, DnsName, RevocationReason, Serial, SubjectName};
use signet_store::{
    AcmeAccount, AcmeAccountCreated, AcmeChallenge, AcmeOrder, AuditAction, AuditEntry,
    AuditOutcome, ChallengeOutcome, NewAcmeAuthorization, NewAcmeOrder, RateDecision,
    RevokeOutcome, StoreError,
};
use time::OffsetDateTime;

use crate::ari::{self, CertId};
use crate::jws::{AccountKey, ParsedJws, b64url, from_b64url};
use crate::objects::{self, IdentifierObject};
use crate::problem::{AcmeError, ProblemType};
use crate::urls::{PREFIX, Urls, is_id_byte};
use crate::{AcmeProvisioner, AcmeServer, MAX_BODY_BYTES, MAX_IDENTIFIERS, ORDER_LIFETIME};

type Result<T, E = AcmeError> = std::result::Result<T, E>;

/// The ACME routes of every `acme` provisioner, under [`PREFIX`].
pub fn router(server: AcmeServer) -> Router {
    Router::new()
        .route("/acme/{p}/directory", get(directory))
        .route("/acme/{p}/new-nonce", get(new_nonce).head(new_nonce))
        .route("/acme/{p}/new-account", post(new_account))
        .route("/acme/{p}/account/{id}", post(account))
        .route("/acme/{p}/account/{id}/orders", post(orders))
        .route("/acme/{p}/new-order", post(new_order))
        .route("/acme/{p}/order/{id}", post(order))
        .route("/acme/{p}/order/{id}/finalize", post(finalize))
        .route("/acme/{p}/authz/{id}", post(authorization))
        .route("/acme/{p}/chall/{id}", post(challenge))
        .route("/acme/{p}/cert/{id}", post(certificate))
        .route("/acme/{p}/revoke-cert", post(revoke_cert))
        .route("/acme/{p}/key-change", post(key_change))
        .route("/acme/{p}/renewal-info/{id}", get(renewal_info))
        .layer(middleware::from_fn_with_state(server.clone(), deadline))
        .layer(middleware::from_fn_with_state(server.clone(), replay_nonce))
        .with_state(server)
}

/// The request timeout (as the REST API's): a request not answered within it (in practice,
/// one whose body stalls) is dropped and answered 408 with a `malformed` problem document
/// (and, from [`replay_nonce`], a fresh nonce). Counted, not audited: the sender is not
/// authenticated yet, and a flood of stalled requests must not become a flood of database
/// writes. Over HTTP/1 the answer says `Connection: close`.
async fn deadline(State(server): State<AcmeServer>, req: Request, next: Next) -> Response {
    let limit = server.request_timeout();
    let http1 = req.version() < axum::http::Version::HTTP_2;
    let uri = req.uri().clone();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let err = AcmeError::malformed(format!(
                "the request was not completed within {} s",
                limit.as_secs_f64()
            ))
            .with_status(StatusCode::REQUEST_TIMEOUT);
            if let Some(hook) = server.inner.refusal_hook.get() {
                hook("requestTimeout");
            }
            let path = uri.path().chars().take(128).collect::<String>();
            tracing::info!(path, "ACME request timed out");
            let mut resp = err.into_response();
            if http1 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// Every response: a fresh nonce (RFC 8555 section 6.5: also on errors, so a `badNonce`
/// can be retried at once), the directory as `Link: rel="index"`, and no caching.
async fn replay_nonce(State(server): State<AcmeServer>, req: Request, next: Next) -> Response {
    let index = req
        .uri()
        .path()
        .strip_prefix(&format!("{PREFIX}/"))
        .and_then(|rest| rest.split('/').next())
        .filter(|p| server.inner.provisioners.contains_key(*p))
        .and_then(|p| Urls::for_request(server.inner.https, req.headers(), req.uri(), p).ok())
        .map(|u| u.directory());
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&server.inner.nonces.make()) {
        headers.insert("replay-nonce", v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(Ok(v)) = index.map(|d| HeaderValue::from_str(&format!("<{d}>;rel=\"index\""))) {
        headers.append(header::LINK, v);
    }
    resp
}

/// What the audit row of a refused POST says, filled in as the pipeline learns it: the
/// action (by endpoint; a POST-as-GET of an account, authorization or challenge is
/// `acme-read`), the provisioner, the account once a signature by its key has verified, the
/// key that signed, and the certificate concerned (revokeCert).
pub(crate) struct Audit {
    action: AuditAction,
    /// The endpoint both reads (POST-as-GET, empty payload) and writes.
    read_if_empty: bool,
    provisioner: Option<String>,
    account: Option<String>,
    key: Option<String>,
    serial: Option<Serial>,
}

impl Audit {
    fn new(action: AuditAction, read_if_empty: bool) -> Audit {
        Audit {
            action,
            read_if_empty,
            provisioner: None,
            account: None,
            key: None,
            serial: None,
        }
    }

    /// `acme:<provisioner>:<account>` (the actor of the account's own audit rows and the
    /// requester of its certificates) once the account's signature verified;
    /// `acme:<provisioner>:anonymous` before that; `anonymous` when the provisioner named
    /// in the URL does not exist.
    fn actor(&self) -> String {
        match (&self.provisioner, &self.account) {
            (Some(p), Some(a)) => format!("acme:{p}:{a}"),
            (Some(p), None) => format!("acme:{p}:anonymous"),
            (None, _) => "anonymous".to_string(),
        }
    }
}

/// Longest audit detail written for a refusal (the problem's detail quotes what the client
/// sent, which is bounded by the body limit but need not be kept whole).
const MAX_REFUSAL_DETAIL: usize = 1024;

/// A POST endpoint whose every refusal is audited: `$inner` does the work and fills in the
/// [`Audit`] it is given; an error is recorded by [`AcmeServer::refused`] and answered as
/// its problem document.
macro_rules! audited {
    ($name:ident, $inner:ident, $path:ty, $action:expr, $read_if_empty:expr) => {
        async fn $name(
            State(server): State<AcmeServer>,
            Path(path): Path<$path>,
            headers: HeaderMap,
            uri: Uri,
            body: Body,
        ) -> Response {
            let mut audit = Audit::new($action, $read_if_empty);
            let result = $inner(server.clone(), &mut audit, path, headers, uri.clone(), body).await;
            match result {
                Ok(resp) => resp,
                Err(err) => {
                    server.refused(&audit, &uri, &err).await;
                    err.into_response()
                }
            }
        }
    };
}

audited!(
    new_account,
    new_account_inner,
    String,
    AuditAction::AcmeNewAccount,
    false
);
audited!(
    account,
    account_inner,
    (String, String),
    AuditAction::AcmeUpdateAccount,
    true
);
audited!(
    key_change,
    key_change_inner,
    String,
    AuditAction::AcmeKeyChange,
    false
);
audited!(
    orders,
    orders_inner,
    (String, String),
    AuditAction::AcmeRead,
    false
);
audited!(
    new_order,
    new_order_inner,
    String,
    AuditAction::AcmeNewOrder,
    false
);
audited!(
    order,
    order_inner,
    (String, String),
    AuditAction::AcmeRead,
    false
);
audited!(
    finalize,
    finalize_inner,
    (String, String),
    AuditAction::Issue,
    false
);
audited!(
    certificate,
    certificate_inner,
    (String, String),
    AuditAction::AcmeRead,
    false
);
audited!(
    authorization,
    authorization_inner,
    (String, String),
    AuditAction::AcmeDeactivateAuthorization,
    true
);
audited!(
    challenge,
    challenge_inner,
    (String, String),
    AuditAction::AcmeValidate,
    true
);
audited!(
    revoke_cert,
    revoke_cert_inner,
    String,
    AuditAction::Revoke,
    false
);

impl AcmeServer {
    /// Record a refused request, as the REST API records its refusals: an audit row with
    /// outcome `refused`, the actor and action as far as the request was understood, and
    /// the problem's type and detail; and a log line. Not when the database is unavailable
    /// (the answer is then 503 and the row could not be written either).
    async fn refused(&self, audit: &Audit, uri: &Uri, err: &AcmeError) {
        if let Some(hook) = self.inner.refusal_hook.get() {
            hook(err.kind.name());
        }
        if err.status == StatusCode::SERVICE_UNAVAILABLE {
            return;
        }
        let actor = audit.actor();
        let path: String = uri.path().chars().take(200).collect();
        let mut detail = format!("{}: {}", err.kind.name(), err.detail);
        if audit.account.is_none()
            && let Some(key) = &audit.key
        {
            detail.push_str(&format!(" (key {key})"));
        }
        if detail.chars().count() > MAX_REFUSAL_DETAIL {
            detail = detail.chars().take(MAX_REFUSAL_DETAIL).collect::<String>() + "...";
        }
        detail.push_str(&format!(" [POST {path}]"));
        tracing::info!(
            actor,
            action = %audit.action,
            problem = err.kind.name(),
            detail = %err.detail,
            path,
            "ACME request refused"
        );
        let entry = AuditEntry {
            actor,
            action: audit.action.clone(),
            serial: audit.serial.clone(),
            outcome: AuditOutcome::Refused,
            detail,
        };
        if let Err(e) = self.inner.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not write the audit record of a refused ACME request");
        }
    }

    fn provisioner(&self, name: &str) -> Result<Arc<AcmeProvisioner>> {
        self.inner
            .provisioners
            .get(name)
            .cloned()
            .ok_or_else(|| AcmeError::not_found("ACME provisioner"))
    }

    /// Take one request from `account`'s bucket (when the provisioner limits accounts) and
    /// then from the provisioner's, or refuse with `rateLimited` and `Retry-After`. The
    /// buckets are the store's, shared by every `signet serve` on the database (large
    /// limits are taken in leases, so this is rarely a statement of its own).
    async fn rate_limit(&self, prov: &AcmeProvisioner, account: Option<&str>) -> Result<()> {
        let settings = &prov.settings;
        let store = &self.inner.store;
        if let (Some(account), Some((rate, burst))) = (account, settings.rate_limit_per_account) {
            let hash = ring::digest::digest(&ring::digest::SHA256, account.as_bytes());
            let bucket = format!("a/{}/{}", settings.name, hex::encode(hash.as_ref()));
            if let RateDecision::Refused { retry_after } =
                store.take_rate_token(&bucket, rate, burst).await?
            {
                return Err(AcmeError::rate_limited(
                    format!(
                        "account {account} of ACME provisioner {:?} is over its limit of {rate} new orders a second",
                        settings.name
                    ),
                    retry_after,
                ));
            }
        }
        let (rate, burst) = settings.rate_limit;
        // The same bucket the API would use for a provisioner of this name (names are
        // unique across kinds).
        let bucket = format!("p/{}", settings.name);
        if let RateDecision::Refused { retry_after } =
            store.take_rate_token(&bucket, rate, burst).await?
        {
            return Err(AcmeError::rate_limited(
                format!(
                    "ACME provisioner {:?} is over its limit of {rate} new accounts and orders a second",
                    settings.name
                ),
                retry_after,
            ));
        }
        Ok(())
    }

    fn urls(&self, headers: &HeaderMap, uri: &Uri, provisioner: &str) -> Result<Urls> {
        Urls::for_request(self.inner.https, headers, uri, provisioner)
    }
}

/// A request that passed the pipeline.
struct Authenticated {
    prov: Arc<AcmeProvisioner>,
    urls: Urls,
    jws: ParsedJws,
    /// The key that signed.
    key: AccountKey,
    /// The account, when the request was signed by one (`kid`).
    account: Option<AcmeAccount>,
}

impl Authenticated {
    fn account(&self) -> Result<&AcmeAccount> {
        self.account
            .as_ref()
            .ok_or_else(|| AcmeError::malformed("this request must be signed by an account (kid)"))
    }

    fn requester(&self, account: &AcmeAccount) -> Requester {
        Requester::Acme {
            provisioner: self.prov.authority.clone(),
            account: account.id.clone(),
        }
    }

    fn audit(&self, account_id: &str, action: AuditAction, detail: String) -> AuditEntry {
        AuditEntry {
            actor: format!("acme:{}:{account_id}", self.urls.provisioner()),
            action,
            serial: None,
            outcome: AuditOutcome::Ok,
            detail,
        }
    }
}

/// Which key a request may be signed with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyMode {
    /// A new key, as `jwk` (newAccount).
    Jwk,
    /// An account, as `kid` (everything else).
    Kid,
    /// Either (revokeCert: the account, or the certificate's own key).
    Either,
}

/// The pipeline: body, JWS, url, key, signature, nonce.
async fn authenticate(
    server: &AcmeServer,
    audit: &mut Audit,
    provisioner: &str,
    headers: &HeaderMap,
    uri: &Uri,
    body: Body,
    mode: KeyMode,
) -> Result<Authenticated> {
    let prov = server.provisioner(provisioner)?;
    audit.provisioner = Some(prov.settings.name.clone());
    let urls = server.urls(headers, uri, provisioner)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.split(';').next().map(str::trim) != Some("application/jose+json") {
        return Err(
            AcmeError::malformed("ACME requests are POSTed as application/jose+json")
                .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        );
    }
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            AcmeError::malformed(format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes"
            ))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
        })?;
    let jws = ParsedJws::parse(&body)?;
    if audit.read_if_empty && jws.payload.is_empty() {
        audit.action = AuditAction::AcmeRead;
    }
    let url = urls.request_url(uri.path_and_query().map_or(uri.path(), |p| p.as_str()));
    if jws.header.url != url {
        return Err(AcmeError::unauthorized(format!(
            "the JWS url {:?} is not the URL this request was sent to ({url:?})",
            jws.header.url
        )));
    }
    let (key, account) = match (&jws.header.jwk, &jws.header.kid, mode) {
        (Some(jwk), None, KeyMode::Jwk | KeyMode::Either) => (AccountKey::from_jwk(jwk)?, None),
        (None, Some(kid), KeyMode::Kid | KeyMode::Either) => {
            let account = account_of_kid(server, &urls, kid).await?;
            (AccountKey::from_json(&account.jwk)?, Some(account))
        }
        (Some(_), _, _) => {
            return Err(AcmeError::malformed(
                "this request must be signed by an account's key and name it with kid",
            ));
        }
        _ => {
            return Err(AcmeError::malformed(
                "this request must carry the new key as jwk, not a kid",
            ));
        }
    };
    jws.verify(&key)?;
    // From here on the request is the key's (the account's, by kid): a refusal names it.
    audit.key = Some(key.thumbprint.clone());
    audit.account = account.as_ref().map(|a| a.id.clone());
    let nonce = jws
        .header
        .nonce
        .as_deref()
        .ok_or_else(|| AcmeError::new(ProblemType::BadNonce, "the JWS has no nonce"))?;
    server
        .inner
        .nonces
        .consume(&server.inner.store, nonce)
        .await?;
    Ok(Authenticated {
        prov,
        urls,
        jws,
        key,
        account,
    })
}

/// The valid account a `kid` names, of this provisioner.
async fn account_of_kid(server: &AcmeServer, urls: &Urls, kid: &str) -> Result<AcmeAccount> {
    let missing = || {
        AcmeError::new(
            ProblemType::AccountDoesNotExist,
            "the kid is not an account of this ACME provisioner",
        )
    };
    let id = urls.account_id_of(kid).ok_or_else(missing)?;
    let account = server
        .inner
        .store
        .acme_account(&id)
        .await?
        .filter(|a| a.provisioner == urls.provisioner())
        .ok_or_else(missing)?;
    if account.status != "valid" {
        return Err(AcmeError::unauthorized(format!(
            "the account is {}",
            account.status
        )));
    }
    Ok(account)
}

fn json_response(status: StatusCode, body: &Value, location: Option<String>) -> Response {
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(Ok(v)) = location.as_deref().map(HeaderValue::from_str) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn random_id(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| AcmeError::internal("the system random source failed"))?;
    Ok(b64url(&buf))
}

fn checked_id(id: &str) -> Result<&str> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(is_id_byte) {
        return Err(AcmeError::not_found("object"));
    }
    Ok(id)
}

// ---- directory and nonces ----

async fn directory(
    State(server): State<AcmeServer>,
    Path(p): Path<String>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response> {
    let prov = server.provisioner(&p)?;
    let urls = server.urls(&headers, &uri, &p)?;
    let body = serde_json::json!({
        "newNonce": urls.new_nonce(),
        "newAccount": urls.new_account(),
        "newOrder": urls.new_order(),
        "revokeCert": urls.revoke_cert(),
        "keyChange": urls.key_change(),
        "renewalInfo": urls.renewal_info(),
        "meta": {
            "externalAccountRequired": prov.settings.eab_required,
        },
    });
    Ok(json_response(StatusCode::OK, &body, None))
}

async fn new_nonce(
    State(server): State<AcmeServer>,
    Path(p): Path<String>,
    method: Method,
) -> Result<StatusCode> {
    server.provisioner(&p)?;
    // RFC 8555 section 7.2: 200 to HEAD, 204 to GET; the nonce is added to every response.
    Ok(if method == Method::HEAD {
        StatusCode::OK
    } else {
        StatusCode::NO_CONTENT
    })
}

// ---- accounts ----

fn check_contacts(contact: &[String]) -> Result<()> {
    if contact.len() > 10 {
        return Err(AcmeError::new(
            ProblemType::Malformed,
            "at most 10 contacts",
        ));
    }
    for c in contact {
        let ok = c.len() <= 320
            && c.strip_prefix("mailto:")
                .is_some_and(|addr| SubjectName::parse_email(addr).is_ok());
        if !ok {
            return Err(AcmeError::malformed(format!(
                "contact {c:?} is not a mailto: URL with one email address"
            ))
            .with_status(StatusCode::BAD_REQUEST));
        }
    }
    Ok(())
}

async fn new_account_inner(
    server: AcmeServer,
    audit: &mut Audit,
    p: String,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Jwk).await?;
    let payload: objects::AccountRequest = req.jws.json()?;
    let store = &server.inner.store;
    if let Some(existing) = store
        .acme_account_by_key(req.urls.provisioner(), &req.key.thumbprint)
        .await?
    {
        let body = objects::account(&req.urls, &existing);
        return Ok(json_response(
            StatusCode::OK,
            &body,
            Some(req.urls.account(&existing.id)),
        ));
    }
    if payload.only_return_existing == Some(true) {
        return Err(AcmeError::new(
            ProblemType::AccountDoesNotExist,
            "no account has this key",
        ));
    }
    server.rate_limit(&req.prov, None).await?;
    // A `status` in newAccount is ignored, as `orders` is (RFC 8555 section 7.3: the server
    // ignores what a new account cannot set): acmez (Caddy's client) sends its account
    // object back with `"status": "valid"`. A new account is always valid.
    let contact = payload.contact.unwrap_or_default();
    check_contacts(&contact)?;
    let eab_kid = match (
        &payload.external_account_binding,
        req.prov.settings.eab_required,
    ) {
        (None, true) => {
            return Err(AcmeError::new(
                ProblemType::ExternalAccountRequired,
                "this ACME provisioner needs an external account binding (signet acme eab create)",
            ));
        }
        (None, false) => None,
        (Some(binding), _) => Some(check_eab(&server, &req, binding).await?),
    };
    let account = AcmeAccount {
        id: random_id(16)?,
        provisioner: req.urls.provisioner().to_string(),
        thumbprint: req.key.thumbprint.clone(),
        jwk: req.key.jwk_json.clone(),
        status: "valid".into(),
        contact,
        eab_kid: eab_kid.clone(),
        created_at: OffsetDateTime::now_utc(),
    };
    let detail = match &eab_kid {
        Some(kid) => format!("key {} eab {kid}", account.thumbprint),
        None => format!("key {}", account.thumbprint),
    };
    let audit = req.audit(&account.id, AuditAction::AcmeNewAccount, detail);
    let (status, account) = match store.acme_create_account(&account, &audit).await {
        Ok(AcmeAccountCreated::Created(a)) => (StatusCode::CREATED, a),
        Ok(AcmeAccountCreated::Existing(a)) => (StatusCode::OK, a),
        Err(StoreError::Conflict(why)) => return Err(AcmeError::unauthorized(why)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(provisioner = %p, account = %account.id, "ACME account created");
    let body = objects::account(&req.urls, &account);
    Ok(json_response(
        status,
        &body,
        Some(req.urls.account(&account.id)),
    ))
}

/// Check an external account binding (RFC 8555 section 7.3.4): an HS256 JWS by a key of
/// this provisioner, not yet bound and not revoked, over the account's own key, for the
/// newAccount URL. Returns its key id.
async fn check_eab(
    server: &AcmeServer,
    req: &Authenticated,
    binding: &crate::jws::FlattenedJws,
) -> Result<String> {
    let inner = ParsedJws::from_flattened(binding)?;
    let kid = inner
        .header
        .kid
        .clone()
        .ok_or_else(|| AcmeError::malformed("the external account binding has no kid"))?;
    if inner.header.nonce.is_some() {
        return Err(AcmeError::malformed(
            "the external account binding must not have a nonce",
        ));
    }
    if inner.header.url != req.urls.new_account() {
        return Err(AcmeError::unauthorized(
            "the external account binding's url is not newAccount's",
        ));
    }
    let unusable = || {
        AcmeError::unauthorized(
            "the external account binding's key is unknown, revoked or already used",
        )
    };
    let key = server
        .inner
        .store
        .acme_eab_key(&kid)
        .await?
        .filter(|k| k.provisioner == req.urls.provisioner())
        .ok_or_else(unusable)?;
    let hmac = from_b64url("the stored EAB key", &key.hmac_key)
        .map_err(|_| AcmeError::internal("a stored EAB key is not base64url"))?;
    inner.verify_hmac(&hmac)?;
    if key.revoked_at.is_some() || key.account_id.is_some() {
        return Err(unusable());
    }
    let bound: serde_json::Map<String, Value> = serde_json::from_slice(&inner.payload)
        .map_err(|_| AcmeError::malformed("the external account binding's payload is not a JWK"))?;
    if AccountKey::from_jwk(&bound)?.thumbprint != req.key.thumbprint {
        return Err(AcmeError::unauthorized(
            "the external account binding is for another key",
        ));
    }
    Ok(kid)
}

async fn account_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?;
    if account.id != checked_id(&id)? {
        return Err(AcmeError::unauthorized("this is another account"));
    }
    if req.jws.payload.is_empty() {
        let body = objects::account(&req.urls, account);
        return Ok(json_response(
            StatusCode::OK,
            &body,
            Some(req.urls.account(&account.id)),
        ));
    }
    let update: objects::AccountRequest = req.jws.json()?;
    if update.only_return_existing.is_some() || update.external_account_binding.is_some() {
        return Err(AcmeError::malformed(
            "an account update may change contact and status only",
        ));
    }
    let status = match update.status.as_deref() {
        None | Some("valid") => None,
        Some("deactivated") => Some("deactivated"),
        Some(other) => {
            return Err(AcmeError::malformed(format!(
                "an account's status can be set to deactivated only, not {other:?}"
            )));
        }
    };
    if let Some(contact) = &update.contact {
        check_contacts(contact)?;
    }
    if update.contact.is_some() || status.is_some() {
        let detail = match status {
            Some(s) => format!("status {s}"),
            None => "contact".to_string(),
        };
        let audit = req.audit(&account.id, AuditAction::AcmeUpdateAccount, detail);
        if !server
            .inner
            .store
            .acme_update_account(&account.id, update.contact.as_deref(), status, &audit)
            .await?
        {
            return Err(AcmeError::unauthorized("the account is no longer valid"));
        }
    }
    let fresh = server
        .inner
        .store
        .acme_account(&account.id)
        .await?
        .ok_or_else(|| AcmeError::internal("an account vanished"))?;
    let body = objects::account(&req.urls, &fresh);
    Ok(json_response(
        StatusCode::OK,
        &body,
        Some(req.urls.account(&fresh.id)),
    ))
}

async fn key_change_inner(
    server: AcmeServer,
    audit: &mut Audit,
    p: String,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?;
    let outer_kid = req.jws.header.kid.clone().unwrap_or_default();
    let inner_jws: crate::jws::FlattenedJws = req.jws.json()?;
    let inner = ParsedJws::from_flattened(&inner_jws)?;
    let new_jwk = inner
        .header
        .jwk
        .as_ref()
        .ok_or_else(|| AcmeError::malformed("the inner JWS must carry the new key as jwk"))?;
    if inner.header.nonce.is_some() {
        return Err(AcmeError::malformed("the inner JWS must not have a nonce"));
    }
    if inner.header.url != req.jws.header.url {
        return Err(AcmeError::malformed(
            "the inner JWS's url differs from the outer one's",
        ));
    }
    let new_key = AccountKey::from_jwk(new_jwk)?;
    inner.verify(&new_key)?;
    let change: objects::KeyChangeRequest = inner.json()?;
    if change.account != outer_kid {
        return Err(AcmeError::unauthorized(
            "the inner payload's account is not the one signing",
        ));
    }
    if AccountKey::from_jwk(&change.old_key)?.thumbprint != req.key.thumbprint {
        return Err(AcmeError::unauthorized(
            "oldKey is not the account's current key",
        ));
    }
    if let Some(other) = server
        .inner
        .store
        .acme_account_by_key(req.urls.provisioner(), &new_key.thumbprint)
        .await?
    {
        let mut err = AcmeError::malformed("the new key already belongs to an account")
            .with_status(StatusCode::CONFLICT);
        err.location = Some(req.urls.account(&other.id));
        return Err(err);
    }
    let audit = req.audit(
        &account.id,
        AuditAction::AcmeKeyChange,
        format!("key {} -> {}", req.key.thumbprint, new_key.thumbprint),
    );
    match server
        .inner
        .store
        .acme_change_key(&account.id, &new_key.thumbprint, &new_key.jwk_json, &audit)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(AcmeError::unauthorized("the account is no longer valid")),
        Err(StoreError::Conflict(_)) => {
            return Err(
                AcmeError::malformed("the new key already belongs to an account")
                    .with_status(StatusCode::CONFLICT),
            );
        }
        Err(e) => return Err(e.into()),
    }
    let fresh = server
        .inner
        .store
        .acme_account(&account.id)
        .await?
        .ok_or_else(|| AcmeError::internal("an account vanished"))?;
    let body = objects::account(&req.urls, &fresh);
    Ok(json_response(
        StatusCode::OK,
        &body,
        Some(req.urls.account(&fresh.id)),
    ))
}

async fn orders_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    req.jws.expect_post_as_get()?;
    let account = req.account()?;
    if account.id != checked_id(&id)? {
        return Err(AcmeError::unauthorized(
            "these are another account's orders",
        ));
    }
    let after = uri
        .query()
        .and_then(|q| q.strip_prefix("cursor="))
        .filter(|c| c.bytes().all(is_id_byte));
    const PAGE: u32 = 100;
    let ids = server
        .inner
        .store
        .acme_order_ids(&account.id, after, PAGE)
        .await?;
    let body = serde_json::json!({
        "orders": ids.iter().map(|o| req.urls.order(o)).collect::<Vec<_>>(),
    });
    let mut resp = json_response(StatusCode::OK, &body, None);
    if ids.len() == PAGE as usize
        && let Some(last) = ids.last()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "<{}?cursor={last}>;rel=\"next\"",
            req.urls.orders(&account.id)
        ))
    {
        resp.headers_mut().append(header::LINK, v);
    }
    Ok(resp)
}

// ---- orders ----

/// An identifier of an order, checked: its type allowed by the provisioner, its value in
/// canonical form, a wildcard only for DNS.
fn check_identifier(prov: &AcmeProvisioner, id: &IdentifierObject) -> Result<SubjectName> {
    let types = prov.settings.identifiers;
    let name = match id.kind.as_str() {
        "dns" if types.dns => {
            let name = DnsName::parse(&id.value).map_err(|e| {
                AcmeError::new(
                    ProblemType::RejectedIdentifier,
                    format!("{:?}: {e}", id.value),
                )
            })?;
            if name.as_str() != id.value {
                return Err(AcmeError::new(
                    ProblemType::RejectedIdentifier,
                    format!("{:?} is not in canonical (lowercase) form", id.value),
                ));
            }
            SubjectName::Dns(name)
        }
        "ip" if types.ip => {
            let ip: std::net::IpAddr = id.value.parse().map_err(|_| {
                AcmeError::new(
                    ProblemType::RejectedIdentifier,
                    format!("{:?} is not an IP address", id.value),
                )
            })?;
            if ip.to_string() != id.value {
                return Err(AcmeError::new(
                    ProblemType::RejectedIdentifier,
                    format!("{:?} is not in canonical form ({ip})", id.value),
                ));
            }
            SubjectName::Ip(ip)
        }
        other => {
            return Err(AcmeError::new(
                ProblemType::UnsupportedIdentifier,
                format!("this ACME provisioner does not issue for {other:?} identifiers"),
            ));
        }
    };
    if !prov.settings.policy.allows(&name) {
        return Err(AcmeError::new(
            ProblemType::RejectedIdentifier,
            format!(
                "{} is not allowed by the policy of ACME provisioner {:?}",
                id.value, prov.settings.name
            ),
        ));
    }
    Ok(name)
}

/// The challenge types offered for an identifier: a wildcard only dns-01, an IP address
/// no dns-01 (RFC 8738 section 7).
fn challenge_kinds(id: &IdentifierObject) -> &'static [&'static str] {
    match (id.kind.as_str(), id.value.starts_with("*.")) {
        ("dns", true) => &["dns-01"],
        ("dns", false) => &["http-01", "dns-01", "tls-alpn-01"],
        _ => &["http-01", "tls-alpn-01"],
    }
}

async fn new_order_inner(
    server: AcmeServer,
    audit: &mut Audit,
    p: String,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?;
    server.rate_limit(&req.prov, Some(&account.id)).await?;
    let payload: objects::OrderRequest = req.jws.json()?;
    if payload.not_before.is_some() || payload.not_after.is_some() {
        return Err(AcmeError::malformed(
            "notBefore and notAfter are not supported: the lifetime is the provisioner's",
        ));
    }
    if payload.identifiers.is_empty() || payload.identifiers.len() > MAX_IDENTIFIERS {
        return Err(AcmeError::malformed(format!(
            "an order has 1 to {MAX_IDENTIFIERS} identifiers"
        )));
    }
    let mut seen = BTreeSet::new();
    for id in &payload.identifiers {
        let name = check_identifier(&req.prov, id)?;
        if !seen.insert(name) {
            return Err(AcmeError::malformed(format!(
                "identifier {:?} is listed twice",
                id.value
            )));
        }
    }
    if let Some(replaces) = &payload.replaces {
        check_replaces(&server, &req, account, replaces).await?;
    }
    let expires = OffsetDateTime::now_utc() + ORDER_LIFETIME;
    let mut authorizations = Vec::new();
    for id in &payload.identifiers {
        let mut challenges = Vec::new();
        for kind in challenge_kinds(id) {
            challenges.push((random_id(16)?, kind.to_string(), random_id(32)?));
        }
        authorizations.push(NewAcmeAuthorization {
            id: random_id(16)?,
            identifier_type: id.kind.clone(),
            identifier_value: id.value.clone(),
            challenges,
        });
    }
    let identifiers = serde_json::to_string(&payload.identifiers)
        .map_err(|e| AcmeError::internal(format!("identifiers: {e}")))?;
    let new = NewAcmeOrder {
        id: random_id(16)?,
        account_id: account.id.clone(),
        identifiers,
        expires_at: expires,
        replaces: payload.replaces.clone(),
        authorizations,
    };
    let names: Vec<String> = payload
        .identifiers
        .iter()
        .map(|i| format!("{}:{}", i.kind, i.value))
        .collect();
    let audit = req.audit(
        &account.id,
        AuditAction::AcmeNewOrder,
        format!("order {} names={}", new.id, names.join(",")),
    );
    server.inner.store.acme_create_order(&new, &audit).await?;
    let order = load_order(&server, &new.id, account).await?;
    let body = objects::order(&req.urls, &order);
    Ok(json_response(
        StatusCode::CREATED,
        &body,
        Some(req.urls.order(&order.id)),
    ))
}

/// `replaces` (RFC 9773 section 5): a certificate this account was issued, not replaced
/// by another order already.
async fn check_replaces(
    server: &AcmeServer,
    req: &Authenticated,
    account: &AcmeAccount,
    replaces: &str,
) -> Result<()> {
    let id = CertId::parse(replaces)?;
    let record = server
        .inner
        .store
        .get_certificate(&id.serial)
        .await?
        .filter(|r| id.names(r))
        .ok_or_else(|| AcmeError::malformed("replaces names no certificate this CA issued"))?;
    if record.requester != req.requester(account).to_string() {
        return Err(AcmeError::unauthorized(
            "replaces names a certificate this account was not issued",
        ));
    }
    if server.inner.store.acme_replaced(replaces).await? {
        return Err(AcmeError::new(
            ProblemType::AlreadyReplaced,
            "another order already replaces this certificate",
        ));
    }
    Ok(())
}

/// The order `id` if it is `account`'s.
async fn load_order(server: &AcmeServer, id: &str, account: &AcmeAccount) -> Result<AcmeOrder> {
    server
        .inner
        .store
        .acme_order(checked_id(id)?)
        .await?
        .filter(|o| o.account_id == account.id)
        .ok_or_else(|| AcmeError::not_found("order"))
}

async fn order_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    req.jws.expect_post_as_get()?;
    let order = load_order(&server, &id, req.account()?).await?;
    Ok(json_response(
        StatusCode::OK,
        &objects::order(&req.urls, &order),
        None,
    ))
}

async fn finalize_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?;
    let order = load_order(&server, &id, account).await?;
    let payload: objects::FinalizeRequest = req.jws.json()?;
    if order.status != "ready" {
        return Err(AcmeError::new(
            ProblemType::OrderNotReady,
            format!("the order is {}, not ready", order.status),
        ));
    }
    let der = from_b64url("csr", &payload.csr)?;
    let csr =
        Csr::from_der(&der).map_err(|e| AcmeError::new(ProblemType::BadCsr, e.to_string()))?;
    let ordered: Vec<IdentifierObject> = serde_json::from_str(&order.identifiers)
        .map_err(|e| AcmeError::internal(format!("stored identifiers: {e}")))?;
    let ordered: BTreeSet<SubjectName> = ordered
        .iter()
        .map(|i| check_identifier(&req.prov, i))
        .collect::<Result<_>>()?;
    let requested: BTreeSet<SubjectName> = csr.names().iter().cloned().collect();
    if requested != ordered {
        let list = |s: &BTreeSet<SubjectName>| {
            s.iter()
                .map(SubjectName::to_tagged)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(AcmeError::new(
            ProblemType::BadCsr,
            format!(
                "the CSR's names ({}) are not the order's identifiers ({})",
                list(&requested),
                list(&ordered)
            ),
        ));
    }
    if req.key.same_key_as_spki(csr.spki_der()) {
        return Err(AcmeError::new(
            ProblemType::BadCsr,
            "the CSR's key is the account key: certificates need a key of their own",
        ));
    }
    if !server.inner.store.acme_begin_finalize(&order.id).await? {
        return Err(AcmeError::new(
            ProblemType::OrderNotReady,
            "the order is being finalized already",
        ));
    }
    let settings = &req.prov.settings;
    let issued = server
        .inner
        .authority
        .issue_csr(
            csr,
            settings.profile,
            Ttl::Requested(settings.lifetime),
            &req.requester(account),
            None,
        )
        .await;
    let store = &server.inner.store;
    let serial = match issued {
        Ok(recorded) => {
            store
                .acme_finish_order(&order.id, Some(&recorded.serial), None)
                .await?;
            tracing::info!(provisioner = %p, account = %account.id, order = %order.id, serial = %recorded.serial, "ACME order finalized");
            recorded.serial
        }
        Err(refusal) => {
            let err = AcmeError::from(refusal);
            // The database failing leaves the order ready to be finalized again; a refusal
            // of the request itself ends it.
            let error = (err.kind != ProblemType::ServerInternal)
                .then(|| serde_json::to_string(&err.document()).unwrap_or_default());
            store
                .acme_finish_order(&order.id, None, error.as_deref())
                .await?;
            return Err(err);
        }
    };
    // The order is valid now, with this certificate: answered without reading it again.
    let mut order = order;
    order.status = "valid".to_string();
    order.certificate_serial = Some(serial);
    Ok(json_response(
        StatusCode::OK,
        &objects::order(&req.urls, &order),
        Some(req.urls.order(&order.id)),
    ))
}

async fn certificate_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    req.jws.expect_post_as_get()?;
    let order = load_order(&server, &id, req.account()?).await?;
    let serial = order
        .certificate_serial
        .as_ref()
        .ok_or_else(|| AcmeError::not_found("certificate"))?;
    let record = server
        .inner
        .store
        .get_certificate(serial)
        .await?
        .ok_or_else(|| {
            AcmeError::internal(format!("certificate {serial} of an order is not recorded"))
        })?;
    let mut pem = signet_ca::pem::certificate(&record.der);
    for c in server.inner.authority.ca().chain_pem() {
        pem.push_str(&c);
    }
    let mut resp = (StatusCode::OK, pem).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/pem-certificate-chain"),
    );
    Ok(resp)
}

// ---- authorizations and challenges ----

async fn authorization_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?;
    let store = &server.inner.store;
    let mut authz = store
        .acme_authorization(checked_id(&id)?)
        .await?
        .filter(|a| a.account_id == account.id)
        .ok_or_else(|| AcmeError::not_found("authorization"))?;
    if !req.jws.payload.is_empty() {
        let update: objects::AuthorizationUpdate = req.jws.json()?;
        if update.status != "deactivated" {
            return Err(AcmeError::malformed(
                "an authorization's status can be set to deactivated only",
            ));
        }
        let audit = req.audit(
            &account.id,
            AuditAction::AcmeDeactivateAuthorization,
            format!(
                "authz {} {}:{}",
                authz.id, authz.identifier_type, authz.identifier_value
            ),
        );
        if !store
            .acme_deactivate_authorization(&authz.id, &audit)
            .await?
        {
            return Err(AcmeError::malformed(format!(
                "the authorization is {}: only a pending or valid one can be deactivated",
                authz.status
            )));
        }
        authz = store
            .acme_authorization(&authz.id)
            .await?
            .ok_or_else(|| AcmeError::not_found("authorization"))?;
    }
    let mut resp = json_response(
        StatusCode::OK,
        &objects::authorization(&req.urls, &authz),
        None,
    );
    if authz.challenges.iter().any(|c| c.status == "processing") {
        poll_soon(&mut resp);
    }
    Ok(resp)
}

/// `Retry-After: 1` on a challenge being validated and its authorization: validation takes
/// a second or less, and a client without the header waits longer before it polls (lego
/// 5 s per authorization).
fn poll_soon(resp: &mut Response) {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
}

async fn challenge_inner(
    server: AcmeServer,
    audit: &mut Audit,
    (p, id): (String, String),
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Kid).await?;
    let account = req.account()?.clone();
    let store = &server.inner.store;
    let chall = store
        .acme_challenge(checked_id(&id)?)
        .await?
        .ok_or_else(|| AcmeError::not_found("challenge"))?;
    let authz = store
        .acme_authorization(&chall.authz_id)
        .await?
        .filter(|a| a.account_id == account.id)
        .ok_or_else(|| AcmeError::not_found("challenge"))?;
    let mut started = false;
    if !req.jws.payload.is_empty() {
        // RFC 8555 section 7.5.1: the client says it is ready with an empty object.
        let answer: Value = req.jws.json()?;
        if !answer.is_object() {
            return Err(AcmeError::malformed(
                "a challenge is answered with an empty JSON object",
            ));
        }
        if authz.expires_at <= OffsetDateTime::now_utc() {
            return Err(AcmeError::malformed("the authorization has expired"));
        }
        started = store.acme_start_challenge(&chall.id).await?;
        if started {
            let identifier = match authz.identifier_type.as_str() {
                "ip" => authz
                    .identifier_value
                    .parse()
                    .map(signet_va::Identifier::Ip)
                    .map_err(|_| AcmeError::internal("a stored IP identifier does not parse"))?,
                _ => signet_va::Identifier::Dns(authz.identifier_value.clone()),
            };
            let key_authorization = format!("{}.{}", chall.token, req.key.thumbprint);
            let audit = req.audit(
                &account.id,
                AuditAction::AcmeValidate,
                format!(
                    "{} {}:{}",
                    chall.kind, authz.identifier_type, authz.identifier_value
                ),
            );
            tokio::spawn(validate(
                server.clone(),
                req.prov.clone(),
                chall.clone(),
                identifier,
                key_authorization,
                audit,
            ));
        }
    }
    // Started now: processing (answered without reading it again; the client polls).
    let mut chall = chall;
    if started {
        chall.status = "processing".to_string();
    }
    let mut resp = json_response(StatusCode::OK, &objects::challenge(&req.urls, &chall), None);
    if chall.status == "processing" {
        poll_soon(&mut resp);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>;rel=\"up\"", req.urls.authz(&authz.id))) {
        resp.headers_mut().append(header::LINK, v);
    }
    Ok(resp)
}

/// Validate a challenge (in the background: the client polls) and record the outcome.
async fn validate(
    server: AcmeServer,
    prov: Arc<AcmeProvisioner>,
    chall: AcmeChallenge,
    identifier: signet_va::Identifier,
    key_authorization: String,
    mut audit: AuditEntry,
) {
    let kind = match chall.kind.as_str() {
        "http-01" => Some(signet_va::ChallengeKind::Http01),
        "dns-01" => Some(signet_va::ChallengeKind::Dns01),
        "tls-alpn-01" => Some(signet_va::ChallengeKind::TlsAlpn01),
        _ => None,
    };
    let outcome = match kind {
        Some(kind) => prov
            .va
            .validate(kind, &identifier, &chall.token, &key_authorization)
            .await
            .map_err(|f| crate::problem::ProblemDocument {
                kind: f.kind.acme_type().to_string(),
                detail: f.detail,
                status: 400,
            }),
        None => Err(crate::problem::ProblemDocument {
            kind: ProblemType::ServerInternal.urn().to_string(),
            detail: format!("unknown challenge type {:?}", chall.kind),
            status: 500,
        }),
    };
    let (result, error) = match outcome {
        Ok(_) => (ChallengeOutcome::Valid, None),
        Err(problem) => {
            audit.detail = format!("{}: {}", audit.detail, problem.detail);
            audit.outcome = AuditOutcome::Refused;
            (
                ChallengeOutcome::Invalid,
                serde_json::to_string(&problem).ok(),
            )
        }
    };
    if let Err(e) = server
        .inner
        .store
        .acme_finish_challenge(&chall, result, error.as_deref(), &audit)
        .await
    {
        tracing::error!(error = %e, challenge = %chall.id, "recording a validation failed");
    }
}

// ---- revocation and renewal information ----

async fn revoke_cert_inner(
    server: AcmeServer,
    audit: &mut Audit,
    p: String,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response> {
    let req = authenticate(&server, audit, &p, &headers, &uri, body, KeyMode::Either).await?;
    let payload: objects::RevokeRequest = req.jws.json()?;
    let der = from_b64url("certificate", &payload.certificate)?;
    let reason = match payload.reason {
        None => RevocationReason::Unspecified,
        Some(code) => RevocationReason::from_code(code)
            .ok()
            .filter(|r| RevocationReason::FOR_LEAF.contains(r))
            .ok_or_else(|| {
                AcmeError::new(
                    ProblemType::BadRevocationReason,
                    format!("reason {code} is not one a certificate can be revoked for"),
                )
            })?,
    };
    let cert = <x509_cert::Certificate as der::Decode>::from_der(&der)
        .map_err(|e| AcmeError::malformed(format!("the certificate does not parse: {e}")))?;
    let serial = Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())
        .map_err(|e| AcmeError::malformed(format!("the certificate's serial: {e}")))?;
    audit.serial = Some(serial.clone());
    let record = server
        .inner
        .store
        .get_certificate(&serial)
        .await?
        .filter(|r| r.der == der)
        .ok_or_else(|| AcmeError::not_found("certificate issued by this CA"))?;
    let actor = match &req.account {
        Some(account) => {
            let requester = req.requester(account).to_string();
            if record.requester != requester {
                return Err(AcmeError::unauthorized(
                    "this account was not issued this certificate",
                ));
            }
            requester
        }
        None => {
            let (_, key) = signet_pkix_key(&der)?;
            if key != req.key.public {
                return Err(AcmeError::unauthorized(
                    "the request is signed neither by the certificate's account nor by its key",
                ));
            }
            format!("acme:{}:certificate-key", req.urls.provisioner())
        }
    };
    let audit = AuditEntry {
        actor,
        action: AuditAction::Revoke,
        serial: Some(record.serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: format!("reason={} (ACME)", reason.name()),
    };
    match server
        .inner
        .store
        .revoke(&record.serial, OffsetDateTime::now_utc(), reason, &audit)
        .await?
    {
        RevokeOutcome::Revoked => {}
        RevokeOutcome::AlreadyRevoked => {
            return Err(AcmeError::new(
                ProblemType::AlreadyRevoked,
                "the certificate is already revoked",
            ));
        }
        _ => return Err(AcmeError::not_found("certificate issued by this CA")),
    }
    if let Some(hook) = &server.inner.revocation_hook {
        hook(&serial, reason);
    }
    tracing::info!(%serial, reason = reason.name(), "certificate revoked through ACME");
    Ok(StatusCode::OK.into_response())
}

/// The subject and key bits of a certificate.
fn signet_pkix_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    signet_pkix::cert::raw_subject_and_key(der)
        .map(|(s, k)| (s.to_vec(), k.to_vec()))
        .map_err(|e| AcmeError::malformed(e.to_string()))
}

async fn renewal_info(
    State(server): State<AcmeServer>,
    Path((p, id)): Path<(String, String)>,
) -> Result<Response> {
    server.provisioner(&p)?;
    let id = CertId::parse(&id)?;
    let record = server
        .inner
        .store
        .get_certificate(&id.serial)
        .await?
        .filter(|r| id.names(r))
        .ok_or_else(|| AcmeError::not_found("certificate issued by this CA"))?;
    let (start, end) = ari::suggested_window(record.not_before, record.not_after);
    let body = serde_json::json!({
        "suggestedWindow": {
            "start": objects::rfc3339(start),
            "end": objects::rfc3339(end),
        },
    });
    let mut resp = json_response(StatusCode::OK, &body, None);
    // RFC 9773 section 4.3: poll again in a while (here: an hour, short lifetimes are
    // common).
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("3600"));
    Ok(resp)
}
