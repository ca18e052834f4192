//! Who may call hearth, and how much, decided before a request's body is read: the `Host`
//! check against DNS rebinding on loopback binds (`host`), API keys and their scopes
//! (`keyring`), and each key's allowance (`limits`).
//!
//! A server with no keys serves without them only where the operator chose that: bound to
//! loopback (as before keys existed; but not requests a proxy forwarded), or started with
//! `--allow-unauthenticated`; there,
//! the routes that change the store stay limited to this machine's clients unless
//! `HEARTH_ALLOW_REMOTE_ADMIN` says otherwise. Once the keys file holds a key, every
//! request but the health checks (`/`, `/api/version`) needs one, from whatever address:
//! behind a proxy on the same machine, every client's address is loopback.

pub mod host;
pub mod keyring;
pub mod limits;

use crate::audit;
use crate::dialects::Dialect;
use crate::service::ServiceError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use host::AllowedHosts;
use keyring::{Keyring, KeyringError, Scope, Verdict};
use limits::{KeyLimits, Limiter};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime};

/// Who may call the routes that change the store when the server has no keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminPolicy {
    /// Clients on this machine only (the default).
    #[default]
    Local,
    /// Every client that can reach the server.
    Anyone,
}

/// Whom a server with no keys serves without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutKeys {
    /// Nobody: every request needs a key, and none is valid until one is made.
    Nobody,
    /// Clients of a loopback bind, but not requests a proxy forwards (`Forwarded`,
    /// `X-Forwarded-For`): a proxy on this machine may be serving the world.
    ThisMachine,
    /// Everyone who can reach the server (`--allow-unauthenticated`).
    Everyone,
}

/// The caller a valid key names.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub scope: Scope,
    limiter: Arc<Limiter>,
}

impl Caller {
    /// Takes `tokens` from the key's daily allowance.
    pub fn charge(&self, tokens: u64) {
        self.limiter.charge(&self.name, tokens, Instant::now());
    }
}

/// Everything the auth layer decides by.
#[derive(Debug)]
pub struct Auth {
    keyring: RwLock<Arc<Keyring>>,
    /// Where the keys were read from, to read them again on SIGHUP.
    keys_path: Option<PathBuf>,
    /// Whom a server with no keys serves.
    without_keys: WithoutKeys,
    /// The names `Host` may carry; `None` where the bind reaches other machines (keys guard
    /// those) or the check is not wanted.
    hosts: Option<AllowedHosts>,
    limiter: Arc<Limiter>,
    admin: AdminPolicy,
}

impl Default for Auth {
    /// No keys, served without them, local `Host` names only, the store changed only from
    /// this machine: a server on loopback.
    fn default() -> Self {
        Self {
            keyring: RwLock::default(),
            keys_path: None,
            without_keys: WithoutKeys::ThisMachine,
            hosts: Some(AllowedHosts::local_and("")),
            limiter: Arc::default(),
            admin: AdminPolicy::Local,
        }
    }
}

impl Auth {
    /// The keys in `path` (none if it does not exist).
    pub fn with_keys_file(mut self, path: PathBuf) -> Result<Self, KeyringError> {
        self.keyring = RwLock::new(Arc::new(Keyring::load(&path)?));
        self.keys_path = Some(path);
        Ok(self)
    }

    pub fn with_keyring(self, keyring: Keyring) -> Self {
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
        self
    }

    /// Whom the server serves while the keys file is empty.
    pub fn without_keys(mut self, whom: WithoutKeys) -> Self {
        self.without_keys = whom;
        self
    }

    /// The `Host` names served; `None` turns the check off.
    pub fn with_hosts(mut self, hosts: Option<AllowedHosts>) -> Self {
        self.hosts = hosts;
        self
    }

    pub fn with_limits(mut self, limits: KeyLimits) -> Self {
        self.limiter = Arc::new(Limiter::new(limits));
        self
    }

    pub fn with_admin(mut self, admin: AdminPolicy) -> Self {
        self.admin = admin;
        self
    }

    pub fn keyring(&self) -> Arc<Keyring> {
        self.keyring.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reads the keys file again (SIGHUP); on an error the keys in force stay.
    pub fn reload(&self) -> Result<usize, KeyringError> {
        let Some(path) = &self.keys_path else { return Ok(self.keyring().keys().len()) };
        let keyring = Keyring::load(path)?;
        let count = keyring.keys().len();
        *self.keyring.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keyring);
        Ok(count)
    }

    /// What a request to `path` may do, given its headers and peer: the caller it is, if it
    /// showed a key, or the refusal.
    fn admit(&self, method: &Method, path: &str, headers: &HeaderMap, peer: Option<SocketAddr>) -> Decision {
        if let Some(hosts) = &self.hosts {
            let host = headers.get(header::HOST).map(|h| h.to_str().unwrap_or("?"));
            if host.is_some_and(|host| !hosts.allows(host)) {
                return Decision::Refused(refusal(
                    StatusCode::FORBIDDEN,
                    "this server is bound to loopback and answers only this machine's names in the Host \
                     header; add the name to HEARTH_ALLOWED_HOSTS to allow it",
                ));
            }
        }
        let Some(needed) = needed_scope(method, path) else { return Decision::Open };
        let keyring = self.keyring();
        if keyring.is_empty() {
            let proxied = headers.contains_key("x-forwarded-for") || headers.contains_key(header::FORWARDED);
            match self.without_keys {
                WithoutKeys::Nobody => {}
                WithoutKeys::ThisMachine if proxied => {
                    return Decision::Refused(refusal(
                        StatusCode::UNAUTHORIZED,
                        "this request came through a proxy, which may serve other machines, and hearth has no \
                         API keys; create one with `hearth keys create NAME` (or start hearth with \
                         --allow-unauthenticated)",
                    ))
                }
                WithoutKeys::ThisMachine | WithoutKeys::Everyone => {
                    let remote = peer.is_some_and(|peer| !is_local(peer));
                    if needed == Scope::Admin && remote && self.admin == AdminPolicy::Local {
                        return Decision::Refused(refusal(
                            StatusCode::FORBIDDEN,
                            "pull, create, copy, delete and blob uploads are allowed only from this machine \
                             (set HEARTH_ALLOW_REMOTE_ADMIN=1 to allow them from anywhere, or create an admin key)",
                        ));
                    }
                    return Decision::Open;
                }
            }
        }
        let Some(presented) = presented_key(headers) else {
            return Decision::Refused(refusal(
                StatusCode::UNAUTHORIZED,
                "this server needs an API key: send it as `Authorization: Bearer KEY` or `x-api-key: KEY` \
                 (`hearth keys create NAME` makes one)",
            ));
        };
        let stored = match keyring.verify(presented, SystemTime::now()) {
            Verdict::Valid(stored) => stored,
            Verdict::Expired(stored) => {
                tracing::info!(key = %stored.name, "refused an expired key");
                return Decision::Refused(refusal(StatusCode::UNAUTHORIZED, "the API key has expired"));
            }
            Verdict::Unknown => {
                return Decision::Refused(refusal(StatusCode::UNAUTHORIZED, "the API key is not valid"))
            }
        };
        let caller = Caller { name: stored.name.clone(), scope: stored.scope, limiter: self.limiter.clone() };
        if let Err(refused) = permit(Some(&caller), needed) {
            return Decision::Refused(refused);
        }
        if let Err(exceeded) = self.limiter.admit(&caller.name, Instant::now()) {
            let seconds = exceeded.retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let message = format!("the key's {} are used up; try again in {seconds} s", exceeded.limit);
            return Decision::Limited(refusal(StatusCode::TOO_MANY_REQUESTS, message), seconds);
        }
        Decision::Caller(caller)
    }
}

enum Decision {
    /// No key needed, none checked.
    Open,
    Caller(Caller),
    Refused(ServiceError),
    /// Over its allowance: the refusal and the seconds until a retry may pass.
    Limited(ServiceError, u64),
}

fn refusal(status: StatusCode, message: impl Into<String>) -> ServiceError {
    ServiceError::protocol(status, message)
}

/// Whether `caller` (none: a server open without keys) may do what needs `needed`: the one
/// scope rule, for routes here and for the unloads a chat request can ask for.
pub fn permit(caller: Option<&Caller>, needed: Scope) -> Result<(), ServiceError> {
    match caller {
        Some(caller) if !caller.scope.allows(needed) => Err(refusal(
            StatusCode::FORBIDDEN,
            format!(
                "the key '{}' has the {} scope; pulling, creating, copying, deleting and unloading models \
                 need an {needed} key",
                caller.name, caller.scope
            ),
        )),
        _ => Ok(()),
    }
}

/// The scope a route needs; `None` for the health checks, which anyone may ask, and for the
/// web page's files, which hold no data and must load to ask the user for a key.
fn needed_scope(method: &Method, path: &str) -> Option<Scope> {
    let open = path == "/" || path == "/api/version" || path == "/ui" || path.starts_with("/ui/");
    if open && (method == Method::GET || method == Method::HEAD) {
        return None;
    }
    let store_changing =
        matches!(path, "/api/pull" | "/api/create" | "/api/copy" | "/api/delete") || path.starts_with("/api/blobs/");
    Some(if store_changing { Scope::Admin } else { Scope::Chat })
}

/// The key a client sent: `Authorization: Bearer` (OpenAI's and Ollama's clients),
/// `x-api-key` (Anthropic's) or `api-key` (Azure OpenAI's).
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let named = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    bearer.or_else(|| named("x-api-key")).or_else(|| named("api-key")).filter(|k| !k.is_empty())
}

fn is_local(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

/// The layer: refuses in the dialect of the path, or lets the request on with its caller
/// in its audit record.
pub async fn guard(State(auth): State<Arc<Auth>>, request: Request, next: Next) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let path = request.uri().path();
    let dialect = Dialect::for_path(path);
    match auth.admit(request.method(), path, request.headers(), peer) {
        Decision::Open => next.run(request).await,
        Decision::Caller(caller) => {
            if let Some(record) = audit::current() {
                record.set_caller(caller);
            }
            next.run(request).await
        }
        Decision::Refused(error) => {
            let unauthorized = matches!(error.kind(), crate::ErrorKind::Protocol(StatusCode::UNAUTHORIZED));
            let mut response = dialect.error_response(error);
            if unauthorized {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
        Decision::Limited(error, seconds) => {
            let mut response = dialect.error_response(error);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_checks_are_open_store_changes_need_admin_the_rest_chat() {
        assert_eq!(needed_scope(&Method::GET, "/"), None);
        assert_eq!(needed_scope(&Method::GET, "/ui/app.js"), None);
        assert_eq!(needed_scope(&Method::GET, "/api/live"), Some(Scope::Chat));
        assert_eq!(needed_scope(&Method::HEAD, "/api/version"), None);
        assert_eq!(needed_scope(&Method::POST, "/api/version"), Some(Scope::Chat));
        for path in ["/api/pull", "/api/create", "/api/copy", "/api/delete", "/api/blobs/sha256:ab"] {
            assert_eq!(needed_scope(&Method::POST, path), Some(Scope::Admin), "{path}");
        }
        for path in ["/api/chat", "/api/tags", "/v1/chat/completions", "/api/show", "/api/blobsx", "/metrics"] {
            assert_eq!(needed_scope(&Method::POST, path), Some(Scope::Chat), "{path}");
        }
    }

    #[test]
    fn keys_are_read_from_each_client_s_header() {
        let key = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            presented_key(&headers).map(str::to_string)
        };
        assert_eq!(key("authorization", "Bearer abc").as_deref(), Some("abc"));
        assert_eq!(key("authorization", "bearer  abc ").as_deref(), Some("abc"));
        assert_eq!(key("authorization", "Basic abc"), None);
        assert_eq!(key("x-api-key", "abc").as_deref(), Some("abc"));
        assert_eq!(key("api-key", "abc").as_deref(), Some("abc"));
        assert_eq!(key("x-api-key", ""), None);
    }

    #[test]
    fn loopback_peers_are_local() {
        assert!(is_local("127.0.0.1:5".parse().unwrap()));
        assert!(is_local("127.8.0.1:5".parse().unwrap()));
        assert!(is_local("[::1]:5".parse().unwrap()));
        assert!(is_local("[::ffff:127.0.0.1]:5".parse().unwrap()));
        assert!(!is_local("192.168.1.4:5".parse().unwrap()));
        assert!(!is_local("[fe80::1]:5".parse().unwrap()));
    }
}
