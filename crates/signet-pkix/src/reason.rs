//! Revocation reasons: RFC 5280's CRLReason, the one table of codes and names in Signet.

use std::fmt;
use std::str::FromStr;

use crate::PkixError;

/// Why a certificate was revoked (RFC 5280 section 5.3.1):
///
/// ```text
/// CRLReason ::= ENUMERATED {
///      unspecified             (0),
///      keyCompromise           (1),
///      cACompromise            (2),
///      affiliationChanged      (3),
///      superseded              (4),
///      cessationOfOperation    (5),
///      certificateHold         (6),
///           -- value 7 is not used
///      removeFromCRL           (8),
///      privilegeWithdrawn      (9),
///      aACompromise           (10) }
/// ```
///
/// The names are RFC 5280's, spelled exactly so (`keyCompromise`, `cACompromise`): the API,
/// the CLI, the store's audit details and `signet inspect` all use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RevocationReason {
    /// `unspecified` (0). Not written into CRL entries or OCSP answers (RFC 5280 section
    /// 5.3.1: the reason code extension SHOULD be absent rather than say unspecified).
    Unspecified,
    /// `keyCompromise` (1).
    KeyCompromise,
    /// `cACompromise` (2): the key of a CA certificate was compromised.
    CaCompromise,
    /// `affiliationChanged` (3).
    AffiliationChanged,
    /// `superseded` (4).
    Superseded,
    /// `cessationOfOperation` (5).
    CessationOfOperation,
    /// `certificateHold` (6): a reversible suspension. Signet's revocations are final, so it
    /// never gives this reason itself; it names it when reading others' CRLs and responses.
    CertificateHold,
    /// `removeFromCRL` (8): only meaningful in delta CRLs, never in a full CRL or an OCSP
    /// answer.
    RemoveFromCrl,
    /// `privilegeWithdrawn` (9).
    PrivilegeWithdrawn,
    /// `aACompromise` (10): an attribute authority was compromised.
    AaCompromise,
}

impl RevocationReason {
    /// Every reason, in code order.
    pub const ALL: [RevocationReason; 10] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::CertificateHold,
        Self::RemoveFromCrl,
        Self::PrivilegeWithdrawn,
        Self::AaCompromise,
    ];

    /// The reasons a certificate's holder or an administrator may give for revoking an
    /// end-entity certificate (`POST /v1/certificates/{serial}/revoke`, `signet revoke`).
    /// CA and AA compromise are about CA certificates, and certificateHold and
    /// removeFromCRL would make a revocation reversible, which Signet's never are.
    pub const FOR_LEAF: [RevocationReason; 6] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The reasons a root may give for revoking a CA certificate (`signet ca root-crl
    /// --revoke --reason`): the leaf reasons and cACompromise.
    pub const FOR_CA: [RevocationReason; 7] = [
        Self::Unspecified,
        Self::KeyCompromise,
        Self::CaCompromise,
        Self::AffiliationChanged,
        Self::Superseded,
        Self::CessationOfOperation,
        Self::PrivilegeWithdrawn,
    ];

    /// The CRLReason code.
    pub const fn code(self) -> u8 {
        match self {
            Self::Unspecified => 0,
            Self::KeyCompromise => 1,
            Self::CaCompromise => 2,
            Self::AffiliationChanged => 3,
            Self::Superseded => 4,
            Self::CessationOfOperation => 5,
            Self::CertificateHold => 6,
            Self::RemoveFromCrl => 8,
            Self::PrivilegeWithdrawn => 9,
            Self::AaCompromise => 10,
        }
    }

    /// RFC 5280's name for it, e.g. `keyCompromise`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::KeyCompromise => "keyCompromise",
            Self::CaCompromise => "cACompromise",
            Self::AffiliationChanged => "affiliationChanged",
            Self::Superseded => "superseded",
            Self::CessationOfOperation => "cessationOfOperation",
            Self::CertificateHold => "certificateHold",
            Self::RemoveFromCrl => "removeFromCRL",
            Self::PrivilegeWithdrawn => "privilegeWithdrawn",
            Self::AaCompromise => "aACompromise",
        }
    }

    /// The reason with this CRLReason code; 7 and codes above 10 are refused.
    pub fn from_code(code: u8) -> Result<Self, PkixError> {
        Self::ALL
            .into_iter()
            .find(|r| r.code() == code)
            .ok_or(PkixError::InvalidRevocationReason(code))
    }

    /// The reason to write into a full CRL entry or an OCSP RevokedInfo for a stored code:
    /// none for no code or `unspecified` (RFC 5280 section 5.3.1: the extension SHOULD be
    /// absent rather than say unspecified), the reason for the codes a full answer may carry,
    /// and an error for 7, codes above 10 and removeFromCRL (8, for delta CRLs only).
    pub fn for_full_status(code: Option<u8>) -> Result<Option<Self>, PkixError> {
        match code.map(Self::from_code).transpose()? {
            None | Some(Self::Unspecified) => Ok(None),
            Some(r) if !r.fits_full_status() => Err(PkixError::InvalidRevocationReason(r.code())),
            Some(r) => Ok(Some(r)),
        }
    }

    /// Whether a full CRL entry or an OCSP answer may carry this reason: every reason but
    /// removeFromCRL (8), which RFC 5280 section 5.3.1 gives to delta CRLs only.
    pub const fn fits_full_status(self) -> bool {
        !matches!(self, Self::RemoveFromCrl)
    }
}

impl FromStr for RevocationReason {
    type Err = PkixError;

    /// RFC 5280's names, case-sensitive as the RFC spells them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| PkixError::UnknownRevocationReason(s.chars().take(32).collect()))
    }
}

impl fmt::Display for RevocationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_round_trip() {
        for r in RevocationReason::ALL {
            assert_eq!(RevocationReason::from_code(r.code()), Ok(r));
            assert_eq!(r.name().parse::<RevocationReason>(), Ok(r));
            assert_eq!(r.to_string(), r.name());
        }
        assert_eq!(RevocationReason::KeyCompromise.code(), 1);
        assert_eq!(RevocationReason::CaCompromise.name(), "cACompromise");
        assert_eq!(RevocationReason::RemoveFromCrl.name(), "removeFromCRL");
        assert_eq!(RevocationReason::AaCompromise.code(), 10);
    }

    #[test]
    fn unassigned_codes_and_unknown_names_are_refused() {
        for code in [7, 11, 255] {
            assert_eq!(
                RevocationReason::from_code(code),
                Err(PkixError::InvalidRevocationReason(code))
            );
        }
        for name in ["KeyCompromise", "key_compromise", "", "reason1"] {
            assert!(matches!(
                name.parse::<RevocationReason>(),
                Err(PkixError::UnknownRevocationReason(_))
            ));
        }
    }

    #[test]
    fn full_status_reasons() {
        assert_eq!(RevocationReason::for_full_status(None), Ok(None));
        assert_eq!(RevocationReason::for_full_status(Some(0)), Ok(None));
        assert_eq!(
            RevocationReason::for_full_status(Some(1)),
            Ok(Some(RevocationReason::KeyCompromise))
        );
        for bad in [7, 8, 11] {
            assert_eq!(
                RevocationReason::for_full_status(Some(bad)),
                Err(PkixError::InvalidRevocationReason(bad))
            );
        }
    }

    #[test]
    fn only_remove_from_crl_stays_out_of_full_crls() {
        for r in RevocationReason::ALL {
            assert_eq!(
                r.fits_full_status(),
                r != RevocationReason::RemoveFromCrl,
                "{r}"
            );
        }
    }

    #[test]
    fn leaf_and_ca_sets() {
        assert!(RevocationReason::FOR_CA.contains(&RevocationReason::CaCompromise));
        assert!(!RevocationReason::FOR_LEAF.contains(&RevocationReason::CaCompromise));
        for r in RevocationReason::FOR_LEAF {
            assert!(RevocationReason::FOR_CA.contains(&r));
        }
        assert!(!RevocationReason::FOR_CA.contains(&RevocationReason::CertificateHold));
        assert!(!RevocationReason::FOR_CA.contains(&RevocationReason::RemoveFromCrl));
    }
}
