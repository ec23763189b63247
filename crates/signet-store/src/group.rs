//! Group commit: concurrent writes share one transaction.
//!
//! [`Store::insert_certificate`](crate::Store::insert_certificate),
//! [`Store::consume_token`](crate::Store::consume_token) and
//! [`Store::append_audit`](crate::Store::append_audit) do not open a
//! transaction each. They put a [`Job`] (the rows plus a oneshot for the
//! answer) on a bounded queue, and one dispatcher task per [`Store`]
//! (shared by its clones) takes whatever is queued, up to [`MAX_BATCH`]
//! jobs, and commits it in one transaction: on PostgreSQL one statement
//! ([`POSTGRES_BATCH_SQL`]), on SQLite multi-row `INSERT`s between `BEGIN`
//! and `COMMIT`. Each caller hears its answer only after the commit has
//! returned, so nothing is acknowledged before it is durable (PostgreSQL
//! `synchronous_commit`, SQLite WAL + `synchronous=FULL`).
//!
//! * **No added latency when idle.** The dispatcher never waits for a timer:
//!   it takes what is queued the moment a writer slot is free. A lone job
//!   is a batch of one (on SQLite it runs exactly the statements an
//!   unbatched call would).
//! * **Pipelining.** Up to [`writer_slots`] batches are in flight at once
//!   (one on SQLite, which has a single writer anyway). While they commit,
//!   new jobs queue up and form the next batch, so batches grow with load.
//! * **Failure isolation.** If a batch fails (for example a duplicate
//!   serial), it is rolled back and every job in it is retried on its own,
//!   so only the bad job fails, with the same typed error as before.
//! * **Backpressure.** The queue holds [`QUEUE_CAPACITY`] jobs; beyond that,
//!   callers wait to enqueue.
//! * **Shutdown.** [`Store::close`](crate::Store::close) flushes: every job
//!   queued before it is committed (or failed back to its caller) before the
//!   pool closes. Jobs queued later fail with
//!   [`StoreError::Unavailable`]. If the dispatcher is gone (its runtime shut
//!   down), callers get [`StoreError::Unavailable`] rather than a silent
//!   success; a job that cannot be queued at all runs directly.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use sqlx::{AnyPool, Row};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::audit::{audit_error, insert_audit};
use crate::certificates::insert_certificate_row;
use crate::serial::db_serial;
use crate::{AuditEntry, Backend, NewCertificate, StoreError};

/// Most jobs committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;

/// Jobs that may wait in the queue before callers wait to enqueue.
pub(crate) const QUEUE_CAPACITY: usize = 4096;

/// Environment variable overriding [`writer_slots`] (1 to 64), for tuning.
pub(crate) const WRITERS_ENV: &str = "SIGNET_STORE_GROUP_WRITERS";

/// Batches committing at the same time.
pub(crate) fn writer_slots(backend: Backend) -> usize {
    if let Some(n) = std::env::var(WRITERS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| (1..=64).contains(n))
    {
        return n;
    }
    match backend {
        // One writer at a time in SQLite: more slots would only contend on
        // the write lock.
        Backend::Sqlite => 1,
        // Half the cores, 1 to 4: enough to keep PostgreSQL busy while one
        // batch waits for its WAL flush, few enough that batches stay large.
        // Where the database shares a small machine with Signet, every extra
        // batch costs CPU it does not have: on 2 cores one writer issued
        // 4,380-5,300 certificates/s with p99 22-24 ms, four 3,790-4,730/s
        // with p99 27-87 ms (BENCHMARKS.md).
        Backend::Postgres => std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .clamp(1, 4),
    }
}

/// One write waiting for its batch.
#[derive(Debug)]
pub(crate) enum Job {
    /// A certificate row plus its audit row.
    Cert {
        cert: Box<NewCertificate>,
        audit: AuditEntry,
        now: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A used-token row; the answer is whether it was the first use.
    Token {
        provisioner: String,
        jti: String,
        expires: i64,
        now: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// A used-token row, then (only if the token was not used before) a
    /// certificate row and its audit row, in the same transaction. The
    /// answer is whether the token was new (and so the certificate recorded).
    CertWithToken {
        cert: Box<NewCertificate>,
        audit: AuditEntry,
        provisioner: String,
        jti: String,
        expires: i64,
        now: i64,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    /// A lone audit row.
    Audit {
        audit: AuditEntry,
        now: i64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

#[derive(Debug)]
enum Msg {
    Job(Job),
    /// Answered once every job queued before it has been answered.
    Flush(oneshot::Sender<()>),
}

/// The queue in front of the dispatcher; shared by clones of a
/// [`Store`](crate::Store). Dropping the last one lets the dispatcher drain
/// the queue and stop.
#[derive(Debug)]
pub(crate) struct GroupWriter {
    pool: AnyPool,
    backend: Backend,
    /// Set when the dispatcher is first needed, on the runtime of that call.
    sender: OnceLock<mpsc::Sender<Msg>>,
}

/// The dispatcher stopped before answering: the outcome is unknown, so the
/// caller must treat the write as failed.
fn writer_gone() -> StoreError {
    StoreError::Unavailable(sqlx::Error::WorkerCrashed)
}

impl GroupWriter {
    pub(crate) fn new(pool: AnyPool, backend: Backend) -> Arc<GroupWriter> {
        Arc::new(GroupWriter {
            pool,
            backend,
            sender: OnceLock::new(),
        })
    }

    fn sender(&self) -> Option<&mpsc::Sender<Msg>> {
        if let Some(s) = self.sender.get() {
            return Some(s);
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
            handle.spawn(dispatch(self.pool.clone(), self.backend, rx));
            tx
        }))
    }

    /// Queues `job`, or runs it directly when there is no dispatcher to
    /// queue it on (no tokio runtime, or the dispatcher's runtime is gone).
    async fn submit(&self, job: Job) {
        let job = match self.sender() {
            Some(sender) => match sender.send(Msg::Job(job)).await {
                Ok(()) => return,
                Err(mpsc::error::SendError(Msg::Job(job))) => job,
                Err(mpsc::error::SendError(Msg::Flush(_))) => return,
            },
            None => job,
        };
        run_single(&self.pool, job).await;
    }

    pub(crate) async fn insert_certificate(
        &self,
        cert: Box<NewCertificate>,
        audit: AuditEntry,
        now: i64,
    ) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Cert {
            cert,
            audit,
            now,
            reply,
        })
        .await;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    pub(crate) async fn consume_token(
        &self,
        provisioner: String,
        jti: String,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Token {
            provisioner,
            jti,
            expires,
            now,
            reply,
        })
        .await;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    pub(crate) async fn insert_certificate_with_token(
        &self,
        cert: Box<NewCertificate>,
        audit: AuditEntry,
        provisioner: String,
        jti: String,
        expires: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::CertWithToken {
            cert,
            audit,
            provisioner,
            jti,
            expires,
            now,
            reply,
        })
        .await;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    pub(crate) async fn append_audit(&self, audit: AuditEntry, now: i64) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Audit { audit, now, reply }).await;
        answer.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Returns once every job queued before this call has been answered.
    pub(crate) async fn flush(&self) {
        let Some(sender) = self.sender.get() else {
            return; // never started: nothing queued
        };
        let (tx, rx) = oneshot::channel();
        if sender.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// The dispatcher: forms batches from the queue and hands each to a writer
/// task holding one of the slots.
async fn dispatch(pool: AnyPool, backend: Backend, mut rx: mpsc::Receiver<Msg>) {
    let slots = writer_slots(backend);
    let semaphore = Arc::new(Semaphore::new(slots));
    let all_slots = u32::try_from(slots).unwrap_or(u32::MAX);
    loop {
        // Wait for a free slot first: meanwhile the queue fills up, and the
        // next batch takes all of it.
        let Ok(permit) = Arc::clone(&semaphore).acquire_owned().await else {
            break;
        };
        let Some(first) = rx.recv().await else {
            break; // every Store clone is gone and the queue is empty
        };
        let mut jobs = Vec::new();
        let mut flushes = Vec::new();
        match first {
            Msg::Job(job) => jobs.push(job),
            Msg::Flush(done) => flushes.push(done),
        }
        // Take what is queued right now; never wait for more.
        while flushes.is_empty() && jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => jobs.push(job),
                Ok(Msg::Flush(done)) => flushes.push(done),
                Err(_) => break,
            }
        }
        if jobs.is_empty() {
            drop(permit);
        } else {
            tokio::spawn(commit_batch(pool.clone(), backend, jobs, permit));
        }
        if !flushes.is_empty() {
            // Every earlier job is in a batch; wait until all have finished.
            if let Ok(all) = semaphore.acquire_many(all_slots).await {
                drop(all);
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    }
}

async fn commit_batch(
    pool: AnyPool,
    backend: Backend,
    jobs: Vec<Job>,
    _slot: OwnedSemaphorePermit,
) {
    let written = match backend {
        // One statement, one round trip, whatever the batch holds.
        Backend::Postgres => write_batch_postgres(&pool, &jobs).await,
        Backend::Sqlite if jobs.len() == 1 => {
            for job in jobs {
                run_single(&pool, job).await;
            }
            return;
        }
        Backend::Sqlite => write_batch(&pool, &jobs).await,
    };
    match written {
        Ok(first_use) => {
            for (job, first) in jobs.into_iter().zip(first_use) {
                let first = first.unwrap_or(false);
                match job {
                    Job::Cert { reply, .. } | Job::Audit { reply, .. } => {
                        let _ = reply.send(Ok(()));
                    }
                    Job::Token { reply, .. } | Job::CertWithToken { reply, .. } => {
                        let _ = reply.send(Ok(first));
                    }
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, jobs = jobs.len(), "group commit failed; retrying one by one");
            for job in jobs {
                run_single(&pool, job).await;
            }
        }
    }
}

/// One job in its own transaction: exactly what the store did before group
/// commit, with the same errors.
async fn run_single(pool: &AnyPool, job: Job) {
    match job {
        Job::Cert {
            cert,
            audit,
            now,
            reply,
        } => {
            let result = async {
                let mut tx = pool.begin().await?;
                insert_certificate_row(&mut tx, &cert, now).await?;
                insert_audit(&mut tx, &audit, now).await?;
                tx.commit().await?;
                Ok(())
            }
            .await;
            let _ = reply.send(result);
        }
        Job::Token {
            provisioner,
            jti,
            expires,
            now,
            reply,
        } => {
            // One autocommitted statement. ON CONFLICT DO NOTHING turns a
            // replay into "0 rows" rather than an error; the primary key
            // makes concurrent inserts of one key serialise, so only one
            // sees 1 row.
            let result = sqlx::query(
                "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (provisioner, jti) DO NOTHING",
            )
            .bind(&provisioner)
            .bind(&jti)
            .bind(expires)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(StoreError::from);
            let _ = reply.send(result);
        }
        Job::CertWithToken {
            cert,
            audit,
            provisioner,
            jti,
            expires,
            now,
            reply,
        } => {
            let result = async {
                let mut tx = pool.begin().await?;
                let inserted = sqlx::query(
                    "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (provisioner, jti) DO NOTHING",
                )
                .bind(&provisioner)
                .bind(&jti)
                .bind(expires)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                insert_certificate_row(&mut tx, &cert, now).await?;
                insert_audit(&mut tx, &audit, now).await?;
                tx.commit().await?;
                Ok(true)
            }
            .await;
            let _ = reply.send(result);
        }
        Job::Audit { audit, now, reply } => {
            let result = async {
                let mut conn = pool.acquire().await?;
                insert_audit(&mut conn, &audit, now).await
            }
            .await;
            let _ = reply.send(result);
        }
    }
}

/// The PostgreSQL batch: every row of every job in one statement, so one
/// round trip and one implicit transaction. The rows travel as three JSON
/// arrays (one text parameter each) that `json_to_recordset` turns back into
/// rows, so the statement has the same text for every batch size and stays
/// prepared on each connection. The certificates' DER goes as a fourth
/// parameter, all of them end to end in one `bytea`, which each row cuts its
/// own from by offset and length: cheaper for PostgreSQL than reading the
/// same bytes as JSON text.
///
/// Data-modifying `WITH` clauses all run, once, on one snapshot. `ins_tok`
/// inserts each distinct token key and returns the keys that were new;
/// `first_use` picks, for each new key, the first job that presented it;
/// certificate and audit rows tied to a token (`i` is the job's index) are
/// inserted only for those jobs, the others (`i` null) always. The result is
/// the indexes in `first_use`.
const POSTGRES_BATCH_SQL: &str = "\
WITH tok AS (\
    SELECT * FROM json_to_recordset($1::json) \
        AS t(i integer, provisioner text, jti text, expires_at bigint, used_at bigint)\
), ins_tok AS (\
    INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) \
    SELECT DISTINCT ON (provisioner, jti) provisioner, jti, expires_at, used_at \
    FROM tok ORDER BY provisioner, jti, i \
    ON CONFLICT (provisioner, jti) DO NOTHING \
    RETURNING provisioner, jti\
), first_use AS (\
    SELECT DISTINCT ON (tok.provisioner, tok.jti) tok.i \
    FROM tok JOIN ins_tok USING (provisioner, jti) \
    ORDER BY tok.provisioner, tok.jti, tok.i\
), ins_cert AS (\
    INSERT INTO certificates \
        (serial, issuer, issuer_key_id, subject, sans, profile, \
         not_before, not_after, requester, der, created_at, crl_shard) \
    SELECT c.serial, c.issuer, c.issuer_key_id, c.subject, c.sans, c.profile, \
        c.not_before, c.not_after, c.requester, \
        substring($4::bytea FROM c.der_at + 1 FOR c.der_len), c.created_at, c.crl_shard \
    FROM json_to_recordset($2::json) AS c(i integer, serial text, issuer text, \
        issuer_key_id text, subject text, sans text, profile text, not_before bigint, \
        not_after bigint, requester text, der_at integer, der_len integer, \
        created_at bigint, crl_shard integer) \
    WHERE c.i IS NULL OR c.i IN (SELECT i FROM first_use)\
), ins_audit AS (\
    INSERT INTO audit_log (at, actor, action, serial, outcome, detail) \
    SELECT a.at, a.actor, a.action, a.serial, a.outcome, a.detail \
    FROM json_to_recordset($3::json) AS a(n integer, i integer, at bigint, actor text, \
        action text, serial text, outcome text, detail text) \
    WHERE a.i IS NULL OR a.i IN (SELECT i FROM first_use) \
    ORDER BY a.n\
) \
SELECT i FROM first_use";

#[derive(serde::Serialize)]
struct TokenRow<'a> {
    i: usize,
    provisioner: &'a str,
    jti: &'a str,
    expires_at: i64,
    used_at: i64,
}

#[derive(serde::Serialize)]
struct CertRow<'a> {
    /// The job whose token must be new, or none.
    i: Option<usize>,
    serial: String,
    issuer: &'a str,
    issuer_key_id: &'a str,
    subject: &'a str,
    /// The JSON array text stored in `certificates.sans`.
    sans: String,
    profile: &'a str,
    not_before: i64,
    not_after: i64,
    requester: &'a str,
    /// Where this certificate's DER starts in the batch's DER parameter.
    der_at: usize,
    der_len: usize,
    created_at: i64,
    crl_shard: Option<u32>,
}

#[derive(serde::Serialize)]
struct AuditRow<'a> {
    /// Position in the batch, to keep the audit log in job order.
    n: usize,
    i: Option<usize>,
    at: i64,
    actor: &'a str,
    action: &'a str,
    serial: Option<String>,
    outcome: &'a str,
    detail: &'a str,
}

/// `cert`'s row; appends its DER to `ders`.
fn cert_row<'a>(
    i: Option<usize>,
    cert: &'a NewCertificate,
    now: i64,
    ders: &mut Vec<u8>,
) -> Result<CertRow<'a>, StoreError> {
    let der_at = ders.len();
    ders.extend_from_slice(&cert.der);
    Ok(CertRow {
        i,
        serial: db_serial(&cert.serial),
        issuer: &cert.issuer,
        issuer_key_id: &cert.issuer_key_id,
        subject: &cert.subject,
        sans: serde_json::to_string(&cert.sans)
            .map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?,
        profile: &cert.profile,
        not_before: cert.not_before.unix_timestamp(),
        not_after: cert.not_after.unix_timestamp(),
        requester: &cert.requester,
        der_at,
        der_len: cert.der.len(),
        created_at: now,
        crl_shard: cert.crl_shard,
    })
}

fn audit_row(n: usize, i: Option<usize>, audit: &AuditEntry, now: i64) -> AuditRow<'_> {
    AuditRow {
        n,
        i,
        at: now,
        actor: &audit.actor,
        action: audit.action.as_str(),
        serial: audit.serial.as_ref().map(db_serial),
        outcome: audit.outcome.as_str(),
        detail: &audit.detail,
    }
}

fn to_json<T: serde::Serialize>(rows: &[T]) -> Result<String, StoreError> {
    serde_json::to_string(rows).map_err(|e| StoreError::Corrupt(format!("batch rows: {e}")))
}

/// [`write_batch`] for PostgreSQL, in the one statement
/// [`POSTGRES_BATCH_SQL`].
async fn write_batch_postgres(
    pool: &AnyPool,
    jobs: &[Job],
) -> Result<Vec<Option<bool>>, StoreError> {
    let mut tokens = Vec::new();
    let mut certs = Vec::new();
    let mut audits = Vec::new();
    let mut ders = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match job {
            Job::Cert {
                cert, audit, now, ..
            } => {
                certs.push(cert_row(None, cert, *now, &mut ders)?);
                audits.push(audit_row(i, None, audit, *now));
            }
            Job::Token {
                provisioner,
                jti,
                expires,
                now,
                ..
            } => tokens.push(TokenRow {
                i,
                provisioner,
                jti,
                expires_at: *expires,
                used_at: *now,
            }),
            Job::CertWithToken {
                cert,
                audit,
                provisioner,
                jti,
                expires,
                now,
                ..
            } => {
                tokens.push(TokenRow {
                    i,
                    provisioner,
                    jti,
                    expires_at: *expires,
                    used_at: *now,
                });
                certs.push(cert_row(Some(i), cert, *now, &mut ders)?);
                audits.push(audit_row(i, Some(i), audit, *now));
            }
            Job::Audit { audit, now, .. } => audits.push(audit_row(i, None, audit, *now)),
        }
    }
    let rows = sqlx::query(POSTGRES_BATCH_SQL)
        .bind(to_json(&tokens)?)
        .bind(to_json(&certs)?)
        .bind(to_json(&audits)?)
        .bind(ders)
        .fetch_all(pool)
        .await?;
    let mut first = HashSet::with_capacity(rows.len());
    for row in rows {
        let i: i32 = row.try_get("i")?;
        first.insert(usize::try_from(i).map_err(|e| StoreError::Corrupt(format!("i: {e}")))?);
    }
    Ok(jobs
        .iter()
        .enumerate()
        .map(|(i, job)| match job {
            Job::Token { .. } | Job::CertWithToken { .. } => Some(first.contains(&i)),
            Job::Cert { .. } | Job::Audit { .. } => None,
        })
        .collect())
}

/// Writes every job of a batch in one transaction. On success returns, for
/// each job in order, whether its token was new (`None` for jobs without a
/// token).
async fn write_batch(pool: &AnyPool, jobs: &[Job]) -> Result<Vec<Option<bool>>, StoreError> {
    // (job index, provisioner, jti, expires, now)
    let mut tokens = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        match job {
            Job::Token {
                provisioner,
                jti,
                expires,
                now,
                ..
            }
            | Job::CertWithToken {
                provisioner,
                jti,
                expires,
                now,
                ..
            } => tokens.push((i, provisioner.as_str(), jti.as_str(), *expires, *now)),
            Job::Cert { .. } | Job::Audit { .. } => {}
        }
    }

    let mut tx = pool.begin().await?;

    // Tokens first: insert each distinct key once; RETURNING says which keys
    // were new. The first job with a new key gets `true`, every other
    // `false`.
    let mut first_use: Vec<Option<bool>> = vec![None; jobs.len()];
    if !tokens.is_empty() {
        let mut seen = HashSet::new();
        let distinct: Vec<_> = tokens
            .iter()
            .filter(|(_, p, j, _, _)| seen.insert((*p, *j)))
            .collect();
        let mut inserted: HashSet<(String, String)> = HashSet::new();
        for chunk in chunks(&distinct) {
            let sql = values_sql(
                "INSERT INTO used_tokens (provisioner, jti, expires_at, used_at) VALUES ",
                4,
                chunk.len(),
                " ON CONFLICT (provisioner, jti) DO NOTHING RETURNING provisioner, jti",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (_, provisioner, jti, expires, now) in chunk.iter().copied() {
                query = query
                    .bind(*provisioner)
                    .bind(*jti)
                    .bind(*expires)
                    .bind(*now);
            }
            for row in query.fetch_all(&mut *tx).await? {
                inserted.insert((row.try_get("provisioner")?, row.try_get("jti")?));
            }
        }
        for (i, provisioner, jti, _, _) in &tokens {
            let key = ((*provisioner).to_owned(), (*jti).to_owned());
            first_use[*i] = Some(inserted.remove(&key));
        }
    }

    // Then the certificates whose token (if any) was new, and audit rows.
    let mut certs = Vec::new();
    let mut audits = Vec::new();
    for (job, first) in jobs.iter().zip(&first_use) {
        match job {
            Job::Cert {
                cert, audit, now, ..
            } => {
                certs.push((cert, *now));
                audits.push((audit, *now));
            }
            Job::CertWithToken {
                cert, audit, now, ..
            } if *first == Some(true) => {
                certs.push((cert, *now));
                audits.push((audit, *now));
            }
            Job::Audit { audit, now, .. } => audits.push((audit, *now)),
            Job::CertWithToken { .. } | Job::Token { .. } => {}
        }
    }

    if !certs.is_empty() {
        let mut sans = Vec::with_capacity(certs.len());
        for (cert, _) in &certs {
            sans.push(
                serde_json::to_string(&cert.sans)
                    .map_err(|e| StoreError::Corrupt(format!("sans: {e}")))?,
            );
        }
        let rows: Vec<_> = certs.iter().zip(&sans).collect();
        for chunk in chunks(&rows) {
            let sql = values_sql(
                "INSERT INTO certificates \
                 (serial, issuer, issuer_key_id, subject, sans, profile, \
                  not_before, not_after, requester, der, created_at, crl_shard) VALUES ",
                12,
                chunk.len(),
                "",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for ((cert, now), sans) in chunk.iter().copied() {
                query = query
                    .bind(db_serial(&cert.serial))
                    .bind(&cert.issuer)
                    .bind(&cert.issuer_key_id)
                    .bind(&cert.subject)
                    .bind(sans.as_str())
                    .bind(&cert.profile)
                    .bind(cert.not_before.unix_timestamp())
                    .bind(cert.not_after.unix_timestamp())
                    .bind(&cert.requester)
                    .bind(&cert.der)
                    .bind(*now)
                    .bind(cert.crl_shard.map(i64::from));
            }
            query.execute(&mut *tx).await?;
        }
    }

    if !audits.is_empty() {
        for chunk in chunks(&audits) {
            let sql = values_sql(
                "INSERT INTO audit_log (at, actor, action, serial, outcome, detail) VALUES ",
                6,
                chunk.len(),
                "",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (audit, now) in chunk {
                query = query
                    .bind(*now)
                    .bind(&audit.actor)
                    .bind(audit.action.as_str())
                    .bind(audit.serial.as_ref().map(db_serial))
                    .bind(audit.outcome.as_str())
                    .bind(&audit.detail);
            }
            // A failed batch is retried job by job (`run_single`), so this
            // only labels the batch's error; each caller hears its own.
            query.execute(&mut *tx).await.map_err(audit_error)?;
        }
    }

    tx.commit().await?;
    Ok(first_use)
}

/// Splits `items` into chunks whose lengths are powers of two (largest
/// first), so a multi-row statement comes in at most log2([`MAX_BATCH`]) + 1
/// shapes and each stays in the prepared-statement cache.
fn chunks<T>(items: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = items;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = rest.len().min(MAX_BATCH);
        let size = 1usize << (usize::BITS - 1 - n.leading_zeros());
        let (head, tail) = rest.split_at(size);
        rest = tail;
        Some(head)
    })
}

/// `prefix ($1, …, $cols), ($cols+1, …), … suffix` for `rows` rows. Only
/// placeholders are generated: every value is bound.
fn values_sql(prefix: &str, cols: usize, rows: usize, suffix: &str) -> String {
    use std::fmt::Write;
    let mut sql = String::with_capacity(prefix.len() + suffix.len() + rows * cols * 6);
    sql.push_str(prefix);
    let mut n = 0;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            n += 1;
            let _ = write!(sql, "${n}");
        }
        sql.push(')');
    }
    sql.push_str(suffix);
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        let items: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![256, 32, 8, 4]);
        let items: Vec<u32> = (0..100).collect();
        let sizes: Vec<usize> = chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![64, 32, 4]);
        assert_eq!(chunks::<u32>(&[]).count(), 0);
        let flat: Vec<u32> = chunks(&items).flatten().copied().collect();
        assert_eq!(flat, items);
    }

    #[test]
    fn values_sql_numbers_placeholders() {
        assert_eq!(
            values_sql("INSERT INTO t (a, b) VALUES ", 2, 2, " RETURNING a"),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) RETURNING a"
        );
    }
}
