//! Issuance profiles and certificate lifetimes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::CaError;

/// What a certificate is for. Each profile fixes the extended key usage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// TLS server: EKU serverAuth; needs at least one DNS or IP name.
    Server,
    /// TLS client: EKU clientAuth; needs a DNS, URI or email name.
    Client,
    /// Both ends of mutual TLS: serverAuth and clientAuth; needs a DNS or IP name.
    Peer,
}

impl Profile {
    /// Every profile, in a stable order.
    pub const ALL: [Profile; 3] = [Profile::Server, Profile::Client, Profile::Peer];

    /// The lowercase name used in config, the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Server => "server",
            Profile::Client => "client",
            Profile::Peer => "peer",
        }
    }

    /// Whether certificates of this profile authenticate TLS servers.
    pub fn server_auth(self) -> bool {
        matches!(self, Profile::Server | Profile::Peer)
    }

    /// Whether certificates of this profile authenticate TLS clients.
    pub fn client_auth(self) -> bool {
        matches!(self, Profile::Client | Profile::Peer)
    }
}

impl FromStr for Profile {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        match s {
            "server" => Ok(Profile::Server),
            "client" => Ok(Profile::Client),
            "peer" => Ok(Profile::Peer),
            other => Err(CaError::UnknownProfile(other.chars().take(64).collect())),
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A certificate lifetime, written like `24h`, `90m`, `7d` or `1h 30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lifetime(Duration);

impl Lifetime {
    /// The shortest lifetime Signet issues: one minute.
    pub const MIN: Lifetime = Lifetime(Duration::from_secs(60));

    /// From a duration; must be at least [`Lifetime::MIN`] and at most 100 years.
    pub fn new(d: Duration) -> Result<Self, CaError> {
        if d < Self::MIN.0 || d > Duration::from_secs(100 * 366 * 86_400) {
            return Err(CaError::InvalidLifetime(
                humantime::format_duration(d).to_string(),
            ));
        }
        Ok(Lifetime(d))
    }

    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }

    /// Hours, for the common case.
    pub const fn from_hours(h: u64) -> Lifetime {
        Lifetime(Duration::from_secs(h * 3600))
    }
}

impl FromStr for Lifetime {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        let d = humantime::parse_duration(s.trim())
            .map_err(|_| CaError::InvalidLifetime(s.chars().take(64).collect()))?;
        Lifetime::new(d)
    }
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for Lifetime {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lifetime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Lifetime bounds of one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileLimits {
    /// Used when the request names no lifetime.
    pub default_ttl: Lifetime,
    /// The longest lifetime this profile issues.
    pub max_ttl: Lifetime,
}

impl Default for ProfileLimits {
    /// 24 hours by default, 7 days at most.
    fn default() -> Self {
        ProfileLimits {
            default_ttl: Lifetime::from_hours(24),
            max_ttl: Lifetime::from_hours(7 * 24),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse() {
        assert_eq!(
            "24h".parse::<Lifetime>().expect("ok").duration(),
            Duration::from_secs(86_400)
        );
        assert_eq!(
            "7d".parse::<Lifetime>().expect("ok").duration(),
            Duration::from_secs(7 * 86_400)
        );
        assert_eq!(
            "1h 30m".parse::<Lifetime>().expect("ok").duration(),
            Duration::from_secs(5400)
        );
        for bad in ["", "0s", "10s", "forever", "-1h", "1000000d"] {
            assert!(bad.parse::<Lifetime>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn profiles_parse() {
        assert_eq!("peer".parse::<Profile>().expect("ok"), Profile::Peer);
        assert!(matches!(
            "ca".parse::<Profile>(),
            Err(CaError::UnknownProfile(_))
        ));
        assert!(Profile::Peer.server_auth() && Profile::Peer.client_auth());
        assert!(!Profile::Client.server_auth());
    }
}
