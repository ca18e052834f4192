//! The web page: its plain files, embedded in the binary and served under `/ui/` with a
//! policy that lets them load nothing from anywhere else; `/` sends browsers there and
//! tells every other client that hearth is running, as Ollama's root does; and the one
//! reading the page needs that no dialect gives, `GET /api/live`.

use crate::metrics::Live;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;

/// One embedded file: its name under `/ui/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    media_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $media_type:expr) => {
        Asset { name: $name, media_type: $media_type, body: include_str!(concat!("../ui/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Everything the page is made of. Adding a file means adding it here: nothing is read from
/// disk at run time, so the page is the one that was built.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("icon.svg", "image/svg+xml"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("chat.js", JS),
    asset!("conversations.js", JS),
    asset!("stats.js", JS),
    asset!("format.js", JS),
    asset!("models.js", JS),
    asset!("live.js", JS),
    asset!("markdown.js", JS),
    asset!("bench.js", JS),
];

/// The page loads its own files and talks to its own server only: no fonts, scripts or
/// styles from elsewhere, and no inline script an injected answer could run.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `GET /`: browsers (which ask for HTML) go to the page; everything else gets the health
/// text Ollama's clients and load balancers look for.
pub async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.split(',').any(|kind| kind.trim().starts_with("text/html")));
    if wants_html {
        // Relative, so the page is found behind a proxy that serves hearth under a path.
        Redirect::to("ui/").into_response()
    } else {
        "hearth is running".into_response()
    }
}

/// `GET /ui` without the slash: the page's relative links need it.
pub async fn page_without_slash() -> Redirect {
    Redirect::permanent("ui/")
}

/// `GET /ui/`: the page itself.
pub async fn page() -> Response {
    file("index.html")
}

/// `GET /ui/{name}`: one of the page's files, or 404.
pub async fn asset(Path(name): Path<String>) -> Response {
    file(&name)
}

fn file(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, format!("no such file in the page: {name}")).into_response();
    };
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // Small files, and a new binary may bring new ones: ask again each time.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /api/live`: the machine's power now and the requests in flight, for the chart
/// beside a streaming answer.
pub async fn live(State(state): State<AppState>) -> Json<Live> {
    Json(state.service.metrics.live())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_the_page_imports_is_embedded() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let name = line.rsplit(['"', '\'']).nth(1).expect("a quoted module");
                let name = name
                    .strip_prefix("./")
                    .unwrap_or_else(|| panic!("{}: {line} is not one of the page's files", asset.name));
                assert!(ASSETS.iter().any(|a| a.name == name), "{} imports {name}, which is not embedded", asset.name);
            }
        }
    }

    #[test]
    fn the_page_names_no_file_from_elsewhere() {
        let index = ASSETS.iter().find(|a| a.name == "index.html").expect("the page").body;
        for attribute in ["src=\"", "href=\""] {
            for value in index.split(attribute).skip(1) {
                assert!(!value.contains("//") || value.find('"') < value.find("//"), "{attribute}{value}");
            }
        }
        let style = ASSETS.iter().find(|a| a.name == "style.css").expect("the style").body;
        assert!(!style.contains("@import") && !style.contains("url("), "the style loads nothing");
    }

    #[test]
    fn the_page_stays_small() {
        let bytes: usize = ASSETS.iter().map(|a| a.body.len()).sum();
        assert!(bytes < 300 * 1024, "the page is {bytes} bytes");
    }
}
