//! Which callers may change the store. Pull, create, copy, delete and blob uploads make the
//! server fetch URLs and write files on a client's say-so; until API keys exist, only
//! clients on this machine may ask for them, unless the operator allows every caller
//! (`HEARTH_ALLOW_REMOTE_ADMIN=1`). A server bound to loopback sees only such clients.

use crate::dialects::Dialect;
use crate::service::ServiceError;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// Who may call the routes that change the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminPolicy {
    /// Clients on this machine only (the default).
    #[default]
    Local,
    /// Every client that can reach the server.
    Anyone,
}

/// The routes that fetch on a client's behalf or change the store.
fn is_admin_route(path: &str) -> bool {
    matches!(path, "/api/pull" | "/api/create" | "/api/copy" | "/api/delete") || path.starts_with("/api/blobs/")
}

/// Refuses admin routes to callers from other machines under [`AdminPolicy::Local`]. A
/// request without a peer address (the router driven in process) is this machine's own.
pub async fn guard(State(policy): State<AdminPolicy>, request: Request, next: Next) -> Response {
    let remote = request.extensions().get::<ConnectInfo<SocketAddr>>().is_some_and(|peer| !is_local(peer.0));
    if policy == AdminPolicy::Local && remote && is_admin_route(request.uri().path()) {
        let message = "pull, create, copy, delete and blob uploads are allowed only from this machine \
                       (set HEARTH_ALLOW_REMOTE_ADMIN=1 to allow them from anywhere)";
        return Dialect::Ollama.error_response(ServiceError::protocol(StatusCode::FORBIDDEN, message));
    }
    next.run(request).await
}

fn is_local(peer: SocketAddr) -> bool {
    match peer.ip() {
        std::net::IpAddr::V4(ip) => ip.is_loopback(),
        std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_store_changing_routes_from_other_machines_are_admin() {
        for path in ["/api/pull", "/api/create", "/api/copy", "/api/delete", "/api/blobs/sha256:ab"] {
            assert!(is_admin_route(path), "{path}");
        }
        for path in ["/api/chat", "/api/tags", "/v1/chat/completions", "/api/show", "/api/blobsx"] {
            assert!(!is_admin_route(path), "{path}");
        }
        assert!(is_local("127.0.0.1:5".parse().unwrap()));
        assert!(is_local("127.8.0.1:5".parse().unwrap()));
        assert!(is_local("[::1]:5".parse().unwrap()));
        assert!(is_local("[::ffff:127.0.0.1]:5".parse().unwrap()));
        assert!(!is_local("192.168.1.4:5".parse().unwrap()));
        assert!(!is_local("[fe80::1]:5".parse().unwrap()));
    }
}
