//! `GET /crl/{issuer}.crl` (DER) and `.pem`, `GET /crl/root.crl` and `.pem`,
//! `GET /crl/chain.pem`, and `GET /ca/{issuer}.crt` (DER) and `.pem`.
//!
//! CRLs are signed by the CA process when it publishes them (it holds the key); this side
//! serves the stored CRL with the largest number, kept in memory and replaced when a newer
//! one is stored ([`Responder::refresh_crl`], driven by `watch.rs`). Each form has a strong
//! `ETag`, and `If-None-Match` gets 304. HTTP caches may keep a CRL for a minute at most:
//! a new one is published on every revocation.
//!
//! The root CA's CRL is signed offline with the root key (`signet ca root-crl`, and once by
//! `signet init`) and stored under the root's key identifier; it is served the same way
//! ([`Responder::refresh_root_crl`]). OpenSSL with `X509_V_FLAG_CRL_CHECK_ALL` (nginx
//! `ssl_crl`) wants a CRL for every certificate in the chain, so `/crl/chain.pem` gives the
//! issuing CA's CRL followed by the root's: the one file `ssl_crl` needs.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use signet_store::Store;
use time::OffsetDateTime;

use crate::http::{http_date, not_modified, seconds_until};
use crate::{CHAIN_CRL_NAME, ROOT_CRL_NAME, Responder, ResponderError};

/// The longest an HTTP cache may keep a CRL.
const CRL_MAX_AGE_SECS: i64 = 60;

/// A root CRL this close to its nextUpdate is warned about (once per CRL number).
const ROOT_CRL_WARN_BEFORE: time::Duration = time::Duration::days(14);

/// The latest CRL, DER; its PEM form is made on first request (a CRL of a million entries
/// is 45 MB of DER and 61 MB of PEM: nobody may ever ask for the PEM).
#[derive(Debug)]
pub(crate) struct PublishedCrl {
    pub(crate) number: u64,
    der: Bytes,
    pem: std::sync::OnceLock<Bytes>,
    /// Hex of the first 16 bytes of the DER's SHA-256: the ETags are built from it.
    tag: String,
    /// Hex of the DER's SHA-256, for `/crl/index.json`.
    sha256: String,
    der_etag: String,
    pem_etag: String,
    this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
}

/// `/crl/chain.pem`: the issuing CA's CRL, those of earlier issuing CAs, then the root's,
/// PEM, for the numbers it was built from.
#[derive(Debug)]
pub(crate) struct ChainCrl {
    numbers: Vec<u64>,
    pem: Bytes,
}

/// An earlier issuing CA of the same root and the newest CRL stored for it.
#[derive(Debug)]
pub(crate) struct PreviousCrl {
    /// Its file name without extension: `{issuer_name}-{serial}`.
    pub(crate) name: String,
    pub(crate) issuer: crate::IssuerCertificate,
    pub(crate) slot: RwLock<Option<Arc<PublishedCrl>>>,
    pub(crate) partitions: Partitions,
}

/// Which shard or delta CRL: (shard, `None` for the full CRL; whether a delta).
pub(crate) type PartitionKey = (Option<u32>, bool);

/// A CA's newest shard and delta CRLs, replaced whole on each change (requests take a
/// snapshot).
#[derive(Debug, Default)]
pub(crate) struct Partitions(RwLock<Arc<BTreeMap<PartitionKey, Arc<PublishedCrl>>>>);

impl Partitions {
    fn snapshot(&self) -> Arc<BTreeMap<PartitionKey, Arc<PublishedCrl>>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn get(&self, key: PartitionKey) -> Option<Arc<PublishedCrl>> {
        self.snapshot().get(&key).cloned()
    }

    /// Serves `crl` as `key` unless a newer one is there.
    fn install(&self, key_id: &str, key: PartitionKey, crl: PublishedCrl) {
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        if slot.get(&key).is_none_or(|c| c.number < crl.number) {
            tracing::debug!(key_id, shard = ?key.0, delta = key.1, number = crl.number, "serving a new CRL");
            let mut map = BTreeMap::clone(&slot);
            map.insert(key, Arc::new(crl));
            *slot = Arc::new(map);
        }
    }

    /// Loads the stored shard and delta CRLs of `key_id` newer than those served.
    async fn refresh(&self, store: &Store, key_id: &str) -> Result<(), ResponderError> {
        let stored = store.partition_crls(key_id).await?;
        let served = self.snapshot();
        for info in stored {
            let key = (info.shard, info.delta_base.is_some());
            if served.get(&key).is_some_and(|c| c.number >= info.number) {
                continue;
            }
            // Gone meanwhile (superseded): the next refresh loads its successor.
            if let Some(der) = store.crl_der(key_id, info.number).await? {
                self.install(
                    key_id,
                    key,
                    PublishedCrl::new(info.number, info.this_update, info.next_update, der),
                );
            }
        }
        Ok(())
    }
}

impl Responder {
    /// Load the latest stored CRL if it is newer than the one being served. Returns the
    /// number now served, if any.
    pub async fn refresh_crl(&self) -> Result<Option<u64>, ResponderError> {
        refresh(
            &self.inner.store,
            self.inner.issuer.key_id_hex(),
            &self.inner.crl,
        )
        .await
    }

    /// Load the root CA's latest stored CRL if it is newer than the one being served.
    /// Returns the number now served, if any (always `None` without a root).
    pub async fn refresh_root_crl(&self) -> Result<Option<u64>, ResponderError> {
        let Some(root) = &self.inner.root else {
            return Ok(None);
        };
        refresh(&self.inner.store, root.key_id_hex(), &self.inner.root_crl).await
    }

    /// Load the latest stored CRL of each earlier issuing CA
    /// ([`Responder::set_previous_issuers`]) that is newer than the one served, and their
    /// shard and delta CRLs.
    pub async fn refresh_previous_crls(&self) -> Result<(), ResponderError> {
        for p in self.previous().iter() {
            refresh(&self.inner.store, p.issuer.key_id_hex(), &p.slot).await?;
            p.partitions
                .refresh(&self.inner.store, p.issuer.key_id_hex())
                .await?;
        }
        Ok(())
    }

    /// Load the issuing CA's stored shard and delta CRLs that are newer than those served.
    pub async fn refresh_partition_crls(&self) -> Result<(), ResponderError> {
        self.inner
            .partitions
            .refresh(&self.inner.store, self.inner.issuer.key_id_hex())
            .await
    }

    /// Serve a shard or delta CRL of the issuing CA that the caller has just stored (see
    /// [`Responder::install_crl`]): `shard` `None` is the full CRL's delta; `delta` says
    /// whether it is a delta CRL. An older one than that served is ignored.
    pub fn install_partition_crl(
        &self,
        shard: Option<u32>,
        delta: bool,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    ) {
        self.inner.partitions.install(
            self.inner.issuer.key_id_hex(),
            (shard, delta),
            PublishedCrl::new(number, this_update, next_update, der),
        );
    }

    pub(crate) fn current_crl(&self) -> Option<Arc<PublishedCrl>> {
        read(&self.inner.crl)
    }

    pub(crate) fn current_root_crl(&self) -> Option<Arc<PublishedCrl>> {
        read(&self.inner.root_crl)
    }

    /// Warns once per CRL number when the root CRL served ends within
    /// [`ROOT_CRL_WARN_BEFORE`], and once more when it has ended: it is signed offline, so
    /// nothing renews it but an operator, and relying parties that check CRLs refuse an
    /// expired one.
    pub(crate) fn check_root_crl_expiry(&self, now: OffsetDateTime) {
        let Some(crl) = self.current_root_crl() else {
            return;
        };
        if crl.next_update - now > ROOT_CRL_WARN_BEFORE {
            return;
        }
        let expired = crl.next_update <= now;
        // The CRL number and whether it had expired: each state is reported once.
        let state = crl.number.saturating_mul(2) | u64::from(expired);
        if self.inner.root_crl_warned.swap(state, Ordering::Relaxed) == state {
            return;
        }
        if expired {
            tracing::error!(
                number = crl.number,
                next_update = %signet_pkix::rfc3339(crl.next_update),
                "the root CA's CRL has expired: clients checking CRLs (nginx ssl_crl) now refuse \
                 every certificate; sign a new one with `signet ca root-crl`"
            );
        } else {
            tracing::warn!(
                number = crl.number,
                next_update = %signet_pkix::rfc3339(crl.next_update),
                "the root CA's CRL expires soon: sign a new one with `signet ca root-crl` \
                 before then"
            );
        }
    }

    /// The chain CRL of `crls` (the issuing CA's, earlier ones', the root's), built once
    /// per list of numbers.
    fn chain_crl(&self, crls: &[Arc<PublishedCrl>]) -> Arc<ChainCrl> {
        let numbers: Vec<u64> = crls.iter().map(|c| c.number).collect();
        if let Some(c) = read(&self.inner.chain_crl).filter(|c| c.numbers == numbers) {
            return c;
        }
        let pems: Vec<Bytes> = crls.iter().map(|c| c.pem()).collect();
        let mut pem = Vec::with_capacity(pems.iter().map(Bytes::len).sum());
        for p in &pems {
            pem.extend_from_slice(p);
        }
        let built = Arc::new(ChainCrl {
            numbers,
            pem: Bytes::from(pem),
        });
        let mut slot = self
            .inner
            .chain_crl
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Keep the newest set if another request raced ahead.
        if slot.as_ref().is_none_or(|c| c.numbers <= built.numbers) {
            *slot = Some(built.clone());
        }
        built
    }
}

fn read<T>(slot: &RwLock<Option<Arc<T>>>) -> Option<Arc<T>> {
    slot.read().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Loads the latest CRL of `key_id` into `slot` if it is newer than the one there.
async fn refresh(
    store: &Store,
    key_id: &str,
    slot: &RwLock<Option<Arc<PublishedCrl>>>,
) -> Result<Option<u64>, ResponderError> {
    let current = read(slot).map(|c| c.number);
    let latest = store.latest_crl_number(key_id).await?;
    if latest <= current {
        return Ok(current);
    }
    let Some(rec) = store.latest_crl(key_id).await? else {
        return Ok(current);
    };
    Ok(install(
        key_id,
        slot,
        PublishedCrl::new(rec.number, rec.this_update, rec.next_update, rec.der),
    ))
}

/// Serves `published` from `slot` unless a newer one is there; returns the number served.
fn install(
    key_id: &str,
    slot: &RwLock<Option<Arc<PublishedCrl>>>,
    published: PublishedCrl,
) -> Option<u64> {
    let mut slot = slot.write().unwrap_or_else(|p| p.into_inner());
    // Another refresh may have raced ahead: never go back to an older number.
    if slot.as_ref().is_none_or(|c| c.number < published.number) {
        tracing::debug!(key_id, number = published.number, "serving a new CRL");
        *slot = Some(Arc::new(published));
    }
    slot.as_ref().map(|c| c.number)
}

impl PublishedCrl {
    fn new(
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    ) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        let tag = hex::encode(&digest.as_ref()[..16]);
        PublishedCrl {
            sha256: hex::encode(digest.as_ref()),
            number,
            der: Bytes::from(der),
            pem: std::sync::OnceLock::new(),
            der_etag: format!("\"{tag}\""),
            pem_etag: format!("\"{tag}-pem\""),
            tag,
            this_update,
            next_update,
        }
    }

    /// The PEM form, made once.
    fn pem(&self) -> Bytes {
        self.pem
            .get_or_init(|| Bytes::from(signet_pkix::pem::crl(&self.der)))
            .clone()
    }
}

impl Responder {
    /// Serve a CRL of the issuing CA that the caller has just stored (its number came from
    /// the store), without reading its DER back from the database. A CRL older than the one
    /// served is ignored.
    pub fn install_crl(
        &self,
        number: u64,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
        der: Vec<u8>,
    ) {
        install(
            self.inner.issuer.key_id_hex(),
            &self.inner.crl,
            PublishedCrl::new(number, this_update, next_update, der),
        );
    }
}

/// Splits `issuing.crl` into its issuer name and extension, if the name is ours.
fn own_file<'a>(r: &Responder, file: &'a str) -> Option<&'a str> {
    let (name, ext) = file.rsplit_once('.')?;
    (name == r.inner.config.issuer_name).then_some(ext)
}

/// What `/crl/{file}` names.
enum CrlFile {
    Issuing {
        pem: bool,
    },
    Root {
        pem: bool,
    },
    /// An earlier issuing CA's (one of [`Responder::previous`]).
    Previous {
        crl: Arc<PreviousCrl>,
        pem: bool,
    },
    Chain,
    /// The issuing CA's full CRL's delta.
    FullDelta {
        pem: bool,
    },
    /// `/crl/index.json`.
    Index,
}

fn crl_file(r: &Responder, file: &str) -> Option<CrlFile> {
    if file == INDEX_NAME {
        return Some(CrlFile::Index);
    }
    let (name, ext) = file.rsplit_once('.')?;
    let pem = match ext {
        "crl" => false,
        "pem" => true,
        _ => return None,
    };
    if name == r.inner.config.issuer_name {
        Some(CrlFile::Issuing { pem })
    } else if name.strip_suffix("-delta") == Some(r.inner.config.issuer_name.as_str()) {
        Some(CrlFile::FullDelta { pem })
    } else if name == ROOT_CRL_NAME {
        Some(CrlFile::Root { pem })
    } else if name == CHAIN_CRL_NAME && pem {
        Some(CrlFile::Chain)
    } else {
        r.previous()
            .iter()
            .find(|p| p.name == name)
            .cloned()
            .map(|crl| CrlFile::Previous { crl, pem })
    }
}

/// The issuing CA's CRL, loading it once if nothing is loaded yet (a fresh start).
async fn issuing_crl(r: &Responder) -> Result<Arc<PublishedCrl>, Response> {
    if let Some(crl) = r.current_crl() {
        return Ok(crl);
    }
    if let Err(e) = r.refresh_crl().await {
        tracing::warn!(error = %e, "loading the CRL failed");
    }
    r.current_crl().ok_or_else(|| {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        (
            StatusCode::SERVICE_UNAVAILABLE,
            h,
            "no CRL has been published yet\n",
        )
            .into_response()
    })
}

/// The root CA's CRL, loading it once if nothing is loaded yet. 404 without a root, or
/// when none was ever stored: nothing but an operator with the root key will make one.
async fn root_crl(r: &Responder) -> Result<Arc<PublishedCrl>, Response> {
    if r.inner.root.is_none() {
        return Err((
            StatusCode::NOT_FOUND,
            "this responder was not given the root CA certificate: no root CRL\n",
        )
            .into_response());
    }
    if let Some(crl) = r.current_root_crl() {
        return Ok(crl);
    }
    if let Err(e) = r.refresh_root_crl().await {
        tracing::warn!(error = %e, "loading the root CRL failed");
    }
    r.current_root_crl().ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "no root CRL has been published: sign one with `signet ca root-crl`\n",
        )
            .into_response()
    })
}

/// An earlier issuing CA's CRL, loading it once if nothing is loaded yet; 404 if none was
/// ever stored.
async fn previous_crl(r: &Responder, p: &PreviousCrl) -> Result<Arc<PublishedCrl>, Response> {
    let none = || (StatusCode::NOT_FOUND, "no CRL of that CA is stored\n").into_response();
    if let Some(crl) = read(&p.slot) {
        return Ok(crl);
    }
    if let Err(e) = refresh(&r.inner.store, p.issuer.key_id_hex(), &p.slot).await {
        tracing::warn!(error = %e, "loading an earlier issuing CA's CRL failed");
    }
    read(&p.slot).ok_or_else(none)
}

pub(crate) async fn get_crl(
    State(r): State<Responder>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(which) = crl_file(&r, &file) else {
        return (StatusCode::NOT_FOUND, "no such CRL\n").into_response();
    };
    let result = match which {
        CrlFile::Issuing { pem } => issuing_crl(&r).await.map(|c| one(&c, pem)),
        CrlFile::Root { pem } => root_crl(&r).await.map(|c| one(&c, pem)),
        CrlFile::Previous { crl, pem } => previous_crl(&r, &crl).await.map(|c| one(&c, pem)),
        CrlFile::Chain => chain(&r).await,
        CrlFile::FullDelta { pem } => match r.inner.partitions.get((None, true)) {
            Some(c) => Ok(one(&c, pem)),
            None => Err((StatusCode::NOT_FOUND, "no delta CRL is published\n").into_response()),
        },
        CrlFile::Index => Ok(index(&r)),
    };
    match result {
        Ok(served) => served.respond(&headers),
        Err(response) => response,
    }
}

/// `/crl/index.json`: every CRL file.
const INDEX_NAME: &str = "index.json";

/// `/crl/chain.pem`: for OpenSSL-based relying parties (nginx `ssl_crl`), which take every
/// CRL in the file and pick, for each certificate, a CRL of its issuer whose Issuing
/// Distribution Point matches the certificate's CRL distribution point. So: the issuing
/// CA's full CRL (while valid, or when there are no shards), every shard's base CRL, the
/// same for earlier issuing CAs, then the root's. Delta CRLs are left out: nginx does not
/// use them (OpenSSL's `X509_V_FLAG_USE_DELTAS` is not set).
async fn chain(r: &Responder) -> Result<Served, Response> {
    // The root first: without it, the chain file cannot exist (404), while a missing
    // issuing CRL is only not published yet (503).
    let root = root_crl(r).await?;
    let now = OffsetDateTime::now_utc();
    let bases = |parts: &Partitions| -> Vec<Arc<PublishedCrl>> {
        parts
            .snapshot()
            .iter()
            .filter(|((shard, delta), _)| shard.is_some() && !delta)
            .map(|(_, c)| c.clone())
            .collect()
    };
    let shards = bases(&r.inner.partitions);
    let mut crls = Vec::with_capacity(shards.len() + 2);
    if shards.is_empty() {
        crls.push(issuing_crl(r).await?);
    } else if let Some(full) = r.current_crl().filter(|c| c.next_update > now) {
        crls.push(full);
    }
    crls.extend(shards);
    // Only what is loaded: the watch loop keeps these fresh, and a request must not cost a
    // database query per earlier CA that has no CRL.
    for p in r.previous().iter() {
        crls.extend(read(&p.slot));
        crls.extend(bases(&p.partitions));
    }
    crls.push(root);
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for c in &crls {
        digest.update(c.tag.as_bytes());
    }
    let tag = hex::encode(&digest.finish().as_ref()[..16]);
    Ok(Served {
        body: r.chain_crl(&crls).pem.clone(),
        etag: format!("\"{tag}-chain\""),
        content_type: "application/x-pem-file",
        this_update: crls
            .iter()
            .map(|c| c.this_update)
            .max()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        next_update: crls
            .iter()
            .map(|c| c.next_update)
            .min()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    })
}

/// `/crl/index.json`: each CRL served (the issuing CA's full CRL, shards and deltas, those
/// of earlier issuing CAs, the root's) with its URL, shard, whether it is a delta, number,
/// thisUpdate, nextUpdate, size and SHA-256. Only what is loaded; not cached by HTTP caches
/// for longer than the CRLs it lists.
fn index(r: &Responder) -> Served {
    let full_url = r.inner.config.crl_url.clone();
    let issuing_path = format!("/crl/{}.crl", r.inner.config.issuer_name);
    let url_of = |key_id: &[u8], shard: Option<u32>, delta: bool, full: &str| {
        let base = match (&full_url, shard) {
            (Some(u), Some(n)) => signet_pkix::crl::shard_url(u, key_id, n),
            (Some(u), None) if full == issuing_path => u.clone(),
            (_, Some(n)) => format!(
                "/crl/shard/{}/{n}.crl",
                hex::encode(&key_id[..key_id.len().min(8)])
            ),
            (_, None) => full.to_string(),
        };
        if delta {
            signet_pkix::crl::delta_url(&base)
        } else {
            base
        }
    };
    let entry = |c: &PublishedCrl, url: String, issuer: &str, shard: Option<u32>, delta: bool| {
        serde_json::json!({
            "url": url,
            "issuer_key_id": issuer,
            "shard": shard,
            "delta": delta,
            "number": c.number,
            "this_update": signet_pkix::rfc3339(c.this_update),
            "next_update": signet_pkix::rfc3339(c.next_update),
            "size": c.der.len(),
            "sha256": c.sha256,
        })
    };
    let mut crls = Vec::new();
    let mut add_ca = |issuer: &crate::IssuerCertificate,
                      full: Option<Arc<PublishedCrl>>,
                      full_path: String,
                      parts: &Partitions| {
        let key_id = hex::decode(issuer.key_id_hex()).unwrap_or_default();
        if let Some(c) = full {
            crls.push(entry(
                &c,
                url_of(&key_id, None, false, &full_path),
                issuer.key_id_hex(),
                None,
                false,
            ));
        }
        for ((shard, delta), c) in parts.snapshot().iter() {
            crls.push(entry(
                c,
                url_of(&key_id, *shard, *delta, &full_path),
                issuer.key_id_hex(),
                *shard,
                *delta,
            ));
        }
    };
    add_ca(
        &r.inner.issuer,
        r.current_crl(),
        issuing_path.clone(),
        &r.inner.partitions,
    );
    for p in r.previous().iter() {
        add_ca(
            &p.issuer,
            read(&p.slot),
            format!("/crl/{}.crl", p.name),
            &p.partitions,
        );
    }
    if let (Some(root), Some(c)) = (&r.inner.root, r.current_root_crl()) {
        crls.push(entry(
            &c,
            format!("/crl/{ROOT_CRL_NAME}.crl"),
            root.key_id_hex(),
            None,
            false,
        ));
    }
    let body = serde_json::to_vec_pretty(&serde_json::json!({ "crls": crls }))
        .unwrap_or_else(|_| b"{}".to_vec());
    let digest = ring::digest::digest(&ring::digest::SHA256, &body);
    Served {
        etag: format!("\"{}-index\"", hex::encode(&digest.as_ref()[..16])),
        body: Bytes::from(body),
        content_type: "application/json",
        this_update: OffsetDateTime::now_utc(),
        next_update: OffsetDateTime::now_utc() + time::Duration::seconds(CRL_MAX_AGE_SECS),
    }
}

/// `GET /crl/shard/{kid}/{file}`: shard `n` of the CA whose key identifier starts with
/// `kid` (16 hex digits: current or earlier issuing CA), `{n}.crl`, `{n}.pem`,
/// `{n}-delta.crl` or `{n}-delta.pem`.
pub(crate) async fn get_shard(
    State(r): State<Responder>,
    Path((kid, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "no such CRL\n").into_response();
    let Some((name, ext)) = file.rsplit_once('.') else {
        return not_found();
    };
    let pem = match ext {
        "crl" => false,
        "pem" => true,
        _ => return not_found(),
    };
    let (number, delta) = match name.strip_suffix("-delta") {
        Some(n) => (n, true),
        None => (name, false),
    };
    // Digits only, no sign or leading zero: one spelling per shard.
    if number.is_empty()
        || !number.bytes().all(|b| b.is_ascii_digit())
        || (number.len() > 1 && number.starts_with('0'))
    {
        return not_found();
    }
    let Ok(shard) = number.parse::<u32>() else {
        return not_found();
    };
    let matches = |issuer: &crate::IssuerCertificate| {
        let hex = issuer.key_id_hex();
        kid.len() == hex.len().min(16) && hex.starts_with(kid.as_str())
    };
    let crl = if matches(&r.inner.issuer) {
        r.inner.partitions.get((Some(shard), delta))
    } else {
        r.previous()
            .iter()
            .find(|p| matches(&p.issuer))
            .and_then(|p| p.partitions.get((Some(shard), delta)))
    };
    match crl {
        Some(c) => one(&c, pem).respond(&headers),
        None => not_found(),
    }
}

/// One CRL response, before conditional handling.
struct Served {
    body: Bytes,
    etag: String,
    content_type: &'static str,
    this_update: OffsetDateTime,
    next_update: OffsetDateTime,
}

fn one(crl: &PublishedCrl, pem: bool) -> Served {
    let (body, etag, content_type) = if pem {
        (crl.pem(), &crl.pem_etag, "application/x-pem-file")
    } else {
        (crl.der.clone(), &crl.der_etag, "application/pkix-crl")
    };
    Served {
        body,
        etag: etag.clone(),
        content_type,
        this_update: crl.this_update,
        next_update: crl.next_update,
    }
}

impl Served {
    fn respond(self, headers: &HeaderMap) -> Response {
        let now = OffsetDateTime::now_utc();
        let max_age = seconds_until(now, self.next_update).min(CRL_MAX_AGE_SECS);
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&format!("max-age={max_age}, public, no-transform"))
                .unwrap_or_else(|_| HeaderValue::from_static("no-cache")),
        );
        h.insert(header::LAST_MODIFIED, http_date(self.this_update));
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            h.insert(header::ETAG, v);
        }
        if not_modified(headers, &self.etag) {
            return (StatusCode::NOT_MODIFIED, h).into_response();
        }
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        (StatusCode::OK, h, self.body).into_response()
    }
}

/// The issuing CA certificate, for AIA caIssuers (RFC 5280 section 4.2.2.1: a DER
/// certificate over HTTP), and as PEM.
pub(crate) async fn get_ca(State(r): State<Responder>, Path(file): Path<String>) -> Response {
    let issuer = &r.inner.issuer;
    let (body, content_type) = match own_file(&r, &file) {
        Some("crt" | "cer" | "der") => (
            Bytes::copy_from_slice(issuer.der()),
            "application/pkix-cert",
        ),
        Some("pem") => (
            Bytes::copy_from_slice(issuer.pem().as_bytes()),
            "application/x-pem-file",
        ),
        _ => return (StatusCode::NOT_FOUND, "no such certificate\n").into_response(),
    };
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600, public, no-transform"),
    );
    (StatusCode::OK, h, body).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use signet_ca::{InitOptions, IssuanceUrls, IssuingCa, generate_ca};
    use signet_store::NewCrl;
    use tower::ServiceExt;

    use super::*;
    use crate::{IssuerCertificate, ResponderConfig, app};

    async fn get(
        r: &Responder,
        path: &str,
        etag: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(tag) = etag {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        let resp = app(r.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    async fn publish(store: &Store, ca: &IssuingCa) -> u64 {
        let key_id = hex::encode(ca.key_id());
        let number = store.next_crl_number(&key_id).await.unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let next = now + time::Duration::days(30);
        let der = ca
            .crl_signer()
            .unwrap()
            .sign_crl(number, now, next, std::iter::empty())
            .unwrap();
        store
            .store_crl(&NewCrl {
                issuer_key_id: key_id,
                number,
                this_update: now,
                next_update: next,
                der,
            })
            .await
            .unwrap();
        number
    }

    #[tokio::test]
    async fn root_and_chain_crls_are_served_with_etags() {
        let db = signet_testkit::TestDb::sqlite().await;
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let bundle = generate_ca(
            &InitOptions::new("Root CRL Test"),
            OffsetDateTime::now_utc(),
        )
        .unwrap();
        let issuing = IssuingCa::new(
            &bundle.issuing_cert_pem,
            &bundle.root_cert_pem,
            bundle.issuing_key,
            IssuanceUrls::default(),
        )
        .unwrap();
        let root_cert = IssuerCertificate::from_pem(&bundle.root_cert_pem).unwrap();
        let root = IssuingCa::root_for_crls(&bundle.root_cert_pem, bundle.root_key).unwrap();
        assert_eq!(root_cert.key_id_hex(), hex::encode(root.key_id()));
        let issuer = IssuerCertificate::from_der(issuing.cert_der()).unwrap();

        // Without a root certificate: 404 for the root and chain files.
        let plain =
            Responder::new(store.clone(), issuer.clone(), ResponderConfig::default()).unwrap();
        for path in ["/crl/root.crl", "/crl/root.pem", "/crl/chain.pem"] {
            assert_eq!(
                get(&plain, path, None).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }

        let r = Responder::with_root(
            store.clone(),
            issuer.clone(),
            Some(root_cert.clone()),
            ResponderConfig::default(),
        )
        .unwrap();
        // Nothing signed by the root yet: 404 saying how to make one.
        let (status, _, body) = get(&r, "/crl/root.pem", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(String::from_utf8_lossy(&body).contains("signet ca root-crl"));
        assert_eq!(
            get(&r, "/crl/chain.crl", None).await.0,
            StatusCode::NOT_FOUND
        );

        assert_eq!(publish(&store, &root).await, 1);
        publish(&store, &issuing).await;
        let (status, h, der) = get(&r, "/crl/root.crl", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/pkix-crl");
        let stored = store
            .latest_crl(root_cert.key_id_hex())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(der, stored.der);
        let etag = h[header::ETAG].to_str().unwrap().to_string();
        let (status, h304, body) = get(&r, "/crl/root.crl", Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(h304[header::ETAG], etag.as_str());

        let (_, _, root_pem) = get(&r, "/crl/root.pem", None).await;
        let (_, _, issuing_pem) = get(&r, "/crl/issuing.pem", None).await;
        let (status, h, chain) = get(&r, "/crl/chain.pem", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(chain, [issuing_pem.clone(), root_pem.clone()].concat());
        let chain_etag = h[header::ETAG].to_str().unwrap().to_string();
        assert_eq!(
            get(&r, "/crl/chain.pem", Some(&chain_etag)).await.0,
            StatusCode::NOT_MODIFIED
        );

        // A new root CRL: served once refreshed, with a new ETag for it and for the chain.
        assert_eq!(publish(&store, &root).await, 2);
        assert_eq!(r.refresh_root_crl().await.unwrap(), Some(2));
        let (status, h, _) = get(&r, "/crl/root.crl", Some(&etag)).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(h[header::ETAG], etag.as_str());
        let (status, h, chain2) = get(&r, "/crl/chain.pem", Some(&chain_etag)).await;
        assert_eq!(status, StatusCode::OK);
        assert_ne!(h[header::ETAG], chain_etag.as_str());
        assert!(chain2.starts_with(&issuing_pem) && chain2 != chain);

        // Expiry is reported once as near, once as past, per CRL number (30 days here).
        let warned = || r.inner.root_crl_warned.load(Ordering::Relaxed);
        let now = OffsetDateTime::now_utc();
        r.check_root_crl_expiry(now);
        assert_eq!(warned(), 0);
        r.check_root_crl_expiry(now + time::Duration::days(20));
        assert_eq!(warned(), 2 * 2);
        r.check_root_crl_expiry(now + time::Duration::days(31));
        assert_eq!(warned(), 2 * 2 + 1);

        // The reserved names cannot be the issuing CA's; a root with the issuing CA's own key
        // is not a separate root.
        for name in ["root", "chain"] {
            let config = ResponderConfig {
                issuer_name: name.into(),
                ..Default::default()
            };
            assert!(Responder::new(store.clone(), issuer.clone(), config).is_err());
        }
        let same = Responder::with_root(
            store.clone(),
            issuer.clone(),
            Some(issuer.clone()),
            ResponderConfig::default(),
        )
        .unwrap();
        assert!(same.root().is_none());
    }
}
