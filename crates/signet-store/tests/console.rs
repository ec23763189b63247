//! What the operator console reads from the store, on both backends: the overview's counts
//! from the aggregates of migration 0011 agree with counting the rows themselves (after
//! single and group-committed inserts, revocations and a retention sweep, at several
//! moments that put the range ends inside and between hours), the hourly activity, and
//! sessions (found, touched, expired by idleness and by their absolute end, deleted).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use signet_pkix::{RevocationReason, Serial};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, CertificateCounts, NewCertificate, RetentionMode, Store,
};
use signet_testkit::TestDb;
use sqlx::{Connection, Row};
use time::OffsetDateTime;

fn sn(n: u32) -> Serial {
    Serial::from_hex(&format!("{:06x}", 0x10_0000 + n)).unwrap()
}

fn record(n: u32, not_after: OffsetDateTime) -> NewCertificate {
    NewCertificate {
        serial: sn(n),
        issuer: "CN=Signet Intermediate CA".to_owned(),
        issuer_key_id: "a1b2c3d4".to_owned(),
        subject: String::new(),
        sans: vec![format!("dns:host-{n}.example")],
        profile: "server".to_owned(),
        not_before: not_after - time::Duration::days(400),
        not_after,
        requester: "admin".to_owned(),
        der: vec![0x30, 0x03, 0x02, 0x01, 0x01],
        crl_shard: None,
    }
}

fn audit(n: u32, action: AuditAction) -> AuditEntry {
    AuditEntry {
        actor: "admin".into(),
        action,
        serial: Some(sn(n)),
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

async fn count(conn: &mut sqlx::AnyConnection, sql: &'static str, now: i64) -> u64 {
    let row = sqlx::query(sql).bind(now).fetch_one(conn).await.unwrap();
    let n: i64 = row.try_get(0).unwrap();
    u64::try_from(n).unwrap()
}

/// The counts at `now` by counting rows, the way the aggregates must agree with.
async fn brute_force(url: &str, now: i64) -> CertificateCounts {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let c = &mut conn;
    CertificateCounts {
        valid: count(
            c,
            "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NULL AND not_after > $1",
            now,
        )
        .await,
        expiring_24h: count(
            c,
            "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NULL AND not_after > $1 \
             AND not_after <= $1 + 86400",
            now,
        )
        .await,
        expiring_7d: count(
            c,
            "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NULL AND not_after > $1 \
             AND not_after <= $1 + 604800",
            now,
        )
        .await,
        revoked: count(
            c,
            "SELECT COUNT(*) FROM certificates WHERE revoked_at IS NOT NULL AND not_after > $1",
            now,
        )
        .await,
        expired: count(
            c,
            "SELECT COUNT(*) FROM certificates WHERE not_after <= $1",
            now,
        )
        .await,
    }
}

#[tokio::test]
async fn the_overview_counts_agree_with_the_rows() {
    sqlx::any::install_default_drivers();
    for db in TestDb::all().await {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        // notAfter spread from 40 days ago to 40 days ahead, every 37 minutes and a few
        // seconds, so that rows fall on, just before and just after every boundary.
        let offsets: Vec<i64> = (0..3200).map(|i| -40 * 86_400 + i * 2_221).collect();
        // Half one by one (a lone commit each), half concurrently (group commit batches).
        let (alone, together) = offsets.split_at(offsets.len() / 2);
        for (i, off) in alone.iter().enumerate() {
            let n = u32::try_from(i).unwrap();
            let na = now + time::Duration::seconds(*off);
            store
                .insert_certificate(&record(n, na), &audit(n, AuditAction::Issue))
                .await
                .unwrap();
        }
        let base = u32::try_from(alone.len()).unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, off) in together.iter().enumerate() {
            let store = store.clone();
            let n = base + u32::try_from(i).unwrap();
            let na = now + time::Duration::seconds(*off);
            tasks.spawn(async move {
                store
                    .insert_certificate(&record(n, na), &audit(n, AuditAction::Issue))
                    .await
                    .unwrap();
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        // Every seventh revoked (some already expired, some not).
        for n in (0..3200).step_by(7) {
            store
                .revoke(
                    &sn(n),
                    now,
                    RevocationReason::KeyCompromise,
                    &audit(n, AuditAction::Revoke),
                )
                .await
                .unwrap();
        }
        // A sweep takes out what expired more than 30 days ago.
        let swept = store
            .sweep_retention(
                now - time::Duration::days(30),
                RetentionMode::Archive,
                100,
                "test",
            )
            .await
            .unwrap();
        assert!(swept.certificates > 0, "[{db}] the sweep removed nothing");
        for shift in [0, 1, 59, 1800, 3599, 3600, 86_399, 5 * 86_400 + 17] {
            let at = now + time::Duration::seconds(shift);
            let expected = brute_force(db.url(), at.unix_timestamp()).await;
            let got = store.certificate_counts(at).await.unwrap();
            assert_eq!(got, expected, "[{db}] at now + {shift} s");
        }
        let counts = store.certificate_counts(now).await.unwrap();
        assert!(
            counts.valid > 0 && counts.revoked > 0 && counts.expired > 0,
            "{counts:?}"
        );
        assert!(
            counts.expiring_24h > 0 && counts.expiring_7d > counts.expiring_24h,
            "{counts:?}"
        );

        // Activity: every certificate was recorded this hour, and revoked this hour.
        let activity = store
            .hourly_activity(now - time::Duration::hours(2))
            .await
            .unwrap();
        let issued: u64 = activity.iter().map(|a| a.issued).sum();
        let revoked: u64 = activity.iter().map(|a| a.revoked).sum();
        assert_eq!(issued, 3200, "[{db}] {activity:?}");
        assert_eq!(revoked, 3200u64.div_ceil(7), "[{db}] {activity:?}");
        assert!(
            activity.windows(2).all(|w| w[0].hour < w[1].hour),
            "[{db}] oldest first: {activity:?}"
        );
    }
}

#[tokio::test]
async fn console_sessions_end_when_idle_expired_or_deleted() {
    for db in TestDb::all().await {
        let store = Store::connect(db.url()).await.unwrap();
        store.migrate().await.unwrap();
        let later = OffsetDateTime::now_utc() + time::Duration::hours(8);
        store
            .create_console_session("aa11", "admin", "csrf-1", later)
            .await
            .unwrap();
        let found = store
            .touch_console_session("aa11", Duration::from_secs(900))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.role, "admin", "[{db}]");
        assert_eq!(found.csrf, "csrf-1", "[{db}]");
        assert!(
            !format!("{found:?}").contains("csrf-1"),
            "[{db}] the token is redacted"
        );
        assert!(
            store
                .touch_console_session("bb22", Duration::from_secs(900))
                .await
                .unwrap()
                .is_none(),
            "[{db}] an unknown session"
        );
        // Signing out deletes it.
        assert!(store.delete_console_session("aa11").await.unwrap());
        assert!(
            store
                .touch_console_session("aa11", Duration::from_secs(900))
                .await
                .unwrap()
                .is_none(),
            "[{db}] a deleted session"
        );
        assert!(!store.delete_console_session("aa11").await.unwrap());

        // Idle for longer than the idle timeout (zero): ended, and gone.
        store
            .create_console_session("cc33", "auditor", "csrf-2", later)
            .await
            .unwrap();
        assert!(
            store
                .touch_console_session("cc33", Duration::ZERO)
                .await
                .unwrap()
                .is_none(),
            "[{db}] an idle session"
        );
        assert!(
            !store.delete_console_session("cc33").await.unwrap(),
            "[{db}]"
        );

        // Past its absolute end.
        store
            .create_console_session(
                "dd44",
                "admin",
                "csrf-3",
                OffsetDateTime::now_utc() - time::Duration::seconds(1),
            )
            .await
            .unwrap();
        assert!(
            store
                .touch_console_session("dd44", Duration::from_secs(900))
                .await
                .unwrap()
                .is_none(),
            "[{db}] an expired session"
        );
        // Bad input changes nothing.
        assert!(
            store
                .create_console_session("", "admin", "x", later)
                .await
                .is_err()
        );
        assert!(
            store
                .create_console_session("ee55", "admin", "a\0b", later)
                .await
                .is_err()
        );
    }
}
