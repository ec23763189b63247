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
    /// The longest lifetime Signet can express: 36,600 days (about 100 years). Profiles and
    /// policies set far lower maximums.
    pub const MAX: Lifetime = Lifetime(Duration::from_secs(36_600 * 86_400));

    /// From a duration; must be at least [`Lifetime::MIN`] and at most [`Lifetime::MAX`].
    /// Beyond that it is [`CaError::LifetimeTooLong`] (against [`Lifetime::MAX`]; a caller
    /// that knows a lower maximum restates it, see [`CaError::against_max`]).
    pub fn new(d: Duration) -> Result<Self, CaError> {
        if d < Self::MIN.0 {
            return Err(CaError::InvalidLifetime(format!(
                "{} (the shortest is {})",
                fmt_span(d),
                fmt_span(Self::MIN.0)
            )));
        }
        if d > Self::MAX.0 {
            return Err(CaError::LifetimeTooLong {
                requested: d,
                max: Self::MAX.0,
            });
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

/// Parse a duration in Signet's one syntax, used alike in `signet.toml`, the API (`ttl`,
/// `expiring_within`) and on the command line: one or more `<number><unit>` terms,
/// optionally separated by spaces, with units `ms`, `s`, `m`, `h`, `d` (and the long forms
/// `sec`, `min`, `hours`, `days`...), e.g. `90s`, `5m`, `24h`, `7d`, `1d12h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|_| {
        format!(
            "{:?} is not a duration like \"90s\", \"24h\" or \"7d\"",
            s.chars().take(64).collect::<String>()
        )
    })
}

/// Write a duration in that syntax, largest unit first: `7d`, `1d 12h`, `90m` is `1h 30m`,
/// `500ms`; zero is `0s`. [`parse_duration`] reads it back exactly.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    let millis = d.subsec_millis();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400u64), ("h", 3_600), ("m", 60), ("s", 1)] {
        let n = secs / size;
        if n > 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{n}{unit}"));
            secs %= size;
        }
    }
    if millis > 0 {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&format!("{millis}ms"));
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl FromStr for Lifetime {
    type Err = CaError;
    fn from_str(s: &str) -> Result<Self, CaError> {
        let d = match humantime::parse_duration(s.trim()) {
            Ok(d) => d,
            // A whole number too large for 64 bits of seconds is too long, not malformed.
            // (humantime reports fractions finer than a nanosecond the same way; those stay
            // malformed.)
            Err(humantime::DurationError::NumberOverflow) if !s.contains('.') => {
                return Err(CaError::LifetimeTooLong {
                    requested: Duration::MAX,
                    max: Self::MAX.0,
                });
            }
            Err(_) => return Err(CaError::InvalidLifetime(s.chars().take(64).collect())),
        };
        Lifetime::new(d)
    }
}

/// A duration as whole days, hours, minutes and seconds (`100000d`, `7d`, `1d 12h`, `90s`),
/// the units a lifetime is written in; humantime's own formatting adds months and years of
/// fractional days, which reads as noise for a lifetime written in days. [`Duration::MAX`]
/// stands for a number too large to represent.
pub(crate) fn fmt_span(d: Duration) -> String {
    if d == Duration::MAX {
        return "more than 2^64 seconds".into();
    }
    format_duration(d)
}

impl fmt::Display for Lifetime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
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
    fn durations_have_one_syntax() {
        for (text, secs, canonical) in [
            ("7d", 7 * 86_400, "7d"),
            ("7days", 7 * 86_400, "7d"),
            ("24h", 86_400, "1d"),
            ("36h", 36 * 3_600, "1d 12h"),
            ("90m", 5_400, "1h 30m"),
            ("1h 30m", 5_400, "1h 30m"),
            ("5m", 300, "5m"),
            ("100000d", 100_000 * 86_400, "100000d"),
        ] {
            let d = parse_duration(text).expect(text);
            assert_eq!(d, Duration::from_secs(secs), "{text}");
            assert_eq!(format_duration(d), canonical, "{text}");
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s 500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        for bad in ["", "10", "soon", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

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
    fn lifetimes_beyond_the_maximum_are_too_long_not_malformed() {
        for (text, shown) in [
            ("100000d", "100000d"),
            ("36601d", "36601d"),
            ("18446744073709551615s", "213503982334601d 7h 15s"),
            ("99999999999999999999999d", "more than 2^64 seconds"),
        ] {
            let err = text.parse::<Lifetime>().expect_err("too long");
            assert!(
                matches!(err, CaError::LifetimeTooLong { .. }),
                "{text}: {err:?}"
            );
            assert_eq!(
                err.to_string(),
                format!("lifetime {shown} exceeds the maximum 36600d"),
                "{text}"
            );
        }
        assert!("36600d".parse::<Lifetime>().is_ok());
        assert!(matches!(
            "0.0000000001s".parse::<Lifetime>(),
            Err(CaError::InvalidLifetime(_))
        ));
        let err = "10s".parse::<Lifetime>().expect_err("too short");
        assert!(matches!(err, CaError::InvalidLifetime(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "invalid lifetime \"10s (the shortest is 1m)\""
        );
    }

    #[test]
    fn spans_read_in_the_units_lifetimes_are_written_in() {
        assert_eq!(fmt_span(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(fmt_span(Duration::from_secs(36 * 3600)), "1d 12h");
        assert_eq!(fmt_span(Duration::from_secs(90)), "1m 30s");
        assert_eq!(fmt_span(Duration::from_millis(500)), "500ms");
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
