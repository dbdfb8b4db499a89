//! Where callbacks may be sent: public HTTPS receivers only.
//!
//! A callback URL is typed by a merchant, and the dashboard sends requests to it from
//! inside the operator's network and logs what came back: without this check it could
//! reach the loopback, the private network or a cloud's metadata service, and its log
//! would say what they answered. So a URL must be `https://` to a host whose every
//! address is public, checked when it is saved and again at each delivery, where the
//! delivery connects only to addresses that pass (a name that changes its answer in
//! between gets nowhere); redirects are not followed. The `callbacks_to_private_addresses`
//! setting lifts this, for development against a local receiver.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use dashboard_core::error::AppError;
use dashboard_core::hooks::Setting;
use dashboard_core::register;
use dashboard_core::state::AppState;

/// The setting that lets callbacks go over HTTP and to private addresses.
pub const PRIVATE_SETTING: &str = "callbacks_to_private_addresses";

register!(Setting {
    name: PRIVATE_SETTING,
    help: "Send callbacks over plain HTTP and to loopback or private addresses (development only)",
    default: "false",
    check: |value| match value {
        "true" | "false" => Ok(()),
        _ => Err("must be true or false".to_owned()),
    },
});

/// Whether this installation sends callbacks to private addresses (development).
pub fn private_allowed(state: &AppState) -> bool {
    state.settings.setting(PRIVATE_SETTING) == "true"
}

const NOT_ALLOWED: &str = "The callback URL must be an https:// address of a public host.";

/// The form of a callback target (HTTPS, or HTTP when private targets are allowed; no
/// credentials) and, unless private targets are allowed, an address written in it. Checked
/// at each delivery; a host name is checked there by the client's resolver
/// ([`PublicOnly`]), which the connection then uses.
pub fn check_form(url: &str, private_allowed: bool) -> Result<url::Url, AppError> {
    let refused = || AppError::BadRequest(NOT_ALLOWED.to_owned());
    let parsed = url::Url::parse(url).map_err(|_| refused())?;
    let scheme_allowed = parsed.scheme() == "https" || (private_allowed && parsed.scheme() == "http");
    if !scheme_allowed || !parsed.username().is_empty() || parsed.password().is_some() || url.len() > 2000 {
        return Err(refused());
    }
    let written = match parsed.host() {
        None => return Err(refused()),
        Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => None,
    };
    if !private_allowed && written.is_some_and(|ip| !is_public(ip)) {
        return Err(refused());
    }
    Ok(parsed)
}

/// Checks `url` as a callback target when it is saved: its form, and unless private
/// targets are allowed, that every address its host resolves to now is public.
pub async fn check(url: &str, private_allowed: bool) -> Result<(), AppError> {
    let parsed = check_form(url, private_allowed)?;
    if private_allowed {
        return Ok(());
    }
    let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port_or_known_default().unwrap_or(443);
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| AppError::BadRequest(format!("The callback URL's host {host:?} could not be found.")))?
        .collect();
    if addresses.is_empty() || !addresses.iter().all(|address| is_public(address.ip())) {
        return Err(AppError::BadRequest(NOT_ALLOWED.to_owned()));
    }
    Ok(())
}

/// Whether `ip` is an address of the public internet (not loopback, private, link-local,
/// shared, reserved, documentation, multicast or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_unspecified()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || (first == 0x0064 && ip.segments()[1] == 0xff9b)) // NAT64 (may embed a private IPv4)
}

/// A resolver for deliveries that gives the client only public addresses, so that the
/// connection goes where [`check`] looked.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|address| is_public(address.ip())).collect();
            if public.is_empty() {
                return Err(NOT_ALLOWED.into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delivery client: no redirects, a 10 s limit, and unless private targets are
/// allowed, public addresses only.
pub fn client(private_allowed: bool) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none());
    if private_allowed { builder.build() } else { builder.dns_resolver(Arc::new(PublicOnly)).build() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!is_public(private.parse().expect("an address")), "{private}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(is_public(public.parse().expect("an address")), "{public}");
        }
    }

    #[tokio::test]
    async fn callback_urls_must_be_public_https() {
        for refused in [
            "http://example.com/hook",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost:8080/hook",
            "https://user:pass@93.184.216.34/hook",
            "ftp://93.184.216.34/",
            "not a url",
        ] {
            assert!(check(refused, false).await.is_err(), "{refused}");
        }
        assert!(check("https://93.184.216.34/hook", false).await.is_ok());
        assert!(check("http://127.0.0.1:8080/hook", true).await.is_ok(), "development");
    }
}
