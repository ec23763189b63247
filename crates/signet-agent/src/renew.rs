//! `signet renew`: keep a workload's certificate fresh (the Kubernetes sidecar).
//!
//! It watches the files `signet bootstrap` wrote and, at two thirds of the certificate's
//! lifetime (brought forward by a random part of up to a tenth of it), renews with the
//! current certificate: over mutual TLS when it can be a TLS client certificate (the
//! clientAuth EKU, profiles `peer` and `client`), else with a renewal token its key signs
//! (see [`crate::renewal_token`]): `POST /v1/certificates/renew` with a CSR for a **new key**
//! each time (the server certifies the CSR's key and keeps the names and profile). It then
//! rewrites `tls.key` and `tls.crt` atomically (key first; see [`crate::workload`]) and runs
//! `--exec` or sends `--signal` to the process in `--pid-file`.
//!
//! With `--staple-file F` it also keeps an OCSP staple for the certificate in `F` (DER, as
//! nginx's `ssl_stapling_file` and HAProxy's `.ocsp` files want it): fetched from the
//! responder in the certificate's AIA and verified (see [`crate::staple`]) after each
//! renewal, and again at half of the staple's validity; only a "good" answer is written.
//! A refreshed staple also triggers `--exec`/`--signal`, so the server loads it.
//!
//! When renewal fails it keeps the current files and retries with capped exponential
//! backoff, logging a warning, then errors once less than a sixth of the lifetime is left,
//! and an error on every try once the certificate has expired. SIGTERM and SIGINT end it
//! cleanly (exit 0). `--once` renews if due (or with `--force`, at once) and exits.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use serde::Serialize;
use signet_ca::{KeyType, Lifetime, OffsetDateTime, SubjectName};
use tokio::signal::unix::{SignalKind, signal};

use crate::client::{self, Api, Bearer, CaUrl, ClientOptions};
use crate::workload::{self, Backoff, Current, ExitWith, Failure, Files, Retry, exit};

/// How long `--exec` may run before it is killed.
const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest sleep between two looks at the files (they may be replaced from outside, and
/// the clock may jump).
const MAX_SLEEP: Duration = Duration::from_secs(300);
/// Signals `--signal` may send.
const SIGNALS: [&str; 8] = [
    "HUP", "INT", "QUIT", "USR1", "USR2", "TERM", "WINCH", "ALRM",
];

/// What `signet renew` was asked: its flags, checked by [`run`] before anything is read or
/// requested.
#[derive(Debug, Clone)]
pub struct RenewOptions {
    /// The Signet API URL, e.g. https://signet.signet.svc:8443. The connection trusts only
    /// --ca-file and is authenticated by the certificate in --cert.
    pub ca_url: String,
    /// Directory holding ca.crt, tls.key and tls.crt, as `signet bootstrap --dir` writes them
    /// [default: /var/run/signet]. (`--out` is an old name of it.)
    pub dir: Option<PathBuf>,
    /// The certificate to keep fresh: PEM, the leaf first, then its chain; rewritten on each
    /// renewal [default: DIR/tls.crt].
    pub cert: Option<PathBuf>,
    /// Its private key (PKCS#8 PEM), replaced by a new key on each renewal (mode 0600)
    /// [default: DIR/tls.key].
    pub key: Option<PathBuf>,
    /// The CA root(s) to trust, PEM [default: DIR/ca.crt].
    pub ca_file: Option<PathBuf>,
    /// Type of the new private key made on each renewal: P-256, P-384 or Ed25519.
    pub key_type: KeyType,
    /// Lifetime to ask for [default: the profile's default_ttl].
    pub ttl: Option<String>,
    /// Renew once if due (past two thirds of the lifetime), then exit; for cron and CI.
    pub once: bool,
    /// With --once: renew even if not due.
    pub force: bool,
    /// Run this command (with sh -c) after each renewal, e.g. "nginx -s reload".
    pub exec: Option<String>,
    /// Send this signal (HUP, USR1, ...) to the process in --pid-file after each renewal.
    pub signal: Option<String>,
    /// File holding the process id that --signal goes to (read at each renewal).
    pub pid_file: Option<PathBuf>,
    /// Keep a verified OCSP staple (DER) for the certificate in this file: refreshed after
    /// each renewal and at half of its validity (with --once: fetched on every run).
    pub staple_file: Option<PathBuf>,
    /// With --once: give up when the CA has not answered (or kept answering 5xx/429) for
    /// this long.
    pub timeout: Duration,
}

/// `POST /v1/certificates/renew` body.
#[derive(Debug, Serialize)]
struct RenewBody<'a> {
    csr: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttl: Option<&'a str>,
}

fn usage(message: impl Into<String>) -> anyhow::Error {
    ExitWith::error(exit::USAGE, message)
}

/// The checked command line.
struct Settings {
    url: CaUrl,
    files: Files,
    key_type: KeyType,
    ttl: Option<String>,
    exec: Option<String>,
    signal: Option<(String, PathBuf)>,
    staple_file: Option<PathBuf>,
}

pub async fn run(args: RenewOptions) -> anyhow::Result<()> {
    let url = CaUrl::parse(&args.ca_url).map_err(|e| usage(crate::error::describe(&e)))?;
    if let Some(t) = &args.ttl {
        t.parse::<Lifetime>()
            .map_err(|e| usage(format!("--ttl: {e}")))?;
    }
    let signal = match (&args.signal, &args.pid_file) {
        (Some(sig), Some(pid_file)) => {
            let name = sig.trim().trim_start_matches("SIG").to_ascii_uppercase();
            if !SIGNALS.contains(&name.as_str()) {
                return Err(usage(format!(
                    "--signal {sig:?}: one of {}",
                    SIGNALS.join(", ")
                )));
            }
            Some((name, pid_file.clone()))
        }
        _ => None,
    };
    let settings = Settings {
        url,
        files: Files::new(&workload::workload_dir(args.dir.as_deref())).with_paths(
            args.cert.clone(),
            args.key.clone(),
            args.ca_file.clone(),
        ),
        key_type: args.key_type,
        ttl: args.ttl.clone(),
        exec: args.exec.clone(),
        signal,
        staple_file: args.staple_file.clone(),
    };
    if args.once {
        // A SIGHUP (a closed terminal, a process manager's reload) does not end a run that
        // may be retrying: it has read its files already, so there is nothing to re-read.
        let mut hup =
            tokio::signal::unix::signal(SignalKind::hangup()).context("listening for SIGHUP")?;
        let ignore = tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received during --once: carrying on");
            }
        });
        let result = run_once(&settings, args.force, args.timeout).await;
        ignore.abort();
        result
    } else {
        watch(&settings).await
    }
}

/// `--once`: renew if due (or forced), retrying transient failures until `timeout`.
async fn run_once(s: &Settings, force: bool, timeout: Duration) -> anyhow::Result<()> {
    let current = Current::read(&s.files).map_err(|e| {
        ExitWith::error(
            exit::FAILED,
            format!(
                "{} (run `signet bootstrap` first, or name the files with --cert, --key and --ca-file)",
                crate::error::describe(&e)
            ),
        )
    })?;
    let now = OffsetDateTime::now_utc();
    let due = current.renewal_time(0.0);
    if !force && now < due {
        tracing::info!(
            serial = %current.serial(),
            next_renewal = %workload::rfc3339(due),
            "not due for renewal yet (--force to renew anyway)"
        );
        if s.staple_file.is_some() {
            refresh_staple(s, &current)
                .await
                .map_err(|e| ExitWith::error(exit::FAILED, crate::error::describe(&e)))?;
            after_renewal(s, &current).await;
        }
        return Ok(());
    }
    let mut retry = Retry::new("renewing the certificate", timeout);
    loop {
        let Some(left) = retry.start_attempt() else {
            return Err(retry.gave_up("no attempt left"));
        };
        let result = match tokio::time::timeout(left, renew(s, &current)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Transient {
                message: "no answer before --timeout ran out".into(),
                retry_after: None,
            }),
        };
        match result {
            Ok(new) => {
                let stapled = if s.staple_file.is_some() {
                    refresh_staple(s, &new).await.map(|_| ())
                } else {
                    Ok(())
                };
                after_renewal(s, &new).await;
                // The new certificate is in place either way; a missing staple still fails
                // the run, so cron notices.
                return stapled
                    .map_err(|e| ExitWith::error(exit::FAILED, crate::error::describe(&e)));
            }
            Err(Failure::Transient {
                message,
                retry_after,
            }) => retry.wait(&message, retry_after).await?,
            Err(other) => return Err(other.into_exit()),
        }
    }
}

/// The sidecar loop: sleep until due, renew, repeat; until SIGTERM or SIGINT.
async fn watch(s: &Settings) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    // SIGHUP (what a process manager or `kill -HUP` sends to reload) re-reads the files at
    // once, instead of ending the process as the default action would.
    let mut hup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    // The renewal time last logged, so that it is logged once per certificate, not per wake.
    let mut announced: Option<(String, OffsetDateTime)> = None;
    // One draw per process: workloads started together spread their renewals.
    let jitter = workload::random_fraction();
    let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(120));
    // When the staple is due for a refresh (None: now), and for which certificate.
    let mut staple_due: Option<(String, OffsetDateTime)> = None;
    tracing::info!(
        cert = %s.files.cert.display(),
        key = %s.files.key.display(),
        ca_file = %s.files.ca.display(),
        ca_url = %s.url,
        "watching the certificate"
    );
    loop {
        let wait = match Current::read(&s.files) {
            Err(e) => {
                tracing::error!(
                    "cannot use {} with {}: {}; retrying (run `signet bootstrap` to write \
                     them)",
                    s.files.cert.display(),
                    s.files.key.display(),
                    crate::error::Causes(&e)
                );
                backoff.next_delay()
            }
            Ok(current) => {
                // A sidecar that can never renew should crash loudly, not wait for expiry.
                let now = OffsetDateTime::now_utc();
                let due = current.renewal_time(jitter);
                if now < due {
                    backoff.reset();
                    let mut next = due;
                    if s.staple_file.is_some() {
                        let serial = current.serial();
                        let staple_at = match &staple_due {
                            Some((for_serial, at)) if *for_serial == serial => *at,
                            _ => now,
                        };
                        let staple_at = if staple_at <= now {
                            let at = match refresh_staple(s, &current).await {
                                Ok(refresh_at) => {
                                    after_renewal(s, &current).await;
                                    refresh_at
                                }
                                Err(e) => {
                                    tracing::error!(
                                        "OCSP staple not refreshed (retrying in a minute): {}",
                                        crate::error::Causes(&e)
                                    );
                                    now + Duration::from_secs(60)
                                }
                            };
                            staple_due = Some((serial, at));
                            at
                        } else {
                            staple_at
                        };
                        next = next.min(staple_at);
                    }
                    let until = duration_until(now, next);
                    let serial = current.serial();
                    if announced.as_ref() != Some(&(serial.clone(), due)) {
                        tracing::info!(
                            serial,
                            not_after = %workload::rfc3339(current.info.not_after),
                            next_renewal = %workload::rfc3339(due),
                            "next renewal at {}",
                            workload::rfc3339(due)
                        );
                        announced = Some((serial, due));
                    }
                    until.min(MAX_SLEEP)
                } else {
                    // A SIGHUP meanwhile stays pending and is seen in the wait below.
                    let attempt = tokio::select! {
                        r = renew(s, &current) => r,
                        _ = term.recv() => return stopped("SIGTERM"),
                        _ = int.recv() => return stopped("SIGINT"),
                    };
                    match attempt {
                        Ok(new) => {
                            backoff.reset();
                            if s.staple_file.is_some() {
                                let at = match refresh_staple(s, &new).await {
                                    Ok(at) => at,
                                    Err(e) => {
                                        tracing::error!(
                                            "OCSP staple for the renewed certificate not \
                                             fetched (retrying in a minute): {}",
                                            crate::error::Causes(&e)
                                        );
                                        OffsetDateTime::now_utc() + Duration::from_secs(60)
                                    }
                                };
                                staple_due = Some((new.serial(), at));
                            }
                            after_renewal(s, &new).await;
                            continue;
                        }
                        Err(failure) => {
                            let delay = match &failure {
                                Failure::Transient {
                                    retry_after: Some(d),
                                    ..
                                } => *d,
                                _ => backoff.next_delay(),
                            };
                            report_failure(&current, &failure, delay);
                            delay
                        }
                    }
                }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = term.recv() => return stopped("SIGTERM"),
            _ = int.recv() => return stopped("SIGINT"),
            _ = hup.recv() => {
                tracing::info!(
                    cert = %s.files.cert.display(),
                    key = %s.files.key.display(),
                    ca_file = %s.files.ca.display(),
                    "SIGHUP: re-reading the certificate, key and CA files now (command-line \
                     flags and the environment stay as they were at start; restart to change \
                     them)"
                );
                // Re-announce the renewal time of whatever the files now hold.
                announced = None;
                backoff.reset();
            }
        }
    }
}

fn duration_until(now: OffsetDateTime, at: OffsetDateTime) -> Duration {
    let d = at - now;
    if d.is_negative() {
        Duration::ZERO
    } else {
        d.unsigned_abs()
    }
}

/// Fetch, verify and write the OCSP staple of `current`; answers when to refresh it (half
/// way through its validity, or in an hour when the responder gives no nextUpdate).
async fn refresh_staple(s: &Settings, current: &Current) -> anyhow::Result<OffsetDateTime> {
    let Some(path) = &s.staple_file else {
        return Ok(OffsetDateTime::now_utc() + MAX_SLEEP);
    };
    let leaf = current
        .chain
        .first()
        .ok_or_else(|| anyhow!("no certificate"))?;
    let issuer = current.chain.get(1).ok_or_else(|| {
        anyhow!(
            "{} holds no issuing CA after the leaf",
            s.files.cert.display()
        )
    })?;
    let staple =
        crate::staple::fetch_staple(leaf, issuer, None, crate::staple::DEFAULT_TIMEOUT).await?;
    let r = &staple.response;
    match r.status {
        signet_ca::CertStatusKind::Good => {}
        signet_ca::CertStatusKind::Revoked { at, .. } => {
            return Err(anyhow!(
                "the OCSP responder {} says certificate {} is REVOKED (since {at}); {} was not \
                 written",
                staple.url,
                current.serial(),
                path.display()
            ));
        }
        signet_ca::CertStatusKind::Unknown => {
            return Err(anyhow!(
                "the OCSP responder {} does not know certificate {}; {} was not written",
                staple.url,
                current.serial(),
                path.display()
            ));
        }
    }
    crate::files::write_atomic(path, &staple.der, 0o644)?;
    let refresh = match r.next_update {
        Some(next) if next > r.this_update => r.this_update + (next - r.this_update) / 2,
        _ => OffsetDateTime::now_utc() + Duration::from_secs(3600),
    }
    // A stale answer must not make the loop fetch (and reload the workload) without pause.
    .max(OffsetDateTime::now_utc() + Duration::from_secs(60));
    tracing::info!(
        serial = %current.serial(),
        responder = %staple.url,
        next_update = %r.next_update.map(signet_ca::rfc3339).unwrap_or_default(),
        refresh_at = %signet_ca::rfc3339(refresh),
        "OCSP staple written to {}",
        path.display()
    );
    Ok(refresh)
}

fn stopped(what: &str) -> anyhow::Result<()> {
    tracing::info!("{what} received; stopping");
    Ok(())
}

/// Log a failed renewal, louder as expiry nears.
fn report_failure(current: &Current, failure: &Failure, retry_in: Duration) {
    let now = OffsetDateTime::now_utc();
    let left = current.remaining(now);
    let serial = current.serial();
    let retry_in_s = retry_in.as_secs();
    let message = failure.message();
    if left.is_zero() {
        tracing::error!(
            %serial,
            not_after = %workload::rfc3339(current.info.not_after),
            retry_in_s,
            "renewal failed and the certificate HAS EXPIRED; TLS with it will fail. Keeping \
             the files and retrying; once expired, renewal is refused, so re-run \
             `signet bootstrap`: {message}"
        );
    } else if left < current.lifetime() / 6 {
        tracing::error!(
            %serial,
            not_after = %workload::rfc3339(current.info.not_after),
            expires_in_s = left.as_secs(),
            retry_in_s,
            "renewal failed and the certificate expires soon; keeping the current files and \
             retrying: {message}"
        );
    } else {
        tracing::warn!(
            %serial,
            not_after = %workload::rfc3339(current.info.not_after),
            expires_in_s = left.as_secs(),
            retry_in_s,
            "renewal failed; keeping the current files and retrying: {message}"
        );
    }
}

/// One renewal: a new key and CSR, the request authenticated by the current certificate
/// (over mTLS when it can be a TLS client certificate, else with a renewal token its key
/// signs), the answer checked against ca.crt, the files rewritten.
async fn renew(s: &Settings, current: &Current) -> Result<Current, Failure> {
    let (identity, bearer) = if current.can_renew_over_mtls() {
        let identity = ClientOptions {
            client_cert: Some(s.files.cert.clone()),
            client_key: Some(s.files.key.clone()),
            ..ClientOptions::default()
        }
        .client_identity()
        .map_err(Failure::Fatal)?;
        (identity, None)
    } else {
        let token = crate::renewal_token::renewal_token(
            &current.key,
            &current.chain,
            &current.serial(),
            &s.url,
            OffsetDateTime::now_utc(),
        )
        .map_err(Failure::Fatal)?;
        let bearer = Bearer::new(&token, "the renewal token").map_err(Failure::Fatal)?;
        (None, Some(bearer))
    };
    let api = Api::new(s.url.clone(), &current.roots, identity).map_err(Failure::Fatal)?;
    let (key, key_pem) = workload::new_key(s.key_type).map_err(Failure::Fatal)?;
    // The server keeps the recorded names and ignores the CSR's; they are sent for clarity.
    let csr = workload::csr_pem(&key, current.names()).map_err(Failure::Fatal)?;
    let body = RenewBody {
        csr: &csr,
        ttl: s.ttl.as_deref(),
    };
    let issued = workload::post_for_certificate(
        &api,
        crate::renewal_token::RENEW_PATH,
        &body,
        bearer.as_ref(),
    )
    .await?;
    let (info, chain) = issued
        .checked_chain(&key, &current.roots)
        .map_err(Failure::Fatal)?;
    if info.names != current.info.names {
        tracing::warn!(
            old = %tagged(current.names()),
            new = %tagged(&info.names),
            "the renewed certificate has other names than the current one"
        );
    }
    s.files
        .write_identity(&key_pem, &chain)
        .map_err(Failure::Fatal)?;
    tracing::info!(
        old_serial = %current.serial(),
        serial = %client::sanitize(&issued.serial_number, 80),
        not_after = %workload::rfc3339(info.not_after),
        "certificate renewed (new key) and written"
    );
    let renewed = Current {
        info,
        chain,
        roots: current.roots.clone(),
        key: workload::SecretKey::new(key),
    };
    renewed.verify(SystemTime::now()).map_err(Failure::Fatal)?;
    Ok(renewed)
}

fn tagged(names: &[SubjectName]) -> String {
    names
        .iter()
        .map(SubjectName::to_tagged)
        .collect::<Vec<_>>()
        .join(",")
}

/// Tell the workload: `--exec`, then `--signal`. Failures are logged, never fatal: the new
/// files are in place either way.
async fn after_renewal(s: &Settings, new: &Current) {
    if let Some(cmd) = &s.exec {
        match run_exec(cmd, &s.files, new).await {
            Ok(()) => tracing::info!("--exec command succeeded"),
            Err(e) => tracing::error!("--exec command failed: {}", crate::error::Causes(&e)),
        }
    }
    if let Some((sig, pid_file)) = &s.signal {
        match send_signal(sig, pid_file).await {
            Ok(pid) => tracing::info!(pid, "sent SIG{sig}"),
            Err(e) => tracing::error!("--signal {sig}: {}", crate::error::Causes(&e)),
        }
    }
}

/// `sh -c CMD`, with the new files named in the environment, bounded by [`EXEC_TIMEOUT`].
async fn run_exec(cmd: &str, files: &Files, new: &Current) -> anyhow::Result<()> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("SIGNET_CERT_FILE", &files.cert)
        .env("SIGNET_KEY_FILE", &files.key)
        .env("SIGNET_CA_CERT_FILE", &files.ca)
        .env("SIGNET_SERIAL", new.serial())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting sh -c")?;
    match tokio::time::timeout(EXEC_TIMEOUT, child.wait()).await {
        Ok(status) => {
            let status = status.context("waiting for the command")?;
            if status.success() {
                Ok(())
            } else {
                Err(anyhow!("it exited with {status}"))
            }
        }
        Err(_) => {
            let _ = child.kill().await;
            Err(anyhow!(
                "it did not finish within {}s and was killed",
                EXEC_TIMEOUT.as_secs()
            ))
        }
    }
}

/// Send `SIG<sig>` to the process whose id is in `pid_file`.
async fn send_signal(sig: &str, pid_file: &std::path::Path) -> anyhow::Result<u32> {
    let text = std::fs::read_to_string(pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 1)
        .ok_or_else(|| anyhow!("{} does not hold a process id", pid_file.display()))?;
    // The shell's built-in kill: slim images have no kill binary.
    let status = tokio::process::Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", sig])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .status()
        .await
        .context("running kill")?;
    if status.success() {
        Ok(pid)
    } else {
        Err(anyhow!("kill -s {sig} {pid} exited with {status}"))
    }
}
