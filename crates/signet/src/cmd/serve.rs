//! `signet serve`: the REST API over HTTPS, and the OCSP responder and CRL download point over
//! plain HTTP on a second listener. The data directory is locked first (one server per
//! directory); everything is loaded and checked before a socket is bound, so a bad
//! configuration exits at once with a message; and nothing is written to the database before
//! every socket is bound. A first start makes a new CA (as `init` does, recording what it was
//! told in signet.toml), and leaves nothing behind if it fails; see `serve::bootstrap` for
//! what is added to an existing directory.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use signet_api::{AdminCredential, ApiConfig, AppState};
use signet_authority::{CrlLayout, CrlSchedule, RevocationPublisher};
use signet_ca::{KeyType, Profile, RevocationReason, Serial, sha256_fingerprint};
use tokio::net::{TcpListener, TcpSocket};

use super::init::{DEFAULT_NAME, Staging};
use crate::binding::{Access, CaIdentity};
use crate::config::{Config, Recorded, ResponderListen, check_server_hostname};
use crate::serve::identity::{CertResolver, ServerIdentity};
use crate::serve::revocation::{CaCertifier, ResponderListener, answer_signer_requests};
use crate::serve::{bootstrap, listener, lock, reload, tls};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Data directory [default: signet-data]. Without a signet.toml in it (and no --config),
    /// a new CA is made there, as by `signet init`. A directory that does not exist is made
    /// only when it is the default or --init is given.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Make the data directory (and a new CA in it) if it does not exist.
    #[arg(long, conflicts_with = "config")]
    init: bool,
    /// Configuration file [default: DIR/signet.toml]. Relative paths in it, and the files
    /// `serve` creates, are relative to its directory.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: [server] listen, else 127.0.0.1:8443].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Serve plain HTTP, for use behind a TLS-terminating proxy only.
    #[arg(long)]
    plain_http: bool,
    /// A DNS name or IP address for the server's certificate (repeatable); replaces
    /// [server] hostnames. localhost, 127.0.0.1 and ::1 are always included.
    #[arg(long = "hostname", value_name = "NAME")]
    hostnames: Vec<String>,
    /// Address of the OCSP responder and CRL download point (plain HTTP), or "off"
    /// [default: [responder] listen, else 127.0.0.1:8080 if free].
    #[arg(long, value_name = "ADDR|off")]
    responder_listen: Option<String>,
    /// Once every socket is bound, write the addresses the server got to this file as JSON,
    /// `{"api": ADDR, "url": CA_URL, "responder": ADDR|null}` (written whole, by rename), so
    /// that a supervisor or a test can listen on port 0 and learn the port.
    #[arg(long, value_name = "PATH")]
    ready_file: Option<PathBuf>,
    /// The database [default: [database] url, else sqlite://signet.db in the data
    /// directory].
    #[arg(long, env = crate::config::DATABASE_URL_ENV, hide_env_values = true, value_name = "URL")]
    database_url: Option<String>,
    /// Write the server's pid to FILE once it is ready to serve (for `kill -HUP "$(cat
    /// FILE)"`), and remove it when it stops.
    #[arg(long, value_name = "FILE")]
    pid_file: Option<PathBuf>,
}

/// The data directory when --dir is not given.
use crate::datadir::DEFAULT_DIR;
use crate::serve::wiring;

/// What a start needs from the data directory once its CA exists: the configuration as
/// loaded (with the admin token and `default` provisioner it may have lacked), checked.
struct Loaded {
    cfg: Config,
    provisioners: Vec<signet_api::Provisioner>,
    admin: AdminCredential,
    auditor: Option<AdminCredential>,
}

/// Checks the admin token and the provisioners the directory has (file modes, public keys),
/// writing nothing.
fn check_credentials(config_path: &Path, cfg: &Config) -> anyhow::Result<()> {
    if !cfg.provisioners.is_empty() {
        reload::build_provisioners(cfg, config_path)?;
    }
    if cfg.server.admin_token_file.exists() {
        AdminCredential::from_token_file(&cfg.server.admin_token_file).with_context(|| {
            format!(
                "reading the admin token {}",
                cfg.server.admin_token_file.display()
            )
        })?;
    }
    if let Some(path) = &cfg.server.auditor_token_file
        && path.exists()
    {
        AdminCredential::from_token_file(path)
            .with_context(|| format!("reading the auditor token {}", path.display()))?;
    }
    Ok(())
}

/// Adds the admin token and the `default` provisioner if they are missing, then loads and
/// checks both (file modes, public keys).
fn load_credentials(config_path: &Path, mut cfg: Config) -> anyhow::Result<Loaded> {
    if bootstrap::ensure_admin_token(&cfg.server.admin_token_file)? {
        tracing::info!(
            path = %cfg.server.admin_token_file.display(),
            "created the admin token"
        );
    }
    if cfg.provisioners.is_empty() {
        let created = bootstrap::add_default_provisioner(config_path, &cfg.base_dir, &cfg.policy)?;
        tracing::info!(
            key = %created.key_file.display(),
            public_key = %created.public_key_file.display(),
            "created the token provisioner \"default\""
        );
        cfg = Config::load(config_path)?;
    }
    let provisioners = reload::build_provisioners(&cfg, config_path)?;
    let admin =
        AdminCredential::from_token_file(&cfg.server.admin_token_file).with_context(|| {
            format!(
                "reading the admin token {}",
                cfg.server.admin_token_file.display()
            )
        })?;
    let auditor = match &cfg.server.auditor_token_file {
        None => None,
        Some(path) => {
            if bootstrap::ensure_auditor_token(path)? {
                tracing::info!(path = %path.display(), "created the auditor token");
            }
            Some(
                AdminCredential::from_token_file(path)
                    .with_context(|| format!("reading the auditor token {}", path.display()))?,
            )
        }
    };
    Ok(Loaded {
        cfg,
        provisioners,
        admin,
        auditor,
    })
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    for name in &args.hostnames {
        check_server_hostname(name).context("--hostname")?;
    }
    let responder_flag = args
        .responder_listen
        .as_deref()
        .map(|value| ResponderListen::parse("--responder-listen", value))
        .transpose()?;
    if let Some(url) = &args.database_url {
        crate::config::check_database_url(url)?;
    }

    // 1. The data directory, locked for this process before anything is written to it. Only
    // the default directory, or one named with --init, is made when missing: a mistyped
    // --dir must not become a new CA.
    let (config_path, dir) = match &args.config {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            (path.clone(), dir)
        }
        None => {
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR));
            (crate::datadir::DataDir::new(&dir).config(), dir)
        }
    };
    let mut created_dir = false;
    if args.config.is_none() && !dir.exists() {
        if args.dir.is_some() && !args.init {
            bail!(
                "the data directory {} does not exist. To make a new CA there, run `signet \
                 init --dir {0}` (or start with `signet serve --dir {0} --init`); to serve an \
                 existing CA, check the path",
                dir.display()
            );
        }
        created_dir = create_data_dir(&dir)?;
    }
    let _lock = lock::lock_data_dir(&dir)?;

    // 2. The configuration: loaded, or for a first start, made from what this start was told
    // (written into signet.toml with the new CA, once the sockets are bound and the database
    // is known to be new).
    let first = args.config.is_none() && !config_path.exists();
    let mut recorded = Recorded {
        listen: args.listen,
        responder_listen: responder_flag,
        database_url: args.database_url.clone(),
        hostnames: args.hostnames.clone(),
        responder_bound: None,
        pkcs11: None,
    };
    let (staging, cfg) = if first {
        tracing::info!(dir = %dir.display(), "no configuration found: making a new CA");
        let staging = Staging::after_lock(&dir, created_dir)?;
        let text = crate::config::render(DEFAULT_NAME, &recorded);
        match Config::parse(&text, &config_path) {
            Ok(cfg) => (Some(staging), cfg),
            Err(e) => return staging.finish(Err(e)),
        }
    } else {
        (None, Config::load(&config_path)?)
    };
    let database_url = args
        .database_url
        .clone()
        .unwrap_or_else(|| cfg.database_url());
    let database = crate::binding::describe_database(&database_url);
    // What the directory shows of the CA's past, before this start adds to it.
    let history = crate::binding::directory_history(&cfg);
    // An existing CA: everything is loaded and checked before any socket is bound.
    let mut ca = match first {
        true => None,
        false => {
            let ca = Arc::new(super::issue::load_issuing_ca(&cfg)?);
            check_credentials(&config_path, &cfg)?;
            Some(ca)
        }
    };

    // 3. The sockets, bound before anything is written to the database (or, on a first start,
    // to the directory), so that a port in use fails here.
    let listen = match args.listen {
        Some(addr) => addr,
        None => cfg.server.listen_addr()?,
    };
    let responder_listen = match responder_flag {
        Some(value) => value,
        None => cfg.responder.listen_addr()?,
    };
    let sockets = reserve(listen)
        .with_context(|| format!("listening on {listen}"))
        .and_then(|socket| Ok((socket, reserve_responder(responder_listen)?)));
    let (socket, responder_socket) = match (sockets, staging) {
        (Ok(sockets), None) => sockets,
        (Ok(sockets), Some(staging)) => {
            // 4. A first start: the new CA, in a database that must be new. If anything
            // fails, nothing of it is kept, here or in the database. Its certificates
            // point at the responder where it listens.
            recorded.responder_bound = sockets.1.as_ref().and_then(|s| s.local_addr().ok());
            let made = async {
                let store = super::open_store(&database_url).await?;
                let made = async {
                    crate::binding::ensure_new_database(&store, &database).await?;
                    super::init::create_ca(
                        &dir,
                        None,
                        KeyType::default(),
                        None,
                        &super::init::KeyStores::default(),
                        &recorded,
                        &store,
                        "signet-serve",
                    )
                    .await
                }
                .await;
                store.close().await;
                made
            }
            .await;
            let made = staging.finish(made)?;
            super::init::print_summary(&dir, &made, false);
            ca = Some(Arc::new(made));
            sockets
        }
        (Err(e), Some(staging)) => return staging.finish(Err(e)),
        (Err(e), None) => return Err(e),
    };
    let Some(ca) = ca else {
        bail!("the CA was not loaded");
    };

    // 5. The database: this CA's (recorded now if it predates the record), and the issuing
    // CA not revoked by the root. Then what the directory lacks (the admin token, the
    // `default` provisioner), made only for a CA whose database is in order.
    let store = super::open_store(&database_url).await?;
    crate::binding::check_database(
        &store,
        &CaIdentity::of_root(ca.root_der())?,
        &crate::binding::issuing_key_ids(&ca, &cfg.ca.issuing_cert),
        &history,
        &database,
        "signet-serve",
        Access::Bind,
    )
    .await?;
    refuse_revoked_issuing_ca(&ca, &store).await?;
    let Loaded {
        cfg,
        provisioners,
        admin,
        auditor,
    } = load_credentials(&config_path, Config::load(&config_path)?)?;
    let acme_settings = crate::serve::acme::settings(&cfg, &config_path)?;
    // The CA URL (the tokens' audience) names the address actually bound, so port 0 works.
    let bound = socket.local_addr().unwrap_or(listen);
    let ca_url = cfg.server.ca_url(bound, args.plain_http);
    if cfg.server.url.is_none() && bound.ip().is_unspecified() {
        tracing::warn!(
            url = %ca_url,
            "[server] url is not set and the listen address is a wildcard: set url to the address clients use"
        );
    }
    let hostnames = if args.hostnames.is_empty() {
        cfg.server.hostnames.clone()
    } else {
        args.hostnames.clone()
    };
    let kept = kept_issuers(&ca, &cfg);

    let profiles: BTreeMap<Profile, signet_ca::ProfileLimits> = Profile::ALL
        .iter()
        .map(|p| (*p, *cfg.profiles.limits(*p)))
        .collect();
    let state = AppState::new(
        ca.clone(),
        store.clone(),
        provisioners,
        admin,
        ApiConfig {
            ca_url: ca_url.clone(),
            profiles,
            // The admin may use any profile, but only names the CA-wide [policy] allows.
            admin_policy: signet_ca::Policy {
                profiles: signet_ca::Profile::ALL.to_vec(),
                ..cfg.policy.clone()
            },
        },
    )
    // Every store operation of the authority (the API's, the server certificate's, the OCSP
    // signers') is bounded by `[database] timeout` from the first one on.
    .with_database_timeout(cfg.database.timeout.duration())
    .with_console(signet_api::ConsoleConfig {
        enabled: cfg.console.enabled,
    });
    let state = match auditor {
        Some(auditor) => state.with_auditor(auditor),
        None => state,
    };
    // The one authority: the API, the server's own certificate and the OCSP signers'
    // certificates all issue and record through it.
    let authority = state.authority().clone();

    // 6. The server's certificate, recorded before it is used.
    let provider = tls::provider();
    let mut renewal = None;
    let acceptor = if args.plain_http {
        tracing::warn!(
            "serving plain HTTP (--plain-http): only behind a proxy that terminates TLS"
        );
        None
    } else {
        let identity = Arc::new(ServerIdentity::new(
            authority.clone(),
            &hostnames,
            provider.clone(),
        ));
        let issued = identity.issue().await?;
        tracing::info!(
            serial = %issued.serial,
            names = identity.names().join(","),
            not_after = %signet_ca::rfc3339(issued.not_after),
            "issued the server certificate"
        );
        let resolver = Arc::new(CertResolver::new(issued.key.clone()));
        // A client certificate's chain is completed with the issuing CAs whose
        // certificates may authenticate: the current one and the earlier ones kept.
        let issuers = ca
            .chain_der()
            .into_iter()
            .map(<[u8]>::to_vec)
            .chain(kept.iter().map(|k| k.previous.der.clone()))
            .collect();
        let config = tls::server_config(provider, ca.root_der(), issuers, resolver.clone())?;
        renewal = Some(tokio::spawn(identity.renew_forever(resolver, issued)));
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    };

    let state = state.with_previous_issuers(kept.iter().map(|k| k.previous.clone()).collect());
    // Tokens may name the CA under any of the server's own names and its port, not only
    // the URL: `https://localhost:8443` is this CA when it listens on 127.0.0.1:8443.
    let mut own_names: Vec<String> = ["localhost", "127.0.0.1", "::1"]
        .into_iter()
        .map(String::from)
        .chain(hostnames.iter().cloned())
        .collect();
    if !bound.ip().is_unspecified() {
        own_names.push(bound.ip().to_string());
    }
    let state = state.with_server_names(&own_names, &[bound.port()]);
    // 7. Revocation: the responder (which never sees the CA key: its signer certificate is
    // signed here), CRLs published on every revocation and on a schedule, and signer
    // certificates for standalone responders sharing the database.
    let rcfg = &cfg.responder;
    let responder = wiring::responder(
        store.clone(),
        signet_responder::IssuerCertificate::from_der(ca.cert_der())?,
        Some(signet_responder::IssuerCertificate::from_der(
            ca.root_der(),
        )?),
        kept.iter()
            .map(|k| signet_responder::IssuerCertificate::from_der(&k.previous.der))
            .collect::<Result<_, _>>()?,
        rcfg.ocsp_validity.duration(),
        cfg.urls.crl.clone(),
    )?;
    let certifier = CaCertifier::new(authority.clone(), rcfg.signer_lifetime.duration());
    responder
        .rotate_signer(&certifier)
        .await
        .context("issuing the OCSP responder's signing certificate")?;
    // CRLs of the current issuing CA and of the earlier ones whose keys were kept (not to the
    // in-process responder's issuing slot: it loads those from the store), so that relying
    // parties checking CRLs for the whole chain accept their certificates until they are
    // renewed. One publisher, holding only the CAs' CRL signers.
    let publisher = RevocationPublisher::new(
        store.clone(),
        ca.crl_signer()?,
        kept.iter()
            .filter_map(|k| k.ca.as_ref().map(|c| c.crl_signer()))
            .collect::<Result<_, _>>()?,
        CrlSchedule {
            interval: rcfg.crl_interval.duration(),
            validity: rcfg.crl_validity.duration(),
        },
        Some(Arc::new(ResponderListener(responder.clone()))),
    )
    .with_layout(CrlLayout {
        full_url: cfg.urls.crl.clone(),
        shards: cfg.crl.shards,
        delta: cfg.crl.delta,
    });
    let first_crls = publisher.publish_if_stale().await?;
    // The console's certificate page asks this responder, in process, for live status.
    let state = state.with_ocsp_lookup(wiring::ocsp_lookup(&responder));
    let state = state.with_revocation_hook({
        let publisher = publisher.clone();
        Arc::new(move |serial: &Serial, reason: RevocationReason| publisher.revoked(serial, reason))
    });
    let mut background = wiring::Background::default();
    background.spawn(responder.clone().run_signer(certifier));
    background.spawn(responder.clone().watch_changes());
    let acme_publisher = publisher.clone();
    background.spawn(publisher.run(first_crls));
    background.spawn(answer_signer_requests(
        authority.clone(),
        store.clone(),
        rcfg.signer_lifetime.duration(),
    ));
    // ACME (`acme` provisioners): one more front end over the same authority, store and
    // revocation hook. Its nonce key is shared through the database.
    let acme = signet_acme::AcmeServer::new(
        authority,
        store.clone(),
        acme_settings,
        !args.plain_http,
        Some(Arc::new(
            move |serial: &Serial, reason: RevocationReason| acme_publisher.revoked(serial, reason),
        )),
    )
    .await
    .context("setting up the ACME server")?
    .with_request_timeout(cfg.server.limits.request_timeout.duration())
    .with_refusal_hook({
        let state = state.clone();
        Arc::new(move |problem: &str| state.count_refusal(&format!("acme:{problem}")))
    });
    background.spawn(acme.clone().run_cleanup());
    background.spawn(crate::serve::retention::sweep_retention(
        store.clone(),
        cfg.retention.clone(),
    ));
    let reload_state = state.clone();
    let state = state.with_request_timeout(cfg.server.limits.request_timeout.duration());
    // The API's outer layers (HSTS, nosniff, latency by route) cover the ACME routes too;
    // each applies its own request timeout and body limit, answered in its own format.
    let router = signet_api::app_with(state, signet_acme::router(acme));

    // 8. Serve until SIGTERM or Ctrl-C: connections are taken from here on.
    let socket = socket
        .listen(BACKLOG)
        .with_context(|| format!("listening on {bound}"))?;
    let responder_socket = match responder_socket {
        Some(socket) => Some(listen_responder(socket, &cfg)?),
        None => None,
    };
    let shutdown = crate::serve::shutdown_broadcast(crate::serve::shutdown_signal()?);
    // SIGHUP reloads the provisioners. Installed before the "listening" line, so a SIGHUP
    // sent once the server says it listens never meets the default action (exit).
    let hangup = wiring::hangup()?;
    let reloader = tokio::spawn(reload::reload_on_sighup(
        hangup,
        config_path.clone(),
        reload_state,
    ));
    tracing::info!(
        root_fingerprint = %sha256_fingerprint(ca.root_der()),
        root_cert = %cfg.ca.root_cert.display(),
        "CA root"
    );
    tracing::info!(
        path = %cfg.server.admin_token_file.display(),
        "admin token file"
    );
    let _pid_file = args
        .pid_file
        .as_deref()
        .map(lock::PidFile::write)
        .transpose()?;
    tracing::info!(
        listen = %bound,
        url = %ca_url,
        tls = acceptor.is_some(),
        database = store.backend().as_str(),
        "signet serve is listening"
    );
    if let Some(path) = &args.ready_file {
        let responder_addr = match &responder_socket {
            Some(socket) => Some(socket.local_addr()?.to_string()),
            None => None,
        };
        crate::serve::write_ready_file(
            path,
            &serde_json::json!({
                "api": bound.to_string(),
                "url": ca_url,
                "responder": responder_addr,
            }),
        )?;
    }
    let limits = listener::Limits::from(&cfg.server.limits);
    let api = listener::serve(
        socket,
        router,
        None,
        Vec::new(),
        acceptor,
        limits,
        listener::Refusals::Problem,
        shutdown.wait(),
    );
    let ocsp = match responder_socket {
        Some(socket) => Some(spawn_responder_runtime(
            socket,
            signet_responder::app(responder.clone()),
            Some(responder_shortcut(&responder)),
            limits,
            shutdown.clone(),
            rcfg.threads,
        )?),
        None => None,
    };
    api.await;
    if let Some(ocsp) = ocsp {
        match tokio::task::spawn_blocking(move || ocsp.join()).await {
            Ok(Ok(())) => {}
            _ => tracing::warn!("the responder's thread ended abnormally"),
        }
    }

    if let Some(task) = &renewal {
        background.adopt(task);
    }
    background.adopt(&reloader);
    background.stop(&store).await;
    Ok(())
}

/// Makes a missing data directory (mode 0700, parents as needed); false if another process
/// made it first.
fn create_data_dir(dir: &Path) -> anyhow::Result<bool> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("creating {}", dir.display())),
    }
}

/// Serves the responder on its own threads, apart from the API's runtime: OCSP and CRL
/// answers then never wait behind the API's work (signature checks and signing under an
/// issuance burst). Each of the `threads` threads runs its own single-thread runtime; the
/// first also accepts, and hands the connections to the threads in turn, each connection
/// served wholly on one thread (read, answered and written with no cross-thread wake-ups,
/// as in each of nginx's worker processes), so a second thread adds throughput
/// (BENCHMARKS.md). Its database queries use the store's pool, whose connections stay
/// driven by the main runtime.
pub(crate) fn spawn_responder_runtime(
    socket: TcpListener,
    app: axum::Router,
    shortcut: Option<listener::Shortcut>,
    limits: listener::Limits,
    shutdown: crate::serve::Shutdown,
    threads: usize,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    // Moved as a std socket and registered with the new runtime's reactor, so that the
    // connections it accepts are driven there too.
    let socket = socket
        .into_std()
        .context("moving the responder's socket to its runtime")?;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the responder's runtime")
    };
    // The other threads serve until the accepting thread has drained its connections (the
    // sender is dropped then).
    let (done, done_rx) = tokio::sync::watch::channel(());
    let mut workers = Vec::new();
    let mut others = Vec::new();
    for _ in 1..threads.max(1) {
        let rt = runtime()?;
        workers.push(rt.handle().clone());
        let mut done_rx = done_rx.clone();
        others.push(
            std::thread::Builder::new()
                .name("signet-responder".into())
                .spawn(move || rt.block_on(async move { while done_rx.changed().await.is_ok() {} }))
                .context("starting the responder's threads")?,
        );
    }
    let rt = runtime()?;
    if !workers.is_empty() {
        workers.push(rt.handle().clone());
    }
    std::thread::Builder::new()
        .name("signet-responder".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(socket) {
                    Ok(socket) => {
                        let plain = listener::Refusals::PlainText;
                        let stop = shutdown.wait();
                        listener::serve(socket, app, shortcut, workers, None, limits, plain, stop)
                            .await;
                    }
                    Err(e) => tracing::error!(error = %e, "the responder cannot listen"),
                }
            });
            drop(done);
            for other in others {
                if other.join().is_err() {
                    tracing::warn!("a responder thread ended abnormally");
                }
            }
        })
        .context("starting the responder's thread")
}

/// The shortcut that answers the responder's cached GETs before its router.
pub(crate) fn responder_shortcut(responder: &signet_responder::Responder) -> listener::Shortcut {
    let responder = responder.clone();
    std::sync::Arc::new(move |req: &hyper::Request<hyper::body::Incoming>| {
        responder.cached_get(req.method(), req.uri(), req.headers())
    })
}

/// Connections waiting to be accepted, per listener (as tokio's `TcpListener::bind`).
const BACKLOG: u32 = 1024;

/// A socket bound to `addr` but not yet listening: the address is taken (a port in use is
/// found here, and port 0 gets its port), while connections are refused until the server
/// is ready to serve them.
fn reserve(addr: SocketAddr) -> std::io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As TcpListener::bind: a restart may reuse the port while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    Ok(socket)
}

/// The responder's socket, reserved: `None` when it is off, or when the default address is
/// taken (a configured one must be free).
fn reserve_responder(listen: ResponderListen) -> anyhow::Result<Option<TcpSocket>> {
    let (addr, explicit) = match listen {
        ResponderListen::Off => {
            tracing::info!("the OCSP responder is off (--responder-listen off)");
            return Ok(None);
        }
        ResponderListen::Default(addr) => (addr, false),
        ResponderListen::Explicit(addr) => (addr, true),
    };
    match reserve(addr) {
        Ok(socket) => Ok(Some(socket)),
        Err(e) if !explicit && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                listen = %addr,
                "the default OCSP responder address is taken: not serving OCSP and CRLs \
                 (set [responder] listen or --responder-listen)"
            );
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("responder: listening on {addr}")),
    }
}

/// The responder's reserved socket, listening; logged with the URLs certificates carry.
fn listen_responder(socket: TcpSocket, cfg: &Config) -> anyhow::Result<TcpListener> {
    let addr = socket.local_addr().context("the responder's address")?;
    let socket = socket
        .listen(BACKLOG)
        .with_context(|| format!("responder: listening on {addr}"))?;
    let bound = socket.local_addr().unwrap_or(addr);
    tracing::info!(
        listen = %bound,
        ocsp = cfg.urls.ocsp.as_deref().unwrap_or("-"),
        crl = cfg.urls.crl.as_deref().unwrap_or("-"),
        "the OCSP responder is listening over HTTP"
    );
    if let Some(url) = &cfg.urls.ocsp
        && !url.contains(&bound.to_string())
    {
        tracing::warn!(
            url,
            listen = %bound,
            "[urls] ocsp does not name the responder's address: check it reaches this listener"
        );
    }
    Ok(socket)
}

/// Refuse to serve with an issuing CA the root has revoked (`signet ca root-crl --revoke`):
/// everything it signed would fail chain checks at relying parties that read the root's CRL.
async fn refuse_revoked_issuing_ca(
    ca: &signet_ca::IssuingCa,
    store: &signet_store::Store,
) -> anyhow::Result<()> {
    let serial = signet_ca::CertificateInfo::from_der(ca.cert_der())?.serial;
    let record = store
        .get_certificate(&serial)
        .await
        .context("checking whether the root revoked the issuing CA")?;
    if let Some(rec) = record.filter(|r| *r.der == *ca.cert_der())
        && let Some(at) = rec.revoked_at
    {
        anyhow::bail!(
            "the issuing CA {} (serial {serial}) was revoked by the root at {}: relying \
             parties that check the root's CRL refuse everything it signs. Replace it with a \
             new issuing CA before serving.",
            ca.subject(),
            humantime::format_rfc3339_seconds(at.into()),
        );
    }
    Ok(())
}

/// An earlier issuing CA `signet ca new-issuing` kept beside the current one.
struct KeptIssuer {
    /// Its certificate, checked to be signed by the same root.
    previous: signet_ca::PreviousIssuer,
    /// It with its kept key (`issuing_ca.<serial>.key` beside the issuing key), if that
    /// loads: then `serve` goes on signing its CRLs.
    ca: Option<Arc<signet_ca::IssuingCa>>,
}

/// The earlier issuing CAs kept beside the current one (`issuing_ca.<serial>.crt`) and
/// signed by the same root: their certificates may still authenticate, to renew onto the
/// current CA or revoke themselves, until they expire; with their kept keys, their CRLs
/// are still published. A kept file that is not such a CA, or a key that does not load, is
/// skipped with a warning.
fn kept_issuers(ca: &signet_ca::IssuingCa, cfg: &crate::config::Config) -> Vec<KeptIssuer> {
    let passphrase = super::passphrase();
    let root_pem = crate::client::certificate_pem(ca.root_der());
    let mut found = Vec::new();
    for kept in crate::datadir::kept_issuing_ca_files(&cfg.ca.issuing_cert) {
        let previous = match ca.previous_issuer(&kept.der) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(file = %kept.path.display(), error = %e, "skipping a kept issuing CA");
                continue;
            }
        };
        // A key in a token has no file to sit beside: kept files sit beside the certificate.
        let key_base = if crate::config::KeyRef::is_uri(&cfg.ca.issuing_key) {
            &cfg.ca.issuing_cert
        } else {
            &cfg.ca.issuing_key
        };
        let key_path = crate::datadir::kept_issuing_file(key_base, &kept.serial, "key");
        let uri_path = crate::datadir::kept_issuing_file(&cfg.ca.issuing_cert, &kept.serial, "uri");
        let kept_ca = if !key_path.exists() && uri_path.exists() {
            // Its key is in a token (`ca new-issuing` kept its URI).
            let loaded = std::fs::read_to_string(&uri_path)
                .map_err(anyhow::Error::from)
                .and_then(|uri| Ok(uri.trim().parse::<signet_pkcs11::Pkcs11Uri>()?))
                .and_then(|uri| super::issue::open_pkcs11_key(cfg.pkcs11.as_ref(), uri))
                .and_then(|key| {
                    Ok(signet_ca::IssuingCa::with_signing_key(
                        &kept.pem,
                        &root_pem,
                        key,
                        cfg.issuance_urls(),
                    )?)
                });
            match loaded {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(file = %uri_path.display(), error = %e, "not publishing CRLs for a kept issuing CA: its key in the token does not load");
                    None
                }
            }
        } else if key_path.exists() {
            let loaded = signet_ca::read_private_key_file(
                &key_path,
                passphrase.as_ref().map(|p| p.as_str()),
            )
            .and_then(|key| {
                signet_ca::IssuingCa::new(&kept.pem, &root_pem, key, cfg.issuance_urls())
            });
            match loaded {
                Ok(c) => Some(Arc::new(c)),
                Err(e) => {
                    tracing::warn!(file = %key_path.display(), error = %e, "not publishing CRLs for a kept issuing CA: its key does not load");
                    None
                }
            }
        } else {
            None
        };
        tracing::info!(
            file = %kept.path.display(),
            crls = kept_ca.is_some(),
            "certificates of this earlier issuing CA may renew onto the current one"
        );
        found.push(KeptIssuer {
            previous,
            ca: kept_ca,
        });
    }
    found
}
