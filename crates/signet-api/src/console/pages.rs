//! The console's pages: each handler checks the session, asks the store (or the revocation
//! path the REST API uses), and renders HTML through [`super::html`].

use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use signet_ca::{RevocationReason, Serial, SubjectName};
use signet_store::{
    AuditAction, AuditFilter, AuditOutcome, AuditRecord, CertStatus, CertificateFilter,
    CertificateOrder, CertificateRecord,
};
use time::OffsetDateTime;

use super::html::{Section, Viewer, esc, options, page, relative, url_enc, when};
use super::{Role, Session, chart, csrf_matches, same_origin};
use crate::certificates::parse_serial;
use crate::{ApiError, AppState};

/// Rows per page of the certificate and audit listings.
const PAGE_SIZE: u32 = 50;
/// Hours shown in the overview's charts.
const CHART_HOURS: u32 = 72;

pub(crate) fn see_other(location: &'static str) -> Response {
    see_other_to(location.to_string())
}

fn see_other_to(location: String) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        Html(body),
    )
        .into_response()
}

/// An error as a page: `title`, and `detail` said plainly.
pub(crate) fn error_page(
    status: StatusCode,
    title: &str,
    detail: &str,
    session: Option<&Session>,
) -> Response {
    let viewer = session.map(|s| Viewer {
        role: s.role,
        csrf: &s.csrf,
    });
    let body = format!(
        "<p class=\"error\" role=\"alert\">{}</p><p><a href=\"/ui\">Back to the overview</a></p>",
        esc(detail)
    );
    html(status, page(title, Section::None, viewer.as_ref(), &body))
}

/// An [`ApiError`] as a page, with the status and the words the REST API would use (the
/// cause of a server error stays in the log).
pub(crate) fn api_error_page(err: ApiError, session: Option<&Session>) -> Response {
    let (status, _, title) = err.classify();
    let detail = err.client_detail(status);
    error_page(status, title, &detail, session)
}

pub(crate) fn sign_in_page(status: StatusCode, message: Option<&str>) -> Response {
    let mut body = String::new();
    if let Some(m) = message {
        let _ = write!(body, "<p class=\"error\" role=\"alert\">{}</p>", esc(m));
    }
    body.push_str(
        "<form class=\"signin\" method=\"post\" action=\"/ui/sign-in\">\
         <p><label for=\"token\">Admin or auditor token</label>\
         <input type=\"password\" id=\"token\" name=\"token\" autocomplete=\"current-password\" \
         required autofocus></p>\
         <p class=\"hint\">The admin token is in <code>admin.token</code> in the data directory; \
         the read-only auditor token in the file <code>[server] auditor_token_file</code> names.</p>\
         <p><button type=\"submit\">Sign in</button></p></form>",
    );
    html(status, page("Sign in", Section::None, None, &body))
}

pub(crate) async fn sign_in_form(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if let Ok(Some(_)) = st.console_session(&headers).await {
        return see_other("/ui");
    }
    sign_in_page(StatusCode::OK, None)
}

pub(crate) async fn not_found(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let session = st.console_session(&headers).await.ok().flatten();
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no such page in the console.",
        session.as_ref(),
    )
}

/// The session of a page request, or the response that sends the browser to sign in.
async fn signed_in(st: &AppState, headers: &HeaderMap) -> Result<Session, Response> {
    match st.console_session(headers).await {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(see_other("/ui/sign-in")),
        Err(e) => Err(api_error_page(e, None)),
    }
}

fn viewer(s: &Session) -> Viewer<'_> {
    Viewer {
        role: s.role,
        csrf: &s.csrf,
    }
}

fn status_of(rec: &CertificateRecord, now: OffsetDateTime) -> (&'static str, &'static str) {
    match rec.status(now) {
        CertStatus::Good => ("good", "Valid"),
        CertStatus::Revoked => ("revoked", "Revoked"),
        CertStatus::Expired => ("expired", "Expired"),
    }
}

// ---------------------------------------------------------------------------------------
// Overview

pub(crate) async fn overview(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match overview_body(&st).await {
        Ok(body) => html(
            StatusCode::OK,
            page(
                "Overview",
                Section::Overview,
                Some(&viewer(&session)),
                &body,
            ),
        ),
        Err(e) => api_error_page(e, Some(&session)),
    }
}

/// A deadline on the overview: what, when, and how close is too close.
struct Deadline {
    what: &'static str,
    at: Option<OffsetDateTime>,
    warn_within: time::Duration,
}

async fn overview_body(st: &AppState) -> Result<String, ApiError> {
    let now = OffsetDateTime::now_utc();
    let store = &st.inner.store;
    let counts = store.bounded(store.raw().certificate_counts(now)).await?;
    let activity = store
        .bounded(
            store
                .raw()
                .hourly_activity(now - time::Duration::hours(i64::from(CHART_HOURS))),
        )
        .await?;
    let ca = &st.inner.ca;
    let issuing_key_id = hex::encode(ca.key_id());
    let root_key_id = signet_ca::CertificateInfo::from_der(ca.cert_der())
        .ok()
        .and_then(|i| i.authority_key_id)
        .map(hex::encode);
    let issuing_crl = store
        .bounded(store.raw().latest_crl_info(&issuing_key_id))
        .await?;
    let root_crl = match &root_key_id {
        Some(id) => store.bounded(store.raw().latest_crl_info(id)).await?,
        None => None,
    };
    let signer = store
        .bounded(store.raw().newest_ocsp_signer_not_after())
        .await?;
    let root_not_after = signet_ca::CertificateInfo::from_der(ca.root_der())
        .ok()
        .map(|i| i.not_after);

    let mut body = String::new();
    body.push_str("<section aria-labelledby=\"counts\"><h2 id=\"counts\">Certificates</h2><ul class=\"cards\">");
    for (label, n, href, class) in [
        (
            "Valid now",
            counts.valid,
            "/ui/certificates?status=good",
            "good",
        ),
        (
            "Expiring within 24 h",
            counts.expiring_24h,
            "/ui/certificates?status=good&expiring=24h&sort=expiry",
            if counts.expiring_24h > 0 {
                "warn"
            } else {
                "good"
            },
        ),
        (
            "Expiring within 7 days",
            counts.expiring_7d,
            "/ui/certificates?status=good&expiring=7d&sort=expiry",
            "neutral",
        ),
        (
            "Revoked (not yet expired)",
            counts.revoked,
            "/ui/certificates?status=revoked",
            "revoked",
        ),
        (
            "Expired (kept until the retention sweep)",
            counts.expired,
            "/ui/certificates?status=expired",
            "neutral",
        ),
    ] {
        let _ = write!(
            body,
            "<li class=\"card {class}\"><a href=\"{href}\"><span class=\"count\">{n}</span> \
             <span class=\"what\">{label}</span></a></li>",
            href = esc(href)
        );
    }
    body.push_str("</ul></section>");

    body.push_str("<section aria-labelledby=\"activity\"><h2 id=\"activity\">Activity, last 72 hours</h2><div class=\"charts\">");
    body.push_str(&chart::bars(
        "Certificates issued per hour",
        "bar-issued",
        &chart::per_hour(&activity, now, CHART_HOURS, |a| a.issued),
    ));
    body.push_str(&chart::bars(
        "Certificates revoked per hour",
        "bar-revoked",
        &chart::per_hour(&activity, now, CHART_HOURS, |a| a.revoked),
    ));
    body.push_str("</div></section>");

    let deadlines = [
        Deadline {
            what: "Issuing CA certificate expires (notAfter)",
            at: Some(ca.not_after()),
            warn_within: time::Duration::days(90),
        },
        Deadline {
            what: "Root CA certificate expires (notAfter)",
            at: root_not_after,
            warn_within: time::Duration::days(180),
        },
        Deadline {
            what: "Issuing CA's CRL: nextUpdate",
            at: issuing_crl.as_ref().map(|c| c.next_update),
            warn_within: time::Duration::hours(1),
        },
        Deadline {
            what: "Root CRL: nextUpdate (re-sign offline with signet ca root-crl)",
            at: root_crl.as_ref().map(|c| c.next_update),
            warn_within: time::Duration::days(14),
        },
        Deadline {
            what: "OCSP signer certificate expires (notAfter)",
            at: signer,
            warn_within: time::Duration::hours(2),
        },
    ];
    body.push_str(
        "<section aria-labelledby=\"deadlines\"><h2 id=\"deadlines\">CA and CRL deadlines</h2>\
         <div class=\"scroll\"><table><thead><tr><th scope=\"col\">Deadline</th><th scope=\"col\">When</th>\
         <th scope=\"col\">Status</th></tr></thead><tbody>",
    );
    for d in deadlines {
        let (when_text, status, class) = match d.at {
            None => ("none recorded".to_string(), "Missing".to_string(), "bad"),
            Some(at) if at <= now => (when(at), format!("Passed {}", relative(at, now)), "bad"),
            Some(at) if at - now <= d.warn_within => {
                (when(at), format!("Warning: {}", relative(at, now)), "warn")
            }
            Some(at) => (when(at), format!("OK, {}", relative(at, now)), "ok"),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td><span class=\"pill {class}\">{}</span></td></tr>",
            esc(d.what),
            esc(&when_text),
            esc(&status)
        );
    }
    body.push_str("</tbody></table></div></section>");
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// Certificates

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CertQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    profile: String,
    #[serde(default)]
    provisioner: String,
    #[serde(default)]
    requester: String,
    #[serde(default)]
    expiring: String,
    #[serde(default)]
    expires_from: String,
    #[serde(default)]
    expires_until: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    cursor: String,
}

impl CertQuery {
    /// This query as a URL query string (without the cursor), for paging links.
    fn link(&self) -> String {
        query_string(&[
            ("q", &self.q),
            ("status", &self.status),
            ("profile", &self.profile),
            ("provisioner", &self.provisioner),
            ("requester", &self.requester),
            ("expiring", &self.expiring),
            ("expires_from", &self.expires_from),
            ("expires_until", &self.expires_until),
            ("sort", &self.sort),
        ])
    }

    /// The order asked for, or when none is: by expiry if the search is about expiry
    /// (soonest first; for expired certificates, the most recently expired first), else
    /// newest first. An expiry filter in newest-first order has no index that keeps it
    /// (BENCHMARKS.md, "Listing indexes"); by expiry it is one range of the notAfter index.
    fn sort(&self) -> &str {
        match self.sort.as_str() {
            "" if self.status == "expired" => "expiry-desc",
            "" if !self.expiring.is_empty()
                || !self.expires_from.is_empty()
                || !self.expires_until.is_empty() =>
            {
                "expiry"
            }
            "" => "newest",
            sort => sort,
        }
    }

    fn is_search(&self) -> bool {
        !self.link().is_empty() || !self.cursor.is_empty()
    }
}

/// A `YYYY-MM-DD` date (an `<input type="date">`), as the start of that day (UTC), or
/// its end (`end_of_day`).
fn parse_date(s: &str, end_of_day: bool) -> Result<OffsetDateTime, ApiError> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = time::Date::parse(s.trim(), &format).map_err(|_| {
        ApiError::BadRequest(format!(
            "date {:?}: expected YYYY-MM-DD",
            s.chars().take(32).collect::<String>()
        ))
    })?;
    let t = if end_of_day {
        date.with_hms(23, 59, 59)
    } else {
        date.with_hms(0, 0, 0)
    }
    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(t.assume_utc())
}

/// A `YYYY-MM-DDTHH:MM` time (an `<input type="datetime-local">`), read as UTC.
fn parse_datetime(s: &str) -> Result<OffsetDateTime, ApiError> {
    let s = s.trim();
    let bad = || {
        ApiError::BadRequest(format!(
            "time {:?}: expected YYYY-MM-DDTHH:MM (UTC)",
            s.chars().take(32).collect::<String>()
        ))
    };
    let long = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let short = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    time::PrimitiveDateTime::parse(s, &long)
        .or_else(|_| time::PrimitiveDateTime::parse(s, &short))
        .map(time::PrimitiveDateTime::assume_utc)
        .map_err(|_| bad())
}

/// A serial typed into the search box: hex (colons allowed), at least 8 digits, so that
/// a short DNS label is read as a name.
fn as_serial(q: &str) -> Option<Serial> {
    let digits = q.chars().filter(|c| *c != ':').count();
    if digits < 8 || !q.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
        return None;
    }
    parse_serial(q).ok()
}

fn certificate_filter(q: &CertQuery) -> Result<CertificateFilter, ApiError> {
    let mut filter = CertificateFilter {
        limit: PAGE_SIZE,
        ..CertificateFilter::default()
    };
    filter.status = match q.status.as_str() {
        "" => None,
        "good" => Some(CertStatus::Good),
        "revoked" => Some(CertStatus::Revoked),
        "expired" => Some(CertStatus::Expired),
        other => {
            return Err(ApiError::BadRequest(format!(
                "status {:?}: expected good, revoked or expired",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    if !q.profile.is_empty() {
        filter.profile = Some(match q.profile.as_str() {
            p @ ("ocsp-signer" | "ca") => p.to_string(),
            p => p.parse::<signet_ca::Profile>()?.to_string(),
        });
    }
    if !q.provisioner.is_empty() {
        filter.provisioner = Some(q.provisioner.trim().to_string());
    }
    if !q.requester.is_empty() {
        filter.requester = Some(q.requester.trim().to_string());
    }
    filter.expiring_within = match q.expiring.as_str() {
        "" => None,
        "24h" => Some(std::time::Duration::from_secs(86_400)),
        "7d" => Some(std::time::Duration::from_secs(7 * 86_400)),
        "30d" => Some(std::time::Duration::from_secs(30 * 86_400)),
        other => {
            return Err(ApiError::BadRequest(format!(
                "expiring {:?}: expected 24h, 7d or 30d",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    if !q.expires_from.is_empty() {
        filter.not_after_from = Some(parse_date(&q.expires_from, false)?);
    }
    if !q.expires_until.is_empty() {
        filter.not_after_until = Some(parse_date(&q.expires_until, true)?);
    }
    filter.order = match q.sort() {
        "newest" => CertificateOrder::Newest,
        "expiry" => CertificateOrder::ExpiringFirst,
        "expiry-desc" => CertificateOrder::ExpiringLast,
        other => {
            return Err(ApiError::BadRequest(format!(
                "sort {:?}: expected newest, expiry or expiry-desc",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    let name = q.q.trim();
    if !name.is_empty() {
        filter.name = Some(SubjectName::parse_loose(name)?.to_tagged());
    }
    if !q.cursor.is_empty() {
        filter.cursor = Some(q.cursor.clone());
    }
    Ok(filter)
}

pub(crate) async fn certificates(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<CertQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return api_error_page(ApiError::BadRequest(e.body_text()), Some(&session)),
    };
    let result = certificates_body(&st, &session, &q).await;
    let body = match result {
        Ok(body) => body,
        Err(e) => {
            let (status, _, _) = e.classify();
            let form = search_form(&st, &q);
            let msg = format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                esc(&e.client_detail(status))
            );
            return html(
                status,
                page(
                    "Certificates",
                    Section::Certificates,
                    Some(&viewer(&session)),
                    &(form + &msg),
                ),
            );
        }
    };
    html(
        StatusCode::OK,
        page(
            "Certificates",
            Section::Certificates,
            Some(&viewer(&session)),
            &body,
        ),
    )
}

fn search_form(st: &AppState, q: &CertQuery) -> String {
    let mut provisioners: Vec<(String, String)> = vec![(String::new(), "any".into())];
    provisioners.extend(
        st.provisioner_names()
            .into_iter()
            .map(|(n, _)| (n.clone(), n)),
    );
    let provisioners: Vec<(&str, &str)> = provisioners
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    format!(
        "<form class=\"search\" method=\"get\" action=\"/ui/certificates\" role=\"search\">\
         <p class=\"wide\"><label for=\"q\">Name or serial</label>\
         <input type=\"search\" id=\"q\" name=\"q\" value=\"{q}\" \
         placeholder=\"api.internal, 10.0.0.1, spiffe://…, ops@example.com or a serial\" \
         autocomplete=\"off\"></p>\
         <p><label for=\"status\">Status</label><select id=\"status\" name=\"status\">{status}</select></p>\
         <p><label for=\"profile\">Profile</label><select id=\"profile\" name=\"profile\">{profile}</select></p>\
         <p><label for=\"provisioner\">Provisioner</label><select id=\"provisioner\" name=\"provisioner\">{prov}</select></p>\
         <p><label for=\"requester\">Requester</label><input type=\"text\" id=\"requester\" name=\"requester\" value=\"{requester}\" placeholder=\"token:default:web-1\"></p>\
         <p><label for=\"expiring\">Expiring within</label><select id=\"expiring\" name=\"expiring\">{expiring}</select></p>\
         <p><label for=\"expires_from\">Expires from</label><input type=\"date\" id=\"expires_from\" name=\"expires_from\" value=\"{from}\"></p>\
         <p><label for=\"expires_until\">Expires until</label><input type=\"date\" id=\"expires_until\" name=\"expires_until\" value=\"{until}\"></p>\
         <p><label for=\"sort\">Sort by</label><select id=\"sort\" name=\"sort\">{sort}</select></p>\
         <p class=\"actions\"><button type=\"submit\">Search</button> <a href=\"/ui/certificates\">Clear</a></p>\
         </form>",
        q = esc(&q.q),
        status = options(
            &[
                ("", "any"),
                ("good", "valid"),
                ("revoked", "revoked"),
                ("expired", "expired")
            ],
            &q.status
        ),
        profile = options(
            &[
                ("", "any"),
                ("server", "server"),
                ("client", "client"),
                ("peer", "peer"),
                ("ocsp-signer", "ocsp-signer"),
                ("ca", "ca")
            ],
            &q.profile
        ),
        prov = options(&provisioners, &q.provisioner),
        requester = esc(&q.requester),
        expiring = options(
            &[
                ("", "any time"),
                ("24h", "24 hours"),
                ("7d", "7 days"),
                ("30d", "30 days")
            ],
            &q.expiring
        ),
        from = esc(&q.expires_from),
        until = esc(&q.expires_until),
        sort = options(
            &[
                ("newest", "newest first"),
                ("expiry", "expiry, soonest first"),
                ("expiry-desc", "expiry, latest first")
            ],
            q.sort()
        ),
    )
}

async fn certificates_body(
    st: &AppState,
    session: &Session,
    q: &CertQuery,
) -> Result<String, ApiError> {
    let now = OffsetDateTime::now_utc();
    let mut body = search_form(st, q);
    // A serial typed into the box: that certificate, if this CA recorded it.
    let by_serial = match as_serial(q.q.trim()) {
        Some(serial) => st.inner.store.get_certificate(&serial).await?,
        None => None,
    };
    let (items, next) = match by_serial {
        Some(rec) => (vec![rec], None),
        None => {
            let filter = certificate_filter(q)?;
            let page = st.inner.store.list_certificates(&filter).await?;
            (page.items, page.next_cursor)
        }
    };
    if q.is_search() {
        st.console_audit(
            session.role.actor(),
            AuditAction::ConsoleView,
            None,
            AuditOutcome::Ok,
            format!(
                "searched certificates: {}",
                q.link().chars().take(512).collect::<String>()
            ),
        )
        .await?;
    }
    let _ = write!(
        body,
        "<section aria-labelledby=\"results\"><h2 id=\"results\">{}</h2>",
        if items.is_empty() {
            "No certificates match".to_string()
        } else {
            format!(
                "{} certificate{}{}",
                items.len(),
                if items.len() == 1 { "" } else { "s" },
                if next.is_some() {
                    " (more on the next page)"
                } else {
                    ""
                }
            )
        }
    );
    if !items.is_empty() {
        body.push_str(
            "<div class=\"scroll\"><table class=\"certs\"><thead><tr>\
             <th scope=\"col\">Serial</th><th scope=\"col\">Names</th><th scope=\"col\">Profile</th>\
             <th scope=\"col\">Requester</th><th scope=\"col\">Expires</th><th scope=\"col\">Status</th>\
             </tr></thead><tbody>",
        );
        for rec in &items {
            let (class, label) = status_of(rec, now);
            let serial = rec.serial.to_hex();
            let names = if rec.sans.is_empty() {
                esc(&rec.subject)
            } else {
                rec.sans
                    .iter()
                    .map(|n| esc(n))
                    .collect::<Vec<_>>()
                    .join("<br>")
            };
            let _ = write!(
                body,
                "<tr><td><a class=\"serial\" href=\"/ui/certificates/{serial}\">{serial}</a></td>\
                 <td>{names}</td><td>{profile}</td><td>{requester}</td>\
                 <td><time datetime=\"{iso}\">{expires}</time></td>\
                 <td><span class=\"pill {class}\">{label}</span></td></tr>",
                profile = esc(&rec.profile),
                requester = esc(&rec.requester),
                iso = esc(&crate::certificates::rfc3339(rec.not_after)),
                expires = esc(&when(rec.not_after)),
            );
        }
        body.push_str("</tbody></table></div>");
    }
    if let Some(cursor) = next {
        let link = q.link();
        let sep = if link.is_empty() { "" } else { "&" };
        let _ = write!(
            body,
            "<p class=\"pager\"><a rel=\"next\" href=\"/ui/certificates?{link}{sep}cursor={}\">Next page</a></p>",
            url_enc(&cursor)
        );
    }
    body.push_str("</section>");
    Ok(body)
}

// ---------------------------------------------------------------------------------------
// One certificate

async fn find(st: &AppState, serial: &str) -> Result<(Serial, CertificateRecord), ApiError> {
    let serial = parse_serial(serial)?;
    let rec = st
        .inner
        .store
        .get_certificate(&serial)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no certificate with serial {serial}")))?;
    Ok((serial, rec))
}

pub(crate) async fn certificate(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match certificate_body(&st, &session, &serial).await {
        Ok((title, body)) => html(
            StatusCode::OK,
            page(
                &title,
                Section::Certificates,
                Some(&viewer(&session)),
                &body,
            ),
        ),
        Err(e) => api_error_page(e, Some(&session)),
    }
}

fn dl_row(out: &mut String, term: &str, value_html: &str) {
    let _ = write!(out, "<dt>{}</dt><dd>{value_html}</dd>", esc(term));
}

/// The DER certificate of the CA that issued `rec`: the current issuing CA, or an earlier
/// one still accepted (by the key identifier recorded with the certificate).
fn issuer_der_of<'a>(st: &'a AppState, rec: &CertificateRecord) -> Option<&'a [u8]> {
    let key_id = hex::decode(&rec.issuer_key_id).ok()?;
    if key_id == st.inner.ca.key_id() {
        return Some(st.inner.ca.cert_der());
    }
    st.previous_issuer(&key_id).map(|p| p.der.as_slice())
}

async fn certificate_body(
    st: &AppState,
    session: &Session,
    serial: &str,
) -> Result<(String, String), ApiError> {
    let now = OffsetDateTime::now_utc();
    let (serial, rec) = find(st, serial).await?;
    st.console_audit(
        session.role.actor(),
        AuditAction::ConsoleView,
        Some(serial.clone()),
        AuditOutcome::Ok,
        "opened the certificate".into(),
    )
    .await?;
    let hex = serial.to_hex();
    let (class, label) = status_of(&rec, now);
    let described = signet_ca::describe_certificate(&rec.der).ok();
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"status\">Status: <span class=\"pill {class}\" id=\"status\">{label}</span></p>"
    );
    body.push_str(
        "<section aria-labelledby=\"fields\"><h2 id=\"fields\">Fields</h2><dl class=\"fields\">",
    );
    dl_row(&mut body, "Serial", &format!("<code>{hex}</code>"));
    dl_row(&mut body, "Subject", &esc(&rec.subject));
    let sans = if rec.sans.is_empty() {
        "none".to_string()
    } else {
        format!(
            "<ul class=\"plain\">{}</ul>",
            rec.sans
                .iter()
                .map(|n| format!("<li>{}</li>", esc(n)))
                .collect::<String>()
        )
    };
    dl_row(&mut body, "Subject alternative names", &sans);
    dl_row(&mut body, "Profile", &esc(&rec.profile));
    dl_row(&mut body, "Requester", &esc(&rec.requester));
    dl_row(&mut body, "Issuer", &esc(&rec.issuer));
    dl_row(&mut body, "Not before", &esc(&when(rec.not_before)));
    dl_row(
        &mut body,
        "Not after",
        &format!(
            "{} ({})",
            esc(&when(rec.not_after)),
            esc(&relative(rec.not_after, now))
        ),
    );
    dl_row(&mut body, "Recorded", &esc(&when(rec.created_at)));
    if let Some(at) = rec.revoked_at {
        let reason = rec
            .revocation_reason
            .map_or("unknown", RevocationReason::name);
        dl_row(
            &mut body,
            "Revoked",
            &format!("{} ({})", esc(&when(at)), esc(reason)),
        );
    }
    if let Some(d) = &described {
        let join = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                esc(&v.join(", "))
            }
        };
        dl_row(&mut body, "Key usage", &join(&d.key_usage));
        dl_row(
            &mut body,
            "Extended key usage",
            &join(&d.extended_key_usage),
        );
        dl_row(
            &mut body,
            "Public key",
            &esc(&format!("{:?}", d.public_key)),
        );
        dl_row(
            &mut body,
            "Signature algorithm",
            &esc(&d.signature_algorithm),
        );
        dl_row(
            &mut body,
            "SHA-256 fingerprint",
            &format!(
                "<code class=\"wrap\">{}</code>",
                esc(&d.fingerprints.sha256)
            ),
        );
        let mut ocsp = d.authority_info_access.ocsp.clone();
        ocsp.extend(d.crl_distribution_points.iter().cloned());
        dl_row(&mut body, "OCSP and CRL URLs", &join(&ocsp));
    }
    body.push_str("</dl></section>");

    // The live OCSP status: Signet's own responder asked now, its answer verified.
    let issuer_der = issuer_der_of(st, &rec);
    let lookup = st.inner.ocsp_lookup.get().map(|l| &l.0);
    let live = super::ocsp::live_ocsp_status(lookup, &rec.der, issuer_der, now).await;
    body.push_str(&super::ocsp::render(&live, now));

    // The chain: this certificate, the issuing CA (and intermediates), the root.
    body.push_str(
        "<section aria-labelledby=\"chain\"><h2 id=\"chain\">Chain</h2><ol class=\"chain\">",
    );
    let _ = write!(body, "<li>{}</li>", esc(&rec.subject));
    for der in st.inner.ca.chain_der() {
        if let Ok(info) = signet_ca::describe_certificate(der) {
            let _ = write!(
                body,
                "<li>{} (until {})</li>",
                esc(&info.subject),
                esc(&info.not_after)
            );
        }
    }
    if let Ok(info) = signet_ca::describe_certificate(st.inner.ca.root_der()) {
        let _ = write!(
            body,
            "<li>{} (root, until {})</li>",
            esc(&info.subject),
            esc(&info.not_after)
        );
    }
    let _ = write!(
        body,
        "</ol><p><a href=\"/ui/certificates/{hex}/pem\" download=\"{hex}.pem\">Download the certificate (PEM)</a></p></section>"
    );

    // The audit trail: rows about this serial, and renewals it asked for.
    let mut trail: Vec<AuditRecord> = Vec::new();
    for filter in [
        AuditFilter {
            serial: Some(serial.clone()),
            limit: 100,
            ..AuditFilter::default()
        },
        AuditFilter {
            actor: Some(format!("mtls:{hex}")),
            limit: 100,
            ..AuditFilter::default()
        },
        AuditFilter {
            actor: Some(format!("x5c:{hex}")),
            limit: 100,
            ..AuditFilter::default()
        },
    ] {
        trail.extend(st.inner.store.list_audit_page(&filter).await?.items);
    }
    trail.sort_by_key(|r| r.id);
    trail.dedup_by_key(|r| r.id);
    body.push_str("<section aria-labelledby=\"trail\"><h2 id=\"trail\">Audit trail</h2>");
    body.push_str(&audit_table(&trail, true));
    body.push_str("</section>");

    // Revocation.
    body.push_str("<section aria-labelledby=\"revoke\"><h2 id=\"revoke\">Revocation</h2>");
    if rec.revoked_at.is_some() {
        body.push_str("<p>This certificate is revoked.</p>");
    } else if session.role != Role::Admin {
        body.push_str("<p>Signed in as auditor: revoking needs the admin token.</p>");
    } else {
        let reasons: Vec<(&str, &str)> = RevocationReason::FOR_LEAF
            .iter()
            .map(|r| (r.name(), r.name()))
            .collect();
        let _ = write!(
            body,
            "<form class=\"revoke\" method=\"post\" action=\"/ui/certificates/{hex}/revoke\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <p><label for=\"reason\">Reason</label><select id=\"reason\" name=\"reason\" required>{opts}</select></p>\
             <p class=\"confirm\"><input type=\"checkbox\" id=\"confirm\" name=\"confirm\" value=\"yes\" required>\
             <label for=\"confirm\">I want to revoke certificate <code>{hex}</code>; this cannot be undone.</label></p>\
             <p><button type=\"submit\" class=\"danger\">Revoke</button></p></form>",
            csrf = esc(&session.csrf),
            opts = options(&reasons, "unspecified"),
        );
    }
    body.push_str("</section>");
    Ok((format!("Certificate {hex}"), body))
}

pub(crate) async fn certificate_pem(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    match find(&st, &serial).await {
        Ok((serial, rec)) => {
            let disposition = format!("attachment; filename=\"{}.pem\"", serial.to_hex());
            let mut resp = (
                [(header::CONTENT_TYPE, "application/x-pem-file")],
                signet_ca::pem::certificate(&rec.der),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&disposition) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => api_error_page(e, Some(&session)),
    }
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct RevokeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    confirm: String,
}

pub(crate) async fn revoke(
    State(st): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    Path(serial): Path<String>,
    form: Result<axum::Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let parsed = parse_serial(&serial).ok();
    let session = match st.console_session(&headers).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let e = ApiError::Unauthorized("sign in to the console first".into());
            let e = st
                .refuse("console:anonymous", AuditAction::Revoke, parsed, e)
                .await;
            return api_error_page(e, None);
        }
        Err(e) => return api_error_page(e, None),
    };
    let actor = session.role.actor();
    let form = form.ok().map(|axum::Form(f)| f);
    let csrf = form.as_ref().map_or("", |f| f.csrf.as_str());
    if let Err(why) = same_origin(&headers, &uri).and_then(|()| {
        if csrf_matches(&session, csrf) {
            Ok(())
        } else {
            Err("the form's CSRF token is not this session's".to_string())
        }
    }) {
        let e = st
            .refuse(
                actor,
                AuditAction::Revoke,
                parsed,
                ApiError::Forbidden(format!("cross-site request refused: {why}")),
            )
            .await;
        return api_error_page(e, Some(&session));
    }
    if session.role != Role::Admin {
        let e = st
            .refuse(
                actor,
                AuditAction::Revoke,
                parsed,
                ApiError::Forbidden(
                    "the auditor may not revoke: sign in with the admin token".into(),
                ),
            )
            .await;
        return api_error_page(e, Some(&session));
    }
    let result = async {
        let form = form.ok_or_else(|| ApiError::BadRequest("malformed form".into()))?;
        if form.confirm != "yes" {
            return Err(ApiError::BadRequest(
                "tick the confirmation box to revoke".into(),
            ));
        }
        let reason = crate::certificates::parse_leaf_reason(&form.reason)?;
        let serial = parse_serial(&serial)?;
        crate::certificates::revoke_certificate(&st, &serial, reason, actor).await
    }
    .await;
    match result {
        Ok(rec) => see_other_to(format!("/ui/certificates/{}", rec.serial.to_hex())),
        Err(e) => {
            let e = st.refuse(actor, AuditAction::Revoke, parsed, e).await;
            api_error_page(e, Some(&session))
        }
    }
}

// ---------------------------------------------------------------------------------------
// Audit log

#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    serial: String,
    #[serde(default)]
    before: String,
}

impl AuditQuery {
    fn link(&self) -> String {
        query_string(&[
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("from", &self.from),
            ("until", &self.until),
            ("serial", &self.serial),
        ])
    }
}

/// `k=v&...` of the non-empty `fields`, values URL-encoded: a filter form's query as a link.
fn query_string(fields: &[(&str, &String)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={}", url_enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn audit_table(rows: &[AuditRecord], compact: bool) -> String {
    if rows.is_empty() {
        return "<p>No audit records.</p>".into();
    }
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"audit\"><thead><tr><th scope=\"col\">When</th>\
         <th scope=\"col\">Actor</th><th scope=\"col\">Action</th>",
    );
    if !compact {
        out.push_str("<th scope=\"col\">Serial</th>");
    }
    out.push_str("<th scope=\"col\">Outcome</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
    for r in rows {
        let outcome_class = if r.outcome == AuditOutcome::Ok {
            "ok"
        } else {
            "bad"
        };
        let _ = write!(
            out,
            "<tr class=\"{outcome_class}\"><td>{}</td><td>{}</td><td>{}</td>",
            esc(&when(r.at)),
            esc(&r.actor),
            esc(r.action.as_str())
        );
        if !compact {
            match &r.serial {
                Some(s) => {
                    let _ = write!(
                        out,
                        "<td><a class=\"serial\" href=\"/ui/certificates/{}\">{}</a></td>",
                        url_enc(s),
                        esc(s)
                    );
                }
                None => out.push_str("<td></td>"),
            }
        }
        let _ = write!(
            out,
            "<td><span class=\"pill {outcome_class}\">{}</span></td><td class=\"detail\">{}</td></tr>",
            esc(r.outcome.as_str()),
            esc(&r.detail)
        );
    }
    out.push_str("</tbody></table></div>");
    out
}

pub(crate) async fn audit(
    State(st): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return api_error_page(ApiError::BadRequest(e.body_text()), Some(&session)),
    };
    let mut body = audit_form(&q);
    match audit_body(&st, &session, &q).await {
        Ok(rows) => body.push_str(&rows),
        Err(e) => {
            let (status, _, _) = e.classify();
            let _ = write!(
                body,
                "<p class=\"error\" role=\"alert\">{}</p>",
                esc(&e.client_detail(status))
            );
            return html(
                status,
                page("Audit log", Section::Audit, Some(&viewer(&session)), &body),
            );
        }
    }
    html(
        StatusCode::OK,
        page("Audit log", Section::Audit, Some(&viewer(&session)), &body),
    )
}

fn audit_form(q: &AuditQuery) -> String {
    let mut actions: Vec<(&str, &str)> = vec![("", "any")];
    actions.extend(AuditAction::KNOWN.iter().map(|a| (a.as_str(), a.as_str())));
    format!(
        "<form class=\"search\" method=\"get\" action=\"/ui/audit\">\
         <p><label for=\"actor\">Actor</label><input type=\"search\" id=\"actor\" name=\"actor\" value=\"{actor}\" placeholder=\"admin, console:admin, token:default:web-1\"></p>\
         <p><label for=\"action\">Action</label><select id=\"action\" name=\"action\">{actions}</select></p>\
         <p><label for=\"outcome\">Outcome</label><select id=\"outcome\" name=\"outcome\">{outcomes}</select></p>\
         <p><label for=\"from\">From (UTC)</label><input type=\"datetime-local\" id=\"from\" name=\"from\" value=\"{from}\"></p>\
         <p><label for=\"until\">Until (UTC)</label><input type=\"datetime-local\" id=\"until\" name=\"until\" value=\"{until}\"></p>\
         <p><label for=\"serial\">Serial</label><input type=\"text\" id=\"serial\" name=\"serial\" value=\"{serial}\"></p>\
         <p class=\"actions\"><button type=\"submit\">Filter</button> <a href=\"/ui/audit\">Clear</a></p></form>",
        actor = esc(&q.actor),
        actions = options(&actions, &q.action),
        outcomes = options(
            &[("", "any"), ("ok", "ok"), ("refused", "refused")],
            &q.outcome
        ),
        from = esc(&q.from),
        until = esc(&q.until),
        serial = esc(&q.serial),
    )
}

async fn audit_body(st: &AppState, session: &Session, q: &AuditQuery) -> Result<String, ApiError> {
    let mut filter = AuditFilter {
        limit: PAGE_SIZE,
        ..AuditFilter::default()
    };
    if !q.actor.trim().is_empty() {
        filter.actor = Some(q.actor.trim().to_string());
    }
    if !q.action.is_empty() {
        filter.action = Some(AuditAction::parse(&q.action));
    }
    match q.outcome.as_str() {
        "" => {}
        "ok" | "refused" => filter.outcome = Some(AuditOutcome::parse(&q.outcome)),
        other => {
            return Err(ApiError::BadRequest(format!(
                "outcome {:?}: expected ok or refused",
                other.chars().take(32).collect::<String>()
            )));
        }
    }
    if !q.from.is_empty() {
        filter.at_from = Some(parse_datetime(&q.from)?);
    }
    if !q.until.is_empty() {
        filter.at_until = Some(parse_datetime(&q.until)?);
    }
    if !q.serial.trim().is_empty() {
        filter.serial = Some(parse_serial(q.serial.trim())?);
    }
    if !q.before.is_empty() {
        filter.before = Some(
            q.before
                .parse::<i64>()
                .ok()
                .filter(|b| *b > 0)
                .ok_or_else(|| ApiError::BadRequest("malformed page cursor".into()))?,
        );
    }
    let page = st.inner.store.list_audit_page(&filter).await?;
    let link = q.link();
    if !link.is_empty() {
        st.console_audit(
            session.role.actor(),
            AuditAction::ConsoleView,
            None,
            AuditOutcome::Ok,
            format!(
                "searched the audit log: {}",
                link.chars().take(512).collect::<String>()
            ),
        )
        .await?;
    }
    let mut out = audit_table(&page.items, false);
    if let Some(before) = page.next_before {
        let sep = if link.is_empty() { "" } else { "&" };
        let _ = write!(
            out,
            "<p class=\"pager\"><a rel=\"next\" href=\"/ui/audit?{link}{sep}before={before}\">Older records</a></p>"
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Provisioners

pub(crate) async fn provisioners(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let session = match signed_in(&st, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    let mut body = String::from(
        "<p>The provisioners in force now (a SIGHUP reloads them from signet.toml). \
         Read-only: change them with <code>signet provisioner</code> or in the configuration.</p>",
    );
    for p in st.provisioners().iter() {
        let _ = write!(
            body,
            "<section class=\"provisioner\"><h2>{name}</h2><dl class=\"fields\">",
            name = esc(p.name())
        );
        dl_row(
            &mut body,
            "Kind",
            &esc(&format!("{:?}", p.kind()).to_lowercase()),
        );
        let (rate, burst) = p.rate();
        dl_row(
            &mut body,
            "Rate limit",
            &format!("{rate} per second, burst {burst}"),
        );
        let per_requester = p.per_requester_rate().map_or("none".to_string(), |(r, b)| {
            format!("{r} per second, burst {b}")
        });
        dl_row(&mut body, "Per requester", &esc(&per_requester));
        let policy = serde_json::to_value(p.issuance.policy()).unwrap_or_default();
        if let Some(map) = policy.as_object() {
            for (k, v) in map {
                let text = match v {
                    serde_json::Value::Array(a) if a.is_empty() => "none".to_string(),
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join(", "),
                    serde_json::Value::Null => "not set".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                dl_row(&mut body, &format!("Policy: {k}"), &esc(&text));
            }
        }
        body.push_str("</dl></section>");
    }
    html(
        StatusCode::OK,
        page(
            "Provisioners",
            Section::Provisioners,
            Some(&viewer(&session)),
            &body,
        ),
    )
}
