//! What `signet serve` and `signet responder` share between their checked settings and their
//! accept loops: the OCSP responder over the store, the SIGHUP handler (installed before the
//! socket listens, so a SIGHUP sent once the process says it listens never meets the default
//! action, exit), and stopping: the background tasks ended, the database closed within a
//! deadline, and "stopped" said.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use signet_responder::{IssuerCertificate, Responder, ResponderConfig};
use signet_store::Store;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::{AbortHandle, JoinHandle};

/// How long closing the database may take when stopping.
const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The responder for `issuer` (and the earlier issuing CAs in `previous`), answering from
/// `store`; with `root`, it also serves the root's CRL and `/crl/chain.pem`. `crl_url`
/// (`[urls] crl`) gives `/crl/index.json` its URLs.
pub fn responder(
    store: Store,
    issuer: IssuerCertificate,
    root: Option<IssuerCertificate>,
    previous: Vec<IssuerCertificate>,
    ocsp_validity: Duration,
    crl_url: Option<String>,
) -> anyhow::Result<Responder> {
    let responder = Responder::with_root(
        store,
        issuer,
        root,
        ResponderConfig {
            ocsp_validity,
            crl_url,
            ..Default::default()
        },
    )?;
    responder.set_previous_issuers(previous);
    Ok(responder)
}

/// The SIGHUP handler; from this call on, SIGHUP no longer ends the process.
pub fn hangup() -> anyhow::Result<Signal> {
    signal(SignalKind::hangup()).context("installing the SIGHUP handler")
}

/// The tasks that run beside the accept loop, ended together once it returns.
#[derive(Debug, Default)]
pub struct Background(Vec<AbortHandle>);

impl Background {
    /// Run `task` until [`Background::stop`].
    pub fn spawn(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task).abort_handle());
    }

    /// End `task` too at [`Background::stop`].
    pub fn adopt<T>(&mut self, task: &JoinHandle<T>) {
        self.0.push(task.abort_handle());
    }

    /// End every task, close the database (waiting at most 5 s: a stuck database must not
    /// keep a stopping process alive) and say so.
    pub async fn stop(self, store: &Store) {
        for task in self.0 {
            task.abort();
        }
        if tokio::time::timeout(STORE_CLOSE_TIMEOUT, store.close())
            .await
            .is_err()
        {
            tracing::warn!("the database did not close in time");
        }
        tracing::info!("stopped");
    }
}
