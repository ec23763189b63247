//! Test helpers for Signet: throwaway databases for both backends, and throwaway SoftHSM2
//! tokens ([`softhsm`]).
//!
//! ```no_run
//! # async fn demo() {
//! for db in signet_testkit::TestDb::all().await {
//!     // db.url() is a fresh, empty database; db.name() is "sqlite" or "postgres".
//!     assert!(!db.url().is_empty(), "[{}] url", db.name());
//! }
//! # }
//! ```
//!
//! PostgreSQL: if `DATABASE_URL` is set, a uniquely named database is created
//! on that server (and dropped afterwards, best effort). Otherwise a private
//! cluster is started with `initdb`/`pg_ctl` in a temporary directory,
//! listening only on a unix socket inside it. If neither works the helper
//! panics: tests never skip silently. Fault tests that stop, kill or freeze
//! the server use [`TestDb::private_postgres`], a private cluster whatever
//! `DATABASE_URL` says.
//!
//! This crate is for tests only: it panics freely.

#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

pub mod softhsm;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Connection;

const INSTALL_HINT: &str = "install PostgreSQL (`apt-get install postgresql`; Debian puts \
     initdb and pg_ctl in /usr/lib/postgresql/<version>/bin, which is searched) \
     or set DATABASE_URL to a PostgreSQL server URL whose user may CREATE DATABASE";

/// A throwaway database. Dropping it removes it.
pub struct TestDb {
    url: String,
    name: &'static str,
    inner: Inner,
}

enum Inner {
    Sqlite { _dir: tempfile::TempDir },
    Cluster(Cluster),
    External { admin_url: String, database: String },
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDb")
            .field("backend", &self.name)
            .field("url", &self.url)
            .finish()
    }
}

impl TestDb {
    /// A fresh SQLite database file `signet.db` in a new temporary directory.
    /// The file itself is not created; the URL is `sqlite:///…/signet.db`.
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("signet-sqlite-")
            .tempdir()
            .expect("create temporary directory for SQLite");
        let path = dir.path().join("signet.db");
        let path = path.to_str().expect("temporary path is UTF-8");
        TestDb {
            url: format!("sqlite://{path}"),
            name: "sqlite",
            inner: Inner::Sqlite { _dir: dir },
        }
    }

    /// A fresh, empty PostgreSQL database: on the server in `DATABASE_URL`
    /// if that is a `postgres://` or `postgresql://` URL, else in a private cluster started for this `TestDb`.
    ///
    /// Panics (with installation advice) if PostgreSQL is not available.
    pub async fn postgres() -> TestDb {
        match std::env::var("DATABASE_URL") {
            Ok(admin_url) if admin_url.starts_with("postgres") => {
                external_postgres(admin_url).await
            }
            _ => {
                let cluster = Cluster::start();
                let url = cluster.url();
                TestDb {
                    url,
                    name: "postgres",
                    inner: Inner::Cluster(cluster),
                }
            }
        }
    }

    /// A fresh, empty PostgreSQL database in a private cluster started for this `TestDb`,
    /// whatever `DATABASE_URL` says: for fault tests that stop, kill or freeze the server
    /// ([`TestDb::stop`], [`TestDb::kill`], [`TestDb::freeze`]), which a test cannot do to a
    /// shared server. So these tests run in the "existing server" mode too.
    ///
    /// Panics (with installation advice) if the PostgreSQL server binaries are missing.
    pub async fn private_postgres() -> TestDb {
        let cluster = Cluster::start();
        let url = cluster.url();
        TestDb {
            url,
            name: "postgres",
            inner: Inner::Cluster(cluster),
        }
    }

    /// One fresh database per backend: SQLite first, then PostgreSQL.
    pub async fn all() -> Vec<TestDb> {
        vec![TestDb::sqlite().await, TestDb::postgres().await]
    }

    /// Connection URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Backend name for assertion messages: `"sqlite"` or `"postgres"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Stops the PostgreSQL server of a private cluster (`pg_ctl stop -m fast`, as the user
    /// that started it), keeping its data; [`TestDb::start`] brings it back on the same
    /// socket. For fault tests.
    ///
    /// Panics for SQLite, and for a database on `DATABASE_URL`: an external server cannot be
    /// stopped by a test, so a test using this needs the private cluster (unset
    /// `DATABASE_URL`).
    pub fn stop(&self) {
        self.cluster("stop").pause();
    }

    /// Starts the PostgreSQL server stopped by [`TestDb::stop`] again, waiting until it
    /// accepts connections. Panics as [`TestDb::stop`] does.
    pub fn start(&self) {
        self.cluster("start").restart();
    }

    /// Kills every process of a private cluster's server with SIGKILL at once (the
    /// postmaster frozen first, so it forks no new backend meanwhile), as a crash would:
    /// nothing is shut down cleanly, and [`TestDb::start`] then runs crash recovery. Panics
    /// as [`TestDb::stop`] does.
    pub fn kill(&self) {
        let cluster = self.cluster("kill");
        let pids = cluster.frozen_processes();
        signal(&pids, "KILL");
        // Reaped by their parents (pg_ctl's shell, or the postmaster's own parent): wait,
        // bounded, until none is left, so that a restart does not find a live lock holder.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while pids.iter().any(|pid| alive(*pid)) {
            assert!(
                std::time::Instant::now() < deadline,
                "PostgreSQL processes {pids:?} still alive 30 s after SIGKILL"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // A killed postmaster is a zombie until whoever adopted it (pg_ctl exits at start, so
        // that is PID 1 or a subreaper, not this test) reaps it, which some init processes do
        // late. PostgreSQL's lock-file check (`kill(pid, 0)`) counts a zombie as a running
        // postmaster, so the restart would refuse: "lock file postmaster.pid already exists".
        // After a real crash no such process is left at all; the dead server's lock file is
        // stale, and removing it changes nothing else (crash recovery still runs, from
        // pg_control's state). Only a zombie's (never a live server's) lock file goes.
        let postmaster = pids[0];
        if zombie(postmaster) {
            let lock = cluster.dir().join("data").join("postmaster.pid");
            if let Err(e) = std::fs::remove_file(&lock)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                panic!("removing the killed server's {}: {e}", lock.display());
            }
            // The socket's lock file (`.s.PGSQL.<port>.lock`, beside the socket) names the
            // same zombie, and the same check refuses the restart on it.
            if let Ok(entries) = std::fs::read_dir(cluster.dir()) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.to_string_lossy();
                    if name.starts_with(".s.PGSQL.")
                        && name.ends_with(".lock")
                        && let Err(e) = std::fs::remove_file(entry.path())
                        && e.kind() != std::io::ErrorKind::NotFound
                    {
                        panic!("removing the killed server's {name}: {e}");
                    }
                }
            }
        }
    }

    /// Freezes a private cluster's server with SIGSTOP (the postmaster and every backend):
    /// connections stay open but nothing answers, as with a hung host or a stalled disk.
    /// [`TestDb::thaw`] resumes it. Panics as [`TestDb::stop`] does.
    pub fn freeze(&self) {
        let pids = self.cluster("freeze").frozen_processes();
        *self.frozen().lock().unwrap() = pids;
    }

    /// Resumes a server frozen by [`TestDb::freeze`] with SIGCONT.
    pub fn thaw(&self) {
        self.cluster("thaw");
        let pids = std::mem::take(&mut *self.frozen().lock().unwrap());
        assert!(!pids.is_empty(), "TestDb::thaw without TestDb::freeze");
        signal(&pids, "CONT");
    }

    /// Stops a private cluster's server with `pg_ctl stop -m immediate`: every server
    /// process quits at once without a checkpoint, as a crash would (the next start runs
    /// crash recovery), and a standby streaming from it loses its primary. For failover
    /// tests. Panics as [`TestDb::stop`] does.
    pub fn stop_immediate(&self) {
        self.cluster("stop_immediate").pg_ctl_stop("immediate");
    }

    /// Promotes a standby made by [`TestDb::replicated`] (`pg_ctl promote`), returning once
    /// it accepts writes. Panics as [`TestDb::stop`] does, or if promotion fails (say, on a
    /// server that is not a standby).
    pub fn promote(&self) {
        self.cluster("promote").promote();
    }

    /// The directory of a private cluster's unix socket, for `psql -h DIR` or for a
    /// libpq multi-host list. Panics as [`TestDb::stop`] does.
    pub fn socket_dir(&self) -> &Path {
        self.cluster("socket_dir").dir()
    }

    /// A private PostgreSQL primary (an empty database, as [`TestDb::private_postgres`])
    /// and a hot standby streaming from it (`pg_basebackup -R`), each in its own
    /// temporary directory on its own unix socket. With [`Replication::Synchronous`] the
    /// primary waits for the standby to have each commit on disk before reporting it
    /// (`synchronous_standby_names = '*'`, `synchronous_commit = on`), so a commit the
    /// primary acknowledged survives the primary's loss; with
    /// [`Replication::Asynchronous`] (PostgreSQL's default) it does not wait.
    ///
    /// Returns once the standby accepts read-only connections and, for synchronous
    /// replication, is the primary's synchronous standby. Panics (with the server logs)
    /// if that takes more than 60 s or the binaries are missing.
    pub async fn replicated(mode: Replication) -> Replicated {
        let primary = Cluster::start();
        let standby = Cluster::standby_of(&primary);
        let primary = TestDb {
            url: primary.url(),
            name: "postgres",
            inner: Inner::Cluster(primary),
        };
        let standby = TestDb {
            url: standby.url(),
            name: "postgres",
            inner: Inner::Cluster(standby),
        };
        if mode == Replication::Synchronous {
            // Two calls: ALTER SYSTEM refuses to run inside the implicit transaction of a
            // multi-statement query.
            execute(
                primary.url(),
                "ALTER SYSTEM SET synchronous_standby_names = '*'",
            )
            .await;
            execute(primary.url(), "SELECT pg_reload_conf()").await;
        }
        let want = match mode {
            Replication::Synchronous => "sync",
            Replication::Asynchronous => "async",
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let state = query_text(
                primary.url(),
                "SELECT COALESCE(string_agg(sync_state, ','), '') FROM pg_stat_replication \
                 WHERE state = 'streaming'",
            )
            .await;
            if state == want {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the standby is not a streaming {want} standby 60 s after it started \
                 (pg_stat_replication says {state:?})\nprimary log:\n{}\nstandby log:\n{}",
                primary.server_log(),
                standby.server_log()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Replicated { primary, standby }
    }

    /// Waits until this standby has replayed everything `primary` has written so far
    /// (its current WAL position), at most `within`; returns how long that took. Panics if
    /// it has not by then.
    pub async fn wait_replayed(
        &self,
        primary: &TestDb,
        within: std::time::Duration,
    ) -> std::time::Duration {
        let started = std::time::Instant::now();
        let target = query_text(primary.url(), "SELECT pg_current_wal_lsn()::text").await;
        loop {
            let caught_up = query_text(
                self.url(),
                &format!("SELECT (pg_last_wal_replay_lsn() >= '{target}'::pg_lsn)::text"),
            )
            .await;
            if caught_up == "true" {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < within,
                "the standby has not replayed up to the primary's {target} within {within:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// The server log of a private cluster (to check, say, that crash recovery ran).
    /// Panics as [`TestDb::stop`] does.
    pub fn server_log(&self) -> String {
        let cluster = self.cluster("server_log");
        std::fs::read_to_string(cluster.dir().join("postgres.log")).unwrap_or_default()
    }

    fn frozen(&self) -> &std::sync::Mutex<Vec<u32>> {
        &self.cluster("thaw").frozen
    }

    fn cluster(&self, what: &str) -> &Cluster {
        match &self.inner {
            Inner::Cluster(cluster) => cluster,
            Inner::External { .. } => panic!(
                "TestDb::{what} needs the private PostgreSQL cluster, but DATABASE_URL points \
                 at an external server that a test cannot stop or start: unset DATABASE_URL \
                 to run this test"
            ),
            Inner::Sqlite { .. } => panic!("TestDb::{what} is for PostgreSQL only"),
        }
    }

    /// For SQLite, the database file path (which may not exist yet).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        match &self.inner {
            Inner::Sqlite { _dir } => Some(_dir.path().join("signet.db")),
            _ => None,
        }
    }
}

impl fmt::Display for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Inner::External {
            admin_url,
            database,
        } = &self.inner
        {
            drop_external_database(admin_url, database);
        }
        // Cluster stops itself in its own Drop; TempDir removes itself.
    }
}

/// How a standby made by [`TestDb::replicated`] follows its primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replication {
    /// The primary reports a commit once it is on its own disk; the standby may lag.
    Asynchronous,
    /// The primary reports a commit once the standby has it on disk too.
    Synchronous,
}

/// A primary and its streaming hot standby, from [`TestDb::replicated`]. Dropping it stops
/// both and removes their directories.
#[derive(Debug)]
pub struct Replicated {
    /// The primary: read-write (until stopped).
    pub primary: TestDb,
    /// The hot standby: read-only until [`TestDb::promote`]d.
    pub standby: TestDb,
}

impl Replicated {
    /// A libpq-style multi-host URL naming both servers, primary first:
    /// `postgres:///postgres?host=PRIMARY_DIR,STANDBY_DIR&user=signet`, followed by
    /// `extra` query parameters (say `target_session_attrs=read-write`) if not empty.
    pub fn multi_host_url(&self, extra: &str) -> String {
        let dir = |db: &TestDb| db.socket_dir().to_str().expect("UTF-8 path").to_owned();
        let mut url = format!(
            "postgres:///postgres?host={},{}&user=signet",
            dir(&self.primary),
            dir(&self.standby)
        );
        if !extra.is_empty() {
            url.push('&');
            url.push_str(extra);
        }
        url
    }
}

/// The first column of the first row of `sql` on `url` (PostgreSQL), as text.
/// Panics if the connection or the query fails.
pub async fn query_text(url: &str, sql: &str) -> String {
    use sqlx::Row;
    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let row = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql} on {url} failed: {e}"));
    let value: Option<String> = row.try_get(0).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
    value.unwrap_or_default()
}

/// Runs `sql` (one or more statements, as written) on the database at `url`, SQLite or
/// PostgreSQL, through a connection of its own. For fault tests that change a live database
/// under a running server, e.g. a trigger that makes a table refuse writes.
///
/// Panics if the connection or the statements fail.
pub async fn execute(url: &str, sql: &str) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql} on {url} failed: {e}"));
    let _ = conn.close().await;
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn external_postgres(admin_url: String) -> TestDb {
    sqlx::any::install_default_drivers();
    let database = format!("signet_test_{}", unique_suffix());
    let mut conn = sqlx::AnyConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!("cannot connect to DATABASE_URL (PostgreSQL): {e}; {INSTALL_HINT}")
        });
    // The name is generated here from digits and underscores: safe to format.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("CREATE DATABASE {database} on DATABASE_URL failed: {e}"));
    let _ = conn.close().await;

    let mut url = url::Url::parse(&admin_url).unwrap_or_else(|e| {
        panic!(
            "DATABASE_URL is not a URL sqlx accepts ({e}); for a unix socket write \
             postgres:///db?host=/socket/dir&user=name"
        )
    });
    url.set_path(&format!("/{database}"));
    TestDb {
        url: url.to_string(),
        name: "postgres",
        inner: Inner::External {
            admin_url,
            database,
        },
    }
}

/// Drops a database made by [`external_postgres`], best effort, from a
/// separate thread and runtime (Drop may run inside or outside a runtime).
fn drop_external_database(admin_url: &str, database: &str) {
    let admin_url = admin_url.to_owned();
    let sql = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    let handle = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin_url).await {
                let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await;
                let _ = conn.close().await;
            }
        });
    });
    let _ = handle.join();
}

/// A private PostgreSQL cluster in a temporary directory, reachable only
/// through a unix socket in that directory.
struct Cluster {
    dir: Option<tempfile::TempDir>,
    /// Processes stopped by [`TestDb::freeze`], resumed by [`TestDb::thaw`] (and on drop).
    frozen: std::sync::Mutex<Vec<u32>>,
    pg_ctl: PathBuf,
    /// When running as root, initdb/pg_ctl run as this user via runuser.
    run_as: Option<&'static str>,
}

impl Cluster {
    /// A new primary: `initdb`, then `pg_ctl start`.
    fn start() -> Cluster {
        let (cluster, bin) = Cluster::empty();
        let data = cluster.dir().join("data");
        let mut cmd = cluster.command(&bin.join("initdb"));
        cmd.arg("-D")
            .arg(&data)
            .args(["-U", "signet", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .arg("--locale=C");
        let out = run(&mut cmd);
        if !out.status.success() {
            panic!(
                "initdb failed ({}): {}{}\n{INSTALL_HINT}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster.first_start();
        cluster
    }

    /// A hot standby of `primary`: `pg_basebackup -R` (which writes `standby.signal` and
    /// the `primary_conninfo` to stream from the primary's socket), then `pg_ctl start`,
    /// which returns once the standby accepts read-only connections.
    fn standby_of(primary: &Cluster) -> Cluster {
        let (cluster, bin) = Cluster::empty();
        let data = cluster.dir().join("data");
        // initdb and pg_ctl may be links on PATH (say in /usr/local/bin) to the directory
        // that holds the rest of the server's programs.
        let pg_basebackup = std::fs::canonicalize(bin.join("initdb"))
            .ok()
            .and_then(|real| Some(real.parent()?.join("pg_basebackup")))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| bin.join("pg_basebackup"));
        let mut cmd = cluster.command(&pg_basebackup);
        cmd.arg("-D").arg(&data).arg("-h").arg(primary.dir()).args([
            "-U",
            "signet",
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]);
        let out = run(&mut cmd);
        if !out.status.success() {
            panic!(
                "pg_basebackup -R failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster.first_start();
        cluster
    }

    /// A cluster directory with no data yet (owned by `run_as` when root), and the
    /// directory of the PostgreSQL binaries.
    fn empty() -> (Cluster, PathBuf) {
        let bin = find_pg_bin_dir().unwrap_or_else(|| {
            panic!("PostgreSQL binaries initdb and pg_ctl not found on PATH or under /usr/lib/postgresql/*/bin; {INSTALL_HINT}")
        });
        let pg_ctl = bin.join("pg_ctl");
        let run_as = if is_root() { Some("nobody") } else { None };

        // Unix socket paths are limited to ~107 bytes: keep the directory short.
        let base = if run_as.is_some() || std::env::temp_dir().as_os_str().len() > 60 {
            // nobody must be able to reach the directory: /tmp is world-traversable.
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("signet-pg-")
            .tempdir_in(&base)
            .expect("create temporary directory for PostgreSQL");
        if let Some(user) = run_as {
            check_traversable(dir.path());
            run_checked(
                Command::new("chown").arg(user).arg(dir.path()),
                "chown the PostgreSQL directory",
            );
        }
        let cluster = Cluster {
            dir: Some(dir),
            frozen: std::sync::Mutex::default(),
            pg_ctl,
            run_as,
        };
        (cluster, bin)
    }

    /// The first `pg_ctl start`; panics with the server log if it fails (the directory is
    /// removed by the cluster's drop).
    fn first_start(&self) {
        let out = self.pg_ctl_start();
        if !out.status.success() {
            let server_log =
                std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default();
            panic!(
                "pg_ctl start failed ({}): {}{}\nserver log:\n{server_log}\n{INSTALL_HINT}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// `pg_ctl start` on the cluster's data directory (waiting up to 60 s), with the same
    /// options every time: no TCP, the socket in the cluster directory.
    fn pg_ctl_start(&self) -> Output {
        let data = self.dir().join("data");
        let log = self.dir().join("postgres.log");
        let server_opts = format!(
            "-c listen_addresses='' -k {} -c fsync=on -c max_connections=50",
            self.dir().display()
        );
        let mut cmd = self.command(&self.pg_ctl);
        cmd.arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(&server_opts)
            .args(["-w", "-t", "60", "start"]);
        run(&mut cmd)
    }

    /// Stops the server with `pg_ctl stop -m fast` (waiting for it), keeping the data
    /// directory for [`Cluster::restart`]. Panics if pg_ctl fails.
    fn pause(&self) {
        self.pg_ctl_stop("fast");
    }

    /// `pg_ctl stop -m MODE`, waiting up to 60 s; panics if pg_ctl fails.
    fn pg_ctl_stop(&self, mode: &str) {
        let data = self.dir().join("data");
        let mut cmd = self.command(&self.pg_ctl);
        cmd.arg("-D")
            .arg(&data)
            .args(["-m", mode, "-w", "-t", "60", "stop"]);
        let out = run(&mut cmd);
        assert!(
            out.status.success(),
            "pg_ctl stop -m {mode} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl promote`, waiting (up to 60 s) until the standby accepts writes.
    fn promote(&self) {
        let data = self.dir().join("data");
        let mut cmd = self.command(&self.pg_ctl);
        cmd.arg("-D").arg(&data).args(["-w", "-t", "60", "promote"]);
        let out = run(&mut cmd);
        if !out.status.success() {
            let server_log =
                std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default();
            panic!(
                "pg_ctl promote failed ({}): {}{}\nserver log:\n{server_log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the server again after [`Cluster::pause`]. Panics with the server log if
    /// pg_ctl fails.
    fn restart(&self) {
        let out = self.pg_ctl_start();
        if !out.status.success() {
            let server_log =
                std::fs::read_to_string(self.dir().join("postgres.log")).unwrap_or_default();
            panic!(
                "pg_ctl start (restart) failed ({}): {}{}\nserver log:\n{server_log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// The postmaster's pid, from `postmaster.pid`.
    fn postmaster_pid(&self) -> u32 {
        let file = self.dir().join("data").join("postmaster.pid");
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{}: {e} (is the server running?)", file.display()));
        text.lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no pid in {text:?}", file.display()))
    }

    /// SIGSTOPs the postmaster, then every process it forked; returns them all (postmaster
    /// first), stopped.
    fn frozen_processes(&self) -> Vec<u32> {
        let postmaster = self.postmaster_pid();
        signal(&[postmaster], "STOP");
        let mut pids = vec![postmaster];
        pids.extend(children_of(postmaster));
        signal(&pids[1..], "STOP");
        pids
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("cluster directory present").path()
    }

    fn url(&self) -> String {
        // sqlx (through the url crate) rejects the libpq form
        // `postgres://signet@/postgres?host=…` ("empty host"), so the user
        // goes in the query. signet-store accepts both forms.
        format!(
            "postgres:///postgres?host={}&user=signet",
            self.dir().to_str().expect("temporary path is UTF-8")
        )
    }

    /// A command for a PostgreSQL binary, run as `run_as` if set. Output is
    /// captured; stdin is closed so nothing waits on the test's terminal.
    fn command(&self, program: &Path) -> Command {
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(program);
                c
            }
            None => Command::new(program),
        };
        cmd.stdin(Stdio::null());
        cmd
    }

    fn stop(&mut self) {
        let frozen = std::mem::take(&mut *self.frozen.lock().unwrap_or_else(|e| e.into_inner()));
        if !frozen.is_empty() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .args(frozen.iter().map(u32::to_string))
                .stderr(Stdio::null())
                .status();
        }
        let Some(dir) = self.dir.take() else { return };
        let data = dir.path().join("data");
        if data.join("postmaster.pid").exists() {
            let mut cmd = self.command(&self.pg_ctl);
            cmd.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = cmd.status();
        }
        let _ = dir.close();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -SIGNAL PIDS` (root may signal the cluster's processes run as `nobody`).
fn signal(pids: &[u32], signal: &str) {
    if pids.is_empty() {
        return;
    }
    run_checked(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .args(pids.iter().map(u32::to_string)),
        &format!("kill -{signal} {pids:?}"),
    );
}

/// Whether `pid` is a live (not zombie) process, from /proc.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether `pid` is a zombie: dead, but not yet reaped by its parent.
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state == "Z")
    })
}

/// The pids whose parent is `parent`, from /proc/*/stat.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Runs a command with output captured (never inherited: pg_ctl's server
/// child would otherwise hold our pipes open).
fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}; {INSTALL_HINT}"))
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = run(cmd);
    if !out.status.success() {
        panic!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Directory holding both `initdb` and `pg_ctl`: PATH first, then the
/// newest /usr/lib/postgresql/<version>/bin.
fn find_pg_bin_dir() -> Option<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|d| has_both(d)));
    if on_path.is_some() {
        return on_path;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// Effective uid 0? Read from /proc (no libc), falling back to `id -u`.
fn is_root() -> bool {
    // "Uid:\treal\teffective\tsaved\tfs"
    let euid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(str::to_owned)
        });
    if let Some(euid) = euid {
        return euid == "0";
    }
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Panics with a clear message if some ancestor of `dir` is not
/// world-searchable (the unprivileged user could not reach the cluster).
fn check_traversable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for ancestor in dir.ancestors().skip(1) {
        let searchable = std::fs::metadata(ancestor)
            .map(|meta| meta.permissions().mode() & 0o001 != 0)
            .unwrap_or(true);
        assert!(
            searchable,
            "{} is not world-searchable, so user nobody cannot reach the PostgreSQL \
             directory {}; {INSTALL_HINT}",
            ancestor.display(),
            dir.display()
        );
    }
}
