//! dns-01 (RFC 8555 section 8.4): some TXT record at `_acme-challenge.{name}` must equal
//! base64url(SHA-256(key authorization)). A wildcard's `*.` was removed by `name::Target`.

use crate::error::quote;
use crate::name::Target;
use crate::{FailureKind, Inner, ValidationFailure, ValidationRecord, dns01_txt_value};

/// How many wrong values a failure quotes.
const QUOTED: usize = 3;

pub(crate) async fn validate(
    va: &Inner,
    target: &Target,
    key_authorization: &str,
) -> Result<ValidationRecord, ValidationFailure> {
    let Target::Name(name) = target else {
        // name::Target::for_challenge refuses IP addresses for dns-01.
        return Err(ValidationFailure::new(
            FailureKind::RejectedIdentifier,
            "dns-01 cannot validate an IP address",
        ));
    };
    let query = format!("_acme-challenge.{name}");
    let expected = dns01_txt_value(key_authorization);
    let found = va.resolver.txt(&query).await?;
    if found
        .iter()
        .any(|value| value.as_slice() == expected.as_bytes())
    {
        return Ok(ValidationRecord {
            url: None,
            hostname: name.clone(),
            port: None,
            addresses_resolved: Vec::new(),
            address_used: None,
        });
    }
    if found.is_empty() {
        return Err(ValidationFailure::new(
            FailureKind::Unauthorized,
            format!("no TXT record found at {query}"),
        ));
    }
    let quoted: Vec<String> = found.iter().take(QUOTED).map(|v| quote(v, 64)).collect();
    Err(ValidationFailure::new(
        FailureKind::IncorrectResponse,
        format!(
            "no TXT record at {query} matches this challenge: expected \"{expected}\", found {}{}",
            quoted.join(", "),
            if found.len() > QUOTED { ", ..." } else { "" }
        ),
    ))
}
