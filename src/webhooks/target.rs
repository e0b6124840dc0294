//! Where webhooks may go: `https` to public addresses only, checked when an
//! endpoint is created and again on every connection, after DNS resolution
//! (so a name cannot be pointed at a private address later); redirects are
//! not followed. `WEBHOOK_ALLOW_PRIVATE=on` lifts both rules.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::AppError;

/// Longest endpoint URL.
pub const URL_LENGTH_MAX: usize = 2048;

/// Whether `ip` is a public unicast address: not private, loopback,
/// link-local, shared, documentation, multicast or otherwise reserved.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || v6.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] // NAT64 of any v4
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// Checks an endpoint URL as given; names are resolved and checked too, so
/// a caller hears at once that `localhost` is refused.
pub async fn check_url(raw: &str, allow_private: bool) -> Result<Url, AppError> {
    let refuse = |why: &str| AppError::invalid("url", why);
    if raw.len() > URL_LENGTH_MAX {
        return Err(refuse("must be at most 2048 characters"));
    }
    let url = Url::parse(raw).map_err(|_| refuse("must be an absolute URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_private => {}
        _ => return Err(refuse("must use https")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("must not carry credentials"));
    }
    let host = bare_host(&url).ok_or_else(|| refuse("must name a host"))?;
    if allow_private {
        return Ok(url);
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let addresses = resolve_public(host, port).await.map_err(|error| refuse(&error))?;
    if addresses.is_empty() {
        return Err(refuse("does not resolve"));
    }
    Ok(url)
}

/// The public addresses of `host`; an error when it has none.
async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let all: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(Duration::from_secs(5), tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| format!("{host} did not resolve within 5 s"))?
            .map_err(|_| format!("{host} does not resolve"))?
            .collect(),
    };
    let public: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|address| is_public(address.ip()))
        .collect();
    if public.is_empty() && !all.is_empty() {
        return Err(format!(
            "{host} is a private, loopback or link-local address (WEBHOOK_ALLOW_PRIVATE=on allows it)"
        ));
    }
    Ok(public)
}

/// A resolver that hands the HTTP client public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve_public(&host, 0)
                .await
                .map_err(|error| -> Box<dyn std::error::Error + Send + Sync> { error.into() })?;
            if addresses.is_empty() {
                return Err(format!("{host} does not resolve").into());
            }
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}

/// The client deliveries are sent with.
pub fn client(allow_private: bool, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("protodesk-credits/", env!("CARGO_PKG_VERSION")))
        .no_proxy();
    if !allow_private {
        builder = builder
            .https_only(true)
            .dns_resolver(std::sync::Arc::new(PublicOnly));
    }
    Ok(builder.build()?)
}

/// Whether a URL's host is an address literal that is not public (the
/// resolver never sees literals, so the worker checks them itself).
pub fn is_private_literal(url: &Url) -> bool {
    bare_host(url)
        .and_then(|host| host.parse::<IpAddr>().ok())
        .is_some_and(|ip| !is_public(ip))
}

/// A URL's host without the brackets of an IPv6 literal.
fn bare_host(url: &Url) -> Option<&str> {
    url.host_str()
        .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "198.18.0.1",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "93.184.216.34",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[tokio::test]
    async fn private_and_plain_targets_are_refused_unless_allowed() {
        for refused in [
            "http://example.com/hook",
            "ftp://example.com/hook",
            "https://127.0.0.1/hook",
            "https://[::1]:8443/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.7/hook",
            "https://localhost:9000/hook",
            "https://user:pass@8.8.8.8/hook",
            "not a url",
        ] {
            assert!(check_url(refused, false).await.is_err(), "{refused}");
        }
        assert!(check_url("https://8.8.8.8/hook", false).await.is_ok());
        assert!(check_url("http://127.0.0.1:9000/hook", true).await.is_ok());
        assert!(check_url("ftp://127.0.0.1/hook", true).await.is_err());
    }

    #[tokio::test]
    async fn the_delivery_resolver_refuses_names_of_private_addresses() {
        let resolved = PublicOnly.resolve("localhost".parse::<Name>().unwrap()).await;
        assert!(resolved.is_err());
    }
}
