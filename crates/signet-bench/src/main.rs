//! `signet-bench`: a closed-loop load generator for Signet and its peers.
//!
//! * `issue`: `POST /v1/certificates` with a fresh provisioner token (ES256 or RS256, as the
//!   provisioner key is P-256 or RSA) and a distinct P-256 CSR per request, or cfssl's sign endpoint with
//!   `--target cfssl`. Every answer must be 201/200 with a certificate for the CSR's key.
//! * `ocsp`: GET (cached, RFC 5019) or `--post`, optionally `--nonce`. Every answer must be a
//!   signed OCSP response for the asked CertID with the expected status (signature checked;
//!   a byte-identical repeat of an already verified answer is accepted without re-verifying).
//! * `acme`: complete ACME orders (new order, http-01 answered by the tool's own responder,
//!   finalize, download) with the `instant-acme` client, distinct accounts and names, every
//!   answer checked; per-step latencies (`acme.rs`).
//! * `crl`: GET a CRL repeatedly; it must parse and list at least `--min-entries`.
//! * `sign`: no HTTP: one CA key (a file, or a PKCS#11 token) signing in a loop on `-c`
//!   threads, every signature verified afterwards (`sign.rs`).
//!
//! Everything a request needs (CSRs, tokens, OCSP requests) is made before the timed loop.
//! Each of the `-c` clients has its own HTTP/1.1 (or `--http2`) keep-alive connection, driven
//! through hyper's connection API (`conn.rs`) to keep the generator's own CPU cost low. Prints rate, p50,
//! p99, max latency and errors.

mod acme;
mod conn;
mod sign;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use clap::{Parser, Subcommand};
use der::Decode;
use rcgen::PublicKeyData;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use signet_ca::{CertIdHash, OcspRequestFor};

#[derive(Parser, Debug)]
#[command(about = "Closed-loop load generator for Signet (every response is checked)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Debug, Clone)]
struct Load {
    /// Concurrent clients, each with its own keep-alive connection.
    #[arg(short = 'c', long, default_value_t = 64)]
    concurrency: usize,
    /// Requests to send in all (prepared before the timed loop).
    #[arg(short = 'n', long, default_value_t = 20_000)]
    requests: usize,
    /// Stop after this long even if requests remain, e.g. 10s.
    #[arg(short = 'd', long, value_parser = humantime_secs)]
    duration: Option<Duration>,
    /// Untimed warm-up requests per client (connections opened, caches filled).
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Use HTTP/2 (one connection per client) instead of HTTP/1.1.
    #[arg(long)]
    http2: bool,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Issue certificates: Signet POST /v1/certificates, or cfssl's sign endpoint.
    Issue {
        /// Base URL (Signet: https://127.0.0.1:8443; several replicas comma-separated, dealt
        /// out to the clients in turn, with --aud) or, for cfssl, the full sign URL.
        #[arg(long)]
        url: String,
        /// signet | cfssl
        #[arg(long, default_value = "signet")]
        target: String,
        /// Provisioner key (PKCS#8 PEM) for signing tokens (Signet): P-256 signs ES256, RSA signs RS256.
        #[arg(long)]
        token_key: Option<PathBuf>,
        #[arg(long, default_value = "default")]
        provisioner: String,
        /// Token audience (default: --url without a trailing /).
        #[arg(long)]
        aud: Option<String>,
        /// Root certificate to trust for https (PEM).
        #[arg(long)]
        cacert: Option<PathBuf>,
        /// Use the admin bearer token in this file instead of provisioner tokens.
        #[arg(long)]
        admin_token: Option<PathBuf>,
        #[command(flatten)]
        load: Load,
    },
    /// Ask an OCSP responder about one certificate.
    Ocsp {
        /// Responder URL, e.g. http://127.0.0.1:8080/ocsp
        #[arg(long)]
        url: String,
        /// The certificate asked about (PEM).
        #[arg(long)]
        cert: PathBuf,
        /// Its issuer (PEM).
        #[arg(long)]
        issuer: PathBuf,
        /// POST the request instead of GET.
        #[arg(long)]
        post: bool,
        /// Send a fresh nonce with every request (implies POST).
        #[arg(long)]
        nonce: bool,
        /// good | revoked
        #[arg(long, default_value = "good")]
        expect: String,
        #[command(flatten)]
        load: Load,
    },
    /// Drive signet-store directly (no HTTP): per operation, consume a token and record a
    /// certificate with its audit row, as one issuance does. Measures group commit.
    Store {
        /// Database URL (sqlite://… or postgres://…); the schema is migrated first.
        #[arg(long)]
        db: String,
        /// Skip the token write (certificate + audit only).
        #[arg(long)]
        no_token: bool,
        /// Burn the token and record the certificate in one transaction
        /// (`insert_certificate_with_token`) instead of two.
        #[arg(long)]
        combined: bool,
        #[command(flatten)]
        load: Load,
    },
    /// Fill a database through the store's bulk path (`Store::insert_bulk`): COUNT
    /// certificate records of one issuing key, each with its audit row, REVOKED of them
    /// revoked, spread over SHARDS CRL shards by serial as issuance would. No HTTP.
    Fill {
        /// Database URL (sqlite://… or postgres://…); the schema is migrated first.
        #[arg(long)]
        db: String,
        /// The issuing key's identifier (hex), as `certificates.issuer_key_id`.
        #[arg(long)]
        issuer_key_id: String,
        /// Certificates to record.
        #[arg(long)]
        count: u64,
        /// How many of them are revoked (spread evenly).
        #[arg(long, default_value_t = 0)]
        revoked: u64,
        /// CRL shards (`[crl] shards`); 0: every certificate names the full CRL.
        #[arg(long, default_value_t = 0)]
        shards: u32,
        /// Certificates per transaction.
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Transactions in flight at once.
        #[arg(long, default_value_t = 2)]
        writers: usize,
        /// Bytes of DER stored per certificate (a P-256 leaf with SANs, AIA and CDP is
        /// about 700).
        #[arg(long, default_value_t = 700)]
        der_len: usize,
        /// Lifetime of the certificates from now, e.g. 24h.
        #[arg(long, value_parser = humantime_secs, default_value = "24h")]
        lifetime: Duration,
        /// Spread the notAfter dates evenly over this much time before now + lifetime (in
        /// 1000 steps), so that expiry filters select part of the population; shorter than
        /// the lifetime. 0: every certificate expires at now + lifetime.
        #[arg(long, value_parser = humantime_secs, default_value = "0s")]
        spread: Duration,
        /// Distinct names: certificate i is named `svc-<i mod NAMES>.fill.internal` (as
        /// renewals of the same services), so a name filter selects COUNT/NAMES of them.
        /// 0: a name of its own each (`<serial>.fill.internal`).
        #[arg(long, default_value_t = 0)]
        names: u64,
    },
    /// Complete ACME orders (newOrder, http-01 answered by this tool, finalize, download)
    /// with the instant-acme client, every answer checked.
    Acme(acme::AcmeArgs),
    /// Download a CRL repeatedly.
    Crl {
        #[arg(long)]
        url: String,
        /// Fail a response listing fewer revoked certificates than this.
        #[arg(long, default_value_t = 0)]
        min_entries: usize,
        #[command(flatten)]
        load: Load,
    },
    /// Sign with one CA key in a loop, no HTTP: a key file (`--key-file`) or a PKCS#11 key
    /// (`--pkcs11-module` and `--key`, PIN from SIGNET_PKCS11_PIN). Every signature is
    /// verified afterwards.
    Sign {
        /// A PKCS#8 PEM key file (unencrypted), as `signet init` writes CA keys.
        #[arg(long, conflicts_with_all = ["pkcs11_module", "key"])]
        key_file: Option<PathBuf>,
        /// The PKCS#11 module (e.g. SoftHSM2's libsofthsm2.so).
        #[arg(long, requires = "key")]
        pkcs11_module: Option<PathBuf>,
        /// The key's PKCS#11 URI (RFC 7512), e.g. pkcs11:token=signet;object=issuing-ca.
        #[arg(long, requires = "pkcs11_module")]
        key: Option<String>,
        /// Signing threads (and, for PKCS#11, sessions).
        #[arg(short = 'c', long, default_value_t = 2)]
        threads: usize,
        /// Signatures in all.
        #[arg(short = 'n', long, default_value_t = 100_000)]
        signatures: usize,
        /// Stop after this long even if signatures remain, e.g. 8s.
        #[arg(short = 'd', long, value_parser = humantime_secs)]
        duration: Option<Duration>,
    },
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    Ok(Duration::from_secs_f64(v * mul))
}

/// One prepared request.
#[derive(Clone)]
enum Prepared {
    Post {
        body: hyper::body::Bytes,
        content_type: &'static str,
        bearer: Option<Arc<str>>,
        check: Check,
    },
    Get {
        path: Arc<str>,
        check: Check,
    },
}

#[derive(Clone)]
enum Check {
    /// A certificate whose SubjectPublicKeyInfo is this (DER).
    Cert {
        spki: Arc<Vec<u8>>,
        cfssl: bool,
    },
    Ocsp {
        req: Arc<OcspRequestFor>,
        revoked: bool,
    },
    Crl {
        min_entries: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::Acme(a) => acme::run(a).await,
        Cmd::Issue {
            url,
            target,
            token_key,
            provisioner,
            aud,
            cacert,
            admin_token,
            load,
        } => {
            let cfssl = match target.as_str() {
                "signet" => false,
                "cfssl" => true,
                other => bail!("--target {other}: expected signet or cfssl"),
            };
            // Several replicas: comma-separated base URLs, dealt out to the clients in
            // turn (client i talks to replica i mod n), all under one token audience.
            let bases: Vec<String> = url
                .split(',')
                .map(|u| u.trim().trim_end_matches('/').to_string())
                .collect();
            if bases.len() > 1 && aud.is_none() && !cfssl && token_key.is_some() {
                bail!("several --url replicas need --aud (the [server] url they share)");
            }
            let base = bases[0].clone();
            let endpoint = bases
                .iter()
                .map(|b| {
                    if cfssl {
                        b.clone()
                    } else {
                        format!("{b}/v1/certificates")
                    }
                })
                .collect::<Vec<_>>()
                .join(",");
            let signer = match (&token_key, &admin_token, cfssl) {
                (_, _, true) => Bearer::None,
                (_, Some(path), false) => Bearer::Admin(Arc::from(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .trim(),
                )),
                (Some(path), None, false) => {
                    let key = signet_ca::read_private_key_file(path, None)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let pkcs8 = key.serialize_der();
                    let pair = if let Ok(ec) = EcdsaKeyPair::from_pkcs8(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        &pkcs8,
                        &SystemRandom::new(),
                    ) {
                        TokenKey::Es256(ec)
                    } else if let Ok(rsa) = ring::signature::RsaKeyPair::from_pkcs8(&pkcs8) {
                        TokenKey::Rs256(rsa)
                    } else {
                        bail!("the provisioner key must be P-256 (ES256) or RSA (RS256)");
                    };
                    Bearer::Token {
                        key: Arc::new(pair),
                        iss: provisioner.clone(),
                        aud: aud.clone().unwrap_or_else(|| base.clone()),
                    }
                }
                (None, None, false) => bail!("--token-key or --admin-token is needed for Signet"),
            };
            let total = load.requests + load.concurrency * load.warmup;
            eprintln!("preparing {total} CSRs and tokens ...");
            let t = Instant::now();
            let prepared = prepare_issue(total, cfssl, &signer).await?;
            eprintln!("prepared in {:.1}s", t.elapsed().as_secs_f64());
            let client = ClientSpec::new(cacert.as_deref(), load.http2)?;
            drive(&client, &endpoint, prepared, &load).await
        }
        Cmd::Ocsp {
            url,
            cert,
            issuer,
            post,
            nonce,
            expect,
            load,
        } => {
            let revoked = match expect.as_str() {
                "good" => false,
                "revoked" => true,
                other => bail!("--expect {other}: good or revoked"),
            };
            let leaf = read_cert_der(&cert)?;
            let issuer_der = read_cert_der(&issuer)?;
            let total = load.requests + load.concurrency * load.warmup;
            let base = url.trim_end_matches('/').to_string();
            let mut prepared = Vec::with_capacity(total);
            let rng = SystemRandom::new();
            let fixed = Arc::new(
                signet_ca::build_ocsp_request(&leaf, &issuer_der, CertIdHash::Sha1, None)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            );
            let get_path: Arc<str> = Arc::from(format!(
                "{base}/{}",
                STANDARD
                    .encode(&fixed.der)
                    .replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            ));
            let fixed_body = hyper::body::Bytes::from(fixed.der.clone());
            for _ in 0..total {
                let check_req = if nonce {
                    let mut n = [0u8; 16];
                    rng.fill(&mut n).map_err(|_| anyhow::anyhow!("rng"))?;
                    Arc::new(
                        signet_ca::build_ocsp_request(
                            &leaf,
                            &issuer_der,
                            CertIdHash::Sha1,
                            Some(&n),
                        )
                        .map_err(|e| anyhow::anyhow!("{e}"))?,
                    )
                } else {
                    Arc::clone(&fixed)
                };
                let check = Check::Ocsp {
                    req: Arc::clone(&check_req),
                    revoked,
                };
                prepared.push(if post || nonce {
                    Prepared::Post {
                        body: if nonce {
                            check_req.der.clone().into()
                        } else {
                            fixed_body.clone()
                        },
                        content_type: "application/ocsp-request",
                        bearer: None,
                        check,
                    }
                } else {
                    Prepared::Get {
                        path: Arc::clone(&get_path),
                        check,
                    }
                });
            }
            *ISSUER.lock().map_err(|_| anyhow::anyhow!("lock"))? = issuer_der;
            let client = ClientSpec::new(None, load.http2)?;
            drive(&client, &base, prepared, &load).await
        }
        Cmd::Store {
            db,
            no_token,
            combined,
            load,
        } => store_load(&db, no_token, combined, &load).await,
        Cmd::Fill {
            db,
            issuer_key_id,
            count,
            revoked,
            shards,
            batch,
            writers,
            der_len,
            lifetime,
            spread,
            names,
        } => {
            anyhow::ensure!(
                spread < lifetime || spread.is_zero(),
                "--spread must be shorter than --lifetime"
            );
            let spec = FillSpec {
                issuer_key_id,
                count,
                revoked,
                shards,
                batch: batch.max(1),
                writers: writers.max(1),
                der_len,
                lifetime,
                spread,
                names,
            };
            fill(&db, &spec).await
        }
        Cmd::Sign {
            key_file,
            pkcs11_module,
            key,
            threads,
            signatures,
            duration,
        } => {
            let source = match (key_file, pkcs11_module, key) {
                (Some(path), None, None) => sign::KeySource::File(path),
                (None, Some(module), Some(uri)) => sign::KeySource::Pkcs11 { module, uri },
                _ => bail!("give --key-file, or --pkcs11-module with --key"),
            };
            tokio::task::block_in_place(|| sign::run(&source, threads, signatures, duration))
        }
        Cmd::Crl {
            url,
            min_entries,
            load,
        } => {
            let total = load.requests + load.concurrency * load.warmup;
            let path: Arc<str> = Arc::from(url.as_str());
            let prepared = (0..total)
                .map(|_| Prepared::Get {
                    path: Arc::clone(&path),
                    check: Check::Crl { min_entries },
                })
                .collect();
            let client = ClientSpec::new(None, load.http2)?;
            drive(&client, &url, prepared, &load).await
        }
    }
}

static ISSUER: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

fn read_cert_der(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (label, der) =
        pem_rfc7468::decode_vec(text.trim().as_bytes()).context("expected a PEM certificate")?;
    if label != "CERTIFICATE" {
        bail!("{}: expected a CERTIFICATE, got {label}", path.display());
    }
    Ok(der)
}

#[derive(Clone)]
enum Bearer {
    None,
    Admin(Arc<str>),
    Token {
        key: Arc<TokenKey>,
        iss: String,
        aud: String,
    },
}

/// Makes `total` distinct CSRs (256 P-256 keys, a distinct name per CSR) and a token for
/// each, on every core.
async fn prepare_issue(
    total: usize,
    cfssl: bool,
    bearer: &Bearer,
) -> anyhow::Result<Vec<Prepared>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let run_id = {
        let mut b = [0u8; 4];
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| anyhow::anyhow!("rng"))?;
        u32::from_be_bytes(b)
    };
    let mut handles = Vec::new();
    for t in 0..threads {
        let bearer = bearer.clone();
        handles.push(tokio::task::spawn_blocking(
            move || -> anyhow::Result<Vec<Prepared>> {
                let keys: Vec<rcgen::KeyPair> = (0..256 / threads + 1)
                    .map(|_| rcgen::KeyPair::generate())
                    .collect::<Result<_, _>>()?;
                let now = time::OffsetDateTime::now_utc().unix_timestamp();
                let rng = SystemRandom::new();
                let mut out = Vec::new();
                for i in (t..total).step_by(threads) {
                    let key = &keys[i % keys.len()];
                    let cn = format!("h{i}-{run_id:08x}.bench.internal");
                    let mut params = rcgen::CertificateParams::new(vec![cn.clone()])?;
                    params.distinguished_name = rcgen::DistinguishedName::new();
                    params
                        .distinguished_name
                        .push(rcgen::DnType::CommonName, cn.as_str());
                    let csr = params.serialize_request(key)?.pem()?;
                    let body = if cfssl {
                        serde_json::json!({"certificate_request": csr, "profile": "server"})
                    } else {
                        serde_json::json!({"csr": csr})
                    };
                    let bearer = match &bearer {
                        Bearer::None => None,
                        Bearer::Admin(t) => Some(Arc::clone(t)),
                        Bearer::Token { key, iss, aud } => {
                            let mut jti = [0u8; 16];
                            rng.fill(&mut jti).map_err(|_| anyhow::anyhow!("rng"))?;
                            let claims = serde_json::json!({
                                "iss": iss, "aud": aud, "sub": "signet-bench",
                                "sans": [cn], "iat": now, "nbf": now, "exp": now + 290,
                                "jti": hex(&jti),
                            });
                            Some(Arc::from(sign_jwt(key, iss, &claims, &rng)?))
                        }
                    };
                    out.push(Prepared::Post {
                        body: serde_json::to_vec(&body)?.into(),
                        content_type: "application/json",
                        bearer,
                        check: Check::Cert {
                            spki: Arc::new(key.subject_public_key_info()),
                            cfssl,
                        },
                    });
                }
                Ok(out)
            },
        ));
    }
    let mut all = Vec::with_capacity(total);
    for h in handles {
        all.extend(h.await??);
    }
    Ok(all)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A provisioner's signing key: the algorithm follows the key, as the server pins it.
enum TokenKey {
    Es256(EcdsaKeyPair),
    Rs256(ring::signature::RsaKeyPair),
}

fn sign_jwt(
    key: &TokenKey,
    kid: &str,
    claims: &serde_json::Value,
    rng: &SystemRandom,
) -> anyhow::Result<String> {
    let alg = match key {
        TokenKey::Es256(_) => "ES256",
        TokenKey::Rs256(_) => "RS256",
    };
    let header = serde_json::json!({"alg": alg, "typ": "JWT", "kid": kid});
    let mut s = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?);
    s.push('.');
    s.push_str(&URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?));
    let sig = match key {
        TokenKey::Es256(k) => k
            .sign(rng, s.as_bytes())
            .map_err(|_| anyhow::anyhow!("signing the token"))?
            .as_ref()
            .to_vec(),
        TokenKey::Rs256(k) => {
            let mut sig = vec![0; k.public().modulus_len()];
            k.sign(
                &ring::signature::RSA_PKCS1_SHA256,
                rng,
                s.as_bytes(),
                &mut sig,
            )
            .map_err(|_| anyhow::anyhow!("signing the token"))?;
            sig
        }
    };
    s.push('.');
    s.push_str(&URL_SAFE_NO_PAD.encode(&sig));
    Ok(s)
}

struct ClientSpec {
    tls: Option<rustls::ClientConfig>,
    http2: bool,
}

impl ClientSpec {
    fn new(cacert: Option<&std::path::Path>, http2: bool) -> anyhow::Result<ClientSpec> {
        let tls = match cacert {
            None => None,
            Some(path) => {
                let der = read_cert_der(path)?;
                let mut roots = rustls::RootCertStore::empty();
                roots
                    .add(rustls_pki_types::CertificateDer::from(der))
                    .context("adding the root")?;
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let cfg = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .context("TLS configuration")?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(cfg)
            }
        };
        Ok(ClientSpec { tls, http2 })
    }

    /// Where the clients of a run connect: the server of `url`.
    fn target(&self, url: &str) -> anyhow::Result<Arc<conn::Target>> {
        Ok(Arc::new(conn::Target::new(
            url,
            self.tls.as_ref(),
            self.http2,
        )?))
    }
}

#[derive(Default)]
struct WorkerResult {
    latencies_us: Vec<u32>,
    errors: usize,
    first_errors: Vec<String>,
    bytes: u64,
}

async fn drive(
    spec: &ClientSpec,
    url: &str,
    prepared: Vec<Prepared>,
    load: &Load,
) -> anyhow::Result<()> {
    let c = load.concurrency.max(1);
    // Deal the prepared requests out to the clients.
    let mut per: Vec<Vec<Prepared>> = (0..c).map(|_| Vec::new()).collect();
    for (i, p) in prepared.into_iter().enumerate() {
        per[i % c].push(p);
    }
    // `url` may list several replicas, comma-separated: client i talks to replica i mod n.
    let replicas = url
        .split(',')
        .map(|u| Ok((spec.target(u)?, Arc::<str>::from(u))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Warm-up: open every connection and send a few untimed requests.
    let mut warm = tokio::task::JoinSet::new();
    for (i, reqs) in per.iter_mut().enumerate() {
        let take = load.warmup.min(reqs.len());
        let warmups: Vec<Prepared> = reqs.drain(..take).collect();
        let (target, url) = &replicas[i % replicas.len()];
        let mut client = conn::Conn::new(Arc::clone(target));
        let url = Arc::clone(url);
        warm.spawn(async move {
            let mut r = WorkerResult::default();
            for p in warmups {
                one(&mut client, &url, &p, &mut r).await;
            }
            (i, client, url, r)
        });
    }
    let mut warm_errors = 0;
    let mut clients = Vec::with_capacity(c);
    while let Some(done) = warm.join_next().await {
        let (i, client, url, r) = done?;
        clients.push((i, client, url));
        warm_errors += r.errors;
        for e in r.first_errors.iter().take(3) {
            eprintln!("warm-up error: {e}");
        }
    }
    if warm_errors > 0 {
        eprintln!("{warm_errors} warm-up errors");
    }

    let deadline = load.duration.map(|d| Instant::now() + d);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    clients.sort_by_key(|(i, _, _)| *i);
    for ((_, mut client, url), reqs) in clients.into_iter().zip(per) {
        set.spawn(async move {
            let mut r = WorkerResult {
                latencies_us: Vec::with_capacity(reqs.len()),
                ..Default::default()
            };
            for p in reqs {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                one(&mut client, &url, &p, &mut r).await;
            }
            r
        });
    }
    let mut results = Vec::new();
    while let Some(r) = set.join_next().await {
        results.push(r?);
    }
    report(results, start.elapsed(), c)
}

fn report(results: Vec<WorkerResult>, elapsed: Duration, c: usize) -> anyhow::Result<()> {
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut bytes = 0u64;
    let mut first = Vec::new();
    for r in results {
        lat.extend(r.latencies_us);
        errors += r.errors;
        bytes += r.bytes;
        first.extend(r.first_errors);
    }
    let elapsed = elapsed.as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
    };
    let ok = lat.len();
    println!(
        "requests={} ok={} errors={} elapsed={:.2}s rate={:.0}/s p50={:.2}ms p90={:.2}ms p99={:.2}ms max={:.2}ms concurrency={} avg_body={}B",
        ok + errors,
        ok,
        errors,
        elapsed,
        ok as f64 / elapsed,
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(1.0),
        c,
        if ok > 0 { bytes / ok as u64 } else { 0 },
    );
    for e in first.iter().take(5) {
        eprintln!("error: {e}");
    }
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    Ok(())
}

async fn one(client: &mut conn::Conn, url: &str, p: &Prepared, r: &mut WorkerResult) {
    let t = Instant::now();
    let (resp, check) = match p {
        Prepared::Post {
            body,
            content_type,
            bearer,
            check,
        } => {
            let mut headers = vec![("content-type", *content_type)];
            let auth;
            if let Some(b) = bearer {
                auth = format!("Bearer {b}");
                headers.push(("authorization", auth.as_str()));
            }
            let resp = client
                .send(hyper::Method::POST, url, &headers, body.clone())
                .await;
            (resp, check)
        }
        Prepared::Get { path, check } => (
            client
                .send(hyper::Method::GET, path, &[], hyper::body::Bytes::new())
                .await,
            check,
        ),
    };
    let outcome = match resp {
        Err(e) => Err(format!("{e:#}")),
        Ok((status, body)) => {
            let elapsed = t.elapsed();
            verify(status, &body, check).map(|()| (elapsed, body.len()))
        }
    };
    match outcome {
        Ok((elapsed, len)) => {
            r.latencies_us
                .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
            r.bytes += len as u64;
        }
        Err(e) => {
            r.errors += 1;
            if r.first_errors.len() < 3 {
                r.first_errors.push(e);
            }
        }
    }
}

thread_local! {
    /// The last OCSP response whose signature this thread verified.
    static VERIFIED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn verify(status: u16, body: &[u8], check: &Check) -> Result<(), String> {
    match check {
        Check::Cert { spki, cfssl } => {
            let want = if *cfssl { 200 } else { 201 };
            if status != want {
                return Err(format!(
                    "status {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                ));
            }
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| format!("JSON: {e}"))?;
            let pem = if *cfssl {
                v.pointer("/result/certificate")
            } else {
                v.get("certificate")
            }
            .and_then(|p| p.as_str())
            .ok_or("no certificate in the answer")?;
            let (_, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
                .map_err(|e| format!("certificate PEM: {e}"))?;
            let cert = x509_cert::Certificate::from_der(&der)
                .map_err(|e| format!("certificate DER: {e}"))?;
            let got = der::Encode::to_der(&cert.tbs_certificate.subject_public_key_info)
                .map_err(|e| format!("SPKI: {e}"))?;
            if got != spki.as_slice() {
                return Err("the certificate is not for the CSR's key".into());
            }
            Ok(())
        }
        Check::Ocsp { req, revoked } => {
            if status != 200 {
                return Err(format!("status {status}"));
            }
            let known = VERIFIED.with(|v| v.borrow().as_slice() == body);
            if known {
                return Ok(());
            }
            let issuer = ISSUER.lock().map_err(|_| "lock")?.clone();
            let v = signet_ca::verify_ocsp_response(
                body,
                req,
                &issuer,
                time::OffsetDateTime::now_utc(),
            )
            .map_err(|e| format!("OCSP: {e}"))?;
            let is_revoked = matches!(v.status, signet_ca::CertStatusKind::Revoked { .. });
            let is_good = matches!(v.status, signet_ca::CertStatusKind::Good);
            if (*revoked && !is_revoked) || (!*revoked && !is_good) {
                return Err(format!("unexpected status {:?}", v.status));
            }
            if req.nonce.is_none() {
                VERIFIED.with(|v| *v.borrow_mut() = body.to_vec());
            }
            Ok(())
        }
        Check::Crl { min_entries } => {
            if status != 200 {
                return Err(format!("status {status}"));
            }
            let crl = x509_cert::crl::CertificateList::from_der(body)
                .map_err(|e| format!("CRL DER: {e}"))?;
            let n = crl
                .tbs_cert_list
                .revoked_certificates
                .as_ref()
                .map_or(0, Vec::len);
            if n < *min_entries {
                return Err(format!("CRL lists {n} < {min_entries}"));
            }
            Ok(())
        }
    }
}

/// What `signet-bench fill` writes.
struct FillSpec {
    issuer_key_id: String,
    count: u64,
    revoked: u64,
    shards: u32,
    batch: usize,
    writers: usize,
    der_len: usize,
    lifetime: Duration,
    spread: Duration,
    names: u64,
}

/// `signet-bench fill`: batches of `spec.batch` records through `Store::insert_bulk`, with
/// `spec.writers` transactions in flight; prints the rate.
async fn fill(db: &str, spec: &FillSpec) -> anyhow::Result<()> {
    let store = signet_store::Store::connect(db).await?;
    store.migrate().await?;
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0)?;
    let not_after = now + spec.lifetime;
    // Every k-th certificate is revoked (k >= 1), the first `revoked` such.
    let every = spec
        .count
        .checked_div(spec.revoked)
        .map_or(u64::MAX, |k| k.max(1));
    let batches = spec.count.div_ceil(spec.batch as u64);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let revoked_so_far = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..spec.writers {
        let (store, next, revoked_so_far) = (store.clone(), next.clone(), revoked_so_far.clone());
        let (key, batch, count, shards, der_len, want_revoked) = (
            spec.issuer_key_id.clone(),
            spec.batch as u64,
            spec.count,
            spec.shards,
            spec.der_len,
            spec.revoked,
        );
        let (spread, names) = (time::Duration::try_from(spec.spread)?, spec.names);
        set.spawn(async move {
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return anyhow::Ok(());
                }
                let first = b * batch;
                let last = (first + batch).min(count);
                let mut rows = Vec::with_capacity((last - first) as usize);
                for i in first..last {
                    let serial = signet_ca::Serial::random()?;
                    let revoked = (i % every == 0
                        && revoked_so_far.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                            < want_revoked)
                        .then_some((now - time::Duration::seconds(30), revocation_reason(i)));
                    let name = match i.checked_rem(names) {
                        Some(n) => format!("svc-{n}.fill.internal"),
                        None => format!("{}.fill.internal", serial.to_hex()),
                    };
                    // Step (i mod 1000) of 1000 back from now + lifetime.
                    let not_after = not_after - spread * ((i % 1000) as f64 / 1000.0);
                    rows.push(signet_store::BulkCertificate {
                        cert: signet_store::NewCertificate {
                            crl_shard: (shards > 0).then(|| signet_ca::shard_of(&serial, shards)),
                            serial,
                            issuer: "CN=Signet Issuing CA".into(),
                            issuer_key_id: key.clone(),
                            subject: format!("CN={name}"),
                            sans: vec![format!("dns:{name}")],
                            profile: "server".into(),
                            not_before: now - time::Duration::seconds(60),
                            not_after,
                            requester: "token:default:fill".into(),
                            der: vec![0x30; der_len],
                        },
                        revoked,
                    });
                }
                store.insert_bulk(&rows, "token:default:fill").await?;
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r??;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "filled {} certificates ({} revoked, {} shards) in {secs:.1} s: {:.0} certificates/s",
        spec.count,
        revoked_so_far
            .load(std::sync::atomic::Ordering::Relaxed)
            .min(spec.revoked),
        spec.shards,
        spec.count as f64 / secs.max(1e-9)
    );
    Ok(())
}

/// A spread of reasons: unspecified, keyCompromise, cACompromise, affiliationChanged,
/// superseded, cessationOfOperation.
fn revocation_reason(i: u64) -> signet_ca::RevocationReason {
    let code = [0u8, 1, 2, 3, 4, 5][(i % 6) as usize];
    signet_ca::RevocationReason::from_code(code).unwrap_or(signet_ca::RevocationReason::Unspecified)
}

async fn store_load(db: &str, no_token: bool, combined: bool, load: &Load) -> anyhow::Result<()> {
    let store = signet_store::Store::connect(db).await?;
    store.migrate().await?;
    let run_id = {
        let mut b = [0u8; 4];
        SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| anyhow::anyhow!("rng"))?;
        u32::from_be_bytes(b)
    };
    let now = time::OffsetDateTime::now_utc();
    let der = Arc::new(vec![0x30u8; 700]);
    let c = load.concurrency.max(1);
    let per = load.requests / c;
    let deadline = load.duration.map(|d| Instant::now() + d);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for w in 0..c {
        let store = store.clone();
        let der = Arc::clone(&der);
        set.spawn(async move {
            let mut r = WorkerResult::default();
            for i in 0..per {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                // 0x7f prefix: positive, no leading zero byte.
                let serial = format!("7f{run_id:08x}{w:04x}{i:08x}");
                let parsed = match signet_ca::Serial::from_hex(&serial) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        r.errors += 1;
                        if r.first_errors.len() < 3 {
                            r.first_errors.push(format!("serial {serial}: {e}"));
                        }
                        continue;
                    }
                };
                let cert = signet_store::NewCertificate {
                    serial: parsed.clone(),
                    issuer: "CN=Bench Issuing CA".into(),
                    issuer_key_id: "00112233".into(),
                    subject: format!("CN={serial}.bench.internal"),
                    sans: vec![format!("dns:{serial}.bench.internal")],
                    profile: "server".into(),
                    not_before: now,
                    not_after: now + time::Duration::days(1),
                    requester: "token:default:bench".into(),
                    der: der.as_ref().clone(),
                    crl_shard: None,
                };
                let audit = signet_store::AuditEntry {
                    actor: "token:default:bench".into(),
                    action: signet_store::AuditAction::Issue,
                    serial: Some(parsed),
                    outcome: signet_store::AuditOutcome::Ok,
                    detail: String::new(),
                };
                let t = Instant::now();
                let res = async {
                    if combined {
                        let exp = now + time::Duration::minutes(5);
                        return if store
                            .insert_certificate_with_token("default", &serial, exp, &cert, &audit)
                            .await?
                        {
                            Ok(())
                        } else {
                            Err(signet_store::StoreError::Conflict("replay".into()))
                        };
                    }
                    if !no_token
                        && !store
                            .consume_token("default", &serial, now + time::Duration::minutes(5))
                            .await?
                    {
                        return Err(signet_store::StoreError::Conflict("replay".into()));
                    }
                    store.insert_certificate(&cert, &audit).await
                }
                .await;
                match res {
                    Ok(()) => r
                        .latencies_us
                        .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(e) => {
                        r.errors += 1;
                        if r.first_errors.len() < 3 {
                            r.first_errors.push(e.to_string());
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
    let elapsed = start.elapsed();
    store.close().await;
    report(results, elapsed, c)
}
