//! The plumbing of `signet serve`, between the sockets and the API router (`signet_api::app`):
//!
//! - [`bootstrap`]: the admin token and the `default` provisioner a fresh data directory lacks;
//! - [`identity`]: the server's own TLS certificate, issued by its own CA, recorded in the
//!   store before use and renewed in the background;
//! - [`tls`]: the rustls configuration (ring, TLS 1.2/1.3, optional client certificates
//!   that must chain to our root);
//! - [`listener`]: the accept loop, connection limits, and graceful shutdown;
//! - [`lock`]: one server per data directory (`serve.lock`), and `--pid-file`;
//! - [`reload`]: the provisioners, read again from the configuration on SIGHUP;
//! - [`wiring`]: what `serve` and `responder` share around their accept loops: the OCSP
//!   responder over the store, the SIGHUP handler, and stopping (background tasks ended, the
//!   database closed within a deadline);
//! - [`revocation`]: CRL publishing and OCSP signer certificates, done with the CA key for
//!   the responder (`signet_responder`, served on a second, plain-HTTP listener).
//!
//! The API crate owns routes, authentication and HTTP-level limits; nothing here looks inside
//! a request except to attach what the connection proved ([`signet_api::ClientCertificate`]).

pub mod acme;
pub mod bootstrap;
pub mod identity;
pub mod listener;
pub mod lock;
pub mod reload;
pub mod retention;
pub mod revocation;
pub mod tls;
pub mod wiring;

/// Resolves on SIGTERM or SIGINT (Ctrl-C). The handlers are installed when this is called, so
/// call it just before serving: until then the signals keep their default action.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use anyhow::Context;
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received: shutting down"),
        }
    })
}

/// Writes `--ready-file`: `value` as JSON, replaced atomically (the workspace's one atomic
/// write), so a reader polling for `path` never sees it half-written.
pub fn write_ready_file(path: &std::path::Path, value: &serde_json::Value) -> anyhow::Result<()> {
    use anyhow::Context;
    signet_ca::files::write_atomic(path, format!("{value}\n").as_bytes(), 0o644)
        .with_context(|| format!("writing the ready file {}", path.display()))
}

/// One shutdown signal shared by several listeners.
#[derive(Clone, Debug)]
pub struct Shutdown(tokio::sync::watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has begun.
    pub async fn wait(&self) {
        let mut rx = self.0.clone();
        // An error means the sender is gone, which happens only after it sent.
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Spawns a task that awaits `signal` and then tells every [`Shutdown::wait`].
pub fn shutdown_broadcast(signal: impl Future<Output = ()> + Send + 'static) -> Shutdown {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        signal.await;
        let _ = tx.send(true);
    });
    Shutdown(rx)
}
