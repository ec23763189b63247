//! `signet.toml`: parsed completely, with unknown keys refused, before anything else runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use signet_api::ProvisionerConfig;
use signet_ca::{IssuanceUrls, Lifetime, Policy, Profile, ProfileLimits, SubjectName};

/// Environment variable that overrides `[database] url`.
pub const DATABASE_URL_ENV: &str = "SIGNET_DATABASE_URL";
/// Environment variable holding the CA key passphrase.
pub const PASSPHRASE_ENV: &str = "SIGNET_CA_PASSPHRASE";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ca: CaSection,
    #[serde(default)]
    pub database: DatabaseSection,
    #[serde(default)]
    pub urls: UrlsSection,
    #[serde(default)]
    pub profiles: ProfilesSection,
    #[serde(default = "default_policy")]
    pub policy: Policy,
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub responder: ResponderSection,
    /// How long certificates stay in the hot tables after they expire.
    #[serde(default)]
    pub retention: RetentionSection,
    /// Partitioned (sharded) and delta CRLs.
    #[serde(default)]
    pub crl: CrlSection,
    /// The operator console at `/ui`.
    #[serde(default)]
    pub console: ConsoleSection,
    /// The PKCS#11 module holding CA keys named by `pkcs11:` URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkcs11: Option<Pkcs11Section>,
    /// Who may request certificates from the API, each under its own policy.
    #[serde(default)]
    pub provisioners: Vec<ProvisionerConfig>,
    /// The directory relative paths in the file resolve against (the file's own directory).
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaSection {
    pub name: String,
    #[serde(default = "default_root_cert")]
    pub root_cert: PathBuf,
    #[serde(default = "default_issuing_cert")]
    pub issuing_cert: PathBuf,
    #[serde(default = "default_issuing_key")]
    pub issuing_key: PathBuf,
}

/// `[pkcs11]`: the module holding CA keys named by `pkcs11:` URIs (`[ca] issuing_key`,
/// `--root-key`), and where the token's user PIN comes from. The PIN itself is never in
/// this file: `pin_file` names a file holding it, else `SIGNET_PKCS11_PIN` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Section {
    /// The module (a shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// A file holding the user PIN (first line), mode 0600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_file: Option<PathBuf>,
    /// How many sessions may sign at once (each a PKCS#11 session of its own).
    #[serde(default = "default_pkcs11_sessions")]
    pub sessions: usize,
}

fn default_pkcs11_sessions() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 2)
}

impl Pkcs11Section {
    /// The user PIN: from `pin_file`, else from `SIGNET_PKCS11_PIN`.
    pub fn pin(&self) -> anyhow::Result<signet_pkcs11::Pin> {
        match &self.pin_file {
            Some(file) => Ok(signet_pkcs11::Pin::from_file(file)?),
            None => signet_pkcs11::Pin::from_env().with_context(|| {
                format!(
                    "the token's PIN: set [pkcs11] pin_file or {}",
                    signet_pkcs11::PIN_ENV
                )
            }),
        }
    }
}

/// Where a CA key is kept: a PKCS#8 file, or a key in a PKCS#11 token named by its URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    /// A PKCS#8 PEM file.
    File(PathBuf),
    /// A key in a token (RFC 7512 URI).
    Pkcs11(signet_pkcs11::Pkcs11Uri),
}

impl KeyRef {
    /// A key setting or argument: a `pkcs11:` URI, else a file path.
    pub fn parse(value: &Path) -> anyhow::Result<KeyRef> {
        match value.to_str() {
            Some(s) if signet_pkcs11::Pkcs11Uri::is_uri(s) => Ok(KeyRef::Pkcs11(s.parse()?)),
            _ => Ok(KeyRef::File(value.to_path_buf())),
        }
    }

    /// Whether `value` is written as a `pkcs11:` URI.
    pub fn is_uri(value: &Path) -> bool {
        value.to_str().is_some_and(signet_pkcs11::Pkcs11Uri::is_uri)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    pub url: String,
    /// How long one database operation of an API request may take, waiting for a pooled
    /// connection included, before the request is answered 503 `database-unavailable`: the
    /// bound on a database that hangs rather than fails (a frozen server or host, a lock
    /// held for ever, a pool with no free connection).
    #[serde(
        default = "default_database_timeout",
        skip_serializing_if = "is_default_database_timeout"
    )]
    pub timeout: ConfigDuration,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: "sqlite://signet.db".into(),
            timeout: default_database_timeout(),
        }
    }
}

fn default_database_timeout() -> ConfigDuration {
    ConfigDuration(signet_api::DATABASE_TIMEOUT)
}

fn is_default_database_timeout(value: &ConfigDuration) -> bool {
    *value == default_database_timeout()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlsSection {
    pub ocsp: Option<String>,
    pub ca_issuers: Option<String>,
    pub crl: Option<String>,
}

impl Default for UrlsSection {
    fn default() -> Self {
        UrlsSection {
            ocsp: Some("http://127.0.0.1:8080/ocsp".into()),
            ca_issuers: Some("http://127.0.0.1:8080/ca/issuing.crt".into()),
            crl: Some("http://127.0.0.1:8080/crl/issuing.crl".into()),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesSection {
    #[serde(default)]
    pub server: ProfileLimits,
    #[serde(default)]
    pub client: ProfileLimits,
    #[serde(default)]
    pub peer: ProfileLimits,
}

/// `[server]`: how `signet serve` listens and names itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// Socket address to listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL clients reach this CA at, and the audience provisioner tokens must name.
    /// Derived from `listen` when unset.
    #[serde(default)]
    pub url: Option<String>,
    /// Names for the server's own certificate on top of localhost, 127.0.0.1 and ::1.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// The admin bearer token; relative to the configuration's directory.
    #[serde(default = "default_admin_token_file")]
    pub admin_token_file: PathBuf,
    /// The read-only auditor token (the console and the admin API's listings and audit
    /// log, never a change); relative to the configuration's directory. Unset: no auditor.
    /// `signet serve` creates it (0600) when it is set and missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditor_token_file: Option<PathBuf>,
    /// `[server.limits]`: connection and request limits.
    #[serde(default, skip_serializing_if = "LimitsSection::is_default")]
    pub limits: LimitsSection,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: default_listen(),
            url: None,
            hostnames: vec![],
            admin_token_file: default_admin_token_file(),
            auditor_token_file: None,
            limits: LimitsSection::default(),
        }
    }
}

/// `[server.limits]`: what one client may hold of the server. The connection limits apply
/// to every listener of the process (the API's, and the responder's); `request_timeout` to
/// the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSection {
    /// Open connections at most, per listener; beyond it, new ones wait in the kernel's
    /// backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// How long a client has to complete the TLS handshake.
    #[serde(default = "default_handshake_timeout")]
    pub handshake_timeout: ConfigDuration,
    /// How long an HTTP/1 client has to send a request's headers.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: ConfigDuration,
    /// How long a whole request may take (a body that stalls is cut off with 408).
    #[serde(default = "default_request_timeout")]
    pub request_timeout: ConfigDuration,
    /// Streams one HTTP/2 connection may have open at once.
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Largest request head: HTTP/1 request line and headers (answered 431 beyond it), or an
    /// HTTP/2 header list (also 431).
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_connections: default_max_connections(),
            handshake_timeout: default_handshake_timeout(),
            header_read_timeout: default_header_read_timeout(),
            request_timeout: default_request_timeout(),
            http2_max_concurrent_streams: default_http2_max_concurrent_streams(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

fn default_max_connections() -> usize {
    4096
}
fn default_handshake_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}
fn default_header_read_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}
fn default_request_timeout() -> ConfigDuration {
    ConfigDuration(signet_api::REQUEST_TIMEOUT)
}
fn default_http2_max_concurrent_streams() -> u32 {
    128
}
fn default_max_header_bytes() -> u32 {
    16 * 1024
}

impl LimitsSection {
    fn is_default(&self) -> bool {
        *self == LimitsSection::default()
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !(1..=1_000_000).contains(&self.max_connections) {
            bail!(
                "[server.limits] max_connections = {} must be 1 to 1000000",
                self.max_connections
            );
        }
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(3600));
        for (key, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if value.0 < min || value.0 > max {
                bail!("[server.limits] {key} = \"{value}\" must be 100ms to 1h");
            }
        }
        if !(1..=10_000).contains(&self.http2_max_concurrent_streams) {
            bail!(
                "[server.limits] http2_max_concurrent_streams = {} must be 1 to 10000",
                self.http2_max_concurrent_streams
            );
        }
        // hyper's HTTP/1 read buffer cannot be smaller than 8 KiB.
        if !(8 * 1024..=1024 * 1024).contains(&self.max_header_bytes) {
            bail!(
                "[server.limits] max_header_bytes = {} must be 8192 to 1048576",
                self.max_header_bytes
            );
        }
        Ok(())
    }
}

/// A duration written like `"10s"`, `"500ms"` or `"1m30s"`: the one syntax of every
/// duration in this file ([`signet_ca::parse_duration`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl ConfigDuration {
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl std::fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&signet_ca::format_duration(self.0))
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;

    /// Signet's one duration syntax ([`signet_ca::parse_duration`]), as for lifetimes.
    fn from_str(text: &str) -> Result<Self, String> {
        let d = signet_ca::parse_duration(text)?;
        // A timeout or interval of more than a year is a typo, not a setting.
        if d > Duration::from_secs(366 * 86_400) {
            return Err(format!("{text:?} is longer than a year"));
        }
        Ok(ConfigDuration(d))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn default_listen() -> String {
    "127.0.0.1:8443".into()
}
fn default_admin_token_file() -> PathBuf {
    crate::datadir::ADMIN_TOKEN.into()
}

impl ServerSection {
    /// `listen` as a socket address (checked by [`Config::load`]).
    pub fn listen_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listen.parse().with_context(|| {
            format!(
                "[server] listen = {:?} is not an address like 127.0.0.1:8443 or [::]:8443",
                self.listen
            )
        })
    }

    /// The CA's URL: `url` if set, else derived from `listen` (`plain`: http, else https).
    pub fn ca_url(&self, listen: SocketAddr, plain: bool) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => format!("{}://{listen}", if plain { "http" } else { "https" }),
        }
    }
}

/// Where the OCSP responder and CRL download point listen when `[responder] listen` is not set.
pub const DEFAULT_RESPONDER_LISTEN: &str = "127.0.0.1:8080";

/// `[responder]`: the OCSP responder and CRL publisher that `signet serve` runs next to the API
/// (and `signet responder` runs alone).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponderSection {
    /// Socket address of the plain-HTTP listener, or "off". Unset: [`DEFAULT_RESPONDER_LISTEN`],
    /// skipped with a warning if that port is taken.
    #[serde(default)]
    pub listen: Option<String>,
    /// nextUpdate − thisUpdate of OCSP responses; cached ones are re-signed at half of it.
    #[serde(default = "default_ocsp_validity")]
    pub ocsp_validity: Lifetime,
    /// Lifetime of the delegated OCSP signing certificate; a new key and certificate replace
    /// it at half-life.
    #[serde(default = "default_signer_lifetime")]
    pub signer_lifetime: Lifetime,
    /// How often a CRL is published even when nothing was revoked.
    #[serde(default = "default_crl_interval")]
    pub crl_interval: Lifetime,
    /// nextUpdate − thisUpdate of each CRL.
    #[serde(default = "default_crl_validity")]
    pub crl_validity: Lifetime,
    /// Threads serving OCSP and CRL requests, in `signet serve` (apart from the API's
    /// runtime, so issuance load does not delay them) and in `signet responder`; each
    /// connection is served wholly on one of them.
    #[serde(default = "default_responder_threads")]
    pub threads: usize,
}

impl Default for ResponderSection {
    fn default() -> Self {
        ResponderSection {
            listen: None,
            ocsp_validity: default_ocsp_validity(),
            signer_lifetime: default_signer_lifetime(),
            crl_interval: default_crl_interval(),
            crl_validity: default_crl_validity(),
            threads: default_responder_threads(),
        }
    }
}

fn default_ocsp_validity() -> Lifetime {
    Lifetime::from_hours(4)
}
fn default_signer_lifetime() -> Lifetime {
    Lifetime::from_hours(24)
}
fn default_crl_interval() -> Lifetime {
    Lifetime::from_hours(1)
}
fn default_responder_threads() -> usize {
    1
}

fn default_crl_validity() -> Lifetime {
    Lifetime::from_hours(24)
}

/// Where the responder listens, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponderListen {
    /// Not configured: the default address, if it is free.
    Default(SocketAddr),
    /// Configured (`[responder] listen` or `--responder-listen`): must be bound.
    Explicit(SocketAddr),
    /// "off".
    Off,
}

impl ResponderListen {
    /// Parses an address or "off".
    pub fn parse(key: &str, value: &str) -> anyhow::Result<ResponderListen> {
        if value.eq_ignore_ascii_case("off") {
            return Ok(ResponderListen::Off);
        }
        value
            .parse()
            .map(ResponderListen::Explicit)
            .with_context(|| {
                format!("{key} = {value:?} is not an address like 127.0.0.1:8080, or \"off\"")
            })
    }
}

impl ResponderSection {
    /// `listen` as configured (checked by [`Config::load`]).
    pub fn listen_addr(&self) -> anyhow::Result<ResponderListen> {
        match &self.listen {
            Some(value) => ResponderListen::parse("[responder] listen", value),
            None => Ok(ResponderListen::Default(
                DEFAULT_RESPONDER_LISTEN
                    .parse()
                    .context("the default responder address")?,
            )),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.listen_addr()?;
        if self.signer_lifetime.duration() > signet_ca::OCSP_SIGNER_MAX_LIFETIME {
            bail!(
                "[responder] signer_lifetime {} is longer than the {} a delegated OCSP signer may have",
                self.signer_lifetime,
                Lifetime::new(signet_ca::OCSP_SIGNER_MAX_LIFETIME)?
            );
        }
        // Rotation at half-life must leave a response's whole validity inside the signer's.
        if self.ocsp_validity.duration() * 2 > self.signer_lifetime.duration() {
            bail!(
                "[responder] ocsp_validity {} must be at most half of signer_lifetime {}",
                self.ocsp_validity,
                self.signer_lifetime
            );
        }
        if self.crl_interval >= self.crl_validity {
            bail!(
                "[responder] crl_interval {} must be shorter than crl_validity {}",
                self.crl_interval,
                self.crl_validity
            );
        }
        if !(1..=256).contains(&self.threads) {
            bail!("[responder] threads must be 1 to 256, not {}", self.threads);
        }
        Ok(())
    }
}

/// `[crl]`: partitioned and delta CRLs (RFC 5280 sections 5.2.5 and 5.2.4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrlSection {
    /// How many shards new certificates' revocations are spread over, each its own CRL at
    /// its own URL (named in the certificate's CRL distribution point). 0 (the default):
    /// one full CRL, as before.
    #[serde(default)]
    pub shards: u32,
    /// Publish delta CRLs: on a revocation only the delta of the CRL concerned is re-signed,
    /// the base CRLs every `[responder] crl_interval`; new certificates carry a Freshest CRL
    /// pointer.
    #[serde(default)]
    pub delta: bool,
}

/// The largest `[crl] shards`.
pub const MAX_CRL_SHARDS: u32 = 4096;

impl CrlSection {
    fn validate(&self, crl_url: Option<&str>) -> anyhow::Result<()> {
        if self.shards > MAX_CRL_SHARDS {
            bail!(
                "[crl] shards = {} is more than {MAX_CRL_SHARDS}",
                self.shards
            );
        }
        if (self.shards > 0 || self.delta) && crl_url.is_none() {
            bail!("[crl] shards and delta need [urls] crl: the CRLs' URLs are made from it");
        }
        Ok(())
    }
}

/// What `[retention] mode` does with certificates expired longer than `expired_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RetentionModeSetting {
    /// Moved to the `certificates_archive` table.
    Archive,
    /// Deleted.
    Delete,
    /// Kept in the hot tables for ever (no sweep).
    Off,
}

/// `[console]`: the operator console `signet serve` serves at `/ui` on its HTTPS listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSection {
    /// Whether `/ui` is served (default true).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// `[retention]`: certificates whose notAfter lies more than `expired_after` back leave the
/// hot tables (`signet serve` sweeps every `interval`, on one replica at a time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSection {
    #[serde(default = "default_retention_mode")]
    pub mode: RetentionModeSetting,
    #[serde(default = "default_expired_after")]
    pub expired_after: Lifetime,
    #[serde(default = "default_retention_interval")]
    pub interval: ConfigDuration,
}

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            mode: default_retention_mode(),
            expired_after: default_expired_after(),
            interval: default_retention_interval(),
        }
    }
}

fn default_retention_mode() -> RetentionModeSetting {
    RetentionModeSetting::Archive
}
fn default_expired_after() -> Lifetime {
    Lifetime::from_hours(30 * 24)
}
fn default_retention_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(3600))
}

impl RetentionSection {
    fn validate(&self) -> anyhow::Result<()> {
        if self.interval.0 < Duration::from_secs(1) {
            bail!(
                "[retention] interval = \"{}\" must be at least 1s",
                self.interval
            );
        }
        Ok(())
    }
}

/// Checks that `url` is an absolute http(s) URL in plain ASCII.
fn check_http_url(key: &str, url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    if !matches!(rest, Some(host) if !host.is_empty())
        || !url.is_ascii()
        || url.contains(char::is_whitespace)
    {
        bail!("{key} = {url:?} is not an http(s) URL");
    }
    Ok(())
}

/// Checks that a database URL names a backend Signet speaks.
pub fn check_database_url(db: &str) -> anyhow::Result<()> {
    if !(db.starts_with("sqlite:")
        || db.starts_with("postgres://")
        || db.starts_with("postgresql://"))
    {
        bail!(
            "database URL must start with sqlite:// or postgres:// (check [database] url, {DATABASE_URL_ENV} or --database-url)"
        );
    }
    Ok(())
}

/// Checks the extra names of the server's own certificate: DNS names or IP addresses,
/// no wildcards.
pub fn check_server_hostname(name: &str) -> anyhow::Result<()> {
    match SubjectName::parse_host(name) {
        Ok(SubjectName::Dns(dns)) if dns.is_wildcard() => {
            bail!(
                "server hostname {name:?}: wildcard names are not used for the server's certificate"
            )
        }
        Ok(_) => Ok(()),
        Err(e) => bail!("server hostname {name:?}: {e}"),
    }
}

impl ProfilesSection {
    pub fn limits(&self, profile: Profile) -> &ProfileLimits {
        match profile {
            Profile::Server => &self.server,
            Profile::Client => &self.client,
            Profile::Peer => &self.peer,
        }
    }
}

fn default_root_cert() -> PathBuf {
    crate::datadir::ROOT_CERT.into()
}
fn default_issuing_cert() -> PathBuf {
    crate::datadir::ISSUING_CERT.into()
}
fn default_issuing_key() -> PathBuf {
    crate::datadir::ISSUING_KEY.into()
}

/// The policy `signet init` writes: the usual internal names, private address ranges and
/// the cluster's SPIFFE trust domain. No wildcards.
pub fn default_policy() -> Policy {
    let parse = |s: &str| s.parse().ok();
    Policy {
        dns: [
            "localhost",
            "*.local",
            "*.internal",
            "*.svc",
            "*.svc.cluster.local",
        ]
        .into_iter()
        .filter_map(parse)
        .collect(),
        ip: [
            "127.0.0.0/8",
            "::1/128",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fc00::/7",
        ]
        .into_iter()
        .filter_map(|s| s.parse().ok())
        .collect(),
        uri_prefixes: vec!["spiffe://cluster.local/".into()],
        email: vec![],
        allow_wildcard_names: false,
        profiles: Profile::ALL.to_vec(),
        max_ttl: None,
    }
}

impl Config {
    /// Read and fully validate `path`. Relative paths inside resolve against its directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Config::parse(&text, path)
    }

    /// Parse and fully validate `text` as if it were the contents of `path`.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Config> {
        let mut cfg: Config = toml::from_str(text)
            .with_context(|| format!("{} is not a valid Signet configuration", path.display()))?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let base =
            std::path::absolute(base).with_context(|| format!("resolving {}", base.display()))?;
        cfg.resolve_paths(&base);
        cfg.base_dir = base;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Load `DIR/signet.toml`.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Config> {
        let path = crate::datadir::DataDir::new(dir).config();
        if !path.exists() {
            bail!(
                "{} does not exist: run `signet init --dir {}` first",
                path.display(),
                dir.display()
            );
        }
        Config::load(&path)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let issuing_key =
            (!KeyRef::is_uri(&self.ca.issuing_key)).then_some(&mut self.ca.issuing_key);
        let pin_file = self.pkcs11.as_mut().and_then(|p| p.pin_file.as_mut());
        for p in [
            Some(&mut self.ca.root_cert),
            Some(&mut self.ca.issuing_cert),
            issuing_key,
            Some(&mut self.server.admin_token_file),
            self.server.auditor_token_file.as_mut(),
            pin_file,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if let Some(rel) = self.database.url.strip_prefix("sqlite://") {
            let (file, query) = rel
                .split_once('?')
                .map_or((rel, None), |(f, q)| (f, Some(q)));
            if !file.starts_with('/') && !file.is_empty() && file != ":memory:" {
                let abs = base.join(file);
                self.database.url = match query {
                    Some(q) => format!("sqlite://{}?{q}", abs.display()),
                    None => format!("sqlite://{}", abs.display()),
                };
            }
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.ca.name.trim().is_empty() {
            bail!("[ca] name must not be empty");
        }
        if let KeyRef::Pkcs11(uri) =
            KeyRef::parse(&self.ca.issuing_key).context("[ca] issuing_key")?
            && uri.module_path.is_none()
            && self.pkcs11.is_none()
        {
            bail!(
                "[ca] issuing_key is a key in a PKCS#11 token: name the module in [pkcs11] module"
            );
        }
        if let Some(p) = &self.pkcs11
            && !(1..=1024).contains(&p.sessions)
        {
            bail!("[pkcs11] sessions = {} must be 1 to 1024", p.sessions);
        }
        for (section, limits) in [
            ("server", &self.profiles.server),
            ("client", &self.profiles.client),
            ("peer", &self.profiles.peer),
        ] {
            if limits.default_ttl > limits.max_ttl {
                bail!(
                    "[profiles.{section}] default_ttl {} is longer than max_ttl {}",
                    limits.default_ttl,
                    limits.max_ttl
                );
            }
        }
        for (key, url) in [
            ("ocsp", &self.urls.ocsp),
            ("ca_issuers", &self.urls.ca_issuers),
            ("crl", &self.urls.crl),
        ] {
            if let Some(u) = url {
                check_http_url(&format!("[urls] {key}"), u)?;
            }
        }
        self.server.listen_addr()?;
        self.server.limits.validate()?;
        let timeout = self.database.timeout;
        if timeout.0 < Duration::from_millis(100) || timeout.0 > Duration::from_secs(3600) {
            bail!("[database] timeout = \"{timeout}\" must be 100ms to 1h");
        }
        self.responder.validate()?;
        self.retention.validate()?;
        self.crl.validate(self.urls.crl.as_deref())?;
        if let Some(url) = &self.server.url {
            check_http_url("[server] url", url)?;
        }
        for name in &self.server.hostnames {
            check_server_hostname(name).context("[server] hostnames")?;
        }
        if self.server.admin_token_file.as_os_str().is_empty() {
            bail!("[server] admin_token_file must not be empty");
        }
        let mut names = std::collections::BTreeSet::new();
        for p in &self.provisioners {
            if p.name.trim().is_empty() {
                bail!("[[provisioners]] name must not be empty");
            }
            if !names.insert(p.name.as_str()) {
                bail!("[[provisioners]] name {:?} is used twice", p.name);
            }
        }
        check_database_url(&self.database_url())
    }

    /// The database to use: `SIGNET_DATABASE_URL` when set, else `[database] url`.
    pub fn database_url(&self) -> String {
        std::env::var(DATABASE_URL_ENV)
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| self.database.url.clone())
    }

    pub fn issuance_urls(&self) -> IssuanceUrls {
        IssuanceUrls {
            ocsp: self.urls.ocsp.clone(),
            ca_issuers: self.urls.ca_issuers.clone(),
            crl: self.urls.crl.clone(),
            crl_shards: self.crl.shards,
            delta_crls: self.crl.delta,
        }
    }
}

/// What the first `signet serve` was told on its command line and in its environment, written
/// into the `signet.toml` it creates so that later starts (and the other commands) use the
/// same: the addresses it listens on, its database, its certificate's names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--responder-listen` (an address or "off"); not given when `None`.
    pub responder_listen: Option<ResponderListen>,
    /// `--database-url` or `SIGNET_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--hostname`, repeated.
    pub hostnames: Vec<String>,
    /// The address the responder given by `--responder-listen` got (port 0 becomes the
    /// port bound): where `[urls]` send relying parties.
    pub responder_bound: Option<SocketAddr>,
    /// `init --key-store pkcs11`: the issuing key's URI and the `[pkcs11]` section.
    pub pkcs11: Option<RecordedPkcs11>,
}

/// What `init --key-store pkcs11` (or `--import-key pkcs11:…`) writes into `signet.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedPkcs11 {
    /// `[ca] issuing_key`: the issuing CA key's URI, when it is in the token.
    pub issuing_key: Option<String>,
    /// `[pkcs11] module`.
    pub module: PathBuf,
    /// `[pkcs11] pin_file`, when the PIN came from a file.
    pub pin_file: Option<PathBuf>,
}

impl Recorded {
    /// Where certificates send relying parties for OCSP, the issuer's certificate and CRLs:
    /// the responder's address (as bound) when it was given and is not a wildcard (nor
    /// "off"), else the default responder address.
    fn responder_base(&self) -> String {
        match self.responder_listen {
            Some(ResponderListen::Explicit(addr)) if !addr.ip().is_unspecified() => {
                format!("http://{}", self.responder_bound.unwrap_or(addr))
            }
            _ => format!("http://{DEFAULT_RESPONDER_LISTEN}"),
        }
    }
}

/// Whether a database URL carries a password (`user:password@`, or a `password=` query
/// parameter): a configuration holding it must be readable by its owner only.
pub fn database_url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let authority = authority.split('/').next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo
        || query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("password"))
        })
}

/// The commented `signet.toml` for a new CA named `name`: every default spelled out, with
/// what a first `signet serve` was told (`recorded`) in place of the defaults it overrides.
pub fn render(name: &str, recorded: &Recorded) -> String {
    // Values are serialised as TOML strings, so quotes and backslashes are escaped.
    let string = |s: &str| toml::Value::String(s.to_string()).to_string();
    const GIVEN: &str = "   # given to the first `signet serve`";
    let listen = match recorded.listen {
        Some(addr) => format!("listen = {}{GIVEN}", string(&addr.to_string())),
        None => "listen = \"127.0.0.1:8443\"".to_string(),
    };
    let database = match &recorded.database_url {
        Some(url) => format!("url = {}{GIVEN}", string(url)),
        None => "url = \"sqlite://signet.db\"".to_string(),
    };
    let hostnames = if recorded.hostnames.is_empty() {
        "hostnames = []".to_string()
    } else {
        let list: Vec<String> = recorded.hostnames.iter().map(|h| string(h)).collect();
        format!("hostnames = [{}]{GIVEN}", list.join(", "))
    };
    let responder = match recorded.responder_listen {
        Some(ResponderListen::Explicit(addr)) => {
            format!("listen = {}{GIVEN}", string(&addr.to_string()))
        }
        Some(ResponderListen::Off) => format!("listen = \"off\"{GIVEN}"),
        Some(ResponderListen::Default(_)) | None => {
            format!("# listen = \"{DEFAULT_RESPONDER_LISTEN}\"")
        }
    };
    let default_key = "issuing_key = \"issuing_ca.key\"".to_string();
    let (issuing_key, pkcs11) = match &recorded.pkcs11 {
        Some(p) => {
            let pin = match &p.pin_file {
                Some(f) => format!("pin_file = {}", string(&f.to_string_lossy())),
                None => format!(
                    "# pin_file = \"pkcs11.pin\"   # else the PIN comes from {}",
                    signet_pkcs11::PIN_ENV
                ),
            };
            (
                p.issuing_key
                    .as_ref()
                    .map_or(default_key, |k| format!("issuing_key = {}", string(k))),
                format!(
                    "[pkcs11]\n# The PKCS#11 module holding the CA keys named by pkcs11: URIs, and the \
                     token's\n# user PIN (a file holding it; else the {} environment \
                     variable).\nmodule = {}\n{pin}\n# sessions = 8   # signatures at once (default: twice the CPUs)\n",
                    signet_pkcs11::PIN_ENV,
                    string(&p.module.to_string_lossy())
                ),
            )
        }
        None => (
            default_key,
            format!(
                "# A key kept in a PKCS#11 token (an HSM) is named by its RFC 7512 URI instead, with\n\
                 # the module below; the token's user PIN comes from pin_file or {}:\n\
                 # issuing_key = \"pkcs11:token=signet;object=issuing-ca\"\n\
                 # [pkcs11]\n\
                 # module = \"/usr/lib/softhsm/libsofthsm2.so\"\n\
                 # pin_file = \"pkcs11.pin\"\n",
                signet_pkcs11::PIN_ENV
            ),
        ),
    };
    let markers = [
        ("@NAME@", string(name)),
        ("@ISSUING_KEY@", issuing_key),
        ("@PKCS11@", pkcs11),
        ("@LISTEN@", listen),
        ("@DATABASE_URL@", database),
        ("@HOSTNAMES@", hostnames),
        ("@RESPONDER_LISTEN@", responder),
        ("@URLS@", recorded.responder_base()),
    ];
    // One pass over the template, so that a value holding a marker's text stays as it is.
    let mut text = String::with_capacity(DEFAULT_TEMPLATE.len() + 256);
    let mut rest = DEFAULT_TEMPLATE;
    while let Some(at) = rest.find('@') {
        text.push_str(&rest[..at]);
        rest = &rest[at..];
        match markers.iter().find(|(m, _)| rest.starts_with(m)) {
            Some((marker, value)) => {
                text.push_str(value);
                rest = &rest[marker.len()..];
            }
            None => {
                text.push('@');
                rest = &rest[1..];
            }
        }
    }
    text.push_str(rest);
    text
}

const DEFAULT_TEMPLATE: &str = r#"# Signet configuration. Every setting below is at its default; unknown keys are errors.
# Relative paths are relative to this file's directory.

[ca]
# Shown in the CA certificates' subjects.
name = @NAME@
# The self-signed root. Its key (root_ca.key) is never read by Signet after `init`:
# move it offline.
root_cert = "root_ca.crt"
# The issuing CA certificate (then any intermediates above it, root excluded) and its key.
# The key is PKCS#8 PEM, mode 0600; if encrypted, the passphrase comes from
# the SIGNET_CA_PASSPHRASE environment variable.
issuing_cert = "issuing_ca.crt"
@ISSUING_KEY@
@PKCS11@
[database]
# SQLite file (embedded default) or PostgreSQL, e.g. "postgres://signet@db.internal/signet".
# The SIGNET_DATABASE_URL environment variable overrides this.
@DATABASE_URL@
# timeout = "10s"   # one database operation of a request, at most; then 503 database-unavailable

[urls]
# Written into every issued certificate: Authority Information Access (OCSP responder and
# CA issuer certificate) and CRL Distribution Point. Relying parties fetch these over HTTP.
ocsp = "@URLS@/ocsp"
ca_issuers = "@URLS@/ca/issuing.crt"
crl = "@URLS@/crl/issuing.crl"

# Lifetimes per profile. server: EKU serverAuth; client: EKU clientAuth; peer: both.
# Durations are written like "90m", "24h", "7d".
[profiles.server]
default_ttl = "24h"
max_ttl = "7d"

[profiles.client]
default_ttl = "24h"
max_ttl = "7d"

[profiles.peer]
default_ttl = "24h"
max_ttl = "7d"

# Which names may be issued (here: by `signet issue --local`; API provisioners carry their own).
[policy]
# "*.example.com" allows any name under example.com (at any depth), "api.example.com"
# exactly that name, "*" any name.
dns = ["localhost", "*.local", "*.internal", "*.svc", "*.svc.cluster.local"]
# CIDR ranges for IP address names.
ip = ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
# URI prefixes, e.g. SPIFFE IDs. A prefix without a trailing "/" matches itself or itself + "/...".
uri_prefixes = ["spiffe://cluster.local/"]
# Email addresses: "@example.com" for any mailbox there, or exact addresses.
email = []
# Whether wildcard names like "*.internal" may be issued at all.
allow_wildcard_names = false
profiles = ["server", "client", "peer"]
# An overall lifetime cap on top of each profile's max_ttl, e.g. max_ttl = "48h".
# max_ttl = "7d"

# `signet serve`: the REST API over HTTPS, with a certificate from this CA.
[server]
# The socket address to listen on; --listen overrides it.
@LISTEN@
# The URL clients reach the CA at, and the audience provisioner tokens must name.
# Unset, it is derived from the listen address: "https://" + listen.
# url = "https://127.0.0.1:8443"
# DNS names or IP addresses for the server's own certificate, on top of localhost,
# 127.0.0.1 and ::1. --hostname (repeatable) replaces this list.
@HOSTNAMES@
# The admin bearer token (mode 0600). `signet serve` creates it when it is missing.
admin_token_file = "admin.token"
# A read-only auditor token (mode 0600): signs in to the console and reads the admin API's
# listings and audit log, but can never issue or revoke. Created when set and missing.
# auditor_token_file = "auditor.token"

# Connection and request limits (of the API's listener and the responder's).
# [server.limits]
# max_connections = 4096                # open connections at most; more wait in the backlog
# handshake_timeout = "10s"             # to complete the TLS handshake
# header_read_timeout = "30s"           # to send an HTTP/1 request's headers
# request_timeout = "30s"               # for a whole request (a stalled body gets 408)
# http2_max_concurrent_streams = 128    # open streams per HTTP/2 connection
# max_header_bytes = 16384              # request line and headers (HTTP/1) or header list (HTTP/2)

# The OCSP responder and CRL download point, over plain HTTP, that `signet serve` runs next
# to the API (`signet responder` runs it alone). OCSP answers are signed by a delegated
# certificate whose key never leaves memory; CRLs are signed by the issuing CA.
[responder]
# The socket address to listen on, or "off"; --responder-listen overrides it. Unset, it is
# 127.0.0.1:8080 (where the [urls] above point), skipped with a warning if that port is taken.
@RESPONDER_LISTEN@
# nextUpdate - thisUpdate of OCSP responses. Cached responses are re-signed at half of it.
ocsp_validity = "4h"
# Lifetime of the delegated OCSP signing certificate; it is replaced at half-life.
signer_lifetime = "24h"
# A CRL is published on every revocation, and at least this often.
crl_interval = "1h"
# nextUpdate - thisUpdate of each CRL.
crl_validity = "24h"
# Threads serving OCSP and CRL requests (in `signet serve` apart from the API's, and in
# `signet responder`), each connection wholly on one of them. One thread answers about as
# many cached OCSP GETs as one nginx worker serving the same bytes (BENCHMARKS.md); more
# help on larger machines or when many requests carry a nonce.
# threads = 1

# Retention: certificates whose notAfter lies more than expired_after back leave the hot
# tables, so the database stops growing at a steady issuance rate. OCSP then answers
# "unknown" for them and CRLs no longer list them (RFC 5280 allows dropping expired
# entries); the audit log keeps every row. `signet serve` sweeps every interval, in
# batches of 1000 rows, on one replica at a time.
[retention]
# "archive" (moved to the certificates_archive table), "delete", or "off" (kept for ever).
mode = "archive"
expired_after = "30d"
interval = "1h"

# CRLs. By default the CA publishes one full CRL (at [urls] crl) listing every revoked,
# unexpired certificate. With shards = N, new certificates are spread over N CRL shards
# by serial; each certificate's CRL distribution point names its shard's URL
# (/crl/shard/<key id>/<n>.crl) and each shard's CRL carries that URL as its Issuing
# Distribution Point; a revocation re-signs only its shard. 64 keeps every shard under
# 1 MB with 1,000,000 revoked unexpired certificates (about 42 bytes each). The full CRL
# is published as long as an unexpired certificate names it. /crl/index.json lists them.
# With delta = true, delta CRLs (RFC 5280 5.2.4) are published too, and new certificates
# carry a Freshest CRL pointer to them.
[crl]
shards = 0
delta = false

# The operator console at /ui on the HTTPS listener: sign in with the admin token (or the
# auditor token above) for the overview, certificate search, revocation and the audit log.
[console]
enabled = true

# Provisioners: who may request certificates from the API, each under its own policy.
# When there is none, `signet serve` creates a token provisioner named "default" (its key
# in provisioners/default.key, its public key in provisioners/default.pub) and adds it here.
# [[provisioners]]
# name = "default"
# type = "token"                                 # signed tokens, verified with public_key_file
# public_key_file = "provisioners/default.pub"   # SPKI PEM
# [provisioners.policy]                          # same keys as [policy] above
# dns = ["*.internal"]
#
# A Kubernetes cluster's workloads, vouched for by their projected service-account tokens
# (`signet provisioner add kubernetes` writes such an entry). A token selects the provisioner
# whose issuer is its `iss`; it is verified with the cluster key its `kid` names. Tokens are
# not single-use (the kubelet reuses them), but one older than max_token_age is refused.
# [[provisioners]]
# name = "k8s"
# type = "kubernetes"
# issuer = "https://kubernetes.default.svc.cluster.local"  # the cluster's --service-account-issuer
# audience = "signet"                         # the audience of the projected token volume
# jwks_file = "provisioners/k8s.jwks.json"    # `kubectl get --raw /openid/v1/jwks`, or inline: jwks = '''{...}'''
# namespaces = ["prod"]                       # namespaces allowed (unset: any)
# service_accounts = ["prod/api"]             # "namespace/name" allowed (unset: any)
# trust_domain = "cluster.local"              # {trust_domain} in the SPIFFE ID
# names = ["{sa}.{ns}.svc", "{sa}.{ns}.svc.cluster.local", "spiffe://{trust_domain}/ns/{ns}/sa/{sa}"]
# max_token_age = "1h"                        # by iat; at least the token volume's expirationSeconds
# [provisioners.policy]                       # names beyond the templates (none by default)
# profiles = ["peer", "client", "server"]     # a request without a profile gets "peer"
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn render_default_for_tests(name: &str) -> String {
        render(name, &Recorded::default())
    }

    #[test]
    fn the_written_default_parses_to_the_built_in_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        std::fs::write(&path, render_default_for_tests("Acme \"Internal\" CA")).expect("write");
        let cfg = Config::load(&path).expect("parses");
        assert_eq!(cfg.ca.name, "Acme \"Internal\" CA");
        assert_eq!(cfg.profiles, ProfilesSection::default());
        assert_eq!(cfg.urls, UrlsSection::default());
        assert_eq!(cfg.policy, default_policy());
        assert_eq!(
            cfg.server,
            ServerSection {
                admin_token_file: dir.path().join("admin.token"),
                ..ServerSection::default()
            }
        );
        assert_eq!(cfg.responder, ResponderSection::default());
        assert_eq!(cfg.retention, RetentionSection::default());
        assert_eq!(cfg.crl, CrlSection::default());
        assert_eq!((cfg.crl.shards, cfg.crl.delta), (0, false));
        assert_eq!(cfg.retention.mode, RetentionModeSetting::Archive);
        assert_eq!(
            cfg.retention.expired_after.duration(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(cfg.retention.interval.duration(), Duration::from_secs(3600));
        assert_eq!(
            cfg.responder.listen_addr().expect("responder listen"),
            ResponderListen::Default("127.0.0.1:8080".parse().expect("addr"))
        );
        assert!(cfg.provisioners.is_empty());
        assert_eq!(cfg.base_dir, dir.path());
        let listen = cfg.server.listen_addr().expect("listen");
        assert_eq!(cfg.server.ca_url(listen, false), "https://127.0.0.1:8443");
        assert_eq!(cfg.ca.issuing_key, dir.path().join("issuing_ca.key"));
        assert_eq!(
            cfg.database.url,
            format!("sqlite://{}", dir.path().join("signet.db").display())
        );
    }

    #[test]
    fn what_the_first_start_was_told_is_written_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        let recorded = Recorded {
            listen: Some("127.0.0.1:9443".parse().expect("addr")),
            responder_listen: Some(ResponderListen::Explicit(
                "[::1]:9090".parse().expect("addr"),
            )),
            database_url: Some("postgres://signet@db.internal/signet?x=\"@URLS@\"".into()),
            hostnames: vec!["ca.internal".into(), "10.0.0.7".into()],
            responder_bound: None,
            pkcs11: None,
        };
        let text = render("x", &recorded);
        let cfg = Config::parse(&text, &path).expect("parses");
        assert_eq!(cfg.server.listen, "127.0.0.1:9443");
        assert_eq!(cfg.server.hostnames, ["ca.internal", "10.0.0.7"]);
        assert_eq!(
            cfg.responder.listen_addr().expect("listen"),
            ResponderListen::Explicit("[::1]:9090".parse().expect("addr"))
        );
        // Written as given, markers and quotes included.
        assert_eq!(
            cfg.database.url,
            "postgres://signet@db.internal/signet?x=\"@URLS@\""
        );
        assert_eq!(cfg.urls.ocsp.as_deref(), Some("http://[::1]:9090/ocsp"));
        assert_eq!(
            cfg.urls.ca_issuers.as_deref(),
            Some("http://[::1]:9090/ca/issuing.crt")
        );
        assert_eq!(
            cfg.urls.crl.as_deref(),
            Some("http://[::1]:9090/crl/issuing.crl")
        );
        assert!(
            text.contains("listen = \"127.0.0.1:9443\"   # given to the first `signet serve`"),
            "{text}"
        );

        // A wildcard responder address names no host clients could use: the defaults stay
        // (and serve warns); "off" is recorded as off.
        for (given, listen) in [
            (
                ResponderListen::Explicit("0.0.0.0:9090".parse().expect("addr")),
                ResponderListen::Explicit("0.0.0.0:9090".parse().expect("addr")),
            ),
            (ResponderListen::Off, ResponderListen::Off),
        ] {
            let recorded = Recorded {
                responder_listen: Some(given),
                ..Recorded::default()
            };
            let cfg = Config::parse(&render("x", &recorded), &path).expect("parses");
            assert_eq!(cfg.urls, UrlsSection::default());
            assert_eq!(cfg.responder.listen_addr().expect("listen"), listen);
        }
    }

    #[test]
    fn passwords_in_database_urls_are_recognised() {
        for url in [
            "postgres://signet:secret@db/signet",
            "postgresql://signet:@db/signet",
            "postgres:///signet?host=/run/postgresql&password=secret",
            "postgres://db/signet?sslmode=require&PASSWORD=secret",
        ] {
            assert!(database_url_has_password(url), "{url}");
        }
        for url in [
            "sqlite://signet.db",
            "sqlite:///var/lib/signet/a:b.db",
            "postgres://signet@db/signet",
            "postgres://db:5432/signet?user=signet",
            "postgres:///signet?host=/run/postgresql&passfile=/x",
        ] {
            assert!(!database_url_has_password(url), "{url}");
        }
    }

    #[test]
    fn the_commented_limits_example_parses_to_the_defaults() {
        let text = render_default_for_tests("x");
        let start = text.find("# [server.limits]").expect("example");
        let example: String = text[start..]
            .lines()
            .take_while(|l| l.starts_with("# "))
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let doc = format!("[ca]\nname = \"x\"\n{example}\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::parse(&doc, &dir.path().join("signet.toml")).expect("parses");
        assert_eq!(cfg.server.limits, LimitsSection::default());
        let doc = "[ca]\nname = \"x\"\n[server.limits]\nmax_connections = 4\nrequest_timeout = \"1500ms\"\nmax_header_bytes = 8192\n";
        let cfg = Config::parse(doc, &dir.path().join("signet.toml")).expect("parses");
        assert_eq!(cfg.server.limits.max_connections, 4);
        assert_eq!(
            cfg.server.limits.request_timeout.duration(),
            Duration::from_millis(1500)
        );
        assert_eq!(cfg.server.limits.max_header_bytes, 8192);
        assert_eq!(
            cfg.server.limits.handshake_timeout,
            default_handshake_timeout()
        );
    }

    #[test]
    fn limit_durations_parse_and_print_back() {
        for (text, ms) in [
            ("10s", 10_000),
            ("500ms", 500),
            ("1m 30s", 90_000),
            ("1m30s", 90_000),
            ("2 seconds", 2_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
            (" 1500ms ", 1_500),
        ] {
            let d: ConfigDuration = text.parse().expect(text);
            assert_eq!(d.0, Duration::from_millis(ms), "{text}");
            assert_eq!(d.to_string().parse::<ConfigDuration>().expect("again"), d);
        }
        for bad in ["", "10", "s", "10 fortnights", "-1s", "99999999999h"] {
            assert!(bad.parse::<ConfigDuration>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_commented_kubernetes_example_parses() {
        let text = render_default_for_tests("x");
        let start = text.find("# name = \"k8s\"").expect("example");
        let example: String = text[start..]
            .lines()
            .map(|l| l.strip_prefix("# ").unwrap_or(l))
            .collect::<Vec<_>>()
            .join("\n");
        let doc = format!("[ca]\nname = \"x\"\n[[provisioners]]\n{example}\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = Config::parse(&doc, &dir.path().join("signet.toml")).expect("parses");
        let p = &cfg.provisioners[0];
        assert_eq!(p.kind, signet_api::ProvisionerKind::Kubernetes);
        assert_eq!(p.audience.as_deref(), Some("signet"));
        assert_eq!(p.service_accounts, vec!["prod/api"]);
        assert_eq!(
            p.names.as_deref(),
            Some(&signet_api::DEFAULT_NAME_TEMPLATES.map(String::from)[..])
        );
    }

    #[test]
    fn the_database_timeout_defaults_to_ten_seconds_and_parses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        let cfg = Config::parse(&render_default_for_tests("x"), &path).expect("parses");
        assert_eq!(cfg.database.timeout.duration(), Duration::from_secs(10));
        let doc = "[ca]\nname = \"x\"\n[database]\nurl = \"sqlite://x.db\"\ntimeout = \"2s\"\n";
        let cfg = Config::parse(doc, &path).expect("parses");
        assert_eq!(cfg.database.timeout.duration(), Duration::from_secs(2));
    }

    #[test]
    fn crl_shards_and_deltas_reach_issuance() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        let doc = "[ca]\nname = \"x\"\n[crl]\nshards = 64\ndelta = true\n";
        let cfg = Config::parse(doc, &path).expect("parses");
        assert_eq!((cfg.crl.shards, cfg.crl.delta), (64, true));
        let urls = cfg.issuance_urls();
        assert_eq!((urls.crl_shards, urls.delta_crls), (64, true));
        assert_eq!(urls.crl.as_deref(), cfg.urls.crl.as_deref());
        let doc = "[ca]\nname = \"x\"\n[crl]\nshards = 4096\n";
        assert_eq!(Config::parse(doc, &path).expect("parses").crl.shards, 4096);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        for bad in [
            "[ca]\nname = \"x\"\nunknown = 1\n",
            "[ca]\nname = \"x\"\n[policy]\ndns = [\"bad name\"]\n",
            "[ca]\nname = \"x\"\n[profiles.server]\ndefault_ttl = \"8d\"\nmax_ttl = \"7d\"\n",
            "[ca]\nname = \"x\"\n[urls]\nocsp = \"ftp://x\"\n",
            "[ca]\nname = \"x\"\n[database]\nurl = \"mysql://x\"\n",
            "[ca]\nname = \"x\"\n[server]\nlisten = \"localhost\"\n",
            "[ca]\nname = \"x\"\n[server]\nurl = \"ftp://x\"\n",
            "[ca]\nname = \"x\"\n[server]\nhostnames = [\"*.internal\"]\n",
            "[ca]\nname = \"x\"\n[server]\nhostnames = [\"bad name\"]\n",
            "[ca]\nname = \"x\"\n[server]\nport = 1\n",
            "[ca]\nname = \"x\"\n[responder]\nlisten = \"nowhere\"\n",
            "[ca]\nname = \"x\"\n[responder]\nport = 1\n",
            "[ca]\nname = \"x\"\n[responder]\nocsp_validity = \"13h\"\n",
            "[ca]\nname = \"x\"\n[responder]\nsigner_lifetime = \"100d\"\n",
            "[ca]\nname = \"x\"\n[responder]\ncrl_interval = \"2d\"\n",
            "[ca]\nname = \"x\"\n[retention]\nmode = \"forever\"\n",
            "[ca]\nname = \"x\"\n[retention]\nmode = \"Archive\"\n",
            "[ca]\nname = \"x\"\n[retention]\nexpired_after = \"10s\"\n",
            "[ca]\nname = \"x\"\n[retention]\ninterval = \"500ms\"\n",
            "[ca]\nname = \"x\"\n[retention]\ninterval = \"400d\"\n",
            "[ca]\nname = \"x\"\n[retention]\nbatch = 10\n",
            "[ca]\nname = \"x\"\n[crl]\nshards = 5000\n",
            "[ca]\nname = \"x\"\n[crl]\nshards = -1\n",
            "[ca]\nname = \"x\"\n[crl]\nsharding = 4\n",
            "[ca]\nname = \"x\"\n[crl]\ndelta = \"yes\"\n",
            "[ca]\nname = \"x\"\n[server.limits]\nmax_connections = 0\n",
            "[ca]\nname = \"x\"\n[server.limits]\nrequest_timeout = \"10ms\"\n",
            "[ca]\nname = \"x\"\n[server.limits]\nhandshake_timeout = \"2h\"\n",
            "[ca]\nname = \"x\"\n[server.limits]\nheader_read_timeout = 30\n",
            "[ca]\nname = \"x\"\n[server.limits]\nrequest_timeout = \"soon\"\n",
            "[ca]\nname = \"x\"\n[server.limits]\nhttp2_max_concurrent_streams = 0\n",
            "[ca]\nname = \"x\"\n[server.limits]\nmax_header_bytes = 1024\n",
            "[ca]\nname = \"x\"\n[server.limits]\nmax_streams = 1\n",
            "[ca]\nname = \"x\"\n[database]\nurl = \"sqlite://x.db\"\ntimeout = \"50ms\"\n",
            "[ca]\nname = \"x\"\n[database]\nurl = \"sqlite://x.db\"\ntimeout = \"2h\"\n",
            "[ca]\nname = \"x\"\n[database]\nurl = \"sqlite://x.db\"\ntimeout = 5\n",
        ] {
            std::fs::write(&path, bad).expect("write");
            assert!(Config::load(&path).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn retention_settings_parse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        for (text, mode, after, interval) in [
            (
                "mode = \"delete\"\nexpired_after = \"2d 12h\"\ninterval = \"90s\"",
                RetentionModeSetting::Delete,
                60 * 3600,
                90,
            ),
            (
                "mode = \"off\"",
                RetentionModeSetting::Off,
                30 * 86_400,
                3600,
            ),
        ] {
            std::fs::write(&path, format!("[ca]\nname = \"x\"\n[retention]\n{text}\n"))
                .expect("write");
            let cfg = Config::load(&path).expect("parses");
            assert_eq!(cfg.retention.mode, mode, "{text}");
            assert_eq!(
                cfg.retention.expired_after.duration(),
                Duration::from_secs(after)
            );
            assert_eq!(
                cfg.retention.interval.duration(),
                Duration::from_secs(interval)
            );
        }
    }

    #[test]
    fn a_key_in_a_token_is_named_by_its_uri_with_the_module_in_pkcs11() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("signet.toml");
        let recorded = Recorded {
            pkcs11: Some(RecordedPkcs11 {
                issuing_key: Some("pkcs11:token=signet;object=issuing-ca;id=%01".into()),
                module: "/usr/lib/softhsm/libsofthsm2.so".into(),
                pin_file: Some("token.pin".into()),
            }),
            ..Recorded::default()
        };
        let text = render("x", &recorded);
        let cfg = Config::parse(&text, &path).expect("parses");
        // The URI is kept as written (not made a path under the directory); the PIN file is.
        assert_eq!(
            cfg.ca.issuing_key,
            PathBuf::from("pkcs11:token=signet;object=issuing-ca;id=%01")
        );
        assert!(matches!(
            KeyRef::parse(&cfg.ca.issuing_key).expect("uri"),
            KeyRef::Pkcs11(uri) if uri.object.as_deref() == Some("issuing-ca")
        ));
        let section = cfg.pkcs11.expect("[pkcs11]");
        assert_eq!(section.pin_file, Some(dir.path().join("token.pin")));
        assert!(section.sessions >= 1);

        // The commented example in the default file is what a token key needs.
        let text = render_default_for_tests("x");
        assert!(text.contains("# issuing_key = \"pkcs11:token=signet;object=issuing-ca\""));
        let uncommented = text
            .replace("issuing_key = \"issuing_ca.key\"\n", "")
            .replace("# issuing_key = ", "issuing_key = ")
            .replace("# [pkcs11]", "[pkcs11]")
            .replace("# module = ", "module = ")
            .replace("# pin_file = ", "pin_file = ");
        let cfg = Config::parse(&uncommented, &path).expect("the example parses");
        assert!(cfg.pkcs11.is_some());

        for bad in [
            // A token key without a module to find it in.
            "[ca]\nname = \"x\"\nissuing_key = \"pkcs11:token=signet;object=k\"\n",
            // A PIN in the URI.
            "[ca]\nname = \"x\"\nissuing_key = \"pkcs11:object=k;pin-value=1234\"\n\
             [pkcs11]\nmodule = \"/m.so\"\n",
            "[ca]\nname = \"x\"\n[pkcs11]\nmodule = \"/m.so\"\nsessions = 0\n",
        ] {
            let e = Config::parse(bad, &path).expect_err(bad);
            assert!(!format!("{e:#}").contains("1234"), "{e:#}");
        }
        // A PIN written into the file is refused too (the TOML error quotes the line).
        let pin_in_file = "[ca]\nname = \"x\"\n[pkcs11]\nmodule = \"/m.so\"\npin = \"1234\"\n";
        assert!(Config::parse(pin_in_file, &path).is_err());
    }
}
