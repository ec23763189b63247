//! `signet responder`: the OCSP responder and CRL download point alone, over plain HTTP, for
//! scaling out next to the API. It needs the issuing CA *certificate* and the database the CA
//! uses, never the CA key: its signing key is generated in memory and certified through the
//! database by any `signet serve` holding the CA key (see `signet_responder::StoreCertifier`),
//! and it serves the CRLs those processes publish. It answers `tryLater` (and `/readyz` 503)
//! until its first signing certificate arrives. Given the root CA certificate, it also serves
//! the root's CRL (signed offline with `signet ca root-crl`) and `/crl/chain.pem`.
//!
//! On a read-only PostgreSQL hot standby it only reads: it polls for revocations (a standby
//! refuses `LISTEN`) and files its signer request on the primary, named by
//! `--signer-database-url`, whose answer it reads there too. Nothing is written to the
//! standby; without that URL it refuses to start on one.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use signet_responder::{IssuerCertificate, Responder, StoreCertifier};
use tokio::net::TcpListener;

use crate::config::{Config, ResponderListen, ResponderSection};
use crate::serve::{listener, wiring};

#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// Address to listen on (plain HTTP) [default: [responder] listen of DIR/signet.toml,
    /// else 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The database `signet serve` uses [default: [database] url of DIR/signet.toml].
    #[arg(long, env = crate::config::DATABASE_URL_ENV, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the request for the OCSP signing certificate is filed and its answer read: the
    /// primary, when --database-url is a read-only hot standby (nothing is written to the
    /// standby) [default: the --database-url database].
    #[arg(long, env = SIGNER_DATABASE_URL_ENV, hide_env_values = true)]
    signer_database_url: Option<String>,
    /// Data directory: its signet.toml, if there is one, gives the [responder] settings, the
    /// database and the issuing CA certificate; without one, DIR/issuing_ca.crt is read.
    #[arg(long, default_value = crate::datadir::DEFAULT_DIR)]
    dir: PathBuf,
    /// The issuing CA certificate, PEM (a chain file is fine: the first certificate is used)
    /// [default: [ca] issuing_cert of DIR/signet.toml, else DIR/issuing_ca.crt].
    #[arg(long)]
    issuing_cert: Option<PathBuf>,
    /// The root CA certificate, PEM, whose CRL is served at /crl/root.crl and in
    /// /crl/chain.pem [default: [ca] root_cert of DIR/signet.toml, else DIR/root_ca.crt].
    /// If the default file is missing, those routes answer 404.
    #[arg(long)]
    root_cert: Option<PathBuf>,
    /// Once the socket is bound, write the address it got to this file as JSON,
    /// `{"responder": ADDR}` (written whole, by rename), so that a supervisor or a test can
    /// listen on port 0 and learn the port.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
}

/// The environment variable that may hold `--signer-database-url`.
pub const SIGNER_DATABASE_URL_ENV: &str = "SIGNET_SIGNER_DATABASE_URL";

/// Everything the responder is started with, read from the command line, `signet.toml`
/// and the certificate files: read at start, and again on SIGHUP to tell what changed.
struct Loaded {
    cfg: Option<Config>,
    section: ResponderSection,
    listen: SocketAddr,
    database_url: String,
    cert_path: PathBuf,
    issuer: IssuerCertificate,
    root: Option<IssuerCertificate>,
    /// The kept earlier issuing CAs that belong to this hierarchy.
    previous: Vec<IssuerCertificate>,
}

fn load(args: &ResponderArgs) -> anyhow::Result<Loaded> {
    let config_path = crate::datadir::DataDir::new(&args.dir).config();
    let cfg = if config_path.exists() {
        Some(Config::load(&config_path)?)
    } else {
        None
    };
    let section = cfg
        .as_ref()
        .map_or_else(ResponderSection::default, |c| c.responder.clone());
    let listen = match args.listen {
        Some(addr) => addr,
        None => match section.listen_addr()? {
            ResponderListen::Default(addr) | ResponderListen::Explicit(addr) => addr,
            ResponderListen::Off => {
                bail!("[responder] listen is \"off\": give --listen ADDR to run the responder")
            }
        },
    };
    let Some(database_url) = args
        .database_url
        .clone()
        .or_else(|| cfg.as_ref().map(Config::database_url))
    else {
        bail!(
            "no database: give --database-url URL (the database `signet serve` uses), or --dir \
             with a signet.toml"
        );
    };
    let cert_path = args.issuing_cert.clone().unwrap_or_else(|| {
        cfg.as_ref().map_or_else(
            || crate::datadir::DataDir::new(&args.dir).issuing_cert(),
            |c| c.ca.issuing_cert.clone(),
        )
    });
    let pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("reading the issuing CA certificate {}", cert_path.display()))?;
    let issuer = IssuerCertificate::from_pem(&pem)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let root = load_root(args, cfg.as_ref())?;
    // Earlier issuing CAs kept beside the issuing certificate (`signet ca new-issuing`):
    // their CRLs, which `signet serve` goes on signing, are served too. Checking that they
    // belong to this hierarchy needs the root.
    let previous = match &root {
        None => Vec::new(),
        Some(root) => crate::datadir::kept_issuing_ca_files(&cert_path)
            .into_iter()
            .filter_map(|kept| {
                let checked =
                    signet_ca::PreviousIssuer::check(&kept.der, root.der(), issuer.der())
                        .map_err(|e| e.to_string())
                        .and_then(|_| {
                            IssuerCertificate::from_der(&kept.der).map_err(|e| e.to_string())
                        });
                match checked {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::warn!(file = %kept.path.display(), error = %e, "skipping a kept issuing CA");
                        None
                    }
                }
            })
            .collect(),
    };
    Ok(Loaded {
        cfg,
        section,
        listen,
        database_url,
        cert_path,
        issuer,
        root,
        previous,
    })
}

impl Loaded {
    /// The serials of the kept earlier issuing CAs.
    fn kept(&self) -> Vec<String> {
        self.previous
            .iter()
            .map(|p| p.serial_hex().to_string())
            .collect()
    }

    /// What differs in `new` from what is running and cannot be applied to a running
    /// responder, one line each: its socket, database, CA certificates and cache settings are
    /// fixed at start. (The kept earlier issuing CAs can be; see [`reload_on_sighup`].)
    fn changes(&self, new: &Loaded) -> Vec<String> {
        let mut out = Vec::new();
        if self.listen != new.listen {
            out.push(format!("listen address {} -> {}", self.listen, new.listen));
        }
        if self.database_url != new.database_url {
            // Never the URL itself: it may hold a password.
            out.push("database URL".to_string());
        }
        if self.issuer.der() != new.issuer.der() {
            out.push(format!(
                "issuing CA certificate in {} (serial {} -> {})",
                new.cert_path.display(),
                self.issuer.serial_hex(),
                new.issuer.serial_hex()
            ));
        }
        if self.root.as_ref().map(IssuerCertificate::der)
            != new.root.as_ref().map(IssuerCertificate::der)
        {
            out.push("root CA certificate".to_string());
        }
        if self.section.ocsp_validity != new.section.ocsp_validity {
            out.push("[responder] ocsp_validity".to_string());
        }
        if self.section.threads != new.section.threads {
            out.push("[responder] threads".to_string());
        }
        let limits = |l: &Loaded| l.cfg.as_ref().map(|c| c.server.limits.clone());
        if limits(self) != limits(new) {
            out.push("[server.limits]".to_string());
        }
        out
    }
}

/// On every SIGHUP, read the settings again. The kept earlier issuing CAs whose CRLs are
/// served (`issuing_ca.<serial>.crt` beside the issuing certificate, checked against the
/// root) are applied in place, when the issuing and root certificates are unchanged; every
/// other change is named in the log as not applied (see [`Loaded::changes`]), to take
/// effect on restart. A SIGHUP no longer ends the process, as the default action would.
async fn reload_on_sighup(
    mut hangup: tokio::signal::unix::Signal,
    args: ResponderArgs,
    mut running: Loaded,
    responder: Responder,
) {
    while hangup.recv().await.is_some() {
        match load(&args) {
            Err(e) => tracing::warn!(
                "SIGHUP: the settings do not load ({}); the running responder is unchanged",
                crate::cmd::Causes(&e)
            ),
            Ok(new) => {
                let changes = running.changes(&new);
                let same_hierarchy = running.issuer.der() == new.issuer.der()
                    && running.root.as_ref().map(IssuerCertificate::der)
                        == new.root.as_ref().map(IssuerCertificate::der);
                let kept_changed = running.kept() != new.kept();
                if kept_changed && same_hierarchy {
                    tracing::info!(
                        before = %running.kept().join(","),
                        now = %new.kept().join(","),
                        "SIGHUP: applied the kept earlier issuing CAs whose CRLs are served"
                    );
                    responder.set_previous_issuers(new.previous.clone());
                    running.previous = new.previous;
                } else if kept_changed {
                    tracing::warn!(
                        "SIGHUP: the kept earlier issuing CAs changed too, but they belong to \
                         the new issuing or root certificate: NOT applied"
                    );
                }
                if changes.is_empty() {
                    if !kept_changed {
                        tracing::info!(
                            "SIGHUP: the configuration and certificate files are as at start; \
                             nothing to do"
                        );
                    }
                } else {
                    tracing::warn!(
                        changes = %changes.join("; "),
                        "SIGHUP: changes seen but NOT applied (a running responder keeps its \
                         socket, database, CA certificates and cache settings): restart \
                         `signet responder` to apply them"
                    );
                }
            }
        }
    }
}

pub async fn run(args: ResponderArgs) -> anyhow::Result<()> {
    // 1. Settings, all checked before anything is bound.
    let loaded = load(&args)?;
    let listen = loaded.listen;
    let issuer = loaded.issuer.clone();

    // 2. The database, as `signet serve` left it: this process has no business changing the
    // schema, so it checks it rather than migrating.
    let store = signet_store::Store::connect(&loaded.database_url)
        .await
        .map_err(|e| anyhow::anyhow!(super::connect_error_message(&e)))
        .context("opening the database")?;
    store.revocation_cursor().await.context(
        "the database lacks Signet's revocation tables: run `signet migrate` (or `signet serve`) \
         on it first",
    )?;
    // Only the database of this CA, when the database says whose it is and the root is here
    // to compare (an issuing certificate alone does not name the root). A responder writes
    // nothing, so it never records it.
    if let Some(root) = &loaded.root {
        let url = crate::binding::describe_database(&loaded.database_url);
        let identity = crate::binding::CaIdentity::of_root(root.der())?;
        let checked = match store.ca_binding().await {
            Ok(Some(_)) => {
                crate::binding::check_database(
                    &store,
                    &identity,
                    &[],
                    &[],
                    &url,
                    "signet-responder",
                    crate::binding::Access::CheckOnly,
                )
                .await
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which CA the database belongs to (run `signet migrate` or `signet serve` on it)");
                Ok(())
            }
        };
        if let Err(e) = checked {
            store.close().await;
            return Err(e);
        }
    }
    // 2b. Where the signer request goes: never to a standby, which refuses writes.
    let on_standby = matches!(
        store.role().await,
        Ok(signet_store::DatabaseRole::Standby { .. })
    );
    let separate_signer_store = args.signer_database_url.is_some();
    let signer_store = match &args.signer_database_url {
        None if on_standby => {
            store.close().await;
            bail!(
                "the database is a read-only PostgreSQL hot standby: give \
                 --signer-database-url URL (or {SIGNER_DATABASE_URL_ENV}), the primary, where \
                 the responder files the request for its OCSP signing certificate; nothing is \
                 written to the standby"
            );
        }
        None => store.clone(),
        Some(url) => {
            crate::config::check_database_url(url)?;
            match signet_store::Store::connect(url).await {
                Ok(s) => s,
                Err(e) => {
                    store.close().await;
                    return Err(anyhow::anyhow!(super::connect_error_message(&e)))
                        .context("opening the signer database (--signer-database-url)");
                }
            }
        }
    };
    if on_standby {
        tracing::info!(
            "the database is a read-only hot standby: revocations are followed by polling, \
             and the signer request goes to --signer-database-url"
        );
    }
    let key_id = issuer.key_id_hex().to_string();
    let responder = wiring::responder(
        store.clone(),
        issuer,
        loaded.root.clone(),
        loaded.previous.clone(),
        loaded.section.ocsp_validity.duration(),
        loaded.cfg.as_ref().and_then(|c| c.urls.crl.clone()),
    )?;
    let limits = loaded
        .cfg
        .as_ref()
        .map_or_else(listener::Limits::default, |c| {
            listener::Limits::from(&c.server.limits)
        });

    // 3. Serve; the signer arrives in the background. SIGHUP is caught from before the
    // socket is bound, so that one sent once it listens never ends the process.
    let hangup = wiring::hangup()?;
    let socket = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let bound = socket.local_addr().unwrap_or(listen);
    let mut background = wiring::Background::default();
    background.spawn(responder.clone().watch_changes());
    background.spawn(
        responder
            .clone()
            .run_signer(StoreCertifier::new(signer_store.clone(), &key_id)),
    );
    tracing::info!(
        listen = %bound,
        database = store.backend().as_str(),
        issuer_key_id = key_id,
        "signet responder is listening over HTTP; waiting for a signing certificate from signet serve"
    );
    let shutdown = crate::serve::shutdown_broadcast(crate::serve::shutdown_signal()?);
    if let Some(path) = &args.ready_file {
        crate::serve::write_ready_file(
            path,
            &serde_json::json!({ "responder": bound.to_string() }),
        )?;
    }
    let threads = loaded.section.threads;
    let reports = tokio::spawn(reload_on_sighup(hangup, args, loaded, responder.clone()));
    // Served on its own threads, as inside `signet serve`; this runtime keeps the database
    // pool, the signer and the watch on revocations.
    let serving = super::serve::spawn_responder_runtime(
        socket,
        signet_responder::app(responder.clone()),
        Some(super::serve::responder_shortcut(&responder)),
        limits,
        shutdown,
        threads,
    )?;
    if !matches!(
        tokio::task::spawn_blocking(move || serving.join()).await,
        Ok(Ok(()))
    ) {
        tracing::warn!("the responder's threads ended abnormally");
    }
    background.adopt(&reports);
    background.stop(&store).await;
    if separate_signer_store {
        // Bounded like the main database's close: a stuck primary must not keep a
        // stopping responder alive.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), signer_store.close()).await;
    }
    Ok(())
}

/// The root CA certificate for the root CRL routes: `--root-cert` must be readable; the
/// default (`[ca] root_cert`, else DIR/root_ca.crt) may be missing, which is said once.
fn load_root(
    args: &ResponderArgs,
    cfg: Option<&Config>,
) -> anyhow::Result<Option<IssuerCertificate>> {
    let (path, explicit) = match &args.root_cert {
        Some(path) => (path.clone(), true),
        None => (
            cfg.map_or_else(
                || crate::datadir::DataDir::new(&args.dir).root_cert(),
                |c| c.ca.root_cert.clone(),
            ),
            false,
        ),
    };
    if !explicit && !path.exists() {
        tracing::warn!(
            path = %path.display(),
            "no root CA certificate: /crl/root.crl, /crl/root.pem and /crl/chain.pem answer 404 \
             (give --root-cert FILE to serve the root's CRL)"
        );
        return Ok(None);
    }
    let pem = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the root CA certificate {}", path.display()))?;
    let root =
        IssuerCertificate::from_pem(&pem).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(root))
}
