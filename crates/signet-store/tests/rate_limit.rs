//! Shared rate-limit buckets (`Store::take_rate_token`, migration 0007) on both backends: a
//! bucket grants its burst and then refuses, refills at its rate by the database's clock,
//! keeps one budget for several stores (processes) hammering it at once, and its rows are
//! purged once full again.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use signet_store::{RateDecision, Store, StoreError};
use signet_testkit::TestDb;

async fn store(db: &TestDb) -> Store {
    let store = Store::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

#[tokio::test]
async fn a_bucket_grants_its_burst_then_refuses_then_refills() {
    for db in TestDb::all().await {
        let store = store(&db).await;
        // Burst 5 at 1/s: five at once, the sixth refused with a wait of at most 1 s.
        for i in 0..5 {
            assert_eq!(
                store.take_rate_token("p/slow", 1, 5).await.unwrap(),
                RateDecision::Granted,
                "{}: request {i} of the burst",
                db.name()
            );
        }
        match store.take_rate_token("p/slow", 1, 5).await.unwrap() {
            RateDecision::Refused { retry_after } => {
                assert!(retry_after <= Duration::from_secs(1), "{retry_after:?}")
            }
            RateDecision::Granted => panic!("{}: the sixth request was granted", db.name()),
        }
        // Another bucket is independent.
        assert_eq!(
            store.take_rate_token("p/other", 1, 5).await.unwrap(),
            RateDecision::Granted
        );

        // 20/s with a burst of 1 (raised to the rate, 20): drain it, then one more token
        // arrives within 50 ms.
        let mut granted = 0;
        while store.take_rate_token("p/fast", 20, 1).await.unwrap() == RateDecision::Granted {
            granted += 1;
            assert!(granted <= 40, "{}: the bucket never ran dry", db.name());
        }
        assert!(
            granted >= 20,
            "{}: burst below the rate: {granted}",
            db.name()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            store.take_rate_token("p/fast", 20, 1).await.unwrap(),
            RateDecision::Granted,
            "{}: no refill after 200 ms at 20/s",
            db.name()
        );

        // Inputs are checked before any query.
        for (bucket, rate) in [("", 1), ("a\0b", 1), (&*"x".repeat(257), 1), ("p/x", 0)] {
            assert!(
                matches!(
                    store.take_rate_token(bucket, rate, 1).await,
                    Err(StoreError::InvalidInput(_))
                ),
                "{}: {bucket:?} at {rate}/s was not refused",
                db.name()
            );
        }
    }
}

#[tokio::test]
async fn full_buckets_are_purged() {
    for db in TestDb::all().await {
        let store = store(&db).await;
        // The first take also purges (at most once a minute): let it happen now.
        assert_eq!(
            store.take_rate_token("p/warm-up", 1, 10).await.unwrap(),
            RateDecision::Granted
        );
        assert_eq!(
            store.take_rate_token("p/quick", 1000, 1000).await.unwrap(),
            RateDecision::Granted
        );
        assert_eq!(
            store.take_rate_token("p/slow", 1, 10).await.unwrap(),
            RateDecision::Granted
        );
        // "p/quick" is full again after 50 ms (its take was a lease of 50 tokens, a
        // twentieth of a second's worth, which this store drops unspent after those 50 ms);
        // "p/slow" and "p/warm-up" only after 1 s.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            store.purge_full_rate_buckets().await.unwrap(),
            1,
            "{}",
            db.name()
        );
        // A purged bucket is a full one: its whole burst (plus what refills meanwhile).
        let started = Instant::now();
        let mut granted = 0u64;
        while store.take_rate_token("p/quick", 1, 50).await.unwrap() == RateDecision::Granted {
            granted += 1;
            assert!(granted <= 100, "{}: the bucket never ran dry", db.name());
        }
        let most = 50 + started.elapsed().as_secs() + 1;
        assert!(
            (50..=most).contains(&granted),
            "{}: {granted} granted from a purged bucket of 50",
            db.name()
        );
        // "p/slow" kept its state: 9 left.
        let mut left = 0;
        while store.take_rate_token("p/slow", 1, 10).await.unwrap() == RateDecision::Granted {
            left += 1;
            assert!(left <= 11);
        }
        assert!((9..=10).contains(&left), "{}: {left}", db.name());
    }
}

/// Three stores (three pools, as three replicas have) and 4 tasks each take from `bucket`
/// for 2 s as fast as they can: what they were granted and refused together, and the budget
/// bound burst + rate x elapsed.
async fn three_stores_take_for_two_seconds(
    bucket: &'static str,
    rate: u32,
    burst: u32,
) -> (f64, u64, f64) {
    let db = TestDb::postgres().await;
    let first = store(&db).await;
    let mut stores = vec![first];
    for _ in 0..2 {
        stores.push(Store::connect(db.url()).await.unwrap());
    }
    let granted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let run = Duration::from_secs(2);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for store in &stores {
        for _ in 0..4 {
            let (store, granted, refused) = (store.clone(), granted.clone(), refused.clone());
            tasks.push(tokio::spawn(async move {
                while start.elapsed() < run {
                    match store.take_rate_token(bucket, rate, burst).await.unwrap() {
                        RateDecision::Granted => granted.fetch_add(1, Ordering::Relaxed),
                        RateDecision::Refused { .. } => refused.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let granted = granted.load(Ordering::Relaxed) as f64;
    let refused = refused.load(Ordering::Relaxed);
    let bound = f64::from(burst.max(rate)) + f64::from(rate) * elapsed;
    eprintln!("granted {granted}, refused {refused}, in {elapsed:.2} s, bound {bound:.1}");
    (granted, refused, bound)
}

/// Three stores together are granted no more than burst + rate x elapsed, and not much
/// less either (the budget is used, not just refused).
#[tokio::test]
async fn several_stores_share_one_budget() {
    let (rate, burst) = (25u32, 10u32);
    let (granted, refused, bound) =
        three_stores_take_for_two_seconds("p/shared", rate, burst).await;
    assert!(granted <= bound, "granted {granted} > bound {bound:.1}");
    assert!(refused > 0, "the bucket was never empty");
    assert!(
        granted >= 0.8 * (f64::from(burst.max(rate)) + f64::from(rate) * 2.0),
        "granted {granted}: far below the budget {bound:.1}"
    );
}

#[tokio::test]
async fn large_limits_are_taken_in_leases_and_still_shared() {
    // 800 a second: each store takes leases of 40 tokens (a twentieth of a second's worth).
    let (rate, burst) = (800u32, 400u32);
    let (granted, refused, bound) =
        three_stores_take_for_two_seconds("p/leased", rate, burst).await;
    // Every token granted was taken from the shared bucket first: the same bound.
    assert!(granted <= bound, "granted {granted} > bound {bound:.1}");
    assert!(refused > 0, "the bucket was never empty");
    assert!(
        granted >= 0.5 * (f64::from(burst.max(rate)) + f64::from(rate) * 2.0),
        "granted {granted}: far below the budget {bound:.1}"
    );
}
