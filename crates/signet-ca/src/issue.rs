//! The issuing CA: turns an approved request into a signed end-entity certificate.

use std::sync::Arc;
use std::time::Duration;

use const_oid::db::rfc5280;
use der::asn1::Ia5String;
use der::{Decode, Encode};
use rcgen::{
    CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use ring::digest;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_cert::Certificate;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    AccessDescription, AuthorityInfoAccessSyntax, BasicConstraints, SubjectKeyIdentifier,
};

use crate::CaError;
use crate::csr::Csr;
use crate::names::SubjectName;
use crate::policy::Policy;
use crate::profile::{Lifetime, Profile, ProfileLimits};
use signet_pkix::cert::find_extension;
use signet_pkix::{Serial, SigningError, SigningKey};

/// How far notBefore is backdated, for clients whose clocks run slow.
pub const BACKDATE: Duration = Duration::from_secs(60);

/// ub-common-name (RFC 5280 appendix A.1): a longer CN stays in the SAN only.
const MAX_CN_LEN: usize = 64;

/// The URLs written into every issued certificate so relying parties can find revocation
/// status (AIA OCSP, CRL distribution point) and the issuer (AIA caIssuers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IssuanceUrls {
    /// OCSP responder URL.
    pub ocsp: Option<String>,
    /// Where the issuing CA certificate can be fetched.
    pub ca_issuers: Option<String>,
    /// Where the CA's full CRL can be fetched.
    pub crl: Option<String>,
    /// How many CRL partitions (shards) new certificates are spread over (`[crl] shards`);
    /// 0 for none. With `crl` set, each certificate's CRL distribution point then names its
    /// shard's CRL ([`signet_pkix::crl::shard_url`], shard [`signet_pkix::crl::shard_of`]
    /// of its serial) rather than the full CRL.
    pub crl_shards: u32,
    /// Whether delta CRLs are published (`[crl] delta`): with `crl` set, certificates then
    /// carry a Freshest CRL extension naming the deltas of the CRL their distribution point
    /// names.
    pub delta_crls: bool,
}

impl IssuanceUrls {
    /// The CRL distribution point of a certificate with `serial` issued by the CA whose key
    /// identifier is `key_id`, and its shard (`None`: the full CRL, or no CRL URL).
    pub fn crl_distribution_point(
        &self,
        key_id: &[u8],
        serial: &Serial,
    ) -> Option<(String, Option<u32>)> {
        let full = self.crl.as_ref()?;
        if self.crl_shards == 0 {
            return Some((full.clone(), None));
        }
        let shard = signet_pkix::crl::shard_of(serial, self.crl_shards);
        Some((
            signet_pkix::crl::shard_url(full, key_id, shard),
            Some(shard),
        ))
    }
}

/// A signed certificate and what the store needs to record about it.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The serial number.
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Start of validity (backdated by [`BACKDATE`]).
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// The subject DN as an RFC 4514 string (empty when the subject is empty).
    pub subject: String,
    /// The names in the subjectAltName.
    pub names: Vec<SubjectName>,
    /// The profile it was issued under.
    pub profile: Profile,
    /// The CRL shard its CRL distribution point names (`None`: the full CRL, or none).
    pub crl_shard: Option<u32>,
}

impl IssuedCertificate {
    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        signet_pkix::pem::certificate(&self.der)
    }
}

/// A delegated OCSP responder certificate (RFC 6960 section 4.2.2.2) and what the store needs
/// to record about it. It has no profile of its own: record it as [`Self::PROFILE`].
#[derive(Clone, Debug)]
pub struct OcspSignerCertificate {
    /// The serial number.
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Start of validity (backdated by 60 s).
    pub not_before: OffsetDateTime,
    /// End of validity: rotate the responder key before this.
    pub not_after: OffsetDateTime,
    /// The subject DN as an RFC 4514 string.
    pub subject: String,
}

impl OcspSignerCertificate {
    /// The profile name the store records for delegated OCSP signer certificates.
    pub const PROFILE: &'static str = "ocsp-signer";

    /// The certificate as PEM.
    pub fn pem(&self) -> String {
        signet_pkix::pem::certificate(&self.der)
    }
}

/// The longest lifetime of a delegated OCSP signer certificate. It carries id-pkix-ocsp-nocheck,
/// so relying parties cannot learn of its revocation: it must be short-lived.
pub const OCSP_SIGNER_MAX_LIFETIME: Duration = Duration::from_secs(90 * 86_400);

/// An issuing CA whose key is loaded: the only thing in Signet that signs certificates.
pub struct IssuingCa {
    issuer: Issuer<'static, CaKey>,
    cert_der: Vec<u8>,
    /// Certificates between the issuing CA and the root (exclusive), DER, nearest first.
    intermediates_der: Vec<Vec<u8>>,
    root_der: Vec<u8>,
    subject: String,
    key_id: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    urls: IssuanceUrls,
}

impl std::fmt::Debug for IssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuingCa")
            .field("subject", &self.subject)
            .field("key_id", &hex::encode(&self.key_id))
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

impl IssuingCa {
    /// Load an issuing CA from its certificate, its key, the chain above it and the root.
    ///
    /// `chain_pem` holds the issuing certificate first, then any further intermediates; the
    /// root may be included or not. The certificate must be a CA allowed to sign
    /// certificates, and must hold the public half of `key`.
    pub fn new(
        chain_pem: &str,
        root_pem: &str,
        key: KeyPair,
        urls: IssuanceUrls,
    ) -> Result<Self, CaError> {
        Self::with_signing_key(chain_pem, root_pem, CaKey::from_key_pair(&key)?.0, urls)
    }

    /// [`IssuingCa::new`] with the key behind any [`SigningKey`]: the in-memory
    /// [`signet_pkix::Pkcs8Key`] that `new` makes, or a key kept elsewhere (a PKCS#11 token).
    /// Everything the CA signs (certificates, CRLs through its [`crate::CrlSigner`]) goes
    /// through `key`; a key that fails gives [`CaError::SigningKey`].
    pub fn with_signing_key(
        chain_pem: &str,
        root_pem: &str,
        key: Arc<dyn SigningKey>,
        urls: IssuanceUrls,
    ) -> Result<Self, CaError> {
        let key = CaKey::new(key)?;
        let mut chain = parse_pem_certificates(chain_pem)?;
        let root_der = parse_pem_certificates(root_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::CaCertificate("no root certificate".into()))?;
        if chain.is_empty() {
            return Err(CaError::CaCertificate("no issuing CA certificate".into()));
        }
        let cert_der = chain.remove(0);
        chain.retain(|c| *c != root_der);
        let cert =
            Certificate::from_der(&cert_der).map_err(|e| CaError::CaCertificate(e.to_string()))?;
        check_is_ca(&cert)?;
        let spk = cert
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes();
        if spk != key.0.subject_public_key() {
            return Err(CaError::CaCertificate(
                "the private key does not match the issuing CA certificate".into(),
            ));
        }
        let key_id = key_identifier(&cert)?;
        let validity = &cert.tbs_certificate.validity;
        let not_before = to_offset(validity.not_before.to_unix_duration())?;
        let not_after = to_offset(validity.not_after.to_unix_duration())?;
        let subject = cert.tbs_certificate.subject.to_string();
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|e| CaError::CaCertificate(e.to_string()))?;
        Ok(IssuingCa {
            issuer,
            cert_der,
            intermediates_der: chain,
            root_der,
            subject,
            key_id,
            not_before,
            not_after,
            urls,
        })
    }

    /// Approve the request against `policy` and sign a certificate for it.
    ///
    /// Only the CSR's public key and its policy-approved names reach the certificate; every
    /// extension is set here from the profile.
    pub fn issue(
        &self,
        csr: &Csr,
        profile: Profile,
        limits: &ProfileLimits,
        ttl: Option<Lifetime>,
        policy: &Policy,
        now: OffsetDateTime,
    ) -> Result<IssuedCertificate, CaError> {
        let ttl = policy.approve(profile, limits, ttl, csr.names())?;
        let now = now.replace_nanosecond(0).map_err(CaError::internal)?;
        if now < self.not_before || now >= self.not_after {
            return Err(CaError::IssuerExpired(crate::rfc3339(self.not_after)));
        }
        let serial = Serial::random()?;
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = now - BACKDATE;
        params.not_after = (now + ttl.duration()).min(self.not_after);

        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = csr.common_name().filter(|cn| cn.len() <= MAX_CN_LEN) {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = csr.names().iter().map(san).collect::<Result<_, _>>()?;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        if csr.key_type().is_rsa() && profile.server_auth() {
            // RSA key transport (TLS 1.2 RSA kx) still needs keyEncipherment.
            params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
        }
        if profile.server_auth() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if profile.client_auth() {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        params.use_authority_key_identifier_extension = true;
        let cdp = self.urls.crl_distribution_point(&self.key_id, &serial);
        let crl_shard = cdp.as_ref().and_then(|(_, shard)| *shard);
        if let Some((uri, _)) = cdp {
            if self.urls.delta_crls {
                // id-ce-freshestCRL (RFC 5280 section 4.2.1.15): same syntax as the CDP.
                params
                    .custom_extensions
                    .push(CustomExtension::from_oid_content(
                        &[2, 5, 29, 46],
                        signet_pkix::crl::distribution_points_der(&signet_pkix::crl::delta_url(
                            &uri,
                        ))?,
                    ));
            }
            params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![uri] }];
        }
        if let Some(aia) = self.aia_extension()? {
            params.custom_extensions.push(aia);
        }

        // The CSR's own SubjectPublicKeyInfo, not rcgen's reading of the CSR, which takes the
        // key algorithm from the signature algorithm (wrong for P-384 keys signed with SHA-256).
        let spki = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der())
            .map_err(|e| CaError::UnsupportedKey(e.to_string()))?;
        let cert = params
            .signed_by(&spki, &self.issuer)
            .map_err(CaKey::signing_failure)?;
        let subject = match csr.common_name().filter(|cn| cn.len() <= MAX_CN_LEN) {
            Some(_) => Certificate::from_der(cert.der())
                .map(|c| c.tbs_certificate.subject.to_string())
                .map_err(CaError::internal)?,
            None => String::new(),
        };
        Ok(IssuedCertificate {
            serial,
            der: cert.der().to_vec(),
            not_before: params.not_before,
            not_after: params.not_after,
            subject,
            names: csr.names().to_vec(),
            profile,
            crl_shard,
        })
    }

    /// Sign a delegated OCSP responder certificate for `spki_der` (RFC 6960 section 4.2.2.2),
    /// so the responder never holds this CA's key.
    ///
    /// The key must be ECDSA P-256, P-384 or Ed25519 (what [`crate::OcspSigner`] signs with).
    /// The certificate carries EKU id-kp-OCSPSigning only, keyUsage digitalSignature
    /// (critical), cA FALSE, SKI, AKI and id-pkix-ocsp-nocheck (RFC 6960 section 4.2.2.2.1);
    /// no AIA or CRL distribution point, since nothing checks its status. Its lifetime is at
    /// most [`OCSP_SIGNER_MAX_LIFETIME`] and never beyond this CA's.
    pub fn issue_ocsp_signer(
        &self,
        spki_der: &[u8],
        lifetime: Duration,
        now: OffsetDateTime,
    ) -> Result<OcspSignerCertificate, CaError> {
        if lifetime.is_zero() {
            return Err(CaError::InvalidLifetime("0s".into()));
        }
        if lifetime > OCSP_SIGNER_MAX_LIFETIME {
            return Err(CaError::LifetimeTooLong {
                requested: lifetime,
                max: OCSP_SIGNER_MAX_LIFETIME,
            });
        }
        signet_pkix::ocsp::signer_key_algorithm(spki_der)?;
        let now = now.replace_nanosecond(0).map_err(CaError::internal)?;
        if now < self.not_before || now >= self.not_after {
            return Err(CaError::IssuerExpired(crate::rfc3339(self.not_after)));
        }
        let ca = Certificate::from_der(&self.cert_der).map_err(CaError::internal)?;
        let cn = ocsp_signer_common_name(common_name(&ca.tbs_certificate.subject).as_deref());

        let serial = Serial::random()?;
        let mut params = CertificateParams::default();
        params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
        params.not_before = now - BACKDATE;
        params.not_after = (now + lifetime).min(self.not_after);
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
        params.use_authority_key_identifier_extension = true;
        // id-pkix-ocsp-nocheck ::= NULL (RFC 6960 section 4.2.2.2.1), non-critical.
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(
                &[1, 3, 6, 1, 5, 5, 7, 48, 1, 5],
                vec![0x05, 0x00],
            ));

        let spki = rcgen::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| CaError::UnsupportedKey(e.to_string()))?;
        let cert = params
            .signed_by(&spki, &self.issuer)
            .map_err(CaKey::signing_failure)?;
        let subject = Certificate::from_der(cert.der())
            .map(|c| c.tbs_certificate.subject.to_string())
            .map_err(CaError::internal)?;
        Ok(OcspSignerCertificate {
            serial,
            der: cert.der().to_vec(),
            not_before: params.not_before,
            not_after: params.not_after,
            subject,
        })
    }

    /// The rcgen issuer (certificate and key) this CA signs with.
    pub(crate) fn rcgen_issuer(&self) -> &Issuer<'static, CaKey> {
        &self.issuer
    }

    /// The CA's key, shared: what a [`crate::CrlSigner`] signs with.
    pub(crate) fn key(&self) -> &CaKey {
        self.issuer.key()
    }

    /// AuthorityInfoAccessSyntax (RFC 5280 section 4.2.2.1):
    /// `SEQUENCE SIZE (1..MAX) OF AccessDescription`, where
    /// `AccessDescription ::= SEQUENCE { accessMethod OBJECT IDENTIFIER, accessLocation GeneralName }`.
    /// rcgen cannot write it, so we encode it with x509-cert.
    fn aia_extension(&self) -> Result<Option<CustomExtension>, CaError> {
        let mut access = Vec::new();
        for (method, url) in [
            (rfc5280::ID_AD_OCSP, &self.urls.ocsp),
            (rfc5280::ID_AD_CA_ISSUERS, &self.urls.ca_issuers),
        ] {
            if let Some(url) = url {
                let uri = Ia5String::new(url)
                    .map_err(|e| CaError::Internal(format!("URL {url:?}: {e}")))?;
                access.push(AccessDescription {
                    access_method: method,
                    access_location: GeneralName::UniformResourceIdentifier(uri),
                });
            }
        }
        if access.is_empty() {
            return Ok(None);
        }
        let der = AuthorityInfoAccessSyntax(access)
            .to_der()
            .map_err(CaError::internal)?;
        Ok(Some(CustomExtension::from_oid_content(
            &[1, 3, 6, 1, 5, 5, 7, 1, 1],
            der,
        )))
    }

    /// The issuing CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root certificate, DER.
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The chain a TLS server presents after its leaf: the issuing CA, then any further
    /// intermediates, without the root. PEM, one entry per certificate.
    pub fn chain_pem(&self) -> Vec<String> {
        std::iter::once(&self.cert_der)
            .chain(self.intermediates_der.iter())
            .map(|der| signet_pkix::pem::certificate(der))
            .collect()
    }

    /// [`IssuingCa::chain_pem`] as DER: the issuing CA, then any further intermediates,
    /// without the root.
    pub fn chain_der(&self) -> Vec<&[u8]> {
        std::iter::once(&self.cert_der)
            .chain(self.intermediates_der.iter())
            .map(Vec::as_slice)
            .collect()
    }

    /// The issuing CA's subject DN.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The issuing CA's subject key identifier (what issued certificates carry as AKI).
    pub fn key_id(&self) -> &[u8] {
        &self.key_id
    }

    /// End of the issuing CA's validity; no certificate outlives it.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The URLs written into certificates.
    pub fn urls(&self) -> &IssuanceUrls {
        &self.urls
    }
}

/// A CA's private key, shared between the [`IssuingCa`] that signs certificates with it and
/// the [`crate::CrlSigner`] handles that sign CRLs with it (which hold nothing else of the CA).
/// It holds the key only through [`SigningKey`] and adapts it to rcgen's key traits, so
/// certificate signing, CRL signing and any future key store share one path.
#[derive(Clone)]
pub(crate) struct CaKey(Arc<dyn SigningKey>, &'static rcgen::SignatureAlgorithm);

thread_local! {
    /// The typed error of the last failed signature on this thread: rcgen's signing
    /// callback can only answer `rcgen::Error::RemoteKeyError`, so the adapter leaves the
    /// [`SigningError`] here for the caller, which signs on the same thread, to take back.
    static LAST_SIGNING_ERROR: std::cell::RefCell<Option<SigningError>> =
        const { std::cell::RefCell::new(None) };
}

impl CaKey {
    pub(crate) fn new(key: Arc<dyn SigningKey>) -> Result<Self, CaError> {
        use signet_pkix::SignatureAlgorithm as A;
        let rcgen_alg = match key.algorithm() {
            A::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            A::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            A::Ed25519 => &rcgen::PKCS_ED25519,
            A::RsaPkcs1Sha256 => &rcgen::PKCS_RSA_SHA256,
            A::RsaPkcs1Sha384 => &rcgen::PKCS_RSA_SHA384,
            A::RsaPkcs1Sha512 => &rcgen::PKCS_RSA_SHA512,
            other => {
                return Err(CaError::Key(format!(
                    "a CA key signing with {other:?} is not supported"
                )));
            }
        };
        Ok(CaKey(key, rcgen_alg))
    }

    /// An rcgen key pair (how CA keys are read from files and generated) as an in-memory
    /// [`signet_pkix::Pkcs8Key`].
    pub(crate) fn from_key_pair(key: &KeyPair) -> Result<Self, CaError> {
        use signet_pkix::SignatureAlgorithm as A;
        let alg = key.algorithm();
        let ours = [
            (&rcgen::PKCS_ECDSA_P256_SHA256, A::EcdsaP256Sha256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, A::EcdsaP384Sha384),
            (&rcgen::PKCS_ED25519, A::Ed25519),
            (&rcgen::PKCS_RSA_SHA256, A::RsaPkcs1Sha256),
            (&rcgen::PKCS_RSA_SHA384, A::RsaPkcs1Sha384),
            (&rcgen::PKCS_RSA_SHA512, A::RsaPkcs1Sha512),
        ]
        .into_iter()
        .find(|(a, _)| *a == alg)
        .map(|(_, ours)| ours)
        .ok_or_else(|| CaError::Key(format!("a CA key of algorithm {alg:?} is not supported")))?;
        let pkcs8 = zeroize::Zeroizing::new(key.serialize_der());
        let key = signet_pkix::Pkcs8Key::from_pkcs8_der(&pkcs8, ours)
            .map_err(|e| CaError::Key(e.to_string()))?;
        Self::new(Arc::new(key))
    }

    /// The key itself, for a handle that signs one kind of thing with it (a
    /// [`signet_pkix::crl::CrlSigner`]).
    pub(crate) fn signing_key(&self) -> Arc<dyn SigningKey> {
        Arc::clone(&self.0)
    }

    /// The error of a failed rcgen signing call made on this thread: the key's typed
    /// [`SigningError`] when it was the key that failed, else rcgen's own.
    pub(crate) fn signing_failure(e: rcgen::Error) -> CaError {
        match LAST_SIGNING_ERROR.with(|last| last.borrow_mut().take()) {
            Some(key_error) => CaError::SigningKey(key_error),
            None => CaError::internal(e),
        }
    }
}

impl rcgen::PublicKeyData for CaKey {
    fn der_bytes(&self) -> &[u8] {
        self.0.subject_public_key()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.1
    }
}

impl rcgen::SigningKey for CaKey {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.0.sign(msg).map_err(|e| {
            LAST_SIGNING_ERROR.with(|last| *last.borrow_mut() = Some(e));
            rcgen::Error::RemoteKeyError
        })
    }
}

/// `sha256:` followed by the lowercase hex SHA-256 of a DER certificate: how clients pin the root.
pub fn sha256_fingerprint(der: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(digest::digest(&digest::SHA256, der))
    )
}

/// A CA certificate's key identifier: its subject key identifier, else the SHA-1 of its
/// public key (RFC 5280 section 4.2.1.2, method 1). What certificates it signs carry as
/// their authority key identifier, and what the store files them under.
pub(crate) fn key_identifier(cert: &Certificate) -> Result<Vec<u8>, CaError> {
    let spk = cert
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes();
    Ok(
        find_extension::<SubjectKeyIdentifier>(cert, rfc5280::ID_CE_SUBJECT_KEY_IDENTIFIER)?
            .map(|ski| ski.0.as_bytes().to_vec())
            .unwrap_or_else(|| {
                digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, spk)
                    .as_ref()
                    .to_vec()
            }),
    )
}

/// Whether the certificate `cert_der` names `issuer_der` as its issuer and its signature
/// verifies with that certificate's key: for callers that hold a certificate someone
/// presented (a renewal token's `x5c`) and the issuing CA certificates they trust.
pub fn certificate_signed_by(cert_der: &[u8], issuer_der: &[u8]) -> Result<bool, CaError> {
    let cert = Certificate::from_der(cert_der)
        .map_err(|e| CaError::NotIssuedHere(format!("the certificate does not parse: {e}")))?;
    let issuer = Certificate::from_der(issuer_der)
        .map_err(|e| CaError::CaCertificate(format!("issuing CA: {e}")))?;
    signed_by(&cert, &issuer)
}

/// Whether `cert` is named as issued by `issuer` and its signature verifies with
/// `issuer`'s key.
pub(crate) fn signed_by(cert: &Certificate, issuer: &Certificate) -> Result<bool, CaError> {
    use der::Encode;
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return Ok(false);
    }
    let encode = |r: Result<Vec<u8>, der::Error>| {
        r.map_err(|e| CaError::Internal(format!("re-encoding a parsed certificate: {e}")))
    };
    let spki = encode(issuer.tbs_certificate.subject_public_key_info.to_der())?;
    let algorithm = encode(cert.signature_algorithm.to_der())?;
    let message = encode(cert.tbs_certificate.to_der())?;
    let Some(signature) = cert.signature.as_bytes() else {
        return Ok(false);
    };
    Ok(signet_pkix::cert::signature_verifies(
        &spki, &algorithm, &message, signature,
    ))
}

/// An earlier issuing CA of the same root, kept after `signet ca new-issuing` so that the
/// certificates it signed can still authenticate (to renew onto the current CA, or revoke
/// themselves) until they expire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreviousIssuer {
    /// Its key identifier: what the certificates it signed carry as their AKI.
    pub key_id: Vec<u8>,
    /// Its serial number (how the store would record it under the root).
    pub serial: Serial,
    /// The certificate, DER.
    pub der: Vec<u8>,
}

impl IssuingCa {
    /// Check that `der` is a CA certificate signed by this CA's root (another issuing CA of
    /// the same hierarchy, not this one) and describe it.
    pub fn previous_issuer(&self, der: &[u8]) -> Result<PreviousIssuer, CaError> {
        PreviousIssuer::check(der, &self.root_der, &self.cert_der)
    }
}

impl PreviousIssuer {
    /// Check that `der` is a CA certificate signed by the root `root_der` and is not the
    /// current issuing CA `current_der`, and describe it. For processes that hold no CA
    /// key (a standalone responder); with the key, [`IssuingCa::previous_issuer`].
    pub fn check(der: &[u8], root_der: &[u8], current_der: &[u8]) -> Result<Self, CaError> {
        let bad = |why: String| CaError::CaCertificate(format!("earlier issuing CA: {why}"));
        let cert = Certificate::from_der(der).map_err(|e| bad(e.to_string()))?;
        let root = Certificate::from_der(root_der).map_err(|e| bad(e.to_string()))?;
        check_is_ca(&cert)?;
        if der == current_der {
            return Err(bad("it is the current issuing CA".into()));
        }
        if !signed_by(&cert, &root)? {
            return Err(bad("it is not signed by this CA's root".into()));
        }
        Ok(PreviousIssuer {
            key_id: key_identifier(&cert)?,
            serial: Serial::from_be_bytes(cert.tbs_certificate.serial_number.as_bytes())?,
            der: der.to_vec(),
        })
    }
}

/// Every CERTIFICATE block in `pem`, in order.
pub(crate) fn parse_pem_certificates(pem: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let mut out = Vec::new();
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let end_marker = "-----END CERTIFICATE-----";
        let Some(end) = block.find(end_marker) else {
            return Err(CaError::CaCertificate("unterminated PEM block".into()));
        };
        let one = &block[..end + end_marker.len()];
        let (label, der) = pem_rfc7468::decode_vec(one.as_bytes())
            .map_err(|e| CaError::CaCertificate(format!("bad PEM: {e}")))?;
        if label != "CERTIFICATE" {
            return Err(CaError::CaCertificate(format!(
                "expected CERTIFICATE, found {label}"
            )));
        }
        out.push(der);
        rest = &block[end + end_marker.len()..];
    }
    Ok(out)
}

pub(crate) fn check_is_ca(cert: &Certificate) -> Result<(), CaError> {
    let bc = find_extension::<BasicConstraints>(cert, rfc5280::ID_CE_BASIC_CONSTRAINTS)?;
    if !bc.is_some_and(|bc| bc.ca) {
        return Err(CaError::CaCertificate(
            "not a CA certificate (basicConstraints cA is not TRUE)".into(),
        ));
    }
    let ku = find_extension::<x509_cert::ext::pkix::KeyUsage>(cert, rfc5280::ID_CE_KEY_USAGE)?;
    if ku.is_some_and(|ku| !ku.key_cert_sign()) {
        return Err(CaError::CaCertificate("keyUsage lacks keyCertSign".into()));
    }
    Ok(())
}

/// The first commonName of `name`, when it is a UTF8String, PrintableString or IA5String.
fn common_name(name: &x509_cert::name::Name) -> Option<String> {
    use der::Tagged;
    use der::asn1::{Ia5StringRef, PrintableStringRef, Utf8StringRef};
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == const_oid::db::rfc4519::CN)
        .find_map(|atv| match atv.value.tag() {
            der::Tag::Utf8String => atv
                .value
                .decode_as::<Utf8StringRef<'_>>()
                .ok()
                .map(|s| s.to_string()),
            der::Tag::PrintableString => atv
                .value
                .decode_as::<PrintableStringRef<'_>>()
                .ok()
                .map(|s| s.to_string()),
            der::Tag::Ia5String => atv
                .value
                .decode_as::<Ia5StringRef<'_>>()
                .ok()
                .map(|s| s.to_string()),
            _ => None,
        })
}

/// "<issuing CA CN> OCSP Responder", shortening the CA's name to keep within ub-common-name.
fn ocsp_signer_common_name(ca_cn: Option<&str>) -> String {
    const SUFFIX: &str = " OCSP Responder";
    let Some(ca_cn) = ca_cn.map(str::trim).filter(|cn| !cn.is_empty()) else {
        return SUFFIX.trim_start().to_string();
    };
    let mut room = MAX_CN_LEN - SUFFIX.len();
    while !ca_cn.is_char_boundary(room.min(ca_cn.len())) {
        room -= 1;
    }
    format!("{}{SUFFIX}", ca_cn[..room.min(ca_cn.len())].trim_end())
}

fn to_offset(d: Duration) -> Result<OffsetDateTime, CaError> {
    let secs = i64::try_from(d.as_secs()).map_err(CaError::internal)?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(CaError::internal)
}

fn san(name: &SubjectName) -> Result<SanType, CaError> {
    let ia5 = |s: &str| {
        s.to_string()
            .try_into()
            .map_err(|_| CaError::Internal(format!("{s:?} is not IA5")))
    };
    Ok(match name {
        SubjectName::Dns(d) => SanType::DnsName(ia5(d.as_str())?),
        SubjectName::Ip(ip) => SanType::IpAddress(*ip),
        SubjectName::Uri(u) => SanType::URI(ia5(u)?),
        SubjectName::Email(e) => SanType::Rfc822Name(ia5(e)?),
    })
}
