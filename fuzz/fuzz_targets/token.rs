//! Bearer credential verification (`signet_api::fuzzing::verify_authorization`: the
//! `Authorization` header, then the admin token or a provisioner JWT with its pinned
//! algorithm, issuer, audience, lifetime, `jti` and `sans` checks, and a `kubernetes`
//! provisioner's service-account token checks: `kid`, issuer, audience, age, namespace).
//!
//! The first byte selects how the rest is used:
//! - `0`, `1`: the raw `Authorization` header value;
//! - `2`: JWT claims (JSON), signed as ES256 by the `fuzz-es256` provisioner's key with a
//!   standard header, so the fuzzer reaches the claim checks behind the signature;
//! - `3`: `HEADER-JSON \0 CLAIMS-JSON`, signed the same way, for header confusion.
//!
//! In claims, `$NOW`, `$EXP` (now + 2 min), `$FAR` (now + 1 h) and `$OLD` (now - 1 h) are
//! replaced by Unix times, so seeds stay current.
//!
//! Invariants: a verified JWT was signed with the provisioner's key under its one algorithm
//! (its header says `ES256`), names its issuer, this audience, and lives at most 5 minutes
//! (+30 s leeway); the admin token is recognised only exactly.
#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::fuzz_target;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use signet_api::{AdminCredential, Provisioner, ProvisionerConfig};
use signet_ca::Policy;

const AUDIENCE: &str = "https://ca.fuzz.internal:8443";
const ADMIN_TOKEN: &str = "sa_fuzz-admin-token-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

struct Fixture {
    admin: AdminCredential,
    provisioners: Vec<Provisioner>,
    signer: EcdsaKeyPair,
    rng: SystemRandom,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let p = |name: &str, key: DecodingKey, alg: Algorithm| {
            Provisioner::new(name, key, alg, Policy::allow_all(), 1000, 2000).expect(name)
        };
        let provisioners = vec![
            p(
                "fuzz-es256",
                DecodingKey::from_ec_pem(include_bytes!("../keys/token-p256.pub")).expect("p256"),
                Algorithm::ES256,
            ),
            p(
                "fuzz-eddsa",
                DecodingKey::from_ed_pem(include_bytes!("../keys/token-ed25519.pub"))
                    .expect("ed25519"),
                Algorithm::EdDSA,
            ),
            p(
                "fuzz-rs256",
                DecodingKey::from_rsa_pem(include_bytes!("../keys/token-rsa.pub")).expect("rsa"),
                Algorithm::RS256,
            ),
            kubernetes(),
        ];
        let rng = SystemRandom::new();
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            include_bytes!("../keys/token-p256.pk8.der"),
            &rng,
        )
        .expect("p256 signing key");
        Fixture {
            admin: AdminCredential::from_token(ADMIN_TOKEN),
            provisioners,
            signer,
            rng,
        }
    })
}

/// The service-account issuer of the fuzz cluster; its JWKS is the ES256 provisioner's
/// public key under kid `fuzz-kid`, so tokens this harness signs can verify for it too.
const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn kubernetes() -> Provisioner {
    let text = format!(
        "name = \"fuzz-k8s\"\ntype = \"kubernetes\"\nissuer = \"{K8S_ISSUER}\"\naudience = \"signet\"\njwks = '{}'\nnamespaces = [\"prod\"]\n",
        include_str!("../keys/k8s-jwks.json").trim()
    );
    let cfg: ProvisionerConfig = toml::from_str(&text).expect("kubernetes provisioner config");
    Provisioner::from_config(&cfg, std::path::Path::new("/")).expect("kubernetes provisioner")
}

fn substitute(claims: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    claims
        .replace("$NOW", &now.to_string())
        .replace("$EXP", &(now + 120).to_string())
        .replace("$FAR", &(now + 3600).to_string())
        .replace("$OLD", &(now - 3600).to_string())
}

fn signed(f: &Fixture, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = f
        .signer
        .sign(&f.rng, input.as_bytes())
        .expect("ES256 signing");
    format!("Bearer {input}.{}", B64.encode(sig.as_ref()))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let (value, header) = match mode % 4 {
        0 | 1 => (rest.to_vec(), None),
        2 => {
            let Ok(claims) = std::str::from_utf8(rest) else {
                return;
            };
            let header = r#"{"alg":"ES256","typ":"JWT"}"#.to_string();
            (
                signed(f, &header, &substitute(claims)).into_bytes(),
                Some(header),
            )
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            let (header, claims) = text.split_once('\0').unwrap_or((text, "{}"));
            (
                signed(f, header, &substitute(claims)).into_bytes(),
                Some(header.to_string()),
            )
        }
    };
    let result =
        signet_api::fuzzing::verify_authorization(&value, &f.admin, &f.provisioners, AUDIENCE);
    let Ok(who) = result else { return };
    if who == "admin" {
        let text = String::from_utf8_lossy(&value);
        let token = text.split_once(' ').map(|(_, t)| t.trim()).unwrap_or("");
        assert_eq!(token, ADMIN_TOKEN, "only the admin token is the admin");
        return;
    }
    // Only tokens this harness signed can verify: the fuzzer has no private key.
    let header = header.expect("a raw input verified as a provisioner token");
    let alg = serde_json::from_str::<serde_json::Value>(&header)
        .ok()
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(str::to_string));
    assert_eq!(
        alg.as_deref(),
        Some("ES256"),
        "verified under another algorithm: {header}"
    );
    let token = String::from_utf8_lossy(&value);
    let token = token.split_once(' ').map(|(_, t)| t.trim()).unwrap_or("");
    let claims: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
        .expect("a verified token's claims decode");
    if who.starts_with("k8s:") {
        // A service-account token: reusable, so no single-use lifetime cap. The namespace
        // and service-account allow-lists are applied by the issue handler (`admit`), not
        // here, so any namespace may authenticate.
        assert!(who.starts_with("k8s:fuzz-k8s:"), "{who}");
        assert_eq!(claims["iss"], K8S_ISSUER);
        return;
    }
    assert!(who.starts_with("token:fuzz-es256:"), "{who}");
    assert_eq!(claims["iss"], "fuzz-es256");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let exp = claims["exp"].as_i64().expect("exp is an integer");
    assert!(
        exp - now <= 330 + 5,
        "a token living {} s was accepted",
        exp - now
    );
    assert!(exp >= now - 35, "an expired token was accepted");
});
