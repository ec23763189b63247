//! The one DNS client every validation lookup goes through (hickory-resolver): the
//! provisioner's resolver address, or the system's. Answers are not cached, so a TXT
//! record a client has just set, or changed after a failure, is seen at once; names are
//! looked up fully qualified, with no search domains and no hosts file.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::{FailureKind, VaError, ValidationFailure};

pub(crate) struct Resolver {
    inner: hickory_resolver::Resolver<TokioRuntimeProvider>,
}

impl Resolver {
    pub(crate) fn new(server: Option<SocketAddr>, timeout: Duration) -> Result<Self, VaError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(addr) => {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                let ns = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
                hickory_resolver::Resolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![ns]),
                    provider,
                )
            }
            None => hickory_resolver::Resolver::builder(provider)
                .map_err(|e| VaError::SystemResolver(e.to_string()))?,
        };
        let opts: &mut ResolverOpts = builder.options_mut();
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        // Each query attempt gets part of the validation's whole budget.
        opts.timeout = (timeout / 3).max(Duration::from_millis(200));
        opts.attempts = 2;
        let inner = builder
            .build()
            .map_err(|e| VaError::SystemResolver(e.to_string()))?;
        Ok(Resolver { inner })
    }

    /// The A and AAAA records of `name` (AAAA first, as Boulder tries IPv6 first).
    pub(crate) async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, ValidationFailure> {
        let fqdn = format!("{name}.");
        let lookup = self.inner.lookup_ip(fqdn.as_str()).await.map_err(|e| {
            if e.is_nx_domain() {
                ValidationFailure::new(
                    FailureKind::Dns,
                    format!("{name} does not exist (NXDOMAIN)"),
                )
            } else if e.is_no_records_found() {
                ValidationFailure::new(
                    FailureKind::Dns,
                    format!("no A or AAAA records found for {name}"),
                )
            } else {
                dns_failure(&format!("A/AAAA records of {name}"), &e)
            }
        })?;
        let mut addrs: Vec<IpAddr> = lookup.iter().collect();
        addrs.dedup();
        if addrs.is_empty() {
            return Err(ValidationFailure::new(
                FailureKind::Dns,
                format!("no A or AAAA records found for {name}"),
            ));
        }
        Ok(addrs)
    }

    /// Every TXT record at `name`, each record's strings joined (RFC 8555 section 8.4 lets
    /// a client split the value across strings).
    pub(crate) async fn txt(&self, name: &str) -> Result<Vec<Vec<u8>>, ValidationFailure> {
        let fqdn = format!("{name}.");
        let lookup = match self.inner.txt_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            // No such name or no TXT there: the caller says "no TXT record found".
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => return Err(dns_failure(&format!("TXT records of {name}"), &e)),
        };
        Ok(lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::TXT(txt) => Some(
                    txt.txt_data
                        .iter()
                        .flat_map(|s| s.iter().copied())
                        .collect::<Vec<u8>>(),
                ),
                _ => None,
            })
            .collect())
    }
}

fn dns_failure(what: &str, err: &hickory_resolver::net::NetError) -> ValidationFailure {
    ValidationFailure::new(
        FailureKind::Dns,
        format!("DNS lookup of the {what} failed: {err}"),
    )
}
