//! `signet staple`: its flags. What it does is the workload agent's (`signet_agent::staple`):
//! fetch a verified OCSP response for a server certificate and write it where a TLS server
//! staples it from (nginx `ssl_stapling_file`, HAProxy `.ocsp` files, Envoy `ocsp_staple`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use signet_agent::staple::StapleOptions;

#[derive(Debug, Args)]
#[command(after_long_help = "\
The response is verified before anything is written: a successful OCSP status, a signature by \
the issuer or by a responder the issuer certified with EKU OCSPSigning, the CertID of this \
certificate, thisUpdate not in the future and nextUpdate not passed. The file is the DER \
OCSPResponse, replaced atomically, mode 0644.

Exit status:
  0  the certificate is good; the staple was written.
  5  the responder says the certificate is revoked or unknown. A revoked answer is still \
written: it is the truth, and a client shown it refuses the certificate, as it should. An \
unknown answer is not written (the previous file, if any, is left in place): it means the \
responder does not know this certificate, usually a wrong --issuer or --url.
  1  no verified answer (responder unreachable, HTTP error, tryLater, bad signature, stale \
response, unreadable files); nothing was written.
  2  bad command line or input; nothing was asked or written.

Run it from cron (e.g. every hour, well inside the responder's nextUpdate) and reload the TLS \
server when the file changes.")]
pub struct StapleArgs {
    /// The server certificate, PEM or DER. In a chain file the first certificate is the leaf.
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// The certificate of the CA that issued it, PEM or DER (default: the second certificate
    /// in --cert).
    #[arg(long, value_name = "FILE")]
    issuer: Option<PathBuf>,
    /// Where to write the DER OCSP response (mode 0644, replaced atomically).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The OCSP responder (default: the certificate's AIA OCSP URL). http:// only.
    #[arg(long)]
    url: Option<String>,
    /// Give up after this long, e.g. 10s (at most 5m).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

impl From<StapleArgs> for StapleOptions {
    fn from(args: StapleArgs) -> StapleOptions {
        StapleOptions {
            cert: args.cert,
            issuer: args.issuer,
            out: args.out,
            url: args.url,
            timeout: args.timeout,
        }
    }
}

pub async fn run(args: StapleArgs) -> anyhow::Result<()> {
    signet_agent::staple::run(args.into()).await
}
