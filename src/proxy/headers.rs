//! Header rules for forwarded requests and returned responses (RFC 9110 §7.6.1).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Drops hop-by-hop headers, including every header the `Connection` header names.
/// `Transfer-Encoding` goes too: hyper frames the outgoing message itself.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them. One pass over the names costs less than
    // ten hashed removals. A header named in `Connection` exists only alongside a
    // `Connection` header, which the pass finds.
    if headers.keys().any(is_hop_by_hop) {
        remove_hop_by_hop(headers);
    }
}

/// Rewrites a caller's request headers for Zoom: hop-by-hop and forwarding
/// headers gone (but those in `keep`), the real token in place of the caller's,
/// `Host` set to Zoom's. No `X-Forwarded-*` is added, so no internal address
/// leaves for Zoom.
pub fn prepare_request(
    headers: &mut HeaderMap,
    keep: &[HeaderName],
    host: &HeaderValue,
    bearer: Option<&HeaderValue>,
) {
    // One pass over the names for both rule sets: a request with neither (most
    // of them) costs that pass and no allocation.
    let (mut hop, mut fwd) = (false, false);
    for name in headers.keys() {
        hop |= is_hop_by_hop(name);
        fwd |= is_forwarding(name) && !keep.contains(name);
    }
    if hop {
        remove_hop_by_hop(headers);
    }
    if fwd {
        remove_forwarding(headers, keep);
    }
    if let Some(bearer) = bearer {
        headers.insert(header::AUTHORIZATION, bearer.clone());
    }
    headers.insert(header::HOST, host.clone());
}

/// Whether `name` is a forwarding header a caller (or an ingress in front of
/// grantmux) may have set: `X-Forwarded-*`, `Forwarded`, `X-Real-IP`, `Via`.
/// They carry internal addresses and hosts, which Zoom has no use for.
/// `HeaderName`s are lowercase, so plain comparisons suffice.
pub fn is_forwarding(name: &HeaderName) -> bool {
    name == header::FORWARDED
        || name == header::VIA
        || name.as_str() == "x-real-ip"
        || name.as_str().starts_with("x-forwarded-")
}

/// Headers that describe one connection, never the message: a proxy drops
/// them (with `Transfer-Encoding`, which hyper frames itself). Matched on the
/// lowercase name: one length switch and a compare, for every header of every
/// message, where a list of `HeaderName`s costs nine equalities.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "upgrade"
            | "transfer-encoding"
    )
}

/// The slow path of [`strip_hop_by_hop`], once the pass found one.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let doomed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .chain(headers.keys().filter(|name| is_hop_by_hop(name)).cloned())
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
}

/// The slow path of the forwarding rule, once the pass found a header to drop.
/// `X-Forwarded-*` is an open family, so the names are collected first
/// (`HeaderMap` has no `retain`).
fn remove_forwarding(headers: &mut HeaderMap, keep: &[HeaderName]) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_forwarding(name) && !keep.contains(name))
        .cloned()
        .collect();
    for name in &doomed {
        headers.remove(name);
    }
}

const BEARER: &str = "bearer ";

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    // The scheme and the space after it, by prefix: a search for the space
    // cost more than the rest of this function.
    let scheme = value.get(..BEARER.len())?;
    scheme
        .eq_ignore_ascii_case(BEARER)
        .then(|| value[BEARER.len()..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hop_by_hop_header_is_stripped_and_no_other() {
        let hop = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "upgrade",
            "transfer-encoding",
        ];
        for name in hop {
            let mut h = HeaderMap::new();
            h.insert(name, HeaderValue::from_static("x"));
            for kept in [header::ACCEPT, header::AUTHORIZATION, header::HOST] {
                h.insert(kept, HeaderValue::from_static("y"));
            }
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name} kept");
            assert_eq!(h.len(), 3, "{name}: {h:?}");
        }
    }

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
        prepare_request(&mut h, &[], &host, Some(&bearer));
        assert_eq!(h[header::AUTHORIZATION], "Bearer real");
        assert_eq!(h[header::HOST], "api.zoom.us");
    }

    const FORWARDING: [&str; 6] = [
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
        "via",
    ];

    fn with_forwarding() -> HeaderMap {
        let mut h = HeaderMap::new();
        for name in FORWARDING {
            h.insert(name, HeaderValue::from_static("10.0.0.7"));
        }
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.8"));
        h.insert("x-forwarded-port", HeaderValue::from_static("443"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.insert("x-forwarded", HeaderValue::from_static("not the family"));
        h
    }

    fn prepare(h: &mut HeaderMap, keep: &[HeaderName]) {
        let host = HeaderValue::from_static("api.zoom.us");
        prepare_request(h, keep, &host, None);
    }

    #[test]
    fn strips_every_forwarding_header_a_caller_sent() {
        let mut h = with_forwarding();
        prepare(&mut h, &[]);
        for name in FORWARDING.iter().chain(&["x-forwarded-port"]) {
            assert!(!h.contains_key(*name), "{name} kept");
        }
        // Only the `x-forwarded-` prefix is the family; other headers stay.
        assert_eq!(h["x-forwarded"], "not the family");
        assert_eq!(h[header::ACCEPT], "*/*");
        assert_eq!(h[header::HOST], "api.zoom.us");
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn keeps_the_forwarding_headers_named_in_keep() {
        let mut h = with_forwarding();
        let keep = [
            HeaderName::from_static("x-forwarded-proto"),
            HeaderName::from_static("x-forwarded-for"),
        ];
        prepare(&mut h, &keep);
        assert_eq!(h["x-forwarded-proto"], "10.0.0.7");
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(
            all,
            ["10.0.0.7", "10.0.0.8"],
            "every value of a kept header"
        );
        for name in ["x-forwarded-host", "x-forwarded-port", "forwarded", "via"] {
            assert!(!h.contains_key(name), "{name} kept");
        }
    }

    #[test]
    fn a_map_holding_only_kept_forwarding_headers_is_left_whole() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        prepare(&mut h, &[HeaderName::from_static("x-forwarded-proto")]);
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h.len(), 3, "accept, host and the kept header");
    }

    #[test]
    fn strips_hop_by_hop_and_forwarding_together() {
        let mut h = with_forwarding();
        h.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        prepare(&mut h, &[]);
        assert!(!h.contains_key("x-hop"));
        assert!(!h.contains_key(header::CONNECTION));
        assert!(!h.contains_key("via"));
    }

    #[test]
    fn responses_keep_their_forwarding_headers() {
        // The rule is for requests to Zoom; Zoom's answers come back untouched.
        let mut h = HeaderMap::new();
        h.insert(header::VIA, HeaderValue::from_static("1.1 zoom"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h[header::VIA], "1.1 zoom");
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
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  spaced "),
        );
        assert_eq!(bearer(&h), Some("spaced"));
        for short in ["Bearer", "Bearerabc", "Bear"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(short));
            assert_eq!(bearer(&h), None, "{short}");
        }
    }
}
