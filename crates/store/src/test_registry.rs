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
    /// A temporary redirect to another path of this server, as registries send blobs to a CDN.
    Redirect(String),
}

/// Each request's path and the start of the range it asked for.
type RequestLog = Mutex<Vec<(String, Option<String>)>>;

/// A registry on 127.0.0.1; each request's path and Range header are recorded.
pub struct Registry {
    pub host: String,
    requests: Arc<RequestLog>,
}

impl Registry {
    pub fn start(routes: HashMap<String, Route>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(Mutex::new(routes));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (routes, log) = (routes.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &routes, &log));
            }
        });
        Self { host, requests }
    }

    pub fn ranges_asked_for(&self, path_end: &str) -> Vec<Option<String>> {
        self.requests.lock().unwrap().iter().filter(|(p, _)| p.ends_with(path_end)).map(|(_, r)| r.clone()).collect()
    }
}

fn serve(stream: TcpStream, routes: &Mutex<HashMap<String, Route>>, log: &RequestLog) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or_default().to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            range = Some(value.trim().trim_end_matches('-').to_string());
        }
    }
    log.lock().unwrap().push((path.clone(), range.clone()));
    let route = routes.lock().unwrap().get(&path).cloned();
    let mut out = stream;
    let (body, cut) = match route {
        None => return respond(&mut out, 404, b"not found"),
        Some(Route::Status(code)) => return respond(&mut out, code, b"no"),
        Some(Route::Redirect(to)) => {
            let head = format!("HTTP/1.1 307 X\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = out.write_all(head.as_bytes());
            return;
        }
        Some(Route::Body(body)) => (body, None),
        Some(Route::BreaksOnceAfter(body, cut)) => {
            // Only the first request breaks off.
            routes.lock().unwrap().insert(path.clone(), Route::Body(body.clone()));
            (body, Some(cut))
        }
    };
    let from: usize = range.as_deref().and_then(|r| r.parse().ok()).unwrap_or(0);
    let (status, extra) = if from > 0 {
        (206, vec![format!("Content-Range: bytes {from}-{}/{}", body.len() - 1, body.len())])
    } else {
        (200, vec![])
    };
    let rest = &body[from..];
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
