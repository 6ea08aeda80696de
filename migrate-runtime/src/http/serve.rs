//! `migrate serve`: the [`Handler`] behind a small synchronous HTTP/1.1 server on `std::net`
//! (request heads parsed by `httparse`), one thread per connection, with:
//!
//! - a cap on open connections ([`MAX_CONNECTIONS`]): one more is answered 503 and closed;
//! - deadlines: a request's head within [`HEAD_DEADLINE`], its body within [`BODY_DEADLINE`];
//!   a slower client is answered 408 and closed (an idle keep-alive connection is just closed);
//! - the token checked *before* the body is read: a request without it is answered 401 and
//!   its connection closed, its body never read; so is a body declared over the limit (413);
//! - a per-peer failure delay: after [`FREE_FAILURES`] wrong tokens from one IP address, that
//!   address is answered 429 (with `Retry-After`) for 1 s, then 2 s, 4 s, ... up to 60 s after
//!   each further failure; the right token clears its record.
//!
//! It has no TLS: listen on loopback or a private interface (the default is `127.0.0.1`).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Handler, Request, Response, TokenError};

/// Connections open at once; one more is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 32;

/// How long a client has to send a request's head (request line and headers), counted from
/// the connection's accept or the previous answer.
pub const HEAD_DEADLINE: Duration = Duration::from_secs(5);

/// How long a client has to send a request's body, counted from the end of its head.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// Wrong tokens a peer may send before it is answered 429 for a while.
pub const FREE_FAILURES: u32 = 5;

/// The longest a peer is answered 429.
const MAX_BLOCK: Duration = Duration::from_secs(60);

/// The largest request head accepted (431 above).
const MAX_HEAD: usize = 16 * 1024;

/// The most bytes read and dropped after a last answer (see `Connection::finish`).
const LINGER: usize = 256 * 1024;

/// The most bytes of an authorised request's refused body (413) read and dropped, so that
/// a client still sending it reads the 413 rather than a reset connection.
const LINGER_TOO_LARGE: usize = 16 << 20;

/// The most headers in a request (431 above).
const MAX_HEADERS: usize = 64;

/// Why the server did not start.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
/// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
/// use migrate_runtime::http::{AdminServer, ServeError};
///
/// let handler = handler.environment(Some("production"));
/// let result = AdminServer::bind("127.0.0.1:0", &handler);
/// assert!(matches!(result, Err(ServeError::Production)));
/// match result {
///     Ok(server) => server.run(),
///     Err(ServeError::Production) => log::info!("no admin endpoint in production"),
///     Err(other) => log::error!("{other}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The environment is production, where the endpoint is off.
    #[error("error: the migration endpoint is disabled in production (MIGRATE_ENV=production)\n   = help: run migrations from the deployment pipeline: `migrate up --dry-run --execute`, then `migrate up`")]
    Production,
    /// The token is missing or too short.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The address could not be listened on.
    #[error("error: cannot listen on {address}: {reason}")]
    Bind {
        /// The address asked for.
        address: String,
        /// Why not.
        reason: String,
    },
}

/// The admin endpoint on its own port.
///
/// ```
/// use std::io::{Read, Write};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
/// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
/// // The server borrows the handler for as long as it runs: for ever.
/// let handler: &'static _ = Box::leak(Box::new(handler));
/// let server = migrate_runtime::http::AdminServer::bind("127.0.0.1:0", handler)?;
/// let address = server.local_addr();
/// println!("listening on {address}");
/// std::thread::spawn(move || server.run()); // until the process ends
///
/// let mut stream = std::net::TcpStream::connect(address)?;
/// stream.write_all(b"GET /migrations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
///     Authorization: Bearer 3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e\r\n\r\n")?;
/// let mut answer = String::new();
/// stream.read_to_string(&mut answer)?;
/// assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AdminServer<'h, 'm> {
    listener: TcpListener,
    handler: &'h Handler<'m>,
    address: SocketAddr,
    open: AtomicUsize,
    failures: Failures,
}

impl<'h, 'm> AdminServer<'h, 'm> {
    /// Listens on `address` (`127.0.0.1:0` picks a free port), after refusing to serve in
    /// production.
    ///
    /// ```
    /// use migrate_runtime::http::{AdminServer, ServeError};
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
    /// let server = AdminServer::bind("127.0.0.1:0", &handler)?;
    /// // The port is taken now: a second server cannot listen on it.
    /// let taken = AdminServer::bind(&server.local_addr().to_string(), &handler);
    /// assert!(matches!(taken, Err(ServeError::Bind { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(address: &str, handler: &'h Handler<'m>) -> Result<Self, ServeError> {
        if handler.is_production() {
            return Err(ServeError::Production);
        }
        let bind_error = |reason: String| ServeError::Bind {
            address: address.to_owned(),
            reason,
        };
        let listener = TcpListener::bind(address).map_err(|e| bind_error(e.to_string()))?;
        let address = listener
            .local_addr()
            .map_err(|e| bind_error(e.to_string()))?;
        Ok(AdminServer {
            listener,
            handler,
            address,
            open: AtomicUsize::new(0),
            failures: Failures::default(),
        })
    }

    /// The address it listens on (with the port chosen when `:0` was asked for).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
    /// let server = migrate_runtime::http::AdminServer::bind("127.0.0.1:0", &handler)?;
    /// let port = server.local_addr().port();
    /// assert_ne!(port, 0); // the port the system chose
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Answers requests until the process ends, one thread per connection (at most
    /// [`MAX_CONNECTIONS`]). Each request is logged (`log` crate, `info`: method, path, status
    /// and time; never a header or the body).
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
    /// // Answers requests until the process ends (see `AdminServer` for running it on a thread).
    /// let server = migrate_runtime::http::AdminServer::bind("127.0.0.1:9191", &handler)?;
    /// server.run();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self) {
        std::thread::scope(|scope| {
            for stream in self.listener.incoming() {
                let stream = match stream {
                    Ok(stream) => stream,
                    Err(error) => {
                        // Out of descriptors, or a connection reset before it was accepted:
                        // the listener itself is fine, so wait a little and go on.
                        log::warn!("accept failed: {error}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                };
                if self.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
                    self.open.fetch_sub(1, Ordering::SeqCst);
                    let connection = Connection::new(stream);
                    let busy = Response::error(
                        503,
                        "busy",
                        &format!(
                            "the server has {MAX_CONNECTIONS} connections open: try again shortly"
                        ),
                    )
                    .with_header("Retry-After", "1");
                    // On the accepting thread: linger briefly, so that a client trickling bytes
                    // cannot hold up accepting.
                    connection.finish_lingering(&busy, None, LINGER, Duration::from_millis(100));
                    continue;
                }
                scope.spawn(move || {
                    // Counted down when the thread ends, even by a panic.
                    let _slot = Slot(&self.open);
                    Connection::new(stream).serve(self);
                });
            }
        });
    }
}

/// One of the open connections, given back when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What ended reading a request's head.
enum HeadEnd {
    /// A complete head: its length in the buffer.
    Complete(usize),
    /// The peer closed, or stayed silent, before sending anything: close without answering.
    Quiet,
    /// An answer to send before closing.
    Answer(Response),
}

struct Connection {
    stream: TcpStream,
    peer: Option<IpAddr>,
    /// Bytes read and not yet used (the start of the next request, with keep-alive).
    buffer: Vec<u8>,
}

impl Connection {
    fn new(stream: TcpStream) -> Self {
        let peer = stream.peer_addr().ok().map(|address| address.ip());
        let _ = stream.set_write_timeout(Some(BODY_DEADLINE));
        let _ = stream.set_nodelay(true);
        Connection {
            stream,
            peer,
            buffer: Vec::new(),
        }
    }

    /// Answers requests on this connection until one asks to close, breaks a rule, or the
    /// client goes quiet.
    fn serve(mut self, server: &AdminServer<'_, '_>) {
        loop {
            let started = Instant::now();
            let head_length = match self.read_head(started + HEAD_DEADLINE) {
                HeadEnd::Complete(length) => length,
                HeadEnd::Quiet => return,
                HeadEnd::Answer(response) => return self.finish(&response, None),
            };
            let head = self.buffer[..head_length].to_vec();
            self.buffer.drain(..head_length);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Request::new(&mut headers);
            match parsed.parse(&head) {
                Ok(httparse::Status::Complete(_)) => {}
                Ok(httparse::Status::Partial) | Err(_) => {
                    let response = Response::error(400, "bad_request", "malformed HTTP request");
                    return self.finish(&response, None);
                }
            }
            let method = parsed.method.unwrap_or_default().to_owned();
            let path = parsed.path.unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let header = |name: &str| {
                headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.trim())
                    .collect::<Vec<_>>()
            };
            let keep_alive = parsed.version == Some(1)
                && !header("connection")
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case("close"));
            let mut plain = Request {
                method,
                path,
                headers: headers.clone(),
                body: Vec::new(),
            };
            let log = |response: &Response| {
                log::info!(
                    "{} {} -> {} in {} ms",
                    plain.method,
                    plain.path.split('?').next().unwrap_or_default(),
                    response.status,
                    started.elapsed().as_millis()
                )
            };

            // Before any of the body: the peer's failure record, production, the token.
            if let Some(wait) = self.peer.and_then(|peer| server.failures.blocked(peer)) {
                let response = Response::error(
                    429,
                    "too_many_failures",
                    "too many requests with a wrong token from this address: wait and retry",
                )
                .with_header(
                    "Retry-After",
                    &wait.as_millis().div_ceil(1000).max(1).to_string(),
                );
                log(&response);
                return self.finish(&response, Some(&plain.method));
            }
            if let Err(response) = server.handler.admit(&plain) {
                if response.status == 401 {
                    if let Some(peer) = self.peer {
                        server.failures.failed(peer);
                    }
                }
                log(&response);
                return self.finish(&response, Some(&plain.method));
            }
            if let Some(peer) = self.peer {
                server.failures.succeeded(peer);
            }

            // The body: only with a Content-Length, within the limit and the deadline.
            if !header("transfer-encoding").is_empty() {
                let response = Response::error(
                    411,
                    "length_required",
                    "send the body with a Content-Length (Transfer-Encoding is not accepted)",
                );
                log(&response);
                return self.finish(&response, Some(&plain.method));
            }
            let lengths = header("content-length");
            let length = match lengths.as_slice() {
                [] => 0,
                [first, rest @ ..] if rest.iter().all(|other| other == first) => {
                    match first.parse::<u64>() {
                        Ok(length) => length,
                        Err(_) => {
                            let response =
                                Response::error(400, "bad_request", "invalid Content-Length");
                            log(&response);
                            return self.finish(&response, Some(&plain.method));
                        }
                    }
                }
                _ => {
                    let response =
                        Response::error(400, "bad_request", "conflicting Content-Length headers");
                    log(&response);
                    return self.finish(&response, Some(&plain.method));
                }
            };
            if length > server.handler.body_limit as u64 {
                let response = server.handler.respond(&plain, true);
                log(&response);
                let linger = length.min(LINGER_TOO_LARGE as u64) as usize;
                return self.finish_lingering(
                    &response,
                    Some(&plain.method),
                    linger,
                    BODY_DEADLINE,
                );
            }
            if !header("expect")
                .iter()
                .any(|v| v.eq_ignore_ascii_case("100-continue"))
                || self.buffer.len() as u64 >= length
            {
                // Nothing to say before the body.
            } else if self
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .is_err()
            {
                return;
            }
            match self.read_body(length as usize, Instant::now() + BODY_DEADLINE) {
                Ok(body) => plain.body = body,
                Err(response) => {
                    log(&response);
                    return self.finish(&response, Some(&plain.method));
                }
            }

            // A panic must neither kill the thread nor reach the client: the client gets a
            // bare 500, and the panic message stays in the server's log.
            let response =
                panic::catch_unwind(AssertUnwindSafe(|| server.handler.respond(&plain, false)))
                    .unwrap_or_else(|_| {
                        Response::error(500, "internal", "internal error: see the server's log")
                    });
            log(&response);
            if !keep_alive {
                return self.finish(&response, Some(&plain.method));
            }
            if self
                .stream
                .write_all(&encode(&response, Some(&plain.method), true))
                .is_err()
            {
                return;
            }
        }
    }

    /// Reads until the end of a head (a blank line), by `deadline`.
    fn read_head(&mut self, deadline: Instant) -> HeadEnd {
        let mut chunk = [0u8; 4096];
        loop {
            let end = self.buffer.windows(4).position(|w| w == b"\r\n\r\n");
            if end.map_or(self.buffer.len(), |end| end + 4) > MAX_HEAD {
                return HeadEnd::Answer(Response::error(
                    431,
                    "head_too_large",
                    &format!("the request line and headers are over {MAX_HEAD} bytes"),
                ));
            }
            if let Some(end) = end {
                return HeadEnd::Complete(end + 4);
            }
            match self.read_some(&mut chunk, deadline) {
                Ok(0) => return HeadEnd::Quiet,
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if is_timeout(&error) && !self.buffer.is_empty() => {
                    return HeadEnd::Answer(Response::error(
                        408,
                        "request_timeout",
                        &format!(
                            "the request's headers did not arrive within {} s",
                            HEAD_DEADLINE.as_secs()
                        ),
                    ))
                }
                Err(_) => return HeadEnd::Quiet,
            }
        }
    }

    /// Reads `length` bytes of body by `deadline`.
    fn read_body(&mut self, length: usize, deadline: Instant) -> Result<Vec<u8>, Response> {
        let mut chunk = [0u8; 4096];
        while self.buffer.len() < length {
            match self.read_some(&mut chunk, deadline) {
                Ok(0) => {
                    return Err(Response::error(
                        400,
                        "bad_request",
                        "the connection closed before the whole body arrived",
                    ))
                }
                Ok(read) => self.buffer.extend_from_slice(&chunk[..read]),
                Err(error) if is_timeout(&error) => {
                    return Err(Response::error(
                        408,
                        "request_timeout",
                        &format!(
                            "the request's body did not arrive within {} s",
                            BODY_DEADLINE.as_secs()
                        ),
                    ))
                }
                Err(error) => {
                    return Err(Response::error(
                        400,
                        "bad_request",
                        &format!("cannot read the request body: {error}"),
                    ))
                }
            }
        }
        Ok(self.buffer.drain(..length).collect())
    }

    /// One read, waiting no later than `deadline` (a timeout error past it).
    fn read_some(&mut self, chunk: &mut [u8], deadline: Instant) -> std::io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        self.stream.read(chunk)
    }

    /// Sends a last answer, then closes: the write side first, then whatever the client is
    /// still sending is read and dropped while it keeps coming (a pause of 250 ms ends it),
    /// up to `linger` bytes or [`BODY_DEADLINE`], so that closing with unread bytes does
    /// not reset the connection before the client has read the answer.
    fn finish(self, response: &Response, method: Option<&str>) {
        self.finish_lingering(response, method, LINGER, BODY_DEADLINE);
    }

    fn finish_lingering(
        mut self,
        response: &Response,
        method: Option<&str>,
        linger: usize,
        at_most: Duration,
    ) {
        if self
            .stream
            .write_all(&encode(response, method, false))
            .is_err()
        {
            return;
        }
        let _ = self.stream.shutdown(Shutdown::Write);
        let until = Instant::now() + at_most;
        let mut chunk = [0u8; 16 * 1024];
        let mut drained = 0;
        while drained < linger {
            let pause = Instant::now() + Duration::from_millis(250);
            match self.read_some(&mut chunk, pause.min(until)) {
                Ok(0) | Err(_) => break,
                Ok(read) => drained += read,
            }
        }
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The response's bytes on the wire.
fn encode(response: &Response, method: Option<&str>, keep_alive: bool) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        response.status,
        reason(response.status),
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in &response.headers {
        if !name.contains(['\r', '\n', ':']) && !value.contains(['\r', '\n']) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if method != Some("HEAD") {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    bytes
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// Wrong tokens per peer address.
#[derive(Default)]
struct Failures {
    peers: Mutex<HashMap<IpAddr, Peer>>,
}

struct Peer {
    count: u32,
    blocked_until: Option<Instant>,
}

impl Failures {
    /// How much longer `peer` is answered 429, if it is.
    fn blocked(&self, peer: IpAddr) -> Option<Duration> {
        let peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        let until = peers.get(&peer)?.blocked_until?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// After [`FREE_FAILURES`], each wrong token blocks the peer for twice as long as the
    /// last: 1 s, 2 s, 4 s, ... [`MAX_BLOCK`].
    fn failed(&self, peer: IpAddr) {
        let now = Instant::now();
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        if peers.len() >= 4096 {
            peers.retain(|_, p| p.blocked_until.is_some_and(|until| until > now));
        }
        let record = peers.entry(peer).or_insert(Peer {
            count: 0,
            blocked_until: None,
        });
        record.count = record.count.saturating_add(1);
        if record.count > FREE_FAILURES {
            let doublings = (record.count - FREE_FAILURES - 1).min(6);
            let block = (Duration::from_secs(1) * (1 << doublings)).min(MAX_BLOCK);
            record.blocked_until = Some(now + block);
        }
    }

    fn succeeded(&self, peer: IpAddr) {
        let mut peers = self.peers.lock().unwrap_or_else(|e| e.into_inner());
        peers.remove(&peer);
    }
}
