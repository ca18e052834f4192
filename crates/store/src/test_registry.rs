//! An HTTP server on 127.0.0.1 for tests, here and in other crates: it serves given paths,
//! honours `Range`, can break a response off once, and records what was asked.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub enum Route {
    Body(Vec<u8>),
    /// The body, but the first response breaks off after this many bytes.
    BreaksOnceAfter(Vec<u8>, usize),
    Status(u16),
    /// A temporary redirect to this `Location` (a path of this server, or any URL), as
    /// registries send blobs to a CDN.
    Redirect(String),
    /// The body, always whole: a server that ignores `Range`.
    IgnoresRanges(Vec<u8>),
    /// The body, but every response breaks off after this many bytes.
    AlwaysBreaksAfter(Vec<u8>, usize),
    /// The body whole, with no `Content-Length` (the end is where the connection closes).
    Unsized(Vec<u8>),
}

/// Each request's path and the start of the range it asked for.
type RequestLog = Mutex<Vec<(String, Option<String>)>>;

/// A registry on 127.0.0.1; each request's path and Range header are recorded.
pub struct Registry {
    pub host: String,
    requests: Arc<RequestLog>,
    routes: Arc<Mutex<HashMap<String, Route>>>,
}

impl Registry {
    pub fn start(routes: HashMap<String, Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(Mutex::new(routes));
        let (log, served) = (requests.clone(), routes.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, log) = (served.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Self { host, requests, routes }
    }

    /// Serves `path` differently from now on.
    pub fn set_route(&self, path: &str, route: Route) {
        self.routes.lock().unwrap().insert(path.to_string(), route);
    }

    /// The first byte each request for a path ending in `path_end` asked for, in order.
    pub fn ranges_asked_for(&self, path_end: &str) -> Vec<Option<String>> {
        self.requests.lock().unwrap().iter().filter(|(p, _)| p.ends_with(path_end)).map(|(_, r)| r.clone()).collect()
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Route>>, log: &RequestLog) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let head_only = request_line.starts_with("HEAD ");
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(value.trim().to_string());
        }
    }
    let (from, to) = match range.as_deref().and_then(|r| r.split_once('-')) {
        Some((from, to)) => (from.parse::<usize>().ok(), to.parse::<usize>().ok()),
        None => (None, None),
    };
    let route = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    if head_only {
        // Sizes only: not logged, and a response set to break once is kept for the GET.
        let size = match route {
            Some(
                Route::Body(b)
                | Route::BreaksOnceAfter(b, _)
                | Route::IgnoresRanges(b)
                | Route::AlwaysBreaksAfter(b, _)
                | Route::Unsized(b),
            ) => b.len(),
            Some(Route::Status(code)) => return respond(&mut out, code, b""),
            _ => return respond(&mut out, 404, b""),
        };
        let head = format!("HTTP/1.1 200 X\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
        let _ = out.write_all(head.as_bytes());
        return;
    }
    log.lock().unwrap().push((path.clone(), from.map(|f| f.to_string())));
    let (body, cut) = match route {
        None => return respond(&mut out, 404, b"not found"),
        Some(Route::Status(code)) => return respond(&mut out, code, b"no"),
        Some(Route::Unsized(body)) => {
            let _ = out.write_all(b"HTTP/1.1 200 X\r\nConnection: close\r\n\r\n");
            let _ = out.write_all(&body);
            return;
        }
        Some(Route::Redirect(to)) => {
            let head = format!("HTTP/1.1 307 X\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = out.write_all(head.as_bytes());
            return;
        }
        Some(Route::Body(body)) => (body, None),
        Some(Route::AlwaysBreaksAfter(body, cut)) => (body, Some(cut)),
        Some(Route::IgnoresRanges(body)) => {
            let head = format!("HTTP/1.1 200 X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
            let _ = out.write_all(head.as_bytes());
            let _ = out.write_all(&body);
            return;
        }
        Some(Route::BreaksOnceAfter(body, cut)) => {
            // Only the first request breaks off.
            routes.lock().unwrap().insert(path.clone(), Route::Body(body.clone()));
            (body, Some(cut))
        }
    };
    let (status, extra, rest) = match from {
        Some(from) if from >= body.len() => return respond(&mut out, 416, b""),
        Some(from) => {
            let last = to.unwrap_or(usize::MAX).min(body.len() - 1);
            (206, vec![format!("Content-Range: bytes {from}-{last}/{}", body.len())], &body[from..=last])
        }
        None => (200, vec![], &body[..]),
    };
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        rest.len(),
        extra.iter().map(|h| format!("{h}\r\n")).collect::<String>()
    );
    out.write_all(head.as_bytes()).unwrap();
    let sent = cut.map_or(rest.len(), |c| c.min(rest.len()));
    let _ = out.write_all(&rest[..sent]);
    let _ = out.flush();
    // Dropping the stream here, short of Content-Length, is the broken connection.
}

fn respond(out: &mut TcpStream, status: u16, body: &[u8]) {
    let head = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(body);
}
