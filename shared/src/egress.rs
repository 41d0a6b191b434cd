//! Where the service may send requests of its own (webhook deliveries): the URL rule
//! and the one address guard every outbound connection passes, literal or resolved.
//!
//! URLs are parsed by the WHATWG URL rules (the `url` crate), the rules browsers and
//! the HTTP client's own parser agree on, and stored in that parsed form, so the
//! address checked is the address connected to: `https://2130706433/`,
//! `https://0x7f000001/`, `https://0177.0.0.1/`, `https://127.1/` and full-width
//! digits are all 127.0.0.1 to it. Every range of the IANA IPv4 and IPv6
//! special-purpose address registries counts as not public.

use crate::error::ApiError;
use std::net::{IpAddr, Ipv4Addr};

pub const MAX_URL_CHARS: usize = 2048;

/// IANA IPv4 Special-Purpose Address Registry (and multicast, reserved, broadcast):
/// (network, prefix length).
const SPECIAL_V4: [([u8; 4], u8); 23] = [
    ([0, 0, 0, 0], 8),          // "this network"
    ([10, 0, 0, 0], 8),         // private
    ([100, 64, 0, 0], 10),      // shared address space (CGNAT)
    ([127, 0, 0, 0], 8),        // loopback
    ([169, 254, 0, 0], 16),     // link-local (cloud metadata)
    ([172, 16, 0, 0], 12),      // private
    ([192, 0, 0, 0], 24),       // IETF protocol assignments
    ([192, 0, 2, 0], 24),       // documentation (TEST-NET-1)
    ([192, 31, 196, 0], 24),    // AS112-v4
    ([192, 52, 193, 0], 24),    // AMT
    ([192, 88, 99, 0], 24),     // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),     // private
    ([192, 175, 48, 0], 24),    // direct delegation AS112
    ([198, 18, 0, 0], 15),      // benchmarking
    ([198, 51, 100, 0], 24),    // documentation (TEST-NET-2)
    ([203, 0, 113, 0], 24),     // documentation (TEST-NET-3)
    ([224, 0, 0, 0], 4),        // multicast
    ([240, 0, 0, 0], 4),        // reserved
    ([255, 255, 255, 255], 32), // limited broadcast
    ([192, 0, 0, 170], 31),     // NAT64/DNS64 discovery
    ([192, 0, 0, 8], 32),       // IPv4 dummy address
    ([192, 0, 0, 9], 32),       // PCP anycast
    ([192, 0, 0, 10], 32),      // TURN anycast
];

/// IANA IPv6 Special-Purpose Address Registry (and multicast, deprecated site-local).
/// IPv4-mapped addresses are judged by the IPv4 address they carry; every other
/// range here, including those that embed an IPv4 address (`::/96`, NAT64, 6to4), is
/// refused whole.
const SPECIAL_V6: [(u128, u8); 17] = [
    (0, 96),                                         // ::/96 IPv4-compatible, ::, ::1
    (0x0000_0000_0000_0000_0000_ffff_0000_0000, 96), // ::ffff:0:0/96 mapped (checked by IPv4)
    (0x0000_0000_0000_0000_ffff_0000_0000_0000, 96), // ::ffff:0:0:0/96 IPv4-translated
    (0x0064_ff9b_0000_0000_0000_0000_0000_0000, 96), // NAT64 well-known prefix
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // local-use NAT64
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // discard-only
    (0x0100_0000_0000_0001_0000_0000_0000_0000, 64), // dummy prefix
    (0x2001_0000_0000_0000_0000_0000_0000_0000, 23), // IETF protocol assignments (Teredo, ORCHID, …)
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // documentation
    (0x2002_0000_0000_0000_0000_0000_0000_0000, 16), // 6to4
    (0x2620_004f_8000_0000_0000_0000_0000_0000, 48), // direct delegation AS112
    (0x3fff_0000_0000_0000_0000_0000_0000_0000, 20), // documentation
    (0x5f00_0000_0000_0000_0000_0000_0000_0000, 16), // segment routing SIDs
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // unique local
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // link-local
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // site-local (deprecated)
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // multicast
];

const MAPPED_V4: (u128, u8) = (0x0000_0000_0000_0000_0000_ffff_0000_0000, 96);

fn within(address: u128, (network, length): (u128, u8), bits: u32) -> bool {
    let shift = bits - u32::from(length);
    let mask = if shift >= 128 { 0 } else { u128::MAX << shift };
    (address & mask) == (network & mask)
}

/// Whether an address may be connected to: in no special-purpose range.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let address = u128::from(u32::from(v4));
            !SPECIAL_V4.iter().any(|&(network, length)| {
                within(
                    address,
                    (u128::from(u32::from(Ipv4Addr::from(network))), length),
                    32,
                )
            })
        }
        IpAddr::V6(v6) => {
            let address = u128::from(v6);
            if within(address, MAPPED_V4, 128) {
                return is_public(IpAddr::V4(Ipv4Addr::from(address as u32)));
            }
            !SPECIAL_V6.iter().any(|&range| within(address, range, 128))
        }
    }
}

/// The one address guard: a connection goes to `ip` only if it is public, or it is
/// 127.0.0.1 and the local stack's own tests allow loopback.
pub fn may_connect(ip: IpAddr, allow_loopback: bool) -> bool {
    is_public(ip) || (allow_loopback && ip == IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A checked outbound URL: `https://` to a public host, in its WHATWG-parsed form
/// (the form stored and connected to); with `allow_loopback` (the local stack's own
/// tests only, by configuration) also `http://127.0.0.1:<port>`. Credentials are
/// refused before any allowance. Host names are checked again after resolution, at
/// connection time.
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<String, ApiError> {
    let bad = |why: &str| ApiError::invalid("url", why.to_owned());
    if raw.chars().count() > MAX_URL_CHARS
        || raw.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad("an https URL of at most 2048 characters"));
    }
    let url = url::Url::parse(raw).map_err(|_| bad("not a valid URL"))?;
    // `https://@host` has an empty user name but still an '@' in its authority.
    if !url.username().is_empty() || url.password().is_some() || authority_has_at(raw) {
        return Err(bad("no credentials in the URL"));
    }
    let host = url.host().ok_or_else(|| bad("must name a public host"))?;
    let local = allow_loopback
        && url.scheme() == "http"
        && host == url::Host::<&str>::Ipv4(Ipv4Addr::LOCALHOST)
        && url.port().is_some();
    if local {
        return Ok(url.into());
    }
    if url.scheme() != "https" {
        return Err(bad("must start with https://"));
    }
    let refused = || {
        bad(
            "loopback, private, link-local, metadata and other special-purpose addresses are refused",
        )
    };
    match host {
        url::Host::Ipv4(v4) if !is_public(v4.into()) => return Err(refused()),
        url::Host::Ipv6(v6) if !is_public(v6.into()) => return Err(refused()),
        url::Host::Domain(name) if !is_public_name(name) => {
            return Err(bad("must name a public host"));
        }
        _ => {}
    }
    Ok(url.into())
}

/// A host name that can only mean this machine or its network is refused by name;
/// every other name is judged by the addresses it resolves to, when connecting.
fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let local = name.is_empty()
        || name == "localhost"
        || name.ends_with(".localhost")
        || name == "localhost.localdomain"
        || name.ends_with(".local")
        || name.ends_with(".internal")
        || name.ends_with(".home.arpa")
        // A bare label has no public meaning (search domains would complete it).
        || !name.contains('.');
    // The last label of a WHATWG host that looks numeric was parsed as IPv4 already.
    !local
}

/// Whether the raw authority (between `//` and the path) holds an '@', the way the
/// WHATWG parser finds it (a backslash ends the authority of http(s) URLs).
fn authority_has_at(raw: &str) -> bool {
    raw.split_once("//")
        .map(|(_, rest)| rest.split(['/', '\\', '?', '#']).next().unwrap_or_default())
        .is_some_and(|authority| authority.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    /// Every spelling the WHATWG host parser (and the resolver) reads as `ip`: dotted,
    /// one 32-bit number in decimal, hex and octal, shortened forms, per-part hex and
    /// octal, a trailing dot, full-width digits, percent-encoding, and IPv6 forms that
    /// carry it (mapped, compatible, NAT64, 6to4, translated).
    fn spellings_of(ip: Ipv4Addr) -> Vec<String> {
        let [a, b, c, d] = ip.octets();
        let n = u32::from(ip);
        let dotted = format!("{a}.{b}.{c}.{d}");
        let mut hosts = vec![
            dotted.clone(),
            format!("{n}"),
            format!("0x{n:x}"),
            format!("0X{n:X}"),
            format!("0{n:o}"),
            format!("{a}.{}", n & 0xff_ffff),
            format!("{a}.{b}.{}", n & 0xffff),
            format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
            format!("{dotted}."),
            dotted
                .chars()
                .map(|ch| match ch {
                    '0'..='9' => char::from_u32(0xff10 + (ch as u32 - '0' as u32)).unwrap(),
                    '.' => '\u{ff0e}',
                    other => other,
                })
                .collect(),
            dotted.bytes().map(|byte| format!("%{byte:02x}")).collect(),
        ];
        let (hi, lo) = (n >> 16, n & 0xffff);
        for v6 in [
            format!("::ffff:{dotted}"),
            format!("::ffff:{hi:x}:{lo:x}"),
            format!("::{dotted}"),
            format!("::{hi:x}:{lo:x}"),
            format!("64:ff9b::{dotted}"),
            format!("2002:{hi:x}:{lo:x}::"),
            format!("::ffff:0:{dotted}"),
            format!("0:0:0:0:0:ffff:{dotted}"),
        ] {
            hosts.push(format!("[{v6}]"));
            hosts.push(format!("[{}]", v6.to_uppercase()));
        }
        hosts
    }

    /// One address of each IPv4 special-purpose range: its first and its last.
    fn special_v4_samples() -> Vec<Ipv4Addr> {
        SPECIAL_V4
            .iter()
            .flat_map(|&(network, length)| {
                let first = u32::from(Ipv4Addr::from(network));
                let last = first | (u32::MAX.checked_shr(u32::from(length)).unwrap_or(0));
                [Ipv4Addr::from(first), Ipv4Addr::from(last)]
            })
            .collect()
    }

    #[test]
    fn every_spelling_of_every_special_ipv4_address_is_refused() {
        let mut checked = 0;
        for ip in special_v4_samples() {
            for host in spellings_of(ip) {
                for url in [format!("https://{host}/x"), format!("https://{host}:8443/")] {
                    assert!(check_url(&url, false).is_err(), "{url} ({ip})");
                    assert!(check_url(&url, true).is_err(), "{url} ({ip}), local");
                    checked += 1;
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }

    #[test]
    fn every_special_ipv6_range_is_refused_at_both_ends() {
        for &(network, length) in &SPECIAL_V6 {
            let last = network | u128::MAX.checked_shr(u32::from(length)).unwrap_or(0);
            for address in [network, last, network | 1] {
                let v6 = Ipv6Addr::from(address);
                if within(address, MAPPED_V4, 128) && is_public(v6.into()) {
                    continue; // a mapped public IPv4 address is that address
                }
                assert!(!is_public(v6.into()), "{v6}");
                let url = format!("https://[{v6}]/");
                assert!(check_url(&url, false).is_err(), "{url}");
            }
        }
    }

    #[test]
    fn public_addresses_next_to_special_ranges_are_accepted() {
        for ok in [
            "https://crm.example.com/hooks",
            "https://93.184.216.34:8443/x",
            "https://198.20.0.1/",  // just past 198.18/15
            "https://100.128.0.1/", // just past 100.64/10
            "https://[2606:4700::1111]/",
            "https://[::ffff:93.184.216.34]/",
            "https://EXAMPLE.com./x",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        // A backslash ends the authority (WHATWG): the host is example.com, and the
        // stored form says so to every later reader.
        assert_eq!(
            check_url("https://example.com\\@127.0.0.1/", false).unwrap(),
            "https://example.com/@127.0.0.1/"
        );
        // Stored in parsed form: what is checked is what is connected to.
        assert_eq!(
            check_url("https://EXAMPLE.com:443/a/../b", false).unwrap(),
            "https://example.com/b"
        );
    }

    #[test]
    fn local_names_credentials_and_other_schemes_are_refused() {
        for host in [
            "localhost",
            "LOCALHOST",
            "localhost.",
            "LocalHost..",
            "api.localhost",
            "a.localhost.",
            "printer.local",
            "metadata.google.internal",
            "intranet",
            "ｌｏｃａｌｈｏｓｔ",
            "0",
        ] {
            let url = format!("https://{host}/x");
            assert!(check_url(&url, false).is_err(), "{url}");
        }
        for bad in [
            "http://crm.example.com/hooks",
            "https://user:pw@example.com/x",
            "https://user@example.com/x",
            "https://@example.com/x",
            "https://:@example.com/x",
            "https://exa mple.com",
            "https://example.com/\n",
            "ftp://example.com",
            "//example.com",
            "https://",
            "https://[::1",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_local_allowance_is_exactly_http_127_0_0_1_with_a_port() {
        assert!(check_url("http://127.0.0.1:9999/hook", false).is_err());
        assert!(check_url("http://127.0.0.1:9999/hook", true).is_ok());
        for bad in [
            "http://127.0.0.1:1@127.0.0.2:18081/x",
            "http://u@127.0.0.1:9999/x",
            "http://127.0.0.2:9999/x",
            "http://2130706434:9999/x",
            "http://[::1]:9999/x",
            "http://127.0.0.1/x",
            "http://localhost:9999/x",
            "http://10.0.0.1:9999/x",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        assert!(may_connect(IpAddr::V4(Ipv4Addr::LOCALHOST), true));
        assert!(!may_connect(IpAddr::V4(Ipv4Addr::LOCALHOST), false));
        assert!(!may_connect("127.0.0.2".parse().unwrap(), true));
        assert!(!may_connect("::1".parse().unwrap(), true));
    }
}
