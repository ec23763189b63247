//! Revocation publishing: the one component that signs Signet's CRLs, through the CA core's
//! [`CrlSigner`] (a CA's name, key identifier and key, able to sign CRLs and nothing else),
//! never through the issuing CA itself.
//!
//! - [`RevocationPublisher`] publishes the CRLs of the current issuing CA and of every kept
//!   (earlier) issuing CA: a full CRL on every revocation ([`RevocationPublisher::revoked`],
//!   the typed revocation hook the binary gives the API) and on a schedule, each stored under
//!   the next CRL number of its CA for every responder to serve.
//! - [`RevocationPublisher::publish_root_crl`] signs the offline root's CRL (`signet ca
//!   root-crl`) and [`RevocationPublisher::sign_first_root_crl`] the new root's first one
//!   (`signet init`), with a [`signet_ca::root_crl_signer`] made while the root key is at hand.
//!
//! CRL numbers come from the store's counter per CA key ([`Store::next_crl_number`]), taken
//! before the entries are read, so numbers only grow, whichever process signs, and a larger
//! number always covers at least the revocations a smaller one does.
//!
//! **One signer at a time.** Any number of `signet serve` replicas may share a database;
//! each CA's CRLs are signed by one of them, the leader: whoever holds the store's
//! [`Leadership`] `crl:<key id>` (a PostgreSQL advisory lock, released by the server when
//! the leader's connection ends, `kill -9` included; always held on SQLite). The others
//! ask for it every [`LEADER_POLL`]; the one that takes it publishes at once (covering
//! whatever was revoked during the hand-over) and then on schedule. The leader hears of
//! revocations made through other replicas by watching the revocation sequence every
//! [`LEADER_POLL`], and of its own at once. Should two processes ever both believe they
//! lead (a leader whose lost connection it has not yet noticed), each CRL still takes its
//! own number from the counter and a number is stored once: two CRLs never share a number.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use signet_ca::{CaError, CrlSigner, OffsetDateTime, RevocationReason, RevokedEntry, Serial};
use signet_ca::{CrlScope, delta_url, shard_url};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, CrlEntries, Leadership, NewCrl, ScopedCrl,
    ScopedCrlInfo, Store, StoreError,
};
use tokio::sync::{Mutex, Notify};

/// Revoked certificates read from the store per query while building a CRL.
const CRL_PAGE: u32 = 10_000;
/// At most this many of a CA's CRL partitions are built at once by
/// [`IssuerCrls::publish_all`] (fewer on fewer cores).
const BUILDERS: usize = 4;
/// Revoked certificates read per query for the root's CRL (a root revokes a handful at most).
const ROOT_CRL_PAGE: u32 = 1000;
/// How long to wait before retrying a failed publication.
const RETRY_AFTER: Duration = Duration::from_secs(10);
/// How often a replica that does not lead asks for the leadership, and how often the
/// leader looks for revocations made through other replicas.
pub const LEADER_POLL: Duration = Duration::from_secs(1);

/// Why a CRL was not published. Nothing is stored when signing or reading fails; the
/// scheduled publisher retries.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The CA core refused to sign (a reason code a full CRL cannot carry, dates out of
    /// order) or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
    /// The system clock gave a time that cannot be a CRL's.
    #[error("the time")]
    Time(#[source] time::error::ComponentRange),
    /// The blocking task building the CRL stopped (it panicked or the runtime is going away).
    #[error("the CRL builder stopped")]
    Builder(#[source] tokio::task::JoinError),
    /// What was being done when the error in `source` happened.
    #[error("{step}")]
    Step {
        /// What was being done, e.g. "storing the CRL".
        step: &'static str,
        /// What went wrong.
        #[source]
        source: Box<PublishError>,
    },
}

/// CRL encoding and signing are `signet-pkix`'s; its refusals read as the CA core's.
impl From<signet_ca::PkixError> for PublishError {
    fn from(e: signet_ca::PkixError) -> Self {
        PublishError::Ca(e.into())
    }
}

impl PublishError {
    fn during(step: &'static str) -> impl FnOnce(PublishError) -> PublishError {
        move |e| PublishError::Step {
            step,
            source: Box::new(e),
        }
    }
}

/// How often a CA's CRL is re-signed without revocations, and how long each is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlSchedule {
    /// The time from one CRL's thisUpdate to the next scheduled one.
    pub interval: Duration,
    /// nextUpdate - thisUpdate.
    pub validity: Duration,
}

/// Told what the publisher does, at once, so that it never serves stale answers: in
/// `signet serve`, the in-process OCSP responder and CRL endpoint. Both calls must be quick
/// and must not block. (Responders in other processes learn the same from the store.)
pub trait RevocationListener: Send + Sync + std::fmt::Debug + 'static {
    /// `serial` was revoked (the revocation is committed): forget any answer saying
    /// otherwise.
    fn certificate_revoked(&self, serial: &Serial);

    /// The current issuing CA's CRL `number` was just stored: serve these bytes (handed
    /// over rather than read back, so a large CRL is held once).
    fn crl_published(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    );

    /// One of the current issuing CA's shard or delta CRLs (see [`CrlLayout`]) was just
    /// stored: serve these bytes. `shard` is `None` for the full CRL's delta; `delta_base`
    /// is the base CRL's number for a delta. Listeners that serve no shards ignore it.
    fn partition_published(&self, published: PublishedPartition) {
        let _ = published;
    }
}

/// A shard or delta CRL just stored, for [`RevocationListener::partition_published`].
#[derive(Clone, Debug)]
pub struct PublishedPartition {
    /// Its shard, or `None` for the CA's full CRL (then it is a delta).
    pub shard: Option<u32>,
    /// For a delta CRL, its base CRL's number.
    pub delta_base: Option<u64>,
    /// Its CRL Number.
    pub number: u64,
    /// thisUpdate.
    pub this_update: OffsetDateTime,
    /// nextUpdate.
    pub next_update: OffsetDateTime,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// How a CA's revocations are split into CRLs (`[crl]` and `[urls] crl`).
///
/// - With no shards, one full CRL of complete scope lists every revoked, unexpired
///   certificate of the CA (no Issuing Distribution Point), as before issue 19.
/// - With `shards` N > 0, a certificate's CRL distribution point names shard
///   `shard_of(serial, N)` (fixed at issuance and stored with it); each shard's CRL lists
///   that shard's revoked certificates and carries a critical Issuing Distribution Point
///   with the shard's URL, and a revocation re-signs only its shard. The full CRL then
///   lists only the certificates of no shard (issued before), with the full CRL's URL as
///   its Issuing Distribution Point, and is published only while one of them is unexpired.
///   Shards beyond N that unexpired certificates still name (N was lowered) stay published.
/// - With `delta`, each of those CRLs is a base CRL (with a Freshest CRL pointer) re-signed
///   on schedule, and a revocation re-signs only the delta CRL of its partition (a Delta
///   CRL Indicator naming the base, listing what was revoked since the base was built).
///
/// Every CRL of a CA, of any partition, takes the next number of the CA's one counter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CrlLayout {
    /// The full CRL's URL (`[urls] crl`); shard and delta URLs are made from it. Without
    /// it neither shards nor deltas are published.
    pub full_url: Option<String>,
    /// `[crl] shards`; 0 for none.
    pub shards: u32,
    /// `[crl] delta`.
    pub delta: bool,
}

impl CrlLayout {
    fn sharded(&self) -> bool {
        self.shards > 0 && self.full_url.is_some()
    }

    fn deltas(&self) -> bool {
        self.delta && self.full_url.is_some()
    }
}

/// One CRL partition of a CA: its full CRL or one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Part {
    Full,
    Shard(u32),
}

impl Part {
    fn shard(self) -> Option<u32> {
        match self {
            Part::Full => None,
            Part::Shard(n) => Some(n),
        }
    }
}

/// Publishes the CRLs of the current issuing CA and of the kept earlier ones (whose
/// certificates may still be in use until they expire or renew onto the current CA), each
/// on every revocation and on its [`CrlSchedule`].
///
/// Cloning gives another handle to the same publishers.
#[derive(Clone, Debug)]
pub struct RevocationPublisher {
    current: IssuerCrls,
    previous: Vec<IssuerCrls>,
    listener: Option<Arc<dyn RevocationListener>>,
}

/// When each of a [`RevocationPublisher`]'s CAs next publishes on schedule, from
/// [`RevocationPublisher::publish_if_stale`]; what [`RevocationPublisher::run`] starts from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirstWaits {
    current: Duration,
    previous: Vec<Duration>,
}

impl RevocationPublisher {
    /// Publishers for `current` (whose CRLs also go to `listener`) and for each of
    /// `previous` (whose CRLs responders load from the store). Nothing is published yet.
    pub fn new(
        store: Store,
        current: CrlSigner,
        previous: Vec<CrlSigner>,
        schedule: CrlSchedule,
        listener: Option<Arc<dyn RevocationListener>>,
    ) -> Self {
        RevocationPublisher {
            current: IssuerCrls::new(current, store.clone(), listener.clone(), schedule),
            previous: previous
                .into_iter()
                .map(|signer| IssuerCrls::new(signer, store.clone(), None, schedule))
                .collect(),
            listener,
        }
    }

    /// Partition the CRLs as `layout` says (the default: one full CRL per CA).
    pub fn with_layout(mut self, layout: CrlLayout) -> Self {
        let layout = Arc::new(layout);
        self.current.layout = layout.clone();
        for p in &mut self.previous {
            p.layout = layout.clone();
        }
        self
    }

    /// Before serving: publish now each CRL that is missing or expired (a due but still
    /// valid one is replaced by [`Self::run`] at once, in the background: building a CRL of
    /// a million entries takes seconds). Returns when each is next due.
    pub async fn publish_if_stale(&self) -> Result<FirstWaits, PublishError> {
        let current = self
            .current
            .publish_if_stale()
            .await
            .map_err(PublishError::during("publishing the CRL"))?;
        let mut previous = Vec::with_capacity(self.previous.len());
        for p in &self.previous {
            previous.push(p.publish_if_stale().await.map_err(PublishError::during(
                "publishing the CRL of an earlier issuing CA",
            ))?);
        }
        Ok(FirstWaits { current, previous })
    }

    /// The revocation hook: `serial` was revoked for `reason` and the revocation is
    /// committed. Tells the listener and asks every CA's publisher for a new CRL soon
    /// (coalesced: revocations that arrive during a build are covered by the next one).
    /// Never blocks. Every CA's publisher is asked, since a certificate of a kept CA is
    /// revoked through the same API.
    pub fn revoked(&self, serial: &Serial, reason: RevocationReason) {
        tracing::debug!(
            serial = %serial.to_hex(),
            reason = reason.name(),
            "scheduling CRLs after a revocation"
        );
        if let Some(l) = &self.listener {
            l.certificate_revoked(serial);
        }
        self.current.note_revoked(serial);
        for p in &self.previous {
            p.note_revoked(serial);
        }
    }

    /// Publish every CA's CRL on each revocation and on its schedule, starting from
    /// `first` (from [`Self::publish_if_stale`]), until this future is dropped.
    pub async fn run(self, first: FirstWaits) {
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(self.current.run(first.current));
        for (p, wait) in self.previous.into_iter().zip(first.previous) {
            tasks.spawn(p.run(wait));
        }
        // The publishers loop forever; dropping this future drops the set, which aborts them.
        while tasks.join_next().await.is_some() {}
    }

    /// Sign the root's next CRL with `root` (from [`signet_ca::root_crl_signer`]), valid for
    /// `validity`, and store it under the root's key id with the next CRL Number for that
    /// key (so numbers only grow, whichever machine signs). It lists what the store records
    /// as issued by the root's key and revoked (normally nothing). `actor` goes in the audit
    /// row.
    pub async fn publish_root_crl(
        store: &Store,
        root: &CrlSigner,
        validity: Duration,
        actor: &str,
    ) -> Result<RootCrl, PublishError> {
        let key_id = hex::encode(root.key_id());
        let this_update = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(PublishError::Time)?;
        let next_update = this_update + validity;
        // Taken before the entries are read, as the issuing CA's publisher does.
        let number = store
            .next_crl_number(&key_id)
            .await
            .map_err(|e| PublishError::during("taking the next root CRL number")(e.into()))?;
        let mut entries = Vec::new();
        let mut after: Option<Serial> = None;
        loop {
            let page = store
                .revoked_for_crl(&key_id, this_update, after.as_ref(), ROOT_CRL_PAGE)
                .await
                .map_err(|e| {
                    PublishError::during("reading the certificates the root revoked")(e.into())
                })?;
            let done = page.len() < ROOT_CRL_PAGE as usize;
            after = page.last().map(|r| r.serial.clone());
            entries.extend(page.into_iter().map(crl_entry));
            if done {
                break;
            }
        }
        let count = entries.len();
        let der = root
            .sign_crl(number, this_update, next_update, entries)
            .map_err(|e| PublishError::during("signing the root CRL")(e.into()))?;
        store
            .store_crl(&NewCrl {
                issuer_key_id: key_id.clone(),
                number,
                this_update,
                next_update,
                der: der.clone(),
            })
            .await
            .map_err(|e| PublishError::during("storing the root CRL")(e.into()))?;
        let audit = AuditEntry {
            actor: actor.to_string(),
            action: AuditAction::PublishRootCrl,
            serial: None,
            outcome: AuditOutcome::Ok,
            detail: format!(
                "root {key_id}: CRL number {number}, {count} entries, nextUpdate {next_update}"
            ),
        };
        if let Err(e) = store.append_audit(&audit).await {
            // The CRL is stored and valid; the audit row is a record of it, not a condition.
            tracing::warn!(error = %e, "recording the root CRL in the audit log failed");
        }
        Ok(RootCrl {
            number,
            next_update,
            entries: count,
            der,
        })
    }

    /// The new root's first CRL (empty: it has revoked nothing), signed with `root` under
    /// the root's first CRL number and valid for `validity`, to be recorded with the new CA
    /// in one transaction ([`Store::record_new_ca`]) rather than stored here.
    pub async fn sign_first_root_crl(
        store: &Store,
        root: &CrlSigner,
        validity: Duration,
    ) -> Result<NewCrl, PublishError> {
        let issuer_key_id = hex::encode(root.key_id());
        let this_update = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(PublishError::Time)?;
        let next_update = this_update + validity;
        let number = store
            .next_crl_number(&issuer_key_id)
            .await
            .map_err(|e| PublishError::during("taking the first root CRL number")(e.into()))?;
        let der = root
            .sign_crl(number, this_update, next_update, Vec::new())
            .map_err(|e| PublishError::during("signing the first root CRL")(e.into()))?;
        Ok(NewCrl {
            issuer_key_id,
            number,
            this_update,
            next_update,
            der,
        })
    }
}

/// A root CRL signed and stored by [`RevocationPublisher::publish_root_crl`].
#[derive(Debug)]
pub struct RootCrl {
    /// Its CRL Number.
    pub number: u64,
    /// Its nextUpdate: a new one must be signed before then.
    pub next_update: OffsetDateTime,
    /// How many certificates it lists.
    pub entries: usize,
    /// The CRL, DER.
    pub der: Vec<u8>,
}

/// One CA's CRLs: re-signed after revocations (coalesced: revocations that arrive during a
/// build are covered by the next one) and every `interval`. It holds the CA's
/// [`CrlSigner`], never the CA: it can sign CRLs and nothing else.
#[derive(Clone, Debug)]
struct IssuerCrls {
    signer: CrlSigner,
    store: Store,
    /// Told at once about each new CRL (the current CA's only).
    listener: Option<Arc<dyn RevocationListener>>,
    schedule: CrlSchedule,
    layout: Arc<CrlLayout>,
    wake: Arc<Notify>,
    /// Revocations heard of through the hook and not yet published.
    pending: Arc<std::sync::Mutex<Pending>>,
    /// The newest base CRL of each partition this process knows of: (number, revocation
    /// cursor), what its deltas extend.
    bases: Arc<std::sync::Mutex<HashMap<Part, (u64, i64)>>>,
    /// Whether this process signs this CA's CRLs (see the module's comment).
    leadership: Arc<Mutex<Leadership>>,
}

/// Revocations to publish: their serials, or everything when too many were heard of.
#[derive(Debug, Default)]
struct Pending {
    serials: Vec<Serial>,
    everything: bool,
}

/// More pending serials than this and every CRL of the CA is re-signed instead.
const MAX_PENDING: usize = 10_000;

impl Pending {
    fn add(&mut self, serial: Serial) {
        if self.serials.len() >= MAX_PENDING {
            self.everything = true;
            self.serials.clear();
        } else if !self.everything {
            self.serials.push(serial);
        }
    }
}

impl IssuerCrls {
    fn new(
        signer: CrlSigner,
        store: Store,
        listener: Option<Arc<dyn RevocationListener>>,
        schedule: CrlSchedule,
    ) -> Self {
        let leadership = store.leadership(&format!("crl:{}", hex::encode(signer.key_id())));
        IssuerCrls {
            signer,
            store,
            listener,
            schedule,
            layout: Arc::new(CrlLayout::default()),
            wake: Arc::new(Notify::new()),
            pending: Arc::default(),
            bases: Arc::default(),
            leadership: Arc::new(Mutex::new(leadership)),
        }
    }

    fn key_id(&self) -> String {
        hex::encode(self.signer.key_id())
    }

    /// Whether this process leads (signs this CA's CRLs) now, taking the leadership if it
    /// is free; a change is logged.
    async fn lead(&self) -> bool {
        let mut leadership = self.leadership.lock().await;
        let before = leadership.is_held();
        let now = match leadership.check().await {
            Ok(held) => held,
            Err(e) => {
                // Said once when it stops this process signing, not every second after.
                if before {
                    tracing::warn!(error = %e, "cannot check the CRL leadership; not signing CRLs meanwhile");
                } else {
                    tracing::debug!(error = %e, "cannot check the CRL leadership");
                }
                false
            }
        };
        if now != before {
            let key_id = self.key_id();
            if now {
                tracing::info!(issuer_key_id = %key_id, "this replica now signs the CA's CRLs (CRL leader)");
            } else {
                tracing::info!(issuer_key_id = %key_id, "this replica no longer signs the CA's CRLs");
            }
        }
        now
    }

    /// `serial` was revoked: publish what lists it soon. Never blocks.
    fn note_revoked(&self, serial: &Serial) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(serial.clone());
        self.wake.notify_one();
    }

    fn take_pending(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The partitions this CA publishes at `now`: the full CRL (unless the CA shards and no
    /// unexpired certificate names it any more), and every shard up to the largest shard
    /// count ever configured for the CA (certificates issued before the count was lowered
    /// still name the higher ones; an empty shard's CRL is a few hundred bytes).
    async fn parts(&self, now: OffsetDateTime) -> Result<Vec<Part>, PublishError> {
        let key_id = self.key_id();
        let mut parts = Vec::new();
        let shards = if self.layout.sharded() {
            self.layout.shards
        } else {
            0
        };
        if shards == 0
            || self
                .store
                .has_unexpired_unsharded(&key_id, now, signet_ca::OcspSignerCertificate::PROFILE)
                .await?
        {
            parts.push(Part::Full);
        }
        let span = if self.layout.full_url.is_some() {
            self.store.crl_shard_span(&key_id, shards).await?
        } else {
            0
        };
        parts.extend((0..span).map(Part::Shard));
        Ok(parts)
    }

    /// The URL of `part`'s CRL, if the layout has URLs.
    fn part_url(&self, part: Part) -> Option<String> {
        let full = self.layout.full_url.as_deref()?;
        Some(match part {
            Part::Full => full.to_string(),
            Part::Shard(n) => shard_url(full, self.signer.key_id(), n),
        })
    }

    /// Which revoked certificates `part`'s CRL lists.
    fn entries(&self, part: Part) -> CrlEntries {
        match part {
            Part::Full if self.layout.sharded() => CrlEntries::Unsharded,
            Part::Full => CrlEntries::All,
            Part::Shard(n) => CrlEntries::Shard(n),
        }
    }

    /// The base CRL's scope: an IDP for a shard (and for the full CRL of a sharded CA), a
    /// Freshest CRL pointer with deltas.
    fn base_scope(&self, part: Part) -> CrlScope {
        let url = self.part_url(part);
        CrlScope {
            distribution_point: match part {
                Part::Full if !self.layout.sharded() => None,
                _ => url.clone(),
            },
            delta_of: None,
            freshest: url.filter(|_| self.layout.deltas()).map(|u| delta_url(&u)),
        }
    }

    /// Publish now unless a still valid CRL of each partition is stored; returns when the
    /// next scheduled publication is due (zero when it is overdue).
    async fn publish_if_stale(&self) -> Result<Duration, PublishError> {
        let key_id = self.key_id();
        let now = OffsetDateTime::now_utc();
        // Only the numbers and dates: the responder loads the DER itself (`watch_changes`,
        // or the first request), after the listeners are up, so a large CRL does not delay
        // the start.
        // A CRL that is due but still valid is replaced by `run` at once, in the background
        // (building one of a million entries takes seconds); only a missing or expired one
        // is published before serving.
        let stored = if self.layout.sharded() || self.layout.deltas() {
            self.store.scoped_crls(&key_id).await?
        } else {
            self.store
                .latest_crl_info(&key_id)
                .await?
                .map(|i| ScopedCrlInfo {
                    shard: None,
                    delta_base: None,
                    number: i.number,
                    this_update: i.this_update,
                    next_update: i.next_update,
                    revocation_cursor: 0,
                })
                .into_iter()
                .collect()
        };
        let parts = self.parts(now).await?;
        let mut oldest: Option<OffsetDateTime> = None;
        let mut complete = true;
        for part in &parts {
            let base = stored
                .iter()
                .find(|i| i.shard == part.shard() && i.delta_base.is_none());
            match base {
                Some(b) if b.next_update > now => {
                    oldest = Some(oldest.map_or(b.this_update, |o| o.min(b.this_update)));
                    self.remember_base(*part, b.number, b.revocation_cursor);
                }
                _ => complete = false,
            }
        }
        if complete && let Some(oldest) = oldest {
            let due = oldest + self.schedule.interval;
            return Ok((due - now).try_into().unwrap_or(Duration::ZERO));
        }
        if !self.lead().await {
            // Another replica signs; `run` takes over if it goes away.
            return Ok(LEADER_POLL);
        }
        self.publish_all().await?;
        Ok(self.schedule.interval)
    }

    fn remember_base(&self, part: Part, number: u64, cursor: i64) {
        let mut bases = self.bases.lock().unwrap_or_else(|p| p.into_inner());
        let entry = bases.entry(part).or_insert((number, cursor));
        if entry.0 < number {
            *entry = (number, cursor);
        }
    }

    fn known_base(&self, part: Part) -> Option<(u64, i64)> {
        self.bases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&part)
            .copied()
    }

    /// Every partition's base CRL (and, with deltas, a fresh delta after each): on
    /// schedule, at start and on taking over.
    async fn publish_all(&self) -> Result<(), PublishError> {
        let started = std::time::Instant::now();
        let parts = self.parts(OffsetDateTime::now_utc()).await?;
        // Partitions are independent (each takes its own number from the CA's counter), so
        // they are built side by side: while one waits for the database, another encodes
        // and signs. One task per core, at most BUILDERS.
        let width = std::thread::available_parallelism()
            .map_or(1, std::num::NonZeroUsize::get)
            .clamp(1, BUILDERS);
        let mut todo = parts.iter().copied();
        let mut running = tokio::task::JoinSet::new();
        let mut failure: Option<PublishError> = None;
        loop {
            while failure.is_none() && running.len() < width {
                let Some(part) = todo.next() else { break };
                let me = self.clone();
                running.spawn(async move {
                    me.publish_base(part).await?;
                    if me.layout.deltas() {
                        me.publish_delta(part).await?;
                    }
                    Ok::<(), PublishError>(())
                });
            }
            // On a failure nothing more is started; those running finish (each stores a
            // complete CRL or nothing) and the first error is returned.
            match running.join_next().await {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    failure.get_or_insert(e);
                }
                Some(Err(e)) => {
                    failure.get_or_insert(PublishError::Builder(e));
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        if parts.len() > 1 {
            tracing::info!(
                issuer_key_id = %self.key_id(),
                crls = parts.len(),
                total_ms = started.elapsed().as_millis(),
                "published every CRL partition"
            );
        }
        Ok(())
    }

    /// After revocations of `serials`: re-sign what lists them (their partitions' deltas
    /// with deltas, else their partitions' CRLs). Serials of other CAs are skipped.
    async fn publish_for(&self, serials: &[Serial]) -> Result<(), PublishError> {
        let key_id = self.key_id();
        let mut parts = BTreeSet::new();
        if !self.layout.sharded() && !self.layout.deltas() {
            // One full CRL of every revocation: no need to look the serials up.
            parts.insert(Part::Full);
        } else {
            for serial in serials {
                match self.store.certificate_crl_shard(serial).await? {
                    Some((key, shard)) if key == key_id => {
                        parts.insert(match shard {
                            Some(n) if self.layout.full_url.is_some() => Part::Shard(n),
                            _ => Part::Full,
                        });
                    }
                    // Another CA's certificate, or gone: nothing of this CA lists it.
                    _ => {}
                }
            }
        }
        for part in parts {
            if self.layout.deltas() && self.known_base(part).is_some() {
                self.publish_delta(part).await?;
            } else {
                self.publish_base(part).await?;
            }
        }
        Ok(())
    }

    /// Build, sign and store `part`'s base CRL of every unexpired revoked certificate in it;
    /// returns its number.
    async fn publish_base(&self, part: Part) -> Result<u64, PublishError> {
        let scope = self.base_scope(part);
        // Read before the number and the entries: every revocation up to it is listed.
        let cursor = self.store.revocation_cursor().await?;
        let number = self.publish_crl(part, scope, None, cursor).await?;
        self.remember_base(part, number, cursor);
        Ok(number)
    }

    /// Build, sign and store `part`'s delta CRL: what was revoked since its newest base.
    /// Publishes a base instead when there is none yet.
    async fn publish_delta(&self, part: Part) -> Result<u64, PublishError> {
        let Some((base, base_cursor)) = self.known_base(part) else {
            return self.publish_base(part).await;
        };
        let mut scope = self.base_scope(part);
        scope.freshest = None;
        scope.delta_of = Some(base);
        let cursor = self.store.revocation_cursor().await?;
        self.publish_crl(part, scope, Some(base_cursor), cursor)
            .await
    }

    /// Build, sign and store one CRL of `part` with `scope` (listing the revocations after
    /// `since` in the revocation sequence, for a delta); returns its number.
    async fn publish_crl(
        &self,
        part: Part,
        scope: CrlScope,
        since: Option<i64>,
        cursor: i64,
    ) -> Result<u64, PublishError> {
        let key_id = self.key_id();
        let this_update = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(PublishError::Time)?;
        let next_update = this_update + self.schedule.validity;
        // Taken before the entries are read, so that a larger number always covers at least
        // the revocations a smaller one does (see Store::next_crl_number).
        let number = self.store.next_crl_number(&key_id).await?;
        let delta_base = scope.delta_of;

        // The entries stream from the store a page at a time into the one buffer that
        // becomes the CRL, on a blocking thread since sign_crl reads a plain iterator.
        let started = std::time::Instant::now();
        let (signer, store, key) = (self.signer.clone(), self.store.clone(), key_id.clone());
        let entries_of = self.entries(part);
        let handle = tokio::runtime::Handle::current();
        let (der, count) = tokio::task::spawn_blocking(move || {
            let mut entries = StoredEntries {
                store,
                handle,
                key_id: key,
                entries: entries_of,
                since,
                now: this_update,
                after: None,
                page: VecDeque::new(),
                done: false,
                count: 0,
                failure: None,
            };
            let der =
                signer.sign_scoped_crl(number, this_update, next_update, &scope, &mut entries)?;
            match entries.failure {
                Some(e) => Err(PublishError::during("reading revoked certificates")(e)),
                None => Ok((der, entries.count)),
            }
        })
        .await
        .map_err(PublishError::Builder)??;

        let crl = NewCrl {
            issuer_key_id: key_id,
            number,
            this_update,
            next_update,
            der,
        };
        let built = started.elapsed();
        let scoped = ScopedCrl {
            crl,
            shard: part.shard(),
            delta_base,
            revocation_cursor: cursor,
        };
        let plain = part == Part::Full && delta_base.is_none();
        if plain && !self.layout.sharded() && !self.layout.deltas() {
            self.store.store_crl(&scoped.crl).await
        } else {
            self.store.store_scoped_crl(&scoped).await
        }
        .map_err(|e| PublishError::during("storing the CRL")(e.into()))?;
        let crl = scoped.crl;
        tracing::info!(
            number,
            shard = part.shard().map(i64::from).unwrap_or(-1),
            delta = delta_base.is_some(),
            entries = count,
            bytes = crl.der.len(),
            build_ms = built.as_millis(),
            store_ms = (started.elapsed() - built).as_millis(),
            "published a CRL"
        );
        // Stored first, then served: the in-process responder takes the bytes just built
        // rather than reading them back (one copy of a large CRL in memory, not two).
        if let Some(l) = &self.listener {
            if plain {
                l.crl_published(number, this_update, next_update, crl.der);
            } else {
                l.partition_published(PublishedPartition {
                    shard: part.shard(),
                    delta_base,
                    number,
                    this_update,
                    next_update,
                    der: crl.der,
                });
            }
        }
        Ok(number)
    }

    /// Publish after revocations and every `interval`, until the task is dropped.
    /// `first_wait` is the time to the first scheduled publication.
    ///
    /// Only while this process leads: otherwise it asks for the leadership every
    /// [`LEADER_POLL`], and on taking it publishes everything at once. The leader also
    /// publishes when the revocation sequence has moved (a revocation made through another
    /// replica), looked at every [`LEADER_POLL`]: the partitions of the serials revoked.
    async fn run(self, first_wait: Duration) {
        let mut due = tokio::time::Instant::now() + first_wait;
        // None until this process has seen another replica lead: taking over from one
        // publishes at once, while leading from the start keeps `first_wait`.
        let mut leading = self.leadership.lock().await.is_held().then_some(true);
        // The revocation sequence as of the last CRLs this process published.
        let mut covered = self.store.revocation_cursor().await.ok();
        loop {
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(due.min(tokio::time::Instant::now() + LEADER_POLL)) => {}
            }
            let was_leading = leading;
            let now_leading = self.lead().await;
            leading = Some(now_leading);
            let mut pending = self.take_pending();
            if !now_leading {
                // The leader hears of these through the revocation sequence.
                continue;
            }
            let took_over = was_leading == Some(false);
            let cursor = self.store.revocation_cursor().await.ok();
            match (covered, cursor) {
                (Some(before), Some(now)) if now > before => {
                    // Revoked through another replica (or this one: listed twice, published
                    // once).
                    match self
                        .store
                        .revocations_since(before, MAX_PENDING as u32)
                        .await
                    {
                        Ok(events) if events.len() < MAX_PENDING => {
                            for e in events {
                                match e.serial {
                                    Some(s) => pending.add(s),
                                    None => pending.everything = true,
                                }
                            }
                        }
                        _ => pending.everything = true,
                    }
                }
                (Some(_), Some(_)) => {}
                // Unknown: publish everything rather than risk missing a revocation.
                _ => pending.everything = true,
            }
            let scheduled = took_over || tokio::time::Instant::now() >= due || pending.everything;
            if !scheduled && pending.serials.is_empty() {
                continue;
            }
            let result = if scheduled {
                self.publish_all().await
            } else {
                self.publish_for(&pending.serials).await
            };
            match result {
                Ok(()) => {
                    covered = cursor;
                    if scheduled {
                        due = tokio::time::Instant::now() + self.schedule.interval;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = describe(&e), "publishing a CRL failed; retrying");
                    // Everything, at the retry: which partitions were done is not known.
                    due = tokio::time::Instant::now() + RETRY_AFTER;
                }
            }
        }
    }
}

/// A CRL entry for a revoked certificate as the store gives it.
fn crl_entry(r: signet_store::RevokedCertificate) -> RevokedEntry {
    RevokedEntry {
        serial: r.serial,
        revoked_at: r.revoked_at,
        // A reason a full CRL cannot carry (removeFromCRL, for delta CRLs only): list the
        // entry as unspecified rather than fail the whole CRL. The one reason table decides
        // which that is. A stored code outside the table reads as no reason (the store
        // logs it), and the entry is listed without one.
        reason: r
            .reason
            .filter(|r| r.fits_full_status())
            .map(RevocationReason::code),
    }
}

/// An error and its causes on one line, each cause once (a transparent variant repeats its
/// source's text).
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

/// A CRL's entries, read page by page from the store from inside `spawn_blocking`.
struct StoredEntries {
    store: Store,
    handle: tokio::runtime::Handle,
    key_id: String,
    entries: CrlEntries,
    /// For a delta CRL: only revocations after this point of the revocation sequence.
    since: Option<i64>,
    now: OffsetDateTime,
    after: Option<Serial>,
    page: VecDeque<RevokedEntry>,
    done: bool,
    count: usize,
    /// Set when reading failed: the CRL built is then incomplete and is thrown away.
    failure: Option<PublishError>,
}

impl Iterator for StoredEntries {
    type Item = RevokedEntry;

    fn next(&mut self) -> Option<RevokedEntry> {
        if self.page.is_empty() && !self.done {
            let page = self.handle.block_on(self.store.revoked_in(
                &self.key_id,
                self.entries,
                self.now,
                self.since,
                self.after.as_ref(),
                CRL_PAGE,
            ));
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    self.failure = Some(e.into());
                    self.done = true;
                    return None;
                }
            };
            self.done = page.len() < CRL_PAGE as usize;
            self.after = page.last().map(|r| r.serial.clone());
            self.page.extend(page.into_iter().map(crl_entry));
        }
        let entry = self.page.pop_front()?;
        self.count += 1;
        Some(entry)
    }
}
