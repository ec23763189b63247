//! Anti-replay nonces (RFC 8555 section 6.5), stateless: a nonce is its issue time and 8
//! random bytes, authenticated by an HMAC-SHA-256 under a key every `signet serve` on the
//! database shares (`acme_secrets`), so any replica accepts any replica's nonces without
//! asking the others. A nonce is good for [`NONCE_LIFETIME`]; within it, its first use is
//! recorded in the database's replay filter (a `used_tokens` row, group-committed, purged after
//! the lifetime),
//! so a second use is refused by every replica.

use std::time::Duration;

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use signet_store::Store;
use time::OffsetDateTime;

use crate::jws::{b64url, from_b64url};
use crate::problem::{AcmeError, ProblemType};

/// How long a nonce is accepted after it was made.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// How far in the future a nonce's time may be (another replica's clock running ahead).
const CLOCK_SKEW_SECS: i64 = 60;
/// The `acme_secrets` row holding the key.
const SECRET_NAME: &str = "nonce-hmac-sha256";
const TAG_LEN: usize = 16;
const NONCE_LEN: usize = 8 + 8 + TAG_LEN;

/// Makes and checks nonces.
#[derive(Clone)]
pub struct Nonces {
    key: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces")
    }
}

impl Nonces {
    /// The nonces of every server on `store`'s database (the first to start makes the key).
    pub async fn load(store: &Store) -> Result<Nonces, AcmeError> {
        let rng = SystemRandom::new();
        let mut candidate = [0u8; 32];
        rng.fill(&mut candidate)
            .map_err(|_| AcmeError::internal("no randomness for the nonce key"))?;
        let secret = store.acme_secret(SECRET_NAME, &b64url(&candidate)).await?;
        let key_bytes = from_b64url("the stored nonce key", &secret)
            .map_err(|_| AcmeError::internal("the stored nonce key is not base64url"))?;
        Ok(Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, &key_bytes),
            rng,
        })
    }

    /// A fresh nonce.
    pub fn make(&self) -> String {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let mut raw = [0u8; NONCE_LEN];
        raw[..8].copy_from_slice(&now.to_be_bytes());
        // A failing system RNG leaves zeros: the nonce is still unique by the replay filter
        // within its second, and the MAC still authenticates it.
        let _ = self.rng.fill(&mut raw[8..16]);
        let tag = hmac::sign(&self.key, &raw[..16]);
        raw[16..].copy_from_slice(&tag.as_ref()[..TAG_LEN]);
        b64url(&raw)
    }

    /// Accept `nonce` once: made by a server of this database, within its lifetime, and
    /// not used before. Anything else is `badNonce`.
    pub async fn consume(&self, store: &Store, nonce: &str) -> Result<(), AcmeError> {
        let bad = |why: &str| AcmeError::new(ProblemType::BadNonce, why.to_string());
        let raw = from_b64url("the nonce", nonce).map_err(|_| bad("the nonce is malformed"))?;
        if raw.len() != NONCE_LEN {
            return Err(bad("the nonce was not made by this server"));
        }
        let tag = hmac::sign(&self.key, &raw[..16]);
        let diff = tag.as_ref()[..TAG_LEN]
            .iter()
            .zip(&raw[16..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(bad("the nonce was not made by this server"));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&raw[..8]);
        let made = i64::from_be_bytes(ts);
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let lifetime = i64::try_from(NONCE_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        if made > now.saturating_add(CLOCK_SKEW_SECS) || made < now.saturating_sub(lifetime) {
            return Err(bad("the nonce has expired"));
        }
        let expires = OffsetDateTime::from_unix_timestamp(made.saturating_add(lifetime))
            .map_err(|_| bad("the nonce has expired"))?;
        if !store.acme_use_nonce(nonce, expires).await? {
            return Err(bad("the nonce has already been used"));
        }
        Ok(())
    }
}
