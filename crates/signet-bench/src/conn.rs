//! One keep-alive connection per client, on hyper's connection API.
//!
//! The load generator shares the machine with the server it measures, so
//! every microsecond it spends per request is taken from the server. A
//! pooled client (reqwest) parses the URL, looks up and returns a pooled
//! connection, and runs its retry and timeout layers on every request; a
//! client here owns exactly one connection and only writes the request and
//! reads the answer. Nothing is checked less: the caller still verifies every
//! body.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;

/// How long one request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the clients connect, parsed once from the base URL.
pub struct Target {
    /// `scheme://host:port`, what every request URL must start with.
    origin: String,
    /// As the URL has it, for the `Host` header.
    authority: String,
    /// `host:port` (`[v6]:port`) to connect to.
    address: String,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    http2: bool,
}

impl Target {
    /// `url` is any URL on the server (its path is ignored); `tls` is needed
    /// for `https`.
    pub fn new(
        url: &str,
        tls: Option<&rustls::ClientConfig>,
        http2: bool,
    ) -> anyhow::Result<Target> {
        // http's own URI parser (hyper's), not a hand-written one.
        let uri: hyper::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        let (Some(scheme), Some(authority), Some(host)) =
            (uri.scheme_str(), uri.authority(), uri.host())
        else {
            bail!("not an absolute URL: {url}");
        };
        if authority.as_str().contains('@') {
            bail!("unsupported URL authority in {url}");
        }
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        // `host()` keeps an IPv6 literal's brackets, which a TLS server name does not take.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tls = match scheme {
            "http" => None,
            "https" => {
                let mut cfg = tls
                    .context("https needs a CA certificate (--cacert)")?
                    .clone();
                cfg.alpn_protocols = if http2 {
                    vec![b"h2".to_vec()]
                } else {
                    vec![b"http/1.1".to_vec()]
                };
                let name = ServerName::try_from(bare.to_owned()).context("server name")?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(cfg)), name))
            }
            other => bail!("unsupported scheme {other}"),
        };
        let address = format!("{host}:{port}");
        Ok(Target {
            origin: format!("{scheme}://{authority}"),
            authority: authority.to_string(),
            address,
            tls,
            http2,
        })
    }

    /// The path and query of `url`, which must be on this target.
    fn path_of<'u>(&self, url: &'u str) -> anyhow::Result<&'u str> {
        match url.strip_prefix(self.origin.as_str()) {
            Some("") => Ok("/"),
            Some(p) if p.starts_with('/') => Ok(p),
            _ => bail!("{url} is not on {}", self.origin),
        }
    }
}

enum Sender {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A client: one connection, opened on first use and again after it fails.
pub struct Conn {
    target: Arc<Target>,
    sender: Option<Sender>,
}

impl Conn {
    pub fn new(target: Arc<Target>) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn connect(&self) -> anyhow::Result<Sender> {
        let tcp = tokio::net::TcpStream::connect(&self.target.address)
            .await
            .with_context(|| format!("connecting to {}", self.target.address))?;
        tcp.set_nodelay(true)?;
        match &self.target.tls {
            None => self.handshake(TokioIo::new(tcp)).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .context("TLS handshake")?;
                self.handshake(TokioIo::new(tls)).await
            }
        }
    }

    async fn handshake<T>(&self, io: TokioIo<T>) -> anyhow::Result<Sender>
    where
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        if self.target.http2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .context("HTTP/2 handshake")?;
            tokio::spawn(conn);
            Ok(Sender::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await.context("HTTP/1 handshake")?;
            tokio::spawn(conn);
            Ok(Sender::H1(sender))
        }
    }

    /// Sends one request (`url` on this client's target) and reads the whole
    /// answer: status and body.
    pub async fn send(
        &mut self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let result =
            tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(method, url, headers, body))
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {REQUEST_TIMEOUT:?}")));
        if result.is_err() {
            // Start over on a new connection next time.
            self.sender = None;
        }
        result
    }

    async fn exchange(
        &mut self,
        method: hyper::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(u16, Bytes)> {
        let path = self.target.path_of(url)?;
        let closed = match &self.sender {
            None => true,
            Some(Sender::H1(s)) => s.is_closed(),
            Some(Sender::H2(s)) => s.is_closed(),
        };
        if closed {
            self.sender = Some(self.connect().await?);
        }
        let mut req = hyper::Request::builder().method(method);
        req = match self.sender {
            // HTTP/2 takes :scheme and :authority from an absolute URI.
            Some(Sender::H2(_)) => req.uri(url),
            _ => req
                .uri(path)
                .header(hyper::header::HOST, self.target.authority.as_str()),
        };
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(body)).context("building the request")?;
        let resp = match self.sender.as_mut() {
            Some(Sender::H1(s)) => {
                s.ready().await.context("connection")?;
                s.send_request(req).await
            }
            Some(Sender::H2(s)) => {
                s.ready().await.context("connection")?;
                s.send_request(req).await
            }
            None => bail!("no connection"),
        }
        .context("request")?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.context("body")?.to_bytes();
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_hosts_ports_and_paths() -> anyhow::Result<()> {
        let t = Target::new("http://127.0.0.1:18080/ocsp", None, false)?;
        assert_eq!(
            (t.address.as_str(), t.authority.as_str()),
            ("127.0.0.1:18080", "127.0.0.1:18080")
        );
        assert_eq!(
            t.path_of("http://127.0.0.1:18080/ocsp/AQID?x=1")?,
            "/ocsp/AQID?x=1"
        );
        assert_eq!(t.path_of("http://127.0.0.1:18080")?, "/");
        assert!(t.path_of("http://127.0.0.1:1808/ocsp").is_err());
        assert!(t.path_of("http://127.0.0.1:180800/ocsp").is_err());

        let t = Target::new("http://[::1]:8080/x", None, false)?;
        assert_eq!(
            (t.address.as_str(), t.authority.as_str()),
            ("[::1]:8080", "[::1]:8080")
        );
        let t = Target::new("http://[::1]/x", None, false)?;
        assert_eq!(
            (t.address.as_str(), t.authority.as_str()),
            ("[::1]:80", "[::1]")
        );
        let t = Target::new("http://ca.internal", None, false)?;
        assert_eq!(t.address, "ca.internal:80");

        assert!(
            Target::new("https://ca.internal", None, false).is_err(),
            "https needs a CA"
        );
        assert!(Target::new("ftp://ca.internal", None, false).is_err());
        assert!(Target::new("http://user@ca.internal", None, false).is_err());
        assert!(Target::new("http://[::1", None, false).is_err());
        assert!(Target::new("ca.internal", None, false).is_err());
        Ok(())
    }
}
