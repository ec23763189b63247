//! The `kubernetes` provisioner: vouches for workloads with the projected service-account
//! tokens a Kubernetes API server issues, verified against the cluster's published keys (the
//! JWKS served at `/openid/v1/jwks`).
//!
//! - The token's `kid` selects one key of the JWKS; a token without a `kid`, or with one the
//!   JWKS lacks, is refused. The algorithm comes from the key (RSA: RS256; EC P-256: ES256;
//!   EC P-384: ES384), never from the token header, so `alg: none` and HS256 signed with the
//!   public key are refused.
//! - `iss` must be the configured issuer, `aud` must contain the configured audience, and
//!   `exp`/`nbf`/`iat` are checked with [`LEEWAY_SECS`] of leeway.
//! - Kubernetes tokens are reused by the kubelet until they are refreshed, so they are not
//!   single-use. Instead their age is bounded: a token whose `iat` is more than
//!   `max_token_age` (default one hour) ago is refused, whatever its `exp` says. This also
//!   limits the year-long tokens some clusters hand out for backwards compatibility.
//! - The namespace and service account come from the `kubernetes.io` claim and must agree
//!   with `sub` (`system:serviceaccount:NS:SA`).
//!
//! What a verified workload may then be issued (the provisioner's allow-lists, and the names
//! its templates over `{ns}`, `{sa}` and `{trust_domain}` give) is the authority's:
//! [`signet_authority::KubernetesNames`].

use std::path::Path;

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use signet_authority::{is_namespace, is_service_account};
use signet_ca::Lifetime;
use time::OffsetDateTime;

use crate::claims::LEEWAY_SECS;
use crate::error::ApiError;

/// How old (since `iat`) a token may be when none is configured.
pub const DEFAULT_MAX_TOKEN_AGE: Lifetime = Lifetime::from_hours(1);
/// Most keys one JWKS may hold.
const MAX_JWKS_KEYS: usize = 64;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// One verification key of the cluster, with the algorithm its type allows.
struct ClusterKey {
    kid: String,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The verification side of a `kubernetes` provisioner.
pub(crate) struct KubernetesVerifier {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    keys: Vec<ClusterKey>,
    max_token_age: Lifetime,
}

impl std::fmt::Debug for KubernetesVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "kids",
                &self.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a `kubernetes` provisioner is configured with (already read from files).
#[derive(Debug, Clone)]
pub(crate) struct KubernetesSettings<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub jwks_json: &'a str,
    pub max_token_age: Option<Lifetime>,
}

/// Check a JWKS as a `kubernetes` provisioner would use it; returns the key ids.
///
/// Every key must have a `kid` and be RSA (at least 2048 bits), EC P-256 or EC P-384; keys
/// marked `"use": "enc"` are skipped. At least one key must remain.
pub fn check_jwks(json: &str) -> Result<Vec<String>, String> {
    Ok(parse_jwks(json)?.into_iter().map(|k| k.kid).collect())
}

fn parse_jwks(json: &str) -> Result<Vec<ClusterKey>, String> {
    let set: JwkSet =
        serde_json::from_str(json).map_err(|e| format!("not a JWKS ({{\"keys\": [...]}}): {e}"))?;
    if set.keys.len() > MAX_JWKS_KEYS {
        return Err(format!("more than {MAX_JWKS_KEYS} keys"));
    }
    let mut keys: Vec<ClusterKey> = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
            continue;
        }
        let kid = jwk
            .common
            .key_id
            .clone()
            .filter(|k| !k.is_empty() && k.len() <= 256)
            .ok_or_else(|| format!("key {i} has no kid (1 to 256 characters)"))?;
        let err = |reason: &str| format!("key {kid:?}: {reason}");
        let algorithm = match &jwk.algorithm {
            AlgorithmParameters::RSA(rsa) => {
                let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(rsa.n.trim_end_matches('='))
                    .map_err(|_| err("the RSA modulus is not base64url"))?;
                let bits = n
                    .iter()
                    .position(|b| *b != 0)
                    .map_or(0, |first| (n.len() - first) * 8);
                if bits < MIN_RSA_BITS {
                    return Err(err(&format!(
                        "RSA keys must have at least {MIN_RSA_BITS} bits"
                    )));
                }
                Algorithm::RS256
            }
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => Algorithm::ES256,
                EllipticCurve::P384 => Algorithm::ES384,
                _ => return Err(err("unsupported curve (use P-256 or P-384)")),
            },
            _ => {
                return Err(err(
                    "unsupported key type (a cluster signs with RSA or EC keys)",
                ));
            }
        };
        // A key that says which algorithm it is for must agree with its type.
        if let Some(alg) = jwk.common.key_algorithm {
            let agrees = matches!(
                (alg, algorithm),
                (KeyAlgorithm::RS256, Algorithm::RS256)
                    | (KeyAlgorithm::ES256, Algorithm::ES256)
                    | (KeyAlgorithm::ES384, Algorithm::ES384)
            );
            if !agrees {
                return Err(err(&format!(
                    "\"alg\": {alg:?} does not match the key type (expected {algorithm:?})"
                )));
            }
        }
        if keys.iter().any(|k| k.kid == kid) {
            return Err(err("the kid is used twice"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| err(&e.to_string()))?;
        keys.push(ClusterKey {
            kid,
            algorithm,
            key,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS has no signing key".into());
    }
    Ok(keys)
}

impl KubernetesVerifier {
    /// Build and check everything that can be checked before a token arrives.
    pub(crate) fn new(s: &KubernetesSettings<'_>) -> Result<Self, String> {
        if s.issuer.is_empty() || s.issuer.len() > 1024 {
            return Err("issuer must be 1 to 1024 characters".into());
        }
        if s.audience.is_empty() || s.audience.len() > 1024 {
            return Err("audience must be 1 to 1024 characters".into());
        }
        let keys = parse_jwks(s.jwks_json).map_err(|e| format!("JWKS: {e}"))?;
        Ok(KubernetesVerifier {
            issuer: s.issuer.to_string(),
            audience: s.audience.to_string(),
            keys,
            max_token_age: s.max_token_age.unwrap_or(DEFAULT_MAX_TOKEN_AGE),
        })
    }

    /// Verify a service-account token. Returns the namespace and the service account.
    pub(crate) fn verify(&self, token: &str) -> Result<Workload, ApiError> {
        self.verify_at(token, OffsetDateTime::now_utc().unix_timestamp())
    }

    /// [`Self::verify`] at the Unix time `now` (the tests' fixed clock for recorded tokens).
    /// `exp` and `nbf` are checked here rather than by jsonwebtoken, which reads the system
    /// clock; the rules (and the leeway) are the same.
    fn verify_at(&self, token: &str, now: i64) -> Result<Workload, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::Unauthorized(format!("malformed token header: {e}")))?;
        let kid = header.kid.ok_or_else(|| {
            ApiError::Unauthorized("the token has no kid: cannot pick a cluster key".into())
        })?;
        let key = self.keys.iter().find(|k| k.kid == kid).ok_or_else(|| {
            ApiError::Unauthorized(format!(
                "no cluster key with kid {:?} (update the provisioner's JWKS after a key rotation)",
                kid.chars().take(64).collect::<String>()
            ))
        })?;
        let mut v = Validation::new(key.algorithm);
        v.set_audience(&[self.audience.as_str()]);
        v.set_issuer(&[self.issuer.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = LEEWAY_SECS;
        v.validate_exp = false;
        v.validate_nbf = false;
        let data =
            jsonwebtoken::decode::<ServiceAccountClaims>(token, &key.key, &v).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                let reason = match e.kind() {
                    K::InvalidAlgorithm | K::InvalidAlgorithmName => format!(
                        "token algorithm not accepted (key {:?} verifies {:?} only)",
                        key.kid, key.algorithm
                    ),
                    K::InvalidSignature => "token signature does not verify".to_string(),
                    K::ExpiredSignature => "token expired".to_string(),
                    K::ImmatureSignature => "token not yet valid (nbf)".to_string(),
                    K::InvalidAudience => {
                        format!("token audience does not include {:?}", self.audience)
                    }
                    K::InvalidIssuer => "token issuer mismatch".to_string(),
                    K::MissingRequiredClaim(c) => format!("token lacks the {c} claim"),
                    _ => format!("invalid service-account token: {e}"),
                };
                ApiError::Unauthorized(reason)
            })?;
        let claims = data.claims;
        let leeway = i64::try_from(LEEWAY_SECS).unwrap_or(i64::MAX);
        let exp = claims
            .exp
            .ok_or_else(|| ApiError::Unauthorized("token lacks the exp claim".into()))?;
        if exp < now.saturating_sub(leeway) {
            return Err(ApiError::Unauthorized("token expired".into()));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.saturating_add(leeway))
        {
            return Err(ApiError::Unauthorized("token not yet valid (nbf)".into()));
        }
        let iat = claims.iat.ok_or_else(|| {
            ApiError::Unauthorized("token lacks the iat claim (its age is bounded)".into())
        })?;
        if iat > now + leeway {
            return Err(ApiError::Unauthorized(
                "token issued in the future (iat)".into(),
            ));
        }
        let max_age = i64::try_from(self.max_token_age.duration().as_secs()).unwrap_or(i64::MAX);
        if now - iat > max_age + leeway {
            return Err(ApiError::Unauthorized(format!(
                "token older than {} (iat); the kubelet refreshes projected tokens well before that",
                self.max_token_age
            )));
        }
        let k8s = claims.kubernetes.ok_or_else(|| {
            ApiError::Unauthorized(
                "not a projected service-account token (no kubernetes.io claim)".into(),
            )
        })?;
        let ns = k8s.namespace;
        let sa = k8s.serviceaccount.map(|s| s.name).ok_or_else(|| {
            ApiError::Unauthorized("token lacks kubernetes.io.serviceaccount".into())
        })?;
        if !is_namespace(&ns) || !is_service_account(&sa) {
            return Err(ApiError::Unauthorized(
                "kubernetes.io names a malformed namespace or service account".into(),
            ));
        }
        if claims.sub != format!("system:serviceaccount:{ns}:{sa}") {
            return Err(ApiError::Unauthorized(
                "token sub does not match its kubernetes.io namespace and service account".into(),
            ));
        }
        Ok(Workload {
            namespace: ns,
            service_account: sa,
        })
    }
}

/// What a verified service-account token says.
#[derive(Debug)]
pub(crate) struct Workload {
    pub namespace: String,
    pub service_account: String,
}

/// Read a JWKS file (relative to `base_dir`).
pub(crate) fn read_jwks_file(file: &Path, base_dir: &Path) -> Result<String, String> {
    let path = if file.is_relative() {
        base_dir.join(file)
    } else {
        file.to_path_buf()
    };
    let meta = std::fs::metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    if meta.len() > 1024 * 1024 {
        return Err(format!("{}: larger than 1 MiB", path.display()));
    }
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The claims of a projected service-account token that Signet reads. Others (`jti`,
/// `kubernetes.io.pod`, `node`, `warnafter`...) are ignored.
#[derive(Debug, Deserialize)]
struct ServiceAccountClaims {
    sub: String,
    /// Required: jsonwebtoken refuses a token without it (after this struct is read, so
    /// `Option` here keeps its "lacks the exp claim"); compared with the clock in `verify_at`.
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(rename = "kubernetes.io", default)]
    kubernetes: Option<KubernetesClaim>,
}

#[derive(Debug, Deserialize)]
struct KubernetesClaim {
    namespace: String,
    #[serde(default)]
    serviceaccount: Option<ObjectRef>,
}

#[derive(Debug, Deserialize)]
struct ObjectRef {
    name: String,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::collections::BTreeSet;

    const P256_JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn jwks_keys_need_a_kid_and_a_supported_type() {
        assert_eq!(
            check_jwks(&format!(r#"{{"keys":[{P256_JWK}]}}"#)).expect("ok"),
            vec!["ec1"]
        );
        let no_kid = P256_JWK.replace(r#""kid":"ec1","#, "");
        assert!(check_jwks(&format!(r#"{{"keys":[{no_kid}]}}"#)).is_err());
        let hmac = r#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#;
        assert!(check_jwks(hmac).is_err(), "symmetric keys are refused");
        let wrong_alg = P256_JWK.replace(r#""kid":"ec1""#, r#""kid":"ec1","alg":"RS256""#);
        assert!(check_jwks(&format!(r#"{{"keys":[{wrong_alg}]}}"#)).is_err());
        let small_rsa = r#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}"#;
        assert!(check_jwks(small_rsa).is_err());
        assert!(check_jwks(r#"{"keys":[]}"#).is_err());
        assert!(check_jwks("not json").is_err());
        let twice = format!(r#"{{"keys":[{P256_JWK},{P256_JWK}]}}"#);
        assert!(check_jwks(&twice).is_err());
    }

    /// Kubernetes' own fixtures (discovery document, JWKS, signing keys) and tokens laid out
    /// as an API server writes them: `tests/vectors/kubernetes/README.md` says where each
    /// comes from. The tokens were issued at `VECTOR_IAT` and have expired, so they are
    /// verified with a fixed clock (`verify_at`); `verify` itself keeps the system clock.
    mod vector {
        pub const DISCOVERY: &str =
            include_str!("../tests/vectors/kubernetes/openid-configuration.json");
        pub const JWKS: &str = include_str!("../tests/vectors/kubernetes/jwks.json");
        pub const RSA_PUB: &str = include_str!("../tests/vectors/kubernetes/sa-rsa.pub");
        pub const EC_PUB: &str = include_str!("../tests/vectors/kubernetes/sa-ecdsa.pub");
        pub const PROJECTED_RS256: &str =
            include_str!("../tests/vectors/kubernetes/projected-rs256.jwt");
        pub const PROJECTED_ES256: &str =
            include_str!("../tests/vectors/kubernetes/projected-es256.jwt");
        pub const DEFAULT_AUDIENCE_ES256: &str =
            include_str!("../tests/vectors/kubernetes/projected-default-audience-es256.jwt");
        pub const LEGACY_RS256: &str =
            include_str!("../tests/vectors/kubernetes/legacy-secret-rs256.jwt");
        /// `iat` (and `nbf`) of every vector token: 2025-12-01T00:00:00Z.
        pub const IAT: i64 = 1_764_547_200;
        pub const RSA_KID: &str = "JHJehTTTZlsspKHT-GaJxK7Kd1NQgZJu3fyK6K_QDYU";
        pub const EC_KID: &str = "SoABiieYuNx4UdqYvZRVeuC6SihxgLrhLy9peHMHpTc";
    }

    fn discovery() -> serde_json::Value {
        serde_json::from_str(vector::DISCOVERY).expect("discovery document")
    }

    fn vector_verifier(audience: &str) -> KubernetesVerifier {
        let issuer = discovery()["issuer"].as_str().expect("issuer").to_string();
        KubernetesVerifier::new(&KubernetesSettings {
            issuer: &issuer,
            audience,
            jwks_json: vector::JWKS,
            max_token_age: None,
        })
        .expect("Kubernetes' JWKS and discovery issuer make a valid provisioner")
    }

    /// The reason of an Unauthorized refusal (anything else fails the test).
    fn refusal(r: Result<Workload, ApiError>) -> String {
        match r {
            Err(ApiError::Unauthorized(reason)) => reason,
            other => panic!("expected an Unauthorized refusal, got {other:?}"),
        }
    }

    /// A token with its payload replaced, the header and signature kept.
    fn with_payload(token: &str, edit: impl Fn(&str) -> String) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.trim().split('.');
        let (h, p, sig) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let json = String::from_utf8(b64.decode(p).unwrap()).unwrap();
        format!("{h}.{}.{sig}", b64.encode(edit(&json)))
    }

    #[test]
    fn kubernetes_vectors_jwks_keys_ids_and_discovery_agree() {
        // Signet reads Kubernetes' JWKS as published, both keys, with their kids.
        assert_eq!(
            check_jwks(vector::JWKS).expect("Kubernetes' JWKS"),
            vec![vector::RSA_KID, vector::EC_KID]
        );
        // Kubernetes' kid: base64url(SHA-256(SubjectPublicKeyInfo DER)) of the signing key.
        for (pem, kid) in [
            (vector::RSA_PUB, vector::RSA_KID),
            (vector::EC_PUB, vector::EC_KID),
        ] {
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap();
            let digest = ring::digest::digest(&ring::digest::SHA256, &der);
            assert_eq!(
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()),
                kid
            );
        }
        // The discovery document names the JWKS path Signet's docs tell operators to copy,
        // and exactly the algorithms Signet derives from the keys' types.
        let doc = discovery();
        let issuer = doc["issuer"].as_str().unwrap();
        assert_eq!(
            doc["jwks_uri"].as_str().unwrap(),
            format!("{issuer}/openid/v1/jwks")
        );
        let advertised: BTreeSet<String> = doc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let derived: BTreeSet<String> = parse_jwks(vector::JWKS)
            .unwrap()
            .iter()
            .map(|k| format!("{:?}", k.algorithm))
            .collect();
        assert_eq!(advertised, derived);
    }

    #[test]
    fn kubernetes_vectors_projected_tokens_verify_with_a_fixed_clock() {
        let v = vector_verifier("signet");
        let expected: BTreeSet<String> = [
            "dns:api.prod.svc",
            "dns:api.prod.svc.cluster.local",
            "uri:spiffe://cluster.local/ns/prod/sa/api",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        let leeway = LEEWAY_SECS as i64;
        for token in [vector::PROJECTED_RS256, vector::PROJECTED_ES256] {
            let token = token.trim();
            let w = v
                .verify_at(token, vector::IAT + 60)
                .expect("a cluster's token verifies");
            assert_eq!(
                (w.namespace.as_str(), w.service_account.as_str()),
                ("prod", "api")
            );
            // The names the default templates give that workload (the authority's part).
            let templates = signet_authority::KubernetesNames::new(&[], &[], None, None).unwrap();
            let names: BTreeSet<String> = templates
                .names_for(&w.namespace, &w.service_account)
                .unwrap()
                .iter()
                .map(|n| n.to_string())
                .collect();
            assert_eq!(names, expected);
            // exp = iat + 3600: accepted up to the leeway past it, refused a second later.
            let exp = vector::IAT + 3600;
            assert!(v.verify_at(token, exp + leeway).is_ok());
            assert_eq!(
                refusal(v.verify_at(token, exp + leeway + 1)),
                "token expired"
            );
            // nbf = iat: refused before it (beyond the leeway).
            assert_eq!(
                refusal(v.verify_at(token, vector::IAT - leeway - 1)),
                "token not yet valid (nbf)"
            );
            // The production path reads the real clock: these tokens are long expired.
            assert_eq!(refusal(v.verify(token)), "token expired");
            // One changed claim and the signature no longer verifies.
            let forged = with_payload(token, |j| j.replace("\"prod\"", "\"kube-system\""));
            assert_eq!(
                refusal(v.verify_at(&forged, vector::IAT + 60)),
                "token signature does not verify"
            );
        }
        // A token for another audience is refused although its signature is good.
        let other = vector_verifier("vault");
        assert!(
            refusal(other.verify_at(vector::PROJECTED_ES256.trim(), vector::IAT + 60))
                .contains("audience does not include \"vault\"")
        );
    }

    #[test]
    fn kubernetes_vectors_default_token_is_refused_unless_its_audience_is_configured() {
        let token = vector::DEFAULT_AUDIENCE_ES256.trim();
        // The kube-api-access token is for the API server, not for Signet.
        let signet = vector_verifier("signet");
        assert!(
            refusal(signet.verify_at(token, vector::IAT + 60))
                .contains("audience does not include \"signet\"")
        );
        // A provisioner configured with that audience reads it (warnafter is ignored)...
        let api = vector_verifier("https://kubernetes.default.svc.cluster.local");
        let w = api.verify_at(token, vector::IAT + 60).expect("verifies");
        assert_eq!(
            (w.namespace.as_str(), w.service_account.as_str()),
            ("prod", "api")
        );
        // ...but its year-long expiry does not make it usable for a year: max_token_age.
        assert!(
            refusal(api.verify_at(token, vector::IAT + 2 * 3600)).starts_with("token older than")
        );
    }

    #[test]
    fn kubernetes_vectors_legacy_secret_token_is_refused_after_its_signature_checks() {
        let v = vector_verifier("signet");
        let token = vector::LEGACY_RS256.trim();
        // Signed by the cluster's key, but with no exp and no aud: never accepted (which of
        // the two is named first is up to jsonwebtoken).
        let reason = refusal(v.verify_at(token, vector::IAT));
        assert!(
            ["token lacks the exp claim", "token lacks the aud claim"].contains(&reason.as_str()),
            "{reason}"
        );
        // That refusal comes after the signature check: a changed claim fails that first.
        let forged = with_payload(token, |j| j.replace("\"prod\"", "\"kube-system\""));
        assert_eq!(
            refusal(v.verify_at(&forged, vector::IAT)),
            "token signature does not verify"
        );
    }
}
