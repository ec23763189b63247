//! The retention sweep `signet serve` runs every `[retention] interval`: certificates whose
//! notAfter lies more than `expired_after` back leave the hot tables (archived or deleted,
//! [`Store::sweep_retention`]). On PostgreSQL one replica at a time sweeps (a leadership of
//! its own, `retention`, taken for the sweep and released after it, so no replica keeps a
//! database connection open for it between sweeps); on SQLite the one process does.

use signet_ca::OffsetDateTime;
use signet_store::{DEFAULT_RETENTION_BATCH, RetentionMode, SERVER_REQUESTER, Store};

use crate::config::{RetentionModeSetting, RetentionSection};

/// The store's mode for a setting, or `None` when retention is off.
pub fn store_mode(setting: RetentionModeSetting) -> Option<RetentionMode> {
    match setting {
        RetentionModeSetting::Archive => Some(RetentionMode::Archive),
        RetentionModeSetting::Delete => Some(RetentionMode::Delete),
        RetentionModeSetting::Off => None,
    }
}

/// Sweep now and then every `settings.interval`, until the task is dropped. Returns at once
/// when retention is off.
pub async fn sweep_retention(store: Store, settings: RetentionSection) {
    let Some(mode) = store_mode(settings.mode) else {
        return;
    };
    let mut leader = store.leadership("retention");
    let mut tick = tokio::time::interval(settings.interval.duration());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match leader.check().await {
            Ok(true) => {}
            Ok(false) => {
                // Another replica sweeps now; this one asks again next time.
                leader.release().await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention: checking the sweep's leadership failed");
                continue;
            }
        }
        let before = OffsetDateTime::now_utc() - settings.expired_after.duration();
        match store
            .sweep_retention(before, mode, DEFAULT_RETENTION_BATCH, SERVER_REQUESTER)
            .await
        {
            Ok(swept) if swept.certificates > 0 => tracing::info!(
                certificates = swept.certificates,
                names = swept.names,
                used_tokens = swept.used_tokens,
                batches = swept.batches,
                mode = %mode,
                "retention: expired certificates left the hot tables"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention: the sweep failed"),
        }
        leader.release().await;
    }
}
