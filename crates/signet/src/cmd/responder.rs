//! `signet responder`: the OCSP responder and CRL download point alone, over plain HTTP, for
//! scaling out next to the API. It needs the issuing CA *certificate* and the database the CA
//! uses, never the CA key: its signing key is generated in memory and certified through the
//! database by any `signet serve` holding the CA key (see `signet_responder::StoreCertifier`),
//! and it serves the CRLs those processes publish. It answers `tryLater` (and `/readyz` 503)
//! until its first signing certificate arrives. Given the root CA certificate, it also serves
//! the root's CRL (signed offline with `signet ca root-crl`) and `/crl/chain.pem`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use signet_responder::{IssuerCertificate, Responder, ResponderConfig, StoreCertifier};
use tokio::net::TcpListener;

use crate::config::{Config, ResponderListen, ResponderSection};
use crate::serve::listener;

#[derive(Debug, Args)]
pub struct ResponderArgs {
    /// Address to listen on (plain HTTP) [default: [responder] listen of DIR/signet.toml,
    /// else 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The database `signet serve` uses [default: [database] url of DIR/signet.toml].
    #[arg(long, env = crate::config::DATABASE_URL_ENV)]
    database_url: Option<String>,
    /// Data directory: its signet.toml, if there is one, gives the [responder] settings, the
    /// database and the issuing CA certificate; without one, DIR/issuing_ca.crt is read.
    #[arg(long, default_value = "signet-data")]
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

pub async fn run(args: ResponderArgs) -> anyhow::Result<()> {
    // 1. Settings, all checked before anything is bound.
    let config_path = args.dir.join(super::init::CONFIG);
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
            || args.dir.join("issuing_ca.crt"),
            |c| c.ca.issuing_cert.clone(),
        )
    });
    let pem = std::fs::read_to_string(&cert_path)
        .with_context(|| format!("reading the issuing CA certificate {}", cert_path.display()))?;
    let issuer = IssuerCertificate::from_pem(&pem)
        .with_context(|| format!("reading {}", cert_path.display()))?;
    let root = load_root(&args, cfg.as_ref())?;

    // 2. The database, as `signet serve` left it: this process has no business changing the
    // schema, so it checks it rather than migrating.
    let store = signet_store::Store::connect(&database_url)
        .await
        .context("opening the database")?;
    store.revocation_cursor().await.context(
        "the database lacks Signet's revocation tables: run `signet migrate` (or `signet serve`) \
         on it first",
    )?;
    let key_id = issuer.key_id_hex().to_string();
    // Earlier issuing CAs kept beside the issuing certificate (`signet ca new-issuing`):
    // their CRLs, which `signet serve` goes on signing, are served too. Checking that they
    // belong to this hierarchy needs the root.
    let previous = match &root {
        None => Vec::new(),
        Some(root) => super::kept_issuing_ca_files(&cert_path)
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
    let responder = Responder::with_root(
        store.clone(),
        issuer,
        root,
        ResponderConfig {
            ocsp_validity: section.ocsp_validity.duration(),
            ..Default::default()
        },
    )?;
    responder.set_previous_issuers(previous);

    // 3. Serve; the signer arrives in the background.
    let socket = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let bound = socket.local_addr().unwrap_or(listen);
    let background = [
        tokio::spawn(responder.clone().watch_changes()),
        tokio::spawn(
            responder
                .clone()
                .run_signer(StoreCertifier::new(store.clone(), &key_id)),
        ),
    ];
    tracing::info!(
        listen = %bound,
        database = store.backend().as_str(),
        issuer_key_id = key_id,
        "signet responder is listening over HTTP; waiting for a signing certificate from signet serve"
    );
    let shutdown = crate::serve::shutdown_signal()?;
    if let Some(path) = &args.ready_file {
        crate::serve::write_ready_file(
            path,
            &serde_json::json!({ "responder": bound.to_string() }),
        )?;
    }
    listener::serve(
        socket,
        signet_responder::app(responder),
        None,
        cfg.as_ref().map_or_else(listener::Limits::default, |c| {
            listener::Limits::from(&c.server.limits)
        }),
        listener::Refusals::PlainText,
        shutdown,
    )
    .await;
    for task in background {
        task.abort();
    }
    store.close().await;
    tracing::info!("stopped");
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
                || args.dir.join(super::init::ROOT_CERT),
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
