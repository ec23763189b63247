//! The client commands' flags for talking to a Signet server (`--ca-url`, the root to trust,
//! the client certificate, the admin credential, a token), as clap argument groups that
//! become the workload agent's plain option structs; the client itself (TLS trust rules,
//! credentials, problem documents) is `signet_agent::client`, re-exported here so the
//! commands name one module.

use std::path::{Path, PathBuf};

use clap::Args;
use rustls::pki_types::CertificateDer;
pub use signet_agent::client::*;
use signet_agent::context::SavedContext;

use crate::datadir::DataDir;

/// Where the server is and which root to trust. Flattened into each API command.
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// The Signet API URL, e.g. https://ca.internal:8443.
    #[arg(long, env = "SIGNET_CA_URL", value_name = "URL")]
    pub ca_url: Option<String>,
    /// Trust the Signet root whose SHA-256 fingerprint is this (sha256:HEX, as `signet init`
    /// prints it; colons and case are ignored).
    #[arg(long, env = "SIGNET_ROOT_FINGERPRINT", value_name = "sha256:HEX")]
    pub root_fingerprint: Option<String>,
    /// Trust the root certificate(s) in this PEM file (default: DIR/root_ca.crt if it exists).
    #[arg(long, env = "SIGNET_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS, e.g. to revoke your own certificate.
    #[arg(long, requires = "client_key", value_name = "FILE")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert.
    #[arg(long, requires = "client_cert", value_name = "FILE")]
    pub client_key: Option<PathBuf>,
}

impl ClientArgs {
    /// The flags as the agent's options.
    pub fn options(&self) -> ClientOptions {
        ClientOptions {
            ca_url: self.ca_url.clone(),
            root_fingerprint: self.root_fingerprint.clone(),
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        }
    }

    /// See [`ClientOptions::ca_url`].
    pub fn ca_url(&self) -> anyhow::Result<CaUrl> {
        self.options().ca_url()
    }

    /// See [`ClientOptions::context_for`].
    pub fn context_for(&self, url: &CaUrl) -> anyhow::Result<Option<SavedContext>> {
        self.options().context_for(url)
    }

    /// See [`ClientOptions::fingerprint`].
    pub fn fingerprint(&self) -> anyhow::Result<Option<Fingerprint>> {
        self.options().fingerprint()
    }

    /// See [`ClientOptions::connect`]; the last resort is the root in the data directory `dir`.
    pub async fn connect(&self, dir: &Path) -> anyhow::Result<Api> {
        self.options().connect(&DataDir::new(dir).root_cert()).await
    }

    /// See [`ClientOptions::connect_with_roots`].
    pub async fn connect_with_roots(
        &self,
        dir: &Path,
    ) -> anyhow::Result<(Api, Vec<CertificateDer<'static>>)> {
        self.options()
            .connect_with_roots(&DataDir::new(dir).root_cert())
            .await
    }

    /// See [`ClientOptions::client_identity`].
    pub fn client_identity(&self) -> anyhow::Result<Option<ClientIdentity>> {
        self.options().client_identity()
    }
}

/// The admin credential. Flattened into the commands that need it.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// File holding the admin token (default: DIR/admin.token if it exists); `-` reads it
    /// from standard input. The token may also be given in the environment variable
    /// SIGNET_ADMIN_TOKEN.
    #[arg(long, env = "SIGNET_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

impl AdminArgs {
    /// The flag as the agent's options.
    pub fn options(&self) -> AdminOptions {
        AdminOptions {
            admin_token_file: self.admin_token_file.clone(),
        }
    }

    /// See [`AdminOptions::credential`]; the default file is the data directory's admin token.
    pub fn credential(&self, dir: &Path, use_default_file: bool) -> anyhow::Result<Option<Bearer>> {
        self.options()
            .credential(&DataDir::new(dir).admin_token(), use_default_file)
    }

    /// See [`AdminOptions::credential_and_source`].
    pub fn credential_and_source(
        &self,
        dir: &Path,
        use_default_file: bool,
    ) -> anyhow::Result<Option<(Bearer, String)>> {
        self.options()
            .credential_and_source(&DataDir::new(dir).admin_token(), use_default_file)
    }

    /// See [`AdminOptions::require`].
    pub fn require(&self, dir: &Path) -> anyhow::Result<Bearer> {
        self.options().require(&DataDir::new(dir).admin_token())
    }
}

/// A bearer token given on the command line: `--token`, `--token-file FILE` (`-` reads it from
/// standard input), else the `SIGNET_TOKEN` variable. Flattened into every command that
/// sends a token it did not mint itself.
#[derive(Debug, Clone, Default, Args)]
pub struct TokenInput {
    /// The token (from `signet token`) [env: SIGNET_TOKEN]. Prefer --token-file: a command
    /// line is visible to other users of the machine.
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// File holding the token; `-` reads it from standard input.
    #[arg(long, value_name = "FILE|-")]
    pub token_file: Option<PathBuf>,
}

impl TokenInput {
    /// See [`TokenOptions::read`].
    pub fn read(&self) -> anyhow::Result<Option<Bearer>> {
        TokenOptions {
            token: self.token.clone(),
            token_file: self.token_file.clone(),
        }
        .read()
    }
}
