//! The accept loop: TCP, then TLS (unless serving plain HTTP behind a proxy), then HTTP/1.1
//! or HTTP/2 through hyper, into the axum router.
//!
//! The loop is written out (rather than `axum::serve` or axum-server) for three things those
//! do not give: the client certificate of the connection attached to each of its requests,
//! a bound on the TLS handshake so a silent client cannot hold a socket, and a cap on open
//! connections. Shutdown stops accepting, lets requests in flight finish within a grace
//! period, then returns. It also refuses, before routing, an HTTP/1.1 request without
//! exactly one valid `Host` header (RFC 9112 section 3.2), which hyper passes through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use signet_api::ClientCertificate;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Connection-level limits (`[server.limits]`). Request-level ones (body size, request
/// timeout) are the API's.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// How long an HTTP/1 client has to send a request's headers.
    pub header_read_timeout: Duration,
    /// Open connections at most; beyond it, new ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS;
    /// h2 refuses streams beyond it with REFUSED_STREAM).
    pub http2_max_concurrent_streams: u32,
    /// Largest request head: the HTTP/1 read buffer (hyper answers 431 when the request line
    /// and headers do not fit) and the HTTP/2 header list (h2 answers 431).
    pub max_header_bytes: u32,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
            http2_max_concurrent_streams: 128,
            max_header_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

impl From<&crate::config::LimitsSection> for Limits {
    fn from(c: &crate::config::LimitsSection) -> Self {
        Limits {
            handshake_timeout: c.handshake_timeout.duration(),
            header_read_timeout: c.header_read_timeout.duration(),
            max_connections: c.max_connections,
            http2_max_concurrent_streams: c.http2_max_concurrent_streams,
            max_header_bytes: c.max_header_bytes,
            ..Limits::default()
        }
    }
}

/// Answers some requests before the router, or `None` to route them: the OCSP responder's
/// cached GETs ([`signet_responder::Responder::cached_get`]), which then cost no routing.
/// Called after the `Host` check, before anything is added to the request.
pub type Shortcut = Arc<dyn Fn(&hyper::Request<Incoming>) -> Option<Response> + Send + Sync>;

/// How a listener words the requests it refuses itself, before they reach its router.
#[derive(Clone, Copy, Debug)]
pub enum Refusals {
    /// As the API answers everything: RFC 7807 problem+json (`invalid-request`).
    Problem,
    /// As the OCSP responder and CRL download point answer errors: plain text.
    PlainText,
}

impl Refusals {
    fn bad_request(self, detail: &str) -> Response {
        match self {
            Refusals::Problem => {
                signet_api::ApiError::BadRequest(detail.to_string()).into_response()
            }
            Refusals::PlainText => {
                let mut resp = (StatusCode::BAD_REQUEST, format!("{detail}\n")).into_response();
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp
            }
        }
    }
}

/// RFC 9112 section 3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message that
/// contains more than one Host header field line or a Host header field with an invalid
/// field value." HTTP/1.0 did not require Host, and HTTP/2 carries `:authority` instead, so
/// only HTTP/1.1 must have one; more than one, or an invalid one, is refused in any version.
/// An empty Host is valid (a target URI without an authority).
fn check_host<B>(req: &hyper::Request<B>) -> Result<(), &'static str> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if req.version() == Version::HTTP_11 => {
            Err("an HTTP/1.1 request must carry a Host header (RFC 9112 section 3.2)")
        }
        (None, _) => Ok(()),
        (Some(_), Some(_)) => {
            Err("a request may carry only one Host header (RFC 9112 section 3.2)")
        }
        (Some(value), None) => {
            let valid = value.is_empty()
                || (!value.as_bytes().contains(&b'@')
                    && value
                        .to_str()
                        .ok()
                        .and_then(|v| v.parse::<axum::http::uri::Authority>().ok())
                        .is_some());
            if valid {
                Ok(())
            } else {
                Err("the Host header is not a valid host[:port] (RFC 9112 section 3.2)")
            }
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then drain. `tls: None` serves
/// plain HTTP. `refusals` says how to word what the listener refuses before routing;
/// `shortcut` answers what it can before the router. `workers`: the runtimes that serve
/// the accepted connections, in turn, each connection wholly on one of them (its socket
/// moved to that runtime's reactor, so its reads, writes and wake-ups stay on that thread);
/// empty, the current runtime serves them all.
// Each argument is one independent setting of the loop; three call sites name them all.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shortcut: Option<Shortcut>,
    workers: Vec<tokio::runtime::Handle>,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    refusals: Refusals,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    // hyper panics on a read buffer under 8 KiB; the configuration refuses one anyway.
    let max_head = usize::try_from(limits.max_header_bytes)
        .unwrap_or(usize::MAX)
        .max(8 * 1024);
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(max_head);
    http.http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes);

    let graceful = GracefulShutdown::new();
    // Tells connections still in their TLS handshake to give up.
    let (stop_tx, stop_rx) = watch::channel(false);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut turn = 0usize;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, usually: back off rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = Connection {
            peer,
            router: router.clone(),
            shortcut: shortcut.clone(),
            refusals,
            http: http.clone(),
            watcher: graceful.watcher(),
            stop: stop_rx.clone(),
        };
        let tls = tls.clone();
        let Some(worker) = workers.get(turn % workers.len().max(1)) else {
            tokio::spawn(async move {
                conn.run(stream, tls, limits.handshake_timeout).await;
                drop(permit);
            });
            continue;
        };
        turn = turn.wrapping_add(1);
        // Registered again, with the worker's reactor, from a task running there.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "handing a connection over failed");
                continue;
            }
        };
        worker.spawn(async move {
            match TcpStream::from_std(stream) {
                Ok(stream) => conn.run(stream, tls, limits.handshake_timeout).await,
                Err(e) => tracing::debug!(%peer, error = %e, "taking a connection over failed"),
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    tracing::info!(
        connections = graceful.count(),
        grace_s = limits.shutdown_grace.as_secs(),
        "stopped accepting; waiting for requests in flight"
    );
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the grace period were cut off");
    }
}

/// One accepted connection, before its handshake.
struct Connection {
    peer: SocketAddr,
    router: Router,
    shortcut: Option<Shortcut>,
    refusals: Refusals,
    http: auto::Builder<TokioExecutor>,
    watcher: Watcher,
    stop: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream, tls: Option<TlsAcceptor>, handshake: Duration) {
        let _ = stream.set_nodelay(true);
        let Some(acceptor) = tls else {
            return self.serve_http(TokioIo::new(stream), None).await;
        };
        let tls_stream = tokio::select! {
            r = tokio::time::timeout(handshake, acceptor.accept(stream)) => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %self.peer, "TLS handshake timed out");
                    return;
                }
            },
            _ = self.stop.wait_for(|stop| *stop) => return,
        };
        // rustls has already verified the chain to our root; the leaf comes first.
        let client_cert = tls_stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| ClientCertificate {
                der: Arc::from(leaf.as_ref()),
            });
        self.serve_http(TokioIo::new(tls_stream), client_cert).await;
    }

    /// HTTP over an established stream, with what the connection proved attached to every
    /// request: the peer address (axum's `ConnectInfo`) and the client certificate, if any.
    async fn serve_http<I>(self, io: TokioIo<I>, client_cert: Option<ClientCertificate>)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let (router, refusals, shortcut) = (self.router, self.refusals, self.shortcut);
        // The first Host value found valid on this connection: a client sends the same one
        // with every request, which then needs no parsing. (The service is cloned for each
        // request, so this is shared rather than kept in the closure.)
        let valid_host: Arc<std::sync::OnceLock<HeaderValue>> = Arc::default();
        let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            let mut hosts = req.headers().get_all(header::HOST).iter();
            let checked = match (hosts.next(), hosts.next()) {
                (Some(host), None) if valid_host.get() == Some(host) => Ok(()),
                (Some(host), None) => check_host(&req).inspect(|()| {
                    let _ = valid_host.set(host.clone());
                }),
                _ => check_host(&req),
            };
            // Answered here, or routed (which needs the router and the certificate).
            let early = match checked {
                Err(detail) => {
                    tracing::debug!(peer = %peer, detail, "refused a request before routing");
                    Some(refusals.bad_request(detail))
                }
                Ok(()) => shortcut.as_ref().and_then(|answer| answer(&req)),
            };
            let routed = match early {
                Some(answer) => Err(answer),
                None => Ok((router.clone(), client_cert.clone())),
            };
            async move {
                let (router, client_cert) = match routed {
                    Ok(routed) => routed,
                    Err(answer) => return Ok(answer),
                };
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(cert) = client_cert {
                    req.extensions_mut().insert(cert);
                }
                router.oneshot(req).await
            }
        });
        let conn = self
            .http
            .serve_connection_with_upgrades(io, TowerToHyperService::new(service));
        if let Err(e) = self.watcher.watch(conn).await {
            tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn request(version: Version, hosts: &[&[u8]]) -> hyper::Request<()> {
        let mut req = hyper::Request::builder()
            .uri("/healthz")
            .version(version)
            .body(())
            .unwrap();
        for h in hosts {
            req.headers_mut()
                .append(header::HOST, HeaderValue::from_bytes(h).unwrap());
        }
        req
    }

    #[test]
    fn host_rules_of_rfc_9112() {
        use Version as V;
        for (version, hosts, ok) in [
            (V::HTTP_11, &[][..], false),
            (V::HTTP_11, &[&b"ca.internal"[..]][..], true),
            (V::HTTP_11, &[&b"127.0.0.1:8443"[..]][..], true),
            (V::HTTP_11, &[&b"[::1]:8443"[..]][..], true),
            (V::HTTP_11, &[&b""[..]][..], true),
            (V::HTTP_11, &[&b"a"[..], &b"b"[..]][..], false),
            (V::HTTP_11, &[&b"user@ca.internal"[..]][..], false),
            (V::HTTP_11, &[&b"ca internal"[..]][..], false),
            (V::HTTP_11, &[&b"ca.internal/path"[..]][..], false),
            (V::HTTP_10, &[][..], true),
            (V::HTTP_10, &[&b"a"[..], &b"b"[..]][..], false),
            (V::HTTP_2, &[][..], true),
        ] {
            let req = request(version, hosts);
            assert_eq!(check_host(&req).is_ok(), ok, "{version:?} {hosts:?}");
        }
    }
}
