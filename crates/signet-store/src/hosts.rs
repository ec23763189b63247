//! Several PostgreSQL servers in one URL, in libpq's multi-host form, and following a
//! failover among them without a restart.
//!
//! ```text
//! postgres://user@db1:5432,db2:5432/signet?target_session_attrs=read-write
//! postgres:///signet?host=/run/pg1,/run/pg2&user=signet&target_session_attrs=read-write
//! ```
//!
//! `target_session_attrs` says which server to use, as libpq does: `any` (the default: the
//! first that answers), `read-write` or `primary` (one that accepts writes: what `signet
//! serve` needs), `read-only` or `standby` (a hot standby), `prefer-standby` (a standby if
//! one answers, else any). sqlx cannot parse a host list, so the URL is split here into one
//! single-server URL per host, tried in order.
//!
//! The pool opens connections to the chosen server only. A follower task checks every
//! [`FOLLOW_EVERY`] that the server still suits (for `read-write`: answers and is not in
//! recovery nor read-only) and otherwise tries the list again: when the primary dies and a
//! standby is promoted, it points the pool at the new primary, and connections opened
//! before that are closed as they come back rather than reused. Meanwhile operations fail
//! with [`StoreError::Unavailable`] (503 to an API caller), and with `read-write` a
//! connection to a server that does not accept writes is never handed out: each new one is
//! checked as it opens, and a write that still reaches a read-only server (a primary
//! demoted under a live connection) is refused by PostgreSQL and reported unavailable too.
//! So nothing is acknowledged that the current primary did not commit.

use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Row};

use crate::StoreError;

/// How often the follower checks that the server in use still suits.
pub(crate) const FOLLOW_EVERY: Duration = Duration::from_millis(500);
/// How long one server may take to answer the follower's question.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Which server of a list to use (libpq's `target_session_attrs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetSessionAttrs {
    /// The first server that answers.
    Any,
    /// A server that accepts writes.
    ReadWrite,
    /// A hot standby.
    Standby,
    /// A hot standby if one answers, else any server.
    PreferStandby,
}

impl TargetSessionAttrs {
    fn parse(value: &str) -> Result<TargetSessionAttrs, StoreError> {
        Ok(match value {
            "any" => TargetSessionAttrs::Any,
            "read-write" | "primary" => TargetSessionAttrs::ReadWrite,
            "read-only" | "standby" => TargetSessionAttrs::Standby,
            "prefer-standby" => TargetSessionAttrs::PreferStandby,
            other => {
                return Err(StoreError::InvalidUrl(format!(
                    "target_session_attrs={other:?}: use any, read-write, primary, read-only, \
                     standby or prefer-standby"
                )));
            }
        })
    }

    fn suits(self, server: ServerState) -> bool {
        match self {
            TargetSessionAttrs::Any | TargetSessionAttrs::PreferStandby => true,
            TargetSessionAttrs::ReadWrite => !server.read_only,
            TargetSessionAttrs::Standby => server.standby,
        }
    }
}

/// What a server said of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerState {
    /// `pg_is_in_recovery()`.
    standby: bool,
    /// `transaction_read_only` (a standby, or `default_transaction_read_only`).
    read_only: bool,
}

/// A URL naming several servers, or asking for a kind of server: one plain URL per server,
/// in the order given.
#[derive(Debug, Clone)]
pub(crate) struct HostList {
    pub(crate) urls: Vec<String>,
    pub(crate) attrs: TargetSessionAttrs,
}

/// The servers of a PostgreSQL `url`: `None` for a plain URL naming one server without
/// `target_session_attrs`, which is opened as it always was.
pub(crate) fn parse(url: &str) -> Result<Option<HostList>, StoreError> {
    let bad = |what: &str| StoreError::InvalidUrl(format!("multi-host PostgreSQL URL: {what}"));
    let Some((scheme, rest)) = url.split_once("://") else {
        return Ok(None);
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (rest, None),
    };
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, q),
        None => (rest, ""),
    };
    let end = before_query.find('/').unwrap_or(before_query.len());
    let (authority, path) = before_query.split_at(end);
    let (userinfo, hostlist) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };

    let mut attrs = None;
    let mut hosts_param = None;
    let mut ports_param = None;
    let mut others = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "target_session_attrs" => {
                attrs = Some(TargetSessionAttrs::parse(&percent_decode(value))?)
            }
            "host" if value.contains(',') || percent_decode(value).contains(',') => {
                hosts_param = Some(value)
            }
            "port" if value.contains(',') => ports_param = Some(value),
            _ => others.push(pair),
        }
    }
    let in_authority: Vec<&str> = hostlist.split(',').collect();
    if ports_param.is_some() && hosts_param.is_none() {
        return Err(bad("a port list needs a host list in host="));
    }
    if in_authority.len() == 1 && hosts_param.is_none() && attrs.is_none() {
        return Ok(None);
    }
    let rebuild = |authority_host: &str, extra: &[String]| {
        let mut out = format!("{scheme}://");
        if let Some(u) = userinfo {
            out.push_str(u);
            out.push('@');
        }
        out.push_str(authority_host);
        out.push_str(path);
        let params: Vec<String> = others
            .iter()
            .map(|s| (*s).to_owned())
            .chain(extra.iter().cloned())
            .collect();
        if !params.is_empty() {
            out.push('?');
            out.push_str(&params.join("&"));
        }
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    };
    let urls = match hosts_param {
        Some(hosts) => {
            if in_authority.len() > 1 {
                return Err(bad("hosts both before the path and in host="));
            }
            let hosts: Vec<&str> = hosts.split(',').collect();
            let ports: Vec<&str> = match ports_param {
                None => Vec::new(),
                Some(p) => p.split(',').collect(),
            };
            if !ports.is_empty() && ports.len() != hosts.len() && ports.len() != 1 {
                return Err(bad(
                    "port= lists a different number of ports than host= hosts",
                ));
            }
            hosts
                .iter()
                .enumerate()
                .map(|(i, host)| {
                    if host.is_empty() {
                        return Err(bad("an empty host"));
                    }
                    let mut extra = vec![format!("host={host}")];
                    if let Some(port) = ports.get(i).or(ports.first()) {
                        extra.push(format!("port={port}"));
                    }
                    Ok(rebuild(in_authority[0], &extra))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => in_authority
            .iter()
            .map(|host| {
                if host.is_empty() && in_authority.len() > 1 {
                    return Err(bad("an empty host"));
                }
                Ok(rebuild(host, &[]))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    Ok(Some(HostList {
        urls,
        attrs: attrs.unwrap_or(TargetSessionAttrs::Any),
    }))
}

/// `%XX` decoded (for comparing parameter values; invalid escapes are kept as written).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Asks the server at `url` (one direct connection, bounded) what it is.
async fn server_state(url: &str, within: Duration) -> Result<ServerState, StoreError> {
    let attempt = async {
        let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
        let state = state_of(&mut conn).await;
        let _ = conn.close().await;
        state
    };
    tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| StoreError::timed_out(within))?
}

async fn state_of<'c, E>(conn: E) -> Result<ServerState, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Postgres>,
{
    let row = sqlx::query(
        "SELECT pg_is_in_recovery() AS standby, \
         current_setting('transaction_read_only') = 'on' AS read_only",
    )
    .fetch_one(conn)
    .await?;
    Ok(ServerState {
        standby: row.try_get("standby")?,
        read_only: row.try_get("read_only")?,
    })
}

/// The first server of `list` that suits its `target_session_attrs` (for
/// `prefer-standby`: the first standby, else the first that answers), each asked within
/// `within`. The error names each server's answer by its position, never its URL (which
/// may hold a password).
pub(crate) async fn choose(list: &HostList, within: Duration) -> Result<usize, StoreError> {
    let mut answers = Vec::with_capacity(list.urls.len());
    let mut first_answering = None;
    for (i, url) in list.urls.iter().enumerate() {
        match server_state(url, within).await {
            Ok(state) => {
                first_answering.get_or_insert(i);
                let wanted = match list.attrs {
                    TargetSessionAttrs::PreferStandby => state.standby,
                    other => other.suits(state),
                };
                if wanted {
                    return Ok(i);
                }
                answers.push(format!(
                    "server {}: {}",
                    i + 1,
                    if state.standby {
                        "a standby"
                    } else if state.read_only {
                        "read-only"
                    } else {
                        "a primary"
                    }
                ));
            }
            Err(e) => answers.push(format!("server {}: {}", i + 1, describe(&e))),
        }
    }
    if list.attrs == TargetSessionAttrs::PreferStandby
        && let Some(i) = first_answering
    {
        return Ok(i);
    }
    Err(StoreError::Unavailable(sqlx::Error::Io(
        std::io::Error::other(format!(
            "no PostgreSQL server of the {} listed is {} ({})",
            list.urls.len(),
            match list.attrs {
                TargetSessionAttrs::ReadWrite => "read-write",
                TargetSessionAttrs::Standby => "a standby",
                _ => "answering",
            },
            answers.join("; ")
        )),
    )))
}

fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// Which server of a [`HostList`] the pool uses now, shared with the follower, the pool's
/// hooks and the store's own connections (`LISTEN`, leadership).
#[derive(Debug)]
pub(crate) struct Current {
    list: HostList,
    index: RwLock<usize>,
    /// When the pool was last pointed at another server: connections older than that are
    /// closed rather than handed out.
    switched: Mutex<Option<Instant>>,
}

impl Current {
    pub(crate) fn new(list: HostList, index: usize) -> Arc<Current> {
        Arc::new(Current {
            list,
            index: RwLock::new(index),
            switched: Mutex::new(None),
        })
    }

    /// The URL of the server in use.
    pub(crate) fn url(&self) -> String {
        let i = *self.index.read().unwrap_or_else(|e| e.into_inner());
        self.list.urls[i.min(self.list.urls.len() - 1)].clone()
    }

    /// Pool options that keep to the current server: a connection opened before the last
    /// switch is closed instead of handed out, and with `read-write` a new connection to
    /// a read-only server is refused as it opens.
    pub(crate) fn pool_options(self: &Arc<Self>, options: AnyPoolOptions) -> AnyPoolOptions {
        let current = Arc::clone(self);
        let read_write = self.list.attrs == TargetSessionAttrs::ReadWrite;
        let options = options.before_acquire(move |_conn, meta| {
            let current = Arc::clone(&current);
            Box::pin(async move {
                let switched = *current.switched.lock().unwrap_or_else(|e| e.into_inner());
                Ok(switched.is_none_or(|at| meta.age <= at.elapsed()))
            })
        });
        if !read_write {
            return options;
        }
        options.after_connect(|conn, _meta| {
            Box::pin(async move {
                let row = sqlx::query("SELECT current_setting('transaction_read_only') AS ro")
                    .fetch_one(&mut *conn)
                    .await?;
                let ro: String = row.try_get("ro")?;
                if ro == "on" {
                    return Err(sqlx::Error::Io(std::io::Error::other(
                        "the PostgreSQL server is read-only; read-write was asked for",
                    )));
                }
                Ok(())
            })
        })
    }

    /// Keep the pool on a server that suits, until the pool is closed: every
    /// [`FOLLOW_EVERY`], ask the current server through the pool; if it does not answer or
    /// no longer suits, choose again and point the pool at the server chosen.
    pub(crate) async fn follow(self: Arc<Self>, pool: AnyPool) {
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            if pool.is_closed() {
                return;
            }
            let asked = tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut conn = pool.acquire().await?;
                let row = sqlx::query(
                    "SELECT pg_is_in_recovery() AS standby, \
                     current_setting('transaction_read_only') = 'on' AS read_only",
                )
                .fetch_one(&mut *conn)
                .await?;
                Ok::<_, sqlx::Error>(ServerState {
                    standby: row.try_get("standby")?,
                    read_only: row.try_get("read_only")?,
                })
            })
            .await;
            let fine = matches!(asked, Ok(Ok(state)) if self.list.attrs.suits(state));
            if fine {
                continue;
            }
            let Ok(next) = choose(&self.list, PROBE_TIMEOUT).await else {
                continue; // none suits yet (a promotion under way): ask again shortly
            };
            let before = *self.index.read().unwrap_or_else(|e| e.into_inner());
            if next == before {
                continue;
            }
            let Ok(options) = AnyConnectOptions::from_str(&self.list.urls[next]) else {
                continue;
            };
            pool.set_connect_options(options);
            *self.switched.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
            *self.index.write().unwrap_or_else(|e| e.into_inner()) = next;
            tracing::warn!(
                from = before + 1,
                to = next + 1,
                of = self.list.urls.len(),
                "the database server in use no longer suits (down, or no longer a primary): \
                 switched to another server of the list"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_urls_are_not_lists() {
        for url in [
            "postgres://u:p@host/db",
            "postgres:///db?host=/tmp/x&user=u",
            "postgres://host:5432/db?sslmode=require",
        ] {
            assert!(parse(url).expect("parses").is_none(), "{url}");
        }
    }

    #[test]
    fn host_lists_split_into_one_url_per_server() {
        let l = parse("postgres://u:p@db1:5432,db2:5433/signet?sslmode=require&target_session_attrs=read-write")
            .expect("parses")
            .expect("a list");
        assert_eq!(l.attrs, TargetSessionAttrs::ReadWrite);
        assert_eq!(
            l.urls,
            [
                "postgres://u:p@db1:5432/signet?sslmode=require",
                "postgres://u:p@db2:5433/signet?sslmode=require"
            ]
        );
        let l =
            parse("postgres:///signet?host=/run/a,/run/b&user=signet&target_session_attrs=primary")
                .expect("parses")
                .expect("a list");
        assert_eq!(l.attrs, TargetSessionAttrs::ReadWrite);
        assert_eq!(
            l.urls,
            [
                "postgres:///signet?user=signet&host=/run/a",
                "postgres:///signet?user=signet&host=/run/b"
            ]
        );
        let l = parse("postgres:///d?host=a,b&port=1,2")
            .expect("parses")
            .expect("a list");
        assert_eq!(l.attrs, TargetSessionAttrs::Any);
        assert_eq!(
            l.urls,
            ["postgres:///d?host=a&port=1", "postgres:///d?host=b&port=2"]
        );
        // One server, but a kind asked for: still followed.
        let l = parse("postgres://h/d?target_session_attrs=prefer-standby")
            .expect("parses")
            .expect("a list");
        assert_eq!(l.urls, ["postgres://h/d"]);
        assert_eq!(l.attrs, TargetSessionAttrs::PreferStandby);
    }

    #[test]
    fn bad_lists_are_refused() {
        for url in [
            "postgres://h/d?target_session_attrs=whatever",
            "postgres://a,,b/d",
            "postgres:///d?host=a,b&port=1,2,3",
            "postgres://a,b/d?host=c,d",
            "postgres:///d?port=1,2",
        ] {
            assert!(
                matches!(parse(url), Err(StoreError::InvalidUrl(_))),
                "{url}"
            );
        }
    }
}
