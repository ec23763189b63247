//! Unauthenticated endpoints: CA certificates, profiles, health, readiness and metrics.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use signet_ca::Profile;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{ApiError, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(root))
        .routes(routes!(chain))
        .routes(routes!(profiles))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

fn pem_response(pem: String) -> Response {
    let mut resp = pem.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-pem-file"),
    );
    resp
}

/// The root CA certificate (PEM). Clients pin it by its SHA-256 fingerprint.
#[utoipa::path(get, path = "/v1/ca/root", tag = "ca", responses((status = 200, description = "Root certificate", content_type = "application/x-pem-file", body = String)))]
async fn root(State(st): State<AppState>) -> Response {
    pem_response(signet_ca::pem::certificate(st.inner.ca.root_der()))
}

/// The issuing chain (PEM): the issuing CA, any intermediates, then the root.
#[utoipa::path(get, path = "/v1/ca/chain", tag = "ca", responses((status = 200, description = "CA chain", content_type = "application/x-pem-file", body = String)))]
async fn chain(State(st): State<AppState>) -> Response {
    let mut pem: String = st.inner.ca.chain_pem().concat();
    pem.push_str(&signet_ca::pem::certificate(st.inner.ca.root_der()));
    pem_response(pem)
}

/// A profile and its lifetimes.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProfileView {
    /// `server`, `client` or `peer`.
    name: String,
    /// Extended key usages the certificates carry.
    extended_key_usage: Vec<&'static str>,
    /// Lifetime when the request names none.
    default_ttl: String,
    /// Longest lifetime issued.
    max_ttl: String,
}

/// The issuance profiles.
#[utoipa::path(get, path = "/v1/profiles", tag = "ca", responses((status = 200, body = Vec<ProfileView>)))]
async fn profiles(State(st): State<AppState>) -> Json<Vec<ProfileView>> {
    Json(
        Profile::ALL
            .iter()
            .map(|p| {
                let l = st.limits(*p);
                let mut eku = vec![];
                if p.server_auth() {
                    eku.push("serverAuth");
                }
                if p.client_auth() {
                    eku.push("clientAuth");
                }
                ProfileView {
                    name: p.to_string(),
                    extended_key_usage: eku,
                    default_ttl: l.default_ttl.to_string(),
                    max_ttl: l.max_ttl.to_string(),
                }
            })
            .collect(),
    )
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "system", responses((status = 200, body = String)))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the database answers and accepts writes (not a read-only standby).
#[utoipa::path(get, path = "/readyz", tag = "system", responses((status = 200, body = String), (status = 503, body = crate::Problem)))]
async fn readyz(State(st): State<AppState>) -> Result<&'static str, ApiError> {
    st.inner.store.ping().await?;
    Ok("ready\n")
}

/// Prometheus metrics.
#[utoipa::path(get, path = "/metrics", tag = "system", responses((status = 200, content_type = "text/plain", body = String)))]
async fn metrics(State(st): State<AppState>) -> Response {
    let mut resp = (StatusCode::OK, st.inner.metrics.encode()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
