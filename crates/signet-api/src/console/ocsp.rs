//! The certificate page's live OCSP status: what Signet's own responder answers for the
//! certificate now, asked the way a relying party asks (a DER OCSPRequest with a SHA-1
//! CertID and no nonce, as nginx, HAProxy and `openssl ocsp` send it) and checked the way a
//! relying party checks the answer (`signet_ca::verify_ocsp_response`: the signature, the
//! signer's authorisation by the issuer, the CertID and the times). Not the stored status:
//! a responder that disagrees with the database, or cannot answer, shows here.

use std::fmt::Write as _;
use std::time::Duration;

use signet_ca::{
    CertIdHash, CertStatusKind, OcspCheckError, OcspResponseSigner, OffsetDateTime,
    RevocationReason, VerifiedOcspResponse, build_ocsp_request, verify_ocsp_response,
};

use super::html::{esc, relative, when};
use crate::OcspLookup;

/// How long the page waits for the responder before saying it did not answer.
pub const OCSP_LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the responder said about a certificate, as the console shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LiveOcsp {
    /// A signed answer that verified: its status (good, revoked with time and reason, or
    /// unknown), thisUpdate and nextUpdate, and who signed it.
    Verified(VerifiedOcspResponse),
    /// No responder is connected to the console.
    NoResponder,
    /// No request could be made for this certificate (its issuer is not a CA this server
    /// knows, or the certificate is unreadable).
    NotAsked(String),
    /// The responder did not answer (an error, or no answer within
    /// [`OCSP_LOOKUP_TIMEOUT`]).
    NoAnswer(String),
    /// The responder answered with an error status (`unauthorized`, `tryLater`,
    /// `internalError`, `malformedRequest`) and no signed response.
    Unsuccessful(&'static str),
    /// A signed answer that a relying party would reject: its signature does not verify,
    /// its signer is not authorised, it answers for another certificate, or it is stale.
    Rejected(String),
}

/// Ask `lookup` about the DER certificate `leaf_der`, issued by `issuer_der`, and check
/// the answer at `now`. Never fails: every outcome is a [`LiveOcsp`] the page can show.
pub async fn live_ocsp_status(
    lookup: Option<&OcspLookup>,
    leaf_der: &[u8],
    issuer_der: Option<&[u8]>,
    now: OffsetDateTime,
) -> LiveOcsp {
    let Some(lookup) = lookup else {
        return LiveOcsp::NoResponder;
    };
    let Some(issuer_der) = issuer_der else {
        return LiveOcsp::NotAsked(
            "its issuer is not an issuing CA this server answers for".into(),
        );
    };
    let request = match build_ocsp_request(leaf_der, issuer_der, CertIdHash::Sha1, None) {
        Ok(r) => r,
        Err(e) => return LiveOcsp::NotAsked(e.to_string()),
    };
    let answer = match tokio::time::timeout(OCSP_LOOKUP_TIMEOUT, lookup(request.der.clone())).await
    {
        Ok(Ok(der)) => der,
        Ok(Err(e)) => return LiveOcsp::NoAnswer(e),
        Err(_) => {
            return LiveOcsp::NoAnswer(format!(
                "no answer within {} s",
                OCSP_LOOKUP_TIMEOUT.as_secs()
            ));
        }
    };
    match verify_ocsp_response(&answer, &request, issuer_der, now) {
        Ok(v) => LiveOcsp::Verified(v),
        Err(OcspCheckError::Unsuccessful(status)) => LiveOcsp::Unsuccessful(status),
        Err(e) => LiveOcsp::Rejected(e.to_string()),
    }
}

/// The page's "Live OCSP status" section. Ids for tests and assistive technology:
/// `ocsp-status` (good, revoked, unknown, or unavailable), `ocsp-reason`,
/// `ocsp-signature`.
pub(crate) fn render(live: &LiveOcsp, now: OffsetDateTime) -> String {
    let mut out = String::from(
        "<section aria-labelledby=\"ocsp\"><h2 id=\"ocsp\">Live OCSP status</h2>\
         <p class=\"hint\">Asked of Signet's own OCSP responder now, as a relying party asks; \
         not the stored status.</p>",
    );
    let pill = |out: &mut String, class: &str, label: &str| {
        let _ = write!(
            out,
            "<p class=\"status\">OCSP: <span class=\"pill {class}\" id=\"ocsp-status\">{label}</span></p>"
        );
    };
    let row = |out: &mut String, term: &str, id: Option<&str>, value_html: &str| {
        let id = id.map(|i| format!(" id=\"{i}\"")).unwrap_or_default();
        let _ = write!(out, "<dt>{}</dt><dd{id}>{value_html}</dd>", esc(term));
    };
    let v = match live {
        LiveOcsp::Verified(v) => v,
        other => {
            pill(&mut out, "warn", "unavailable");
            let why = match other {
                LiveOcsp::NoResponder => "No OCSP responder is connected to this console.".into(),
                LiveOcsp::NotAsked(why) => format!("No OCSP request could be made: {why}."),
                LiveOcsp::NoAnswer(why) => format!("The OCSP responder did not answer: {why}."),
                LiveOcsp::Unsuccessful(status) => format!(
                    "The OCSP responder answered {status}, with no signed status for this \
                     certificate."
                ),
                LiveOcsp::Rejected(why) => format!(
                    "The OCSP responder's answer was rejected, as a relying party would reject \
                     it: {why}."
                ),
                LiveOcsp::Verified(_) => String::new(),
            };
            let _ = write!(out, "<p id=\"ocsp-problem\">{}</p></section>", esc(&why));
            return out;
        }
    };
    match v.status {
        CertStatusKind::Good => pill(&mut out, "good", "good"),
        CertStatusKind::Revoked { .. } => pill(&mut out, "revoked", "revoked"),
        CertStatusKind::Unknown => pill(&mut out, "warn", "unknown"),
    }
    out.push_str("<dl class=\"fields\">");
    if let CertStatusKind::Revoked { at, reason } = v.status {
        row(&mut out, "Revoked at", None, &esc(&when(at)));
        let reason = match reason {
            // RFC 5280: unspecified is written as no reasonCode at all.
            None | Some(0) => "unspecified (no reason code)".to_string(),
            Some(code) => RevocationReason::from_code(code)
                .map(|r| r.name().to_string())
                .unwrap_or_else(|_| format!("code {code}")),
        };
        row(&mut out, "Reason", Some("ocsp-reason"), &esc(&reason));
    }
    row(
        &mut out,
        "This update",
        None,
        &esc(&format!(
            "{} ({})",
            when(v.this_update),
            relative(v.this_update, now)
        )),
    );
    let next = v.next_update.map_or_else(
        || "none given".to_string(),
        |n| format!("{} ({})", when(n), relative(n, now)),
    );
    row(&mut out, "Next update", None, &esc(&next));
    row(&mut out, "Produced at", None, &esc(&when(v.produced_at)));
    let signer = match &v.signer {
        OcspResponseSigner::Issuer => "verified: signed by the issuing CA".to_string(),
        OcspResponseSigner::Delegated { serial, not_after } => format!(
            "verified: signed by the delegated responder {serial} (certified by the issuing CA \
             for OCSP signing, until {})",
            when(*not_after)
        ),
    };
    row(&mut out, "Signature", Some("ocsp-signature"), &esc(&signer));
    out.push_str("</dl></section>");
    out
}
