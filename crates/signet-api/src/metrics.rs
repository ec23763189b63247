//! Prometheus metrics: issuance by profile and provisioner, refusals by problem type, and
//! request latency by route.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct IssuedLabels {
    pub profile: String,
    pub provisioner: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WorkloadLabels {
    pub provisioner: String,
    pub namespace: String,
    pub service_account: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RefusalLabels {
    #[prometheus(flatten)]
    pub problem: ProblemLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProblemLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabels {
    pub route: String,
    pub status: u16,
}

/// All of Signet's API metrics, registered once.
#[derive(Debug)]
pub(crate) struct Metrics {
    pub registry: Registry,
    pub issued: Family<IssuedLabels, Counter>,
    pub kubernetes_issued: Family<WorkloadLabels, Counter>,
    pub revoked: Counter,
    pub refusals: Family<RefusalLabels, Counter>,
    pub latency: Family<RouteLabels, Histogram>,
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("signet");
        let issued = Family::<IssuedLabels, Counter>::default();
        let kubernetes_issued = Family::<WorkloadLabels, Counter>::default();
        let revoked = Counter::default();
        let refusals = Family::<RefusalLabels, Counter>::default();
        let latency = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 14))
        });
        registry.register(
            "certificates_issued",
            "Certificates issued, by profile, provisioner and operation",
            issued.clone(),
        );
        registry.register(
            "kubernetes_certificates_issued",
            "Certificates issued to Kubernetes workloads, by provisioner, namespace and service account",
            kubernetes_issued.clone(),
        );
        registry.register(
            "certificates_revoked",
            "Certificates revoked",
            revoked.clone(),
        );
        registry.register(
            "refusals",
            "Requests refused, by problem type",
            refusals.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "API request latency by route and status",
            latency.clone(),
        );
        Arc::new(Metrics {
            registry,
            issued,
            kubernetes_issued,
            revoked,
            refusals,
            latency,
        })
    }

    pub fn refused(&self, slug: &str) {
        self.refusals
            .get_or_create(&RefusalLabels {
                problem: ProblemLabel {
                    r#type: slug.to_string(),
                },
            })
            .inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail except on fmt errors, which String never returns.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
