//! What `signet bootstrap` (the init container) and `signet renew` (the sidecar) share: the
//! workload's files, keys and CSRs, checking a certificate against `ca.crt`, talking to the
//! CA with retries, and the exit codes.
//!
//! # Files
//!
//! Both commands work on one directory (default `/var/run/signet`):
//! - `ca.crt`: the CA root(s) the workload trusts, PEM (0644);
//! - `tls.key`: the workload's private key, PKCS#8 PEM (0600);
//! - `tls.crt`: the leaf certificate, then the issuing CA and any further intermediates (0644).
//!
//! Each file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so
//! a reader sees either the old or the new contents of a file, never a mix. The order is
//! `ca.crt`, then `tls.key`, then `tls.crt`:
//! - the root is in place before any certificate that chains to it;
//! - the key is in place before the certificate for it. Watchers key on `tls.crt` (and the
//!   `--exec`/`--signal` of `signet renew` runs after both files are written), so a reload
//!   triggered by a new certificate always finds its key. A reader that happens to load in
//!   the instant between the two renames sees a new key with the old certificate; TLS
//!   libraries refuse such a pair at load time ("key does not match certificate") and keep
//!   the configuration they had, so no handshake ever uses a mismatched pair. The reverse order
//!   would allow the same window, but a watcher woken by the new certificate could then load
//!   it with the old key.
//!
//! If the process dies between the two renames, the next run finds a key that does not
//! match the certificate and treats the files as absent (bootstrap issues anew).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, anyhow, bail};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::pki_types::{CertificateDer, UnixTime};
use serde::Deserialize;
use signet_ca::{CertificateInfo, KeyType, OffsetDateTime, SubjectName};
use zeroize::Zeroizing;

use crate::client::{self, Api, Bearer, Fingerprint};
pub use crate::error::{EXIT_CODES_HELP, ExitWith, exit};
use crate::files::write_atomic;

/// The CA root(s), PEM.
pub const CA_FILE: &str = "ca.crt";
/// The private key, PKCS#8 PEM, mode 0600.
pub const KEY_FILE: &str = "tls.key";
/// The leaf, then the issuing CA and further intermediates, PEM.
pub const CERT_FILE: &str = "tls.crt";

/// The default directory of the workload's files.
pub const DEFAULT_DIR: &str = "/var/run/signet";

/// The environment variable naming the workload's directory (`--dir`).
pub const DIR_ENV: &str = "SIGNET_DIR";
/// Its earlier name, still read when `SIGNET_DIR` and `--dir` are not given.
const OLD_DIR_ENV: &str = "SIGNET_OUT";

/// The workload's directory: `--dir` (or `SIGNET_DIR`), else the deprecated `SIGNET_OUT`,
/// else [`DEFAULT_DIR`].
pub fn workload_dir(flag: Option<&Path>) -> PathBuf {
    match flag {
        Some(d) => d.to_path_buf(),
        None => std::env::var_os(OLD_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from),
    }
}

/// The workload's files in one directory.
#[derive(Debug, Clone)]
pub struct Files {
    /// The directory.
    pub dir: PathBuf,
    /// `ca.crt`.
    pub ca: PathBuf,
    /// `tls.key`.
    pub key: PathBuf,
    /// `tls.crt`.
    pub cert: PathBuf,
}

impl Files {
    /// The files in `dir`.
    pub fn new(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            ca: dir.join(CA_FILE),
            key: dir.join(KEY_FILE),
            cert: dir.join(CERT_FILE),
        }
    }

    /// Use these files instead of the ones in the directory, where given.
    pub fn with_paths(
        mut self,
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        ca: Option<PathBuf>,
    ) -> Files {
        if let Some(c) = cert {
            self.cert = c;
        }
        if let Some(k) = key {
            self.key = k;
        }
        if let Some(a) = ca {
            self.ca = a;
        }
        self
    }

    /// Create the directory (0755) if it is missing.
    pub fn create_dir(&self) -> anyhow::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if self.dir.is_dir() {
            return Ok(());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&self.dir)
            .with_context(|| format!("creating {}", self.dir.display()))
    }

    /// Write the roots (`ca.crt`).
    pub fn write_roots(&self, roots: &[CertificateDer<'_>]) -> anyhow::Result<()> {
        write_atomic(&self.ca, pem_chain(roots).as_bytes(), 0o644)
    }

    /// Write the key, then the certificate chain (see the module documentation for why).
    pub fn write_identity(
        &self,
        key_pem: &str,
        chain: &[CertificateDer<'_>],
    ) -> anyhow::Result<()> {
        write_atomic(&self.key, key_pem.as_bytes(), 0o600)?;
        write_atomic(&self.cert, pem_chain(chain).as_bytes(), 0o644)
    }
}

/// A time as RFC 3339 (`2026-12-07T01:20:00Z`), for logs.
pub fn rfc3339(t: OffsetDateTime) -> String {
    signet_ca::rfc3339(t)
}

/// PEM of certificates, one after the other.
pub fn pem_chain(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(|c| client::certificate_pem(c)).collect()
}

/// The certificate, key and roots found in the directory, parsed and matched.
#[derive(Debug, Clone)]
pub struct Current {
    /// The leaf, parsed.
    pub info: CertificateInfo,
    /// `tls.crt`: the leaf, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// `ca.crt`.
    pub roots: Vec<CertificateDer<'static>>,
    /// `tls.key`, which signs renewal tokens.
    pub key: SecretKey,
}

/// A private key that never shows in debug output.
#[derive(Clone)]
pub struct SecretKey(std::sync::Arc<rcgen::KeyPair>);

impl SecretKey {
    /// Hold `key`.
    pub fn new(key: rcgen::KeyPair) -> SecretKey {
        SecretKey(std::sync::Arc::new(key))
    }
}

impl std::ops::Deref for SecretKey {
    type Target = rcgen::KeyPair;
    fn deref(&self) -> &rcgen::KeyPair {
        &self.0
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl Current {
    /// Read the three files and check that the key belongs to the certificate. Does not check
    /// validity (see [`Current::verify`]): renewal must be able to report an expired one.
    pub fn read(files: &Files) -> anyhow::Result<Current> {
        let chain = client::read_certificates(&files.cert)?;
        let roots = client::read_certificates(&files.ca)?;
        let key_pem = Zeroizing::new(
            std::fs::read_to_string(&files.key)
                .with_context(|| format!("reading {}", files.key.display()))?,
        );
        let key = signet_ca::decode_private_key(&key_pem, None)
            .with_context(|| format!("reading the private key {}", files.key.display()))?;
        let leaf = chain
            .first()
            .ok_or_else(|| anyhow!("{} holds no certificate", files.cert.display()))?;
        let info = CertificateInfo::from_der(leaf)
            .with_context(|| format!("reading {}", files.cert.display()))?;
        if rcgen::PublicKeyData::subject_public_key_info(&key) != info.spki_der {
            bail!(
                "{} is not the key of the certificate in {}",
                files.key.display(),
                files.cert.display()
            );
        }
        Ok(Current {
            info,
            chain,
            roots,
            key: SecretKey::new(key),
        })
    }

    /// Whether the chain verifies against `ca.crt` at `now` (signatures, validity, EKU).
    pub fn verify(&self, now: SystemTime) -> anyhow::Result<()> {
        verify_chain(&self.chain, &self.roots, now)
    }

    /// Whether it can authenticate renewal over mTLS (has the clientAuth EKU), ignoring
    /// expiry.
    pub fn can_renew_over_mtls(&self) -> bool {
        let at = SystemTime::UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(self.info.not_before.unix_timestamp().max(0)).unwrap_or(0) + 1,
            );
        is_client_certificate(&self.chain, &self.roots, at)
    }

    /// notAfter - notBefore.
    pub fn lifetime(&self) -> Duration {
        duration_between(self.info.not_before, self.info.not_after)
    }

    /// Time left until notAfter (zero once expired).
    pub fn remaining(&self, now: OffsetDateTime) -> Duration {
        duration_between(now, self.info.not_after)
    }

    /// More than a third of the lifetime left: nothing to do yet.
    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        self.remaining(now) > self.lifetime() / 3
    }

    /// When to renew: at two thirds of the lifetime, brought forward by up to a tenth of the
    /// lifetime by `jitter` (0 to 1), so that workloads started together do not renew together.
    pub fn renewal_time(&self, jitter: f64) -> OffsetDateTime {
        let life = self.lifetime();
        let early = life.mul_f64(0.1 * jitter.clamp(0.0, 1.0));
        self.info.not_before + (life * 2 / 3).saturating_sub(early)
    }

    /// The names in the certificate.
    pub fn names(&self) -> &[SubjectName] {
        &self.info.names
    }

    /// The serial, lowercase hex.
    pub fn serial(&self) -> String {
        self.info.serial.to_hex()
    }
}

fn duration_between(from: OffsetDateTime, to: OffsetDateTime) -> Duration {
    let d = to - from;
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// Verify a chain (leaf first) against `roots` at `now`, as a server or as a client
/// certificate (whichever its EKU allows).
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: SystemTime,
) -> anyhow::Result<()> {
    verify_chain_for(
        chain,
        roots,
        now,
        &[
            webpki::KeyUsage::server_auth(),
            webpki::KeyUsage::client_auth(),
        ],
    )
}

/// Whether the chain verifies as a TLS client certificate, which renewal over mTLS needs (a
/// `server`-profile certificate has only the serverAuth EKU, and the CA refuses it).
pub fn is_client_certificate(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: SystemTime,
) -> bool {
    verify_chain_for(chain, roots, now, &[webpki::KeyUsage::client_auth()]).is_ok()
}

fn verify_chain_for(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: SystemTime,
    usages: &[webpki::KeyUsage],
) -> anyhow::Result<()> {
    let leaf = chain.first().ok_or_else(|| anyhow!("no certificate"))?;
    let ee = webpki::EndEntityCert::try_from(leaf)
        .map_err(|e| anyhow!("the certificate does not parse: {e}"))?;
    let anchors = roots
        .iter()
        .map(|r| {
            webpki::anchor_from_trusted_cert(r)
                .map(|a| a.to_owned())
                .map_err(|e| anyhow!("a root certificate does not parse: {e}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| anyhow!("the clock is before 1970"))?;
    let time = UnixTime::since_unix_epoch(since_epoch);
    let intermediates = &chain[1..];
    let mut last = None;
    for usage in usages {
        match ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            intermediates,
            time,
            *usage,
            None,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    match last {
        Some(e) => bail!("the certificate does not verify against the CA root: {e}"),
        None => bail!("the certificate does not verify against the CA root"),
    }
}

/// Parse `--key-type`: P-256 (default), P-384 or Ed25519.
pub fn parse_key_type(s: &str) -> Result<KeyType, String> {
    s.parse::<KeyType>()
        .map_err(|_| format!("{s:?}: expected P-256, P-384 or Ed25519"))
}

/// Parse a duration flag such as `--timeout 2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|_| format!("{s:?}: expected a duration such as 2m, 90s or 1h"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

/// A fresh private key and its PKCS#8 PEM (Ed25519 in the v1 form OpenSSL 3.0 reads: see
/// `signet_ca::encode_private_key`).
pub fn new_key(kind: KeyType) -> anyhow::Result<(rcgen::KeyPair, Zeroizing<String>)> {
    let key = kind.generate().context("generating the private key")?;
    let pem = signet_ca::encode_private_key(&key, None).context("encoding the private key")?;
    Ok((key, pem))
}

/// A PEM CSR for `key` with `names` as subjectAltNames and an empty subject: the CA takes the
/// names from the SAN (and for some provisioners fills them in itself).
pub fn csr_pem(key: &rcgen::KeyPair, names: &[SubjectName]) -> anyhow::Result<String> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.subject_alt_names = names
        .iter()
        .map(|n| {
            let ia5 =
                |s: String| rcgen::string::Ia5String::try_from(s).map_err(|e| anyhow!("{n}: {e}"));
            Ok(match n {
                SubjectName::Dns(d) => rcgen::SanType::DnsName(ia5(d.to_string())?),
                SubjectName::Ip(ip) => rcgen::SanType::IpAddress(*ip),
                SubjectName::Uri(u) => rcgen::SanType::URI(ia5(u.clone())?),
                SubjectName::Email(e) => rcgen::SanType::Rfc822Name(ia5(e.clone())?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let csr = params.serialize_request(key).context("building the CSR")?;
    csr.pem().context("encoding the CSR")
}

/// The `sans` claim of a JWT, read without verifying it (the CA verifies it). Signet token
/// provisioners put the allowed names there; other tokens (Kubernetes service-account tokens)
/// have none, and the CA derives the names itself.
pub fn token_sans(token: &str) -> Vec<String> {
    use base64::Engine;
    let Some(payload) = token.split('.').nth(1) else {
        return Vec::new();
    };
    let Ok(json) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else {
        return Vec::new();
    };
    #[derive(Deserialize)]
    struct Claims {
        #[serde(default)]
        sans: Vec<String>,
    }
    serde_json::from_slice::<Claims>(&json)
        .map(|c| c.sans)
        .unwrap_or_default()
}

/// `POST /v1/certificates` and `/v1/certificates/renew` answer.
#[derive(Debug, Deserialize)]
pub struct Issued {
    /// Serial, hex.
    pub serial_number: String,
    /// The leaf, PEM.
    pub certificate: String,
    /// The issuing CA and further intermediates, PEM each.
    #[serde(default)]
    pub chain: Vec<String>,
}

impl Issued {
    /// The leaf then the intermediates, after checking that the leaf is for `key` and that the
    /// chain verifies against `roots`.
    pub fn checked_chain(
        &self,
        key: &rcgen::KeyPair,
        roots: &[CertificateDer<'_>],
    ) -> anyhow::Result<(CertificateInfo, Vec<CertificateDer<'static>>)> {
        let leaf = client::single_certificate(self.certificate.as_bytes())
            .context("the certificate in the CA's answer")?;
        let info =
            CertificateInfo::from_der(&leaf).context("the certificate in the CA's answer")?;
        if info.spki_der != rcgen::PublicKeyData::subject_public_key_info(key) {
            bail!("the CA returned a certificate for another public key than the CSR's");
        }
        let mut chain = vec![leaf];
        for pem in &self.chain {
            chain.extend(
                client::parse_certificates(pem.as_bytes())
                    .context("the chain in the CA's answer")?,
            );
        }
        verify_chain(&chain, roots, SystemTime::now())
            .context("the certificate the CA returned")?;
        Ok((info, chain))
    }
}

/// Why an exchange with the CA did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// Worth retrying: unreachable, timed out, HTTP 5xx, 408 or 429.
    Transient {
        /// What happened.
        message: String,
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The CA refused (HTTP 4xx): the same request will be refused again.
    Refused(String),
    /// The CA's root is not the pinned one.
    RootMismatch(String),
    /// Anything else (a malformed answer, local I/O): not retried.
    Fatal(anyhow::Error),
    /// Bad local input found during an attempt (a missing token file): not retried.
    Usage(anyhow::Error),
}

impl Failure {
    /// The error that ends the process, with its exit code.
    pub fn into_exit(self) -> anyhow::Error {
        match self {
            Failure::Transient { message, .. } => ExitWith::error(exit::FAILED, message),
            Failure::Refused(m) => {
                ExitWith::error(exit::REFUSED, format!("refused by the CA: {m}"))
            }
            Failure::RootMismatch(m) => ExitWith::error(exit::ROOT_MISMATCH, m),
            Failure::Fatal(e) => ExitWith::error(exit::FAILED, crate::error::describe(&e)),
            Failure::Usage(e) => ExitWith::error(exit::USAGE, crate::error::describe(&e)),
        }
    }

    /// One line for the log.
    pub fn message(&self) -> String {
        match self {
            Failure::Transient { message, .. } => message.clone(),
            Failure::Refused(m) => format!("refused by the CA: {m}"),
            Failure::RootMismatch(m) => m.clone(),
            Failure::Fatal(e) | Failure::Usage(e) => crate::error::describe(e),
        }
    }

    /// Classify an error from the shared client (fetching the pinned root).
    pub fn from_client_error(e: anyhow::Error) -> Failure {
        if let Some(m) = e.downcast_ref::<crate::error::RootMismatch>() {
            return Failure::RootMismatch(m.0.clone());
        }
        if let Some(r) = e.downcast_ref::<crate::error::RefusedByCa>() {
            return Failure::Refused(r.0.clone());
        }
        if let Some(r) = e.downcast_ref::<crate::error::Refused>() {
            return Failure::Usage(anyhow!("{}", r.0));
        }
        // Unreachable, timed out, a 5xx, or garbage from something in front of the CA while
        // it starts: all worth another try.
        Failure::Transient {
            message: crate::error::describe(&e),
            retry_after: None,
        }
    }
}

/// The error and its causes on one line (reqwest hides "connection refused" in its sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            let _ = write!(s, ": {text}");
        }
        source = cause.source();
    }
    s
}

/// `Retry-After` in delta-seconds (an HTTP date is ignored), at most an hour.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(3600)))
}

/// POST a JSON body and decode an [`Issued`] answer, classifying every failure.
pub async fn post_for_certificate<B: serde::Serialize>(
    api: &Api,
    path: &str,
    body: &B,
    bearer: Option<&Bearer>,
) -> Result<Issued, Failure> {
    let endpoint = api.url().endpoint(path);
    let mut req = api.http().post(&endpoint).json(body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b.as_str());
    }
    let resp = req.send().await.map_err(|e| Failure::Transient {
        message: format!("POST {endpoint}: {}", error_chain(&e)),
        retry_after: None,
    })?;
    let status = resp.status();
    let wait = retry_after(resp.headers());
    let body = client::read_body(resp)
        .await
        .map_err(|e| Failure::Transient {
            message: format!("POST {endpoint}: {}", crate::error::describe(&e)),
            retry_after: None,
        })?;
    if status.is_success() {
        return serde_json::from_slice(&body)
            .map_err(|e| Failure::Fatal(anyhow!("POST {path}: unexpected answer: {e}")));
    }
    let message = format!("POST {path}: {}", client::describe_failure(status, &body));
    if status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || !status.is_client_error()
    {
        Err(Failure::Transient {
            message,
            retry_after: wait,
        })
    } else {
        Err(Failure::Refused(message))
    }
}

/// A random number in [0, 1) from the system RNG (0.5 if it fails, which ring never does on
/// Linux).
pub fn random_fraction() -> f64 {
    let mut b = [0u8; 8];
    if SystemRandom::new().fill(&mut b).is_err() {
        return 0.5;
    }
    // 53 random bits, the precision of an f64 mantissa.
    (u64::from_be_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

/// Capped exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling from
/// `base` up to `cap`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    /// Start at `base`, never above `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            next: base,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.cap);
        d / 2 + (d / 2).mul_f64(random_fraction())
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.next = self.base;
    }
}

/// Retries of one operation until a deadline.
#[derive(Debug)]
pub struct Retry {
    what: &'static str,
    started: Instant,
    deadline: Instant,
    backoff: Backoff,
    attempts: u32,
}

impl Retry {
    /// Retry `what` for at most `timeout`.
    pub fn new(what: &'static str, timeout: Duration) -> Retry {
        let started = Instant::now();
        Retry {
            what,
            started,
            deadline: started + timeout,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(30)),
            attempts: 0,
        }
    }

    /// Time left for the next attempt; `None` once the deadline has passed.
    pub fn start_attempt(&mut self) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        self.attempts += 1;
        Some(left)
    }

    /// The error when the time has run out, after `last` failed.
    pub fn gave_up(&self, last: &str) -> anyhow::Error {
        ExitWith::error(
            exit::FAILED,
            format!(
                "{}: gave up after {} attempt(s) in {:.1}s (--timeout): {last}",
                self.what,
                self.attempts,
                self.started.elapsed().as_secs_f64()
            ),
        )
    }

    /// After a transient failure, wait before the next attempt (the server's Retry-After if it
    /// sent one, else the backoff), or give up when that would pass the deadline.
    pub async fn wait(
        &mut self,
        message: &str,
        retry_after: Option<Duration>,
    ) -> anyhow::Result<()> {
        let delay = retry_after.unwrap_or_else(|| self.backoff.next_delay());
        let left = self.deadline.saturating_duration_since(Instant::now());
        if delay >= left {
            return Err(self.gave_up(message));
        }
        tracing::warn!(
            attempt = self.attempts,
            retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "{} failed, will retry: {message}",
            self.what
        );
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// How the CA's root is trusted.
#[derive(Debug, Clone)]
pub enum Trust {
    /// `--ca-file`: these roots (optionally checked against a fingerprint already).
    Roots(Vec<CertificateDer<'static>>),
    /// `--root-fingerprint`: fetch `/v1/ca/root` and accept it only with this fingerprint.
    Pinned(Fingerprint),
}

impl Trust {
    /// From `--ca-file` and `--root-fingerprint`. Both: the file must hold the fingerprint.
    pub fn from_args(ca_file: Option<&Path>, fingerprint: Option<&str>) -> anyhow::Result<Trust> {
        let fingerprint = fingerprint
            .filter(|s| !s.trim().is_empty())
            .map(Fingerprint::parse)
            .transpose()
            .map_err(|e| ExitWith::error(exit::USAGE, crate::error::describe(&e)))?;
        match (ca_file, fingerprint) {
            (Some(file), fp) => {
                let roots = client::read_certificates(file).map_err(|e| {
                    ExitWith::error(
                        exit::USAGE,
                        format!("--ca-file: {}", crate::error::describe(&e)),
                    )
                })?;
                if let Some(fp) = fp
                    && !roots.iter().any(|r| fp.matches(r))
                {
                    return Err(ExitWith::error(
                        exit::ROOT_MISMATCH,
                        format!(
                            "ROOT FINGERPRINT MISMATCH: no certificate in {} has the fingerprint \
                             {fp} given by --root-fingerprint",
                            file.display()
                        ),
                    ));
                }
                Ok(Trust::Roots(roots))
            }
            (None, Some(fp)) => Ok(Trust::Pinned(fp)),
            (None, None) => Err(ExitWith::error(
                exit::USAGE,
                "which CA root should be trusted? Pass --root-fingerprint sha256:HEX (or set \
                 SIGNET_ROOT_FINGERPRINT) or --ca-file root.pem (SIGNET_CA_FILE)",
            )),
        }
    }

    /// Whether roots already on disk are the ones this trust names.
    pub fn accepts(&self, roots: &[CertificateDer<'_>]) -> bool {
        match self {
            Trust::Roots(expected) => {
                expected.len() == roots.len()
                    && expected
                        .iter()
                        .zip(roots)
                        .all(|(a, b)| a.as_ref() == b.as_ref())
            }
            Trust::Pinned(fp) => roots.len() == 1 && fp.matches(&roots[0]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(8));
        let bounds = [1u64, 2, 4, 8, 8, 8];
        for max in bounds {
            let d = b.next_delay();
            let max = Duration::from_secs(max);
            assert!(
                d >= max / 2 && d <= max,
                "{d:?} not in [{:?}, {max:?}]",
                max / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_secs(1));
        for _ in 0..100 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f));
        }
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_capped() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, "7".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(RETRY_AFTER, "999999".parse().expect("header"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3600)));
        h.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().expect("header"),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn token_sans_are_read_without_verification() {
        use base64::Engine;
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let token = format!(
            "{}.{}.sig",
            enc(r#"{"alg":"ES256"}"#),
            enc(r#"{"sub":"x","sans":["a.internal","10.0.0.1"]}"#)
        );
        assert_eq!(token_sans(&token), ["a.internal", "10.0.0.1"]);
        let k8s = format!(
            "{}.{}.sig",
            enc("{}"),
            enc(r#"{"sub":"system:serviceaccount:a:b"}"#)
        );
        assert!(token_sans(&k8s).is_empty());
        assert!(token_sans("garbage").is_empty());
        assert!(token_sans("a.!!!.c").is_empty());
    }

    #[test]
    fn csrs_carry_the_names_and_no_subject() {
        let (key, _) = new_key(KeyType::P256).expect("key");
        let names = vec![
            SubjectName::parse_loose("api.internal").expect("dns"),
            SubjectName::parse_loose("10.1.2.3").expect("ip"),
            SubjectName::parse_loose("spiffe://cluster.local/ns/a/sa/b").expect("uri"),
        ];
        let pem = csr_pem(&key, &names).expect("csr");
        let csr = signet_ca::Csr::from_pem(&pem).expect("parses and verifies");
        assert_eq!(csr.common_name(), None);
        assert_eq!(csr.names(), names.as_slice());
        let (ed, _) = new_key(KeyType::Ed25519).expect("key");
        let csr = signet_ca::Csr::from_pem(&csr_pem(&ed, &[]).expect("csr")).expect("ed25519");
        assert!(csr.names().is_empty());
    }

    #[test]
    fn ed25519_keys_are_written_as_pkcs8_v1_and_read_back() {
        for _ in 0..8 {
            let (key, pem) = new_key(KeyType::Ed25519).expect("key");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = signet_ca::decode_private_key(&pem, None).expect("reads back");
            assert_eq!(
                rcgen::PublicKeyData::subject_public_key_info(&back),
                rcgen::PublicKeyData::subject_public_key_info(&key)
            );
            let (label, der) = pem_rfc7468::decode_vec(pem.as_bytes()).expect("pem");
            assert_eq!(label, "PRIVATE KEY");
            assert_eq!(der.len(), 48);
            assert_eq!(der[4], 0, "version v1");
        }
    }

    #[test]
    fn key_types_parse_as_written_in_the_help() {
        assert_eq!(parse_key_type("P-256"), Ok(KeyType::P256));
        assert_eq!(parse_key_type("p-384"), Ok(KeyType::P384));
        assert_eq!(parse_key_type("Ed25519"), Ok(KeyType::Ed25519));
        assert!(parse_key_type("rsa").is_err());
        assert!(parse_duration("0s").is_err());
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}
