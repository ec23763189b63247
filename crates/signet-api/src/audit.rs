//! `GET /v1/audit`: the audit log (admin), newest first, keyset-paginated.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use signet_store::{AuditAction, AuditFilter, AuditOutcome, AuditRecord};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::certificates::{parse_serial, rfc3339};
use crate::{ApiError, AppState};

pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One audit record.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditView {
    /// Position in the log (only grows).
    id: i64,
    /// When, RFC 3339.
    at: String,
    /// Who: `admin`, `token:<provisioner>:<subject>`, `k8s:<provisioner>:<ns>/<sa>`,
    /// `mtls:<serial>`, `local:<user>`…
    actor: String,
    /// What: `issue`, `renew`, `revoke`, `issue-server-cert`, `publish-root-crl`…
    action: String,
    /// The certificate concerned, if any.
    serial: Option<String>,
    /// `ok` or `refused`.
    outcome: String,
    /// Details: profile and names, or the problem type and why.
    detail: String,
}

/// A page of the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct AuditList {
    items: Vec<AuditView>,
    /// Pass as `cursor` to get the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

/// Audit log filters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// Only records about this certificate (serial, hex).
    serial: Option<String>,
    /// Only records by this actor, exactly.
    actor: Option<String>,
    /// Only this action, e.g. `revoke`.
    action: Option<String>,
    /// `ok` or `refused`.
    outcome: Option<String>,
    /// Page size, 1-500 (default 100).
    limit: Option<u32>,
    /// Cursor from the previous page.
    cursor: Option<String>,
}

fn view(r: AuditRecord) -> AuditView {
    AuditView {
        id: r.id,
        at: rfc3339(r.at),
        actor: r.actor,
        action: r.action.to_string(),
        serial: r.serial,
        outcome: r.outcome.to_string(),
        detail: r.detail,
    }
}

/// Read the audit log (admin): every issuance, renewal, revocation and refusal, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery), security(("bearer" = [])),
    responses((status = 200, body = AuditList), (status = "4XX", body = crate::Problem, content_type = "application/problem+json")))]
async fn list(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditList>, ApiError> {
    let identity = st.authenticate(&headers).await?;
    if !identity.may_read() {
        return Err(ApiError::Forbidden(
            "reading the audit log needs the admin or auditor credential".into(),
        ));
    }
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if let Some(outcome) = q.outcome.as_deref()
        && outcome != "ok"
        && outcome != "refused"
    {
        return Err(ApiError::BadRequest(format!(
            "outcome {:?}: expected ok or refused",
            outcome.chars().take(64).collect::<String>()
        )));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(c) => match c.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => return Err(ApiError::BadRequest("malformed cursor".into())),
        },
    };
    let filter = AuditFilter {
        serial: q.serial.as_deref().map(parse_serial).transpose()?,
        actor: q.actor,
        action: q.action.as_deref().map(AuditAction::parse),
        outcome: q.outcome.as_deref().map(AuditOutcome::parse),
        before,
        limit: q.limit.unwrap_or(100),
        ..AuditFilter::default()
    };
    let page = st.inner.store.list_audit_page(&filter).await?;
    Ok(Json(AuditList {
        items: page.items.into_iter().map(view).collect(),
        next_cursor: page.next_before.map(|id| id.to_string()),
    }))
}
