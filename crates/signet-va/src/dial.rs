//! Connecting for http-01 and tls-alpn-01: resolve through the VA's resolver, keep only the
//! addresses the network policy allows, and try them in order (IPv6 first, as Boulder
//! does), each with its own connect timeout so one dead address leaves time for the next.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::{FailureKind, Inner, ValidationFailure};

/// Where to connect: a DNS name to resolve, or an address as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Name(String),
    Ip(IpAddr),
}

/// A connection, with what was resolved on the way.
#[derive(Debug)]
pub(crate) struct Dialed {
    pub(crate) stream: TcpStream,
    pub(crate) resolved: Vec<IpAddr>,
    pub(crate) used: IpAddr,
}

pub(crate) async fn dial(va: &Inner, host: &Host, port: u16) -> Result<Dialed, ValidationFailure> {
    let resolved = match host {
        Host::Name(name) => va.resolver.addresses(name).await?,
        Host::Ip(ip) => vec![*ip],
    };
    let allowed: Vec<IpAddr> = resolved
        .iter()
        .copied()
        .filter(|ip| va.cfg.networks.allows(*ip))
        .collect();
    if allowed.is_empty() {
        let detail = match host {
            Host::Ip(ip) => format!("{ip} is outside the validation networks"),
            Host::Name(name) => {
                let list: Vec<String> = resolved.iter().map(IpAddr::to_string).collect();
                format!(
                    "{name} resolves only to addresses outside the validation networks ({})",
                    list.join(", ")
                )
            }
        };
        return Err(ValidationFailure::new(FailureKind::Connection, detail));
    }
    let per_address = (va.cfg.timeout / 3).max(Duration::from_millis(100));
    let mut last_error = String::new();
    for ip in &allowed {
        let addr = SocketAddr::new(*ip, port);
        match tokio::time::timeout(per_address, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                // Validation requests are small; send them at once.
                let _ = stream.set_nodelay(true);
                return Ok(Dialed {
                    stream,
                    resolved,
                    used: *ip,
                });
            }
            Ok(Err(e)) => last_error = format!("{addr}: {e}"),
            Err(_) => {
                last_error = format!(
                    "{addr}: connect timed out after {} ms",
                    per_address.as_millis()
                )
            }
        }
    }
    Err(ValidationFailure::new(
        FailureKind::Connection,
        format!("could not connect to {} ({last_error})", display(host)),
    ))
}

fn display(host: &Host) -> String {
    match host {
        Host::Name(name) => name.clone(),
        Host::Ip(ip) => ip.to_string(),
    }
}
