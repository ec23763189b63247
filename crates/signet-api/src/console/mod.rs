//! The operator console at `/ui`: server-rendered pages over the same store and revocation
//! path as the REST API (the overview, certificate search and detail with revocation, the
//! audit log, the provisioners), for whoever holds the admin token or the read-only auditor
//! token.
//!
//! Security, in one place here:
//! - **Sign-in** exchanges the token (typed into an `<input type="password">`) for a
//!   session: a random 256-bit id in the cookie `__Host-signet_session` (`Secure`,
//!   `HttpOnly`, `SameSite=Strict`, `Path=/`), of which the store keeps only the SHA-256
//!   (`console_sessions`, shared by every replica on one database), ending after
//!   [`IDLE_TIMEOUT`] unused or [`ABSOLUTE_TIMEOUT`] in any case; signing out deletes it.
//!   Attempts are rate-limited per client address and overall, and every attempt that is
//!   judged is audited (`console-sign-in`, ok or refused).
//! - **CSRF**: every state-changing request is a POST that must come from this origin
//!   (`Origin`, and `Sec-Fetch-Site` when the browser sends it) and, once signed in, carry
//!   the session's synchronizer token.
//! - **Headers**: a strict Content-Security-Policy (nothing but this origin's stylesheet
//!   and `data:` images; no script at all; `frame-ancestors 'none'`, `form-action 'self'`),
//!   `X-Frame-Options: DENY`, `Referrer-Policy: same-origin` (with `no-referrer` browsers send `Origin: null` on form posts, which the origin check must be able to tell from a cross-site one), `Cache-Control: no-store`.
//! - **Roles**: the auditor sees every page but is offered no revoke form, and a revoke it
//!   posts anyway is refused (403) and audited.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use signet_store::{AuditAction, AuditEntry, AuditOutcome};

use crate::{ApiError, AppState};

mod chart;
mod html;
pub(crate) mod ocsp;
mod pages;

/// The session cookie. `__Host-` makes browsers keep it only if it is `Secure`, has
/// `Path=/` and no `Domain`: no other host, nor plain HTTP, can set or read it.
pub(crate) const COOKIE: &str = "__Host-signet_session";
/// A session unused for this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// A session ends this long after sign-in, used or not.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// The Content-Security-Policy of every console response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLESHEET: &str = include_str!("static/console.css");

/// Who a console session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The admin token: may revoke.
    Admin,
    /// The auditor token: reads only.
    Auditor,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Auditor => "auditor",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }

    /// How this session's actions are recorded in the audit log.
    pub(crate) fn actor(self) -> &'static str {
        match self {
            Role::Admin => "console:admin",
            Role::Auditor => "console:auditor",
        }
    }
}

/// A signed-in session, as one request found it.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) role: Role,
    pub(crate) csrf: String,
    id_hash: String,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The sign-in rate limits: per client address, and for everyone together.
#[derive(Debug)]
pub(crate) struct SignInLimits {
    per_client: DefaultKeyedRateLimiter<IpAddr>,
    global: DefaultDirectRateLimiter,
}

impl SignInLimits {
    /// 5 attempts a minute per address (a burst of 5), 60 a minute overall (burst 20).
    pub(crate) fn new() -> SignInLimits {
        let per_minute = |n: u32, burst: u32| {
            let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
            let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
            Quota::per_minute(n).allow_burst(burst)
        };
        SignInLimits {
            per_client: RateLimiter::keyed(per_minute(5, 5)),
            global: RateLimiter::direct(per_minute(60, 20)),
        }
    }

    /// Whether `client` may try now; if not, the seconds to wait.
    fn check(&self, client: IpAddr) -> Result<(), u64> {
        let clock = governor::clock::DefaultClock::default();
        let now = governor::clock::Clock::now(&clock);
        if let Err(not_until) = self.per_client.check_key(&client) {
            return Err(not_until.wait_time_from(now).as_secs().max(1));
        }
        if let Err(not_until) = self.global.check() {
            return Err(not_until.wait_time_from(now).as_secs().max(1));
        }
        if self.per_client.len() > 10_000 {
            self.per_client.retain_recent();
        }
        Ok(())
    }
}

/// The console's routes, under `/ui`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/", get(pages::overview))
        .route("/ui/sign-in", get(pages::sign_in_form).post(sign_in))
        .route("/ui/sign-out", post(sign_out))
        .route("/ui/certificates", get(pages::certificates))
        .route("/ui/certificates/{serial}", get(pages::certificate))
        .route("/ui/certificates/{serial}/pem", get(pages::certificate_pem))
        .route("/ui/certificates/{serial}/revoke", post(pages::revoke))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/provisioners", get(pages::provisioners))
        .route("/ui/static/console.css", get(stylesheet))
        .route("/ui/{*rest}", get(pages::not_found))
        .layer(middleware::from_fn(security_headers))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    resp
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
        .into_response()
}

/// A random 256-bit value, base64url.
fn random_token() -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| ApiError::Internal("the system random number generator failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn hash_id(id: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()))
}

/// The session cookie's value, if the request carries one.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty() && v.len() <= 64)
}

impl AppState {
    /// The signed-in session of this request, if any (and moves its idle clock on).
    pub(crate) async fn console_session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Session>, ApiError> {
        let Some(id) = session_cookie(headers) else {
            return Ok(None);
        };
        let id_hash = hash_id(id);
        let store = &self.inner.store;
        let Some(found) = store
            .bounded(store.raw().touch_console_session(&id_hash, IDLE_TIMEOUT))
            .await?
        else {
            return Ok(None);
        };
        Ok(Role::parse(&found.role).map(|role| Session {
            role,
            csrf: found.csrf,
            id_hash,
        }))
    }

    /// Append a console audit row; a failure is an error (an action that cannot be audited
    /// is not done), except where the caller says otherwise.
    pub(crate) async fn console_audit(
        &self,
        actor: &str,
        action: AuditAction,
        serial: Option<signet_ca::Serial>,
        outcome: AuditOutcome,
        detail: String,
    ) -> Result<(), ApiError> {
        let entry = AuditEntry {
            actor: actor.into(),
            action,
            serial,
            outcome,
            detail,
        };
        Ok(self.inner.store.append_audit(&entry).await?)
    }
}

/// The host this request was sent to (`Host`, or the HTTP/2 `:authority`).
fn request_host<'a>(headers: &'a HeaderMap, uri: &'a axum::http::Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Refuse a state-changing request that a page of another site could have sent: its
/// `Origin` must be this server's own, and `Sec-Fetch-Site`, when sent, `same-origin`.
/// (Browsers send `Origin` on every form POST; a request with neither header is not a
/// browser's cross-site request, and still needs the session's CSRF token.)
pub(crate) fn same_origin(headers: &HeaderMap, uri: &axum::http::Uri) -> Result<(), String> {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("invalid");
        if site != "same-origin" {
            return Err(format!("Sec-Fetch-Site is {site:?}, not same-origin"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("invalid");
        let host = request_host(headers, uri).unwrap_or("");
        let own = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        if host.is_empty() || own != Some(host) {
            return Err(format!(
                "Origin {:?} is not this server's",
                origin.chars().take(128).collect::<String>()
            ));
        }
    }
    Ok(())
}

/// Whether the form's token is the session's (compared in constant time).
pub(crate) fn csrf_matches(session: &Session, presented: &str) -> bool {
    let a = ring::digest::digest(&ring::digest::SHA256, session.csrf.as_bytes());
    let b = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
    a.as_ref()
        .iter()
        .zip(b.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    token: String,
}

fn client_ip(connect: Option<&axum::Extension<ConnectInfo<SocketAddr>>>) -> IpAddr {
    connect.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip())
}

async fn sign_in(
    State(st): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    form: Result<axum::Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let client = client_ip(connect.as_ref());
    if let Err(why) = same_origin(&headers, &uri) {
        st.inner.metrics.refused("cross-site-request");
        tracing::info!(%client, why, "console sign-in refused: cross-site");
        return pages::error_page(
            StatusCode::FORBIDDEN,
            "Cross-site request refused",
            &why,
            None,
        );
    }
    if let Err(wait) = st.inner.console_limits.check(client) {
        st.inner.metrics.refused("rate-limited");
        tracing::info!(%client, "console sign-in rate-limited");
        let mut resp = pages::sign_in_page(
            StatusCode::TOO_MANY_REQUESTS,
            Some(&format!(
                "Too many sign-in attempts. Try again in {wait} s."
            )),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let token = match form {
        Ok(axum::Form(f)) => zeroize::Zeroizing::new(f.token),
        Err(_) => zeroize::Zeroizing::new(String::new()),
    };
    let token = token.trim();
    let role = if token.is_empty() || token.contains('.') {
        None
    } else if st.inner.admin.matches(token) {
        Some(Role::Admin)
    } else if st.inner.auditor.get().is_some_and(|a| a.matches(token)) {
        Some(Role::Auditor)
    } else {
        None
    };
    let Some(role) = role else {
        st.inner.metrics.refused("unauthorized");
        let audited = st
            .console_audit(
                "console:anonymous",
                AuditAction::ConsoleSignIn,
                None,
                AuditOutcome::Refused,
                format!("unauthorized: not the admin or auditor token (client {client})"),
            )
            .await;
        if let Err(e) = audited {
            return pages::api_error_page(e, None);
        }
        return pages::sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That is neither the admin token nor the auditor token."),
        );
    };
    let result = async {
        let id = random_token()?;
        let csrf = random_token()?;
        let expires = time::OffsetDateTime::now_utc() + ABSOLUTE_TIMEOUT;
        let id_hash = hash_id(&id);
        let role_name = role.name();
        let store = &st.inner.store;
        store
            .bounded(
                store
                    .raw()
                    .create_console_session(&id_hash, role_name, &csrf, expires),
            )
            .await?;
        st.console_audit(
            role.actor(),
            AuditAction::ConsoleSignIn,
            None,
            AuditOutcome::Ok,
            format!("signed in (client {client})"),
        )
        .await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match result {
        Ok(id) => {
            tracing::info!(role = role.name(), %client, "console sign-in");
            let cookie = format!(
                "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
                ABSOLUTE_TIMEOUT.as_secs()
            );
            let mut resp = pages::see_other("/ui");
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().insert(header::SET_COOKIE, v);
            }
            resp
        }
        Err(e) => pages::api_error_page(e, None),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    form: Result<axum::Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let session = match st.console_session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => return pages::see_other("/ui/sign-in"),
        Err(e) => return pages::api_error_page(e, None),
    };
    let csrf = form.map(|axum::Form(f)| f.csrf).unwrap_or_default();
    if let Err(why) = same_origin(&headers, &uri).and_then(|()| {
        if csrf_matches(&session, &csrf) {
            Ok(())
        } else {
            Err("the form's CSRF token is not this session's".to_string())
        }
    }) {
        st.inner.metrics.refused("cross-site-request");
        return pages::error_page(StatusCode::FORBIDDEN, "Request refused", &why, None);
    }
    let store = &st.inner.store;
    let deleted = store
        .bounded(store.raw().delete_console_session(&session.id_hash))
        .await;
    if let Err(e) = deleted {
        return pages::api_error_page(e.into(), None);
    }
    if let Err(e) = st
        .console_audit(
            session.role.actor(),
            AuditAction::ConsoleSignOut,
            None,
            AuditOutcome::Ok,
            "signed out".into(),
        )
        .await
    {
        tracing::error!(error = %e, "could not audit a console sign-out");
    }
    let mut resp = pages::see_other("/ui/sign-in");
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "__Host-signet_session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

/// The console's settings, from the binary's `[console]`.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// Whether `/ui` is served at all.
    pub enabled: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { enabled: true }
    }
}
