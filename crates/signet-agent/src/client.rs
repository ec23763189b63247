//! The HTTP client shared by everything that talks to a Signet server: the agent
//! (`bootstrap`, `renew`) and the CLI's client commands (`certificate`, `issue` without
//! `--local`, `revoke`, `list`, `ca`).
//!
//! TLS is rustls with the ring provider, trusting only the Signet root(s) named on the
//! command line, never the system store:
//! - `--ca-file root.pem` trusts the certificates in that file;
//! - `--root-fingerprint sha256:HEX` fetches `/v1/ca/root` once without certificate
//!   verification, accepts it only if its SHA-256 matches, and from then on trusts exactly that
//!   root (so every later request is verified normally);
//! - otherwise the saved context's root (`signet context save`), when the context is for
//!   this CA URL;
//! - otherwise the data directory's root (`DIR/root_ca.crt`, which `signet init` wrote; the
//!   caller names it) when it exists.
//!
//! Errors: a 4xx answer becomes [`RefusedByCa`] (exit code 3) carrying the problem document's
//! `detail` and `type`; bad local input is [`Refused`] (exit code 2); anything else is exit
//! code 1 (see [`crate::error::exit_code`]). Credentials never appear in messages.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

pub use crate::error::RootMismatch;
use crate::error::{Refused, RefusedByCa};
pub use crate::roots::{
    CaUrl, Fingerprint, certificate_pem, parse_certificates, read_certificates, single_certificate,
};

/// Environment variable holding the admin token itself (as opposed to a file holding it).
pub const ADMIN_TOKEN_ENV: &str = "SIGNET_ADMIN_TOKEN";
/// How long to wait for the TCP and TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read (a long certificate listing page is far smaller).
const MAX_BODY: usize = 16 << 20;

/// Where the server is and which root to trust: the options every API command shares (the
/// binary's `ClientArgs` holds them as flags, `--ca-url` and so on).
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// The Signet API URL, e.g. https://ca.internal:8443.
    pub ca_url: Option<String>,
    /// Trust the Signet root whose SHA-256 fingerprint is this (sha256:HEX, as `signet init`
    /// prints it; colons and case are ignored).
    pub root_fingerprint: Option<String>,
    /// Trust the root certificate(s) in this PEM file (default: DIR/root_ca.crt if it exists).
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS, e.g. to revoke your own certificate.
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    pub client_key: Option<PathBuf>,
}

/// Where the admin credential comes from (`--admin-token-file`).
#[derive(Debug, Clone, Default)]
pub struct AdminOptions {
    /// File holding the admin token (default: DIR/admin.token if it exists); `-` reads it
    /// from standard input. The token may also be given in the environment variable
    /// SIGNET_ADMIN_TOKEN.
    pub admin_token_file: Option<PathBuf>,
}

/// A bearer credential (admin token or provisioner JWT). Never printed.
#[derive(Clone)]
pub struct Bearer(Zeroizing<String>);

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Bearer([redacted])")
    }
}

impl Bearer {
    /// Check that `token` can travel in an Authorization header; `what` names it in errors.
    pub fn new(token: &str, what: &str) -> anyhow::Result<Bearer> {
        let t = token.trim();
        if t.is_empty() {
            return Err(Refused(format!("{what} is empty")).into());
        }
        if !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Refused(format!(
                "{what} contains characters a token cannot contain (whitespace or non-ASCII)"
            ))
            .into());
        }
        Ok(Bearer(Zeroizing::new(t.to_string())))
    }

    /// The token itself: for the Authorization header and for reading a JWT's claims, never
    /// for printing.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AdminOptions {
    /// The admin token: from --admin-token-file (or SIGNET_ADMIN_TOKEN_FILE), else from
    /// SIGNET_ADMIN_TOKEN, else from `default_file` (the data directory's admin token) when
    /// `use_default_file` and it exists.
    pub fn credential(
        &self,
        default_file: &Path,
        use_default_file: bool,
    ) -> anyhow::Result<Option<Bearer>> {
        Ok(self
            .credential_and_source(default_file, use_default_file)?
            .map(|(b, _)| b))
    }

    /// Like [`AdminOptions::credential`], also saying where the token came from (a file name or
    /// the variable's name, never the token), for telling the user what was used.
    pub fn credential_and_source(
        &self,
        default_file: &Path,
        use_default_file: bool,
    ) -> anyhow::Result<Option<(Bearer, String)>> {
        if let Some(path) = &self.admin_token_file {
            if path.as_os_str() == "-" {
                return read_token_source(path).map(|b| Some((b, "standard input".to_string())));
            }
            return read_token_file(path).map(|b| Some((b, path.display().to_string())));
        }
        if let Ok(t) = std::env::var(ADMIN_TOKEN_ENV)
            && !t.trim().is_empty()
        {
            return Bearer::new(&t, ADMIN_TOKEN_ENV).map(|b| Some((b, ADMIN_TOKEN_ENV.into())));
        }
        if use_default_file && default_file.exists() {
            return read_token_file(default_file)
                .map(|b| Some((b, default_file.display().to_string())));
        }
        Ok(None)
    }

    /// Like [`AdminOptions::credential`], but a missing credential is an error.
    pub fn require(&self, default_file: &Path) -> anyhow::Result<Bearer> {
        self.credential(default_file, true)?.ok_or_else(|| {
            let name = default_file
                .file_name()
                .unwrap_or_default()
                .to_string_lossy();
            let dir = match default_file.parent() {
                Some(d) if !d.as_os_str().is_empty() => d,
                _ => Path::new("."),
            };
            Refused(format!(
                "no admin credential: pass --admin-token-file FILE, set {ADMIN_TOKEN_ENV}, \
                 or use --dir with a data directory holding {name} (looked in {})",
                dir.display()
            ))
            .into()
        })
    }
}

/// Environment variable holding a provisioner (or other bearer) token.
pub const TOKEN_ENV: &str = "SIGNET_TOKEN";

/// A bearer token given on the command line: `--token`, `--token-file FILE` (`-` reads it from
/// standard input), else the `SIGNET_TOKEN` variable. Every command that sends a token it did
/// not mint itself takes it.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// The token (from `signet token`) [env: SIGNET_TOKEN]. Prefer --token-file: a command
    /// line is visible to other users of the machine.
    pub token: Option<String>,
    /// File holding the token; `-` reads it from standard input.
    pub token_file: Option<PathBuf>,
}

impl TokenOptions {
    /// The token, if one was given; an empty or unreadable one is an error.
    pub fn read(&self) -> anyhow::Result<Option<Bearer>> {
        if let Some(t) = &self.token {
            return Bearer::new(t, "--token").map(Some);
        }
        if let Some(path) = &self.token_file {
            return read_token_source(path).map(Some);
        }
        match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => Bearer::new(&t, TOKEN_ENV).map(Some),
            _ => Ok(None),
        }
    }
}

/// A token from a file, or from standard input when `path` is `-`. A provisioner token is
/// short-lived and single-use, so unlike the admin token the file's mode is not checked.
pub fn read_token_source(path: &Path) -> anyhow::Result<Bearer> {
    use std::io::Read;
    let mut text = Zeroizing::new(String::new());
    if path.as_os_str() == "-" {
        std::io::stdin()
            .take(64 * 1024)
            .read_to_string(&mut text)
            .context("reading the token from standard input")?;
        return Bearer::new(&text, "the token on standard input");
    }
    // A missing or unreadable token file is a mistake in the command line (exit 2).
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .map_err(|e| Refused(format!("reading the token file {}: {e}", path.display())))?;
    Bearer::new(&text, &format!("the token in {}", path.display()))
}

/// Read a token file, refusing one that group or others can read (like ssh does with keys).
fn read_token_file(path: &Path) -> anyhow::Result<Bearer> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "{}: mode {mode:o} lets others read the token; run `chmod 600 {}`",
            path.display(),
            path.display()
        );
    }
    let text = Zeroizing::new(
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    );
    Bearer::new(&text, &format!("the token in {}", path.display()))
}

/// The CA URL: `raw` (from `--ca-url` or `SIGNET_CA_URL`) when given, else the saved
/// context's.
pub fn resolve_ca_url(raw: Option<&str>) -> anyhow::Result<CaUrl> {
    if let Some(raw) = raw.filter(|r| !r.trim().is_empty()) {
        return CaUrl::parse(raw);
    }
    match crate::context::load()? {
        Some(ctx) => Ok(ctx.ca_url),
        None => Err(Refused(
            "pass --ca-url https://HOST:PORT (or set SIGNET_CA_URL, or save it once with \
             `signet context save --ca-url URL --root-fingerprint sha256:HEX`)"
                .into(),
        )
        .into()),
    }
}

impl ClientOptions {
    /// The validated `--ca-url`, else the saved context's.
    pub fn ca_url(&self) -> anyhow::Result<CaUrl> {
        resolve_ca_url(self.ca_url.as_deref())
    }

    /// The saved context, when it is for `url` (a context's root is never trusted for
    /// another CA).
    pub fn context_for(&self, url: &CaUrl) -> anyhow::Result<Option<crate::context::SavedContext>> {
        Ok(crate::context::load()?.filter(|ctx| ctx.ca_url == *url))
    }

    /// The pinned root fingerprint, normalised, if one was given.
    pub fn fingerprint(&self) -> anyhow::Result<Option<Fingerprint>> {
        self.root_fingerprint
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(Fingerprint::parse)
            .transpose()
    }

    /// Connect with the usual trust rules (see the module documentation); `default_root` is
    /// the root the data directory holds, the last resort.
    pub async fn connect(&self, default_root: &Path) -> anyhow::Result<Api> {
        Ok(self.connect_with_roots(default_root).await?.0)
    }

    /// Like [`ClientOptions::connect`], also giving the roots the connection trusts.
    pub async fn connect_with_roots(
        &self,
        default_root: &Path,
    ) -> anyhow::Result<(Api, Vec<CertificateDer<'static>>)> {
        let url = self.ca_url()?;
        let fingerprint = self.fingerprint()?;
        let roots = if let Some(file) = &self.ca_file {
            let roots = read_certificates(file)?;
            if let Some(fp) = &fingerprint
                && !roots.iter().any(|r| fp.matches(r))
            {
                return Err(RootMismatch(format!(
                    "ROOT FINGERPRINT MISMATCH: no certificate in {} has the fingerprint {fp} \
                     given by --root-fingerprint",
                    file.display()
                ))
                .into());
            }
            roots
        } else if let Some(fp) = &fingerprint {
            vec![fetch_pinned_root(&url, fp).await?]
        } else if let Some(ctx) = self.context_for(&url)? {
            vec![ctx.root]
        } else {
            let default = default_root;
            if !default.exists() {
                return Err(Refused(format!(
                    "which root should the connection trust? Pass --root-fingerprint sha256:HEX \
                     or --ca-file root.pem, or save a context with `signet context save` (no \
                     saved context for {url}, and no {} found)",
                    default.display()
                ))
                .into());
            }
            read_certificates(default)?
        };
        let api = Api::new(url, &roots, self.client_identity()?)?;
        Ok((api, roots))
    }

    /// The mutual-TLS identity from --client-cert/--client-key, if given.
    pub fn client_identity(&self) -> anyhow::Result<Option<ClientIdentity>> {
        let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) else {
            return Ok(None);
        };
        let chain = read_certificates(cert)?;
        let key = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow!("reading the private key {}: {e}", key.display()))?;
        Ok(Some(ClientIdentity { chain, key }))
    }
}

/// A client certificate chain and its key, for mutual TLS.
pub struct ClientIdentity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn http_client(mut tls: rustls::ClientConfig) -> anyhow::Result<reqwest::Client> {
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("signet/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("building the HTTP client")
}

/// Fetch `/v1/ca/root` without verifying the server's certificate, and accept it only if its
/// SHA-256 is `expected`. The unverified connection carries no credential and nothing else.
pub async fn fetch_pinned_root(
    url: &CaUrl,
    expected: &Fingerprint,
) -> anyhow::Result<CertificateDer<'static>> {
    let provider = provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS configuration")?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(provider)))
        .with_no_client_auth();
    let http = http_client(tls)?;
    let endpoint = url.endpoint("/v1/ca/root");
    let resp = http
        .get(&endpoint)
        .send()
        .await
        .with_context(|| format!("fetching {endpoint}"))?;
    let body = read_body(check(resp).await?).await?;
    let root = single_certificate(&body).context("the server's /v1/ca/root")?;
    if !expected.matches(&root) {
        return Err(RootMismatch(format!(
            "ROOT FINGERPRINT MISMATCH: the server at {url} presented a root with fingerprint {}, \
             not the expected {expected}. Nothing was trusted or written; check the fingerprint, \
             or someone may be intercepting the connection",
            signet_ca::sha256_fingerprint(&root)
        ))
        .into());
    }
    Ok(root)
}

/// Accepts any server certificate, still checking that the handshake is signed by the key in
/// it. Used only to bootstrap trust by fingerprint.
#[derive(Debug)]
struct AnyServerCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An RFC 7807 problem document, as the API sends for every error.
#[derive(Debug, Default, Deserialize)]
pub struct Problem {
    /// Stable problem kind, e.g. `urn:signet:problem:name-denied`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Short summary.
    #[serde(default)]
    pub title: String,
    /// What exactly went wrong.
    #[serde(default)]
    pub detail: String,
}

/// Turn a non-2xx answer into an error: 4xx is [`RefusedByCa`] (exit 3), the rest exit 1.
pub async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = read_body(resp).await.unwrap_or_default();
    let message = describe_failure(status, &body);
    if status.is_client_error() {
        Err(RefusedByCa(message).into())
    } else {
        Err(anyhow!("the server failed: {message}"))
    }
}

/// One line describing a failed response, from its problem document when there is one.
pub fn describe_failure(status: StatusCode, body: &[u8]) -> String {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) if !p.detail.is_empty() || !p.title.is_empty() => {
            let text = if p.detail.is_empty() {
                &p.title
            } else {
                &p.detail
            };
            let mut s = format!("HTTP {}: {}", status.as_u16(), sanitize(text, 1000));
            if !p.kind.is_empty() {
                s.push_str(&format!(" ({})", sanitize(&p.kind, 200)));
            }
            s
        }
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = sanitize(text.trim(), 200);
            if text.is_empty() {
                format!("HTTP {status}")
            } else {
                format!("HTTP {status}: {text}")
            }
        }
    }
}

/// Server-supplied text made safe for a terminal: control characters replaced, length capped.
pub fn sanitize(s: &str, max_chars: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max_chars)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// The body of an answer, refusing one larger than 16 MiB.
pub async fn read_body(mut resp: reqwest::Response) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.context("reading the response")? {
        if body.len() + chunk.len() > MAX_BODY {
            bail!("the response is larger than {MAX_BODY} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A connection to one Signet server, verified against the chosen root(s).
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    url: CaUrl,
}

impl Api {
    /// The underlying HTTP client, for callers that need the raw status and headers.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The server's URL.
    pub fn url(&self) -> &CaUrl {
        &self.url
    }

    /// A client trusting only `roots`, optionally presenting a client certificate.
    pub fn new(
        url: CaUrl,
        roots: &[CertificateDer<'static>],
        identity: Option<ClientIdentity>,
    ) -> anyhow::Result<Api> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store
                .add(root.clone())
                .map_err(|e| anyhow!("cannot trust the given root certificate: {e}"))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS configuration")?
            .with_root_certificates(store);
        let tls = match identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain, id.key)
                .context("loading the client certificate and key")?,
            None => builder.with_no_client_auth(),
        };
        Ok(Api {
            http: http_client(tls)?,
            url,
        })
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        bearer: Option<&Bearer>,
        what: &str,
    ) -> anyhow::Result<Vec<u8>> {
        let req = match bearer {
            Some(b) => req.bearer_auth(b.as_str()),
            None => req,
        };
        let resp = req
            .send()
            .await
            .with_context(|| format!("{what} ({})", self.url))?;
        read_body(check(resp).await?).await
    }

    /// GET a path and return the body as text.
    pub async fn get_text(&self, path: &str, bearer: Option<&Bearer>) -> anyhow::Result<String> {
        let endpoint = self.url.endpoint(path);
        let body = self
            .send(self.http.get(&endpoint), bearer, &format!("GET {path}"))
            .await?;
        String::from_utf8(body).with_context(|| format!("GET {path}: the answer is not UTF-8"))
    }

    /// GET a path with query parameters and decode the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        bearer: Option<&Bearer>,
    ) -> anyhow::Result<T> {
        let endpoint = self.url.endpoint(path);
        let body = self
            .send(
                self.http.get(&endpoint).query(query),
                bearer,
                &format!("GET {path}"),
            )
            .await?;
        serde_json::from_slice(&body).with_context(|| format!("GET {path}: unexpected answer"))
    }

    /// POST a JSON body and decode the JSON answer.
    pub async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        bearer: Option<&Bearer>,
    ) -> anyhow::Result<T> {
        let endpoint = self.url.endpoint(path);
        let answer = self
            .send(
                self.http.post(&endpoint).json(body),
                bearer,
                &format!("POST {path}"),
            )
            .await?;
        serde_json::from_slice(&answer).with_context(|| format!("POST {path}: unexpected answer"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_described_without_control_characters() {
        let body = br#"{"type":"urn:signet:problem:name-denied","title":"Name denied","status":403,"detail":"evil.example.com is not allowed\u001b[31m"}"#;
        let s = describe_failure(StatusCode::FORBIDDEN, body);
        assert_eq!(
            s,
            "HTTP 403: evil.example.com is not allowed [31m (urn:signet:problem:name-denied)"
        );
        let s = describe_failure(StatusCode::BAD_GATEWAY, b"<html>oops</html>");
        assert_eq!(s, "HTTP 502 Bad Gateway: <html>oops</html>");
        assert_eq!(
            describe_failure(StatusCode::INTERNAL_SERVER_ERROR, b""),
            "HTTP 500 Internal Server Error"
        );
    }

    #[test]
    fn bearer_tokens_are_checked_and_never_debug_printed() {
        let b = Bearer::new("  sa_secretvalue\n", "the admin token").expect("valid");
        assert_eq!(b.as_str(), "sa_secretvalue");
        assert!(!format!("{b:?}").contains("secret"));
        assert!(Bearer::new("   ", "x").is_err());
        let e = Bearer::new("sa_a b", "the admin token").expect_err("space");
        assert!(!e.to_string().contains("sa_a"));
    }

    #[test]
    fn admin_token_files_must_be_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "sa_0123456789abcdef0123\n").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let args = AdminOptions {
            admin_token_file: Some(path.clone()),
        };
        let e = args.credential(&path, true).expect_err("0644");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let b = args.credential(&path, true).expect("0600").expect("some");
        assert_eq!(b.as_str(), "sa_0123456789abcdef0123");
        // The default file in DIR is found when asked for.
        let none = AdminOptions {
            admin_token_file: None,
        };
        if std::env::var(ADMIN_TOKEN_ENV).is_err() {
            assert!(none.credential(&path, true).expect("ok").is_some());
            assert!(none.credential(&path, false).expect("ok").is_none());
        }
    }
}
