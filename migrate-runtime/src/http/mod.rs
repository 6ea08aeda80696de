//! The admin HTTP endpoint: a [`Handler`] any web framework can call, and [`AdminServer`]
//! (`migrate serve`), with deadlines, a connection cap and a per-peer failure delay.
//!
//! Routes (under an optional prefix, see [`Handler::mount`]):
//!
//! | request | answer |
//! |---|---|
//! | `GET /migrations` | the status document of `migrate status --json` |
//! | `POST /migrations` `{"dryRun": true}` | the plan with each file's SQL (`up --dry-run --json`) |
//! | `POST /migrations` `{"dryRun": true, "execute": true}` | run inside a transaction that is rolled back (`up --dry-run --execute --json`) |
//! | `POST /migrations` `{"dryRun": false}` | apply what is pending (`up --json`) |
//! | `POST /migrations` `{"dryRun": false, "phase": "post-deploy"}` | apply the post-deploy migrations too, after a rollout (`up --phase post-deploy --json`) |
//! | `GET /migrations/ready` | 200 when every migration this binary needs is applied (a database ahead is fine), 503 otherwise, with what is missing (`check --json`): a readiness probe |
//! | `GET /migrations/history` | the action log (`history --json`) |
//!
//! Every request needs `Authorization: Bearer <token>`; the endpoint is off in production.
//!
//! ```no_run
//! use migrate_runtime::config::ConnectionSettings;
//! use migrate_runtime::http::{Handler, Request};
//!
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! let settings = ConnectionSettings::from_env(None)?.expect("set DATABASE_URL");
//! let token = std::env::var("INTERNAL_ADMIN_TOKEN")?;
//! let handler = Handler::new(MIGRATIONS, settings, &token)?.mount("/api");
//! // In the web framework's route for /api/migrations and /api/migrations/history:
//! let response = handler.handle(&Request {
//!     method: "GET".to_owned(),
//!     path: "/api/migrations".to_owned(),
//!     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
//!     body: Vec::new(),
//! });
//! assert_eq!(response.status, 200);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod serve;

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{ConfigError, ConnectionSettings};
use crate::history::HistoryTables;
use crate::settings::Settings;
use crate::shapes;
use crate::{Error, LockScope, Migration, Migrator, Phase, Progress};

pub use serve::{
    AdminServer, ServeError, BODY_DEADLINE, FREE_FAILURES, HEAD_DEADLINE, MAX_CONNECTIONS,
};

/// The shortest admin token accepted, in characters.
pub const MIN_TOKEN_LENGTH: usize = 32;

/// Why [`Handler::new`] refused a token.
///
/// ```
/// use migrate_runtime::http::TokenError;
///
/// let message = TokenError::TooShort { length: 1 }.to_string();
/// assert!(message.contains("at least 32"), "{message}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token (INTERNAL_ADMIN_TOKEN unset or empty).
    #[error("error: no admin token: set INTERNAL_ADMIN_TOKEN to a long random secret (at least 32 characters)\n   = help: clients send it as `Authorization: Bearer <token>`; make one with `openssl rand -hex 32`")]
    Missing,
    /// A token shorter than [`MIN_TOKEN_LENGTH`] characters: guessable.
    #[error("error: the admin token (INTERNAL_ADMIN_TOKEN) must be at least 32 characters long; it has {length}\n   = help: make one with `openssl rand -hex 32`")]
    TooShort {
        /// Its length in characters.
        length: usize,
    },
}

/// The largest request body read, by default (64 KiB); a larger one is answered 413.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// An HTTP request, in plain types, as the web framework received it.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
/// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
/// let request = migrate_runtime::http::Request {
///     method: "POST".to_owned(),
///     path: "/migrations".to_owned(),
///     headers: vec![
///         ("Authorization".to_owned(), "Bearer 3f9c...".to_owned()),
///         ("Content-Type".to_owned(), "application/json".to_owned()),
///     ],
///     body: br#"{"dryRun": true}"#.to_vec(),
/// };
/// // Not the handler's token: refused before any database is reached.
/// assert_eq!(handler.handle(&request).status, 401);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, with or without a query string (which is ignored).
    pub path: String,
    /// Header names (any case) and values.
    pub headers: Vec<(String, String)>,
    /// The body as received.
    pub body: Vec<u8>,
}

/// The answer: a status, headers, and a JSON document.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
/// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
/// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
/// let request = migrate_runtime::http::Request {
///     method: "GET".to_owned(),
///     path: "/migrations".to_owned(),
///     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
///     body: Vec::new(),
/// };
/// let response = handler.handle(&request);
/// let document: serde_json::Value = serde_json::from_str(&response.body)?;
/// println!("{} {}", response.status, document);
/// assert_eq!(response.status, 200);
/// assert_eq!(document["pending"], 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// Headers to send (`Content-Type: application/json` among them).
    pub headers: Vec<(String, String)>,
    /// A JSON document: the command line's shape on success, `{"error": {...}}` otherwise.
    pub body: String,
}

impl Response {
    fn json(status: u16, document: &Value) -> Response {
        Response {
            status,
            headers: vec![
                ("Content-Type".to_owned(), "application/json".to_owned()),
                ("Cache-Control".to_owned(), "no-store".to_owned()),
            ],
            body: format!("{document:#}"),
        }
    }

    pub(crate) fn error(status: u16, kind: &str, message: &str) -> Response {
        Response::json(
            status,
            &json!({"error": shapes::error_body(kind, message, None)}),
        )
    }

    fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// Answers the admin endpoint's requests over a set of migrations: checks the bearer token,
/// refuses in production, and runs each request on its own connection. It is `Sync`, so one
/// handler serves every thread of a web server.
///
/// ```no_run
/// use migrate_runtime::config::ConnectionSettings;
/// use migrate_runtime::http::Handler;
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// let settings = ConnectionSettings::from_env(None)?.expect("set DATABASE_URL");
/// let handler = Handler::new(MIGRATIONS, settings, &std::env::var("INTERNAL_ADMIN_TOKEN")?)?
///     .lock_wait(std::time::Duration::from_secs(10));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Handler<'m> {
    migrations: Cow<'m, [Migration]>,
    connection: ConnectionSettings,
    /// What each request's [`Migrator`] runs with (the migrations may be owned here, so the
    /// handler keeps the settings and lends the migrations to a migrator per request).
    run: Settings,
    /// The token's SHA-256: comparing digests takes the same time whatever the lengths.
    token_digest: [u8; 32],
    body_limit: usize,
    prefix: String,
}

/// `POST /migrations`: the seed's `{"dryRun": ...}`, plus `execute` for a rehearsal.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PostBody {
    dry_run: bool,
    #[serde(default)]
    execute: bool,
    /// `pre-deploy` (the default) or `post-deploy`.
    #[serde(default)]
    phase: Option<String>,
}

impl<'m> Handler<'m> {
    /// A handler that accepts `Authorization: Bearer <token>`. A token shorter than
    /// [`MIN_TOKEN_LENGTH`] characters (surrounding spaces not counted) is refused: make one
    /// with `openssl rand -hex 32`.
    /// `migrations` is the embedded `&'static` set, or an owned `Vec` (read at run time).
    ///
    /// The environment starts as `MIGRATE_ENV`'s value, so an application that never calls
    /// [`environment`](Self::environment) still has the endpoint off in production. The other
    /// settings are [`Migrator`]'s defaults.
    ///
    /// ```
    /// use migrate_runtime::config::ConnectionSettings;
    /// use migrate_runtime::http::{Handler, TokenError};
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// let settings = ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?
    ///     .expect("a URL was given");
    /// let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// let handler = Handler::new(MIGRATIONS, settings.clone(), token)?;
    /// # let _ = handler;
    /// // A short token is refused.
    /// let refused = Handler::new(MIGRATIONS, settings, "secret").err();
    /// assert_eq!(refused, Some(TokenError::TooShort { length: 6 }));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(
        migrations: impl Into<Cow<'m, [Migration]>>,
        settings: ConnectionSettings,
        token: &str,
    ) -> Result<Self, TokenError> {
        let token = token.trim();
        let length = token.chars().count();
        if length == 0 {
            return Err(TokenError::Missing);
        }
        if length < MIN_TOKEN_LENGTH {
            return Err(TokenError::TooShort { length });
        }
        Ok(Handler {
            migrations: migrations.into(),
            connection: settings,
            run: Settings {
                environment: std::env::var("MIGRATE_ENV")
                    .ok()
                    .filter(|value| !value.is_empty()),
                ..Settings::default()
            },
            token_digest: Sha256::digest(token.as_bytes()).into(),
            body_limit: DEFAULT_BODY_LIMIT,
            prefix: String::new(),
        })
    }

    /// The environment (`None`: none). In `production` every request is answered 403 and
    /// [`AdminServer`] refuses to start; elsewhere it selects `-- migrate:env` migrations and
    /// is recorded in the history, as [`Migrator::environment`] does.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.environment(Some("staging"));
    /// // (`request` builds a `Request` with the bearer token.)
    /// handler.handle(&request("POST", "/migrations", r#"{"dryRun": false}"#));
    /// let history = handler.handle(&request("GET", "/migrations/history", ""));
    /// let history: serde_json::Value = serde_json::from_str(&history.body)?;
    /// assert_eq!(history["actions"][0]["environment"], "staging");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn environment(mut self, environment: Option<&str>) -> Self {
        self.run.environment = environment.map(str::to_owned);
        self
    }

    /// Where the history is kept (see [`Migrator::history_table`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.history_table("public", "app_migrations");
    /// // (`request` builds a `Request` with the bearer token.)
    /// handler.handle(&request("POST", "/migrations", r#"{"dryRun": false}"#));
    /// let mut client = database.client()?;
    /// let recorded: i64 = client.query_one("SELECT count(*) FROM public.app_migrations", &[])?.get(0);
    /// assert_eq!(recorded, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history_table(mut self, schema: &str, table: &str) -> Self {
        self.run.tables = HistoryTables::new(schema, table);
        self
    }

    /// How long an apply waits for another run's lock before answering 409 with the holder
    /// (see [`Migrator::lock_wait`]; default 60 s).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.lock_wait(std::time::Duration::ZERO); // 409 at once
    /// // Nobody else holds the lock: the apply goes ahead.
    /// let response = handler.handle(&request("POST", "/migrations", r#"{"dryRun": false}"#));
    /// assert_eq!(response.status, 200);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_wait(mut self, wait: Duration) -> Self {
        self.run.lock_wait = wait;
        self
    }

    /// How the lock is held (see [`Migrator::lock_scope`]).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(&MIGRATIONS[..9], settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// // Migrations 1 to 9 (all in transactions), behind a pooler in transaction mode.
    /// let handler = handler.lock_scope(migrate_runtime::LockScope::Transaction);
    /// let response = handler.handle(&request("POST", "/migrations", r#"{"dryRun": false}"#));
    /// assert_eq!(response.status, 200, "{}", response.body);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_scope(mut self, scope: LockScope) -> Self {
        self.run.lock_scope = scope;
        self
    }

    /// Who the history records (see [`Migrator::applied_by`]; default the database user).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.applied_by("admin-endpoint");
    /// // (`request` builds a `Request` with the bearer token.)
    /// handler.handle(&request("POST", "/migrations", r#"{"dryRun": false}"#));
    /// let history = handler.handle(&request("GET", "/migrations/history", ""));
    /// let history: serde_json::Value = serde_json::from_str(&history.body)?;
    /// assert_eq!(history["actions"][0]["executed_by"], "admin-endpoint");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn applied_by(mut self, who: &str) -> Self {
        self.run.applied_by = Some(who.to_owned());
        self
    }

    /// The largest body accepted, in bytes ([`DEFAULT_BODY_LIMIT`] by default); a larger one
    /// is answered 413.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.body_limit(4096);
    /// // (`request` builds a `Request` with the bearer token.)
    /// let response = handler.handle(&request("POST", "/migrations", &" ".repeat(5000)));
    /// assert_eq!(response.status, 413); // refused before any database is reached
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Serves the routes under `prefix` (e.g. `/api` for `/api/migrations`).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?;
    /// # let request = |method: &str, path: &str, body: &str| migrate_runtime::http::Request {
    /// #     method: method.to_owned(), path: path.to_owned(),
    /// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))],
    /// #     body: body.as_bytes().to_vec(),
    /// # };
    /// let handler = handler.mount("/api");
    /// // (`request` builds a `Request` with the bearer token.)
    /// assert_eq!(handler.handle(&request("GET", "/api/migrations", "")).status, 200);
    /// assert_eq!(handler.handle(&request("GET", "/migrations", "")).status, 404);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn mount(mut self, prefix: &str) -> Self {
        self.prefix = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// Whether the environment is production (the endpoint is then off).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some("postgresql://app@db.internal/app"), |_| None)?.expect("a URL");
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
    /// let handler = handler.environment(Some("Production"));
    /// assert!(handler.is_production());
    /// assert!(!handler.environment(Some("staging")).is_production());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_production(&self) -> bool {
        self.run
            .environment
            .as_deref()
            .is_some_and(|environment| environment.eq_ignore_ascii_case("production"))
    }

    /// Answers one request. Production comes first (403), then the token (401, the same
    /// answer whether it is missing or wrong), then the body's size (413), then the route.
    /// Errors are `{"error": {"kind", "message", ...}}` documents; none holds a password.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let settings = migrate_runtime::config::ConnectionSettings::resolve(Some(&database.url()), |_| None)?.expect("a URL");
    /// # let handler = migrate_runtime::http::Handler::new(MIGRATIONS, settings, "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e")?;
    /// use migrate_runtime::http::Request;
    ///
    /// let response = handler.handle(&Request {
    ///     method: "POST".to_owned(),
    ///     path: "/migrations".to_owned(),
    ///     headers: vec![("authorization".to_owned(), "Bearer 3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e".to_owned())],
    ///     body: br#"{"dryRun": false}"#.to_vec(),
    /// });
    /// let document: serde_json::Value = serde_json::from_str(&response.body)?;
    /// assert_eq!(response.status, 200);
    /// assert_eq!(document["applied"].as_array().map(Vec::len), Some(10));
    ///
    /// // A wrong token: 401, and nothing runs.
    /// let refused = handler.handle(&Request {
    ///     headers: vec![("authorization".to_owned(), "Bearer guess".to_owned())],
    ///     ..Request::default()
    /// });
    /// assert_eq!(refused.status, 401);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn handle(&self, request: &Request) -> Response {
        self.respond(request, request.body.len() > self.body_limit)
    }

    /// [`handle`](Self::handle), for a server that stopped reading a body once it knew it was
    /// too large.
    fn respond(&self, request: &Request, body_too_large: bool) -> Response {
        if let Err(refusal) = self.admit(request) {
            return refusal;
        }
        if body_too_large {
            return Response::error(
                413,
                "body_too_large",
                &format!("the request body is over {} bytes", self.body_limit),
            );
        }
        let path = request.path.split(['?', '#']).next().unwrap_or_default();
        let route = path.strip_prefix(self.prefix.as_str()).unwrap_or_default();
        match (route, request.method.as_str()) {
            ("/migrations", "GET") => self.with_database(|migrator, client| {
                Ok(Response::json(
                    200,
                    &shapes::status(&migrator.status(client)?),
                ))
            }),
            ("/migrations", "POST") => self.post(&request.body),
            ("/migrations/ready", "GET") => self.with_database(|migrator, client| {
                let readiness = migrator.check(client)?;
                // 503 until ready, so that a probe (or `curl --fail`) needs no body parsing.
                let status = if readiness.is_ready() { 200 } else { 503 };
                Ok(Response::json(status, &shapes::readiness(&readiness)))
            }),
            ("/migrations/history", "GET") => self.with_database(|migrator, client| {
                Ok(Response::json(
                    200,
                    &shapes::history(&migrator.history(client)?),
                ))
            }),
            ("/migrations", _) => method_not_allowed("GET, POST"),
            ("/migrations/history" | "/migrations/ready", _) => method_not_allowed("GET"),
            _ => Response::error(
                404,
                "not_found",
                "no such route: use /migrations, /migrations/ready or /migrations/history",
            ),
        }
    }

    /// Production (403), then the token (401): what can be decided from the headers alone,
    /// before a server reads the body.
    fn admit(&self, request: &Request) -> Result<(), Response> {
        if self.is_production() {
            return Err(Response::error(
                403,
                "disabled_in_production",
                "the migration endpoint is disabled in production: run migrations from the deployment pipeline",
            ));
        }
        if !self.authorized(request) {
            return Err(Response::error(
                401,
                "unauthorized",
                "a valid `Authorization: Bearer <token>` header is required",
            )
            .with_header("WWW-Authenticate", "Bearer"));
        }
        Ok(())
    }

    fn authorized(&self, request: &Request) -> bool {
        let presented = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, value)| value.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty());
        let Some(presented) = presented else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        bool::from(digest.ct_eq(&self.token_digest))
    }

    fn post(&self, body: &[u8]) -> Response {
        let body: PostBody = match serde_json::from_slice(body) {
            Ok(body) => body,
            Err(error) => {
                return Response::error(
                    400,
                    "bad_request",
                    &format!(
                        "the body must be {{\"dryRun\": true}} (optionally with \"execute\": true) or {{\"dryRun\": false}}, optionally with \"phase\": \"post-deploy\": {error}"
                    ),
                )
            }
        };
        let phase = match body.phase.as_deref().map(|text| (text, Phase::parse(text))) {
            None => Phase::PreDeploy,
            Some((_, Some(phase))) => phase,
            Some((text, None)) => {
                return Response::error(
                    400,
                    "bad_request",
                    &format!("\"phase\" is \"pre-deploy\" or \"post-deploy\", not {text:?}"),
                )
            }
        };
        if body.execute && !body.dry_run {
            return Response::error(
                400,
                "bad_request",
                "\"execute\": true rehearses a dry run; it needs \"dryRun\": true",
            );
        }
        match (body.dry_run, body.execute) {
            (true, true) => self.with_database(|migrator, client| {
                let outcomes = migrator.clone().phase(phase).rehearse(client)?;
                let mut document = shapes::rehearsal(&outcomes);
                let failure = outcomes.iter().find_map(|(_, outcome)| match outcome {
                    crate::Rehearsed::WouldFail(failure) => Some(failure),
                    _ => None,
                });
                // A rehearsal that found a failure answers 422, so `curl --fail` stops a script.
                Ok(match failure {
                    Some(failure) => {
                        let error = Error::MigrationFailed(failure.clone());
                        let body = shapes::error_body(
                            crate::outcome::of(&error).kind,
                            &error.render().to_string(),
                            Some(&error),
                        );
                        shapes::merge(&mut document, json!({ "error": body }));
                        Response::json(422, &document)
                    }
                    None => Response::json(200, &document),
                })
            }),
            (true, false) => self.with_database(|migrator, client| {
                let plan = migrator.clone().phase(phase).validate(client)?;
                Ok(Response::json(200, &shapes::plan(&plan, true)))
            }),
            (false, _) => self.apply(phase),
        }
    }

    /// Applies the migrations of `phase`, saying in an error what was applied before it.
    fn apply(&self, phase: Phase) -> Response {
        let done = Mutex::new(Vec::new());
        let observe = |progress: Progress<'_>| {
            done.lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(shapes::progress(progress))
        };
        let mut client = match self.connection.connect() {
            Ok(client) => client,
            Err(error) => return connection_failure(&error),
        };
        let migrator = self.migrator().phase(phase).on_progress(&observe);
        match migrator.run(&mut client) {
            Ok(report) => Response::json(200, &shapes::report(&report)),
            Err(error) => {
                let (status, mut body) = failure_body(&error);
                shapes::merge(
                    &mut body,
                    json!({"done_before": *done.lock().unwrap_or_else(|e| e.into_inner())}),
                );
                Response::json(status, &json!({ "error": body }))
            }
        }
    }

    fn with_database(
        &self,
        work: impl FnOnce(&Migrator<'_>, &mut postgres::Client) -> Result<Response, Error>,
    ) -> Response {
        let mut client = match self.connection.connect() {
            Ok(client) => client,
            Err(error) => return connection_failure(&error),
        };
        work(&self.migrator(), &mut client).unwrap_or_else(|error| runtime_failure(&error))
    }

    fn migrator(&self) -> Migrator<'_> {
        Migrator {
            migrations: &self.migrations,
            settings: self.run.clone(),
            observer: Default::default(),
        }
    }
}

fn method_not_allowed(allow: &str) -> Response {
    Response::error(
        405,
        "method_not_allowed",
        &format!("this route answers {allow}"),
    )
    .with_header("Allow", allow)
}

/// The database could not be reached: 503. The message names the server without a password.
fn connection_failure(error: &ConfigError) -> Response {
    let message = error.to_string();
    let message = message.strip_prefix("error: ").unwrap_or(&message);
    Response::error(503, "connection", message)
}

/// A runtime error as its `{"error": ...}` document, with a status that says whose move it is:
/// 409 when the database's state stands in the way (another run holds the lock, the history
/// disagrees with the binary), 422 when a migration's SQL failed, 503 when the database went
/// away.
fn runtime_failure(error: &Error) -> Response {
    let (status, body) = failure_body(error);
    Response::json(status, &json!({ "error": body }))
}

/// The status and the inside of `{"error": ...}` for a runtime error.
fn failure_body(error: &Error) -> (u16, Value) {
    let outcome = crate::outcome::of(error);
    (
        outcome.http_status,
        shapes::error_body(outcome.kind, &error.render().to_string(), Some(error)),
    )
}
