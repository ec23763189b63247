//! [`Authority`]: issuance and renewal decisions, and the one sign -> record -> audit path.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use signet_ca::{
    CaError, Csr, IssuedCertificate, IssuingCa, Lifetime, OcspSignerCertificate, Policy, Profile,
    ProfileLimits, Serial, SubjectName,
};
use signet_store::{
    AuditAction, AuditEntry, AuditOutcome, CertificateRecord, NewCertificate, Store, StoreError,
};
use time::OffsetDateTime;

use crate::Refusal;
use crate::provisioner::Provisioner;
use crate::requester::{RecordedRequester, Requester};

/// How many `mtls:<serial>` requesters [`Authority::line_origin`] follows back.
const MAX_RENEWAL_HOPS: usize = 10_000;
/// The audit action of the server's own certificates ([`Requester::Server`]).
pub const SERVER_CERT_ACTION: AuditAction = AuditAction::IssueServerCert;
/// The audit action of a delegated OCSP signer certificate.
pub const OCSP_SIGNER_ACTION: AuditAction = AuditAction::IssueOcspSigner;

/// What else commits in the one transaction that records a certificate and its audit row.
#[derive(Clone, Copy, Debug)]
pub enum AlsoCommit<'a> {
    /// Nothing else.
    Nothing,
    /// Burn this single-use token; if it was already used, nothing is recorded
    /// ([`Refusal::TokenReplayed`]).
    BurnToken(&'a SingleUse),
    /// Answer this standalone responder's signer request (`ocsp_signer_requests` id) with the
    /// certificate; if another process answered it first, nothing is recorded
    /// ([`Refusal::AlreadyAnswered`]).
    SignerRequest(i64),
}

impl<'a> From<Option<&'a SingleUse>> for AlsoCommit<'a> {
    fn from(burn: Option<&'a SingleUse>) -> AlsoCommit<'a> {
        burn.map_or(AlsoCommit::Nothing, AlsoCommit::BurnToken)
    }
}

/// The issuing side of the CA: its key (through the CA core), its records (the store), and
/// the CA-wide policy and profile limits.
#[derive(Debug)]
pub struct Authority {
    ca: Arc<IssuingCa>,
    store: Store,
    /// The CA-wide `[policy]`: the admin's, the local CA holder's, and that of renewals of
    /// lines they (or the server) started.
    policy: Policy,
    profiles: BTreeMap<Profile, ProfileLimits>,
    /// Each store operation is bounded by this, when set (see
    /// [`Authority::set_database_timeout`]) ...
    database_timeout: OnceLock<Duration>,
    /// ... else by this, when given (see [`Authority::bounded_by_default`]).
    default_database_timeout: Option<Duration>,
}

/// A request for a new certificate, as the requester wrote it.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest<'a> {
    /// The PKCS#10 CSR, PEM or DER.
    pub csr: &'a [u8],
    /// The profile's name (`server`, `client`, `peer`); `None`: the requester's default.
    pub profile: Option<&'a str>,
    /// The lifetime, e.g. `24h`; `None`: the profile's default.
    pub ttl: Option<&'a str>,
}

/// A request to renew a certificate, made by its holder.
#[derive(Clone, Copy, Debug)]
pub struct RenewRequest<'a> {
    /// The certificate's record, as the holder's proof was checked against.
    pub record: &'a CertificateRecord,
    /// The certificate's public key (SubjectPublicKeyInfo, DER).
    pub spki_der: &'a [u8],
    /// The certificate's subject common name, kept.
    pub common_name: Option<&'a str>,
    /// A CSR for a new key (rekey), PEM or DER; its names are ignored.
    pub csr: Option<&'a [u8]>,
    /// The lifetime, e.g. `24h`; `None`: the profile's default.
    pub ttl: Option<&'a str>,
}

/// A single-use token's `jti`, burned in the same transaction that records the certificate.
#[derive(Clone, Debug)]
pub struct SingleUse {
    /// The namespace the `jti` is unique in (the provisioner's name, `renew:<serial>`).
    pub namespace: String,
    /// The token's `jti`.
    pub jti: String,
    /// The token's `exp` (the burn is kept until then).
    pub expires_at: OffsetDateTime,
}

/// A requested lifetime, parsed. One longer than any lifetime Signet can express is held
/// back until the maximum that applies to the request is known, so that its
/// `ttl-too-long` names that maximum (see [`CaError::against_max`]).
#[derive(Debug)]
pub enum Ttl {
    /// The profile's default.
    Default,
    /// This lifetime.
    Requested(Lifetime),
    /// Longer than Signet can express.
    BeyondAnyLimit(CaError),
}

impl Ttl {
    /// Parse `ttl`; any error but one of length is refused at once.
    pub fn parse(ttl: Option<&str>) -> Result<Ttl, CaError> {
        match ttl.map(str::parse::<Lifetime>).transpose() {
            Ok(None) => Ok(Ttl::Default),
            Ok(Some(l)) => Ok(Ttl::Requested(l)),
            Err(e @ CaError::LifetimeTooLong { .. }) => Ok(Ttl::BeyondAnyLimit(e)),
            Err(e) => Err(e),
        }
    }

    /// The lifetime to ask the CA core for, now that `max` is known.
    fn within(self, max: Lifetime) -> Result<Option<Lifetime>, CaError> {
        match self {
            Ttl::Default => Ok(None),
            Ttl::Requested(l) => Ok(Some(l)),
            Ttl::BeyondAnyLimit(e) => Err(e.against_max(max)),
        }
    }
}

impl From<Option<Lifetime>> for Ttl {
    fn from(ttl: Option<Lifetime>) -> Ttl {
        ttl.map_or(Ttl::Default, Ttl::Requested)
    }
}

/// A certificate signed and durably recorded, with its audit row.
#[derive(Debug)]
pub struct Recorded {
    /// The certificate.
    pub certificate: IssuedCertificate,
    /// Its serial, as recorded.
    pub serial: Serial,
    /// Whom the certificate's line was issued to, as recorded.
    pub requester: String,
    /// What it counts against: the provisioner's name, or `admin` (metrics).
    pub counted_against: String,
}

/// A certificate signed by a CA key (issuing CA or root), ready to be recorded by
/// [`Authority::record`].
#[derive(Debug)]
pub struct ToRecord<'a> {
    /// Its serial.
    pub serial: Serial,
    /// The signer's subject DN and key identifier.
    pub issuer: &'a IssuingCa,
    /// The subject DN (RFC 4514).
    pub subject: String,
    /// The names, tagged (`dns:…`).
    pub sans: Vec<String>,
    /// The profile it is filed under.
    pub profile: String,
    /// Validity.
    pub not_before: OffsetDateTime,
    /// Validity.
    pub not_after: OffsetDateTime,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// The CRL shard its CRL distribution point names (`None`: the full CRL, or none).
    pub crl_shard: Option<u32>,
}

impl Authority {
    /// The authority issuing with `ca` into `store`, under the CA-wide `policy` and the
    /// profile limits `profiles` (a profile not listed has the default limits).
    pub fn new(
        ca: Arc<IssuingCa>,
        store: Store,
        policy: Policy,
        profiles: BTreeMap<Profile, ProfileLimits>,
    ) -> Authority {
        Authority {
            ca,
            store,
            policy,
            profiles,
            database_timeout: OnceLock::new(),
            default_database_timeout: None,
        }
    }

    /// Bound every store operation by `timeout` until [`Authority::set_database_timeout`]
    /// sets another bound (the API's default database timeout).
    pub fn bounded_by_default(mut self, timeout: Duration) -> Authority {
        self.default_database_timeout = Some(timeout);
        self
    }

    /// Bound every store operation by `timeout`: one that has not completed by then is
    /// [`StoreError::Unavailable`] (abandoned, not undone). Set once; a second value is
    /// ignored. Unset: the default bound if one was given, else none (the store's own waits
    /// apply).
    pub fn set_database_timeout(&self, timeout: Duration) {
        let _ = self.database_timeout.set(timeout);
    }

    /// The issuing CA.
    pub fn ca(&self) -> &Arc<IssuingCa> {
        &self.ca
    }

    /// The limits of `profile`.
    pub fn limits(&self, profile: Profile) -> ProfileLimits {
        self.profiles.get(&profile).copied().unwrap_or_default()
    }

    /// The bound on each store operation in force.
    fn database_timeout(&self) -> Option<Duration> {
        self.database_timeout
            .get()
            .copied()
            .or(self.default_database_timeout)
    }

    async fn bound<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match self.database_timeout() {
            None => op.await,
            Some(limit) => match tokio::time::timeout(limit, op).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::timed_out(limit)),
            },
        }
    }

    /// Refuse a Kubernetes workload its provisioner's allow-lists do not admit (anyone else
    /// passes). [`Authority::issue`] checks this too; callers may check it first, before
    /// reading the rest of the request.
    pub fn admit(&self, requester: &Requester) -> Result<(), Refusal> {
        if let Requester::Kubernetes {
            provisioner,
            namespace,
            service_account,
            ..
        } = requester
            && let Some(names) = provisioner.kubernetes_names()
        {
            names.admit(namespace, service_account)?;
        }
        Ok(())
    }

    /// Issue a certificate for `request` to `requester`, and record it (burning `burn` in the
    /// same transaction, if given).
    ///
    /// The names must be within a token's `sans` and its provisioner's policy; a Kubernetes
    /// workload may have its template names and names its provisioner's policy allows (a CSR
    /// without names gets the template names; the default profile is `peer`); the admin and
    /// the local CA holder meet the CA-wide policy; the server's own certificate any name.
    pub async fn issue(
        &self,
        request: IssueRequest<'_>,
        requester: &Requester,
        burn: Option<&SingleUse>,
    ) -> Result<Recorded, Refusal> {
        self.admit(requester)?;
        let default_profile = match requester {
            Requester::Kubernetes { .. } => "peer",
            _ => "server",
        };
        let profile: Profile = request.profile.unwrap_or(default_profile).parse()?;
        let ttl = Ttl::parse(request.ttl)?;
        let csr = Csr::from_pem_or_der(request.csr)?;
        self.issue_csr(csr, profile, ttl, requester, burn).await
    }

    /// [`Authority::issue`] for a CSR, profile and lifetime already read.
    pub async fn issue_csr(
        &self,
        mut csr: Csr,
        profile: Profile,
        ttl: Ttl,
        requester: &Requester,
        burn: Option<&SingleUse>,
    ) -> Result<Recorded, Refusal> {
        if matches!(requester, Requester::Auditor) {
            return Err(Refusal::ReadOnly);
        }
        self.admit(requester)?;
        let policy = match requester {
            Requester::Token {
                provisioner, sans, ..
            } => {
                let outside: Vec<String> = csr
                    .names()
                    .iter()
                    .filter(|n| !sans.contains(n))
                    .map(SubjectName::to_tagged)
                    .collect();
                if !outside.is_empty() {
                    return Err(Refusal::NameDenied {
                        rule: "names not in the token's sans claim (a token allows only the names it was minted for: signet token --san NAME, for every name in the CSR, CN included)".into(),
                        names: outside,
                    });
                }
                provisioner.policy().clone()
            }
            Requester::Kubernetes {
                provisioner, names, ..
            } => {
                // The template names are the workload's own; anything else needs the policy.
                let outside: Vec<String> = csr
                    .names()
                    .iter()
                    .filter(|n| !names.contains(n) && !provisioner.policy().allows(n))
                    .map(SubjectName::to_tagged)
                    .collect();
                if !outside.is_empty() {
                    return Err(Refusal::NameDenied {
                        rule: format!(
                            "names neither the service account's own (the name templates of provisioner {:?}) nor allowed by that provisioner's policy",
                            provisioner.name()
                        ),
                        names: outside,
                    });
                }
                if csr.names().is_empty() {
                    csr = Csr::from_parts(csr.spki_der(), None, names.iter().cloned().collect())?;
                }
                widen(provisioner, names)?
            }
            // The ACME server has checked that the CSR's names are exactly the order's
            // identifiers, each proven by a challenge; the provisioner's policy still applies.
            Requester::Acme { provisioner, .. } => provisioner.policy().clone(),
            // The server names itself: its configured hostnames and addresses.
            Requester::Server => Policy::allow_all(),
            _ => self.policy.clone(),
        };
        let cert = self.sign(&csr, profile, ttl, &policy, |e| {
            whose_policy(e, requester, false)
        })?;
        let recorded = requester.to_string();
        let action = match requester {
            Requester::Server => SERVER_CERT_ACTION,
            _ => AuditAction::Issue,
        };
        self.record_issued(cert, &recorded, &recorded, action, burn)
            .await
            .map(|(certificate, serial)| Recorded {
                certificate,
                serial,
                requester: recorded.clone(),
                counted_against: requester.provisioner_name().to_string(),
            })
    }

    /// Renew a certificate for its holder `holder` (as [`Requester::Holder`]): the same
    /// names and profile, for the same key or a CSR's (rekey), if they still meet the current
    /// policy of whoever the certificate's line was first issued to. `provisioners` finds a
    /// provisioner in force now by name. The new certificate is recorded as that line's,
    /// with `holder` as the audit row's actor (burning `burn` in the same transaction).
    pub async fn renew(
        &self,
        request: RenewRequest<'_>,
        holder: &Requester,
        provisioners: impl Fn(&str) -> Option<Arc<Provisioner>>,
        burn: Option<&SingleUse>,
    ) -> Result<Recorded, Refusal> {
        if matches!(holder, Requester::Auditor) {
            return Err(Refusal::ReadOnly);
        }
        let rec = request.record;
        let profile: Profile = rec.profile.parse()?;
        let ttl = Ttl::parse(request.ttl)?;
        let spki = match request.csr {
            Some(csr) => Csr::from_pem_or_der(csr)?.spki_der().to_vec(),
            None => request.spki_der.to_vec(),
        };
        let names = rec
            .sans
            .iter()
            .map(|s| SubjectName::parse_tagged(s))
            .collect::<Result<Vec<_>, _>>()?;
        let csr = Csr::from_parts(&spki, request.common_name.map(str::to_string), names)?;
        // Renewal keeps the names, but they must still be allowed to whoever the line was
        // first issued to.
        let origin = self.line_origin(rec).await?;
        let (policy, counted_against) = self.renewal_policy(&origin, provisioners)?;
        let cert = self.sign(&csr, profile, ttl, &policy, |e| {
            name_denied_by(e, &counted_against, true)
        })?;
        let actor = holder.to_string();
        let (certificate, serial) = self
            .record_issued(cert, &actor, &origin, AuditAction::Renew, burn)
            .await?;
        Ok(Recorded {
            certificate,
            serial,
            requester: origin,
            counted_against,
        })
    }

    /// Sign `csr` under `profile`'s limits and `policy`, for `ttl` within the lifetime they
    /// allow; a refusal of the CA core's is turned into the caller's words by `refused`.
    fn sign(
        &self,
        csr: &Csr,
        profile: Profile,
        ttl: Ttl,
        policy: &Policy,
        refused: impl FnOnce(CaError) -> Refusal,
    ) -> Result<IssuedCertificate, Refusal> {
        let limits = self.limits(profile);
        let ttl = ttl.within(policy.max_lifetime(&limits))?;
        self.ca
            .issue(
                csr,
                profile,
                &limits,
                ttl,
                policy,
                OffsetDateTime::now_utc(),
            )
            .map_err(refused)
    }

    /// Whom a certificate's line was first issued to (`token:…`, `k8s:…`, `admin`,
    /// `local:…`), as recorded.
    ///
    /// A renewal records its line's origin as the requester (its audit row's actor names the
    /// certificate that asked), so this is normally the record's own requester. Records
    /// written before renewals did that name `mtls:<serial>` of the certificate that
    /// renewed: those are followed back, and the renewal about to be recorded carries the
    /// answer forward.
    async fn line_origin(&self, rec: &CertificateRecord) -> Result<String, Refusal> {
        let mut requester = rec.requester.clone();
        for _ in 0..MAX_RENEWAL_HOPS {
            let parent = match RecordedRequester::parse(&requester) {
                Ok(RecordedRequester::Renewal { serial }) => serial.to_string(),
                _ => return Ok(requester),
            };
            let untraceable = || {
                Refusal::RenewalDenied(format!(
                    "this certificate's renewals cannot be traced back to its first issuance \
                     (there is no record of {parent}): request a new certificate"
                ))
            };
            // Recorded as the store spells a serial; anything else names no record.
            let serial = Serial::from_hex(&parent)
                .ok()
                .filter(|s| s.to_hex() == parent)
                .ok_or_else(untraceable)?;
            requester = self
                .bound(self.store.get_certificate(&serial))
                .await?
                .ok_or_else(untraceable)?
                .requester;
        }
        Err(Refusal::RenewalDenied(format!(
            "this certificate was renewed more than {MAX_RENEWAL_HOPS} times before renewals \
             recorded their origin: request a new certificate"
        )))
    }

    /// The policy a renewal must meet, and the provisioner it counts against: those of
    /// whoever the line was first issued to, as configured now. A tightened policy, a
    /// narrowed Kubernetes allow-list or a removed provisioner therefore takes effect at the
    /// next renewal instead of never. Certificates first issued with the admin credential,
    /// by `signet issue --local` (the CA key's holder) or for the server itself meet the
    /// CA-wide policy, as the admin's do.
    fn renewal_policy(
        &self,
        origin: &str,
        provisioners: impl Fn(&str) -> Option<Arc<Provisioner>>,
    ) -> Result<(Policy, String), Refusal> {
        let gone = |name: &str| {
            Refusal::RenewalDenied(format!(
                "this certificate was first issued through provisioner {name:?}, which is no \
                 longer configured, so it cannot be renewed: request a new certificate"
            ))
        };
        match RecordedRequester::parse(origin).map_err(|e| Refusal::Internal(e.to_string()))? {
            RecordedRequester::Token { provisioner, .. } => match provisioners(provisioner) {
                Some(p) if p.kubernetes_names().is_none() => {
                    Ok((p.policy().clone(), provisioner.to_string()))
                }
                _ => Err(gone(provisioner)),
            },
            RecordedRequester::Kubernetes {
                provisioner,
                namespace,
                service_account,
            } => {
                let p = provisioners(provisioner).ok_or_else(|| gone(provisioner))?;
                let k8s = p.kubernetes_names().ok_or_else(|| gone(provisioner))?;
                k8s.admit(namespace, service_account)?;
                // As at issuance: the template names are the workload's own, anything else
                // needs the provisioner's policy.
                let names = k8s.names_for(namespace, service_account)?;
                Ok((widen(&p, &names)?, provisioner.to_string()))
            }
            // An ACME account proves control of its names again for each certificate.
            RecordedRequester::Acme { provisioner, .. } => Err(Refusal::RenewalDenied(format!(
                "this certificate was issued through the ACME provisioner {provisioner:?}: \
                 renew it through ACME (a new order)"
            ))),
            RecordedRequester::Renewal { .. } | RecordedRequester::CaWide => {
                Ok((self.policy.clone(), "admin".to_string()))
            }
        }
    }

    /// Record a certificate the issuing CA just signed, as issued to `requester`, with an
    /// audit row by `actor`.
    async fn record_issued(
        &self,
        cert: IssuedCertificate,
        actor: &str,
        requester: &str,
        action: AuditAction,
        burn: Option<&SingleUse>,
    ) -> Result<(IssuedCertificate, Serial), Refusal> {
        let sans: Vec<String> = cert.names.iter().map(SubjectName::to_tagged).collect();
        let detail = format!("profile={} names={}", cert.profile, sans.join(","));
        let to_record = ToRecord {
            serial: cert.serial.clone(),
            issuer: &self.ca,
            subject: cert.subject.clone(),
            sans,
            profile: cert.profile.to_string(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            der: cert.der.clone(),
            crl_shard: cert.crl_shard,
        };
        let serial = self
            .record(
                to_record,
                requester,
                actor,
                action.clone(),
                detail,
                burn.into(),
            )
            .await?;
        tracing::info!(%serial, actor, requester, profile = %cert.profile, "certificate {action}d");
        Ok((cert, serial))
    }

    /// Sign a delegated OCSP signer certificate for `spki_der` (RFC 6960 section 4.2.2.2)
    /// valid for `lifetime`, and record it (requester [`Requester::OcspSigner`], profile
    /// [`OcspSignerCertificate::PROFILE`]) before it is handed out: to the in-process
    /// responder (`request` `None`), or as the answer to a standalone responder's signer
    /// request `request`, in the same transaction.
    pub async fn certify_ocsp_signer(
        &self,
        spki_der: &[u8],
        lifetime: Duration,
        request: Option<i64>,
    ) -> Result<OcspSignerCertificate, Refusal> {
        let cert = self
            .ca
            .issue_ocsp_signer(spki_der, lifetime, OffsetDateTime::now_utc())?;
        let (detail, also) = match request {
            None => ("in-process responder".to_string(), AlsoCommit::Nothing),
            Some(id) => (
                format!("signer request {id}"),
                AlsoCommit::SignerRequest(id),
            ),
        };
        let requester = Requester::OcspSigner.to_string();
        let to_record = ToRecord {
            serial: cert.serial.clone(),
            issuer: &self.ca,
            subject: cert.subject.clone(),
            sans: Vec::new(),
            profile: OcspSignerCertificate::PROFILE.into(),
            not_before: cert.not_before,
            not_after: cert.not_after,
            der: cert.der.clone(),
            crl_shard: None,
        };
        self.record(
            to_record,
            &requester,
            &requester,
            OCSP_SIGNER_ACTION,
            detail,
            also,
        )
        .await?;
        Ok(cert)
    }

    /// The one sign -> record -> audit path: durably record `cert` as issued to `requester`,
    /// with an audit row (`actor`, `action`, outcome `ok`, `detail`) in the same transaction,
    /// and `also` there too. Returns the serial as recorded. Nothing is recorded when `also`
    /// cannot be done (a token already used, a signer request already answered): the
    /// certificate just signed is then dropped unseen.
    pub async fn record(
        &self,
        cert: ToRecord<'_>,
        requester: &str,
        actor: &str,
        action: AuditAction,
        detail: String,
        also: AlsoCommit<'_>,
    ) -> Result<Serial, Refusal> {
        record(
            &self.store,
            self.database_timeout(),
            cert,
            requester,
            actor,
            action,
            detail,
            also,
        )
        .await
    }
}

/// [`Authority::record`] for a certificate signed by a CA key outside an [`Authority`] (the
/// root signing an issuing CA), into `store`, bounded by `timeout` if given.
#[allow(clippy::too_many_arguments)]
pub async fn record(
    store: &Store,
    timeout: Option<Duration>,
    cert: ToRecord<'_>,
    requester: &str,
    actor: &str,
    action: AuditAction,
    detail: String,
    also: AlsoCommit<'_>,
) -> Result<Serial, Refusal> {
    let record = NewCertificate {
        serial: cert.serial,
        issuer: cert.issuer.subject().to_string(),
        issuer_key_id: hex::encode(cert.issuer.key_id()),
        subject: cert.subject,
        sans: cert.sans,
        profile: cert.profile,
        not_before: cert.not_before,
        not_after: cert.not_after,
        requester: requester.to_string(),
        der: cert.der,
        crl_shard: cert.crl_shard,
    };
    let audit = AuditEntry {
        actor: actor.to_string(),
        action,
        serial: Some(record.serial.clone()),
        outcome: AuditOutcome::Ok,
        detail,
    };
    let write = async {
        match also {
            AlsoCommit::Nothing => store
                .insert_certificate(&record, &audit)
                .await
                .map(|()| true),
            AlsoCommit::BurnToken(b) => {
                store
                    .insert_certificate_with_token(
                        &b.namespace,
                        &b.jti,
                        b.expires_at,
                        &record,
                        &audit,
                    )
                    .await
            }
            AlsoCommit::SignerRequest(id) => {
                store.fulfil_ocsp_signer_request(id, &record, &audit).await
            }
        }
    };
    let fresh = match timeout {
        None => write.await?,
        Some(limit) => match tokio::time::timeout(limit, write).await {
            Ok(result) => result?,
            Err(_) => return Err(StoreError::timed_out(limit).into()),
        },
    };
    if !fresh {
        return Err(match also {
            AlsoCommit::SignerRequest(_) => Refusal::AlreadyAnswered,
            _ => Refusal::TokenReplayed,
        });
    }
    Ok(record.serial)
}

/// `provisioner`'s policy widened to allow exactly a workload's template `names`.
fn widen(
    provisioner: &Provisioner,
    names: &std::collections::BTreeSet<SubjectName>,
) -> Result<Policy, Refusal> {
    match provisioner.kubernetes_names() {
        Some(k8s) => k8s.widen(provisioner.policy(), names),
        None => Ok(provisioner.policy().clone()),
    }
}

/// A policy's refusal of names, saying whose policy it was, for requesters of the API.
fn whose_policy(err: CaError, requester: &Requester, renewal: bool) -> Refusal {
    match requester {
        Requester::Admin
        | Requester::Token { .. }
        | Requester::Kubernetes { .. }
        | Requester::Acme { .. } => name_denied_by(err, requester.provisioner_name(), renewal),
        // The CA holder and the server itself read the CA core's own words.
        _ => Refusal::Ca(err),
    }
}

/// A policy's refusal of names, saying whose policy it was: that of the provisioner the
/// request counts against, or the CA-wide `[policy]` (`admin`: the admin's, and that of the
/// server's own and `issue --local` certificates). `renewal` says the policy is that of the
/// line's first issuer, as configured now.
fn name_denied_by(err: CaError, counted_against: &str, renewal: bool) -> Refusal {
    match err {
        CaError::NameDenied { names } => {
            let whose = if counted_against == "admin" {
                "the CA-wide [policy]".to_string()
            } else {
                format!("the policy of provisioner {counted_against:?}")
            };
            let when = if renewal {
                ", which first issued this certificate, as configured now"
            } else {
                ""
            };
            Refusal::NameDenied {
                rule: format!("names not allowed by {whose}{when}"),
                names,
            }
        }
        other => other.into(),
    }
}
