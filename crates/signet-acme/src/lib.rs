//! Signet's ACME server (RFC 8555): what Boulder calls the web front end. It speaks ACME
//! over HTTP, keeps ACME's objects (accounts, orders, authorizations, challenges) in the
//! store, has challenges checked by the validation authority ([`signet_va::Va`]), and
//! issues through the same [`signet_authority::Authority`] as the REST API, as the
//! requester [`signet_authority::Requester::Acme`] (the account under its provisioner): the
//! authority decides, signs, records and audits. Revocation goes through the store and the
//! same revocation hook as the REST API's.
//!
//! Each `acme` provisioner has its own directory, `{server}/acme/{provisioner}/directory`.
//! [`router`] builds the routes; the binary serves them beside the REST API.
//!
//! | module | owns |
//! |---|---|
//! | `handlers` | the endpoints and the request pipeline (body, JWS, `url`, key, nonce) |
//! | `jws` | JWS parsing, JWKs and thumbprints, signature and EAB MAC verification |
//! | `nonce` | stateless MAC nonces and the shared replay filter |
//! | `objects` | the JSON objects sent and the payloads accepted |
//! | `problem` | problem documents: the one place an error becomes HTTP |
//! | `urls` | resource URLs, built from the request's origin |
//! | `ari` | ACME Renewal Information (RFC 9773): CertIDs and suggested windows |
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use signet_authority::{Authority, Provisioner};
use signet_ca::{Lifetime, Policy, Profile, RevocationReason, Serial};
use signet_store::{Store, StoreError};

mod ari;
mod handlers;
pub mod jws;
mod nonce;
mod objects;
pub mod problem;
mod urls;

pub use ari::cert_id;
pub use handlers::router;
pub use nonce::NONCE_LIFETIME;
pub use problem::{AcmeError, ProblemType};
pub use urls::PREFIX;

/// The largest request body accepted (a CSR for an RSA-8192 key with 100 names fits).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// How long an order and its authorizations may take to complete.
pub const ORDER_LIFETIME: Duration = Duration::from_secs(8 * 3600);
/// How long expired orders are kept before the cleanup removes them.
pub const EXPIRED_ORDER_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How often the cleanup runs.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// The default lifetime of an ACME certificate.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// Most identifiers one order may have.
pub const MAX_IDENTIFIERS: usize = 100;

/// Called with the serial and reason of each certificate revoked through ACME, after the
/// revocation is committed (the binary gives the revocation publisher's, as to the API).
pub type RevocationHook = Arc<dyn Fn(&Serial, RevocationReason) + Send + Sync>;

/// Called with the problem type's name (`badNonce`) of each refused ACME request (the
/// binary counts them in the API's `signet_refusals_total`).
pub type RefusalHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Longest an ACME request may take, by default, before it is answered 408 (see
/// [`AcmeServer::with_request_timeout`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which identifier types a provisioner accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentifierTypes {
    /// `dns` (RFC 8555).
    pub dns: bool,
    /// `ip` (RFC 8738).
    pub ip: bool,
}

impl Default for IdentifierTypes {
    fn default() -> Self {
        IdentifierTypes {
            dns: true,
            ip: true,
        }
    }
}

/// One `acme` provisioner's settings, checked.
#[derive(Clone, Debug)]
pub struct ProvisionerSettings {
    /// Its name: the directory is `/acme/{name}/directory`.
    pub name: String,
    /// What its accounts may be issued (names, profiles, lifetimes).
    pub policy: Policy,
    /// The profile its certificates are issued under.
    pub profile: Profile,
    /// Their lifetime.
    pub lifetime: Lifetime,
    /// Whether new accounts need an external account binding.
    pub eab_required: bool,
    /// The identifier types accepted.
    pub identifiers: IdentifierTypes,
    /// How its challenges are validated.
    pub va: signet_va::VaConfig,
    /// Its rate limit (requests per second, burst): every newAccount and newOrder takes
    /// one request from it. Shared by every `signet serve` on the database.
    pub rate_limit: (u32, u32),
    /// Each account's own limit on newOrder (per second, burst), taken before the
    /// provisioner's; `None`: none.
    pub rate_limit_per_account: Option<(u32, u32)>,
}

/// A provisioner ready to serve.
#[derive(Debug)]
pub(crate) struct AcmeProvisioner {
    pub(crate) settings: ProvisionerSettings,
    pub(crate) authority: Arc<Provisioner>,
    pub(crate) va: signet_va::Va,
}

/// Why the ACME server could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A provisioner's validation settings do not work.
    #[error("ACME provisioner {name:?}: {source}")]
    Va {
        /// The provisioner.
        name: String,
        /// Why.
        #[source]
        source: signet_va::VaError,
    },
    /// The database did not answer (loading the shared nonce key).
    #[error("loading the ACME nonce key: {0}")]
    Store(#[from] StoreError),
    /// The nonce key could not be made or read.
    #[error("ACME nonce key: {0}")]
    Nonce(String),
}

/// The ACME server: every `acme` provisioner, the authority, the store, the nonces.
#[derive(Clone, Debug)]
pub struct AcmeServer {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) authority: Arc<Authority>,
    pub(crate) store: Store,
    pub(crate) provisioners: BTreeMap<String, Arc<AcmeProvisioner>>,
    pub(crate) nonces: nonce::Nonces,
    pub(crate) https: bool,
    pub(crate) revocation_hook: Option<RevocationHook>,
    /// Set at most once, before serving.
    pub(crate) refusal_hook: std::sync::OnceLock<RefusalHook>,
    /// Set at most once, before serving; [`REQUEST_TIMEOUT`] when unset.
    pub(crate) request_timeout: std::sync::OnceLock<Duration>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeServer")
            .field(
                "provisioners",
                &self.provisioners.keys().collect::<Vec<_>>(),
            )
            .field("https", &self.https)
            .finish_non_exhaustive()
    }
}

impl AcmeServer {
    /// The ACME server for `provisioners`, issuing through `authority` and keeping its
    /// objects in `store` (the nonce key is read from it, made by the first server to
    /// start). `https`: whether clients reach it over TLS (the scheme of its URLs).
    pub async fn new(
        authority: Arc<Authority>,
        store: Store,
        provisioners: Vec<ProvisionerSettings>,
        https: bool,
        revocation_hook: Option<RevocationHook>,
    ) -> Result<AcmeServer, SetupError> {
        let mut map = BTreeMap::new();
        for settings in provisioners {
            let va = signet_va::Va::new(settings.va.clone()).map_err(|source| SetupError::Va {
                name: settings.name.clone(),
                source,
            })?;
            let authority_provisioner =
                Arc::new(Provisioner::acme(&settings.name, settings.policy.clone()));
            map.insert(
                settings.name.clone(),
                Arc::new(AcmeProvisioner {
                    settings,
                    authority: authority_provisioner,
                    va,
                }),
            );
        }
        let nonces = nonce::Nonces::load(&store)
            .await
            .map_err(|e| match e.kind {
                ProblemType::ServerInternal => SetupError::Nonce(e.detail),
                _ => SetupError::Nonce(e.to_string()),
            })?;
        Ok(AcmeServer {
            inner: Arc::new(Inner {
                authority,
                store,
                provisioners: map,
                nonces,
                https,
                revocation_hook,
                refusal_hook: std::sync::OnceLock::new(),
                request_timeout: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Call `hook` with each refusal's problem type (see [`RefusalHook`]). Set once; a
    /// second hook is ignored.
    pub fn with_refusal_hook(self, hook: RefusalHook) -> Self {
        let _ = self.inner.refusal_hook.set(hook);
        self
    }

    /// Answer 408 (a `malformed` problem document) to any ACME request not completed
    /// within `timeout` (default [`REQUEST_TIMEOUT`]): a client whose body stalls. Set
    /// once; a second value is ignored.
    pub fn with_request_timeout(self, timeout: Duration) -> Self {
        let _ = self.inner.request_timeout.set(timeout);
        self
    }

    /// The request timeout in force.
    pub fn request_timeout(&self) -> Duration {
        self.inner
            .request_timeout
            .get()
            .copied()
            .unwrap_or(REQUEST_TIMEOUT)
    }

    /// The names of the provisioners served.
    pub fn provisioner_names(&self) -> Vec<String> {
        self.inner.provisioners.keys().cloned().collect()
    }

    /// Remove used nonces past their lifetime and orders expired longer than
    /// [`EXPIRED_ORDER_RETENTION`] ago (with their authorizations and challenges).
    pub async fn cleanup(&self) -> Result<signet_store::AcmePurged, StoreError> {
        let cutoff = time::OffsetDateTime::now_utc() - EXPIRED_ORDER_RETENTION;
        self.inner.store.acme_purge(cutoff).await
    }

    /// Run [`AcmeServer::cleanup`] every [`CLEANUP_INTERVAL`], for ever.
    pub async fn run_cleanup(self) {
        let mut tick = tokio::time::interval(CLEANUP_INTERVAL);
        loop {
            tick.tick().await;
            match self.cleanup().await {
                Ok(p) if p.nonces + p.orders > 0 => {
                    tracing::info!(nonces = p.nonces, orders = p.orders, "ACME cleanup")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "ACME cleanup failed"),
            }
        }
    }
}
