//! The CA core's side of revocation: the narrow [`CrlSigner`] handle of an issuing CA or of
//! the (offline) root, and the check that a root signed a CA certificate it is asked to
//! revoke. CRL encoding itself is `signet-pkix`'s ([`signet_pkix::crl`]), which signs only
//! through the [`signet_pkix::SigningKey`] a handle holds.

use der::Decode;
use signet_pkix::cert::find_extension;
use signet_pkix::crl::CrlSigner;
use time::OffsetDateTime;

use crate::CaError;
use crate::issue::{IssuanceUrls, IssuingCa, parse_pem_certificates};
use signet_pkix::Serial;

impl IssuingCa {
    /// A handle that signs this CA's CRLs and can do nothing else (see [`CrlSigner`]).
    pub fn crl_signer(&self) -> Result<CrlSigner, CaError> {
        Ok(CrlSigner::new(
            self.cert_der(),
            self.key_id().to_vec(),
            self.key().signing_key(),
        )?)
    }
}

/// The signer of the root's own CRL: the self-signed root in `root_pem` with its key `key`,
/// checked as [`IssuingCa::root_for_crls`] checks them.
pub fn root_crl_signer(root_pem: &str, key: rcgen::KeyPair) -> Result<CrlSigner, CaError> {
    IssuingCa::root_for_crls(root_pem, key)?.crl_signer()
}

/// [`root_crl_signer`] with the root's key behind any [`signet_pkix::SigningKey`] (a key in a
/// PKCS#11 token).
pub fn root_key_crl_signer(
    root_pem: &str,
    key: std::sync::Arc<dyn signet_pkix::SigningKey>,
) -> Result<CrlSigner, CaError> {
    IssuingCa::root_key_for_crls(root_pem, key)?.crl_signer()
}

impl IssuingCa {
    /// The longest a root CRL may be valid: a year and a day. A root CRL is signed with the
    /// offline root key, so it cannot be refreshed often; but relying parties that check
    /// CRLs (nginx `ssl_crl`) refuse an expired one, so it must be re-signed before its
    /// nextUpdate in any case.
    pub const ROOT_CRL_MAX_VALIDITY: std::time::Duration =
        std::time::Duration::from_secs(366 * 86_400);

    /// The self-signed root in `root_pem` (its first certificate), loaded with its key `key`
    /// for one purpose: signing the root's own CRL through its [`IssuingCa::crl_signer`],
    /// which lists the
    /// intermediate CA certificates the root has revoked (usually none).
    ///
    /// Relying parties that check CRLs for the whole chain (OpenSSL with
    /// `X509_V_FLAG_CRL_CHECK_ALL`, as nginx `ssl_crl` sets it) need this CRL to accept any
    /// certificate under the issuing CA. The root must be self-signed, a CA, allowed to sign
    /// CRLs (keyUsage cRLSign, or no keyUsage), and `key` must be its key.
    pub fn root_for_crls(root_pem: &str, key: rcgen::KeyPair) -> Result<IssuingCa, CaError> {
        Self::root_key_for_crls(
            root_pem,
            crate::issue::CaKey::from_key_pair(&key)?.signing_key(),
        )
    }

    /// [`IssuingCa::root_for_crls`] with the root's key behind any
    /// [`signet_pkix::SigningKey`] (a key in a PKCS#11 token).
    pub fn root_key_for_crls(
        root_pem: &str,
        key: std::sync::Arc<dyn signet_pkix::SigningKey>,
    ) -> Result<IssuingCa, CaError> {
        let der = parse_pem_certificates(root_pem)?
            .into_iter()
            .next()
            .ok_or_else(|| CaError::CaCertificate("no root certificate".into()))?;
        let cert = x509_cert::Certificate::from_der(&der)
            .map_err(|e| CaError::CaCertificate(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != tbs.subject {
            return Err(CaError::CaCertificate(
                "the root certificate is not self-signed".into(),
            ));
        }
        if tbs.subject_public_key_info.subject_public_key.raw_bytes() != key.subject_public_key() {
            return Err(CaError::CaCertificate(
                "the private key does not match the root certificate".into(),
            ));
        }
        let ku = find_extension::<x509_cert::ext::pkix::KeyUsage>(
            &cert,
            const_oid::db::rfc5280::ID_CE_KEY_USAGE,
        )?;
        if ku.is_some_and(|ku| !ku.crl_sign()) {
            return Err(CaError::CaCertificate(
                "the root certificate's keyUsage lacks cRLSign: it cannot sign CRLs".into(),
            ));
        }
        IssuingCa::with_signing_key(root_pem, root_pem, key, IssuanceUrls::default())
    }
}

/// A CA certificate that a root signed, described for its record before the root revokes
/// it (see [`IssuingCa::certificate_to_revoke`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubordinateCa {
    /// Its serial number.
    pub serial: Serial,
    /// Its subject, as an RFC 4514 string.
    pub subject: String,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
}

impl IssuingCa {
    /// Check that `der` is a CA certificate this CA signed (its issuer is this CA's subject,
    /// its signature verifies with this CA's key, and it is not this CA's own certificate),
    /// so that this CA may record and revoke it: a root revoking an issuing CA whose key
    /// was compromised or which is retired. Only CA certificates are accepted: a root signs
    /// nothing else, and end-entity certificates are revoked through the API.
    pub fn certificate_to_revoke(&self, der: &[u8]) -> Result<SubordinateCa, CaError> {
        let not_ours = |why: &str| CaError::NotIssuedHere(why.to_string());
        let cert = x509_cert::Certificate::from_der(der)
            .map_err(|e| CaError::NotIssuedHere(format!("not a DER certificate: {e}")))?;
        if der == self.cert_der() {
            return Err(not_ours("it is this CA's own certificate"));
        }
        let me = x509_cert::Certificate::from_der(self.cert_der())
            .map_err(|e| CaError::CaCertificate(e.to_string()))?;
        let tbs = &cert.tbs_certificate;
        if tbs.issuer != me.tbs_certificate.subject {
            return Err(CaError::NotIssuedHere(format!(
                "its issuer is {}, not {}",
                tbs.issuer, me.tbs_certificate.subject
            )));
        }
        if !crate::issue::signed_by(&cert, &me)? {
            return Err(not_ours("its signature does not verify with this CA's key"));
        }
        let is_ca = find_extension::<x509_cert::ext::pkix::BasicConstraints>(
            &cert,
            const_oid::db::rfc5280::ID_CE_BASIC_CONSTRAINTS,
        )?
        .is_some_and(|bc| bc.ca);
        if !is_ca {
            return Err(not_ours(
                "it is not a CA certificate (end-entity certificates are revoked through the API)",
            ));
        }
        let time = |t: &x509_cert::time::Time| {
            i64::try_from(t.to_unix_duration().as_secs())
                .ok()
                .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
                .ok_or_else(|| not_ours("its validity is out of range"))
        };
        Ok(SubordinateCa {
            serial: Serial::from_be_bytes(tbs.serial_number.as_bytes())?,
            subject: tbs.subject.to_string(),
            not_before: time(&tbs.validity.not_before)?,
            not_after: time(&tbs.validity.not_after)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_pkix::crl::RevokedEntry;

    #[test]
    fn root_crls_are_signed_by_the_root_only() {
        let opts = crate::InitOptions::new("Root CRL");
        let now = OffsetDateTime::now_utc();
        let a = crate::generate_ca(&opts, now).expect("generate");
        let b = crate::generate_ca(&opts, now).expect("generate");
        let err = |r: Result<IssuingCa, CaError>| match r {
            Err(CaError::CaCertificate(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(
            err(IssuingCa::root_for_crls(&a.root_cert_pem, b.root_key)).contains("does not match")
        );
        assert!(
            err(IssuingCa::root_for_crls(&b.issuing_cert_pem, b.issuing_key))
                .contains("not self-signed")
        );
        let root = IssuingCa::root_for_crls(&a.root_cert_pem, a.root_key).expect("root");
        let crl = root
            .crl_signer()
            .expect("signer")
            .sign_crl(7, now, now + time::Duration::days(90), std::iter::empty())
            .expect("crl");
        let (root_subject, _) =
            signet_pkix::cert::raw_subject_and_key(root.cert_der()).expect("root");
        assert!(crl.windows(root_subject.len()).any(|w| w == root_subject));
        assert!(IssuingCa::ROOT_CRL_MAX_VALIDITY >= std::time::Duration::from_secs(365 * 86_400));
    }

    #[test]
    fn a_crl_signer_signs_what_its_ca_would() {
        // Ed25519 signatures are deterministic, so two handles of one CA sign the same list
        // into the same bytes, and one made by hand from the CA's certificate and key too.
        let mut opts = crate::InitOptions::new("CRL signer");
        opts.key_type = crate::KeyType::Ed25519;
        let now = OffsetDateTime::now_utc();
        let a = crate::generate_ca(&opts, now).expect("generate");
        let ca = IssuingCa::new(
            &a.issuing_cert_pem,
            &a.root_cert_pem,
            a.issuing_key,
            IssuanceUrls::default(),
        )
        .expect("issuing");
        let signer = ca.crl_signer().expect("signer");
        assert_eq!(signer.key_id(), ca.key_id());
        assert_eq!(signer.issuer(), ca.subject());
        let entries = || {
            [RevokedEntry {
                serial: Serial::from_hex("01ab").expect("serial"),
                revoked_at: now,
                reason: Some(1),
            }]
        };
        let next = now + time::Duration::days(1);
        assert_eq!(
            signer.sign_crl(3, now, next, entries()).expect("handle"),
            CrlSigner::new(ca.cert_der(), ca.key_id().to_vec(), ca.key().signing_key())
                .expect("by hand")
                .sign_crl(3, now, next, entries())
                .expect("ca")
        );
        // The key never shows in its Debug form.
        let shown = format!("{signer:?}");
        assert!(shown.contains("CrlSigner") && shown.contains(&hex::encode(ca.key_id())));
        assert!(!shown.to_lowercase().contains("key:"), "{shown}");

        let root = root_crl_signer(&a.root_cert_pem, a.root_key).expect("root signer");
        let root_ca = x509_cert::Certificate::from_der(
            &parse_pem_certificates(&a.root_cert_pem).expect("pem")[0],
        )
        .expect("root");
        assert_eq!(
            root.key_id(),
            crate::issue::key_identifier(&root_ca).expect("key id")
        );
        let b = crate::generate_ca(&opts, now).expect("generate");
        assert!(matches!(
            root_crl_signer(&a.root_cert_pem, b.root_key),
            Err(CaError::CaCertificate(why)) if why.contains("does not match")
        ));
    }

    #[test]
    fn a_root_revokes_only_ca_certificates_it_signed() {
        use crate::SubjectName;
        use rcgen::PublicKeyData;
        let opts = crate::InitOptions::new("Revoker");
        let now = OffsetDateTime::now_utc();
        let a = crate::generate_ca(&opts, now).expect("generate");
        // Same names, other keys: b's issuing CA names a's root as its issuer.
        let b = crate::generate_ca(&opts, now).expect("generate");
        let der = |pem: &str| parse_pem_certificates(pem).expect("pem").remove(0);
        let issuing = der(&a.issuing_cert_pem);
        let issuing_ca = IssuingCa::new(
            &a.issuing_cert_pem,
            &a.root_cert_pem,
            a.issuing_key,
            IssuanceUrls::default(),
        )
        .expect("issuing");
        let root = IssuingCa::root_for_crls(&a.root_cert_pem, a.root_key).expect("root");

        let sub = root
            .certificate_to_revoke(&issuing)
            .expect("a's issuing CA");
        let info = crate::CertificateInfo::from_der(&issuing).expect("info");
        assert_eq!(sub.serial, info.serial);
        assert_eq!(
            (sub.not_before, sub.not_after),
            (info.not_before, info.not_after)
        );
        assert_eq!(sub.subject, issuing_ca.subject());

        let why = |r: Result<SubordinateCa, CaError>| match r {
            Err(CaError::NotIssuedHere(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert!(why(root.certificate_to_revoke(root.cert_der())).contains("own certificate"));
        assert!(
            why(root.certificate_to_revoke(&der(&b.issuing_cert_pem))).contains("does not verify")
        );
        let leaf = issuing_ca
            .issue(
                &crate::Csr::from_parts(
                    &crate::KeyType::P256
                        .generate()
                        .expect("key")
                        .subject_public_key_info(),
                    None,
                    vec![SubjectName::parse_loose("a.example").expect("name")],
                )
                .expect("csr"),
                crate::Profile::Server,
                &crate::ProfileLimits::default(),
                None,
                &crate::Policy::allow_all(),
                now,
            )
            .expect("leaf");
        assert!(why(root.certificate_to_revoke(&leaf.der)).contains("its issuer is"));
        // The issuing CA signs end-entity certificates only: one it signed is not a CA.
        assert!(why(issuing_ca.certificate_to_revoke(&leaf.der)).contains("not a CA"));
        assert!(why(root.certificate_to_revoke(b"junk")).contains("not a DER certificate"));
    }
}
