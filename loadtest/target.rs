//! Where the SSE connections go: an `http://` URL split into the address
//! to connect to, the `host` header and the request path, resolved once
//! at startup.

use std::net::{SocketAddr, ToSocketAddrs as _};

use anyhow::Context as _;

/// `http://host:port/path?query`, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `host` header value (`host:port` as written).
    pub authority: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

/// Splits an `http://` URL into authority, host, port and path (no DNS).
pub fn split_url(url: &str) -> Result<(String, String, u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("url '{url}': only http:// is supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(format!("url '{url}': no host"));
    }
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("url '{url}': unclosed ["))?;
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err(format!("url '{url}': junk after ]")),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .map_err(|_| format!("url '{url}': bad port '{p}'"))?,
        None => 80,
    };
    Ok((
        authority.to_string(),
        host.to_string(),
        port,
        path.to_string(),
    ))
}

impl Target {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let (authority, host, port, path) = split_url(url).map_err(anyhow::Error::msg)?;
        let addr = (host.as_str(), port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        Ok(Self {
            addr,
            authority,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        let ok = |a: &str, h: &str, p: u16, path: &str| {
            Ok((a.to_string(), h.to_string(), p, path.to_string()))
        };
        let cases = [
            (
                "http://127.0.0.1:8080/items",
                ok("127.0.0.1:8080", "127.0.0.1", 8080, "/items"),
            ),
            (
                "http://example.com",
                ok("example.com", "example.com", 80, "/"),
            ),
            (
                "http://h:1/a/b?lastEventId=x",
                ok("h:1", "h", 1, "/a/b?lastEventId=x"),
            ),
            ("http://[::1]:9000/s", ok("[::1]:9000", "::1", 9000, "/s")),
            ("http://[::1]/s", ok("[::1]", "::1", 80, "/s")),
        ];
        for (url, want) in cases {
            assert_eq!(split_url(url), want, "{url}");
        }
        for bad in ["https://h/", "http:///x", "http://h:port/", "http://[::1/"] {
            assert!(split_url(bad).is_err(), "{bad}");
        }
    }
}
