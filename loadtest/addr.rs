//! Source addresses for outgoing connections. One source address gives at
//! most ~28k concurrent connections to one server address and port (the
//! default ephemeral port range, 32768–60999), so large runs bind each socket
//! to the next address of a list such as `127.0.0.2-127.0.0.254` (every
//! 127/8 address is local on Linux). The list notation is comma-separated
//! items, each a single IP address or an inclusive IPv4 range `A-B`.

use std::net::{IpAddr, Ipv4Addr};

/// Refuse ranges larger than this: even a /16 of sources allows ~1.8 billion
/// connections, so a bigger range is a typo, and it would be materialised
/// as a list.
pub const MAX_ADDRESSES: usize = 1 << 16;

/// Parses `127.0.0.2-127.0.0.254,10.0.0.1,::1` into the address list, in
/// order (duplicates kept: they only change the round-robin weights).
pub fn parse_address_list(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim) {
        if item.is_empty() {
            return Err(format!("bad address list '{text}': empty item"));
        }
        if let Some((a, b)) = item.split_once('-') {
            let parse = |s: &str| {
                s.trim()
                    .parse::<Ipv4Addr>()
                    .map_err(|e| format!("bad address list '{text}': '{}': {e}", s.trim()))
            };
            let (a, b) = (u32::from(parse(a)?), u32::from(parse(b)?));
            if a > b {
                return Err(format!(
                    "bad address list '{text}': range '{item}' is reversed"
                ));
            }
            let count = (b - a) as usize + 1;
            if out.len() + count > MAX_ADDRESSES {
                return Err(format!(
                    "bad address list '{text}': more than {MAX_ADDRESSES} addresses"
                ));
            }
            out.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
        } else {
            let ip = item
                .parse::<IpAddr>()
                .map_err(|e| format!("bad address list '{text}': '{item}': {e}"))?;
            if out.len() == MAX_ADDRESSES {
                return Err(format!(
                    "bad address list '{text}': more than {MAX_ADDRESSES} addresses"
                ));
            }
            out.push(ip);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn parses_lists() {
        let cases: &[(&str, Vec<IpAddr>)] = &[
            ("127.0.0.2", vec![v4(127, 0, 0, 2)]),
            (
                "127.0.0.2-127.0.0.4",
                vec![v4(127, 0, 0, 2), v4(127, 0, 0, 3), v4(127, 0, 0, 4)],
            ),
            (
                " 10.0.0.255 - 10.0.1.0 , ::1",
                vec![v4(10, 0, 0, 255), v4(10, 0, 1, 0), "::1".parse().unwrap()],
            ),
            ("127.0.0.5-127.0.0.5", vec![v4(127, 0, 0, 5)]),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address_list(text).as_ref(), Ok(want), "{text}");
        }
        assert_eq!(
            parse_address_list("127.0.0.2-127.0.0.254").unwrap().len(),
            253
        );
    }

    #[test]
    fn refuses_bad_lists() {
        for text in [
            "",
            "127.0.0.1,",
            "127.0.0.9-127.0.0.1",
            "127.0.0.1-::1",
            "localhost",
            "10.0.0.0-10.255.255.255",
            "127.0.0.300",
        ] {
            assert!(parse_address_list(text).is_err(), "{text}");
        }
    }
}
