//! Where an address and a card come from, for the rules' `ip.country` and `card.country`:
//! addresses by network and cards by BIN, from CSV files the operator gives
//! (`ip_countries_file`: `network,country` rows such as `81.2.69.0/24,GB`, the form of the
//! common GeoIP country exports; `bin_countries_file`: `bin,country` rows), or else from
//! the sandbox's tables (the documentation networks and the sandbox's test cards).
//! Addresses are compared as IPv6, IPv4 ones mapped into `::ffff:0:0/96`.

use std::net::IpAddr;
use std::sync::Arc;

use dashboard_core::hooks::{Service, Setting};
use dashboard_core::{AppError, AppState};

/// An address or a network, as its first and last address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    pub first: u128,
    pub last: u128,
    /// The prefix length in IPv6 terms (an IPv4 /24 is a /120).
    prefix: u32,
}

fn as_v6(address: IpAddr) -> (u128, u32) {
    match address {
        IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 96),
        IpAddr::V6(v6) => (u128::from(v6), 0),
    }
}

impl Network {
    /// `192.0.2.7`, `192.0.2.0/24`, `2001:db8::/32`.
    pub fn parse(text: &str) -> Option<Network> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u32>().ok()?)),
            None => (text, None),
        };
        let (address, offset) = as_v6(address.parse().ok()?);
        let most = 128 - offset;
        let prefix = prefix.unwrap_or(most);
        if prefix > most {
            return None;
        }
        let prefix = prefix + offset;
        let host_bits = 128 - prefix;
        let mask = if host_bits == 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        // A network written with host bits set (`192.0.2.7/24`) means its network.
        let first = address & !mask;
        Some(Network { first, last: first | mask, prefix })
    }

    /// One address.
    pub fn of(address: IpAddr) -> Network {
        let (address, _) = as_v6(address);
        Network { first: address, last: address, prefix: 128 }
    }

    /// As people write it: `192.0.2.0/24`, `192.0.2.7`, `2001:db8::/32`.
    pub fn shown(&self) -> String {
        let v6 = std::net::Ipv6Addr::from(self.first);
        let (address, prefix, most) = match v6.to_ipv4_mapped() {
            Some(v4) if self.prefix >= 96 => (IpAddr::V4(v4), self.prefix - 96, 32),
            _ => (IpAddr::V6(v6), self.prefix, 128),
        };
        if prefix == most { address.to_string() } else { format!("{address}/{prefix}") }
    }

    /// An address as the lists' range columns keep it: 32 hex digits, so that text order
    /// is address order.
    pub fn key(address: u128) -> String {
        format!("{address:032x}")
    }

    pub fn contains(&self, address: u128) -> bool {
        (self.first..=self.last).contains(&address)
    }
}

/// A client address as stored with a payment, as the key the lists compare.
pub fn address_key(ip: &str) -> Option<u128> {
    ip.trim().parse::<IpAddr>().ok().map(|address| as_v6(address).0)
}

/// Countries of networks and of BINs.
#[derive(Debug, Default)]
pub struct Geo {
    /// Sorted by first address, not overlapping.
    networks: Vec<(u128, u128, [u8; 2])>,
    bins: std::collections::HashMap<String, [u8; 2]>,
}

/// The sandbox's networks: the three documentation networks of IPv4 and IPv6's.
const SANDBOX_NETWORKS: &[(&str, &str)] =
    &[("192.0.2.0/24", "US"), ("198.51.100.0/24", "DE"), ("203.0.113.0/24", "GB"), ("2001:db8::/32", "NL")];

/// The sandbox's test cards' BINs.
const SANDBOX_BINS: &[(&str, &str)] = &[
    ("424242", "US"),
    ("555555", "US"),
    ("378282", "US"),
    ("400000", "GB"),
    ("401288", "DE"),
    ("411111", "US"),
    ("520082", "NL"),
];

fn country(text: &str) -> Option<[u8; 2]> {
    let code = text.trim().to_ascii_uppercase();
    let bytes = code.as_bytes();
    (bytes.len() == 2 && bytes.iter().all(u8::is_ascii_uppercase)).then(|| [bytes[0], bytes[1]])
}

fn shown(code: [u8; 2]) -> String {
    String::from_utf8_lossy(&code).into_owned()
}

impl Geo {
    /// The sandbox's tables.
    pub fn sandbox() -> Geo {
        let rows = |table: &[(&str, &str)]| table.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
        Geo::of(rows(SANDBOX_NETWORKS), rows(SANDBOX_BINS)).unwrap_or_default()
    }

    /// From `network,country` and `bin,country` rows; a row that is not one is an error
    /// with its number (a header row is skipped).
    fn of(networks: Vec<(String, String)>, bins: Vec<(String, String)>) -> Result<Geo, String> {
        let mut geo = Geo::default();
        for (index, (network, code)) in networks.into_iter().enumerate() {
            match (Network::parse(&network), country(&code)) {
                (Some(network), Some(code)) => geo.networks.push((network.first, network.last, code)),
                _ if index == 0 => {}
                _ => return Err(format!("row {}: {network:?} is not a network with a country", index + 1)),
            }
        }
        geo.networks.sort_unstable();
        for (index, (bin, code)) in bins.into_iter().enumerate() {
            let bin = bin.trim();
            match country(&code) {
                Some(code) if (6..=8).contains(&bin.len()) && bin.bytes().all(|b| b.is_ascii_digit()) => {
                    geo.bins.insert(bin.to_owned(), code);
                }
                _ if index == 0 => {}
                _ => return Err(format!("row {}: {bin:?} is not a BIN with a country", index + 1)),
            }
        }
        Ok(geo)
    }

    fn read(path: &str) -> Result<Vec<(String, String)>, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_path(path)
            .map_err(|e| format!("{path}: {e}"))?;
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| format!("{path}: {e}"))?;
            rows.push((record.get(0).unwrap_or("").to_owned(), record.get(1).unwrap_or("").to_owned()));
        }
        Ok(rows)
    }

    /// The country of a client address.
    pub fn ip_country(&self, ip: &str) -> Option<String> {
        let address = address_key(ip)?;
        let at = self.networks.partition_point(|(first, _, _)| *first <= address);
        let (_, last, code) = self.networks.get(at.checked_sub(1)?)?;
        (address <= *last).then(|| shown(*code))
    }

    /// The country that issued a card, by its first digits (8, then 6).
    pub fn card_country(&self, first_digits: &str) -> Option<String> {
        [8, 6].iter().find_map(|&len| first_digits.get(..len).and_then(|bin| self.bins.get(bin))).map(|c| shown(*c))
    }

    pub fn of_state(state: &AppState) -> Result<&Geo, AppError> {
        Ok(state.extension::<Arc<Geo>>()?.as_ref())
    }
}

const IP_FILE: &str = "ip_countries_file";
const BIN_FILE: &str = "bin_countries_file";

dashboard_core::register!(Setting {
    name: IP_FILE,
    help: "CSV of network,country rows for the fraud rules' ip.country (empty: the sandbox's networks)",
    default: "",
    check: |_| Ok(()),
});

dashboard_core::register!(Setting {
    name: BIN_FILE,
    help: "CSV of bin,country rows for the fraud rules' card.country (empty: the sandbox's test cards)",
    default: "",
    check: |_| Ok(()),
});

dashboard_core::register!(Service {
    name: "fraud geography",
    start: |settings, extensions| {
        let (ip_file, bin_file) = (settings.setting(IP_FILE), settings.setting(BIN_FILE));
        let sandbox = |table: &[(&str, &str)]| table.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect();
        let networks = if ip_file.is_empty() { sandbox(SANDBOX_NETWORKS) } else { Geo::read(ip_file)? };
        let bins = if bin_file.is_empty() { sandbox(SANDBOX_BINS) } else { Geo::read(bin_file)? };
        extensions.insert(Arc::new(Geo::of(networks, bins)?));
        Ok(())
    },
});

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn networks_are_ranges_of_addresses() {
        let network = Network::parse("192.0.2.77/24").unwrap();
        assert_eq!(network.shown(), "192.0.2.0/24");
        assert!(network.contains(address_key("192.0.2.255").unwrap()));
        assert!(!network.contains(address_key("192.0.3.0").unwrap()));
        assert_eq!(Network::parse("2001:db8::1").unwrap().shown(), "2001:db8::1");
        assert_eq!(Network::parse("2001:db8::/32").unwrap().shown(), "2001:db8::/32");
        assert!(Network::parse("192.0.2.0/33").is_none());
        assert!(Network::parse("not an address").is_none());
        assert!(Network::key(1) < Network::key(16), "text order is address order");
    }

    #[test]
    fn addresses_and_cards_have_countries() {
        let geo = Geo::sandbox();
        assert_eq!(geo.ip_country("198.51.100.20").as_deref(), Some("DE"));
        assert_eq!(geo.ip_country("2001:db8:5::1").as_deref(), Some("NL"));
        assert_eq!(geo.ip_country("10.0.0.1"), None);
        assert_eq!(geo.card_country("4242424242").as_deref(), Some("US"));
        assert_eq!(geo.card_country("999999"), None);
        assert!(
            Geo::of(vec![("network".into(), "country".into()), ("1.2.3.0/24".into(), "XX1".into())], vec![]).is_err()
        );
    }
}
