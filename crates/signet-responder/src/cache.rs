//! Pre-signed OCSP responses, per serial.
//!
//! Only the RFC 5019 common case is cached: one CertID, no nonce. A serial may be asked
//! about with a SHA-1 and a SHA-256 CertID, and the answer must echo the CertID exactly, so
//! each serial holds a few responses, one per CertID encoding.
//!
//! Correctness against revocation rests on one rule: a response is cached only if no
//! invalidation happened between reading the status from the database and inserting the
//! response. Every invalidation bumps `epoch`; a filler notes the epoch before its read and
//! inserts only if it is unchanged. Revocations are rare, so the fills this refuses cost
//! nothing measurable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use signet_ca::Serial;
use time::OffsetDateTime;

/// One signed response and what the HTTP layer says about it.
#[derive(Debug)]
pub(crate) struct Signed {
    /// The CertID as requested, DER: the cache key within a serial.
    pub(crate) cert_id_der: Vec<u8>,
    /// The OCSPResponse, DER.
    pub(crate) body: Bytes,
    pub(crate) this_update: OffsetDateTime,
    pub(crate) next_update: OffsetDateTime,
    /// When to sign afresh: half way to nextUpdate.
    pub(crate) refresh_at: OffsetDateTime,
    /// A strong validator of `body`, quoted.
    pub(crate) etag: String,
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
        Signed {
            cert_id_der,
            body: Bytes::from(body),
            this_update,
            next_update,
            refresh_at: this_update + (next_update - this_update) / 2,
            etag,
        }
    }
}

#[derive(Debug)]
pub(crate) struct OcspCache {
    map: RwLock<HashMap<Serial, Vec<Arc<Signed>>>>,
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
            .iter()
            .find(|s| s.cert_id_der == cert_id_der && now < s.refresh_at)
            .cloned()
    }

    /// The epoch to pass to [`OcspCache::insert`]: read it before reading the status.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Caches `signed` unless an invalidation happened since `epoch` was read.
    pub(crate) fn insert(&self, serial: Serial, signed: Arc<Signed>, epoch: u64) {
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
            map.retain(|_, v| v.iter().any(|s| now < s.refresh_at));
            if map.len() >= self.max {
                // Still full of fresh answers: drop an arbitrary eighth in one pass, so that
                // a stream of new serials costs one scan per max/8 insertions, not per insert.
                let victims: Vec<Serial> = map.keys().take(self.max / 8 + 1).cloned().collect();
                for victim in victims {
                    map.remove(&victim);
                }
            }
        }
        let entry = map.entry(serial).or_default();
        entry.retain(|s| s.cert_id_der != signed.cert_id_der);
        entry.push(signed);
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
            .map(Vec::len)
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
