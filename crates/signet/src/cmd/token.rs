//! `signet token`: mint a one-time provisioner token (a JWT) that lets a workload request a
//! certificate for the names in it. Runs offline, with the provisioner's signing key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use signet_ca::{SubjectName, encode_private_key, read_private_key_file};

use super::Refused;
use crate::client::CaUrl;

/// Longest lifetime a token may have; the server refuses longer ones.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(300);
/// Shortest lifetime accepted (a token must survive the trip to the server).
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The Signet API URL the token is for (its audience), exactly as clients will use it
    /// [default: the saved context's].
    #[arg(long, env = "SIGNET_CA_URL", value_name = "URL")]
    ca_url: Option<String>,
    /// Who the token is for (recorded as the requester), e.g. a workload name.
    #[arg(long)]
    subject: String,
    /// A name the certificate may carry: DNS name, IP address, URI or email. Repeat for more.
    #[arg(long = "san", value_name = "NAME", required = true)]
    sans: Vec<String>,
    /// Data directory created by `signet init` (holds provisioners/NAME.key).
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The provisioner that signs the token (its `iss` and `kid`).
    #[arg(long, default_value = "default")]
    provisioner: String,
    /// The provisioner's private key, PKCS#8 PEM (default: DIR/provisioners/NAME.key).
    #[arg(long, alias = "provisioner-key", value_name = "FILE")]
    key: Option<PathBuf>,
    /// Token lifetime, at most 5m.
    #[arg(long, default_value = "5m")]
    ttl: String,
}

/// What a provisioner token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// The provisioner's name.
    pub iss: String,
    /// The CA URL, as given with any trailing "/" removed.
    pub aud: String,
    /// Who the token is for.
    pub sub: String,
    /// Names the certificate may carry.
    pub sans: Vec<String>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds).
    pub nbf: i64,
    /// Expiry (Unix seconds), at most 300 s after `iat`.
    pub exp: i64,
    /// Unique token id: 32 hex digits from the system RNG.
    pub jti: String,
}

/// The token request, checked.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub ca_url: CaUrl,
    pub provisioner: String,
    pub subject: String,
    pub sans: Vec<String>,
    pub ttl: Duration,
}

/// A provisioner name as the server accepts it (also safe as a file name).
pub(crate) fn check_provisioner_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Refused(
            "--provisioner: 1-64 letters, digits, '-', '_' or '.' (not starting with '.')".into(),
        )
        .into())
    }
}

/// Parse and bound `--ttl`.
pub fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let d = humantime::parse_duration(s.trim()).map_err(|_| {
        Refused(format!(
            "--ttl {s:?}: expected a duration such as 5m or 90s"
        ))
    })?;
    if d > MAX_TOKEN_TTL {
        return Err(Refused(format!("--ttl {s}: a token lives at most 5m")).into());
    }
    if d < MIN_TOKEN_TTL {
        return Err(Refused(format!("--ttl {s}: a token lives at least 10s")).into());
    }
    Ok(d)
}

impl TokenRequest {
    fn from_args(args: &TokenArgs) -> anyhow::Result<TokenRequest> {
        check_provisioner_name(&args.provisioner)?;
        let subject = args.subject.trim();
        if subject.is_empty() || subject.len() > 256 || subject.chars().any(char::is_control) {
            return Err(Refused("--subject: 1-256 printable characters".into()).into());
        }
        for san in &args.sans {
            SubjectName::parse_loose(san).map_err(|e| Refused(format!("--san {san:?}: {e}")))?;
        }
        Ok(TokenRequest {
            ca_url: crate::client::resolve_ca_url(args.ca_url.as_deref())?,
            provisioner: args.provisioner.clone(),
            subject: subject.to_string(),
            sans: args.sans.clone(),
            ttl: parse_ttl(&args.ttl)?,
        })
    }

    /// The claims of a token issued at `now` (Unix seconds).
    pub fn claims(&self, now: i64) -> anyhow::Result<TokenClaims> {
        let mut id = [0u8; 16];
        SystemRandom::new()
            .fill(&mut id)
            .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
        let ttl = i64::try_from(self.ttl.as_secs().min(MAX_TOKEN_TTL.as_secs()))
            .context("token lifetime")?;
        Ok(TokenClaims {
            iss: self.provisioner.clone(),
            aud: self.ca_url.as_str().to_string(),
            sub: self.subject.clone(),
            sans: self.sans.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl,
            jti: hex::encode(id),
        })
    }
}

/// Sign `claims` with a provisioner key (PKCS#8 PEM, unencrypted or decrypted with
/// `passphrase`). The algorithm follows the key: P-256 ES256, P-384 ES384, Ed25519 EdDSA,
/// RSA RS256. The header's `kid` is the provisioner name.
pub fn sign(claims: &TokenClaims, key: &rcgen::KeyPair) -> anyhow::Result<String> {
    let alg = key.algorithm();
    let algorithm = if alg == &rcgen::PKCS_ECDSA_P256_SHA256 {
        Algorithm::ES256
    } else if alg == &rcgen::PKCS_ECDSA_P384_SHA384 {
        Algorithm::ES384
    } else if alg == &rcgen::PKCS_ED25519 {
        Algorithm::EdDSA
    } else if alg == &rcgen::PKCS_RSA_SHA256
        || alg == &rcgen::PKCS_RSA_SHA384
        || alg == &rcgen::PKCS_RSA_SHA512
    {
        Algorithm::RS256
    } else {
        anyhow::bail!("unsupported provisioner key type (use P-256, Ed25519 or RSA)");
    };
    let pem = encode_private_key(key, None).context("re-encoding the provisioner key")?;
    let encoding = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .context("loading the provisioner key for signing")?;
    let mut header = Header::new(algorithm);
    header.kid = Some(claims.iss.clone());
    jsonwebtoken::encode(&header, claims, &encoding).context("signing the token")
}

/// The default key file of a provisioner.
pub fn default_key_path(dir: &Path, provisioner: &str) -> PathBuf {
    crate::datadir::DataDir::new(dir).provisioner_key(provisioner)
}

/// Read a provisioner's signing key (decrypted with SIGNET_CA_PASSPHRASE when encrypted).
pub fn read_provisioner_key(path: &Path) -> anyhow::Result<rcgen::KeyPair> {
    let passphrase = super::passphrase();
    read_private_key_file(path, passphrase.as_ref().map(|p| p.as_str()))
        .with_context(|| format!("reading the provisioner key {}", path.display()))
}

impl TokenRequest {
    /// Mint the token now, signed with `key`.
    pub fn mint(&self, key: &rcgen::KeyPair) -> anyhow::Result<String> {
        let now = signet_ca::OffsetDateTime::now_utc().unix_timestamp();
        sign(&self.claims(now)?, key)
    }
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    let req = TokenRequest::from_args(&args)?;
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| default_key_path(&args.dir, &req.provisioner));
    let key = read_provisioner_key(&key_path)?;
    println!("{}", req.mint(&key)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    fn request(ttl: &str) -> anyhow::Result<TokenRequest> {
        let args = TokenArgs {
            ca_url: Some("https://ca.internal:8443/".into()),
            subject: "billing-api".into(),
            sans: vec![
                "api.internal".into(),
                "10.0.0.1".into(),
                "spiffe://cluster.local/ns/a/sa/b".into(),
                "ops@example.com".into(),
            ],
            dir: PathBuf::from("unused"),
            provisioner: "default".into(),
            key: None,
            ttl: ttl.into(),
        };
        TokenRequest::from_args(&args)
    }

    fn public_pem(key: &rcgen::KeyPair) -> String {
        key.public_key_pem()
    }

    fn verify(token: &str, key: &rcgen::KeyPair, alg: Algorithm) -> TokenClaims {
        let pem = public_pem(key);
        let decoding = match alg {
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem.as_bytes()),
            _ => DecodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("public key");
        let mut v = Validation::new(alg);
        v.set_audience(&["https://ca.internal:8443"]);
        v.set_issuer(&["default"]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<TokenClaims>(token, &decoding, &v).expect("verifies");
        assert_eq!(data.header.kid.as_deref(), Some("default"));
        assert_eq!(data.header.alg, alg);
        assert_eq!(data.header.typ.as_deref(), Some("JWT"));
        data.claims
    }

    #[test]
    fn p256_token_verifies_with_pinned_es256() {
        let key = signet_ca::KeyType::P256.generate().expect("key");
        let req = request("5m").expect("valid");
        let now = signet_ca::OffsetDateTime::now_utc().unix_timestamp();
        let token = sign(&req.claims(now).expect("claims"), &key).expect("signed");
        let claims = verify(&token, &key, Algorithm::ES256);
        assert_eq!(claims.iss, "default");
        assert_eq!(claims.aud, "https://ca.internal:8443");
        assert_eq!(claims.sub, "billing-api");
        assert_eq!(
            claims.sans,
            [
                "api.internal",
                "10.0.0.1",
                "spiffe://cluster.local/ns/a/sa/b",
                "ops@example.com"
            ]
        );
        assert_eq!(claims.iat, now);
        assert_eq!(claims.nbf, now);
        assert!(claims.exp - claims.iat <= 300);
        assert_eq!(claims.exp - claims.iat, 300);
        assert_eq!(claims.jti.len(), 32);
        assert!(claims.jti.bytes().all(|b| b.is_ascii_hexdigit()));

        // A second token has a fresh jti.
        let again = req.claims(now).expect("claims");
        assert_ne!(again.jti, claims.jti);

        // Another key, or the wrong algorithm, does not verify it.
        let other = signet_ca::KeyType::P256.generate().expect("key");
        let decoding = DecodingKey::from_ec_pem(public_pem(&other).as_bytes()).expect("pem");
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["https://ca.internal:8443"]);
        assert!(jsonwebtoken::decode::<TokenClaims>(&token, &decoding, &v).is_err());
        let decoding = DecodingKey::from_ec_pem(public_pem(&key).as_bytes()).expect("pem");
        let mut v = Validation::new(Algorithm::ES384);
        v.set_audience(&["https://ca.internal:8443"]);
        assert!(jsonwebtoken::decode::<TokenClaims>(&token, &decoding, &v).is_err());
    }

    #[test]
    fn ed25519_token_uses_eddsa() {
        let key = signet_ca::KeyType::Ed25519.generate().expect("key");
        let req = request("90s").expect("valid");
        let now = signet_ca::OffsetDateTime::now_utc().unix_timestamp();
        let token = sign(&req.claims(now).expect("claims"), &key).expect("signed");
        let claims = verify(&token, &key, Algorithm::EdDSA);
        assert_eq!(claims.exp - claims.iat, 90);
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(request("5m").is_ok());
        assert!(request("300s").is_ok());
        for bad in ["6m", "301s", "1h", "5s", "soon", ""] {
            let e = request(bad).expect_err(bad);
            assert!(e.downcast_ref::<Refused>().is_some(), "{bad}: {e}");
        }
    }

    #[test]
    fn inputs_are_checked() {
        let mut args = TokenArgs {
            ca_url: Some("http://ca.internal".into()),
            subject: "x".into(),
            sans: vec!["api.internal".into()],
            dir: PathBuf::from("d"),
            provisioner: "default".into(),
            key: None,
            ttl: "5m".into(),
        };
        assert!(TokenRequest::from_args(&args).is_err(), "http URL");
        args.ca_url = Some("https://ca.internal".into());
        assert!(TokenRequest::from_args(&args).is_ok());
        args.provisioner = "../etc".into();
        assert!(
            TokenRequest::from_args(&args).is_err(),
            "path in provisioner"
        );
        args.provisioner = "default".into();
        args.sans = vec!["not a name!".into()];
        assert!(TokenRequest::from_args(&args).is_err(), "bad san");
        assert_eq!(
            default_key_path(Path::new("data"), "default"),
            Path::new("data/provisioners/default.key")
        );
    }

    #[tokio::test]
    async fn run_reads_a_private_key_file_and_refuses_a_readable_one() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let key = signet_ca::KeyType::P256.generate().expect("key");
        let pem = encode_private_key(&key, None).expect("pem");
        std::fs::create_dir(crate::datadir::DataDir::new(dir.path()).provisioners())
            .expect("mkdir");
        let path = default_key_path(dir.path(), "default");
        signet_ca::write_private_key_file(&path, &pem).expect("write");
        let args = |ttl: &str| TokenArgs {
            ca_url: Some("https://ca.internal:8443".into()),
            subject: "s".into(),
            sans: vec!["api.internal".into()],
            dir: dir.path().to_path_buf(),
            provisioner: "default".into(),
            key: None,
            ttl: ttl.into(),
        };
        run(args("5m")).await.expect("token");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(run(args("5m")).await.is_err(), "group-readable key");
    }
}
