//! Listing with keyset pagination: certificates (by creation time and serial, behind an
//! opaque cursor) and audit rows (by id), filtered by values that are always bound,
//! never written into the SQL.

use std::time::Duration;

use signet_pkix::Serial;
use sqlx::AnyPool;
use sqlx::any::AnyRow;
use time::OffsetDateTime;

use crate::audit::audit_from_row;
use crate::certificates::certificate_from_row;
use crate::serial::{db_serial, parse_db_serial};
use crate::{
    AuditAction, AuditOutcome, AuditRecord, Backend, CertStatus, CertificateRecord,
    SERVER_REQUESTER, Store, StoreError, duration_secs,
};

/// Page size of a [`CertificateFilter::default`].
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Largest page [`Store::list_certificates`] returns; larger limits are
/// clamped to it.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Longest accepted `profile` or `name` filter value, in bytes.
const MAX_FILTER_LEN: usize = 1024;

/// Which certificates [`Store::list_certificates`] returns. Every filter
/// that is set must match (they are ANDed); unset filters match everything.
///
/// Build one with struct update syntax from the default:
/// `CertificateFilter { profile: Some("server".into()), ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFilter {
    /// Only certificates with this status now (see [`CertificateRecord::status`]).
    pub status: Option<CertStatus>,
    /// Only certificates issued under this profile (exact, case-sensitive).
    pub profile: Option<String>,
    /// Only certificates with this subject alternative name, in tagged form
    /// (`"dns:api.internal"`, `"ip:10.0.0.1"`…): an exact, case-sensitive
    /// match against one whole element of [`CertificateRecord::sans`].
    pub name: Option<String>,
    /// Only good certificates (not revoked, not yet expired) whose
    /// `not_after` is at most this far from now.
    pub expiring_within: Option<Duration>,
    /// Only certificates someone asked for: profiles `server`, `client` and `peer`, not
    /// requested by [`SERVER_REQUESTER`]. This leaves out the server's own TLS
    /// certificates, the OCSP responders' signer certificates (profile `ocsp-signer`) and
    /// CA certificates recorded under the root (profile `ca`).
    pub requested_only: bool,
    /// Only certificates whose recorded requester is exactly this (`admin`,
    /// `token:<provisioner>:<subject>`…).
    pub requester: Option<String>,
    /// Only certificates requested through this provisioner: a requester recorded as
    /// `token:<name>:…`, `k8s:<name>:…` or `acme:<name>:…`.
    pub provisioner: Option<String>,
    /// Only certificates whose `not_after` is at or after this.
    pub not_after_from: Option<OffsetDateTime>,
    /// Only certificates whose `not_after` is at or before this.
    pub not_after_until: Option<OffsetDateTime>,
    /// The order of the listing (and so of its cursors).
    pub order: CertificateOrder,
    /// Page size; clamped to `1..=`[`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Where to continue: the [`CertificatePage::next_cursor`] of the
    /// previous page, or `None` for the first page.
    pub cursor: Option<String>,
}

impl Default for CertificateFilter {
    /// No filters, first page, [`DEFAULT_PAGE_SIZE`] rows.
    fn default() -> Self {
        CertificateFilter {
            status: None,
            profile: None,
            name: None,
            expiring_within: None,
            requested_only: false,
            requester: None,
            provisioner: None,
            not_after_from: None,
            not_after_until: None,
            order: CertificateOrder::Newest,
            limit: DEFAULT_PAGE_SIZE,
            cursor: None,
        }
    }
}

/// The order of [`Store::list_certificates`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CertificateOrder {
    /// Newest first: `created_at`, then serial, descending.
    #[default]
    Newest,
    /// Soonest expiry first: `not_after`, then serial, ascending.
    ExpiringFirst,
    /// Latest expiry first: `not_after`, then serial, descending.
    ExpiringLast,
}

/// One page of [`Store::list_certificates`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePage {
    /// The certificates, newest first (by `created_at`, then serial,
    /// descending).
    pub items: Vec<CertificateRecord>,
    /// Opaque cursor for the next page, present only if more rows match.
    /// Pass it back unchanged in [`CertificateFilter::cursor`] with the same
    /// filters.
    pub next_cursor: Option<String>,
}

/// Which audit rows [`Store::list_audit_page`] returns: those matching every filter
/// given, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only rows about this certificate.
    pub serial: Option<Serial>,
    /// Only rows by this actor (exact), e.g. `admin` or `token:default:svc`.
    pub actor: Option<String>,
    /// Only this action (compared by its stored spelling). An `Other` value matches rows
    /// holding exactly that string.
    pub action: Option<AuditAction>,
    /// Only this outcome (compared by its stored spelling).
    pub outcome: Option<AuditOutcome>,
    /// Only rows recorded at or after this time.
    pub at_from: Option<OffsetDateTime>,
    /// Only rows recorded at or before this time.
    pub at_until: Option<OffsetDateTime>,
    /// Only rows older than this id: the previous page's [`AuditPage::next_before`].
    pub before: Option<i64>,
    /// Page size; clamped to `1..=`[`MAX_PAGE_SIZE`].
    pub limit: u32,
}

impl Default for AuditFilter {
    fn default() -> Self {
        AuditFilter {
            serial: None,
            actor: None,
            action: None,
            outcome: None,
            at_from: None,
            at_until: None,
            before: None,
            limit: 100,
        }
    }
}

/// One page of [`Store::list_audit_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// The rows, newest first (by id, descending).
    pub items: Vec<AuditRecord>,
    /// Present only if more rows match: pass it as [`AuditFilter::before`] with the same
    /// filters for the next page.
    pub next_before: Option<i64>,
}

/// Checks a `profile` or `name` filter value: 1 to [`MAX_FILTER_LEN`] bytes,
/// no NUL. (Values are always bound, never put into SQL: this only keeps
/// nonsense from reaching the database.)
fn validate_filter_text(what: &str, value: &str) -> Result<(), StoreError> {
    if value.is_empty() || value.len() > MAX_FILTER_LEN {
        return Err(StoreError::InvalidInput(format!(
            "{what} filter must be 1 to {MAX_FILTER_LEN} bytes long"
        )));
    }
    if value.contains('\0') {
        return Err(StoreError::InvalidInput(format!(
            "{what} filter must not contain NUL"
        )));
    }
    Ok(())
}

/// A position in the listing order: the last row of a page (its `created_at`, or its
/// `not_after` when ordered by expiry).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    created_at: i64,
    serial: String,
}

impl Cursor {
    /// `"<unix seconds>:<serial>"`, e.g. `"1700000000:7fa3c901"`; ordered by expiry, the
    /// same behind `e:`, so that a cursor of one order is refused by the other.
    fn encode(&self, order: CertificateOrder) -> String {
        let prefix = match order {
            CertificateOrder::Newest => "",
            CertificateOrder::ExpiringFirst => "e:",
            CertificateOrder::ExpiringLast => "l:",
        };
        format!("{prefix}{}:{}", self.created_at, self.serial)
    }

    /// Parses exactly what [`Cursor::encode`] produces: a non-negative
    /// decimal without sign or leading zeros, `:`, a serial as the store spells it.
    fn decode(s: &str, order: CertificateOrder) -> Result<Cursor, StoreError> {
        let bad = || StoreError::InvalidInput("malformed page cursor".to_owned());
        let s = match order {
            CertificateOrder::Newest => s,
            CertificateOrder::ExpiringFirst => s.strip_prefix("e:").ok_or_else(bad)?,
            CertificateOrder::ExpiringLast => s.strip_prefix("l:").ok_or_else(bad)?,
        };
        let (secs, serial) = s.split_once(':').ok_or_else(bad)?;
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let created_at: i64 = secs.parse().map_err(|_| bad())?;
        if created_at.to_string() != secs {
            return Err(bad()); // leading zeros: not a cursor we made
        }
        parse_db_serial(serial).ok_or_else(bad)?;
        Ok(Cursor {
            created_at,
            serial: serial.to_owned(),
        })
    }
}

/// The provisioner of the requester `c.requester` (`token:<name>:…`, `k8s:<name>:…`,
/// `acme:<name>:…`: the text between the first and the second colon, not empty), else
/// NULL, as SQLite spells it. It must stay exactly the expression of migration 0012's
/// `certificates_provisioner_idx` and `certificates_provisioner_expiry_idx`: SQLite uses an
/// index on an expression only for the very same expression.
const PROVISIONER_SQLITE: &str = "(CASE WHEN substr(c.requester, 1, instr(c.requester, ':') - 1) \
     IN ('token', 'k8s', 'acme') \
     AND instr(substr(c.requester, instr(c.requester, ':') + 1), ':') > 1 \
     THEN substr(c.requester, instr(c.requester, ':') + 1, \
     instr(substr(c.requester, instr(c.requester, ':') + 1), ':') - 1) END)";

/// [`PROVISIONER_SQLITE`] as PostgreSQL spells it (the same value for every requester),
/// exactly as migration 0012 indexes it there.
const PROVISIONER_POSTGRES: &str = "(substring(c.requester from '^(?:token|k8s|acme):([^:]+):'))";

/// A value bound to a dynamically assembled listing query.
enum Param {
    Int(i64),
    Text(String),
}

/// Assembles the `WHERE` clause of a listing from fixed SQL fragments, with
/// numbered placeholders for every value. No value ever becomes SQL text:
/// the SQL depends only on which filters are present.
#[derive(Default)]
struct Conditions {
    clauses: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Adds `param` and returns its placeholder, `$N`.
    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }

    fn push(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// `select` with these conditions, then `ORDER BY order LIMIT limit` (the limit bound
    /// last), and the values to bind in order.
    fn into_sql(mut self, select: &str, order: &str, limit: i64) -> (String, Vec<Param>) {
        let fetch = self.bind(Param::Int(limit));
        let mut sql = String::from(select);
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE (");
            sql.push_str(&self.clauses.join(") AND ("));
            sql.push(')');
        }
        sql.push_str(" ORDER BY ");
        sql.push_str(order);
        sql.push_str(" LIMIT ");
        sql.push_str(&fetch);
        (sql, self.params)
    }

    /// Runs `select` with these conditions, then `ORDER BY order LIMIT limit`, binding every
    /// value; returns the rows.
    async fn fetch_all(
        self,
        pool: &AnyPool,
        select: &str,
        order: &str,
        limit: i64,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let (sql, params) = self.into_sql(select, order, limit);
        Ok(bind_all(&sql, params).fetch_all(pool).await?)
    }
}

/// `sql` with `params` bound in order.
fn bind_all(
    sql: &str,
    params: Vec<Param>,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments> {
    // Safe to run as built: `sql` is made only of the callers' constant fragments and
    // `$N` placeholders; every value is bound here.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for param in params {
        query = match param {
            Param::Int(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
        };
    }
    query
}

impl Store {
    /// One page of stored certificates matching `filter`, newest first
    /// (`created_at` descending, then serial descending), with keyset
    /// pagination: pass [`CertificatePage::next_cursor`] back in
    /// [`CertificateFilter::cursor`] for the next page. Walking the pages
    /// with unchanged filters returns every matching row exactly once, even
    /// while certificates are being added (a row added meanwhile appears at
    /// most once, on a later page or on a fresh first page).
    ///
    /// Status filters are evaluated at the current time, to the second.
    /// A malformed cursor, or an empty, over-long or NUL-containing `profile`
    /// or `name`, gives [`StoreError::InvalidInput`] and no query is run.
    pub async fn list_certificates(
        &self,
        filter: &CertificateFilter,
    ) -> Result<CertificatePage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let (sql, params) = self.certificate_listing_sql(filter)?;
        let rows = bind_all(&sql, params).fetch_all(&self.pool).await?;

        let mut items = rows
            .iter()
            .map(certificate_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if items.len() > page_len {
            items.truncate(page_len);
            items.last().map(|last| {
                let at = match filter.order {
                    CertificateOrder::Newest => last.created_at,
                    CertificateOrder::ExpiringFirst | CertificateOrder::ExpiringLast => {
                        last.not_after
                    }
                };
                Cursor {
                    created_at: at.unix_timestamp(),
                    serial: db_serial(&last.serial),
                }
                .encode(filter.order)
            })
        } else {
            None
        };
        Ok(CertificatePage { items, next_cursor })
    }

    /// The query of [`Store::list_certificates`] for `filter` (a page and one row more),
    /// with its values to bind.
    fn certificate_listing_sql(
        &self,
        filter: &CertificateFilter,
    ) -> Result<(String, Vec<Param>), StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let cursor = filter
            .cursor
            .as_deref()
            .map(|c| Cursor::decode(c, filter.order))
            .transpose()?;
        if let Some(profile) = &filter.profile {
            validate_filter_text("profile", profile)?;
        }
        if let Some(requester) = &filter.requester {
            validate_filter_text("requester", requester)?;
        }
        if let Some(provisioner) = &filter.provisioner {
            validate_filter_text("provisioner", provisioner)?;
        }
        if let Some(name) = &filter.name {
            validate_filter_text("name", name)?;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();

        let mut cond = Conditions::default();
        match filter.status {
            None => {}
            Some(CertStatus::Revoked) => cond.push("c.revoked_at IS NOT NULL".to_owned()),
            Some(CertStatus::Expired) => {
                let p = cond.bind(Param::Int(now));
                cond.push(format!("c.revoked_at IS NULL AND c.not_after <= {p}"));
            }
            Some(CertStatus::Good) => {
                let p = cond.bind(Param::Int(now));
                cond.push(format!("c.revoked_at IS NULL AND c.not_after > {p}"));
            }
        }
        if let Some(within) = filter.expiring_within {
            let from = cond.bind(Param::Int(now));
            let until = cond.bind(Param::Int(now.saturating_add(duration_secs(within))));
            cond.push(format!(
                "c.revoked_at IS NULL AND c.not_after > {from} AND c.not_after <= {until}"
            ));
        }
        if let Some(profile) = &filter.profile {
            let p = cond.bind(Param::Text(profile.clone()));
            cond.push(format!("c.profile = {p}"));
        }
        if filter.requested_only {
            let server = cond.bind(Param::Text(SERVER_REQUESTER.to_owned()));
            cond.push(format!(
                "c.profile IN ('server', 'client', 'peer') AND c.requester <> {server}"
            ));
        }
        if let Some(name) = &filter.name {
            // certificate_names is kept in step with sans by triggers
            // (migration 0002): an exact, indexed match on one element. Written as IN, so
            // that SQLite starts from the name's few rows: as EXISTS it walked the listing
            // order's index and probed every row (a second for a name held by one
            // certificate among a million; BENCHMARKS.md, "Console").
            let p = cond.bind(Param::Text(name.clone()));
            cond.push(format!(
                "c.serial IN (SELECT n.serial FROM certificate_names AS n WHERE n.name = {p})"
            ));
        }
        if let Some(requester) = &filter.requester {
            let p = cond.bind(Param::Text(requester.clone()));
            cond.push(format!("c.requester = {p}"));
        }
        if let Some(provisioner) = filter.provisioner.as_ref().filter(|p| !p.contains(':')) {
            // The provisioner part of the requester, as migration 0012 indexes it (with
            // created_at and with not_after): one range of one index in either order.
            let p = cond.bind(Param::Text(provisioner.clone()));
            let expr = match self.backend {
                Backend::Sqlite => PROVISIONER_SQLITE,
                Backend::Postgres => PROVISIONER_POSTGRES,
            };
            cond.push(format!("{expr} = {p}"));
        } else if let Some(provisioner) = &filter.provisioner {
            // A name with a colon: a prefix as a range (`>= 'token:a:b:'` and
            // `< 'token:a:b;'`), with no LIKE pattern to escape, over
            // certificates_requester_idx (then sorted: no index keeps this order).
            let mut ranges = Vec::new();
            for kind in ["token", "k8s", "acme"] {
                let lo = cond.bind(Param::Text(format!("{kind}:{provisioner}:")));
                let hi = cond.bind(Param::Text(format!("{kind}:{provisioner};")));
                ranges.push(format!("(c.requester >= {lo} AND c.requester < {hi})"));
            }
            cond.push(ranges.join(" OR "));
        }
        if let Some(from) = filter.not_after_from {
            let p = cond.bind(Param::Int(from.unix_timestamp()));
            cond.push(format!("c.not_after >= {p}"));
        }
        if let Some(until) = filter.not_after_until {
            let p = cond.bind(Param::Int(until.unix_timestamp()));
            cond.push(format!("c.not_after <= {p}"));
        }
        let (key, cmp, order) = match filter.order {
            CertificateOrder::Newest => ("c.created_at", "<", "c.created_at DESC, c.serial DESC"),
            CertificateOrder::ExpiringFirst => {
                ("c.not_after", ">", "c.not_after ASC, c.serial ASC")
            }
            CertificateOrder::ExpiringLast => {
                ("c.not_after", "<", "c.not_after DESC, c.serial DESC")
            }
        };
        if let Some(cursor) = cursor {
            let at = cond.bind(Param::Int(cursor.created_at));
            let serial = cond.bind(Param::Text(cursor.serial));
            cond.push(format!(
                "({key} {cmp} {at} OR ({key} = {at} AND c.serial {cmp} {serial}))"
            ));
        }
        // One extra row tells whether another page exists.
        Ok(cond.into_sql(
            "SELECT c.serial, c.issuer, c.issuer_key_id, c.subject, c.sans, c.profile, \
             c.not_before, c.not_after, c.requester, c.der, c.created_at, \
             c.revoked_at, c.revocation_reason \
             FROM certificates AS c",
            order,
            i64::from(limit) + 1,
        ))
    }

    /// A page of audit rows matching `filter`, newest first. Keyset pagination on the id,
    /// which only grows, so pages never skip or repeat a row while new ones are appended.
    /// A serial filter uses the `audit_log_serial_idx` index.
    pub async fn list_audit_page(&self, filter: &AuditFilter) -> Result<AuditPage, StoreError> {
        let limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
        let mut cond = Conditions::default();
        if let Some(serial) = &filter.serial {
            let p = cond.bind(Param::Text(db_serial(serial)));
            cond.push(format!("serial = {p}"));
        }
        for (column, value) in [
            ("actor", filter.actor.as_deref()),
            ("action", filter.action.as_ref().map(AuditAction::as_str)),
            ("outcome", filter.outcome.as_ref().map(AuditOutcome::as_str)),
        ] {
            if let Some(v) = value {
                validate_filter_text(column, v)?;
                let p = cond.bind(Param::Text(v.to_owned()));
                cond.push(format!("{column} = {p}"));
            }
        }
        if let Some(from) = filter.at_from {
            let p = cond.bind(Param::Int(from.unix_timestamp()));
            cond.push(format!("at >= {p}"));
        }
        if let Some(until) = filter.at_until {
            let p = cond.bind(Param::Int(until.unix_timestamp()));
            cond.push(format!("at <= {p}"));
        }
        if let Some(before) = filter.before {
            let p = cond.bind(Param::Int(before));
            cond.push(format!("id < {p}"));
        }
        // One extra row tells whether another page exists. The column names in the
        // conditions come from the fixed list above.
        let rows = cond
            .fetch_all(
                &self.pool,
                "SELECT id, at, actor, action, serial, outcome, detail FROM audit_log",
                "id DESC",
                i64::from(limit) + 1,
            )
            .await?;
        let mut items = rows
            .iter()
            .map(audit_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let page_len = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_before = if items.len() > page_len {
            items.truncate(page_len);
            items.last().map(|last| last.id)
        } else {
            None
        };
        Ok(AuditPage { items, next_before })
    }
}

#[cfg(test)]
mod tests {
    //! The plans of the certificate listing: every filter of the console and of
    //! `GET /api/v1/certificates`, alone, in each order it is asked in, is one range of an
    //! index that keeps that order (migration 0012), on both backends. The EXPLAIN output
    //! names the index; PostgreSQL is asked with sequential scans, bitmap scans and full
    //! sorts disabled, so a plan that needs one still shows it. Plans at 1,000,000 rows
    //! with real statistics: BENCHMARKS.md, "Listing indexes".

    use super::*;
    use sqlx::Row;

    async fn plan(store: &Store, filter: &CertificateFilter) -> String {
        let (sql, params) = store.certificate_listing_sql(filter).expect("listing sql");
        let mut conn = store.pool.acquire().await.expect("connection");
        let explain = match store.backend {
            Backend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
            Backend::Postgres => {
                for set in [
                    "SET enable_seqscan = off",
                    "SET enable_bitmapscan = off",
                    "SET enable_sort = off",
                ] {
                    sqlx::query(set).execute(&mut *conn).await.expect(set);
                }
                format!("EXPLAIN {sql}")
            }
        };
        let rows = bind_all(&explain, params)
            .fetch_all(&mut *conn)
            .await
            .expect("explain");
        let lines: Vec<String> = rows
            .iter()
            .map(|r| match store.backend {
                Backend::Sqlite => r.try_get::<String, _>("detail").expect("detail"),
                Backend::Postgres => r.try_get::<String, _>(0).expect("plan line"),
            })
            .collect();
        if store.backend == Backend::Postgres {
            for reset in [
                "RESET enable_seqscan",
                "RESET enable_bitmapscan",
                "RESET enable_sort",
            ] {
                sqlx::query(reset).execute(&mut *conn).await.expect(reset);
            }
        }
        lines.join("\n")
    }

    /// A filter's name, the filter, and each order asked with the index expected to serve it.
    type Case = (
        &'static str,
        CertificateFilter,
        &'static [(CertificateOrder, &'static str)],
    );

    /// Whether `plan` sorts whole rows (not only the ties of an index's order).
    fn sorts(plan: &str) -> bool {
        plan.lines().any(|l| {
            let l = l.trim_start().trim_start_matches("->").trim_start();
            l.starts_with("USE TEMP B-TREE FOR ORDER BY") || l.starts_with("Sort  (")
        })
    }

    #[tokio::test]
    async fn every_listing_filter_is_an_index_walk_in_its_order() {
        for db in signet_testkit::TestDb::all().await {
            let store = Store::connect(db.url()).await.expect("connect");
            store.migrate().await.expect("migrate");
            let base = CertificateFilter {
                limit: 50,
                ..CertificateFilter::default()
            };
            let day = Some(Duration::from_secs(86_400));
            let now = OffsetDateTime::now_utc();
            let cases: Vec<Case> = vec![
                (
                    "requester",
                    CertificateFilter {
                        requester: Some("token:default:web-1".into()),
                        ..base.clone()
                    },
                    &[
                        (CertificateOrder::Newest, "certificates_requester_idx"),
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_requester_expiry_idx",
                        ),
                        (
                            CertificateOrder::ExpiringLast,
                            "certificates_requester_expiry_idx",
                        ),
                    ],
                ),
                (
                    "provisioner",
                    CertificateFilter {
                        provisioner: Some("default".into()),
                        ..base.clone()
                    },
                    &[
                        (CertificateOrder::Newest, "certificates_provisioner_idx"),
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_provisioner_expiry_idx",
                        ),
                        (
                            CertificateOrder::ExpiringLast,
                            "certificates_provisioner_expiry_idx",
                        ),
                    ],
                ),
                (
                    "profile",
                    CertificateFilter {
                        profile: Some("client".into()),
                        ..base.clone()
                    },
                    &[
                        (CertificateOrder::Newest, "certificates_profile_idx"),
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_profile_expiry_idx",
                        ),
                        (
                            CertificateOrder::ExpiringLast,
                            "certificates_profile_expiry_idx",
                        ),
                    ],
                ),
                (
                    "status revoked",
                    CertificateFilter {
                        status: Some(CertStatus::Revoked),
                        ..base.clone()
                    },
                    &[
                        (CertificateOrder::Newest, "certificates_revoked_created_idx"),
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_revoked_not_after_idx",
                        ),
                        (
                            CertificateOrder::ExpiringLast,
                            "certificates_revoked_not_after_idx",
                        ),
                    ],
                ),
                (
                    "status valid",
                    CertificateFilter {
                        status: Some(CertStatus::Good),
                        ..base.clone()
                    },
                    &[
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_not_after_idx",
                        ),
                        (CertificateOrder::ExpiringLast, "certificates_not_after_idx"),
                    ],
                ),
                (
                    "status expired",
                    CertificateFilter {
                        status: Some(CertStatus::Expired),
                        ..base.clone()
                    },
                    &[
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_not_after_idx",
                        ),
                        (CertificateOrder::ExpiringLast, "certificates_not_after_idx"),
                    ],
                ),
                (
                    "expiring within a day",
                    CertificateFilter {
                        expiring_within: day,
                        ..base.clone()
                    },
                    &[
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_not_after_idx",
                        ),
                        (CertificateOrder::ExpiringLast, "certificates_not_after_idx"),
                    ],
                ),
                (
                    "expiry range",
                    CertificateFilter {
                        not_after_from: Some(now),
                        not_after_until: Some(now + time::Duration::days(7)),
                        ..base.clone()
                    },
                    &[
                        (
                            CertificateOrder::ExpiringFirst,
                            "certificates_not_after_idx",
                        ),
                        (CertificateOrder::ExpiringLast, "certificates_not_after_idx"),
                    ],
                ),
            ];
            for (what, filter, orders) in cases {
                for (order, index) in orders {
                    let f = CertificateFilter {
                        order: *order,
                        ..filter.clone()
                    };
                    let plan = plan(&store, &f).await;
                    assert!(
                        plan.contains(index) && !sorts(&plan) && !plan.contains("Seq Scan"),
                        "{:?}: {what}, {order:?}: expected a walk of {index}, got\n{plan}",
                        store.backend
                    );
                }
            }
            // A name: the certificate_names rows of that name (few), then sorted.
            for order in [CertificateOrder::Newest, CertificateOrder::ExpiringFirst] {
                let f = CertificateFilter {
                    name: Some("dns:api.internal".into()),
                    order,
                    ..base.clone()
                };
                let plan = plan(&store, &f).await;
                assert!(
                    !plan.contains("Seq Scan") && !plan.lines().any(|l| l.starts_with("SCAN ")),
                    "{:?}: name, {order:?}: a scan\n{plan}",
                    store.backend
                );
            }
        }
    }
}
