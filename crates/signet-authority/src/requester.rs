//! Who asks for a certificate: [`Requester`], and the one place it is rendered into the
//! string the store records (`requester` of a certificate, `actor` of an audit row) and the
//! API shows. [`RecordedRequester`] reads such a string back (renewal follows a line to its
//! origin).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use signet_ca::{Serial, SubjectName};

use crate::provisioner::Provisioner;

/// Who is asking, as authenticated by the caller of the authority. A requester vouched for
/// by a provisioner carries that provisioner (looked up once, when the request was
/// authenticated), never only its name.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Requester {
    /// The API's admin credential. Recorded as `admin`.
    Admin,
    /// The read-only `auditor` credential: it may read (listings, the audit log, the
    /// console) and never asks for anything, so the authority refuses it every request
    /// ([`crate::Refusal::ReadOnly`]). Recorded as `auditor`.
    Auditor,
    /// A requester vouched for by a `token` provisioner's one-time token. Recorded as
    /// `token:<provisioner>:<sub>`.
    Token {
        /// The provisioner that signed the token.
        provisioner: Arc<Provisioner>,
        /// The token's `sub`.
        subject: String,
        /// The names the token allows (its `sans` claim).
        sans: BTreeSet<SubjectName>,
    },
    /// A Kubernetes workload, by its service-account token. Recorded as
    /// `k8s:<provisioner>:<namespace>/<service account>`.
    Kubernetes {
        /// The `kubernetes` provisioner that verified the token.
        provisioner: Arc<Provisioner>,
        /// The service account's namespace.
        namespace: String,
        /// The service account's name.
        service_account: String,
        /// The names the provisioner's templates give the service account.
        names: BTreeSet<SubjectName>,
    },
    /// An ACME account (RFC 8555) of an `acme` provisioner, whose order's identifiers were
    /// validated by the ACME server. Recorded as `acme:<provisioner>:<account id>`.
    Acme {
        /// The `acme` provisioner the account belongs to.
        provisioner: Arc<Provisioner>,
        /// The account's id (the last segment of its URL).
        account: String,
    },
    /// The holder of a certificate this CA issued, renewing it. Recorded (as an audit actor)
    /// as `mtls:<serial>` or `x5c:<serial>`, by how it proved to hold the certificate.
    Holder {
        /// The certificate's serial (recorded in lowercase hex).
        serial: Serial,
        /// How the holder proved it.
        proof: HolderProof,
    },
    /// `signet issue --local`, `signet ca ...`: whoever holds the CA key on this machine.
    /// Recorded as `local:<user>(uid <uid>)`, `local:<user>`, `local:uid <uid>` or
    /// `local:unknown`, by what is known.
    Local {
        /// The OS user name, if known.
        user: Option<String>,
        /// The OS user id, if known.
        uid: Option<u32>,
    },
    /// `signet serve` issuing its own TLS certificate. Recorded as
    /// [`signet_store::SERVER_REQUESTER`].
    Server,
    /// An OCSP responder asking for its delegated signer certificate. Recorded as
    /// [`OCSP_SIGNER_REQUESTER`].
    OcspSigner,
}

/// The requester recorded for delegated OCSP signer certificates.
pub const OCSP_SIGNER_REQUESTER: &str = "signet-responder";

/// How a certificate's holder proved to hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HolderProof {
    /// Over mutual TLS: `mtls:`.
    Mtls,
    /// With a renewal token signed by the certificate's key (`x5c` header): `x5c:`.
    RenewalToken,
}

impl Requester {
    /// The local OS user running this process (`USER`, and the uid owning `/proc/self`).
    pub fn local_user() -> Requester {
        use std::os::unix::fs::MetadataExt;
        Requester::Local {
            user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
            uid: std::fs::metadata("/proc/self").map(|m| m.uid()).ok(),
        }
    }

    /// The provisioner that vouches for this requester, if one does.
    pub fn provisioner(&self) -> Option<&Arc<Provisioner>> {
        match self {
            Requester::Token { provisioner, .. }
            | Requester::Kubernetes { provisioner, .. }
            | Requester::Acme { provisioner, .. } => Some(provisioner),
            _ => None,
        }
    }

    /// The name issuance counts against in metrics: the provisioner's, else `admin`.
    pub fn provisioner_name(&self) -> &str {
        self.provisioner().map_or("admin", |p| p.name())
    }

    /// The requester as its provisioner knows it (a token's `sub`, a Kubernetes
    /// `namespace/serviceaccount`), for per-requester rate limits.
    pub fn provisioner_subject(&self) -> Option<String> {
        match self {
            Requester::Token { subject, .. } => Some(subject.clone()),
            Requester::Kubernetes {
                namespace,
                service_account,
                ..
            } => Some(format!("{namespace}/{service_account}")),
            Requester::Acme { account, .. } => Some(account.clone()),
            _ => None,
        }
    }
}

/// The one rendering of a requester, as recorded and shown.
impl fmt::Display for Requester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Requester::Admin => f.write_str("admin"),
            Requester::Auditor => f.write_str("auditor"),
            Requester::Token {
                provisioner,
                subject,
                ..
            } => write!(f, "token:{}:{subject}", provisioner.name()),
            Requester::Kubernetes {
                provisioner,
                namespace,
                service_account,
                ..
            } => write!(
                f,
                "k8s:{}:{namespace}/{service_account}",
                provisioner.name()
            ),
            Requester::Acme {
                provisioner,
                account,
            } => write!(f, "acme:{}:{account}", provisioner.name()),
            Requester::Holder { serial, proof } => match proof {
                HolderProof::Mtls => write!(f, "mtls:{serial}"),
                HolderProof::RenewalToken => write!(f, "x5c:{serial}"),
            },
            Requester::Local { user, uid } => match (user, uid) {
                (Some(u), Some(id)) => write!(f, "local:{u}(uid {id})"),
                (Some(u), None) => write!(f, "local:{u}"),
                (None, Some(id)) => write!(f, "local:uid {id}"),
                (None, None) => f.write_str("local:unknown"),
            },
            Requester::Server => f.write_str(signet_store::SERVER_REQUESTER),
            Requester::OcspSigner => f.write_str(OCSP_SIGNER_REQUESTER),
        }
    }
}

/// A requester as a certificate record names it, read back (without looking anything up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordedRequester<'a> {
    /// `token:<provisioner>:<sub>`.
    Token {
        /// The provisioner's name.
        provisioner: &'a str,
        /// The token's `sub`.
        subject: &'a str,
    },
    /// `k8s:<provisioner>:<namespace>/<service account>`.
    Kubernetes {
        /// The provisioner's name.
        provisioner: &'a str,
        /// The namespace.
        namespace: &'a str,
        /// The service account.
        service_account: &'a str,
    },
    /// `acme:<provisioner>:<account id>`.
    Acme {
        /// The provisioner's name.
        provisioner: &'a str,
        /// The account's id.
        account: &'a str,
    },
    /// `mtls:<serial>`: records written before renewals recorded their line's origin name
    /// the certificate that renewed.
    Renewal {
        /// The serial of the certificate that asked, as recorded.
        serial: &'a str,
    },
    /// Anything else: `admin`, `local:…`, the server's own, …: the CA-wide policy applies.
    CaWide,
}

impl<'a> RecordedRequester<'a> {
    /// Read a recorded requester. `Err` for a `k8s:` one without `namespace/name`.
    pub fn parse(recorded: &'a str) -> Result<RecordedRequester<'a>, MalformedRequester> {
        if let Some(serial) = recorded.strip_prefix("mtls:") {
            return Ok(RecordedRequester::Renewal { serial });
        }
        let mut parts = recorded.splitn(3, ':');
        Ok(match (parts.next(), parts.next(), parts.next()) {
            (Some("token"), Some(provisioner), Some(subject)) => RecordedRequester::Token {
                provisioner,
                subject,
            },
            (Some("acme"), Some(provisioner), Some(account)) => RecordedRequester::Acme {
                provisioner,
                account,
            },
            (Some("k8s"), Some(provisioner), Some(workload)) => {
                let (namespace, service_account) = workload
                    .split_once('/')
                    .ok_or_else(|| MalformedRequester(recorded.to_string()))?;
                RecordedRequester::Kubernetes {
                    provisioner,
                    namespace,
                    service_account,
                }
            }
            _ => RecordedRequester::CaWide,
        })
    }
}

/// A recorded requester that does not read as any requester Signet records.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("malformed requester {0:?} on record")]
pub struct MalformedRequester(pub String);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use signet_ca::Policy;

    #[test]
    fn requesters_render_as_recorded() {
        let token = Arc::new(Provisioner::token("ci", Policy::default()));
        let k8s = Arc::new(Provisioner::token("cluster", Policy::default()));
        let cases = [
            (Requester::Admin, "admin"),
            (
                Requester::Token {
                    provisioner: token,
                    subject: "build:42".into(),
                    sans: BTreeSet::new(),
                },
                "token:ci:build:42",
            ),
            (
                Requester::Kubernetes {
                    provisioner: k8s,
                    namespace: "prod".into(),
                    service_account: "api".into(),
                    names: BTreeSet::new(),
                },
                "k8s:cluster:prod/api",
            ),
            (
                Requester::Holder {
                    serial: Serial::from_hex("0a1b").unwrap(),
                    proof: HolderProof::Mtls,
                },
                "mtls:0a1b",
            ),
            (
                Requester::Holder {
                    serial: Serial::from_hex("0a1b").unwrap(),
                    proof: HolderProof::RenewalToken,
                },
                "x5c:0a1b",
            ),
            (
                Requester::Local {
                    user: Some("ops".into()),
                    uid: Some(1000),
                },
                "local:ops(uid 1000)",
            ),
            (
                Requester::Local {
                    user: Some("ops".into()),
                    uid: None,
                },
                "local:ops",
            ),
            (
                Requester::Local {
                    user: None,
                    uid: Some(0),
                },
                "local:uid 0",
            ),
            (
                Requester::Local {
                    user: None,
                    uid: None,
                },
                "local:unknown",
            ),
            (
                Requester::Acme {
                    provisioner: Arc::new(Provisioner::acme("web", Policy::default())),
                    account: "a1".into(),
                },
                "acme:web:a1",
            ),
            (Requester::Server, "signet-serve"),
            (Requester::OcspSigner, "signet-responder"),
        ];
        for (requester, recorded) in cases {
            assert_eq!(requester.to_string(), recorded);
        }
    }

    #[test]
    fn recorded_requesters_read_back() {
        assert_eq!(
            RecordedRequester::parse("token:ci:build:42"),
            Ok(RecordedRequester::Token {
                provisioner: "ci",
                subject: "build:42"
            })
        );
        assert_eq!(
            RecordedRequester::parse("k8s:cluster:prod/api"),
            Ok(RecordedRequester::Kubernetes {
                provisioner: "cluster",
                namespace: "prod",
                service_account: "api"
            })
        );
        assert_eq!(
            RecordedRequester::parse("mtls:0a1b"),
            Ok(RecordedRequester::Renewal { serial: "0a1b" })
        );
        assert_eq!(
            RecordedRequester::parse("acme:web:a1"),
            Ok(RecordedRequester::Acme {
                provisioner: "web",
                account: "a1"
            })
        );
        assert!(RecordedRequester::parse("k8s:cluster:prod").is_err());
        for ca_wide in ["admin", "local:ops(uid 1)", "signet-serve", "token:ci"] {
            assert_eq!(
                RecordedRequester::parse(ca_wide),
                Ok(RecordedRequester::CaWide)
            );
        }
    }
}
