//! `signet-bench sign`: the raw signing rate of one CA key, with no HTTP, no certificate
//! encoding and no database: `-c` threads each calling [`SigningKey::sign`] in a loop on a
//! 400-byte message (the size of a leaf's TBSCertificate). For a PKCS#11 key each call is
//! one `C_SignInit` + `C_Sign` on a pooled session, so this is the module's own rate as
//! Signet drives it, to set beside `signet-bench issue` with the same key (BENCHMARKS.md).
//!
//! Every signature made in the timed loop is verified against the key's public key
//! afterwards (outside the timing); one that does not verify fails the run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use signet_ca::SigningKey;

/// Where the key is.
pub enum KeySource {
    /// A PKCS#8 PEM file, as `signet init` writes CA keys.
    File(PathBuf),
    /// A key in a PKCS#11 module, named by an RFC 7512 URI; the PIN comes from
    /// `SIGNET_PKCS11_PIN`.
    Pkcs11 { module: PathBuf, uri: String },
}

fn open(source: &KeySource, sessions: usize) -> anyhow::Result<Arc<dyn SigningKey>> {
    match source {
        KeySource::File(path) => {
            let key = signet_ca::read_private_key_file(path, None)
                .with_context(|| format!("reading {}", path.display()))?;
            Ok(signet_ca::signing_key_of(&key)?)
        }
        KeySource::Pkcs11 { module, uri } => {
            let module = signet_pkcs11::Module::open(module)?;
            let pin = signet_pkcs11::Pin::from_env()
                .with_context(|| format!("{} is not set", signet_pkcs11::PIN_ENV))?;
            let uri: signet_pkcs11::Pkcs11Uri = uri.parse()?;
            Ok(Arc::new(signet_pkcs11::Pkcs11Key::open(
                module, pin, uri, sessions,
            )?))
        }
    }
}

/// Signs for `duration` (or `max` signatures) on `threads` threads; prints the rate and
/// latency percentiles, then verifies every signature.
pub fn run(
    source: &KeySource,
    threads: usize,
    max: usize,
    duration: Option<Duration>,
) -> anyhow::Result<()> {
    let threads = threads.max(1);
    let key = open(source, threads)?;
    let stop = Arc::new(AtomicBool::new(false));
    let per_thread = max.div_ceil(threads);
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (key, stop) = (Arc::clone(&key), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut done = Vec::with_capacity(per_thread.min(1 << 20));
                let mut message = vec![0x5a_u8; 400];
                for i in 0..per_thread {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    message[..8].copy_from_slice(&(i as u64).to_be_bytes());
                    message[8] = t as u8;
                    let t0 = Instant::now();
                    let signature = key.sign(&message);
                    done.push((i as u64, t0.elapsed(), signature));
                }
                done
            })
        })
        .collect();
    if let Some(d) = duration {
        while started.elapsed() < d && !workers.iter().all(|w| w.is_finished()) {
            std::thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
    }
    let mut results = Vec::with_capacity(threads);
    for w in workers {
        results.push(
            w.join()
                .map_err(|_| anyhow::anyhow!("a signing thread panicked"))?,
        );
    }
    let elapsed = started.elapsed();

    let mut latencies = Vec::new();
    let (mut failed, mut bad) = (0usize, 0usize);
    let spki = key.spki_der();
    let algorithm = key.algorithm().algorithm_identifier();
    for (t, done) in results.iter().enumerate() {
        let mut message = vec![0x5a_u8; 400];
        for (i, took, signature) in done {
            latencies.push(*took);
            message[..8].copy_from_slice(&i.to_be_bytes());
            message[8] = t as u8;
            match signature {
                Ok(sig) => {
                    if !signet_pkix::cert::signature_verifies(&spki, algorithm, &message, sig) {
                        bad += 1;
                    }
                }
                Err(e) => {
                    if failed == 0 {
                        eprintln!("first failure: {e}");
                    }
                    failed += 1;
                }
            }
        }
    }
    let n = latencies.len();
    if n == 0 {
        bail!("no signature was made");
    }
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((n as f64 * p) as usize).min(n - 1)];
    println!(
        "{:?}, {threads} threads: {n} signatures in {:.2} s = {:.0}/s; p50 {:?} p99 {:?} max {:?}; \
         {failed} failed, {bad} did not verify (all {n} checked)",
        key.algorithm(),
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies[n - 1],
    );
    if failed > 0 || bad > 0 {
        bail!("{failed} signatures failed and {bad} did not verify");
    }
    Ok(())
}
