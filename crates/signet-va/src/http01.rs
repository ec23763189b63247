//! http-01 (RFC 8555 section 8.3, RFC 8738 section 4 for IP addresses): GET the key
//! authorization from `http://{host}:{http01_port}/.well-known/acme-challenge/{token}`,
//! following at most `MAX_REDIRECTS` redirects, each to `http` on port 80 (or the
//! configured http-01 port) or `https` on port 443 (or the configured tls-alpn-01 port).
//! Every hop resolves its own host and checks its own addresses against the network
//! policy. Each hop is one fresh HTTP/1.1 connection; only a 200's body is read, at most
//! `MAX_BODY` bytes of it.

use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use url::Url;

use crate::dial::{Host, dial};
use crate::error::quote;
use crate::name::{Target, is_dns_name};
use crate::{FailureKind, Inner, MAX_BODY, MAX_REDIRECTS, ValidationFailure, ValidationRecord};

const USER_AGENT: &str = concat!("Signet-VA/", env!("CARGO_PKG_VERSION"));

/// hyper's smallest read buffer; it bounds the response head too.
const MAX_HEAD: usize = 16 * 1024;

pub(crate) async fn validate(
    va: &Inner,
    target: &Target,
    token: &str,
    key_authorization: &str,
) -> Result<ValidationRecord, ValidationFailure> {
    let first = format!(
        "http://{}:{}/.well-known/acme-challenge/{token}",
        target.url_host(),
        va.cfg.http01_port
    );
    let mut url = Url::parse(&first).map_err(|e| {
        ValidationFailure::new(
            FailureKind::ServerInternal,
            format!("the http-01 URL {first} is not valid: {e}"),
        )
    })?;
    let mut redirects = 0;
    loop {
        let hop = Hop::new(va, &url, redirects > 0)?;
        let dialed = dial(va, &hop.host, hop.port).await?;
        let answer = if hop.https {
            let sni = match &hop.host {
                Host::Name(name) => ServerName::try_from(name.clone()).map_err(|e| {
                    connection(format!("{name} cannot be sent as a TLS server name: {e}"))
                })?,
                Host::Ip(ip) => ServerName::IpAddress((*ip).into()),
            };
            let tls = TlsConnector::from(Arc::clone(&va.redirect_tls))
                .connect(sni, dialed.stream)
                .await
                .map_err(|e| {
                    ValidationFailure::new(
                        FailureKind::Tls,
                        format!("TLS handshake for {url} ({}) failed: {e}", dialed.used),
                    )
                })?;
            exchange(tls, &hop, &url).await?
        } else {
            exchange(dialed.stream, &hop, &url).await?
        };
        match answer {
            Answer::Redirect(location) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(connection(format!(
                        "too many redirects (more than {MAX_REDIRECTS}) fetching {first}"
                    )));
                }
                url = url.join(&location).map_err(|e| {
                    connection(format!(
                        "{url} redirected to {}, which is not a URL: {e}",
                        quote(location.as_bytes(), 200)
                    ))
                })?;
            }
            Answer::Body(body) => {
                if body.trim_ascii_end() == key_authorization.as_bytes() {
                    return Ok(ValidationRecord {
                        url: Some(url.to_string()),
                        hostname: target.hostname(),
                        port: Some(hop.port),
                        addresses_resolved: dialed.resolved,
                        address_used: Some(dialed.used),
                    });
                }
                return Err(ValidationFailure::new(
                    FailureKind::IncorrectResponse,
                    format!(
                        "the key authorization from {url} does not match this challenge: expected \"{key_authorization}\", got {}",
                        quote(&body, 128)
                    ),
                ));
            }
            Answer::Status(status) => {
                return Err(ValidationFailure::new(
                    FailureKind::Unauthorized,
                    format!("invalid response from {url}: HTTP {status}"),
                ));
            }
        }
    }
}

/// One request's destination, checked.
struct Hop {
    https: bool,
    host: Host,
    port: u16,
    /// The Host header: the URL's host, with the port when it is not the scheme's default.
    authority: String,
    /// Path and query.
    target: String,
}

impl Hop {
    fn new(va: &Inner, url: &Url, redirected: bool) -> Result<Hop, ValidationFailure> {
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(connection(format!(
                    "redirect to {url}: the scheme {other:?} is not http or https"
                )));
            }
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(connection(format!(
                "redirect to a URL with credentials ({}://...)",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                if !is_dns_name(&name) {
                    return Err(connection(format!(
                        "redirect to {url}: the host is not a valid DNS name"
                    )));
                }
                Host::Name(name)
            }
            Some(url::Host::Ipv4(ip)) => Host::Ip(ip.into()),
            Some(url::Host::Ipv6(ip)) => Host::Ip(ip.to_canonical()),
            None => return Err(connection(format!("redirect to {url}: no host"))),
        };
        let port = url
            .port_or_known_default()
            .ok_or_else(|| connection(format!("redirect to {url}: no port")))?;
        if redirected {
            let allowed = if https {
                [443, va.cfg.tls_alpn01_port]
            } else {
                [80, va.cfg.http01_port]
            };
            if !allowed.contains(&port) {
                return Err(connection(format!(
                    "redirect to {url}: only port {} may be used for {}",
                    if allowed[0] == allowed[1] {
                        allowed[0].to_string()
                    } else {
                        format!("{} or {}", allowed[0], allowed[1])
                    },
                    url.scheme()
                )));
            }
        }
        let host_str = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_owned(),
        };
        let target = url[url::Position::BeforePath..url::Position::AfterQuery].to_owned();
        Ok(Hop {
            https,
            host,
            port,
            authority,
            target: if target.is_empty() {
                "/".into()
            } else {
                target
            },
        })
    }
}

enum Answer {
    Redirect(String),
    Body(Bytes),
    Status(StatusCode),
}

/// Ends hyper's connection task when the exchange is over or abandoned (a timeout drops
/// the validation future; the task must not outlive it).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange<T>(io: T, hop: &Hop, url: &Url) -> Result<Answer, ValidationFailure>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: &dyn std::fmt::Display| connection(format!("fetching {url} failed: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_buf_size(MAX_HEAD)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .map_err(|e| failed(&e))?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let request = Request::get(hop.target.as_str())
        .header(header::HOST, hop.authority.as_str())
        .header(header::USER_AGENT, USER_AGENT)
        .header(header::ACCEPT, "*/*")
        .header(header::CONNECTION, "close")
        .body(Empty::new())
        .map_err(|e| failed(&e))?;
    let response = sender.send_request(request).await.map_err(|e| failed(&e))?;
    let status = response.status();
    if matches!(
        status,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    ) {
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                connection(format!(
                    "{url} redirected ({status}) without a usable Location"
                ))
            })?;
        return Ok(Answer::Redirect(location.to_owned()));
    }
    if status != StatusCode::OK {
        return Ok(Answer::Status(status));
    }
    match Limited::new(response.into_body(), MAX_BODY).collect().await {
        Ok(body) => Ok(Answer::Body(body.to_bytes())),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ValidationFailure::new(
                FailureKind::Unauthorized,
                format!("the response from {url} is larger than {MAX_BODY} bytes"),
            ))
        }
        Err(e) => Err(failed(&e)),
    }
}

fn connection(detail: String) -> ValidationFailure {
    ValidationFailure::new(FailureKind::Connection, detail)
}
