//! Certificates: issue, renew, revoke, look up and list.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use signet_authority::{
    HolderProof, IssueRequest as AuthorityIssue, Recorded, RenewRequest as AuthorityRenew,
    Requester, SingleUse,
};
use signet_ca::{
    CaError, CertificateInfo, Lifetime, Profile, RevocationReason, Serial, SubjectName,
};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, CertStatus, CertificateFilter, CertificateRecord,
    RateDecision, RevokeOutcome,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{self, Identity};
use crate::{ApiError, AppState, ClientCertificate, MAX_BODY_BYTES};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue, list))
        .routes(routes!(renew))
        .routes(routes!(get_one))
        .routes(routes!(revoke))
}

/// `POST /v1/certificates` body.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct IssueRequest {
    /// PKCS#10 CSR, PEM.
    csr: String,
    /// `server` (default), `client` or `peer`.
    #[serde(default)]
    profile: Option<String>,
    /// Lifetime, e.g. `24h`, `90m`, `7d` (default: the profile's default).
    #[serde(default)]
    ttl: Option<String>,
}

/// A newly issued certificate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct IssueResponse {
    /// Serial number, lowercase hex.
    serial_number: String,
    /// The certificate, PEM.
    certificate: String,
    /// The issuing CA and any further intermediates (not the root), PEM each.
    chain: Vec<String>,
    /// Start of validity, RFC 3339.
    not_before: String,
    /// End of validity, RFC 3339.
    not_after: String,
}

/// `POST /v1/certificates/renew` body (optional).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    /// A CSR for a new key (rekey). Its names are ignored: renewal keeps the names.
    #[serde(default)]
    csr: Option<String>,
    /// Lifetime (default: the profile's default).
    #[serde(default)]
    ttl: Option<String>,
}

/// `POST /v1/certificates/{serial}/revoke` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RevokeRequest {
    /// RFC 5280 CRLReason: `unspecified`, `keyCompromise`, `affiliationChanged`, `superseded`,
    /// `cessationOfOperation` or `privilegeWithdrawn`.
    #[serde(default = "unspecified")]
    reason: String,
}

fn unspecified() -> String {
    "unspecified".into()
}

/// A stored certificate.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CertificateView {
    serial_number: String,
    /// `good`, `revoked` or `expired`.
    status: String,
    profile: String,
    subject: String,
    /// Names as `dns:…`, `ip:…`, `uri:…`, `email:…`.
    sans: Vec<String>,
    not_before: String,
    not_after: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_reason: Option<String>,
    /// Who asked for it (admin listings only).
    #[serde(skip_serializing_if = "Option::is_none")]
    requester: Option<String>,
    /// The certificate, PEM.
    certificate: String,
}

/// A page of certificates.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct CertificateList {
    items: Vec<CertificateView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Listing filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `good`, `revoked` or `expired`.
    status: Option<String>,
    /// `server`, `client` or `peer`; or `ocsp-signer` (the OCSP responders' certificates)
    /// or `ca` (CA certificates the root signed or revoked).
    profile: Option<String>,
    /// `all` (default): every certificate the CA recorded. `requested`: only those someone
    /// asked for, leaving out the server's own TLS certificates, the OCSP signers' and CA
    /// certificates.
    scope: Option<String>,
    /// A name the certificate carries, e.g. `api.internal` or `uri:spiffe://…`.
    name: Option<String>,
    /// Good certificates expiring within this duration, e.g. `24h`.
    expiring_within: Option<String>,
    /// Page size, 1-500 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

fn view(rec: CertificateRecord, with_requester: bool) -> CertificateView {
    let status = match rec.status(OffsetDateTime::now_utc()) {
        CertStatus::Good => "good",
        CertStatus::Revoked => "revoked",
        CertStatus::Expired => "expired",
    };
    CertificateView {
        serial_number: rec.serial.to_hex(),
        status: status.into(),
        profile: rec.profile,
        subject: rec.subject,
        sans: rec.sans,
        not_before: rfc3339(rec.not_before),
        not_after: rfc3339(rec.not_after),
        revoked_at: rec.revoked_at.map(rfc3339),
        revocation_reason: rec.revocation_reason.map(|r| r.name().to_string()),
        requester: with_requester.then_some(rec.requester),
        certificate: signet_ca::pem::certificate(&rec.der),
    }
}

/// Parse a JSON body after the caller is authenticated, mapping every failure to a problem.
fn json_body<T: serde::de::DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    optional: bool,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::BadRequest(e.body_text())
        }
    })?;
    if optional && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    reject_ambiguous_json(&body)?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))
}

/// Every request body is one JSON object. serde would also read a struct from an array by
/// position (bypassing the unknown-key check), and serde_json keeps the last of duplicate
/// keys; a request that says two things, or says it positionally, is refused.
fn reject_ambiguous_json(body: &[u8]) -> Result<(), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    let serde_json::Value::Object(map) = &value else {
        return Err(ApiError::BadRequest(
            "the JSON body must be an object".into(),
        ));
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let keys = <KeyCounter as serde::Deserialize>::deserialize(&mut de)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if keys.0 != map.len() {
        return Err(ApiError::BadRequest("duplicate keys in JSON body".into()));
    }
    Ok(())
}

/// Counts the keys of a JSON object as written (duplicates included).
struct KeyCounter(usize);

impl<'de> serde::Deserialize<'de> for KeyCounter {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KeyCounter;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeyCounter, A::Error> {
                let mut n = 0;
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {
                    n += 1;
                }
                Ok(KeyCounter(n))
            }
        }
        d.deserialize_map(V)
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

impl AppState {
    /// Authenticate the bearer credential; for tokens, enforce the rate limit and burn the jti.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let (identity, burn) = self.authenticate_deferred(headers).await?;
        if let Some(burn) = burn {
            self.burn(&burn).await?;
        }
        Ok(identity)
    }

    /// Authenticate and rate-limit, but leave the single-use token's `jti` to the caller:
    /// issuance burns it in the same transaction that records the certificate (one durable
    /// commit per certificate instead of two), and on any refusal through [`Self::burn`].
    async fn authenticate_deferred(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Identity, Option<SingleUse>), ApiError> {
        let token = auth::bearer(headers)?.ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer` credential".into())
        })?;
        let inner = &self.inner;
        let provisioners = self.provisioners();
        let (identity, consume) = auth::verify(
            token,
            &inner.admin,
            inner.auditor.get(),
            &provisioners,
            self.audience(),
        )?;
        // The requester's own bucket first, so that a requester refused for flooding does
        // not also drain its provisioner's bucket and starve the provisioner's other
        // requesters. Nothing is burned here: a refused token stays usable.
        //
        // The process's own limiters come first, a cheap gate that costs no round trip:
        // they hold the whole budget, so they refuse only what one process alone asks
        // beyond it. On PostgreSQL the budget is then taken from the buckets every replica
        // shares (`rate_limit_buckets`), so that N replicas together stay within the
        // configured rate plus burst.
        if let Some(limits) = identity.limits() {
            let provisioner = identity.requester().provisioner_name();
            let requester = identity.requester().provisioner_subject();
            let requester_refused = |requester: &str, wait| ApiError::RateLimited {
                who: format!(
                    "requester {:?} of provisioner {provisioner}",
                    requester.chars().take(128).collect::<String>()
                ),
                retry_after_secs: retry_after_secs(wait),
            };
            let provisioner_refused = |wait| ApiError::RateLimited {
                who: format!("provisioner {provisioner}"),
                retry_after_secs: retry_after_secs(wait),
            };
            if let Some(per_identity) = &limits.per_requester
                && let Some(requester) = &requester
                && let Err(wait) = per_identity.check(requester)
            {
                return Err(requester_refused(requester, wait));
            }
            if let Err(not_until) = limits.provisioner.check() {
                let now = governor::clock::Clock::now(&governor::clock::DefaultClock::default());
                return Err(provisioner_refused(not_until.wait_time_from(now)));
            }
            if inner.store.shares_rate_limits() {
                if let Some(per_identity) = &limits.per_requester
                    && let Some(requester) = &requester
                {
                    let (rate, burst) = per_identity.rate();
                    let bucket = auth::requester_bucket(provisioner, requester);
                    if let RateDecision::Refused { retry_after } =
                        inner.store.take_rate_token(&bucket, rate, burst).await?
                    {
                        return Err(requester_refused(requester, retry_after));
                    }
                }
                let (rate, burst) = limits.rate;
                let bucket = auth::provisioner_bucket(provisioner);
                if let RateDecision::Refused { retry_after } =
                    inner.store.take_rate_token(&bucket, rate, burst).await?
                {
                    return Err(provisioner_refused(retry_after));
                }
            }
        }
        Ok((identity, consume))
    }

    /// Burn a single-use token's `jti` on its own; a replay is [`ApiError::TokenReplayed`].
    async fn burn(&self, burn: &SingleUse) -> Result<(), ApiError> {
        if self
            .inner
            .store
            .consume_token(&burn.namespace, &burn.jti, burn.expires_at)
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::TokenReplayed)
        }
    }

    /// Record a refusal: metrics, audit (best effort when the database itself is the problem).
    pub(crate) async fn refuse(
        &self,
        actor: &str,
        action: AuditAction,
        serial: Option<Serial>,
        err: ApiError,
    ) -> ApiError {
        self.inner.metrics.refused(err.slug());
        if matches!(
            err,
            ApiError::Store(signet_store::StoreError::Unavailable(_))
        ) {
            return err;
        }
        tracing::info!(actor, action = %action, problem = err.slug(), detail = %err, "request refused");
        let entry = AuditEntry {
            actor: actor.into(),
            action,
            serial,
            outcome: AuditOutcome::Refused,
            detail: format!("{}: {err}", err.slug()),
        };
        if let Err(e) = self.inner.store.append_audit(&entry).await {
            tracing::error!(error = %e, "could not write the audit record of a refusal");
        }
        err
    }

    /// Count and describe a certificate the authority recorded (`action`: `issue` or
    /// `renew`).
    fn issued(&self, recorded: Recorded, action: AuditAction) -> IssueResponse {
        let cert = &recorded.certificate;
        self.inner
            .metrics
            .issued
            .get_or_create(&crate::metrics::IssuedLabels {
                profile: cert.profile.to_string(),
                provisioner: recorded.counted_against.clone(),
                operation: action.to_string(),
            })
            .inc();
        IssueResponse {
            serial_number: recorded.serial.to_hex(),
            certificate: cert.pem(),
            chain: self.inner.ca.chain_pem(),
            not_before: rfc3339(cert.not_before),
            not_after: rfc3339(cert.not_after),
        }
    }
}

/// Issue a certificate from a CSR.
///
/// Authenticated by a provisioner's one-time token (the CSR's names must be within the
/// token's `sans` and the provisioner's policy), a Kubernetes service-account token for a
/// `kubernetes` provisioner (the CSR's names must be the provisioner's template names for
/// that service account, or allowed by its policy; a CSR without names gets the template
/// names; the default profile is `peer`), or the admin credential.
#[utoipa::path(post, path = "/v1/certificates", tag = "certificates", request_body = IssueRequest,
    security(("bearer" = [])),
    responses((status = 201, body = IssueResponse), (status = "4XX", body = crate::Problem, content_type = "application/problem+json"), (status = 503, body = crate::Problem, content_type = "application/problem+json")))]
async fn issue(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IssueResponse>), ApiError> {
    let (identity, burn) = match st.authenticate_deferred(&headers).await {
        Ok(id) => id,
        Err(e) => return Err(st.refuse("anonymous", AuditAction::Issue, None, e).await),
    };
    let actor = identity.audit_name();
    match issue_inner(&st, &identity, burn.as_ref(), &headers, body).await {
        Ok(resp) => Ok((StatusCode::CREATED, Json(resp))),
        Err(e) => {
            // A token presented in a refused request is used up all the same, as if it had
            // been burned at authentication; if it had already been used, that is the answer.
            // Not when the database is unavailable: burning would wait for it a second time
            // (doubling the time to a 503), and a timed-out write that commits later burns
            // the token with its certificate, so the burn would then call the request's own
            // token replayed. A token left usable by a 503 serves a retry.
            let unavailable =
                matches!(e, ApiError::Store(signet_store::StoreError::Unavailable(_)));
            let e = match &burn {
                Some(b) if !unavailable && !matches!(e, ApiError::TokenReplayed) => {
                    match st.burn(b).await {
                        Ok(()) => e,
                        Err(ApiError::TokenReplayed) => ApiError::TokenReplayed,
                        Err(other) => {
                            // Nothing was issued, so a token left usable does no harm.
                            tracing::warn!(error = %other, "could not burn the token of a refused request");
                            e
                        }
                    }
                }
                _ => e,
            };
            Err(st.refuse(&actor, AuditAction::Issue, None, e).await)
        }
    }
}

async fn issue_inner(
    st: &AppState,
    identity: &Identity,
    burn: Option<&SingleUse>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<IssueResponse, ApiError> {
    let requester = identity.requester();
    // A workload its provisioner does not admit is told so before its body is read.
    st.inner.authority.admit(requester)?;
    let req: IssueRequest = json_body(headers, body, false)?;
    let request = AuthorityIssue {
        csr: req.csr.as_bytes(),
        profile: req.profile.as_deref(),
        ttl: req.ttl.as_deref(),
    };
    let recorded = st.inner.authority.issue(request, requester, burn).await?;
    let resp = st.issued(recorded, AuditAction::Issue);
    if let Requester::Kubernetes {
        provisioner,
        namespace,
        service_account,
        ..
    } = requester
    {
        st.inner
            .metrics
            .kubernetes_issued
            .get_or_create(&crate::metrics::WorkloadLabels {
                provisioner: provisioner.name().to_string(),
                namespace: namespace.clone(),
                service_account: service_account.clone(),
            })
            .inc();
    }
    Ok(resp)
}

/// The caller's current client certificate, checked against the store: issued by us, not
/// revoked, not expired.
async fn holder(
    st: &AppState,
    client: Option<Extension<ClientCertificate>>,
) -> Result<(CertificateInfo, CertificateRecord), ApiError> {
    let Some(Extension(client)) = client else {
        return Err(ApiError::Unauthorized(
            "this operation needs the current client certificate over mutual TLS, or for \
             renewal a renewal token signed by the certificate's key"
                .into(),
        ));
    };
    let info = CertificateInfo::from_der(&client.der)
        .map_err(|e| ApiError::Unauthorized(format!("client certificate: {e}")))?;
    known_certificate(st, &client.der, info, "client certificate").await
}

/// A certificate someone proved to hold (over mTLS, or with a renewal token), checked
/// against the store: issued by us (the current issuing CA, or a kept earlier one the root
/// has not revoked), recorded with these very bytes, not revoked, not expired. `what` names
/// it in refusals.
async fn known_certificate(
    st: &AppState,
    der: &[u8],
    info: CertificateInfo,
    what: &str,
) -> Result<(CertificateInfo, CertificateRecord), ApiError> {
    // The current issuing CA, or an earlier one of the same root (after
    // `signet ca new-issuing`), whose certificates may renew onto the current one.
    let previous = match info.authority_key_id.as_deref() {
        Some(aki) if aki == st.inner.ca.key_id() => None,
        aki => Some(aki.and_then(|a| st.previous_issuer(a)).ok_or_else(|| {
            ApiError::Unauthorized(format!("the {what} was not issued by this CA"))
        })?),
    };
    let rec = st
        .inner
        .store
        .get_certificate(&info.serial)
        .await?
        .ok_or_else(|| ApiError::Unauthorized(format!("the {what} is not in this CA's records")))?;
    if *rec.der != *der {
        return Err(ApiError::Unauthorized(format!(
            "the {what} does not match this CA's records"
        )));
    }
    if let Some(ca) = previous {
        // An earlier issuing CA the root has revoked (`signet ca root-crl --revoke`)
        // vouches for nothing any more.
        let ca_rec = st.inner.store.get_certificate(&ca.serial).await?;
        if ca_rec.is_some_and(|r| r.der == ca.der && r.revoked_at.is_some()) {
            return Err(ApiError::Forbidden(format!(
                "the issuing CA that signed the {what} has been revoked by the root"
            )));
        }
    }
    match rec.status(OffsetDateTime::now_utc()) {
        CertStatus::Good => Ok((info, rec)),
        CertStatus::Revoked => Err(ApiError::Forbidden(format!("the {what} is revoked"))),
        CertStatus::Expired => Err(ApiError::Unauthorized(format!("the {what} has expired"))),
    }
}

/// The certificate a renewal token speaks for (see [`crate::renewal`]), checked like a
/// client certificate, and the token's `jti` to burn.
async fn token_holder(
    st: &AppState,
    token: &str,
) -> Result<(CertificateInfo, CertificateRecord, SingleUse), ApiError> {
    let mut issuers: Vec<&[u8]> = vec![st.inner.ca.cert_der()];
    if let Some(previous) = st.inner.previous_issuers.get() {
        issuers.extend(previous.iter().map(|p| p.der.as_slice()));
    }
    let token = crate::renewal::verify(token, &issuers, st.audience(), OffsetDateTime::now_utc())?;
    let burn = SingleUse {
        namespace: token.burn_namespace(),
        jti: token.jti.clone(),
        expires_at: token.expires_at,
    };
    let (info, rec) = known_certificate(st, &token.der, token.info, "certificate").await?;
    Ok((info, rec, burn))
}

/// Renew the caller's certificate, authenticated by that certificate: over mTLS, or with a
/// renewal token.
///
/// The new certificate has the same names and profile, if they still meet the current
/// policy of whoever the certificate was first issued to. With a CSR in the body, it
/// certifies the CSR's key instead of the current one (rekey).
///
/// A certificate that cannot be a TLS client certificate (profile `server`) sends instead
/// `Authorization: Bearer <renewal token>`: a compact JWS signed by the certificate's own
/// key (`alg` ES256, ES384, EdDSA, RS256 or PS256, as the key is), with the certificate
/// (and optionally its chain) in the `x5c` header, no `crit`, and the claims `aud` (this
/// URL: the CA's URL, or the same CA under another of its names or ports, followed by
/// `/v1/certificates/renew`), `sub` (the certificate's serial
/// number, hex), `iat`, `exp` (at most 5 minutes later), optionally `nbf`, and `jti` (single
/// use). A bearer credential on this endpoint is always read as a renewal token.
#[utoipa::path(post, path = "/v1/certificates/renew", tag = "certificates", request_body(content = RenewRequest, description = "optional"),
    security((), ("bearer" = [])),
    responses((status = 201, body = IssueResponse), (status = "4XX", body = crate::Problem, content_type = "application/problem+json")))]
async fn renew(
    State(st): State<AppState>,
    client: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<IssueResponse>), ApiError> {
    // An explicit credential wins over a client certificate the connection may carry.
    let bearer = match auth::bearer(&headers) {
        Ok(b) => b,
        Err(e) => return Err(st.refuse("anonymous", AuditAction::Renew, None, e).await),
    };
    let (info, rec, burn, actor) = match bearer {
        Some(token) => match token_holder(&st, token).await {
            Ok((info, rec, burn)) => {
                let actor = Requester::Holder {
                    serial: info.serial.clone(),
                    proof: HolderProof::RenewalToken,
                };
                (info, rec, Some(burn), actor)
            }
            Err(e) => return Err(st.refuse("x5c:unknown", AuditAction::Renew, None, e).await),
        },
        None => match holder(&st, client).await {
            Ok((info, rec)) => {
                let actor = Requester::Holder {
                    serial: info.serial.clone(),
                    proof: HolderProof::Mtls,
                };
                (info, rec, None, actor)
            }
            Err(e) => return Err(st.refuse("mtls:unknown", AuditAction::Renew, None, e).await),
        },
    };
    match renew_inner(&st, &info, &rec, &actor, &headers, body, burn.as_ref()).await {
        Ok(resp) => Ok((StatusCode::CREATED, Json(resp))),
        Err(e) => {
            // As for issuance: a token presented in a refused request is used up all the same.
            let e = match &burn {
                Some(b) if !matches!(e, ApiError::TokenReplayed) => match st.burn(b).await {
                    Err(ApiError::TokenReplayed) => ApiError::TokenReplayed,
                    _ => e,
                },
                _ => e,
            };
            Err(st
                .refuse(
                    &actor.to_string(),
                    AuditAction::Renew,
                    Some(rec.serial.clone()),
                    e,
                )
                .await)
        }
    }
}

async fn renew_inner(
    st: &AppState,
    info: &CertificateInfo,
    rec: &CertificateRecord,
    holder: &Requester,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    burn: Option<&SingleUse>,
) -> Result<IssueResponse, ApiError> {
    let req: RenewRequest = json_body(headers, body, true)?;
    let request = AuthorityRenew {
        record: rec,
        spki_der: &info.spki_der,
        common_name: info.common_name.as_deref(),
        csr: req.csr.as_deref().map(str::as_bytes),
        ttl: req.ttl.as_deref(),
    };
    // The line's first provisioner, as configured now.
    let provisioners = st.provisioners();
    let find = |name: &str| {
        provisioners
            .iter()
            .find(|p| p.name() == name)
            .map(|p| p.issuance.clone())
    };
    let recorded = st
        .inner
        .authority
        .renew(request, holder, find, burn)
        .await?;
    Ok(st.issued(recorded, AuditAction::Renew))
}

/// A serial from a request path or query: hex, colons allowed.
pub(crate) fn parse_serial(s: &str) -> Result<Serial, ApiError> {
    if s.len() > 64 {
        return Err(CaError::InvalidSerial("too long".into()).into());
    }
    Ok(Serial::from_hex(s).map_err(CaError::from)?)
}

/// Look up one certificate: metadata, status and PEM.
#[utoipa::path(get, path = "/v1/certificates/{serial}", tag = "certificates", params(("serial" = String, Path, description = "Serial number, hex")),
    responses((status = 200, body = CertificateView), (status = 404, body = crate::Problem, content_type = "application/problem+json")))]
async fn get_one(
    State(st): State<AppState>,
    Path(serial): Path<String>,
) -> Result<Json<CertificateView>, ApiError> {
    let serial = parse_serial(&serial)?;
    let rec = st
        .inner
        .store
        .get_certificate(&serial)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no certificate with serial {serial}")))?;
    Ok(Json(view(rec, false)))
}

/// List certificates (admin).
#[utoipa::path(get, path = "/v1/certificates", tag = "certificates", params(ListQuery), security(("bearer" = [])),
    responses((status = 200, body = CertificateList), (status = "4XX", body = crate::Problem, content_type = "application/problem+json")))]
async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CertificateList>, ApiError> {
    let identity = st.authenticate(&headers).await?;
    if !identity.may_read() {
        return Err(ApiError::Forbidden(
            "listing certificates needs the admin or auditor credential".into(),
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some("good") => Some(CertStatus::Good),
        Some("revoked") => Some(CertStatus::Revoked),
        Some("expired") => Some(CertStatus::Expired),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {:?}: expected good, revoked or expired",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    // Besides the issuance profiles, the records of the CA's own certificates can be asked
    // for by the profile they are filed under.
    let profile = match q.profile.as_deref() {
        None => None,
        Some(p @ ("ocsp-signer" | "ca")) => Some(p.to_string()),
        Some(p) => Some(p.parse::<Profile>()?.to_string()),
    };
    let requested_only = match q.scope.as_deref() {
        None | Some("all") => false,
        Some("requested") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "scope {:?}: expected requested or all",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let name = q
        .name
        .as_deref()
        .map(SubjectName::parse_loose)
        .transpose()?
        .map(|n| n.to_tagged());
    let expiring_within = q
        .expiring_within
        .as_deref()
        .map(humantime_duration)
        .transpose()?;
    let filter = CertificateFilter {
        status,
        profile,
        name,
        expiring_within,
        requested_only,
        limit: q.limit.unwrap_or(100).clamp(1, 500),
        cursor: q.cursor,
        ..CertificateFilter::default()
    };
    let page = st.inner.store.list_certificates(&filter).await?;
    Ok(Json(CertificateList {
        items: page.items.into_iter().map(|r| view(r, true)).collect(),
        next_cursor: page.next_cursor,
    }))
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, ApiError> {
    s.parse::<Lifetime>().map(|l| l.duration()).map_err(|_| {
        ApiError::BadRequest(format!(
            "expiring_within {:?}: expected a duration like 24h",
            s.chars().take(32).collect::<String>()
        ))
    })
}

/// Revoke a certificate: the admin, or the holder itself over mTLS.
#[utoipa::path(post, path = "/v1/certificates/{serial}/revoke", tag = "certificates", params(("serial" = String, Path, description = "Serial number, hex")),
    request_body = RevokeRequest, security(("bearer" = [])),
    responses((status = 200, body = CertificateView), (status = "4XX", body = crate::Problem, content_type = "application/problem+json")))]
async fn revoke(
    State(st): State<AppState>,
    Path(serial): Path<String>,
    client: Option<Extension<ClientCertificate>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CertificateView>, ApiError> {
    let actor = if auth::bearer(&headers).ok().flatten().is_some() {
        match st.authenticate(&headers).await {
            Ok(identity) if identity.is_admin() => "admin".to_string(),
            Ok(identity) => {
                let actor = if identity.may_read() {
                    identity.audit_name()
                } else {
                    "token".to_string()
                };
                return Err(st
                    .refuse(
                        &actor,
                        AuditAction::Revoke,
                        None,
                        ApiError::Forbidden(
                            "revocation needs the admin credential or the certificate itself"
                                .into(),
                        ),
                    )
                    .await);
            }
            Err(e) => return Err(st.refuse("anonymous", AuditAction::Revoke, None, e).await),
        }
    } else {
        match holder(&st, client).await {
            Ok((info, _)) => {
                let actor = Requester::Holder {
                    serial: info.serial.clone(),
                    proof: HolderProof::Mtls,
                }
                .to_string();
                if parse_serial(&serial).ok().as_ref() != Some(&info.serial) {
                    return Err(st
                        .refuse(
                            &actor,
                            AuditAction::Revoke,
                            None,
                            ApiError::Forbidden("a certificate may revoke only itself".into()),
                        )
                        .await);
                }
                actor
            }
            Err(e) => return Err(st.refuse("anonymous", AuditAction::Revoke, None, e).await),
        }
    };
    match revoke_inner(&st, &serial, &actor, &headers, body).await {
        Ok(v) => Ok(Json(v)),
        Err(e) => Err(st
            .refuse(&actor, AuditAction::Revoke, parse_serial(&serial).ok(), e)
            .await),
    }
}

impl Default for RevokeRequest {
    fn default() -> Self {
        RevokeRequest {
            reason: unspecified(),
        }
    }
}

async fn revoke_inner(
    st: &AppState,
    serial: &str,
    actor: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<CertificateView, ApiError> {
    let serial = parse_serial(serial)?;
    let req: RevokeRequest = json_body(headers, body, true)?;
    let reason = parse_leaf_reason(&req.reason)?;
    let rec = revoke_certificate(st, &serial, reason, actor).await?;
    Ok(view(rec, false))
}

/// A revocation reason a leaf certificate may be revoked for (RFC 5280's CRLReason by name,
/// [`RevocationReason::FOR_LEAF`]), as the API and the console take it.
pub(crate) fn parse_leaf_reason(reason: &str) -> Result<RevocationReason, ApiError> {
    reason
        .parse::<RevocationReason>()
        .ok()
        .filter(|r| RevocationReason::FOR_LEAF.contains(r))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "reason {:?}: expected one of {}",
                reason.chars().take(32).collect::<String>(),
                RevocationReason::FOR_LEAF
                    .map(RevocationReason::name)
                    .join(", ")
            ))
        })
}

/// Revoke `serial` for `reason` as `actor`: the store revokes and audits in one transaction,
/// then the revocation hook tells the responder and the CRL publisher. The one path of
/// every revocation the API and the console make; the certificate as now recorded.
pub(crate) async fn revoke_certificate(
    st: &AppState,
    serial: &Serial,
    reason: RevocationReason,
    actor: &str,
) -> Result<CertificateRecord, ApiError> {
    let serial = serial.clone();
    let audit = AuditEntry {
        actor: actor.into(),
        action: AuditAction::Revoke,
        serial: Some(serial.clone()),
        outcome: AuditOutcome::Ok,
        detail: format!("reason={}", reason.name()),
    };
    match st
        .inner
        .store
        .revoke(&serial, OffsetDateTime::now_utc(), reason, &audit)
        .await?
    {
        RevokeOutcome::Revoked => {}
        RevokeOutcome::AlreadyRevoked => {
            return Err(ApiError::Conflict(format!(
                "certificate {serial} is already revoked"
            )));
        }
        RevokeOutcome::NotFound => {
            return Err(ApiError::NotFound(format!(
                "no certificate with serial {serial}"
            )));
        }
    }
    st.inner.metrics.revoked.inc();
    tracing::info!(%serial, actor, reason = reason.name(), "certificate revoked");
    st.revoked(&serial, reason);
    st.inner
        .store
        .get_certificate(&serial)
        .await?
        .ok_or_else(|| ApiError::Internal("revoked certificate vanished".into()))
}
