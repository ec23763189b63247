//! Pre-signed OCSP responses and certificate statuses, per serial.
//!
//! Only the RFC 5019 common case is cached as signed bytes: one CertID, no nonce. Every
//! other request (a nonce, several CertIDs) is signed afresh but takes each status from
//! here when it can, so it costs a signature and no database round trip. A serial may be asked
//! about with a SHA-1 and a SHA-256 CertID, and the answer must echo the CertID exactly, so
//! each serial holds a few responses, one per CertID encoding.
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

#[derive(Debug)]
pub(crate) struct OcspCache {
    map: RwLock<HashMap<Serial, Entry>>,
    epoch: AtomicU64,
    max: usize,
}

impl OcspCache {
    pub(crate) fn new(max: usize) -> Self {
        OcspCache {
            map: RwLock::new(HashMap::new()),
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
        map.get(serial)?
            .signed
            .iter()
            .find(|s| s.cert_id_der == cert_id_der && now < s.refresh_at)
            .cloned()
    }

    /// The status of `serial` as last read from the database, if it may still be used at
    /// `now`. Invalidation drops it with the signed responses.
    pub(crate) fn status(&self, serial: &Serial, now: OffsetDateTime) -> Option<CertStatusKind> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        match map.get(serial)?.status {
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
        self.update(serial, epoch, |entry| entry.status = Some((status, until)));
    }

    /// The epoch to pass to [`OcspCache::insert`]: read it before reading the status.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `signed` unless an invalidation happened since `epoch` was read.
    pub(crate) fn insert(&self, serial: Serial, signed: Arc<Signed>, epoch: u64) {
        self.update(serial, epoch, |entry| {
            entry.signed.retain(|s| s.cert_id_der != signed.cert_id_der);
            entry.signed.push(signed);
        });
    }

    /// Applies `change` to the entry of `serial` (made if need be, evicting when full) unless
    /// an invalidation happened since `epoch` was read.
    fn update(&self, serial: Serial, epoch: u64, change: impl FnOnce(&mut Entry)) {
        if self.max == 0 {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the write lock, which invalidation also takes: an invalidation
        // either happened before this check (and is seen) or waits and removes the entry.
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if map.len() >= self.max && !map.contains_key(&serial) {
            let now = OffsetDateTime::now_utc();
            map.retain(|_, v| v.fresh(now));
            if map.len() >= self.max {
                // Still full of fresh answers: drop an arbitrary eighth in one pass, so that
                // a stream of new serials costs one scan per max/8 insertions, not per insert.
                let victims: Vec<Serial> = map.keys().take(self.max / 8 + 1).cloned().collect();
                for victim in victims {
                    map.remove(&victim);
                }
            }
        }
        change(map.entry(serial).or_default());
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
        map.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
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
