//! `GET /crl/{issuer}.crl` (DER) and `.pem`, and `GET /ca/{issuer}.crt` (DER) and `.pem`.
//!
//! CRLs are signed by the CA process when it publishes them (it holds the key); this side
//! serves the stored CRL with the largest number, kept in memory and replaced when a newer
//! one is stored ([`Responder::refresh_crl`], driven by `watch.rs`). Each form has a strong
//! `ETag`, and `If-None-Match` gets 304. HTTP caches may keep a CRL for a minute at most:
//! a new one is published on every revocation.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use time::OffsetDateTime;

use crate::http::{http_date, not_modified, seconds_until};
use crate::{Responder, ResponderError};

/// The longest an HTTP cache may keep a CRL.
const CRL_MAX_AGE_SECS: i64 = 60;

/// The latest CRL, in both forms.
#[derive(Debug)]
pub(crate) struct PublishedCrl {
    pub(crate) number: u64,
    der: Bytes,
    pem: Bytes,
    der_etag: String,
    pem_etag: String,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
}

impl Responder {
    /// Load the latest stored CRL if it is newer than the one being served. Returns the
    /// number now served, if any.
    pub async fn refresh_crl(&self) -> Result<Option<u64>, ResponderError> {
        let key_id = self.inner.issuer.key_id_hex();
        let current = self.current_crl().map(|c| c.number);
        let latest = self.inner.store.latest_crl_number(key_id).await?;
        if latest <= current {
            return Ok(current);
        }
        let Some(rec) = self.inner.store.latest_crl(key_id).await? else {
            return Ok(current);
        };
        let pem = pem_rfc7468::encode_string("X509 CRL", pem_rfc7468::LineEnding::LF, &rec.der)
            .map_err(|e| ResponderError::Config(format!("encoding the CRL as PEM: {e}")))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &rec.der);
        let tag = hex::encode(&digest.as_ref()[..16]);
        let published = Arc::new(PublishedCrl {
            number: rec.number,
            der: Bytes::from(rec.der),
            pem: Bytes::from(pem),
            der_etag: format!("\"{tag}\""),
            pem_etag: format!("\"{tag}-pem\""),
            this_update: rec.this_update,
            next_update: rec.next_update,
        });
        let mut slot = self.inner.crl.write().unwrap_or_else(|p| p.into_inner());
        // Another refresh may have raced ahead: never go back to an older number.
        if slot.as_ref().is_none_or(|c| c.number < published.number) {
            tracing::debug!(number = published.number, "serving a new CRL");
            *slot = Some(published);
        }
        Ok(slot.as_ref().map(|c| c.number))
    }

    pub(crate) fn current_crl(&self) -> Option<Arc<PublishedCrl>> {
        self.inner
            .crl
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Splits `issuing.crl` into its issuer name and extension, if the name is ours.
fn own_file<'a>(r: &Responder, file: &'a str) -> Option<&'a str> {
    let (name, ext) = file.rsplit_once('.')?;
    (name == r.inner.config.issuer_name).then_some(ext)
}

pub(crate) async fn get_crl(
    State(r): State<Responder>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let pem = match own_file(&r, &file) {
        Some("crl") => false,
        Some("pem") => true,
        _ => return (StatusCode::NOT_FOUND, "no such CRL\n").into_response(),
    };
    let mut crl = r.current_crl();
    if crl.is_none() {
        // Nothing loaded yet (a fresh start): look once before giving up.
        if let Err(e) = r.refresh_crl().await {
            tracing::warn!(error = %e, "loading the CRL failed");
        }
        crl = r.current_crl();
    }
    let Some(crl) = crl else {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            h,
            "no CRL has been published yet\n",
        )
            .into_response();
    };
    let (body, etag, content_type) = if pem {
        (&crl.pem, &crl.pem_etag, "application/x-pem-file")
    } else {
        (&crl.der, &crl.der_etag, "application/pkix-crl")
    };
    let now = OffsetDateTime::now_utc();
    let max_age = seconds_until(now, crl.next_update).min(CRL_MAX_AGE_SECS);
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("max-age={max_age}, public, no-transform"))
            .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
    );
    h.insert(header::LAST_MODIFIED, http_date(crl.this_update));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    if not_modified(&headers, etag) {
        return (StatusCode::NOT_MODIFIED, h).into_response();
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    (StatusCode::OK, h, body.clone()).into_response()
}

/// The issuing CA certificate, for AIA caIssuers (RFC 5280 section 4.2.2.1: a DER
/// certificate over HTTP), and as PEM.
pub(crate) async fn get_ca(State(r): State<Responder>, Path(file): Path<String>) -> Response {
    let issuer = &r.inner.issuer;
    let (body, content_type) = match own_file(&r, &file) {
        Some("crt" | "cer" | "der") => (
            Bytes::copy_from_slice(issuer.der()),
            "application/pkix-cert",
        ),
        Some("pem") => (
            Bytes::copy_from_slice(issuer.pem().as_bytes()),
            "application/x-pem-file",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such certificate\n").into_response(),
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600, public, no-transform"),
    );
    (StatusCode::OK, h, body).into_response()
}
