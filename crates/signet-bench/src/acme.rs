//! `acme`: complete ACME orders (RFC 8555) through the `instant-acme` client, against Signet or
//! a peer (Pebble): newOrder -> the authorization -> http-01 answered by this tool's own
//! responder -> poll until `ready` -> finalize with a CSR -> download the chain.
//!
//! Each order has its own IP identifier (RFC 8738) in 127.0.0.0/8, distinct within a run, so
//! the server's validation connects to that address on the http-01 port (every 127/8 address
//! reaches loopback on Linux; the responder must listen on 0.0.0.0 or that address). The
//! accounts (`--accounts`, each with its own key) and every order's P-256 key and CSR are
//! made before the timed loop; order i uses account i mod K. Every answer is checked: the new
//! order and its authorization are `pending` for exactly the asked identifier, the order
//! becomes `ready` and then `valid`, the chain has at least two certificates that parse, and
//! the leaf carries the CSR's key and exactly the order's IP address.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use der::{Decode, Encode};
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
};
use rcgen::PublicKeyData;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The steps of one order, in order; each is timed on its own.
pub const STEPS: [&str; 6] = [
    "newOrder",
    "authz",
    "challenge",
    "poll",
    "finalize",
    "download",
];

#[derive(clap::Args, Debug, Clone)]
pub struct AcmeArgs {
    /// The ACME directory URL, e.g. https://127.0.0.1:18443/acme/web/directory
    #[arg(long)]
    pub directory: String,
    /// Root certificate (PEM) that the server's TLS certificate chains to.
    #[arg(long)]
    pub cacert: PathBuf,
    /// Concurrent clients (each runs one order at a time).
    #[arg(short = 'c', long, default_value_t = 32)]
    pub concurrency: usize,
    /// Orders in all.
    #[arg(short = 'n', long, default_value_t = 2_000)]
    pub orders: usize,
    /// Distinct ACME accounts, made before the timed loop; order i uses account i mod K.
    #[arg(long, default_value_t = 64)]
    pub accounts: usize,
    /// Address of this tool's http-01 responder; its port is the server's http-01 port.
    /// The identifiers are spread over 127.0.0.0/8, so listen on 0.0.0.0 (or ::).
    #[arg(long)]
    pub http01_listen: SocketAddr,
    /// The first identifier's address; order i gets the i-th address after it in 127.0.0.0/8
    /// (skipping .0 and .255). Change it between runs against one database if names must
    /// not repeat.
    #[arg(long, default_value = "127.1.0.1", value_parser = parse_loopback)]
    pub first_ip: Ipv4Addr,
    /// Wait between two polls of an order that is not ready (or still processing), e.g. 5ms.
    #[arg(long, default_value = "5ms", value_parser = crate::humantime_secs)]
    pub poll_interval: Duration,
    /// Longest one order may take (every step and poll included) before it counts as
    /// failed, so that a server that never validates or never issues ends the run with
    /// errors instead of hanging it.
    #[arg(long, default_value = "60s", value_parser = crate::humantime_secs)]
    pub order_timeout: Duration,
}

fn parse_loopback(s: &str) -> Result<Ipv4Addr, String> {
    let ip: Ipv4Addr = s
        .parse()
        .map_err(|_| format!("{s:?} is not an IPv4 address"))?;
    if !ip.is_loopback() {
        return Err(format!("{ip} is not in 127.0.0.0/8"));
    }
    Ok(ip)
}

/// The `i`-th address after `first` in 127.0.0.0/8 whose last byte is neither 0 nor 255, or
/// None when 127/8 runs out.
pub fn nth_ip(first: Ipv4Addr, i: usize) -> Option<Ipv4Addr> {
    let start = u32::from(first) & 0x00ff_ffff;
    // Count only host bytes 1..=254: 254 usable addresses per /24.
    let (block, host) = (start >> 8, (start & 0xff).clamp(1, 254) - 1);
    let k = u64::from(block) * 254 + u64::from(host) + i as u64;
    let (block, host) = (k / 254, k % 254 + 1);
    if block > 0xffff {
        return None;
    }
    Some(Ipv4Addr::from(
        0x7f00_0000 | (block as u32) << 8 | host as u32,
    ))
}

/// http-01 answers by token; GET /.well-known/acme-challenge/TOKEN.
#[derive(Clone, Default)]
struct Responder {
    answers: Arc<Mutex<HashMap<String, String>>>,
}

impl Responder {
    async fn serve(&self, addr: SocketAddr) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("http-01 responder on {addr}"))?;
        let answers = Arc::clone(&self.answers);
        tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let answers = Arc::clone(&answers);
                tokio::spawn(answer_http01(conn, answers));
            }
        });
        Ok(())
    }

    fn set(&self, token: &str, key_authorization: &str) {
        if let Ok(mut m) = self.answers.lock() {
            m.insert(token.to_string(), key_authorization.to_string());
        }
    }

    fn remove(&self, token: &str) {
        if let Ok(mut m) = self.answers.lock() {
            m.remove(token);
        }
    }
}

/// Serves requests on one connection (keep-alive, as a validator may reuse it).
async fn answer_http01(
    mut conn: tokio::net::TcpStream,
    answers: Arc<Mutex<HashMap<String, String>>>,
) {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        let end = loop {
            if let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if len == buf.len() {
                return;
            }
            match conn.read(&mut buf[len..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => len += n,
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.copy_within(end..len, 0);
        len -= end;
        let path = head.split_whitespace().nth(1).unwrap_or("");
        let token = path
            .strip_prefix("/.well-known/acme-challenge/")
            .unwrap_or("");
        let answer = answers.lock().ok().and_then(|m| m.get(token).cloned());
        let resp = match answer {
            Some(body) => format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
                body.len()
            ),
            None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_string(),
        };
        if conn.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One order's material, made before the timed loop.
struct Prepared {
    ip: Ipv4Addr,
    csr: Vec<u8>,
    spki: Vec<u8>,
}

#[derive(Default)]
struct WorkerResult {
    /// Per step, microseconds.
    steps: [Vec<u32>; 6],
    orders_us: Vec<u32>,
    polls: usize,
    errors: usize,
    first_errors: Vec<String>,
}

pub async fn run(a: AcmeArgs) -> anyhow::Result<()> {
    if a.accounts == 0 || a.concurrency == 0 || a.orders == 0 {
        bail!("-c, -n and --accounts must be at least 1");
    }
    if nth_ip(a.first_ip, a.orders - 1).is_none() {
        bail!(
            "{} orders from {} do not fit in 127.0.0.0/8",
            a.orders,
            a.first_ip
        );
    }
    let responder = Responder::default();
    responder.serve(a.http01_listen).await?;

    eprintln!("creating {} accounts ...", a.accounts);
    let t = Instant::now();
    let mut accounts = Vec::with_capacity(a.accounts);
    for chunk in 0..a.accounts.div_ceil(16) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk * 16..((chunk + 1) * 16).min(a.accounts) {
            let (cacert, dir) = (a.cacert.clone(), a.directory.clone());
            set.spawn(async move {
                let new = NewAccount {
                    contact: &[],
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                Account::builder_with_root(&cacert)?
                    .create(&new, dir, None)
                    .await
                    .map(|(account, _)| account)
            });
        }
        while let Some(r) = set.join_next().await {
            accounts.push(r?.context("newAccount")?);
        }
    }
    eprintln!(
        "accounts in {:.1}s; preparing {} keys and CSRs ...",
        t.elapsed().as_secs_f64(),
        a.orders
    );
    let t = Instant::now();
    let prepared = prepare(a.first_ip, a.orders).await?;
    eprintln!("prepared in {:.1}s", t.elapsed().as_secs_f64());

    let prepared = Arc::new(prepared);
    let accounts = Arc::new(accounts);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency {
        let (prepared, accounts, next) = (
            Arc::clone(&prepared),
            Arc::clone(&accounts),
            Arc::clone(&next),
        );
        let responder = responder.clone();
        let interval = a.poll_interval;
        let order_timeout = a.order_timeout;
        set.spawn(async move {
            let mut r = WorkerResult::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = prepared.get(i) else { break };
                let account = &accounts[i % accounts.len()];
                let t = Instant::now();
                let done = tokio::time::timeout(
                    order_timeout,
                    one_order(account, p, &responder, interval, &mut r),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(anyhow::anyhow!(
                        "not complete after {:?} (the server never validated or issued?)",
                        order_timeout
                    ))
                });
                match done {
                    Ok(()) => r.orders_us.push(micros(t)),
                    Err(e) => {
                        r.errors += 1;
                        if r.first_errors.len() < 5 {
                            r.first_errors.push(format!("order {i} ({}): {e:#}", p.ip));
                        }
                    }
                }
            }
            r
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r?);
    }
    report(results, start.elapsed(), a.concurrency, a.accounts)
}

fn micros(t: Instant) -> u32 {
    u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)
}

/// A distinct P-256 key and CSR per order, on every core.
async fn prepare(first: Ipv4Addr, total: usize) -> anyhow::Result<Vec<Prepared>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let mut handles = Vec::new();
    for t in 0..threads {
        handles.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<Vec<(usize, Prepared)>> {
                let mut out = Vec::new();
                for i in (t..total).step_by(threads) {
                    let ip = nth_ip(first, i).context("out of 127.0.0.0/8")?;
                    let key = rcgen::KeyPair::generate()?;
                    let mut params = rcgen::CertificateParams::new(vec![ip.to_string()])?;
                    params.distinguished_name = rcgen::DistinguishedName::new();
                    let csr = params.serialize_request(&key)?.der().to_vec();
                    out.push((
                        i,
                        Prepared {
                            ip,
                            csr,
                            spki: key.subject_public_key_info(),
                        },
                    ));
                }
                Ok(out)
            },
        ));
    }
    let mut all = Vec::with_capacity(total);
    for h in handles {
        all.extend(h.await??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, p)| p).collect())
}

/// One complete order; each step's latency goes to `r.steps`.
async fn one_order(
    account: &Account,
    p: &Prepared,
    responder: &Responder,
    interval: Duration,
    r: &mut WorkerResult,
) -> anyhow::Result<()> {
    let ids = [Identifier::Ip(IpAddr::V4(p.ip))];
    // newOrder (instant-acme first takes a nonce with HEAD newNonce: counted here).
    let t = Instant::now();
    let mut order = account
        .new_order(&NewOrder::new(&ids))
        .await
        .context("newOrder")?;
    r.steps[0].push(micros(t));
    let st = order.state();
    if st.status != OrderStatus::Pending || st.authorizations.len() != 1 {
        bail!(
            "new order: status {:?}, {} authorizations (want pending, 1)",
            st.status,
            st.authorizations.len()
        );
    }

    let t = Instant::now();
    let mut authzs = order.authorizations();
    let mut authz = authzs
        .next()
        .await
        .context("no authorization")?
        .context("authorization")?;
    r.steps[1].push(micros(t));
    if authz.status != AuthorizationStatus::Pending {
        bail!("authorization is {:?}, want pending", authz.status);
    }
    if *authz.identifier().identifier != ids[0] {
        bail!(
            "authorization for {:?}, want {:?}",
            authz.identifier().identifier,
            ids[0]
        );
    }
    let mut challenge = authz
        .challenge(ChallengeType::Http01)
        .context("no http-01 challenge offered")?;
    let token = challenge.token.clone();
    responder.set(&token, challenge.key_authorization().as_str());
    let t = Instant::now();
    let set_ready = challenge.set_ready().await;
    r.steps[2].push(micros(t));
    set_ready.context("challenge")?;

    let t = Instant::now();
    let status = loop {
        let state = order.refresh().await.context("poll")?;
        r.polls += 1;
        if let Some(e) = &state.error {
            bail!("order error while polling: {e}");
        }
        match state.status {
            OrderStatus::Pending | OrderStatus::Processing => tokio::time::sleep(interval).await,
            s => break s,
        }
    };
    r.steps[3].push(micros(t));
    responder.remove(&token);
    if status != OrderStatus::Ready {
        bail!("order is {status:?} after validation, want ready");
    }

    let t = Instant::now();
    order.finalize_csr(&p.csr).await.context("finalize")?;
    r.steps[4].push(micros(t));
    let status = order.state().status;
    if !matches!(status, OrderStatus::Valid | OrderStatus::Processing) {
        bail!("order is {status:?} after finalize, want valid or processing");
    }

    let t = Instant::now();
    let chain = loop {
        match order.certificate().await.context("download")? {
            Some(chain) => break chain,
            None => tokio::time::sleep(interval).await,
        }
    };
    r.steps[5].push(micros(t));
    check_chain(&chain, &p.spki, p.ip)
}

/// The chain parses (at least two certificates), the leaf has `spki` and exactly the IP SAN `ip`.
pub fn check_chain(chain: &str, spki: &[u8], ip: Ipv4Addr) -> anyhow::Result<()> {
    let mut certs = Vec::new();
    for block in chain.split_inclusive("-----END CERTIFICATE-----") {
        let block = block.trim();
        if block.is_empty() {
            continue;
        }
        let (label, der) = pem_rfc7468::decode_vec(block.as_bytes()).context("chain: PEM")?;
        if label != "CERTIFICATE" {
            bail!("chain: a {label} block");
        }
        certs.push(x509_cert::Certificate::from_der(&der).context("chain: certificate")?);
    }
    if certs.len() < 2 {
        bail!(
            "chain has {} certificate(s), want the leaf and its issuer",
            certs.len()
        );
    }
    let leaf = &certs[0].tbs_certificate;
    if leaf.subject_public_key_info.to_der()? != spki {
        bail!("the leaf's key is not the CSR's");
    }
    if leaf.issuer != certs[1].tbs_certificate.subject {
        bail!("the leaf's issuer is not the chain's second certificate");
    }
    let san = leaf
        .get::<x509_cert::ext::pkix::SubjectAltName>()
        .context("leaf: subjectAltName")?
        .context("leaf: no subjectAltName")?
        .1;
    let want = ip.octets();
    let names: Vec<_> = san.0.iter().collect();
    match names.as_slice() {
        [x509_cert::ext::pkix::name::GeneralName::IpAddress(o)] if o.as_bytes() == want => Ok(()),
        _ => bail!("leaf names {names:?}, want exactly IP {ip}"),
    }
}

fn report(
    results: Vec<WorkerResult>,
    elapsed: Duration,
    c: usize,
    accounts: usize,
) -> anyhow::Result<()> {
    let mut all = WorkerResult::default();
    for r in results {
        for (a, b) in all.steps.iter_mut().zip(r.steps) {
            a.extend(b);
        }
        all.orders_us.extend(r.orders_us);
        all.polls += r.polls;
        all.errors += r.errors;
        all.first_errors.extend(r.first_errors);
    }
    let secs = elapsed.as_secs_f64();
    let ok = all.orders_us.len();
    let mut line = format!(
        "orders={} ok={ok} errors={} elapsed={secs:.2}s rate={:.0}/s concurrency={c} accounts={accounts} polls/order={:.2} order:{}",
        ok + all.errors,
        all.errors,
        ok as f64 / secs,
        if ok > 0 {
            all.polls as f64 / ok as f64
        } else {
            0.0
        },
        pcts(&mut all.orders_us),
    );
    for (name, lat) in STEPS.iter().zip(all.steps.iter_mut()) {
        line.push_str(&format!(" {name}:{}", pcts(lat)));
    }
    println!("{line}");
    for e in all.first_errors.iter().take(5) {
        eprintln!("error: {e}");
    }
    if all.errors > 0 {
        bail!("{} orders failed", all.errors);
    }
    Ok(())
}

/// "p50/p99/max" in milliseconds.
fn pcts(lat: &mut [u32]) -> String {
    if lat.is_empty() {
        return "-".into();
    }
    lat.sort_unstable();
    let at = |p: f64| {
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
    };
    format!("{:.1}/{:.1}/{:.1}ms", at(0.5), at(0.99), at(1.0))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_distinct_loopback_hosts() {
        let first: Ipv4Addr = "127.1.0.1".parse().unwrap();
        assert_eq!(nth_ip(first, 0), Some(Ipv4Addr::new(127, 1, 0, 1)));
        assert_eq!(nth_ip(first, 253), Some(Ipv4Addr::new(127, 1, 0, 254)));
        assert_eq!(nth_ip(first, 254), Some(Ipv4Addr::new(127, 1, 1, 1)));
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let ip = nth_ip(first, i).unwrap();
            assert!(ip.is_loopback());
            assert!(!matches!(ip.octets()[3], 0 | 255), "{ip}");
            assert!(seen.insert(ip), "{ip} twice");
        }
        assert_eq!(
            nth_ip(Ipv4Addr::new(127, 255, 255, 254), 0),
            Some(Ipv4Addr::new(127, 255, 255, 254))
        );
        assert_eq!(nth_ip(Ipv4Addr::new(127, 255, 255, 254), 1), None);
    }

    #[test]
    fn first_ip_must_be_loopback() {
        assert!(parse_loopback("127.2.3.4").is_ok());
        assert!(parse_loopback("10.0.0.1").is_err());
        assert!(parse_loopback("localhost").is_err());
    }

    #[test]
    fn chain_check_refuses_a_foreign_key_and_other_names() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "bench CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, &ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.1.0.9".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let chain = format!("{}{}", leaf.pem(), ca.pem());
        let ip = Ipv4Addr::new(127, 1, 0, 9);
        let spki = leaf_key.subject_public_key_info();
        check_chain(&chain, &spki, ip).unwrap();
        let other = rcgen::KeyPair::generate()
            .unwrap()
            .subject_public_key_info();
        assert!(check_chain(&chain, &other, ip).is_err());
        assert!(check_chain(&chain, &spki, Ipv4Addr::new(127, 1, 0, 8)).is_err());
        assert!(check_chain(&leaf.pem(), &spki, ip).is_err());
    }
}
