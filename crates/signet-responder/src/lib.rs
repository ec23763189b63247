//! Signet's revocation publisher: an OCSP responder and the CRL download point, over plain
//! HTTP, as relying parties (OpenSSL, nginx stapling, Go, rustls) expect.
//!
//! The responder never holds the CA's issuing key. It holds:
//! - the issuing CA *certificate*, to recognise its CertIDs ([`signet_pkix::ocsp::OcspIssuerIds`])
//!   and to serve it at `/ca/issuing.crt` for AIA caIssuers;
//! - a delegated OCSP signer ([`signet_pkix::ocsp::OcspSigner`]): a P-256 key generated in memory at
//!   start and never written anywhere, with a short-lived certificate that a process holding
//!   the CA key signs ([`CertifySigner`]), rotated at half its life ([`Responder::run_signer`]);
//! - the database, which is the single source of truth for revocation. CRLs are signed by the
//!   CA process when it publishes them; the responder serves the latest stored one.
//!
//! Answers to the RFC 5019 common case (one CertID, no nonce) are signed once and cached per
//! serial; they are re-signed once half their validity has passed, and dropped the moment the
//! certificate is revoked ([`Responder::certificate_revoked`] in the revoking process,
//! [`Responder::watch_changes`] everywhere else). See `ocsp.rs` for the HTTP side.
//!
//! Routes ([`app`]): `POST /ocsp`, `GET /ocsp/{base64 request}`, `GET /crl/{issuer}.crl`
//! (DER) and `.pem`, `GET /crl/root.crl` and `.pem` (the root CA's CRL, signed offline with
//! `signet ca root-crl`), `GET /crl/chain.pem` (the issuing CA's CRL then the root's: what
//! nginx `ssl_crl` needs), the partitioned and delta CRLs (`GET /crl/shard/{key id}/{n}.crl`,
//! `{n}-delta.crl`, `/crl/{issuer}-delta.crl`, all also `.pem`) and their index
//! (`GET /crl/index.json`), `GET /ca/{issuer}.crt` (DER) and `.pem`, `GET /healthz`,
//! `GET /readyz` (200 while a signer is installed and the view of the database is fresh).
#![forbid(unsafe_code)]

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use signet_pkix::PkixError;
use signet_pkix::ocsp::OcspSigner;
use signet_store::{Store, StoreError};
use time::OffsetDateTime;

mod cache;
mod crl;
mod http;
mod issuer;
mod metrics;
mod ocsp;
mod signer;
mod watch;

pub use issuer::IssuerCertificate;
pub use signer::{CertifySigner, StoreCertifier, generate_signer_key};

/// The issuer name used in URLs (`/crl/issuing.crl`, `/ca/issuing.crt`) for the one issuing
/// CA Signet runs; it matches the default `[urls]` of `signet.toml`.
pub const DEFAULT_ISSUER_NAME: &str = "issuing";

/// The name of the root CA's CRL in URLs: `/crl/root.crl` and `/crl/root.pem`.
pub const ROOT_CRL_NAME: &str = "root";

/// The name of the concatenated CRLs (issuing CA's, then the root's) in URLs:
/// `/crl/chain.pem`.
pub const CHAIN_CRL_NAME: &str = "chain";

/// How the responder behaves. [`ResponderConfig::default`] gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderConfig {
    /// The name of the issuing CA in URLs: `/crl/{name}.crl`, `/ca/{name}.crt`.
    pub issuer_name: String,
    /// nextUpdate − thisUpdate of OCSP responses (default 4 h). Cached responses are
    /// re-signed once half of it has passed, and HTTP caches are told to keep them no
    /// longer than that.
    pub ocsp_validity: Duration,
    /// How often the database is polled for revocations made by other processes (default
    /// 200 ms). On PostgreSQL a `NOTIFY` usually arrives first.
    pub poll_interval: Duration,
    /// The most cached OCSP responses kept (default 100,000; about 1 KiB each).
    pub max_cached: usize,
    /// The full CRL's public URL (`[urls] crl`), from which `/crl/index.json` writes the
    /// shard and delta CRLs' URLs; without it the index gives their paths.
    pub crl_url: Option<String>,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            issuer_name: DEFAULT_ISSUER_NAME.to_string(),
            ocsp_validity: Duration::from_secs(4 * 3600),
            poll_interval: Duration::from_millis(200),
            max_cached: 100_000,
            crl_url: None,
        }
    }
}

/// Everything that can go wrong in the responder outside a request (requests never fail:
/// they get an OCSP error status or an HTTP error status).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResponderError {
    /// The issuing CA certificate given to the responder is unusable.
    #[error("issuing CA certificate: {0}")]
    IssuerCertificate(String),

    /// The configuration is unusable (the message says which setting).
    #[error("configuration: {0}")]
    Config(String),

    /// No delegated signing certificate could be obtained or installed.
    #[error("OCSP signer: {0}")]
    Signer(String),

    /// An OCSP signer, an OCSP request or response that the PKIX layer refused (a signer
    /// certificate and key that do not go together, a key that did not sign).
    #[error(transparent)]
    Pkix(#[from] PkixError),

    /// Whatever certifies the responder's key (the CA, through [`CertifySigner`]) refused or
    /// failed; its error as it gave it. The responder holds no CA and names none of its types.
    #[error(transparent)]
    Certifier(Box<dyn std::error::Error + Send + Sync>),

    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The responder: shared state behind the routes of [`app`] and the background tasks
/// ([`Responder::watch_changes`], [`Responder::run_signer`]). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Responder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: IssuerCertificate,
    /// The root CA above the issuing CA, whose CRL (signed offline) is served too.
    root: Option<IssuerCertificate>,
    store: Store,
    config: ResponderConfig,
    signer: RwLock<Option<Arc<ActiveSigner>>>,
    cache: cache::OcspCache,
    crl: RwLock<Option<Arc<crl::PublishedCrl>>>,
    /// The issuing CA's shard and delta CRLs.
    partitions: crl::Partitions,
    root_crl: RwLock<Option<Arc<crl::PublishedCrl>>>,
    /// Earlier issuing CAs of the same root whose CRLs are still served; replaced whole
    /// (see [`Responder::set_previous_issuers`]), so requests take a snapshot.
    previous: RwLock<Arc<Vec<Arc<crl::PreviousCrl>>>>,
    /// The last `/crl/chain.pem` body built, for the CRL numbers it was built from.
    chain_crl: RwLock<Option<Arc<crl::ChainCrl>>>,
    /// The root CRL state last warned about (number × 2 + expired; 0: none yet).
    root_crl_warned: std::sync::atomic::AtomicU64,
    /// Wakes [`Responder::watch_changes`] before its next poll.
    wake: tokio::sync::Notify,
    /// Requests without a nonce already parsed, by their DER (see `ocsp.rs`).
    parsed: ocsp::ParsedRequests,
    /// How fresh the view of the database is (see `watch.rs`).
    view: ViewFreshness,
}

/// When [`Responder::watch_changes`] last saw the database up to date: a poll that
/// succeeded on a primary, or on a standby streaming from its primary.
#[derive(Debug, Default)]
struct ViewFreshness {
    /// Whether `watch_changes` runs at all (a responder without it answers from the
    /// database per request and is as fresh as the database).
    watching: std::sync::atomic::AtomicBool,
    /// Unix milliseconds of the last fresh poll; 0 before the first.
    fresh_at_ms: std::sync::atomic::AtomicI64,
}

impl ViewFreshness {
    fn start_watching(&self) {
        self.watching
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn seen_fresh(&self) {
        self.fresh_at_ms
            .store(now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    /// How long ago the view was last fresh; `None` if not watching, and `Duration::MAX`
    /// if never.
    fn age(&self) -> Option<Duration> {
        if !self.watching.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        let at = self.fresh_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        if at == 0 {
            return Some(Duration::MAX);
        }
        Some(Duration::from_millis(
            u64::try_from(now_ms().saturating_sub(at)).unwrap_or(0),
        ))
    }
}

fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// The signer in use and when to replace it.
#[derive(Debug)]
pub(crate) struct ActiveSigner {
    pub(crate) signer: OcspSigner,
    pub(crate) rotate_at: OffsetDateTime,
}

impl Responder {
    /// A responder for the issuing CA `issuer`, answering from `store`. It answers
    /// `tryLater` until a signer is installed ([`Responder::install_signer`] or
    /// [`Responder::run_signer`]), and serves CRLs once [`Responder::refresh_crl`] (or
    /// [`Responder::watch_changes`]) has loaded one.
    pub fn new(
        store: Store,
        issuer: IssuerCertificate,
        config: ResponderConfig,
    ) -> Result<Self, ResponderError> {
        Self::with_root(store, issuer, None, config)
    }

    /// As [`Responder::new`], also serving the CRL of `root` (the root CA above the issuing
    /// CA) at `/crl/root.crl`, `/crl/root.pem` and, after the issuing CA's, in
    /// `/crl/chain.pem`. The root's CRLs are signed offline (`signet ca root-crl`) and
    /// stored under the root's key identifier. Without a root, those routes answer 404. A
    /// root with the issuing CA's own key (a one-level hierarchy) is ignored: its CRL is the
    /// issuing CA's.
    pub fn with_root(
        store: Store,
        issuer: IssuerCertificate,
        root: Option<IssuerCertificate>,
        config: ResponderConfig,
    ) -> Result<Self, ResponderError> {
        if config.ocsp_validity < Duration::from_secs(60) {
            return Err(ResponderError::Config(
                "the OCSP response validity must be at least one minute".into(),
            ));
        }
        if config.issuer_name.is_empty()
            || !config
                .issuer_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ResponderError::Config(format!(
                "issuer name {:?}: use letters, digits, - and _",
                config.issuer_name
            )));
        }
        if [ROOT_CRL_NAME, CHAIN_CRL_NAME].contains(&config.issuer_name.as_str()) {
            return Err(ResponderError::Config(format!(
                "issuer name {:?} is reserved for the root CA's CRLs",
                config.issuer_name
            )));
        }
        let root = root.filter(|r| r.key_id_hex() != issuer.key_id_hex());
        let cache = cache::OcspCache::new(config.max_cached);
        Ok(Responder {
            inner: Arc::new(Inner {
                issuer,
                root,
                store,
                config,
                signer: RwLock::new(None),
                cache,
                crl: RwLock::new(None),
                partitions: crl::Partitions::default(),
                root_crl: RwLock::new(None),
                previous: RwLock::new(Arc::new(Vec::new())),
                chain_crl: RwLock::new(None),
                root_crl_warned: std::sync::atomic::AtomicU64::new(0),
                wake: tokio::sync::Notify::new(),
                parsed: ocsp::ParsedRequests::default(),
                view: ViewFreshness::default(),
            }),
        })
    }

    /// Also serve the CRLs of these earlier issuing CAs of the same root (kept after
    /// `signet ca new-issuing`; `signet serve` keeps signing them with the kept keys), at
    /// `/crl/{issuer_name}-{serial}.crl` and `.pem`, and in `/crl/chain.pem` between the
    /// issuing CA's and the root's, so that relying parties checking CRLs for the whole
    /// chain still accept those CAs' unexpired certificates. OCSP stays for the current
    /// issuing CA only. Each call replaces the set (`signet responder` does on SIGHUP, when
    /// the kept files changed); a CA already served keeps the CRL it has loaded.
    pub fn set_previous_issuers(&self, issuers: Vec<IssuerCertificate>) {
        let mut slot = self
            .inner
            .previous
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = slot.clone();
        let previous = issuers
            .into_iter()
            .filter(|i| i.key_id_hex() != self.inner.issuer.key_id_hex())
            .map(|issuer| {
                old.iter()
                    .find(|p| p.issuer.der() == issuer.der())
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(crl::PreviousCrl {
                            name: format!(
                                "{}-{}",
                                self.inner.config.issuer_name,
                                issuer.serial_hex()
                            ),
                            issuer,
                            slot: RwLock::new(None),
                            partitions: crl::Partitions::default(),
                        })
                    })
            })
            .collect();
        *slot = Arc::new(previous);
    }

    /// The earlier issuing CAs served now.
    pub(crate) fn previous(&self) -> Arc<Vec<Arc<crl::PreviousCrl>>> {
        self.inner
            .previous
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The issuing CA this responder answers for.
    pub fn issuer(&self) -> &IssuerCertificate {
        &self.inner.issuer
    }

    /// The root CA whose CRL this responder serves, if it was given one.
    pub fn root(&self) -> Option<&IssuerCertificate> {
        self.inner.root.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &ResponderConfig {
        &self.inner.config
    }

    /// Start signing with `signer` (a delegated certificate for this responder's key, issued
    /// by this responder's CA). Cached responses signed by the previous signer are dropped.
    /// It will be replaced once half its remaining life has passed.
    pub fn install_signer(&self, signer: OcspSigner) -> Result<(), ResponderError> {
        let now = OffsetDateTime::now_utc();
        if signer.not_after() <= now {
            return Err(ResponderError::Signer(
                "the signer certificate has expired".into(),
            ));
        }
        let rotate_at = now + (signer.not_after() - now) / 2;
        tracing::info!(
            serial = %signer.serial(),
            not_after = %signet_pkix::rfc3339(signer.not_after()),
            "OCSP signer installed"
        );
        let active = Arc::new(ActiveSigner { signer, rotate_at });
        *self
            .inner
            .signer
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(active);
        self.inner.cache.clear();
        Ok(())
    }

    pub(crate) fn signer(&self) -> Option<Arc<ActiveSigner>> {
        self.inner
            .signer
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Whether it can answer from a fresh enough view (what `/readyz` reports): a signer is
    /// installed and, while [`Responder::watch_changes`] runs, its last successful poll of
    /// an up-to-date database (a primary, or a hot standby streaming from its primary) is
    /// at most [`Responder::fresh_for`] old.
    pub fn is_ready(&self) -> bool {
        self.not_ready_because().is_none()
    }

    /// How old the view of the database may grow before the responder reports itself not
    /// ready: five poll intervals, and at least 2 s.
    pub fn fresh_for(&self) -> Duration {
        (self.inner.config.poll_interval * 5).max(Duration::from_secs(2))
    }

    /// Why `/readyz` fails, if it does.
    fn not_ready_because(&self) -> Option<String> {
        if self.signer().is_none() {
            return Some("waiting for an OCSP signing certificate".into());
        }
        match self.inner.view.age() {
            Some(age) if age > self.fresh_for() => Some(if age == Duration::MAX {
                "no up-to-date view of the database yet".into()
            } else {
                format!(
                    "the view of the database is {} ms old (the database cannot be read, or \
                     is a standby not streaming from its primary)",
                    age.as_millis()
                )
            }),
            _ => None,
        }
    }

    /// Tell the responder that `serial` was just revoked (by this process): its cached
    /// answer is dropped now, before the caller's revocation request returns, so the next
    /// OCSP request already reads the revocation from the database.
    pub fn certificate_revoked(&self, serial: &signet_pkix::Serial) {
        self.inner.cache.invalidate(serial);
        self.inner.wake.notify_one();
    }

    /// Tell the responder that something changed in the database (a new CRL, for one), so
    /// [`Responder::watch_changes`] looks now rather than at its next poll.
    pub fn changed(&self) {
        self.inner.wake.notify_one();
    }

    /// How many OCSP responses are cached.
    pub fn cached_responses(&self) -> usize {
        self.inner.cache.len()
    }
}

/// The responder's routes, with `responder` as their state.
pub fn app(responder: Responder) -> Router {
    Router::new()
        .route("/ocsp", post(ocsp::post))
        .route("/ocsp/", post(ocsp::post))
        .route("/crl/{file}", get(crl::get_crl))
        .route("/crl/shard/{kid}/{file}", get(crl::get_shard))
        .route("/ca/{file}", get(crl::get_ca))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics::get))
        // GET /ocsp/{request} is the fallback rather than a `{*request}` route, which
        // would percent-decode the whole request into a path parameter that nothing
        // reads: the handler decodes the path itself (`ocsp::get`), and anything else
        // unmatched is a 404 there.
        .fallback(ocsp::get_or_not_found)
        .with_state(responder)
}

async fn ready(
    axum::extract::State(r): axum::extract::State<Responder>,
) -> (axum::http::StatusCode, String) {
    match r.not_ready_because() {
        None => (axum::http::StatusCode::OK, "ready\n".into()),
        Some(why) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("{why}\n"),
        ),
    }
}
