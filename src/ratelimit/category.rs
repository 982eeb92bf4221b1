//! Zoom's rate-limit categories, and which one each API route spends.
//!
//! Zoom labels every endpoint Light, Medium, Heavy or Resource-intensive (its
//! "Rate Limit Label", ZOOM.md §5). A route is its method plus its path with the
//! ids replaced ([`route_template`]). [`RouteBook`] starts from the labels Zoom
//! publishes for common endpoints ([`SEEDED`]) and learns the rest from the
//! `X-RateLimit-Category` of Zoom's answers: a route it has never seen is not
//! shaped until Zoom has named its category once.

use std::fmt;

use dashmap::DashMap;
use http::Method;

/// At most this many learned routes; past it, new ones are not remembered
/// (a client that puts random words in paths cannot grow the map).
const MAX_LEARNED_ROUTES: usize = 4096;

/// One of Zoom's four rate-limit labels.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Category {
    Light,
    Medium,
    Heavy,
    ResourceIntensive,
}

/// Zoom's labels for common endpoints, from its API reference. `{}` stands for
/// any id (a user id, `me`, an email, a meeting id or UUID).
const SEEDED: &[(&str, &str, Category)] = {
    use Category::*;
    &[
        ("GET", "/users", Medium),
        ("POST", "/users", Light),
        ("GET", "/users/{}", Light),
        ("PATCH", "/users/{}", Light),
        ("DELETE", "/users/{}", Light),
        ("GET", "/users/{}/settings", Medium),
        ("PATCH", "/users/{}/settings", Medium),
        ("GET", "/users/{}/meetings", Medium),
        ("POST", "/users/{}/meetings", Medium),
        ("GET", "/users/{}/webinars", Medium),
        ("POST", "/users/{}/webinars", Medium),
        ("GET", "/users/{}/recordings", Medium),
        ("GET", "/meetings/{}", Light),
        ("PATCH", "/meetings/{}", Light),
        ("DELETE", "/meetings/{}", Light),
        ("PUT", "/meetings/{}/status", Light),
        ("GET", "/meetings/{}/registrants", Medium),
        ("POST", "/meetings/{}/registrants", Light),
        ("GET", "/meetings/{}/recordings", Light),
        ("DELETE", "/meetings/{}/recordings", Light),
        ("GET", "/meetings/{}/invitation", Light),
        ("GET", "/past_meetings/{}", Light),
        ("GET", "/past_meetings/{}/participants", Medium),
        ("GET", "/past_meetings/{}/instances", Medium),
        ("GET", "/webinars/{}", Light),
        ("PATCH", "/webinars/{}", Light),
        ("DELETE", "/webinars/{}", Light),
        ("GET", "/webinars/{}/registrants", Medium),
        ("POST", "/webinars/{}/registrants", Light),
        ("GET", "/report/daily", Heavy),
        ("GET", "/report/users", Heavy),
        ("GET", "/report/users/{}/meetings", Heavy),
        ("GET", "/report/meetings/{}", Heavy),
        ("GET", "/report/meetings/{}/participants", Heavy),
        ("GET", "/report/webinars/{}/participants", Heavy),
        ("GET", "/metrics/meetings", ResourceIntensive),
        (
            "GET",
            "/metrics/meetings/{}/participants",
            ResourceIntensive,
        ),
        ("GET", "/metrics/webinars", ResourceIntensive),
        ("POST", "/im/chat/messages", Medium),
        ("GET", "/chat/users/{}/messages", Medium),
        ("POST", "/chat/users/{}/messages", Medium),
        ("GET", "/groups", Medium),
        ("GET", "/accounts/{}/settings", Medium),
    ]
};

/// Which category each route spends: seeded, then learned.
#[derive(Debug)]
pub struct RouteBook {
    learned: DashMap<String, Category>,
}

// === impl Category ===

impl Category {
    pub const ALL: [Category; 4] = [
        Self::Light,
        Self::Medium,
        Self::Heavy,
        Self::ResourceIntensive,
    ];

    /// Zoom's spelling, as in `X-RateLimit-Category`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Light => "Light",
            Self::Medium => "Medium",
            Self::Heavy => "Heavy",
            Self::ResourceIntensive => "Resource-intensive",
        }
    }

    /// A bounded metric label.
    pub fn label(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Medium => "medium",
            Self::Heavy => "heavy",
            Self::ResourceIntensive => "resource_intensive",
        }
    }

    /// Reads Zoom's header value; case, spaces and dashes do not matter.
    pub fn parse(value: &str) -> Option<Self> {
        let folded: String = value
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect();
        match folded.as_str() {
            "light" => Some(Self::Light),
            "medium" => Some(Self::Medium),
            "heavy" => Some(Self::Heavy),
            "resourceintensive" => Some(Self::ResourceIntensive),
            _ => None,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl RouteBook ===

impl Default for RouteBook {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteBook {
    pub fn new() -> Self {
        Self {
            learned: DashMap::new(),
        }
    }

    /// The category of `method path`, if seeded or learned.
    pub fn category(&self, method: &Method, path: &str) -> Option<Category> {
        let template = route_template(method, path);
        if let Some(c) = self.learned.get(&template) {
            return Some(*c);
        }
        seeded(&template)
    }

    /// Remembers what Zoom said a route spends. Zoom's word beats the seed.
    pub fn learn(&self, method: &Method, path: &str, category: Category) {
        let template = route_template(method, path);
        if let Some(mut known) = self.learned.get_mut(&template) {
            *known = category;
            return;
        }
        if seeded(&template) == Some(category) || self.learned.len() >= MAX_LEARNED_ROUTES {
            return;
        }
        self.learned.insert(template, category);
    }
}

fn seeded(template: &str) -> Option<Category> {
    let (method, path) = template.split_once(' ')?;
    SEEDED
        .iter()
        .find(|(m, p, _)| *m == method && *p == path)
        .map(|(_, _, c)| *c)
}

/// `GET /v2/users/KDcuGIm1QgePTO8WbOqwIQ/meetings?page_size=30` →
/// `GET /users/{}/meetings`: the `/v2` prefix and the query go, and every
/// segment that is not a plain lowercase word (Zoom's resource names are
/// `snake_case`) is an id. `me` is an id too: it names a user.
pub fn route_template(method: &Method, path: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.strip_prefix("/v2").unwrap_or(path);
    let mut out = String::with_capacity(method.as_str().len() + path.len() + 1);
    out.push_str(method.as_str());
    out.push(' ');
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        if is_word(segment) {
            out.push_str(segment);
        } else {
            out.push_str("{}");
        }
    }
    if out.ends_with(' ') {
        out.push('/');
    }
    out
}

fn is_word(segment: &str) -> bool {
    segment != "me"
        && segment.len() <= 40
        && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders() {
        let t = |m: Method, p: &str| route_template(&m, p);
        assert_eq!(
            t(Method::GET, "/v2/users/KDcuGIm1QgePTO8WbOqwIQ/meetings"),
            "GET /users/{}/meetings"
        );
        assert_eq!(t(Method::GET, "/v2/users/me"), "GET /users/{}");
        assert_eq!(
            t(Method::GET, "/v2/users/jane.doe@example.com"),
            "GET /users/{}"
        );
        assert_eq!(
            t(Method::PATCH, "/v2/meetings/85746065432"),
            "PATCH /meetings/{}"
        );
        assert_eq!(
            t(
                Method::GET,
                "/v2/past_meetings/aDYlohsHRtCd4ii1uC2+hA==/participants"
            ),
            "GET /past_meetings/{}/participants"
        );
        assert_eq!(
            t(Method::GET, "/v2/report/daily?year=2026"),
            "GET /report/daily"
        );
        assert_eq!(t(Method::GET, "/v2/"), "GET /");
    }

    #[test]
    fn seeded_then_learned() {
        let book = RouteBook::new();
        assert_eq!(
            book.category(&Method::GET, "/v2/users/abc-1/meetings"),
            Some(Category::Medium)
        );
        assert_eq!(book.category(&Method::GET, "/v2/rooms"), None);
        book.learn(&Method::GET, "/v2/rooms", Category::Heavy);
        assert_eq!(
            book.category(&Method::GET, "/v2/rooms"),
            Some(Category::Heavy)
        );
        // Zoom's answer overrides a seed.
        book.learn(&Method::GET, "/v2/meetings/1", Category::Medium);
        assert_eq!(
            book.category(&Method::GET, "/v2/meetings/2"),
            Some(Category::Medium)
        );
    }

    #[test]
    fn header_values() {
        assert_eq!(Category::parse("Light"), Some(Category::Light));
        assert_eq!(
            Category::parse("Resource-intensive"),
            Some(Category::ResourceIntensive)
        );
        assert_eq!(
            Category::parse("RESOURCE INTENSIVE"),
            Some(Category::ResourceIntensive)
        );
        assert_eq!(Category::parse("Extreme"), None);
    }
}
