//! `migrate serve`: the [`Handler`] behind a small synchronous HTTP server (`tiny_http`).
//!
//! `tiny_http` 0.12 drains an unread request body through one buffer as large as the *declared*
//! `Content-Length`, so a request claiming more bytes than the machine can allocate would abort
//! the process. Such a request is answered (413) and its connection is then abandoned rather
//! than drained (see [`ABANDON_ABOVE`]). Like any `tiny_http` server it has no read timeouts,
//! so listen on loopback or a private interface (the default is `127.0.0.1`).

use std::io::Read;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::time::Instant;

use super::{Handler, Request, Response};

/// Requests answered at once; more wait in the server's queue. Two applies at the same time
/// are serialised by the migration lock, so a few workers are enough, and a slow apply never
/// holds up a status request.
const WORKERS: usize = 4;

/// A request declaring a larger body than this gets its 413 and is then never drained:
/// `tiny_http` would allocate the declared size at once to drain it. Its connection stays
/// open until the process ends, the same cost as a client that stops sending; bodies up to
/// this size are drained as usual and the connection is reused.
const ABANDON_ABOVE: usize = 64 << 20;

/// Why the server did not start.
///
/// ```no_run
/// # let handler: migrate_runtime::http::Handler<'static> = unimplemented!();
/// use migrate_runtime::http::{AdminServer, ServeError};
///
/// match AdminServer::bind("127.0.0.1:9191", &handler) {
///     Ok(server) => server.run(),
///     Err(ServeError::Production) => log::info!("no admin endpoint in production"),
///     Err(other) => log::error!("{other}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The environment is production, where the endpoint is off.
    #[error("error: the migration endpoint is disabled in production (MIGRATE_ENV=production)\n   = help: run migrations from the deployment pipeline: `migrate up --dry-run --execute`, then `migrate up`")]
    Production,
    /// The handler has no token, so no request could ever be authorised.
    #[error("error: no admin token: set INTERNAL_ADMIN_TOKEN to a long random secret\n   = help: clients send it as `Authorization: Bearer <token>`; make one with `openssl rand -hex 32`")]
    NoToken,
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
/// ```no_run
/// # let handler: migrate_runtime::http::Handler<'static> = unimplemented!();
/// let server = migrate_runtime::http::AdminServer::bind("127.0.0.1:0", &handler)?;
/// println!("listening on {}", server.local_addr());
/// server.run(); // until the process ends
/// # Ok::<(), migrate_runtime::http::ServeError>(())
/// ```
pub struct AdminServer<'h, 'm> {
    server: tiny_http::Server,
    handler: &'h Handler<'m>,
    address: SocketAddr,
}

impl<'h, 'm> AdminServer<'h, 'm> {
    /// Listens on `address` (`127.0.0.1:0` picks a free port), after refusing to serve in
    /// production or without a token.
    ///
    /// ```no_run
    /// # let handler: migrate_runtime::http::Handler<'static> = unimplemented!();
    /// let server = migrate_runtime::http::AdminServer::bind("127.0.0.1:9191", &handler)?;
    /// # Ok::<(), migrate_runtime::http::ServeError>(())
    /// ```
    pub fn bind(address: &str, handler: &'h Handler<'m>) -> Result<Self, ServeError> {
        if handler.is_production() {
            return Err(ServeError::Production);
        }
        if !handler.has_token {
            return Err(ServeError::NoToken);
        }
        let bind_error = |reason: String| ServeError::Bind {
            address: address.to_owned(),
            reason,
        };
        let server = tiny_http::Server::http(address).map_err(|e| bind_error(e.to_string()))?;
        let address = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| bind_error("not an IP address".to_owned()))?;
        Ok(AdminServer {
            server,
            handler,
            address,
        })
    }

    /// The address it listens on (with the port chosen when `:0` was asked for).
    ///
    /// ```no_run
    /// # let server: migrate_runtime::http::AdminServer<'static, 'static> = unimplemented!();
    /// let port = server.local_addr().port();
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Answers requests until the listener fails, on a few threads. Each request is logged
    /// (`log` crate, `info`: method, path, status and time; never a header or the body).
    ///
    /// ```no_run
    /// # let server: migrate_runtime::http::AdminServer<'static, 'static> = unimplemented!();
    /// server.run();
    /// ```
    pub fn run(&self) {
        std::thread::scope(|scope| {
            for _ in 0..WORKERS {
                scope.spawn(|| {
                    while let Ok(request) = self.server.recv() {
                        self.answer(request);
                    }
                });
            }
        });
    }

    fn answer(&self, mut request: tiny_http::Request) {
        let started = Instant::now();
        let limit = self.handler.body_limit;
        let declared_too_large = request.body_length().is_some_and(|length| length > limit);
        // A body is read only up to one byte past the limit: enough to know it is too large.
        let mut body = Vec::new();
        let read = if declared_too_large {
            Ok(0)
        } else {
            request
                .as_reader()
                .take(limit as u64 + 1)
                .read_to_end(&mut body)
        };
        let plain = Request {
            method: request.method().as_str().to_owned(),
            path: request.url().to_owned(),
            headers: request
                .headers()
                .iter()
                .map(|h| {
                    (
                        h.field.as_str().as_str().to_owned(),
                        h.value.as_str().to_owned(),
                    )
                })
                .collect(),
            body,
        };
        let too_large = declared_too_large || plain.body.len() > limit;
        let response = match read {
            Err(error) => Response::error(
                400,
                "bad_request",
                &format!("cannot read the request body: {error}"),
            ),
            // A panic must neither kill the worker nor reach the client: the client gets a
            // bare 500, and the panic message stays in the server's log.
            Ok(_) => {
                panic::catch_unwind(AssertUnwindSafe(|| self.handler.respond(&plain, too_large)))
                    .unwrap_or_else(|_| {
                        Response::error(500, "internal", "internal error: see the server's log")
                    })
            }
        };
        log::info!(
            "{} {} -> {} in {} ms",
            plain.method,
            plain.path,
            response.status,
            started.elapsed().as_millis()
        );
        let mut reply = tiny_http::Response::from_data(response.body.into_bytes())
            .with_status_code(response.status);
        for (name, value) in &response.headers {
            if let Ok(header) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
                reply.add_header(header);
            }
        }
        if request
            .body_length()
            .is_some_and(|length| length > ABANDON_ABOVE)
        {
            // Answer, then keep the connection's body reader from ever being dropped (its drop
            // is the allocation). `upgrade` writes the response and hands the socket over.
            std::mem::forget(request.upgrade("close", reply));
        } else if let Err(error) = request.respond(reply) {
            log::debug!("could not send the response: {error}");
        }
    }
}
