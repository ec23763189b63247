//! Pre-signed OCSP responses and certificate statuses, per serial.
//!
//! Only the RFC 5019 common case is cached as signed bytes: one CertID, no nonce. Every
//! other request (a nonce, several CertIDs) is signed afresh but takes each status from
//! here when it can, so it costs a signature and no database round trip. A serial may be asked
//! about with a SHA-1 and a SHA-256 CertID, and the answer must echo the CertID exactly, so
//! each serial holds a few responses, one per CertID encoding.
//!
//! A GET whose answer is cached also remembers its request path (the base64 request exactly as
//! sent), so that the next GET with the same path is answered without percent-decoding,
//! base64 or DER parsing ([`OcspCache::by_path`]). A path points at one signed answer and is
//! kept under the same lock as the answers: dropping an answer (revocation, re-signing,
//! eviction, a new signer) drops the paths that point at it, so a path can never outlive the
//! answer it was learned from.
//!
//! Correctness against revocation rests on one rule: a response or status is cached only
//! if no invalidation happened between reading the status from the database and inserting
//! it. Every invalidation bumps `epoch`; a filler notes the epoch before its read and
//! inserts only if it is unchanged. Revocations are rare, so the fills this refuses cost
//! nothing measurable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue, header};
use signet_pkix::Serial;
use signet_pkix::ocsp::CertStatusKind;
use time::OffsetDateTime;

use crate::http::http_date;

/// One signed response and what the HTTP layer says about it.
#[derive(Debug)]
pub(crate) struct Signed {
    /// The CertID as requested, DER: the cache key within a serial.
    pub(crate) cert_id_der: Vec<u8>,
    /// The OCSPResponse, DER.
    pub(crate) body: Bytes,
    /// When to sign afresh: half way to nextUpdate.
    pub(crate) refresh_at: OffsetDateTime,
    /// A strong validator of `body`, quoted.
    pub(crate) etag: String,
    /// The response headers that never change for these bytes, made once rather than per
    /// request: `Last-Modified`, `Expires`, `ETag`.
    pub(crate) fixed_headers: [(HeaderName, HeaderValue); 3],
}

impl Signed {
    pub(crate) fn new(
        cert_id_der: Vec<u8>,
        body: Vec<u8>,
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    ) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, &body);
        let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
        let fixed_headers = [
            (header::LAST_MODIFIED, http_date(this_update)),
            (header::EXPIRES, http_date(next_update)),
            (
                header::ETAG,
                // Quoted hex: always a valid header value.
                HeaderValue::from_str(&etag).unwrap_or_else(|_| HeaderValue::from_static("\"\"")),
            ),
        ];
        Signed {
            fixed_headers,
            cert_id_der,
            body: Bytes::from(body),
            refresh_at: this_update + (next_update - this_update) / 2,
            etag,
        }
    }
}

/// What is cached for one serial: its status as last read from the database, and the
/// responses signed from it (one per CertID encoding).
#[derive(Debug, Default)]
struct Entry {
    /// The GET paths remembered for this serial's answers (keys of [`Maps::paths`]), at
    /// most [`MAX_PATHS_PER_SERIAL`].
    paths: Vec<Arc<str>>,
    /// The status and until when it may be used without asking the database again. A
    /// request with a nonce is signed afresh every time but takes its status from here, so
    /// it costs a signature and no database round trip.
    status: Option<(CertStatusKind, OffsetDateTime)>,
    signed: Vec<Arc<Signed>>,
}

impl Entry {
    fn fresh(&self, now: OffsetDateTime) -> bool {
        self.status.is_some_and(|(_, until)| now < until)
            || self.signed.iter().any(|s| now < s.refresh_at)
    }
}

/// Paths remembered per serial at most: a client sends one spelling of its request, but
/// percent-encoding and base64 padding give any request many, and a client varying them must
/// not grow the cache.
const MAX_PATHS_PER_SERIAL: usize = 4;

#[derive(Debug, Default)]
struct Maps {
    serials: HashMap<Serial, Entry>,
    /// GET request paths whose answer is cached, and that answer (also in its serial's
    /// entry, which lists the path).
    paths: HashMap<Arc<str>, (Serial, Arc<Signed>)>,
}

impl Maps {
    /// Removes `serial`'s entry and the paths that lead to it.
    fn remove(&mut self, serial: &Serial) {
        if let Some(entry) = self.serials.remove(serial) {
            for path in &entry.paths {
                self.paths.remove(path);
            }
        }
    }
}

#[derive(Debug)]
pub(crate) struct OcspCache {
    map: RwLock<Maps>,
    epoch: AtomicU64,
    max: usize,
}

impl OcspCache {
    pub(crate) fn new(max: usize) -> Self {
        OcspCache {
            map: RwLock::new(Maps::default()),
            epoch: AtomicU64::new(0),
            max,
        }
    }

    /// The cached response for this CertID, if it is still fresh at `now`.
    pub(crate) fn get(
        &self,
        serial: &Serial,
        cert_id_der: &[u8],
        now: OffsetDateTime,
    ) -> Option<Arc<Signed>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.serials
            .get(serial)?
            .signed
            .iter()
            .find(|s| s.cert_id_der == cert_id_der && now < s.refresh_at)
            .cloned()
    }

    /// The cached answer a GET with this request path was last answered with, if it is still
    /// fresh at `now` (the path is the whole request path, `/ocsp/` included, exactly as
    /// received).
    pub(crate) fn by_path(&self, path: &str, now: OffsetDateTime) -> Option<Arc<Signed>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let (_, signed) = map.paths.get(path)?;
        (now < signed.refresh_at).then(|| Arc::clone(signed))
    }

    /// Remembers that a GET of `path` is answered with `signed`, the cached answer for
    /// `serial`, but only while `signed` is still cached: if it was dropped meanwhile (a
    /// revocation, re-signing), nothing is remembered.
    pub(crate) fn remember_path(&self, path: &str, serial: &Serial, signed: &Arc<Signed>) {
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let maps = &mut *guard;
        let Some(entry) = maps.serials.get_mut(serial) else {
            return;
        };
        if !entry.signed.iter().any(|s| Arc::ptr_eq(s, signed)) {
            return;
        }
        if let Some(known) = entry.paths.iter().find(|p| &***p == path) {
            // Known already (pointing at an answer since replaced, or at this one).
            let known = Arc::clone(known);
            maps.paths
                .insert(known, (serial.clone(), Arc::clone(signed)));
            return;
        }
        if entry.paths.len() >= MAX_PATHS_PER_SERIAL {
            return;
        }
        let path: Arc<str> = Arc::from(path);
        entry.paths.push(Arc::clone(&path));
        maps.paths
            .insert(path, (serial.clone(), Arc::clone(signed)));
    }

    /// The status of `serial` as last read from the database, if it may still be used at
    /// `now`. Invalidation drops it with the signed responses.
    pub(crate) fn status(&self, serial: &Serial, now: OffsetDateTime) -> Option<CertStatusKind> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match map.serials.get(serial)?.status {
            Some((status, until)) if now < until => Some(status),
            _ => None,
        }
    }

    /// Remembers the status read for `serial` until `until`, unless an invalidation happened
    /// since `epoch` was read (the same rule as [`OcspCache::insert`]).
    pub(crate) fn insert_status(
        &self,
        serial: Serial,
        status: CertStatusKind,
        until: OffsetDateTime,
        epoch: u64,
    ) {
        self.update(serial, epoch, |entry, _| {
            entry.status = Some((status, until))
        });
    }

    /// The epoch to pass to [`OcspCache::insert`]: read it before reading the status.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `signed` unless an invalidation happened since `epoch` was read.
    pub(crate) fn insert(&self, serial: Serial, signed: Arc<Signed>, epoch: u64) {
        self.update(serial, epoch, |entry, paths| {
            entry.signed.retain(|s| s.cert_id_der != signed.cert_id_der);
            // Paths that led to the answer replaced now lead nowhere until learned again.
            entry.paths.retain(|p| {
                let stale = paths
                    .get(p)
                    .is_some_and(|(_, s)| s.cert_id_der == signed.cert_id_der);
                if stale {
                    paths.remove(p);
                }
                !stale
            });
            entry.signed.push(signed);
        });
    }

    /// Applies `change` to the entry of `serial` (made if need be, evicting when full) unless
    /// an invalidation happened since `epoch` was read.
    fn update(
        &self,
        serial: Serial,
        epoch: u64,
        change: impl FnOnce(&mut Entry, &mut HashMap<Arc<str>, (Serial, Arc<Signed>)>),
    ) {
        if self.max == 0 {
            return;
        }
        let mut guard = self.map.write().unwrap_or_else(|p| p.into_inner());
        let maps = &mut *guard;
        // Checked under the write lock, which invalidation also takes: an invalidation
        // either happened before this check (and is seen) or waits and removes the entry.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if maps.serials.len() >= self.max && !maps.serials.contains_key(&serial) {
            let now = OffsetDateTime::now_utc();
            let stale: Vec<Serial> = maps
                .serials
                .iter()
                .filter(|(_, v)| !v.fresh(now))
                .map(|(k, _)| k.clone())
                .collect();
            for victim in &stale {
                maps.remove(victim);
            }
            if maps.serials.len() >= self.max {
                // Still full of fresh answers: drop an arbitrary eighth in one pass, so that
                // a stream of new serials costs one scan per max/8 insertions, not per insert.
                let victims: Vec<Serial> = maps
                    .serials
                    .keys()
                    .take(self.max / 8 + 1)
                    .cloned()
                    .collect();
                for victim in &victims {
                    maps.remove(victim);
                }
            }
        }
        change(maps.serials.entry(serial).or_default(), &mut maps.paths);
    }

    /// Drops every cached answer for `serial`.
    pub(crate) fn invalidate(&self, serial: &Serial) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.remove(serial);
    }

    /// Drops everything.
    pub(crate) fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        map.serials.clear();
        map.paths.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .serials
            .values()
            .map(|e| e.signed.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(id: u8, now: OffsetDateTime) -> Arc<Signed> {
        Arc::new(Signed::new(
            vec![id],
            vec![1, 2, 3],
            now,
            now + time::Duration::hours(4),
        ))
    }

    #[test]
    fn a_fill_that_straddles_an_invalidation_is_not_cached() {
        let cache = OcspCache::new(10);
        let now = OffsetDateTime::now_utc();
        let serial = Serial::from_hex("0a").expect("serial");
        let epoch = cache.epoch();
        cache.invalidate(&serial);
        cache.insert(serial.clone(), signed(1, now), epoch);
        assert!(cache.get(&serial, &[1], now).is_none());
        cache.insert(serial.clone(), signed(1, now), cache.epoch());
        assert!(cache.get(&serial, &[1], now).is_some());
        assert!(cache.get(&serial, &[2], now).is_none(), "another CertID");
        let half = now + time::Duration::hours(2);
        assert!(
            cache.get(&serial, &[1], half).is_none(),
            "due for re-signing"
        );
    }

    #[test]
    fn statuses_follow_the_same_epoch_rule_and_expire() {
        let cache = OcspCache::new(10);
        let now = OffsetDateTime::now_utc();
        let later = now + time::Duration::hours(2);
        let serial = Serial::from_hex("0b").expect("serial");
        let epoch = cache.epoch();
        cache.invalidate(&serial);
        cache.insert_status(serial.clone(), CertStatusKind::Good, later, epoch);
        assert_eq!(cache.status(&serial, now), None, "read before a revocation");
        cache.insert_status(serial.clone(), CertStatusKind::Good, later, cache.epoch());
        assert_eq!(cache.status(&serial, now), Some(CertStatusKind::Good));
        assert_eq!(cache.status(&serial, later), None, "expired");
        cache.insert(serial.clone(), signed(1, now), cache.epoch());
        assert_eq!(
            cache.status(&serial, now),
            Some(CertStatusKind::Good),
            "a signed response does not drop the status"
        );
        cache.invalidate(&serial);
        assert_eq!(cache.status(&serial, now), None, "invalidated");
        assert!(cache.get(&serial, &[1], now).is_none());
    }

    #[test]
    fn paths_lead_only_to_answers_still_cached() {
        let cache = OcspCache::new(10);
        let now = OffsetDateTime::now_utc();
        let serial = Serial::from_hex("0c").expect("serial");
        let first = signed(1, now);
        // Not cached yet: nothing is remembered.
        cache.remember_path("/ocsp/a", &serial, &first);
        assert!(cache.by_path("/ocsp/a", now).is_none());

        cache.insert(serial.clone(), first.clone(), cache.epoch());
        cache.remember_path("/ocsp/a", &serial, &first);
        let hit = cache.by_path("/ocsp/a", now).expect("remembered");
        assert!(Arc::ptr_eq(&hit, &first));
        assert!(cache.by_path("/ocsp/b", now).is_none(), "another path");
        let half = now + time::Duration::hours(2);
        assert!(
            cache.by_path("/ocsp/a", half).is_none(),
            "due for re-signing"
        );

        // Re-signed: the path no longer leads to the old answer, until learned again.
        let second = signed(1, now);
        cache.insert(serial.clone(), second.clone(), cache.epoch());
        assert!(cache.by_path("/ocsp/a", now).is_none(), "replaced");
        cache.remember_path("/ocsp/a", &serial, &first);
        assert!(
            cache.by_path("/ocsp/a", now).is_none(),
            "the old answer is gone"
        );
        cache.remember_path("/ocsp/a", &serial, &second);
        assert!(Arc::ptr_eq(
            &cache.by_path("/ocsp/a", now).expect("relearned"),
            &second
        ));

        // A revocation drops the paths with the answers.
        cache.invalidate(&serial);
        assert!(cache.by_path("/ocsp/a", now).is_none(), "invalidated");
        cache.remember_path("/ocsp/a", &serial, &second);
        assert!(cache.by_path("/ocsp/a", now).is_none(), "not relearned");

        // At most a few spellings per serial; a new signer (clear) drops them all.
        let third = signed(2, now);
        cache.insert(serial.clone(), third.clone(), cache.epoch());
        for i in 0..10 {
            cache.remember_path(&format!("/ocsp/{i}"), &serial, &third);
        }
        let kept = (0..10)
            .filter(|i| cache.by_path(&format!("/ocsp/{i}"), now).is_some())
            .count();
        assert_eq!(kept, MAX_PATHS_PER_SERIAL);
        cache.clear();
        assert!(cache.by_path("/ocsp/0", now).is_none(), "cleared");
    }

    #[test]
    fn evicted_serials_take_their_paths_along() {
        let cache = OcspCache::new(3);
        let now = OffsetDateTime::now_utc();
        for i in 1..=10u8 {
            let serial = Serial::from_be_bytes(&[i]).expect("serial");
            let answer = signed(i, now);
            cache.insert(serial.clone(), answer.clone(), cache.epoch());
            cache.remember_path(&format!("/ocsp/{i}"), &serial, &answer);
        }
        let map = cache.map.read().expect("lock");
        assert!(map.serials.len() <= 3);
        assert_eq!(
            map.paths.len(),
            map.serials.values().map(|e| e.paths.len()).sum::<usize>(),
            "every path belongs to a cached serial"
        );
        for (path, (serial, _)) in &map.paths {
            assert!(map.serials[serial].paths.iter().any(|p| p == path));
        }
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = OcspCache::new(3);
        let now = OffsetDateTime::now_utc();
        for i in 1..=10u8 {
            let serial = Serial::from_be_bytes(&[i]).expect("serial");
            cache.insert(serial, signed(i, now), cache.epoch());
        }
        assert!(cache.len() <= 3 && cache.len() >= 2, "{}", cache.len());
    }
}
