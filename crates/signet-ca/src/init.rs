//! Creating a new CA hierarchy (root and issuing intermediate), or adopting an existing
//! issuing CA.

use std::sync::Arc;
use std::time::Duration;

use der::Decode;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use time::OffsetDateTime;
use x509_cert::Certificate;

use crate::CaError;
use crate::issue::{BACKDATE, CaKey, check_is_ca, parse_pem_certificates};
use crate::keys::KeyType;
use signet_pkix::{Serial, SigningKey};

/// What `signet init` asks for.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// The organisation's name for this CA, e.g. "Acme Internal CA".
    pub name: String,
    /// Key type of both CA keys.
    pub key_type: KeyType,
    /// Root lifetime (default 10 years).
    pub root_validity: Duration,
    /// Issuing CA lifetime (default 5 years); capped at the root's.
    pub issuing_validity: Duration,
}

impl InitOptions {
    /// Defaults for `name`: P-256, a 10-year root, a 5-year issuing CA.
    pub fn new(name: impl Into<String>) -> Self {
        InitOptions {
            name: name.into(),
            key_type: KeyType::P256,
            root_validity: Duration::from_secs(3653 * 86_400),
            issuing_validity: Duration::from_secs(1826 * 86_400),
        }
    }
}

/// A freshly generated hierarchy.
pub struct CaBundle {
    /// Self-signed root, PEM (pathLen 1).
    pub root_cert_pem: String,
    /// The root's key. Only needed to sign a new issuing CA: keep it offline.
    pub root_key: KeyPair,
    /// Issuing intermediate, PEM (pathLen 0), signed by the root.
    pub issuing_cert_pem: String,
    /// The issuing CA's key: what `signet serve` signs with.
    pub issuing_key: KeyPair,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle").finish_non_exhaustive()
    }
}

/// Generate a root and an issuing intermediate.
pub fn generate_ca(opts: &InitOptions, now: OffsetDateTime) -> Result<CaBundle, CaError> {
    check_ca_name(&opts.name)?;
    let root_key = opts.key_type.generate()?;
    let issuing_key = opts.key_type.generate()?;
    let certs = certify_ca_keys(
        opts,
        CaKey::from_key_pair(&root_key)?.signing_key(),
        CaKey::from_key_pair(&issuing_key)?.signing_key(),
        now,
    )?;
    Ok(CaBundle {
        root_cert_pem: certs.root_cert_pem,
        root_key,
        issuing_cert_pem: certs.issuing_cert_pem,
        issuing_key,
    })
}

/// The certificates of a new hierarchy whose keys are kept elsewhere ([`certify_ca_keys`]).
#[derive(Clone, Debug)]
pub struct CaCertificates {
    /// Self-signed root, PEM (pathLen 1).
    pub root_cert_pem: String,
    /// Issuing intermediate, PEM (pathLen 0), signed by the root.
    pub issuing_cert_pem: String,
}

/// The root and issuing CA certificates of a new hierarchy for two existing keys (a key made
/// in a PKCS#11 token, say): the root self-signed with `root_key`, the issuing CA for
/// `issuing_key` signed by it, exactly as [`generate_ca`] makes them. `opts.key_type` is
/// not used: the keys say what they are.
pub fn certify_ca_keys(
    opts: &InitOptions,
    root_key: Arc<dyn SigningKey>,
    issuing_key: Arc<dyn SigningKey>,
    now: OffsetDateTime,
) -> Result<CaCertificates, CaError> {
    let name = check_ca_name(&opts.name)?;
    let now = now.replace_nanosecond(0).map_err(CaError::internal)?;
    let root_key = CaKey::new(root_key)?;
    let issuing_key = CaKey::new(issuing_key)?;

    let mut root = ca_params(
        name,
        &format!("{name} Root CA"),
        1,
        now,
        now + opts.root_validity,
    )?;
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root
        .self_signed(&root_key)
        .map_err(CaKey::signing_failure)?;

    let issuing_not_after = (now + opts.issuing_validity).min(root.not_after);
    let mut issuing = ca_params(
        name,
        &format!("{name} Issuing CA"),
        0,
        now,
        issuing_not_after,
    )?;
    issuing.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    issuing.use_authority_key_identifier_extension = true;
    let root_issuer = Issuer::from_params(&root, &root_key);
    let issuing_cert = issuing
        .signed_by(&issuing_key, &root_issuer)
        .map_err(CaKey::signing_failure)?;

    Ok(CaCertificates {
        root_cert_pem: root_cert.pem(),
        issuing_cert_pem: issuing_cert.pem(),
    })
}

/// A key generated or read as an rcgen [`KeyPair`] (a file key) behind the
/// [`SigningKey`] seam, for the functions that take any key.
pub fn signing_key_of(key: &KeyPair) -> Result<Arc<dyn SigningKey>, CaError> {
    Ok(CaKey::from_key_pair(key)?.signing_key())
}

fn check_ca_name(name: &str) -> Result<&str, CaError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 50 {
        return Err(CaError::CaCertificate(
            "the CA name is 1 to 50 characters".into(),
        ));
    }
    Ok(name)
}

/// A new issuing CA signed by a root ([`IssuingCa::sign_issuing_ca`]).
pub struct NewIssuingCa {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its key.
    pub key: KeyPair,
    /// Its subject, RFC 4514 string.
    pub subject: String,
    /// Its serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

/// The certificate of a new issuing CA whose key is kept elsewhere
/// ([`IssuingCa::sign_issuing_ca_for_key`](crate::IssuingCa::sign_issuing_ca_for_key)).
#[derive(Clone, Debug)]
pub struct IssuingCaCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its subject, RFC 4514 string.
    pub subject: String,
    /// Its serial number.
    pub serial: Serial,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl std::fmt::Debug for NewIssuingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIssuingCa")
            .field("subject", &self.subject)
            .field("serial", &self.serial.to_hex())
            .finish_non_exhaustive()
    }
}

impl crate::IssuingCa {
    /// Sign a new issuing intermediate with this CA, a root loaded with
    /// [`IssuingCa::root_for_crls`](crate::IssuingCa::root_for_crls): as `signet init` makes
    /// one (pathLen 0; keyCertSign, cRLSign, digitalSignature; AKI), for a fresh `key_type`
    /// key, subject `O=org, CN=cn`, valid from now for `validity` but never past the root.
    /// For replacing an issuing CA that is compromised, retired or near its end.
    pub fn sign_issuing_ca(
        &self,
        org: &str,
        cn: &str,
        key_type: KeyType,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<NewIssuingCa, CaError> {
        let key = key_type.generate()?;
        let signed = self.sign_issuing_ca_for_key(
            org,
            cn,
            CaKey::from_key_pair(&key)?.signing_key(),
            validity,
            now,
        )?;
        Ok(NewIssuingCa {
            cert_pem: signed.cert_pem,
            key,
            subject: signed.subject,
            serial: signed.serial,
            not_before: signed.not_before,
            not_after: signed.not_after,
        })
    }

    /// [`IssuingCa::sign_issuing_ca`] for a key that exists already and is kept elsewhere
    /// (made in a PKCS#11 token): the same certificate, for `key`'s public key.
    pub fn sign_issuing_ca_for_key(
        &self,
        org: &str,
        cn: &str,
        key: Arc<dyn SigningKey>,
        validity: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuingCaCertificate, CaError> {
        let root = Certificate::from_der(self.cert_der())
            .map_err(|e| CaError::CaCertificate(e.to_string()))?;
        let ku = signet_pkix::cert::find_extension::<x509_cert::ext::pkix::KeyUsage>(
            &root,
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
        )?;
        if ku.is_some_and(|ku| !ku.key_cert_sign()) {
            return Err(CaError::CaCertificate(
                "the root certificate's keyUsage lacks keyCertSign".into(),
            ));
        }
        let bc = signet_pkix::cert::find_extension::<x509_cert::ext::pkix::BasicConstraints>(
            &root,
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
        )?;
        if bc.is_some_and(|bc| bc.path_len_constraint == Some(0)) {
            return Err(CaError::CaCertificate(
                "the root's pathLenConstraint is 0: it cannot certify an intermediate".into(),
            ));
        }
        let now = now.replace_nanosecond(0).map_err(CaError::internal)?;
        let not_after = (now + validity).min(self.not_after());
        if not_after - now < time::Duration::days(1) {
            return Err(CaError::CaCertificate(format!(
                "the root ends at {}: too soon to certify a new issuing CA under it",
                self.not_after()
            )));
        }
        let (org, cn) = (org.trim(), cn.trim());
        if org.is_empty() || cn.is_empty() || org.len() > 64 || cn.len() > 64 {
            return Err(CaError::CaCertificate(
                "the organisation and common name are 1 to 64 characters".into(),
            ));
        }
        let mut params = ca_params(org, cn, 0, now, not_after)?;
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = CaKey::new(key)?;
        let cert = params
            .signed_by(&key, self.rcgen_issuer())
            .map_err(crate::issue::CaKey::signing_failure)?;
        let parsed =
            Certificate::from_der(cert.der()).map_err(|e| CaError::CaCertificate(e.to_string()))?;
        Ok(IssuingCaCertificate {
            cert_pem: cert.pem(),
            subject: parsed.tbs_certificate.subject.to_string(),
            serial: Serial::from_be_bytes(parsed.tbs_certificate.serial_number.as_bytes())?,
            not_before: params.not_before,
            not_after,
        })
    }
}

fn ca_params(
    org: &str,
    cn: &str,
    path_len: u8,
    now: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<CertificateParams, CaError> {
    let mut p = CertificateParams::default();
    p.serial_number = Some(SerialNumber::from_slice(Serial::random()?.as_bytes()));
    p.distinguished_name = DistinguishedName::new();
    p.distinguished_name.push(DnType::OrganizationName, org);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(path_len));
    p.not_before = now - BACKDATE;
    p.not_after = not_after;
    Ok(p)
}

/// An existing issuing CA adopted with `signet init --import-cert --import-key`.
pub struct ImportedCa {
    /// The issuing certificate and any intermediates above it, PEM, root excluded.
    pub chain_pem: String,
    /// The self-signed root at the top of the given chain, PEM.
    pub root_pem: String,
    /// The issuing key.
    pub key: KeyPair,
    /// The issuing CA's subject, RFC 4514 string.
    pub subject: String,
}

impl std::fmt::Debug for ImportedCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedCa").finish_non_exhaustive()
    }
}

/// Check an existing issuing CA: `cert_pem` holds the issuing certificate first and the chain
/// up to and including a self-signed root (or is itself a self-signed root); the key must
/// match and the certificate must be a CA allowed to sign certificates.
pub fn import_ca(cert_pem: &str, key: KeyPair) -> Result<ImportedCa, CaError> {
    let chain = import_ca_for_key(cert_pem, key.public_key_raw())?;
    Ok(ImportedCa {
        chain_pem: chain.chain_pem,
        root_pem: chain.root_pem,
        key,
        subject: chain.subject,
    })
}

/// The certificates of an existing issuing CA whose key is kept elsewhere (a PKCS#11 token),
/// checked as [`import_ca`] checks them.
#[derive(Clone, Debug)]
pub struct ImportedChain {
    /// The issuing certificate and any intermediates above it, PEM, root excluded.
    pub chain_pem: String,
    /// The self-signed root at the top of the given chain, PEM.
    pub root_pem: String,
    /// The issuing CA's subject, RFC 4514 string.
    pub subject: String,
}

/// [`import_ca`] for a key kept elsewhere: `subject_public_key` is the contents of its
/// subjectPublicKey BIT STRING ([`SigningKey::subject_public_key`]).
pub fn import_ca_for_key(
    cert_pem: &str,
    subject_public_key: &[u8],
) -> Result<ImportedChain, CaError> {
    let ders = parse_pem_certificates(cert_pem)?;
    let certs: Vec<Certificate> = ders
        .iter()
        .map(|d| Certificate::from_der(d).map_err(|e| CaError::CaCertificate(e.to_string())))
        .collect::<Result<_, _>>()?;
    let Some(first) = certs.first() else {
        return Err(CaError::CaCertificate("no CERTIFICATE in the file".into()));
    };
    check_is_ca(first)?;
    if first
        .tbs_certificate
        .subject_public_key_info
        .subject_public_key
        .raw_bytes()
        != subject_public_key
    {
        return Err(CaError::CaCertificate(
            "the private key does not match the certificate".into(),
        ));
    }
    for pair in certs.windows(2) {
        if pair[0].tbs_certificate.issuer != pair[1].tbs_certificate.subject {
            return Err(CaError::CaCertificate(
                "the certificates are not in chain order (issuing CA first, root last)".into(),
            ));
        }
    }
    let (last_der, last) = match (ders.last(), certs.last()) {
        (Some(d), Some(c)) => (d, c),
        _ => return Err(CaError::CaCertificate("no CERTIFICATE in the file".into())),
    };
    if last.tbs_certificate.issuer != last.tbs_certificate.subject {
        return Err(CaError::CaCertificate(
            "the chain does not end in a self-signed root: append the intermediates and the root to --import-cert".into(),
        ));
    }
    let chain_end = if ders.len() > 1 { ders.len() - 1 } else { 1 };
    let chain_pem = ders[..chain_end]
        .iter()
        .map(|d| signet_pkix::pem::certificate(d))
        .collect::<String>();
    Ok(ImportedChain {
        chain_pem,
        root_pem: signet_pkix::pem::certificate(last_der),
        subject: first.tbs_certificate.subject.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IssuingCa;

    #[test]
    fn a_root_signs_a_new_issuing_ca_that_issues() {
        let now = OffsetDateTime::now_utc();
        let opts = InitOptions::new("Rotation");
        let first = generate_ca(&opts, now).expect("generate");
        let root_pem = first.root_cert_pem.clone();
        let root = IssuingCa::root_for_crls(&root_pem, first.root_key).expect("root");
        let year = Duration::from_secs(365 * 86_400);

        let new = root
            .sign_issuing_ca(
                "Rotation",
                "Rotation Issuing CA 2",
                KeyType::P384,
                year,
                now,
            )
            .expect("signed");
        assert_eq!(new.subject, "CN=Rotation Issuing CA 2,O=Rotation");
        assert_eq!((new.not_after - new.not_before).whole_days(), 365);
        let der = parse_pem_certificates(&new.cert_pem)
            .expect("pem")
            .remove(0);
        // The root recognises it as its own CA certificate, and it can issue.
        assert_eq!(
            root.certificate_to_revoke(&der).expect("ours").serial,
            new.serial
        );
        let ca = IssuingCa::new(&new.cert_pem, &root_pem, new.key, Default::default())
            .expect("usable as the issuing CA");
        assert_eq!(ca.subject(), new.subject);

        // The replaced issuing CA is recognised as an earlier one of the same root: its key
        // id is what its certificates carry as AKI.
        let old_der = parse_pem_certificates(&first.issuing_cert_pem)
            .expect("pem")
            .remove(0);
        let old_ca = IssuingCa::new(
            &first.issuing_cert_pem,
            &root_pem,
            first.issuing_key,
            Default::default(),
        )
        .expect("old");
        let previous = ca.previous_issuer(&old_der).expect("earlier issuing CA");
        assert_eq!(previous.key_id, old_ca.key_id());
        assert_eq!(previous.der, old_der);
        assert!(ca.previous_issuer(ca.cert_der()).is_err(), "not itself");
        let stranger = generate_ca(&opts, now).expect("another hierarchy");
        let foreign = parse_pem_certificates(&stranger.issuing_cert_pem)
            .expect("pem")
            .remove(0);
        let err = ca.previous_issuer(&foreign).expect_err("another root's");
        assert!(
            err.to_string().contains("not signed by this CA's root"),
            "{err}"
        );

        // Never past the root; names are checked; an intermediate cannot sign another.
        let long = root
            .sign_issuing_ca("R", "R 3", KeyType::P256, year * 20, now)
            .expect("capped");
        assert_eq!(long.not_after, root.not_after());
        assert!(
            root.sign_issuing_ca(" ", "x", KeyType::P256, year, now)
                .is_err()
        );
        let err = old_ca
            .sign_issuing_ca("R", "R 4", KeyType::P256, year, now)
            .expect_err("pathLen 0");
        assert!(err.to_string().contains("pathLenConstraint"), "{err}");
    }
}
