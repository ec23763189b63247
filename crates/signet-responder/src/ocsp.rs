//! `POST /ocsp` and `GET /ocsp/{request}`: RFC 6960 answered under the RFC 5019 profile.
//!
//! Every request gets HTTP 200 with an OCSPResponse, whatever happens: `malformedRequest` for
//! what does not parse (including a GET path that is not base64), `unauthorized` for a CertID
//! naming another issuer, `tryLater` before a signer is installed, `internalError` when the
//! database fails. A signed answer says good, revoked (time and reason) or unknown (a serial
//! this CA never recorded, RFC 6960 section 2.2).
//!
//! HTTP caching (RFC 5019 section 6): a nonce-less GET answer carries `Cache-Control:
//! max-age` up to the moment it will be re-signed (never beyond nextUpdate), `public,
//! no-transform`, `Last-Modified` (thisUpdate), `Expires` (nextUpdate) and a strong `ETag`,
//! so a CDN may serve it. Answers carrying a nonce are signed per request and `no-store`,
//! as are POST answers and error statuses.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use signet_pkix::ocsp::{
    CertStatusKind, MAX_OCSP_REQUEST_LEN, OcspCertId, OcspErrorStatus, ParsedOcspRequest,
    build_response, error_response, parse_ocsp_request,
};
use signet_pkix::{PkixError, Serial};
use time::OffsetDateTime;

use crate::Responder;
use crate::cache::Signed;
use crate::http::{not_modified, seconds_until};

const OCSP_RESPONSE: &str = "application/ocsp-response";

/// What a request is answered with.
enum Answer {
    /// An unsigned error status.
    Error(OcspErrorStatus),
    /// A signed response; `cacheable` when it carries no nonce.
    Signed {
        signed: Arc<Signed>,
        cacheable: bool,
    },
}

/// `POST /ocsp`: the body is the DER OCSPRequest. The Content-Type is not checked (RFC 5019
/// clients send `application/ocsp-request`; being lenient costs nothing).
pub(crate) async fn post(State(r): State<Responder>, body: Body) -> Response {
    // One byte over the limit is enough to know the request is too long.
    let answer = match axum::body::to_bytes(body, MAX_OCSP_REQUEST_LEN + 1).await {
        Ok(der) => r.answer(&der, None).await,
        Err(_) => Answer::Error(OcspErrorStatus::MalformedRequest),
    };
    match answer {
        Answer::Error(status) => error(status),
        Answer::Signed { signed, .. } => ocsp_body(signed.body.clone(), no_store()),
    }
}

/// `GET /ocsp/{request}`: the path after `/ocsp/` is the base64 DER OCSPRequest, URL-encoded
/// (RFC 6960 appendix A.1). Read from the raw URI, so that `/` inside the base64 and
/// percent-encoding that is not UTF-8 reach our own decoder rather than a 400 from a path
/// extractor.
/// The router's fallback: `GET` (or `HEAD`) `/ocsp/{request}` goes to [`get`]; anything
/// else is 404, or 405 for another method on `/ocsp/…`.
pub(crate) async fn get_or_not_found(State(r): State<Responder>, req: Request) -> Response {
    let (method, uri, headers) = (req.method(), req.uri(), req.headers());
    if !uri.path().starts_with("/ocsp/") || uri.path() == "/ocsp/" {
        return StatusCode::NOT_FOUND.into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("GET,HEAD"))],
        )
            .into_response();
    }
    get(&r, uri, headers).await
}

async fn get(r: &Responder, uri: &Uri, headers: &HeaderMap) -> Response {
    let path = uri.path();
    let now = OffsetDateTime::now_utc();
    if let Some(signed) = r.inner.cache.by_path(path, whole_seconds(now)) {
        return cached_answer(&signed, now, headers);
    }
    let der = path.strip_prefix("/ocsp/").and_then(decode_get_path);
    let answer = match der {
        Some(der) => r.answer(&der, Some(path)).await,
        None => Answer::Error(OcspErrorStatus::MalformedRequest),
    };
    match answer {
        Answer::Error(status) => error(status),
        Answer::Signed {
            signed,
            cacheable: false,
        } => ocsp_body(signed.body.clone(), no_store()),
        Answer::Signed {
            signed,
            cacheable: true,
        } => cached_answer(&signed, OffsetDateTime::now_utc(), headers),
    }
}

/// A nonce-less GET answered with `signed` at `now` (RFC 5019 section 6): 200 with the body,
/// or 304 when `If-None-Match` names its ETag; either with the caching headers. The one place
/// such an answer is made, for the router and for [`Responder::cached_get`] alike; built in
/// place, as it is most of what the responder does.
fn cached_answer(signed: &Signed, now: OffsetDateTime, request_headers: &HeaderMap) -> Response {
    let fresh = not_modified(request_headers, &signed.etag);
    let mut response = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        Response::new(Body::from(signed.body.clone()))
    };
    let h = response.headers_mut();
    if !fresh {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OCSP_RESPONSE),
        );
    }
    let max_age = seconds_until(now, signed.refresh_at);
    h.insert(header::CACHE_CONTROL, cache_control(max_age));
    for (name, value) in &signed.fixed_headers {
        h.insert(name, value.clone());
    }
    response
}

/// `max-age=N, public, no-transform`, written without the formatting machinery.
fn cache_control(max_age: i64) -> HeaderValue {
    const HEAD: &[u8] = b"max-age=";
    const TAIL: &[u8] = b", public, no-transform";
    let mut digits = [0u8; 20];
    let mut n = max_age.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut text = [0u8; HEAD.len() + 20 + TAIL.len()];
    let mut len = 0;
    for part in [HEAD, &digits[at..], TAIL] {
        text[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    // ASCII digits and letters only.
    HeaderValue::from_bytes(&text[..len]).unwrap_or_else(|_| HeaderValue::from_static("no-store"))
}

impl Responder {
    /// A `GET /ocsp/{request}` answered at once from the cache, if its path (exactly as
    /// received) was answered before and that answer is still cached: no decoding, no
    /// parsing, no routing. `None` for anything else (another method or path, a request not
    /// seen, an answer dropped by a revocation or due for re-signing), which [`app`]
    /// answers as usual. A server may call this before its router; the answer is the one
    /// the router would give.
    ///
    /// [`app`]: crate::app
    pub fn cached_get(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
        if method != Method::GET {
            return None;
        }
        let now = OffsetDateTime::now_utc();
        let signed = self.inner.cache.by_path(uri.path(), whole_seconds(now))?;
        Some(cached_answer(&signed, now, headers))
    }
}

/// Percent-decoding, then base64 (standard alphabet, padding optional; the URL-safe
/// alphabet too, which some clients use). `None` for anything else.
fn decode_get_path(path: &str) -> Option<Vec<u8>> {
    // Base64 of MAX_OCSP_REQUEST_LEN bytes, percent-encoded: at most 3 characters each.
    if path.is_empty() || path.len() > MAX_OCSP_REQUEST_LEN * 4 {
        return None;
    }
    let bytes = path.as_bytes();
    let mut text = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            text.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            text.push(bytes[i]);
            i += 1;
        }
    }
    let lenient =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    GeneralPurpose::new(&base64::alphabet::STANDARD, lenient)
        .decode(&text)
        .or_else(|_| GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient).decode(&text))
        .ok()
}

fn no_store() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h
}

fn ocsp_body(body: Bytes, mut headers: HeaderMap) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(OCSP_RESPONSE),
    );
    (StatusCode::OK, headers, body).into_response()
}

/// An unsuccessful OCSPResponse, with HTTP 200 as RFC 6960 practice has it.
fn error(status: OcspErrorStatus) -> Response {
    ocsp_body(Bytes::from(error_response(status)), no_store())
}

impl Responder {
    /// The DER OCSPResponse that `POST /ocsp` with `request_der` as its body is answered
    /// with: the same parsing, limits, cache and signer, so an in-process caller (the
    /// operator console of `signet serve`) sees exactly what a relying party sees. Error
    /// statuses (`malformedRequest`, `unauthorized`, `tryLater`, `internalError`) come back
    /// as unsigned OCSPResponses, as over HTTP.
    pub async fn ocsp_response(&self, request_der: &[u8]) -> Bytes {
        if request_der.len() > MAX_OCSP_REQUEST_LEN {
            return Bytes::from(error_response(OcspErrorStatus::MalformedRequest));
        }
        match self.answer(request_der, None).await {
            Answer::Error(status) => Bytes::from(error_response(status)),
            Answer::Signed { signed, .. } => signed.body.clone(),
        }
    }

    /// The answer to the DER request `der`. `get_path`: the path of the GET it came in, to be
    /// remembered with a cacheable answer (see [`Responder::cached_get`]).
    async fn answer(&self, der: &[u8], get_path: Option<&str>) -> Answer {
        let req = match self.inner.parsed.parse(der) {
            Ok(req) => req,
            Err(e) => {
                tracing::debug!(error = %e, "malformed OCSP request");
                return Answer::Error(e.ocsp_status());
            }
        };
        let ids = self.inner.issuer.ids();
        if !req.cert_ids().iter().all(|id| ids.matches(id)) {
            return Answer::Error(OcspErrorStatus::Unauthorized);
        }
        let Some(active) = self.signer() else {
            return Answer::Error(OcspErrorStatus::TryLater);
        };
        let now = whole_seconds(OffsetDateTime::now_utc());
        let cacheable = req.nonce().is_none();
        let single = match req.cert_ids() {
            [one] if cacheable => Some(one),
            _ => None,
        };
        if let Some(id) = single
            && let Some(signed) = self.inner.cache.get(id.serial(), id.der(), now)
        {
            if let Some(path) = get_path {
                self.inner.cache.remember_path(path, id.serial(), &signed);
            }
            return Answer::Signed { signed, cacheable };
        }

        // Read before the statuses: see cache.rs for why.
        let epoch = self.inner.cache.epoch();
        let next_update = (now + self.inner.config.ocsp_validity).min(active.signer.not_after());
        if next_update <= now {
            // The signer is about to expire and its successor is not installed yet.
            return Answer::Error(OcspErrorStatus::TryLater);
        }
        // A status read from the database is reused, like a signed answer, until half way
        // to nextUpdate; a revocation invalidates both.
        let status_until = now + (next_update - now) / 2;
        let mut statuses = Vec::with_capacity(req.cert_ids().len());
        for id in req.cert_ids() {
            if let Some(status) = self.inner.cache.status(id.serial(), now) {
                statuses.push((id, status));
                continue;
            }
            match self.status_of(id.serial()).await {
                Ok(status) => {
                    // Unknown is not remembered: a serial may be recorded a moment later,
                    // and random serials must not fill the cache.
                    if status != CertStatusKind::Unknown {
                        self.inner.cache.insert_status(
                            id.serial().clone(),
                            status,
                            status_until,
                            epoch,
                        );
                    }
                    statuses.push((id, status));
                }
                Err(e) => {
                    tracing::error!(error = %e, "OCSP status lookup failed");
                    return Answer::Error(OcspErrorStatus::InternalError);
                }
            }
        }
        let pairs: Vec<(&OcspCertId, CertStatusKind)> = statuses;
        let body = match build_response(&active.signer, &pairs, now, next_update, req.nonce()) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(error = %e, "signing an OCSP response failed");
                return Answer::Error(OcspErrorStatus::InternalError);
            }
        };
        let key = single.map_or_else(Vec::new, |id| id.der().to_vec());
        let signed = Arc::new(Signed::new(key, body, now, next_update));
        if let Some(id) = single {
            self.inner
                .cache
                .insert(id.serial().clone(), signed.clone(), epoch);
            if let Some(path) = get_path {
                // Only if it was cached: not when a revocation came in since `epoch`.
                self.inner.cache.remember_path(path, id.serial(), &signed);
            }
        }
        Answer::Signed { signed, cacheable }
    }

    /// The status of `serial` from the CA's own records (RFC 6960 section 2.2): unknown when
    /// this CA never recorded it, revoked when the database says so, else good.
    async fn status_of(&self, serial: &Serial) -> Result<CertStatusKind, signet_store::StoreError> {
        let Some(rec) = self.inner.store.certificate_status(serial).await? else {
            return Ok(CertStatusKind::Unknown);
        };
        if rec.issuer_key_id != self.inner.issuer.key_id_hex() {
            // Issued under another CA key that shares the database (a serial collision
            // across CAs): not ours to vouch for.
            return Ok(CertStatusKind::Unknown);
        }
        Ok(match rec.revoked_at {
            Some(at) => CertStatusKind::Revoked {
                at,
                reason: reason_code(rec.reason),
            },
            None => CertStatusKind::Good,
        })
    }
}

/// The CRLReason to put in a response: the stored reason, except unspecified and
/// removeFromCRL (8), which RFC 5280 keeps out of full CRLs and OCSP: those say nothing
/// rather than fail the response, as does a stored code outside the table (the store reads
/// it as no reason). The table is [`signet_pkix::RevocationReason`]'s.
pub(crate) fn reason_code(reason: Option<signet_pkix::RevocationReason>) -> Option<u8> {
    signet_pkix::RevocationReason::for_full_status(reason.map(signet_pkix::RevocationReason::code))
        .ok()
        .flatten()
        .map(signet_pkix::RevocationReason::code)
}

fn whole_seconds(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Requests without a nonce that were parsed before, by their DER. A TLS server refreshing
/// its staple, or a client polling, sends the same bytes every time; parsing them again
/// (strict DER, every CertID) was most of the responder's own work per cached answer.
/// Parsing is a pure function of the bytes, so a remembered result is the same result.
/// Bounded: at [`ParsedRequests::CAPACITY`] entries it starts over. Requests with a nonce
/// are never remembered (each is new), nor are malformed ones.
#[derive(Debug, Default)]
pub(crate) struct ParsedRequests {
    map: std::sync::Mutex<std::collections::HashMap<Box<[u8]>, Arc<ParsedOcspRequest>>>,
}

impl ParsedRequests {
    const CAPACITY: usize = 8192;

    pub(crate) fn parse(&self, der: &[u8]) -> Result<Arc<ParsedOcspRequest>, PkixError> {
        if let Some(hit) = self.map.lock().ok().and_then(|m| m.get(der).cloned()) {
            return Ok(hit);
        }
        let req = Arc::new(parse_ocsp_request(der)?);
        if req.nonce().is_none()
            && let Ok(mut m) = self.map.lock()
        {
            if m.len() >= Self::CAPACITY {
                m.clear();
            }
            m.insert(der.into(), Arc::clone(&req));
        }
        Ok(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_paths_decode_leniently() {
        assert_eq!(decode_get_path("AQID"), Some(vec![1, 2, 3]));
        assert_eq!(decode_get_path("AQI%3D"), Some(vec![1, 2]));
        assert_eq!(decode_get_path("AQI="), Some(vec![1, 2]));
        assert_eq!(decode_get_path("AQI"), Some(vec![1, 2]));
        assert_eq!(decode_get_path("_-8"), Some(vec![0xff, 0xef]));
        assert_eq!(decode_get_path("/+8="), Some(vec![0xff, 0xef]));
        assert_eq!(decode_get_path("%2F%2B8%3D"), Some(vec![0xff, 0xef]));
        for bad in ["", "%", "%zz", "%F", "not base64!", "%FF%FE"] {
            assert_eq!(decode_get_path(bad), None, "{bad:?}");
        }
    }

    /// `openssl ocsp -no_nonce -reqout` for one leaf, and the same with a nonce.
    const REQUEST: &str = "3051304f304d304b3049300906052b0e03021a05000414fae1af5cac39e1b76ae59c303e90e67c978fd0640414a8d33d235aeff5c8294c76ca01673a48b17c494902106f5a2c5b80af4d76c5f7cc1f7f40e639";
    const REQUEST_WITH_NONCE: &str = "30763074304d304b3049300906052b0e03021a05000414fae1af5cac39e1b76ae59c303e90e67c978fd0640414a8d33d235aeff5c8294c76ca01673a48b17c494902106f5a2c5b80af4d76c5f7cc1f7f40e639a2233021301f06092b0601050507300102041204108d21a433f6b946de25d3b3cb41d28417";

    #[test]
    fn remembered_requests_parse_as_fresh_ones_and_stay_bounded() {
        let memo = ParsedRequests::default();
        let der = hex::decode(REQUEST).expect("hex");
        let first = memo.parse(&der).expect("parses");
        assert_eq!(*first, parse_ocsp_request(&der).expect("parses"));
        let again = memo.parse(&der).expect("parses");
        assert!(
            Arc::ptr_eq(&first, &again),
            "the second parse is the remembered one"
        );

        // Nonce requests are answered but never remembered; malformed ones are refused alike.
        let nonce = hex::decode(REQUEST_WITH_NONCE).expect("hex");
        assert!(memo.parse(&nonce).expect("parses").nonce().is_some());
        assert!(memo.parse(&der[..der.len() - 1]).is_err());
        let len = || memo.map.lock().expect("lock").len();
        assert_eq!(len(), 1);

        // Distinct requests (trailing data makes each one malformed, so build valid ones by
        // varying the serial's last byte) never grow the memo past its capacity.
        for i in 0..ParsedRequests::CAPACITY + 10 {
            let mut other = der.clone();
            let last = other.len() - 1;
            other[last] = u8::try_from(i % 256).expect("byte");
            other[last - 1] = u8::try_from((i / 256) % 256).expect("byte");
            memo.parse(&other).expect("parses");
            assert!(len() <= ParsedRequests::CAPACITY);
        }
    }

    #[test]
    fn cache_control_is_written_as_format_would() {
        for n in [0_i64, 1, 9, 10, 7199, 14_400, i64::MAX] {
            assert_eq!(
                cache_control(n).to_str().expect("ascii"),
                format!("max-age={n}, public, no-transform")
            );
        }
    }

    #[test]
    fn reasons_outside_full_crls_are_dropped() {
        use signet_pkix::RevocationReason as R;
        assert_eq!(reason_code(Some(R::KeyCompromise)), Some(1));
        assert_eq!(reason_code(Some(R::Unspecified)), None);
        assert_eq!(reason_code(Some(R::RemoveFromCrl)), None);
        assert_eq!(reason_code(None), None);
    }
}
