//! Opening the database and keeping the pool: URLs of both backends, the SQLite file
//! (created 0600) and its per-connection PRAGMAs, the bounded PostgreSQL probe, pool
//! timeouts, the embedded migrations, readiness pings, SQLite snapshots and closing.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;

use crate::{StoreError, group, hosts};

/// Migrations for SQLite, embedded at compile time.
static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// Migrations for PostgreSQL, embedded at compile time.
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("../../migrations/postgres");

/// How long to wait for a pooled connection before reporting
/// [`StoreError::Unavailable`].
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which database the store is talking to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// SQLite (a local file).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// A short lowercase name: `"sqlite"` or `"postgres"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL names, from its scheme.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres") | Some("postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::InvalidUrl(
                "expected a sqlite: or postgres:// URL".to_owned(),
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle on the database. Cheap to clone (it shares one pool).
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    /// Unix second before which [`Store::consume_token`] does not purge
    /// again; shared by clones.
    pub(crate) next_token_purge: Arc<AtomicI64>,
    /// Unix second before which [`Store::take_rate_token`] does not purge full
    /// buckets again; shared by clones.
    pub(crate) next_bucket_purge: Arc<AtomicI64>,
    /// This process's leases on shared rate-limit buckets (`rate_limit.rs`); shared by
    /// clones.
    pub(crate) leases: Arc<crate::rate_limit::Leases>,
    /// On PostgreSQL, the URL [`Store::change_listener`] and [`Store::leadership`] open
    /// their own connections with.
    pub(crate) listen_url: Option<Redacted>,
    /// Group commit for certificates, used tokens and audit rows (see
    /// `group.rs`); shared by clones.
    pub(crate) writer: Arc<group::GroupWriter>,
}

/// A connection URL, which may hold a password: never printed. With a multi-host URL, the
/// server in use now (see `hosts.rs`).
#[derive(Clone)]
pub(crate) enum Redacted {
    Fixed(Arc<str>),
    Following(Arc<hosts::Current>),
}

impl Redacted {
    pub(crate) fn url(&self) -> String {
        match self {
            Redacted::Fixed(url) => url.to_string(),
            Redacted::Following(current) => current.url(),
        }
    }
}

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Store {
    /// Connects to `url`, opening at least one connection so that a bad URL
    /// or unreachable server is reported here.
    ///
    /// * `sqlite://path/to/file.db` (or `sqlite:path`): the file is created
    ///   (mode 0600) if missing. Every connection runs with
    ///   `journal_mode=WAL`, `synchronous=FULL` (a commit is on disk before it
    ///   is reported), `busy_timeout=5000` and `foreign_keys=ON`.
    /// * `postgres://user:pass@host/db`, including unix sockets:
    ///   `postgres://user@/db?host=/run/postgresql`; and several servers in libpq's
    ///   multi-host form with `target_session_attrs` (`postgres://u@h1,h2/db?target_session_attrs=read-write`
    ///   or `host=/dir1,/dir2`): the first that suits is used, and a failover followed
    ///   (see `hosts.rs`).
    ///
    /// Does not migrate: call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        let mut following = None;
        let pool = match backend {
            Backend::Sqlite => {
                create_sqlite_file(url)?;
                // The pool retries a connection that fails until its acquire timeout and
                // then reports only "pool timed out". One direct connection first reports
                // the real cause at once: a read-only directory (SQLite needs to create
                // the -wal and -shm files), a full disk, a file that is not a database.
                {
                    use sqlx::Connection;
                    let mut conn = sqlx::AnyConnection::connect(url)
                        .await
                        .map_err(|e| sqlite_open_error(url, e))?;
                    sqlite_pragmas(&mut conn)
                        .await
                        .map_err(|e| sqlite_open_error(url, e))?;
                    let _ = conn.close().await;
                }
                options
                    .max_connections(8)
                    .after_connect(|conn, _meta| Box::pin(sqlite_pragmas(conn)))
                    // A connection must come back to the pool outside any transaction.
                    // One that does not (a COMMIT or ROLLBACK that failed, as on a full
                    // disk) would run the next caller's transaction as a savepoint inside
                    // the stale one, holding the write lock: close it instead.
                    .after_release(|conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Connection;
                            let clean = !conn.is_in_transaction();
                            if !clean {
                                tracing::warn!(
                                    "closing a database connection left inside a transaction"
                                );
                            }
                            Ok(clean)
                        })
                    })
                    .connect(url)
                    .await
            }
            Backend::Postgres => match hosts::parse(url)? {
                None => {
                    // As for SQLite: one direct connection first, bounded, so that a server
                    // that cannot be reached is reported at once with where and why, rather
                    // than as "pool timed out" after the acquire timeout.
                    probe_postgres(&normalize_postgres_url(url)).await?;
                    options
                        .max_connections(16)
                        .connect(&normalize_postgres_url(url))
                        .await
                }
                Some(mut list) => {
                    // Several servers (or a kind of server asked for): the first that
                    // suits, then followed (hosts.rs).
                    for u in &mut list.urls {
                        *u = normalize_postgres_url(u).into_owned();
                    }
                    let index = hosts::choose(&list, POSTGRES_CONNECT_TIMEOUT).await?;
                    let current = hosts::Current::new(list, index);
                    let pool = current
                        .pool_options(options.max_connections(16))
                        .connect(&current.url())
                        .await;
                    following = Some(current);
                    pool
                }
            },
        };
        let pool = pool.map_err(connect_error)?;
        let listen_url = match following {
            Some(current) => {
                tokio::spawn(Arc::clone(&current).follow(pool.clone()));
                Some(Redacted::Following(current))
            }
            None => (backend == Backend::Postgres)
                .then(|| Redacted::Fixed(Arc::from(normalize_postgres_url(url).as_ref()))),
        };
        Ok(Store {
            writer: group::GroupWriter::new(pool.clone(), backend),
            pool,
            backend,
            next_token_purge: Arc::new(AtomicI64::new(0)),
            next_bucket_purge: Arc::new(AtomicI64::new(0)),
            leases: Arc::default(),
            listen_url,
        })
    }

    /// Which backend this store uses.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Writes a consistent copy of an SQLite database to `path` (`VACUUM INTO`): a
    /// snapshot as of one read transaction, taken while the database stays in use, compact
    /// and self-contained (no WAL beside it). `path` must not exist or must be an empty
    /// file (created beforehand with the permissions it should have). On PostgreSQL this is
    /// [`StoreError::InvalidInput`]: use `pg_dump` or the server's own backups there.
    pub async fn snapshot_sqlite(&self, path: &str) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite {
            return Err(StoreError::InvalidInput(
                "snapshots are for SQLite; back PostgreSQL up with pg_dump or WAL archiving".into(),
            ));
        }
        if path.is_empty() || path.contains('\0') {
            return Err(StoreError::InvalidInput("snapshot path".into()));
        }
        sqlx::query("VACUUM INTO ?")
            .bind(path)
            .execute(&self.pool)
            .await
            .map_err(StoreError::Database)?;
        Ok(())
    }

    /// Applies the embedded migrations for this backend. Idempotent: already
    /// applied migrations are skipped (and checked against their checksums).
    /// On PostgreSQL concurrent callers serialise on an advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        Ok(())
    }

    /// Checks that the database answers and would accept a write now (for the readiness
    /// of a process that writes): on PostgreSQL a hot standby, or a server set
    /// `default_transaction_read_only`, is [`StoreError::Unavailable`]. With a multi-host
    /// URL this asks the server a pooled connection is open to.
    pub async fn ping_writable(&self) -> Result<(), StoreError> {
        if self.backend != Backend::Postgres {
            return self.ping().await;
        }
        let row = sqlx::query("SELECT current_setting('transaction_read_only') AS ro")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::Unavailable)?;
        let read_only: String = sqlx::Row::try_get(&row, "ro")?;
        if read_only == "on" {
            return Err(StoreError::Unavailable(sqlx::Error::Io(
                std::io::Error::other(
                    "the PostgreSQL server is read-only (a hot standby, or a primary demoted \
                     by a failover): writes would fail",
                ),
            )));
        }
        Ok(())
    }

    /// Closes every connection; later calls fail with
    /// [`StoreError::Unavailable`]. First every write already queued for
    /// group commit is committed (or failed back to its caller); then it
    /// waits for checked-out connections.
    pub async fn close(&self) {
        self.writer.flush().await;
        self.pool.close().await;
    }
}

/// Rewrites the libpq form with a user but an empty host,
/// `postgres://user[:pass]@/db?host=/dir`, which the URL parser sqlx uses
/// rejects ("empty host"), into the equivalent `postgres:///db?host=/dir&user=user[&password=pass]`.
/// Other URLs are returned unchanged.
fn normalize_postgres_url(url: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let Some((scheme, rest)) = url.split_once("://") else {
        return Cow::Borrowed(url);
    };
    // The authority ends at the first '/', '?' or '#'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some(userinfo) = authority.strip_suffix('@') else {
        return Cow::Borrowed(url);
    };
    if userinfo.is_empty() || userinfo.contains('@') {
        return Cow::Borrowed(url);
    }
    // userinfo is already percent-encoded; only characters that mean
    // something different inside a query need escaping.
    let escape = |s: &str| {
        s.replace('+', "%2B")
            .replace('&', "%26")
            .replace('=', "%3D")
    };
    let (user, password) = match userinfo.split_once(':') {
        Some((u, p)) => (u, Some(p)),
        None => (userinfo, None),
    };
    let (before_fragment, fragment) = match tail.split_once('#') {
        Some((b, f)) => (b, Some(f)),
        None => (tail, None),
    };
    let mut out = format!("{scheme}://{before_fragment}");
    out.push(if before_fragment.contains('?') {
        '&'
    } else {
        '?'
    });
    if !user.is_empty() {
        out.push_str("user=");
        out.push_str(&escape(user));
    }
    if let Some(p) = password {
        if !user.is_empty() {
            out.push('&');
        }
        out.push_str("password=");
        out.push_str(&escape(p));
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Cow::Owned(out)
}

/// Creates the SQLite file named by `url` with mode 0600 if it does not
/// exist yet, so that neither the database nor its WAL/SHM files (which
/// SQLite creates with the database file's mode) are world-readable.
fn create_sqlite_file(url: &str) -> Result<(), StoreError> {
    let (_, query) = url.split_once('?').unwrap_or((url, ""));
    let in_memory = url.contains(":memory:") || query.split('&').any(|p| p == "mode=memory");
    let no_create = query.split('&').any(|p| p == "mode=ro" || p == "mode=rw");
    if in_memory || no_create {
        return Ok(());
    }
    // Parse the path exactly as sqlx will (percent-decoding included).
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let path = options.get_filename();
    if path.as_os_str().is_empty() {
        return Err(StoreError::InvalidUrl(
            "sqlite URL has no file name".to_owned(),
        ));
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        open.mode(0o600);
    }
    match open.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Io(e)),
    }
}

/// How long the first connection to PostgreSQL may take (TCP, TLS, authentication) before
/// [`Store::connect`] reports the server unreachable.
pub const POSTGRES_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens and closes one connection to the PostgreSQL server of `url`, within
/// [`POSTGRES_CONNECT_TIMEOUT`]. A failure is [`StoreError::Unavailable`] naming the server
/// (host and port, or the unix socket) and the cause: refused, unknown host, no answer,
/// authentication, a missing database. Never the URL itself, which may hold a password.
async fn probe_postgres(url: &str) -> Result<(), StoreError> {
    use sqlx::Connection;
    let options = sqlx::postgres::PgConnectOptions::from_str(url)
        .map_err(|e| StoreError::InvalidUrl(e.to_string()))?;
    let server = match options.get_socket() {
        Some(dir) => format!(
            "unix socket {}",
            dir.join(format!(".s.PGSQL.{}", options.get_port()))
                .display()
        ),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let attempt = tokio::time::timeout(
        POSTGRES_CONNECT_TIMEOUT,
        sqlx::postgres::PgConnection::connect_with(&options),
    )
    .await;
    let (kind, cause) = match attempt {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            return Ok(());
        }
        Err(_) => (
            std::io::ErrorKind::TimedOut,
            format!(
                "no answer within {} s (a firewall dropping packets, or a wrong address)",
                POSTGRES_CONNECT_TIMEOUT.as_secs()
            ),
        ),
        Ok(Err(e)) => postgres_connect_cause(&e, options.get_username()),
    };
    Err(StoreError::Unavailable(sqlx::Error::Io(
        std::io::Error::new(
            kind,
            format!("cannot connect to PostgreSQL at {server}: {cause}"),
        ),
    )))
}

/// Why a connection to PostgreSQL failed, in words an operator acts on.
fn postgres_connect_cause(e: &sqlx::Error, user: &str) -> (std::io::ErrorKind, String) {
    use std::io::ErrorKind;
    match e {
        sqlx::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => (
                io.kind(),
                "connection refused (is PostgreSQL running, and listening there?)".into(),
            ),
            ErrorKind::NotFound => (
                io.kind(),
                "no such socket (is PostgreSQL running, with its socket there?)".into(),
            ),
            _ if io.to_string().contains("lookup address") => {
                (ErrorKind::NotFound, format!("unknown host ({io})"))
            }
            _ => (io.kind(), io.to_string()),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
            let what = match code.as_str() {
                // invalid_password, invalid_authorization_specification (also: no such
                // role, no pg_hba.conf entry)
                "28P01" | "28000" => format!("authentication failed for user {user:?}"),
                "3D000" => format!("no such database (connecting as {user:?})"),
                _ => format!("the server refused user {user:?}"),
            };
            (
                ErrorKind::PermissionDenied,
                format!("{what}: {} (SQLSTATE {code})", db.message()),
            )
        }
        sqlx::Error::Tls(tls) => (ErrorKind::Other, format!("TLS: {tls}")),
        other => (ErrorKind::Other, other.to_string()),
    }
}

/// The error for a failed connect: a bad URL, or a database that cannot be used now.
fn connect_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Configuration(_) => StoreError::InvalidUrl(e.to_string()),
        other => StoreError::Unavailable(other),
    }
}

/// The error for a SQLite database that cannot be opened. SQLite says only "unable to open
/// database file"; if the file cannot be opened for writing (a read-only filesystem, say),
/// that is the error reported, with the file's name.
fn sqlite_open_error(url: &str, e: sqlx::Error) -> StoreError {
    let path = url
        .parse::<sqlx::sqlite::SqliteConnectOptions>()
        .ok()
        .map(|o| o.get_filename().to_path_buf())
        .filter(|p| p.is_file() && !url.contains("mode=ro"));
    if let Some(path) = path
        && let Err(io) = std::fs::OpenOptions::new().write(true).open(&path)
    {
        return StoreError::Unavailable(sqlx::Error::Io(std::io::Error::new(
            io.kind(),
            format!(
                "{}: {io}: SQLite must be able to write the database file and create \
                 its -wal and -shm files next to it",
                path.display()
            ),
        )));
    }
    connect_error(e)
}

/// Run on every SQLite connection: WAL, durable commits, a busy timeout, foreign keys.
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    // journal_mode returns a row; execute ignores it.
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA busy_timeout = 5000",
        "PRAGMA foreign_keys = ON",
    ] {
        sqlx::query(pragma).execute(&mut *conn).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Row;

    #[test]
    fn postgres_url_normalisation() {
        let n = |u: &str| normalize_postgres_url(u).into_owned();
        assert_eq!(
            n("postgres://signet@/postgres?host=/tmp/x"),
            "postgres:///postgres?host=/tmp/x&user=signet"
        );
        assert_eq!(
            n("postgresql://u:p%40ss+w@/db"),
            "postgresql:///db?user=u&password=p%40ss%2Bw"
        );
        assert_eq!(n("postgres://u@/"), "postgres:///?user=u");
        for same in [
            "postgres://u:p@host/db",
            "postgres:///db?host=/tmp",
            "postgres://host:5432/db",
            "postgres://u@host/db?x=@/",
            "garbage",
        ] {
            assert_eq!(n(same), same);
        }
    }

    /// The PRAGMAs are per connection: check them on pooled connections.
    #[tokio::test]
    async fn sqlite_connections_are_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/p.db", dir.path().display());
        let store = Store::connect(&url).await.expect("connect");
        // Hold several connections at once so more than one is checked.
        let mut conns = Vec::new();
        for _ in 0..3 {
            conns.push(store.pool.acquire().await.expect("acquire"));
        }
        for conn in &mut conns {
            for (pragma, want) in [
                ("PRAGMA synchronous", "2"), // FULL
                ("PRAGMA busy_timeout", "5000"),
                ("PRAGMA foreign_keys", "1"),
                ("PRAGMA journal_mode", "wal"),
            ] {
                let row = sqlx::query(pragma)
                    .fetch_one(&mut **conn)
                    .await
                    .expect("pragma");
                let got = row
                    .try_get::<i64, _>(0)
                    .map(|v| v.to_string())
                    .or_else(|_| row.try_get::<String, _>(0))
                    .expect("decode pragma");
                assert_eq!(got, want, "{pragma}");
            }
        }
    }

    #[test]
    fn backend_from_url() {
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://u@/d?host=/tmp").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::from_url("postgresql://h/d").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://h/d").is_err());
        assert!(Backend::from_url("").is_err());
    }
}
