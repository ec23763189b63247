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

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use signet_ca::{CaError, CrlSigner, OffsetDateTime, RevocationReason, RevokedEntry, Serial};
use signet_store::{AuditAction, AuditEntry, AuditOutcome, Leadership, NewCrl, Store, StoreError};
use tokio::sync::{Mutex, Notify};

/// Revoked certificates read from the store per query while building a CRL.
const CRL_PAGE: u32 = 10_000;
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
        self.current.trigger();
        for p in &self.previous {
            p.trigger();
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

/// One CA's CRLs: one per call of [`IssuerCrls::trigger`] (coalesced: revocations that
/// arrive during a build are covered by the next one) and one every `interval`. It holds
/// the CA's [`CrlSigner`], never the CA: it can sign CRLs and nothing else.
#[derive(Clone, Debug)]
struct IssuerCrls {
    signer: CrlSigner,
    store: Store,
    /// Told at once about each new CRL (the current CA's only).
    listener: Option<Arc<dyn RevocationListener>>,
    schedule: CrlSchedule,
    wake: Arc<Notify>,
    /// Whether this process signs this CA's CRLs (see the module's comment).
    leadership: Arc<Mutex<Leadership>>,
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
            wake: Arc::new(Notify::new()),
            leadership: Arc::new(Mutex::new(leadership)),
        }
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
            let key_id = hex::encode(self.signer.key_id());
            if now {
                tracing::info!(issuer_key_id = %key_id, "this replica now signs the CA's CRLs (CRL leader)");
            } else {
                tracing::info!(issuer_key_id = %key_id, "this replica no longer signs the CA's CRLs");
            }
        }
        now
    }

    /// Ask for a new CRL soon (after a revocation). Never blocks.
    fn trigger(&self) {
        self.wake.notify_one();
    }

    /// Publish now unless a still valid CRL of this CA is stored; returns when the next
    /// scheduled publication is due (zero when it is overdue).
    async fn publish_if_stale(&self) -> Result<Duration, PublishError> {
        let key_id = hex::encode(self.signer.key_id());
        let now = OffsetDateTime::now_utc();
        // Only the number and dates: the responder loads the DER itself (`watch_changes`,
        // or the first request), after the listeners are up, so a large CRL does not delay
        // the start.
        // A CRL that is due but still valid is replaced by `run` at once, in the background
        // (building one of a million entries takes seconds); only a missing or expired one
        // is published before serving.
        if let Some(latest) = self.store.latest_crl_info(&key_id).await?
            && latest.next_update > now
        {
            let due = latest.this_update + self.schedule.interval;
            return Ok((due - now).try_into().unwrap_or(Duration::ZERO));
        }
        if !self.lead().await {
            // Another replica signs; `run` takes over if it goes away.
            return Ok(LEADER_POLL);
        }
        self.publish().await?;
        Ok(self.schedule.interval)
    }

    /// Build, sign and store a CRL of every unexpired revoked certificate; returns its number.
    async fn publish(&self) -> Result<u64, PublishError> {
        let key_id = hex::encode(self.signer.key_id());
        let this_update = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .map_err(PublishError::Time)?;
        let next_update = this_update + self.schedule.validity;
        // Taken before the entries are read, so that a larger number always covers at least
        // the revocations a smaller one does (see Store::next_crl_number).
        let number = self.store.next_crl_number(&key_id).await?;

        // The entries stream from the store a page at a time into the one buffer that
        // becomes the CRL, on a blocking thread since sign_crl reads a plain iterator.
        let started = std::time::Instant::now();
        let (signer, store, key) = (self.signer.clone(), self.store.clone(), key_id.clone());
        let handle = tokio::runtime::Handle::current();
        let (der, count) = tokio::task::spawn_blocking(move || {
            let mut entries = StoredEntries {
                store,
                handle,
                key_id: key,
                now: this_update,
                after: None,
                page: VecDeque::new(),
                done: false,
                count: 0,
                failure: None,
            };
            let der = signer.sign_crl(number, this_update, next_update, &mut entries)?;
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
        self.store
            .store_crl(&crl)
            .await
            .map_err(|e| PublishError::during("storing the CRL")(e.into()))?;
        tracing::info!(
            number,
            entries = count,
            bytes = crl.der.len(),
            build_ms = built.as_millis(),
            store_ms = (started.elapsed() - built).as_millis(),
            "published a CRL"
        );
        // Stored first, then served: the in-process responder takes the bytes just built
        // rather than reading them back (one copy of a large CRL in memory, not two).
        if let Some(l) = &self.listener {
            l.crl_published(number, this_update, next_update, crl.der);
        }
        Ok(number)
    }

    /// Publish on every trigger and every `interval`, until the task is dropped. `first_wait`
    /// is the time to the first scheduled publication.
    ///
    /// Only while this process leads: otherwise it asks for the leadership every
    /// [`LEADER_POLL`], and on taking it publishes at once. The leader also publishes when
    /// the revocation sequence has moved (a revocation made through another replica),
    /// looked at every [`LEADER_POLL`].
    async fn run(self, first_wait: Duration) {
        let mut due = tokio::time::Instant::now() + first_wait;
        // None until this process has seen another replica lead: taking over from one
        // publishes at once, while leading from the start keeps `first_wait`.
        let mut leading = self.leadership.lock().await.is_held().then_some(true);
        // The revocation sequence as of the last CRL this process published.
        let mut covered = self.store.revocation_cursor().await.ok();
        loop {
            let triggered = tokio::select! {
                () = self.wake.notified() => true,
                () = tokio::time::sleep_until(due.min(tokio::time::Instant::now() + LEADER_POLL)) => false,
            };
            let was_leading = leading;
            let now_leading = self.lead().await;
            leading = Some(now_leading);
            if !now_leading {
                continue;
            }
            let took_over = was_leading == Some(false);
            let cursor = self.store.revocation_cursor().await.ok();
            let revoked_elsewhere = match (covered, cursor) {
                (Some(before), Some(now)) => now > before,
                // Unknown: publish rather than risk missing a revocation.
                _ => true,
            };
            let publish_now =
                took_over || triggered || revoked_elsewhere || tokio::time::Instant::now() >= due;
            if !publish_now {
                continue;
            }
            due = tokio::time::Instant::now()
                + match self.publish().await {
                    Ok(_) => {
                        covered = cursor;
                        self.schedule.interval
                    }
                    Err(e) => {
                        tracing::warn!(error = describe(&e), "publishing a CRL failed; retrying");
                        RETRY_AFTER
                    }
                };
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
            let page = self.handle.block_on(self.store.revoked_for_crl(
                &self.key_id,
                self.now,
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
