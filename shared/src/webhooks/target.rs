//! Where a webhook may be sent: an `https` URL (or `http` where `WEBHOOK_ALLOW_PRIVATE` is set)
//! of at most [`MAX_URL_LENGTH`] characters, with a host and no credentials, whose address is
//! public. The address is checked when the endpoint is registered if the URL names one, and on
//! every delivery after resolving the host: [`PublicOnly`] is the HTTP client's resolver, so
//! the connection goes only to an address that passed the check (no second lookup to rebind).

use super::address::is_public;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};

/// The longest webhook URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;

/// Why a URL cannot receive webhooks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("the URL is longer than {MAX_URL_LENGTH} characters")]
    TooLong,
    #[error("not an absolute URL")]
    NotAUrl,
    #[error("webhooks go to https URLs only")]
    NotHttps,
    #[error("the URL may not carry a user name or password")]
    Credentials,
    #[error("the URL names no host")]
    NoHost,
    #[error("port 0 cannot be connected to")]
    PortZero,
    #[error("{0} is not a public address")]
    NotPublic(IpAddr),
}

/// The URL `text` if webhooks may be sent to it; `allow_private` (`WEBHOOK_ALLOW_PRIVATE`, for
/// local development and tests) also allows `http` and addresses that are not public.
pub fn check_url(text: &str, allow_private: bool) -> Result<Url, TargetError> {
    if text.chars().count() > MAX_URL_LENGTH {
        return Err(TargetError::TooLong);
    }
    let url = Url::parse(text).map_err(|_| TargetError::NotAUrl)?;
    // A host written in Unicode is stored in its longer ASCII form.
    if url.as_str().len() > MAX_URL_LENGTH {
        return Err(TargetError::TooLong);
    }
    if url.port() == Some(0) {
        return Err(TargetError::PortZero);
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(TargetError::NotHttps),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(TargetError::Credentials);
    }
    // The parser writes numeric hosts in their one canonical form (`0x7f000001` is
    // `127.0.0.1`), IPv6 in brackets.
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or(TargetError::NoHost)?;
    let literal: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    if let Some(ip) = literal.filter(|ip| !allow_private && !is_public(*ip)) {
        return Err(TargetError::NotPublic(ip));
    }
    Ok(url)
}

/// What the resolver says of a name with no address a delivery may reach.
pub(super) const NO_PUBLIC_ADDRESS: &str = "resolves to no public address";

/// The HTTP client's resolver for deliveries: the system's answers, keeping only public
/// addresses (all of them where private ones are allowed); none left is an error, so the
/// delivery never connects.
#[derive(Debug, Clone, Copy)]
pub struct PublicOnly {
    pub allow_private: bool,
}

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err(format!("{} {NO_PUBLIC_ADDRESS}", name.as_str()).into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_urls_to_public_hosts_without_credentials_pass() {
        for good in [
            "https://example.com/hooks",
            "https://example.com:8443/hooks?shop=1",
            "https://93.184.216.34/hooks",
            "https://[2606:4700:4700::1111]/x",
        ] {
            assert!(check_url(good, false).is_ok(), "{good}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LENGTH));
        // Under the limit as typed, over it in the ASCII form a Unicode host is stored in.
        let long_unicode = format!(
            "https://{}example/",
            format!("{}.", "é".repeat(20)).repeat(95)
        );
        assert!(long_unicode.chars().count() <= MAX_URL_LENGTH);
        for (bad, why) in [
            ("http://example.com/hooks", TargetError::NotHttps),
            ("ftp://example.com/", TargetError::NotHttps),
            ("file:///etc/passwd", TargetError::NotHttps),
            ("/relative", TargetError::NotAUrl),
            ("https://user:pw@example.com/", TargetError::Credentials),
            ("https://user@example.com/", TargetError::Credentials),
            (long.as_str(), TargetError::TooLong),
            ("https://example.com:0/", TargetError::PortZero),
            (long_unicode.as_str(), TargetError::TooLong),
            (
                "https://127.0.0.1/",
                TargetError::NotPublic("127.0.0.1".parse().unwrap()),
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                TargetError::NotPublic("169.254.169.254".parse().unwrap()),
            ),
            (
                "https://[::ffff:10.0.0.1]/",
                TargetError::NotPublic("::ffff:10.0.0.1".parse().unwrap()),
            ),
            (
                "https://0x7f000001/",
                TargetError::NotPublic("127.0.0.1".parse().unwrap()),
            ),
            (
                "https://2130706433/",
                TargetError::NotPublic("127.0.0.1".parse().unwrap()),
            ),
            (
                "https://0177.0.0.1/",
                TargetError::NotPublic("127.0.0.1".parse().unwrap()),
            ),
        ] {
            assert_eq!(check_url(bad, false), Err(why), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_public_addresses() {
        let refused = PublicOnly {
            allow_private: false,
        }
        .resolve("localhost".parse::<Name>().unwrap())
        .await;
        assert!(refused.is_err());
        let allowed = PublicOnly {
            allow_private: true,
        }
        .resolve("localhost".parse::<Name>().unwrap())
        .await
        .unwrap();
        assert!(allowed.into_iter().all(|a| a.ip().is_loopback()));
    }
}
