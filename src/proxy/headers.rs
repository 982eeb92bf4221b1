//! Header rules for forwarded requests and returned responses (RFC 9110 §7.6.1).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message: a proxy drops them.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
];

/// Drops hop-by-hop headers, including every header the `Connection` header names.
/// `Transfer-Encoding` goes too: hyper frames the outgoing message itself.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them. One pass over the names costs less than
    // ten hashed removals. A header named in `Connection` exists only alongside a
    // `Connection` header, which the pass finds.
    let any = headers
        .keys()
        .any(|name| name == header::TRANSFER_ENCODING || HOP_BY_HOP.contains(name));
    if !any {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Rewrites a caller's request headers for Zoom: hop-by-hop gone, the real
/// token in place of the caller's, `Host` set to Zoom's. No `X-Forwarded-*` is
/// added, so no internal address leaves for Zoom.
pub fn prepare_request(headers: &mut HeaderMap, host: &HeaderValue, bearer: Option<&HeaderValue>) {
    strip_hop_by_hop(headers);
    if let Some(bearer) = bearer {
        headers.insert(header::AUTHORIZATION, bearer.clone());
    }
    headers.insert(header::HOST, host.clone());
}

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_listed_and_standard_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["x-keep"], "yes");
    }

    #[test]
    fn strips_a_lone_hop_by_hop_header_and_keeps_clean_maps_whole() {
        for name in [header::TRANSFER_ENCODING, header::TE, header::UPGRADE] {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
            h.insert(name.clone(), HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(&name), "{name} kept");
            assert_eq!(h.len(), 1);
        }
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn replaces_authorization_and_host() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer caller"),
        );
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let host = HeaderValue::from_static("api.zoom.us");
        let bearer = HeaderValue::from_static("Bearer real");
        prepare_request(&mut h, &host, Some(&bearer));
        assert_eq!(h[header::AUTHORIZATION], "Bearer real");
        assert_eq!(h[header::HOST], "api.zoom.us");
    }

    #[test]
    fn parses_bearer() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
