//! hearth's own accept loop. `axum::serve` has no timeouts and no cap on connections, so a
//! client that connects and sends nothing, trickles its headers (slowloris), leaves a
//! kept-alive connection idle or stops reading its answer would hold a socket, a file
//! descriptor and a task forever. Here every connection is served by hyper's HTTP/1 over a
//! socket that knows whether a request is in flight: between requests it must deliver the
//! next request's headers in time; during one, it is never cut for being slow to think (a
//! model loading, a long stream) but only when the client stops taking the answer. Request
//! bodies have their own timeout (`http_layers::bodies`), where a 408 can still be sent.

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

/// What a connection and a request may take; the defaults are nginx's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeLimits {
    /// Time to send a request's headers: from the connection's start for its first request,
    /// from the first byte of the request on a kept-alive one (`client_header_timeout`).
    pub header_timeout: Duration,
    /// Time a request body may go without a byte arriving; past it the request gets 408
    /// (`client_body_timeout`).
    pub body_timeout: Duration,
    /// Time a kept-alive connection may wait for its next request (`keepalive_timeout`).
    pub idle_timeout: Duration,
    /// Time an answer may wait for the client to take any of it (`send_timeout`). A stream
    /// the client reads is never cut, however long it runs.
    pub send_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog until one closes, so
    /// clients cannot run the process out of file descriptors.
    pub max_connections: usize,
    /// The largest request body taken (they are JSON); larger gets 413. Blob uploads
    /// (`POST /api/blobs/:digest`) stream to disk and have no limit.
    pub max_body_bytes: usize,
}

impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            send_timeout: Duration::from_secs(60),
            max_connections: 1024,
            // A 3,000-token prompt is ~12 KB of JSON; 2 MiB leaves room for long chats and
            // big batches of embedding inputs while bounding what one request may buffer.
            max_body_bytes: 2 * 1024 * 1024,
        }
    }
}

/// After the grace period, how long aborted connections get to drop what they hold.
const ABORT_WAIT: Duration = Duration::from_millis(250);

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets answers
/// in flight finish for up to `grace`, cuts off the rest and returns.
pub(crate) async fn run(
    listener: TcpListener,
    app: Router,
    limits: &ServeLimits,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let max_connections = fit_to_open_files(limits.max_connections);
    let permits = Arc::new(Semaphore::new(max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let accepting = async {
        loop {
            // A permit before accepting: past the cap, connections wait in the kernel's
            // backlog holding no descriptor of ours, and are served as others close.
            let permit = permits.clone().acquire_owned().await.expect("the semaphore is never closed");
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: accepting again at once would spin.
                    tracing::error!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            // Streamed tokens are small writes; Nagle's algorithm would hold them back.
            let _ = stream.set_nodelay(true);
            connections.spawn(connection(stream, peer, app.clone(), limits.clone(), stopping.clone(), permit));
            while connections.try_join_next().is_some() {}
        }
    };
    tokio::select! {
        () = shutdown => {}
        () = accepting => {}
    }
    drop(listener);
    tracing::info!("shutting down: finishing answers in flight (up to {} s)", grace.as_secs_f64());
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "answers still running after {} s were cut off",
            grace.as_secs_f64()
        );
        connections.abort_all();
        let _ = tokio::time::timeout(ABORT_WAIT, async { while connections.join_next().await.is_some() {} }).await;
    }
}

/// One connection, served until the client closes it, a timeout cuts it or shutdown ends it.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ServeLimits,
    mut stopping: watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new(&limits));
    let io = TokioIo::new(Watched::new(stream, activity.clone(), limits.send_timeout));
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let in_flight = activity.begin();
        let app = app.clone();
        async move {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            let response = app.oneshot(request).await.unwrap_or_else(|never| match never {});
            Ok::<_, Infallible>(response.map(|body| Tracked { body, in_flight: Some(in_flight) }))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The socket's watch (`Watched`) times headers and idleness itself; hyper's own header
    // timer would run through the idle wait of a kept-alive connection.
    builder.keep_alive(true).header_read_timeout(None);
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        // Dropping the sender (serve gone) stops connections as well.
        () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
            // Finish the request in flight, if any, then close; an idle one closes now.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// Descriptors kept for everything but connections: model files, the store, logs.
#[cfg(unix)]
const RESERVED_FILES: usize = 256;

/// `wanted` connections, raising the soft limit on open files toward the hard one if they
/// would not fit (as Go's runtime does for Ollama), and fewer if they still would not.
#[cfg(unix)]
fn fit_to_open_files(wanted: usize) -> usize {
    let wanted = wanted.max(1);
    let needed = (wanted + RESERVED_FILES) as libc::rlim_t;
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return wanted;
    }
    if limit.rlim_cur != libc::RLIM_INFINITY && limit.rlim_cur < needed {
        let raised = libc::rlimit { rlim_cur: needed.min(limit.rlim_max), rlim_max: limit.rlim_max };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = raised.rlim_cur;
        }
    }
    if limit.rlim_cur == libc::RLIM_INFINITY || limit.rlim_cur >= needed {
        return wanted;
    }
    let fits = (limit.rlim_cur as usize).saturating_sub(RESERVED_FILES).max(1);
    tracing::warn!(
        "only {fits} connections fit under the open-file limit of {} (ulimit -n); HEARTH_MAX_CONNECTIONS was {wanted}",
        limit.rlim_cur
    );
    fits
}

#[cfg(not(unix))]
fn fit_to_open_files(wanted: usize) -> usize {
    wanted.max(1)
}

/// Whether a connection is in a request, and since when it has been waiting for one.
struct Activity {
    header_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<Waiting>,
}

struct Waiting {
    /// Requests whose answers are not done (more than one only when pipelined).
    requests: usize,
    /// When the connection started or its last answer ended.
    since: Instant,
    /// No request yet: the header timeout runs from the connection's start.
    first: bool,
    /// When the next request's first byte came.
    head_began: Option<Instant>,
    /// A read left waiting with no deadline during a request: woken when the request ends,
    /// to start its idle timer (hyper would not poll again until a byte came).
    reader: Option<Waker>,
}

impl Activity {
    fn new(limits: &ServeLimits) -> Self {
        Self {
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            state: Mutex::new(Waiting {
                requests: 0,
                since: Instant::now(),
                first: true,
                head_began: None,
                reader: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// When a read still waiting must give up; none while a request is in flight, whose
    /// body has its own timeout and whose answer may take as long as it takes.
    fn read_deadline(&self, waker: &Waker) -> Option<Instant> {
        let mut state = self.lock();
        if state.requests > 0 {
            state.reader = Some(waker.clone());
            return None;
        }
        Some(match state.head_began {
            Some(began) => began + self.header_timeout,
            None if state.first => state.since + self.header_timeout,
            None => state.since + self.idle_timeout,
        })
    }

    /// Bytes arrived; between requests, they begin the next one's headers.
    fn received(&self) {
        let mut state = self.lock();
        if state.requests == 0 && state.head_began.is_none() {
            state.head_began = Some(if state.first { state.since } else { Instant::now() });
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.requests += 1;
        state.first = false;
        state.head_began = None;
        InFlight(self.clone())
    }
}

/// A request in flight on its connection, until its answer's body ends or is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.requests -= 1;
        if state.requests == 0 {
            state.since = Instant::now();
            state.head_began = None;
            let reader = state.reader.take();
            drop(state);
            if let Some(reader) = reader {
                reader.wake();
            }
        }
    }
}

/// An answer's body, holding its request in flight until the body is done.
struct Tracked {
    body: Body,
    in_flight: Option<InFlight>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.in_flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose reads between requests, and whose stalled writes, time out.
struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    send_timeout: Duration,
    read_timer: Pin<Box<Sleep>>,
    read_armed: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    write_stalled: bool,
}

impl<T> Watched<T> {
    fn new(io: T, activity: Arc<Activity>, send_timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            io,
            activity,
            send_timeout,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_armed: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_stalled: false,
        }
    }

    /// A write that could not go on starts (or keeps) the send timer; one that went on
    /// stops it.
    fn write_progress<R>(&mut self, cx: &mut Context<'_>, result: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.write_stalled = false;
            return result;
        }
        if !self.write_stalled {
            self.write_stalled = true;
            self.write_timer.as_mut().reset(Instant::now() + self.send_timeout);
        }
        match self.write_timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client took none of the answer for {:?}", self.send_timeout),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.received();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                let Some(deadline) = this.activity.read_deadline(cx.waker()) else {
                    return Poll::Pending;
                };
                if this.read_armed != Some(deadline) {
                    this.read_timer.as_mut().reset(deadline);
                    this.read_armed = Some(deadline);
                }
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no complete request in time (header or idle timeout)",
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            failed => failed,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, data);
        this.write_progress(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, data);
        this.write_progress(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_flush(cx);
        this.write_progress(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_shutdown(cx);
        this.write_progress(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits(header: u64, idle: u64, send: u64) -> ServeLimits {
        ServeLimits {
            header_timeout: Duration::from_millis(header),
            idle_timeout: Duration::from_millis(idle),
            send_timeout: Duration::from_millis(send),
            ..ServeLimits::default()
        }
    }

    /// A client that stops reading: once the pipe is full, the write fails after the send
    /// timeout instead of waiting forever.
    #[tokio::test]
    async fn a_write_the_client_never_takes_times_out() {
        let (server, _client) = tokio::io::duplex(64);
        let limits = limits(60_000, 60_000, 100);
        let activity = Arc::new(Activity::new(&limits));
        let mut watched = Watched::new(server, activity, limits.send_timeout);
        let started = std::time::Instant::now();
        let error = watched.write_all(&[b'x'; 4096]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100), "{:?}", started.elapsed());
    }

    /// A client reading slowly but steadily is never cut, however long the answer takes.
    #[tokio::test]
    async fn a_write_the_client_keeps_taking_never_times_out() {
        let (server, mut client) = tokio::io::duplex(64);
        // A second of send timeout against 5 ms between reads: a loaded machine's pauses
        // stay well inside it, while the whole answer (256 reads) outlasts it.
        let limits = limits(60_000, 60_000, 1000);
        let mut watched = Watched::new(server, Arc::new(Activity::new(&limits)), limits.send_timeout);
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 64];
            let mut total = 0;
            while total < 16_384 {
                // Slower than the whole answer's send timeout, never one write's.
                tokio::time::sleep(Duration::from_millis(5)).await;
                total += client.read(&mut chunk).await.unwrap();
            }
            total
        });
        let started = std::time::Instant::now();
        watched.write_all(&[b'x'; 16_384]).await.unwrap();
        assert!(started.elapsed() > Duration::from_millis(1000), "the answer outlasted the send timeout");
        assert_eq!(reader.await.unwrap(), 16_384);
    }

    /// Between requests a read gives up at the idle timeout; during one it waits.
    #[tokio::test]
    async fn reads_time_out_only_between_requests() {
        let (server, mut client) = tokio::io::duplex(1024);
        let limits = limits(60_000, 100, 60_000);
        let activity = Arc::new(Activity::new(&limits));
        let mut watched = Watched::new(server, activity.clone(), limits.send_timeout);
        let in_flight = activity.begin();
        let mut byte = [0u8; 1];
        let waited = tokio::time::timeout(Duration::from_millis(300), watched.read(&mut byte)).await;
        assert!(waited.is_err(), "a read during a request does not time out: {waited:?}");
        // A read already waiting when the request ends gets the idle timer: hyper does not
        // poll again on its own.
        let started = std::time::Instant::now();
        let reading = watched.read(&mut byte);
        let ending = async {
            tokio::task::yield_now().await;
            drop(in_flight);
        };
        let both = async { tokio::join!(reading, ending) };
        let (result, ()) = tokio::time::timeout(Duration::from_secs(10), both).await.expect("the idle timer ran");
        let error = result.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(90), "{:?}", started.elapsed());
        client.write_all(b"x").await.unwrap();
    }
}
