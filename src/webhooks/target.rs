//! Where webhooks may go: `https` to public addresses only, checked when an
//! endpoint is created and again on every connection, after DNS resolution
//! (so a name cannot be pointed at a private address later); redirects are
//! not followed. `WEBHOOK_ALLOW_PRIVATE=on` lifts both rules.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::error::AppError;

/// Longest endpoint URL.
pub const URL_LENGTH_MAX: usize = 2048;

/// IPv4 ranges of IANA's special-purpose address registry, and multicast
/// and the reserved class E: never a webhook target.
const SPECIAL_V4: [(Ipv4Addr, u8); 20] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),          // this network
    (Ipv4Addr::new(10, 0, 0, 0), 8),         // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),      // shared address space
    (Ipv4Addr::new(127, 0, 0, 0), 8),        // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),     // link-local
    (Ipv4Addr::new(172, 16, 0, 0), 12),      // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),       // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),       // documentation
    (Ipv4Addr::new(192, 31, 196, 0), 24),    // AS112
    (Ipv4Addr::new(192, 52, 193, 0), 24),    // AMT
    (Ipv4Addr::new(192, 88, 99, 0), 24),     // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),     // private
    (Ipv4Addr::new(192, 175, 48, 0), 24),    // direct delegation AS112
    (Ipv4Addr::new(198, 18, 0, 0), 15),      // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24),    // documentation
    (Ipv4Addr::new(203, 0, 113, 0), 24),     // documentation
    (Ipv4Addr::new(224, 0, 0, 0), 4),        // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),        // reserved
    (Ipv4Addr::new(255, 255, 255, 255), 32), // limited broadcast
    (Ipv4Addr::new(233, 252, 0, 0), 24),     // MCAST-TEST-NET (inside multicast)
];

/// IPv6 ranges inside global unicast (`2000::/3`) that IANA's
/// special-purpose registry sets apart; everything outside `2000::/3` is
/// refused too (loopback, unspecified, IPv4-compatible and -translated,
/// NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, discard `100::/64`, SRv6
/// `5f00::/16`, unique local, link- and site-local, multicast).
const SPECIAL_V6: [(Ipv6Addr, u8); 5] = [
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 23), // IETF protocol assignments (Teredo, ORCHID…)
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16), // 6to4
    (Ipv6Addr::new(0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0), 48), // direct delegation AS112
    (Ipv6Addr::new(0x3fff, 0, 0, 0, 0, 0, 0, 0), 20), // documentation
];

fn in_v4(ip: Ipv4Addr, (network, prefix): (Ipv4Addr, u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(network) & mask
}

fn in_v6(ip: Ipv6Addr, (network, prefix): (Ipv6Addr, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(network) & mask
}

/// Whether `ip` is a public unicast address: outside every special-purpose
/// range (an IPv4-mapped IPv6 address is judged as its IPv4 address).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            in_v6(v6, (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 3))
                && !SPECIAL_V6.iter().any(|range| in_v6(v6, *range))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !SPECIAL_V4.iter().any(|range| in_v4(ip, *range))
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

/// Why the resolver refused a name: it resolves to private addresses only
/// (the delivery's error says so, found in the client error's sources).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// A resolver that hands the HTTP client public addresses only.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve_public(&host, 0)
                .await
                .map_err(|error| -> Box<dyn std::error::Error + Send + Sync> { Box::new(Refused(error)) })?;
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
            // Each IANA special-purpose range, by an address inside it.
            "192.0.0.8",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.175.48.1",
            "198.51.100.7",
            "203.0.113.9",
            "240.0.0.1",
            "fec0::1",
            "2002:7f00:1::1",
            "64:ff9b:1::a00:1",
            "::ffff:0:7f00:1",
            "::7f00:1",
            "2001::1",
            // Teredo carrying a private client (10.0.0.1, inverted) and a
            // private server; 6to4 of 192.168.1.1; IPv4-compatible 10.0.0.1.
            "2001:0:a00:1:0:0:f5ff:fffe",
            "2001:0:c0a8:101::1",
            "2002:c0a8:101::1",
            "::a00:1",
            "2001:2::1",
            "2001:20::1",
            "100::1",
            "2620:4f:8000::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "93.184.216.34",
            "2a00:1450:4001:82a::200e",
            "2600:1f18::1",
            "192.0.1.1",
            "198.20.0.1",
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
