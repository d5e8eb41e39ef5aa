//! Which addresses a webhook may be delivered to: public unicast only. Checked on the address
//! a delivery actually connects to (after resolving the host, every time), so a name that
//! resolves to an internal address later, or a numeric form of one, is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is a public unicast address a delivery may connect to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// IPv4 ranges that are not the public internet (RFC 6890 and its successors).
const NOT_PUBLIC_V4: [([u8; 4], u32); 16] = [
    ([0, 0, 0, 0], 8),       // "this network"
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // carrier-grade NAT
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, cloud metadata (169.254.169.254)
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation
    ([203, 0, 113, 0], 24),  // documentation
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the broadcast address
    ([255, 255, 255, 255], 32),
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    !NOT_PUBLIC_V4
        .iter()
        .any(|&(net, prefix)| in_v4(ip, net, prefix))
}

fn in_v6(ip: Ipv6Addr, net: [u16; 8], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(Ipv6Addr::from(net)) & mask
}

/// The IPv4 address an IPv6 form carries (mapped, translated, compatible, NAT64, 6to4), if it
/// is one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    if in_v6(ip, [0, 0, 0, 0, 0, 0xffff, 0, 0], 96)
        || in_v6(ip, [0, 0, 0, 0, 0xffff, 0, 0, 0], 96) // IPv4-translated (RFC 2765)
        || in_v6(ip, [0; 8], 96)
        || in_v6(ip, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96)
        || in_v6(ip, [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48)
    {
        return Some(low);
    }
    if in_v6(ip, [0x2002, 0, 0, 0, 0, 0, 0, 0], 16) {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

/// IPv6 ranges that are not the public internet.
const NOT_PUBLIC_V6: [([u16; 8], u32); 13] = [
    ([0, 0, 0, 0, 0, 0, 0, 0], 128),         // unspecified
    ([0, 0, 0, 0, 0, 0, 0, 1], 128),         // loopback
    ([0x100, 0, 0, 0, 0, 0, 0, 0], 64),      // discard
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 32),     // Teredo (carries any IPv4 address)
    ([0x2001, 2, 0, 0, 0, 0, 0, 0], 48),     // benchmarking
    ([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28),  // ORCHID
    ([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28),  // ORCHIDv2
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),     // documentation (RFC 9637)
    ([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), // documentation
    ([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),      // unique local (AWS's metadata fd00:ec2::254 too)
    ([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),     // link-local
    ([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),     // site-local (deprecated)
    ([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),      // multicast
];

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4) && !ip.is_unspecified() && !ip.is_loopback();
    }
    !NOT_PUBLIC_V6
        .iter()
        .any(|&(net, prefix)| in_v6(ip, net, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn internal_addresses_in_every_form_are_refused() {
        for text in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.0.1",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "2001:2::1",
            "2001:10::1",
            "2001:20::1",
            "3fff::1",
        ] {
            assert!(!is_public(parse(text)), "{text} must be refused");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "169.253.255.255",
            "::ffff:8.8.8.8",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2002:808:808::1",
        ] {
            assert!(is_public(parse(text)), "{text} is public");
        }
    }

    /// Every way IPv6 carries an IPv4 address a translator may reach: an internal IPv4 address
    /// stays internal in each.
    fn embeddings(v4: Ipv4Addr) -> Vec<Ipv6Addr> {
        let low = u128::from(u32::from(v4));
        let with = |prefix: [u16; 8]| Ipv6Addr::from(u128::from(Ipv6Addr::from(prefix)) | low);
        vec![
            v4.to_ipv6_mapped(),
            v4.to_ipv6_compatible(),
            with([0, 0, 0, 0, 0xffff, 0, 0, 0]),
            with([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]),
            with([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]),
            Ipv6Addr::from(u128::from(Ipv6Addr::from([0x2002, 0, 0, 0, 0, 0, 0, 0])) | (low << 80)),
        ]
    }

    proptest::proptest! {
        #[test]
        fn no_ipv6_form_makes_an_internal_ipv4_address_public(bits: u32, range in 0..NOT_PUBLIC_V4.len()) {
            // An address inside one of the internal ranges, the rest of its bits random.
            let (net, prefix) = NOT_PUBLIC_V4[range];
            let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
            let v4 = Ipv4Addr::from((u32::from(Ipv4Addr::from(net)) & mask) | (bits & !mask));
            proptest::prop_assert!(!is_public(IpAddr::V4(v4)));
            for v6 in embeddings(v4) {
                proptest::prop_assert!(!is_public(IpAddr::V6(v6)), "{v6} carries {v4}");
            }
        }
    }
}
