//! `GET /metrics` (OpenMetrics text): what an operator alerts on, read when scraped, so that
//! nothing is counted on the OCSP path. Each value is a deadline or a size:
//!
//! - `signet_responder_crl_next_update_timestamp_seconds{crl="issuing"|"root"}` and
//!   `signet_responder_crl_number{crl}`: the CRLs served. The root's is signed offline, so
//!   nothing renews it but an operator: alert well before its nextUpdate.
//! - `signet_responder_ocsp_signer_not_after_timestamp_seconds`: the delegated OCSP signing
//!   certificate in use (replaced automatically at half its life).
//! - `signet_responder_ca_not_after_timestamp_seconds{ca="issuing"|"root"}`: when the CA
//!   certificates themselves end.
//! - `signet_responder_ocsp_cached_responses`: pre-signed answers held.
//!
//! A series is absent while there is nothing to report (no CRL loaded yet, no signer yet,
//! no root configured).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::Responder;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CrlLabel {
    crl: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaLabel {
    ca: &'static str,
}

/// The OpenMetrics text for the responder's state now.
pub(crate) fn render(r: &Responder) -> String {
    let mut registry = Registry::with_prefix("signet_responder");

    let next_update = Family::<CrlLabel, Gauge>::default();
    let number = Family::<CrlLabel, Gauge>::default();
    for (crl, published) in [("issuing", r.current_crl()), ("root", r.current_root_crl())] {
        if let Some(p) = published {
            let label = CrlLabel { crl };
            next_update
                .get_or_create(&label)
                .set(p.next_update.unix_timestamp());
            number
                .get_or_create(&label)
                .set(i64::try_from(p.number).unwrap_or(i64::MAX));
        }
    }
    registry.register(
        "crl_next_update_timestamp_seconds",
        "nextUpdate of the CRL served, by CRL (issuing CA, root)",
        next_update,
    );
    registry.register("crl_number", "CRL Number of the CRL served", number);

    if let Some(active) = r.signer() {
        let g = Gauge::<i64>::default();
        g.set(active.signer.not_after().unix_timestamp());
        registry.register(
            "ocsp_signer_not_after_timestamp_seconds",
            "notAfter of the delegated OCSP signing certificate in use",
            g,
        );
    }

    let ca = Family::<CaLabel, Gauge>::default();
    ca.get_or_create(&CaLabel { ca: "issuing" })
        .set(r.inner.issuer.not_after().unix_timestamp());
    if let Some(root) = &r.inner.root {
        ca.get_or_create(&CaLabel { ca: "root" })
            .set(root.not_after().unix_timestamp());
    }
    registry.register(
        "ca_not_after_timestamp_seconds",
        "notAfter of the CA certificates, by CA (issuing, root)",
        ca,
    );

    let cached = Gauge::<i64>::default();
    cached.set(i64::try_from(r.cached_responses()).unwrap_or(i64::MAX));
    registry.register(
        "ocsp_cached_responses",
        "Pre-signed OCSP responses held in memory",
        cached,
    );

    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

pub(crate) async fn get(State(r): State<Responder>) -> Response {
    let mut resp = (StatusCode::OK, render(&r)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}
