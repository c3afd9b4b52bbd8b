//! Outbound HTTP, host by host: the hosts a package declares it may call
//! (`[module] allowed_outbound_hosts`, as Spin's), the narrower list a deployer may give a
//! service (`service deploy --allow-host`), and the rule every request of a guest is held to.
//! No list, no network. A name that resolves to a loopback, private or link-local address is
//! refused unless the entry names such an address itself (`http://127.0.0.1:9000`,
//! `http://localhost:8080`): a public name must not lead a function into the local network.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Why an allowed-host entry, or a deploy's list, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("`{entry}` is not a URL: {reason}")]
    NotAUrl { entry: String, reason: String },
    #[error("`{entry}`: only http and https hosts can be allowed")]
    Scheme { entry: String },
    #[error(
        "`{entry}`: an allowed host is a scheme, a host and a port (`https://api.example.com:8443`), without a path, query, user or password"
    )]
    NotAnOrigin { entry: String },
    #[error(
        "`{entry}` is not among the package's allowed_outbound_hosts ({}): a deploy may narrow the list, never widen it",
        if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") }
    )]
    Widens { entry: String, allowed: Vec<String> },
}

/// One allowed origin: scheme, host (lowercase) and port (the scheme's when not written).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AllowedHost {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl AllowedHost {
    /// Reads `https://api.example.com`, `http://127.0.0.1:9000`, `http://[::1]:8080`.
    pub fn parse(entry: &str) -> Result<Self, OutboundError> {
        let url = url::Url::parse(entry).map_err(|e| OutboundError::NotAUrl {
            entry: entry.to_string(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Scheme {
                entry: entry.to_string(),
            });
        }
        let not_origin = || OutboundError::NotAnOrigin {
            entry: entry.to_string(),
        };
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || url.path() != "/"
        {
            return Err(not_origin());
        }
        let host = url.host_str().ok_or_else(not_origin)?.to_ascii_lowercase();
        let port = url.port_or_known_default().ok_or_else(not_origin)?;
        Ok(Self {
            scheme: url.scheme().to_string(),
            host,
            port,
        })
    }

    /// Whether this entry names a loopback, private or link-local place itself (an address,
    /// or `localhost`): then it may be reached although a public name may not lead there.
    pub fn names_a_private_place(&self) -> bool {
        if self.host == "localhost" || self.host.ends_with(".localhost") {
            return true;
        }
        let literal = self.host.trim_start_matches('[').trim_end_matches(']');
        literal
            .parse::<IpAddr>()
            .is_ok_and(|address| crate::download::kind(address).is_some())
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let default = match self.scheme.as_str() {
            "https" => 443,
            _ => 80,
        };
        match self.port == default {
            true => write!(f, "{}://{}", self.scheme, self.host),
            false => write!(f, "{}://{}:{}", self.scheme, self.host, self.port),
        }
    }
}

/// The hosts a service's guest may call; empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct AllowedHosts(Vec<AllowedHost>);

impl TryFrom<Vec<String>> for AllowedHosts {
    type Error = OutboundError;

    fn try_from(entries: Vec<String>) -> Result<Self, OutboundError> {
        Self::parse(&entries)
    }
}

impl From<AllowedHosts> for Vec<String> {
    fn from(hosts: AllowedHosts) -> Self {
        hosts.entries()
    }
}

impl AllowedHosts {
    /// Reads every entry; the first that is wrong is the error. Duplicates are kept once.
    pub fn parse(entries: &[String]) -> Result<Self, OutboundError> {
        let mut hosts = entries
            .iter()
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<Vec<_>, _>>()?;
        hosts.sort();
        hosts.dedup();
        Ok(Self(hosts))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries as written back (`https://api.example.com`, the default port left out).
    pub fn entries(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The deployer's list, each entry one the package allows: a deploy narrows, never widens.
    pub fn narrowed_to(&self, given: &[String]) -> Result<Self, OutboundError> {
        let given = Self::parse(given)?;
        if let Some(extra) = given.0.iter().find(|h| !self.0.contains(h)) {
            return Err(OutboundError::Widens {
                entry: extra.to_string(),
                allowed: self.entries(),
            });
        }
        Ok(given)
    }

    /// What of this list `package` still allows (a service's narrowed list, carried to a new
    /// revision whose package may allow less).
    pub fn within(&self, package: &AllowedHosts) -> Self {
        Self(
            self.0
                .iter()
                .filter(|h| package.0.contains(h))
                .cloned()
                .collect(),
        )
    }

    /// The entry that allows a request to `scheme://host:port`, or why none does (a message
    /// for the guest and the execution's logs, naming the host and the rule).
    pub fn check(&self, scheme: &str, host: &str, port: u16) -> Result<&AllowedHost, String> {
        let host = host.to_ascii_lowercase();
        let asked = AllowedHost {
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
        };
        self.0.iter().find(|h| **h == asked).ok_or_else(|| {
            if self.0.is_empty() {
                format!(
                    "{asked} is not allowed: this service may call no host (the package declares \
                     [module] allowed_outbound_hosts, the deployer may narrow it)"
                )
            } else {
                format!(
                    "{asked} is not allowed: the service may call only {}",
                    self.entries().join(", ")
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>())
            .expect("valid entries")
    }

    #[test]
    fn entries_are_origins_and_are_written_back_the_same_way() {
        let h = hosts(&[
            "https://API.example.com",
            "http://127.0.0.1:9000",
            "https://api.example.com/",
            "http://[::1]:8080",
        ]);
        assert_eq!(
            h.entries(),
            [
                "http://127.0.0.1:9000",
                "http://[::1]:8080",
                "https://api.example.com"
            ]
        );
        for (entry, says) in [
            ("api.example.com", "is not a URL"),
            ("ftp://example.com", "only http and https"),
            ("https://example.com/v1/detect", "without a path"),
            ("https://user:pw@example.com", "without a path, query, user"),
            ("https://example.com?x=1", "without a path, query"),
        ] {
            let error = AllowedHost::parse(entry).expect_err(entry).to_string();
            assert!(error.contains(says), "{entry}: {error}");
        }
    }

    #[test]
    fn a_request_must_match_scheme_host_and_port() {
        let h = hosts(&["https://api.example.com", "http://127.0.0.1:9000"]);
        assert!(h.check("https", "api.example.com", 443).is_ok());
        assert!(h.check("HTTPS", "Api.Example.com", 443).is_ok());
        assert!(h.check("http", "127.0.0.1", 9000).is_ok());
        let refused = h.check("http", "api.example.com", 80).expect_err("scheme");
        assert!(
            refused.contains("http://api.example.com is not allowed"),
            "{refused}"
        );
        assert!(refused.contains("only http://127.0.0.1:9000, https://api.example.com"));
        assert!(h.check("https", "api.example.com", 8443).is_err());
        assert!(h.check("https", "evil.example.com", 443).is_err());
        assert!(h.check("http", "127.0.0.1", 9001).is_err());
        let none = AllowedHosts::default();
        let refused = none.check("https", "api.example.com", 443);
        assert!(refused.expect_err("no list").contains("may call no host"));
    }

    #[test]
    fn a_deploy_narrows_and_never_widens() {
        let package = hosts(&["https://a.example.com", "https://b.example.com"]);
        let narrowed = package
            .narrowed_to(&["https://b.example.com/".into()])
            .expect("narrower");
        assert_eq!(narrowed.entries(), ["https://b.example.com"]);
        let error = package
            .narrowed_to(&["https://c.example.com".into()])
            .expect_err("wider");
        assert_eq!(
            error.to_string(),
            "`https://c.example.com` is not among the package's allowed_outbound_hosts \
             (https://a.example.com, https://b.example.com): a deploy may narrow the list, never widen it"
        );
        assert_eq!(
            narrowed.within(&hosts(&["https://a.example.com"])),
            AllowedHosts::default()
        );
    }

    #[test]
    fn only_entries_that_name_a_private_place_may_reach_one() {
        for (entry, private) in [
            ("http://127.0.0.1:9000", true),
            ("http://localhost:8080", true),
            ("http://[::1]:8080", true),
            ("http://10.0.0.7", true),
            ("https://api.example.com", false),
            ("https://93.184.215.14", false),
        ] {
            let host = AllowedHost::parse(entry).expect("valid");
            assert_eq!(host.names_a_private_place(), private, "{entry}");
        }
    }
}
