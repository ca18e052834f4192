//! HTTP requests made on a user's (or an API client's) behalf. Redirects are followed here,
//! not by the HTTP client, so that a URL on a public host cannot send hearth to a loopback,
//! private or link-local address; and every failure names the upstream by host and path only
//! (no credentials, no query string), with one message for "no connection", so that a pull
//! does not tell a closed port from a filtered one.

use crate::{StoreError, UpstreamFailure};
use std::io::Read;
use std::net::{IpAddr, ToSocketAddrs};
use std::time::Duration;
use ureq::http::Response;
use ureq::Body;

/// Redirects followed per request, as browsers and ureq do by default.
const MAX_REDIRECTS: usize = 10;

pub(crate) struct Http {
    agent: ureq::Agent,
    /// Treat every starting URL as public, even one on 127.0.0.1: what the tests need to see
    /// a refused redirect without a public server.
    #[cfg(test)]
    distrust_all: bool,
}

#[derive(Clone, Copy)]
enum Method {
    Get,
    Head,
}

impl Http {
    pub fn new() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("hearth/", env!("CARGO_PKG_VERSION")))
            .build();
        Self {
            agent: config.into(),
            #[cfg(test)]
            distrust_all: false,
        }
    }

    /// `GET url` with `headers` (sent again on each redirect), after any redirects; the
    /// response of whatever status, for the caller to judge with [`check_status`].
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>, StoreError> {
        self.send(Method::Get, url, headers)
    }

    /// A small document (a manifest, a listing), whole.
    pub fn get_bytes(&self, url: &str, accept: &str) -> Result<Vec<u8>, StoreError> {
        let mut response = self.get(url, &[("Accept", accept)])?;
        check_status(url, response.status().as_u16())?;
        let mut bytes = Vec::new();
        response
            .body_mut()
            .as_reader()
            .take(16 << 20)
            .read_to_end(&mut bytes)
            .map_err(|_| upstream(url, UpstreamFailure::BrokeOff))?;
        Ok(bytes)
    }

    /// The size a `HEAD` request reports (after redirects); `None` when the server does not say.
    pub fn content_length(&self, url: &str) -> Result<Option<u64>, StoreError> {
        let response = self.send(Method::Head, url, &[])?;
        check_status(url, response.status().as_u16())?;
        Ok(content_length(&response))
    }

    fn send(&self, method: Method, url: &str, headers: &[(&str, &str)]) -> Result<Response<Body>, StoreError> {
        let trusted = host_of(url).is_some_and(|host| resolves_to_private(&host));
        #[cfg(test)]
        let trusted = trusted && !self.distrust_all;
        let mut current = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = match method {
                Method::Get => self.agent.get(&current),
                Method::Head => self.agent.head(&current),
            };
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.call().map_err(|e| match e {
                ureq::Error::BadUri(_) => StoreError::Source(format!("{} is not a valid URL", redact(&current))),
                _ => upstream(&current, UpstreamFailure::Unreachable),
            })?;
            if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
                return Ok(response);
            }
            let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let next = join(&current, location).ok_or_else(|| {
                upstream(&current, UpstreamFailure::Invalid("a redirect without a usable Location".into()))
            })?;
            let next_host = host_of(&next).unwrap_or_default();
            if !trusted && resolves_to_private(&next_host) {
                return Err(upstream(&current, UpstreamFailure::RedirectRefused { to: next_host }));
            }
            current = next;
        }
        Err(upstream(url, UpstreamFailure::TooManyRedirects))
    }
}

/// Turns a status that is not a success into the upstream's failure.
pub(crate) fn check_status(url: &str, status: u16) -> Result<(), StoreError> {
    match status {
        200..=299 => Ok(()),
        _ => Err(upstream(url, UpstreamFailure::Status(status))),
    }
}

pub(crate) fn content_length(response: &Response<Body>) -> Option<u64> {
    response.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// The failure `failure` of the upstream at `url`.
pub(crate) fn upstream(url: &str, failure: UpstreamFailure) -> StoreError {
    StoreError::Upstream { host: host_of(url).unwrap_or_default(), url: redact(url), failure }
}

/// `url` as it may be shown: no user name or password, no query string or fragment.
pub(crate) fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let authority = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{authority}{path}")
        }
        None => url.to_string(),
    }
}

/// The host (with its port, if the URL has one) of an http(s) URL, without credentials.
pub(crate) fn host_of(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Where a redirect from `base` to `location` leads: an absolute URL, one relative to the
/// scheme, to the host, or to the directory of `base`. `None` for anything but http(s).
fn join(base: &str, location: &str) -> Option<String> {
    let location = location.trim();
    let (scheme, rest) = base.split_once("://")?;
    let joined = if location.contains("://") {
        location.to_string()
    } else if let Some(relative) = location.strip_prefix("//") {
        format!("{scheme}://{relative}")
    } else {
        let authority = rest.split(['/', '?', '#']).next()?;
        if location.starts_with('/') {
            format!("{scheme}://{authority}{location}")
        } else {
            let path = rest.split(['?', '#']).next()?;
            let dir = path.rfind('/').map_or(authority, |i| &path[..i]);
            format!("{scheme}://{dir}/{location}")
        }
    };
    let lower = joined.to_ascii_lowercase();
    (!location.is_empty() && (lower.starts_with("http://") || lower.starts_with("https://"))).then_some(joined)
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is, or resolves to, a loopback, private,
/// link-local or unspecified address. A name that does not resolve is not private (the
/// request to it cannot connect anyway).
fn resolves_to_private(host: &str) -> bool {
    let bare = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h),
    };
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return is_private(ip);
    }
    if bare.eq_ignore_ascii_case("localhost") || bare.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    (bare, 0).to_socket_addrs().is_ok_and(|mut addrs| addrs.any(|a| is_private(a.ip())))
}

/// 127/8, 10/8, 172.16/12, 192.168/16, 169.254/16, 0/8, ::1, ::, fc00::/7, fe80::/10, and
/// IPv4 addresses of those kinds written as IPv6 (`::ffff:127.0.0.1`).
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || a == 0 || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback() || v6.is_unspecified() || (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognised() {
        for private in
            ["127.0.0.1", "127.8.9.1", "10.1.2.3", "172.16.0.1", "172.31.255.1", "192.168.1.1", "169.254.169.254"]
                .iter()
                .chain(&[
                    "0.0.0.0",
                    "::1",
                    "::",
                    "fc00::1",
                    "fd12::1",
                    "fe80::1",
                    "::ffff:127.0.0.1",
                    "::ffff:10.0.0.1",
                ])
        {
            assert!(is_private(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "172.32.0.1", "192.169.0.1", "2001:4860::8888", "::ffff:8.8.8.8"] {
            assert!(!is_private(public.parse().unwrap()), "{public}");
        }
        for host in ["127.0.0.1:8080", "[::1]:11434", "localhost", "LOCALHOST:9", "10.0.0.1"] {
            assert!(resolves_to_private(host), "{host}");
        }
        assert!(!resolves_to_private("8.8.8.8:443"));
    }

    #[test]
    fn a_public_url_may_not_redirect_to_a_private_address() {
        use crate::test_registry::{Registry, Route};
        let registry = Registry::start(
            [
                ("/blob".to_string(), Route::Redirect("/cdn/blob".into())),
                ("/cdn/blob".to_string(), Route::Body(b"bytes".to_vec())),
                ("/elsewhere".to_string(), Route::Redirect("http://localhost:9/x".into())),
            ]
            .into(),
        );
        let url = format!("http://{}/blob", registry.host);
        // From 127.0.0.1 itself, a redirect to 127.0.0.1 is followed.
        assert_eq!(Http::new().get_bytes(&url, "*/*").unwrap(), b"bytes");
        assert_eq!(registry.ranges_asked_for("/cdn/blob").len(), 1);
        // From a public address, it is refused before any request is made to it.
        let distrusting = Http { distrust_all: true, ..Http::new() };
        let err = distrusting.get_bytes(&url, "*/*").unwrap_err();
        match &err {
            StoreError::Upstream { host, failure: UpstreamFailure::RedirectRefused { to }, .. } => {
                assert_eq!((host, to), (&registry.host, &registry.host));
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("loopback, private or link-local"), "{err}");
        assert_eq!(registry.ranges_asked_for("/cdn/blob").len(), 1, "the redirect was not followed");
        // A private origin may be sent to another private address (here one where nothing listens).
        let err = Http::new().get_bytes(&format!("http://{}/elsewhere", registry.host), "*/*").unwrap_err();
        assert!(matches!(err, StoreError::Upstream { failure: UpstreamFailure::Unreachable, .. }), "{err}");
    }

    #[test]
    fn an_unreachable_upstream_is_named_by_host_without_credentials() {
        let err = Http::new().get_bytes("http://user:secret@127.0.0.1:9/v2/x?token=abc", "*/*").unwrap_err();
        match &err {
            StoreError::Upstream { host, url, failure: UpstreamFailure::Unreachable } => {
                assert_eq!((host.as_str(), url.as_str()), ("127.0.0.1:9", "http://127.0.0.1:9/v2/x"));
            }
            other => panic!("{other}"),
        }
        let message = err.to_string();
        assert_eq!(message, "could not reach http://127.0.0.1:9/v2/x");
        assert!(!message.contains("secret") && !message.contains("token") && !message.contains("refused"));
    }

    #[test]
    fn redirects_resolve_like_a_browser() {
        let base = "https://reg.example/v2/lib/m/blobs/sha256-1?x=1";
        assert_eq!(join(base, "https://cdn.example/a").as_deref(), Some("https://cdn.example/a"));
        assert_eq!(join(base, "//cdn.example/a").as_deref(), Some("https://cdn.example/a"));
        assert_eq!(join(base, "/cdn/w").as_deref(), Some("https://reg.example/cdn/w"));
        assert_eq!(join(base, "other").as_deref(), Some("https://reg.example/v2/lib/m/blobs/other"));
        assert_eq!(join(base, "file:///etc/passwd"), None);
        assert_eq!(join(base, ""), None);
    }

    #[test]
    fn urls_are_shown_without_credentials_or_queries() {
        assert_eq!(redact("https://user:secret@host.example:8443/a/b?token=x#f"), "https://host.example:8443/a/b");
        assert_eq!(host_of("https://user:secret@Host.example:8443/a?b").as_deref(), Some("host.example:8443"));
        assert_eq!(host_of("http://[::1]:80/x").as_deref(), Some("[::1]:80"));
    }
}
