//! Signet's REST API: the HTTP face of the CA.
//!
//! [`app`] builds the axum router from an [`AppState`]; the binary serves it over rustls
//! (and inserts a [`ClientCertificate`] extension for mTLS callers). Handlers authenticate
//! the caller (and rate-limit it), ask the authority ([`signet_authority::Authority`]) to
//! decide, sign and record, and only then answer. Every error leaves through [`ApiError`] as
//! RFC 7807 problem+json.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use signet_ca::{IssuingCa, Profile, ProfileLimits, RevocationReason, Serial};
use signet_store::Store;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

mod audience;
mod audit;
mod auth;
mod certificates;
mod claims;
mod console;
mod db;
mod error;
mod jwt_crypto;
mod kubernetes;
mod metrics;
mod renewal;
mod system;

pub use auth::{
    AdminCredential, Identity, Provisioner, ProvisionerConfig, ProvisionerKind, check_provisioners,
};
pub use console::{
    ABSOLUTE_TIMEOUT as CONSOLE_ABSOLUTE_TIMEOUT, CONTENT_SECURITY_POLICY as CONSOLE_CSP,
    ConsoleConfig, IDLE_TIMEOUT as CONSOLE_IDLE_TIMEOUT,
    ocsp::{LiveOcsp, OCSP_LOOKUP_TIMEOUT, live_ocsp_status},
};
pub use db::DATABASE_TIMEOUT;
pub use error::{ApiError, ConfigError, PROBLEM_PREFIX, Problem};
pub use kubernetes::{DEFAULT_MAX_TOKEN_AGE, check_jwks};
pub use signet_authority::{DEFAULT_NAME_TEMPLATES, DEFAULT_TRUST_DOMAIN};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest a request may take, by default, before the server answers 408 `request-timeout`
/// (see [`AppState::with_request_timeout`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings of the API that come from configuration.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// This CA's URL: the audience tokens must name.
    pub ca_url: String,
    /// Lifetime limits per profile.
    pub profiles: BTreeMap<Profile, ProfileLimits>,
    /// What the admin credential may be issued (typically the CA-wide `[policy]` with every
    /// profile allowed).
    pub admin_policy: signet_ca::Policy,
}

/// A certificate the client presented over mTLS and the TLS layer verified against our
/// root. Inserted as a request extension by the server.
#[derive(Clone, Debug)]
pub struct ClientCertificate {
    /// The leaf certificate, DER.
    pub der: Arc<[u8]>,
}

/// Called with the serial and the reason of each certificate the API revokes, after the
/// revocation is committed and before the request is answered. Must be quick and must
/// not block: the binary gives the revocation publisher's
/// (`signet_authority::RevocationPublisher::revoked`), which drops the OCSP responder's
/// cached answer and schedules new CRLs.
pub type RevocationHook = Arc<dyn Fn(&Serial, RevocationReason) + Send + Sync>;

/// Asks Signet's own OCSP responder: given a DER OCSPRequest, the DER OCSPResponse it
/// answers (whatever its status), or why there is none. The console's certificate page
/// builds the request from the certificate and its issuer and verifies the answer as a
/// relying party would (`signet_ca::verify_ocsp_response`). The binary gives the in-process
/// responder's answer path (`signet_responder::Responder::ocsp_response`), the one that
/// serves `POST /ocsp`; the API never depends on the responder crate.
pub type OcspLookup = Arc<
    dyn Fn(
            Vec<u8>,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send>>
        + Send
        + Sync,
>;

pub(crate) struct Lookup(pub(crate) OcspLookup);

impl std::fmt::Debug for Lookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OcspLookup")
    }
}

struct Hook(RevocationHook);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RevocationHook")
    }
}

/// Everything handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ca: Arc<IssuingCa>,
    /// Issuance and renewal decisions, and recording what is issued.
    authority: Arc<signet_authority::Authority>,
    /// The store, each operation bounded by the database timeout.
    store: db::Bounded,
    /// Replaced whole on a configuration reload; requests take a snapshot.
    provisioners: std::sync::RwLock<Arc<Vec<Provisioner>>>,
    admin: AdminCredential,
    /// The read-only auditor credential, if one is configured. Set at most once.
    auditor: std::sync::OnceLock<AdminCredential>,
    config: ApiConfig,
    metrics: Arc<metrics::Metrics>,
    revocation_hook: std::sync::OnceLock<Hook>,
    /// The OCSP responder the console asks for a certificate's live status; none: the
    /// console says so.
    ocsp_lookup: std::sync::OnceLock<Lookup>,
    /// Set at most once before serving; [`REQUEST_TIMEOUT`] when unset.
    request_timeout: std::sync::OnceLock<Duration>,
    /// What provisioner tokens' `aud` may name; `config.ca_url` alone until
    /// [`AppState::with_server_names`] adds the server's other names and ports.
    audience: std::sync::OnceLock<audience::Audience>,
    /// The console's settings; [`ConsoleConfig::default`] (served) when unset.
    console: std::sync::OnceLock<ConsoleConfig>,
    /// Sign-in attempts to the console, per client address and overall.
    console_limits: console::SignInLimits,
    /// Earlier issuing CAs of the same root whose certificates may still authenticate
    /// (renew onto the current CA, revoke themselves). Set at most once before serving.
    previous_issuers: std::sync::OnceLock<Vec<signet_ca::PreviousIssuer>>,
}

impl AppState {
    /// Assemble the state. Nothing here touches the network or the database.
    pub fn new(
        ca: Arc<IssuingCa>,
        store: Store,
        provisioners: Vec<Provisioner>,
        admin: AdminCredential,
        mut config: ApiConfig,
    ) -> Self {
        // Token signatures are checked by ring (see jwt_crypto.rs) from the first request on.
        jwt_crypto::install();
        config.ca_url = config.ca_url.trim_end_matches('/').to_string();
        let metrics = metrics::Metrics::new();
        let authority = signet_authority::Authority::new(
            ca.clone(),
            store.clone(),
            config.admin_policy.clone(),
            config.profiles.clone(),
        )
        // The same bound as the handlers' own store operations (db.rs).
        .bounded_by_default(DATABASE_TIMEOUT);
        let authority = Arc::new(authority);
        AppState {
            inner: Arc::new(Inner {
                ca,
                authority,
                store: db::Bounded::new(store),
                provisioners: std::sync::RwLock::new(Arc::new(provisioners)),
                admin,
                auditor: std::sync::OnceLock::new(),
                config,
                metrics,
                revocation_hook: std::sync::OnceLock::new(),
                ocsp_lookup: std::sync::OnceLock::new(),
                request_timeout: std::sync::OnceLock::new(),
                audience: std::sync::OnceLock::new(),
                console: std::sync::OnceLock::new(),
                console_limits: console::SignInLimits::new(),
                previous_issuers: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Call `hook` after every successful revocation (see [`RevocationHook`]). Set once;
    /// a second hook is ignored.
    pub fn with_revocation_hook(self, hook: RevocationHook) -> Self {
        let _ = self.inner.revocation_hook.set(Hook(hook));
        self
    }

    /// Let the console's certificate page ask `lookup` (Signet's own OCSP responder) for the
    /// certificate's live status (see [`OcspLookup`]). Set once; a second lookup is ignored.
    /// Without one, the page says that no responder is connected.
    pub fn with_ocsp_lookup(self, lookup: OcspLookup) -> Self {
        let _ = self.inner.ocsp_lookup.set(Lookup(lookup));
        self
    }

    /// Accept this read-only credential (its token's SHA-256, like the admin's): it may
    /// list certificates, read the audit log and use the console, and never issue, renew
    /// or revoke. Set once, before [`app`]; a second value is ignored.
    pub fn with_auditor(self, auditor: AdminCredential) -> Self {
        let _ = self.inner.auditor.set(auditor);
        self
    }

    /// Serve the operator console at `/ui` (or not). Set once, before [`app`]; default on.
    pub fn with_console(self, console: ConsoleConfig) -> Self {
        let _ = self.inner.console.set(console);
        self
    }

    /// Answer 408 `request-timeout` to any request not completed within `timeout` (default
    /// [`REQUEST_TIMEOUT`]). Set once, before [`app`]; a second value is ignored.
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        let _ = self.inner.request_timeout.set(timeout);
        self
    }

    /// Answer 503 `database-unavailable` when one database operation of a request has not
    /// completed within `timeout` (default [`DATABASE_TIMEOUT`]): a database that hangs is
    /// then reported within that bound. Set once, before [`app`]; a second value is ignored.
    pub fn with_database_timeout(self, timeout: Duration) -> Self {
        let _ = self.inner.store.timeout.set(timeout);
        self.inner.authority.set_database_timeout(timeout);
        self
    }

    /// The authority the API issues through (the CA-wide policy for the admin, the profile
    /// limits, and the database bound of [`AppState::with_database_timeout`]), for the server
    /// wiring to issue its own certificates through the same one.
    pub fn authority(&self) -> &Arc<signet_authority::Authority> {
        &self.inner.authority
    }

    /// Let certificates signed by these earlier issuing CAs of the same root (kept by
    /// `signet ca new-issuing`, checked with [`IssuingCa::previous_issuer`]) authenticate
    /// over mTLS until they expire: to renew onto the current issuing CA, or to revoke
    /// themselves. Not once the root has revoked their CA. Set once, before [`app`].
    pub fn with_previous_issuers(self, issuers: Vec<signet_ca::PreviousIssuer>) -> Self {
        let _ = self.inner.previous_issuers.set(issuers);
        self
    }

    /// The earlier issuing CA with key identifier `key_id`, if one is accepted.
    pub(crate) fn previous_issuer(&self, key_id: &[u8]) -> Option<&signet_ca::PreviousIssuer> {
        self.inner
            .previous_issuers
            .get()?
            .iter()
            .find(|p| p.key_id == key_id)
    }

    /// Accept provisioner tokens whose `aud` names this CA under any of the server's own
    /// names (`localhost`, its IP addresses, the names in its certificate) and ports, besides
    /// `ca_url` itself: `https://localhost:8443` and `https://127.0.0.1:8443` are the same CA.
    /// Set once, before [`app`]; a second call is ignored.
    pub fn with_server_names(self, names: &[String], ports: &[u16]) -> Self {
        let audience = audience::Audience::new(&self.inner.config.ca_url)
            .with_names_and_ports(names, ports.iter().copied());
        let _ = self.inner.audience.set(audience);
        self
    }

    /// What provisioner tokens' `aud` may name.
    pub(crate) fn audience(&self) -> &audience::Audience {
        self.inner
            .audience
            .get_or_init(|| audience::Audience::new(&self.inner.config.ca_url))
    }

    /// The request timeout in force.
    pub fn request_timeout(&self) -> Duration {
        self.inner
            .request_timeout
            .get()
            .copied()
            .unwrap_or(REQUEST_TIMEOUT)
    }

    /// The provisioners in force now.
    fn provisioners(&self) -> Arc<Vec<Provisioner>> {
        let guard = self
            .inner
            .provisioners
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone()
    }

    /// Replace the provisioners (a configuration reload), after checking they can serve
    /// together. Requests in flight finish with the set they started with; rate-limit state
    /// carries over for provisioners whose name and limits are unchanged. On error nothing
    /// changes.
    pub fn replace_provisioners(
        &self,
        mut provisioners: Vec<Provisioner>,
    ) -> Result<(), ConfigError> {
        check_provisioners(&provisioners)?;
        let mut slot = self
            .inner
            .provisioners
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for p in &mut provisioners {
            if let Some(old) = slot.iter().find(|o| o.name() == p.name()) {
                p.inherit_limiter(old);
            }
        }
        *slot = Arc::new(provisioners);
        Ok(())
    }

    /// The names of the provisioners in force, with their kinds.
    pub fn provisioner_names(&self) -> Vec<(String, ProvisionerKind)> {
        self.provisioners()
            .iter()
            .map(|p| (p.name().to_string(), p.kind()))
            .collect()
    }

    /// Count a refusal made beside the API (the ACME server's) in `signet_refusals_total`,
    /// under `problem` (e.g. `acme:badNonce`).
    pub fn count_refusal(&self, problem: &str) {
        self.inner.metrics.refused(problem);
    }

    fn revoked(&self, serial: &Serial, reason: RevocationReason) {
        if let Some(Hook(hook)) = self.inner.revocation_hook.get() {
            hook(serial, reason);
        }
    }

    fn limits(&self, profile: Profile) -> ProfileLimits {
        self.inner.authority.limits(profile)
    }
}

/// The OpenAPI document of the API.
#[derive(OpenApi)]
#[openapi(
    info(title = "Signet", description = "Signet: a private certificate authority for mutual TLS. Errors are RFC 7807 application/problem+json with a stable `type`."),
    components(schemas(Problem)),
    modifiers(&SecurityAddon),
    tags((name = "certificates", description = "Issue, renew, revoke and look up certificates"), (name = "ca", description = "CA certificates and profiles"), (name = "audit", description = "The audit log"), (name = "system", description = "Health and metrics"))
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(certificates::routes())
        .merge(audit::routes())
        .merge(system::routes())
}

/// The OpenAPI 3.1 document, as served at `/openapi.json` and committed as `openapi/signet.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = routes().split_for_parts();
    api
}

/// The whole API as an axum router.
pub fn app(state: AppState) -> Router {
    app_with(state, Router::new())
}

/// The API with `extra` routes served beside it (the binary's: the ACME server's), under
/// the same outer layers: `Strict-Transport-Security` and `X-Content-Type-Options` on every
/// response, and latency by route and status in `signet_http_request_duration_seconds`.
/// The request timeout and body limit below them are the API's own, answered as its
/// problem documents; `extra` applies its own, answered in its own format (an ACME
/// problem document), so a client of either gets errors it can read.
pub fn app_with(state: AppState, extra: Router) -> Router {
    let (mut router, api) = routes().split_for_parts();
    if state.inner.console.get().is_none_or(|c| c.enabled) {
        router = router.merge(console::router());
    }
    router
        // Serves the document at /openapi.json and names that URL in the page's
        // swagger-initializer.js; without a URL the page says "No API definition provided."
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .layer(middleware::from_fn_with_state(state.clone(), deadline))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state.clone())
        .merge(extra)
        .layer(middleware::from_fn_with_state(state, observe))
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
}

/// The request timeout: a request not answered within it (in practice, one whose body
/// stalls) is dropped and answered 408 `request-timeout` as a problem document, counted in
/// `signet_refusals_total`. It is not audited: the caller is not authenticated yet, and a
/// flood of stalled requests must not turn into a flood of database writes. Over HTTP/1 the
/// answer says `Connection: close` (the rest of the body would otherwise be read as the next
/// request); HTTP/2 resets the stream instead.
async fn deadline(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let limit = state.request_timeout();
    let http1 = req.version() < axum::http::Version::HTTP_2;
    // Both are reference-counted clones; the path is cut for the log only if it times out.
    let method = req.method().clone();
    let uri = req.uri().clone();
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            let err = ApiError::RequestTimeout(limit);
            state.inner.metrics.refused(err.slug());
            let path = uri.path().chars().take(128).collect::<String>();
            tracing::info!(%method, path, problem = err.slug(), "request timed out");
            let mut resp = axum::response::IntoResponse::into_response(err);
            if http1 {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            resp
        }
    }
}

/// Latency by route and status.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let resp = next.run(req).await;
    state
        .inner
        .metrics
        .latency
        .get_or_create(&metrics::RouteLabels {
            route,
            status: resp.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}

/// Entry points for the fuzz targets in `fuzz/`. Not part of the API; may change at any time.
#[doc(hidden)]
pub mod fuzzing {
    use axum::http::{HeaderMap, HeaderValue, header};

    /// Authenticate an `Authorization` header value as a request would, up to (not including)
    /// the rate limit and the single-use `jti` burn, which need the store. On success the
    /// caller's audit name; on failure the problem slug.
    pub fn verify_authorization(
        value: &[u8],
        admin: &crate::AdminCredential,
        provisioners: &[crate::Provisioner],
        audience: &str,
    ) -> Result<String, &'static str> {
        crate::jwt_crypto::install();
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_bytes(value).map_err(|_| "unparseable-header")?;
        headers.insert(header::AUTHORIZATION, value);
        let token = crate::auth::bearer(&headers)
            .map_err(|e| e.slug())?
            .ok_or("unauthorized")?;
        let audience = crate::audience::Audience::new(audience);
        crate::auth::verify(token, admin, None, provisioners, &audience)
            .map(|(identity, _)| identity.audit_name())
            .map_err(|e| e.slug())
    }
}
