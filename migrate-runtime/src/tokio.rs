//! Running migrations from async code (feature `tokio`): tokio services (axum, actix, tonic)
//! and `#[tokio::test]`.
//!
//! The runner is synchronous, on the blocking `postgres` driver, and that driver owns a small
//! tokio runtime of its own: creating a `postgres::Client` inside an async context panics
//! (`Cannot start a runtime from within a runtime`), and so does dropping one. The functions
//! here keep the client's whole life (connect, run, drop) on tokio's blocking pool
//! (`spawn_blocking`), which exists on the multi-thread and the current-thread runtime alike,
//! and turn every way that can go wrong into an [`Error`], never a panic in the caller.
//!
//! ```no_run
//! static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
//!
//! #[tokio::main]
//! async fn main() -> Result<(), migrate_runtime::Error> {
//!     let database = migrate_runtime::config::ConnectionSettings::from_url(&std::env::var("DATABASE_URL").unwrap())?;
//!     migrate_runtime::tokio::run(migrate_runtime::Migrator::new(MIGRATIONS), database).await?;
//!     // ... build the pool and serve
//!     Ok(())
//! }
//! ```

use postgres::Client;

use crate::config::ConnectionSettings;
use crate::ops::{Plan, Status};
use crate::{Error, Migrator, Readiness, Report};

/// Connects with `connection` and applies what is pending ([`Migrator::run`]), all on tokio's
/// blocking pool; the connection is closed before this returns.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let database = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let report = migrate_runtime::tokio::run(migrate_runtime::Migrator::new(MIGRATIONS), database).await?;
/// println!("applied {}", report.applied.len());
/// assert_eq!(report.applied.len(), 10);
/// # Ok::<(), migrate_runtime::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn run(
    migrator: Migrator<'static>,
    connection: ConnectionSettings,
) -> Result<Report, Error> {
    with_client(connection, move |client| migrator.run(client)).await
}

/// Every migration's state ([`Migrator::status`]), for a readiness check or an admin page.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let database = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// async fn ready(database: migrate_runtime::config::ConnectionSettings) -> Result<bool, migrate_runtime::Error> {
///     let status = migrate_runtime::tokio::status(migrate_runtime::Migrator::new(MIGRATIONS), database).await?;
///     Ok(status.entries.iter().all(|entry| entry.state != migrate_runtime::State::Pending))
/// }
/// # let runtime = tokio::runtime::Runtime::new()?;
/// assert!(!runtime.block_on(ready(database.clone()))?); // nothing applied yet
/// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut test_database.client()?)?;
/// assert!(runtime.block_on(ready(database))?); // after a run
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn status(
    migrator: Migrator<'static>,
    connection: ConnectionSettings,
) -> Result<Status, Error> {
    with_client(connection, move |client| migrator.status(client)).await
}

/// Whether the database is ready for this binary ([`Migrator::check`]): every migration it
/// needs is applied, a database that is ahead (a newer replica migrated it) being fine. For a
/// readiness probe in an async service, during a rolling deploy.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let database = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// # let runtime = tokio::runtime::Runtime::new()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// let readiness = runtime.block_on(migrate_runtime::tokio::check(migrator.clone(), database.clone()))?;
/// assert!(!readiness.is_ready());
/// println!("{} migration(s) missing", readiness.missing.len());
/// runtime.block_on(migrate_runtime::tokio::run(migrator.clone(), database.clone()))?;
/// assert!(runtime.block_on(migrate_runtime::tokio::check(migrator, database))?.is_ready());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn check(
    migrator: Migrator<'static>,
    connection: ConnectionSettings,
) -> Result<Readiness<'static>, Error> {
    with_client(connection, move |client| migrator.check(client)).await
}

/// What [`run`] would do, or why it would refuse ([`Migrator::plan`]), without changing
/// anything.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let database = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let plan = migrate_runtime::tokio::plan(migrate_runtime::Migrator::new(MIGRATIONS), database).await?;
/// println!("{} migration(s) to apply", plan.pending.len());
/// assert_eq!(plan.pending.len(), 10);
/// # Ok::<(), migrate_runtime::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn plan(
    migrator: Migrator<'static>,
    connection: ConnectionSettings,
) -> Result<Plan<'static>, Error> {
    with_client(connection, move |client| migrator.plan(client)).await
}

/// Runs `job` with a new connection on tokio's blocking pool: any other operation of the
/// runner (`down`, `validate`, `history`, `repair`, ...) from async code. The connection is
/// closed before this returns.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let database = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut test_database.client()?)?;
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// let actions = migrate_runtime::tokio::with_client(database, move |client| migrator.history(client)).await?;
/// println!("{} action(s) recorded", actions.len());
/// assert_eq!(actions.len(), 10); // one `apply` each
/// # Ok::<(), migrate_runtime::Error>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn with_client<T, F>(connection: ConnectionSettings, job: F) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&mut Client) -> Result<T, Error> + Send + 'static,
{
    let task = ::tokio::task::spawn_blocking(move || {
        let mut client = connection.connect().map_err(Error::from)?;
        let result = job(&mut client);
        // Closed here, on the blocking thread: dropping the client in async code would panic.
        drop(client);
        result
    });
    match task.await {
        Ok(result) => result,
        Err(failed) => Err(Error::TaskFailed {
            why: if failed.is_panic() {
                "the blocking task running it panicked".to_owned()
            } else {
                "the blocking task running it was cancelled (the runtime is shutting down)"
                    .to_owned()
            },
        }),
    }
}

/// Answers one admin-endpoint request ([`crate::http::Handler::handle`]) on tokio's blocking
/// pool, for an async web framework (axum, actix, ...): the handler's blocking connection never
/// runs on (or is dropped by) a worker thread. `examples/axum_startup.rs` mounts it in axum.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let test_database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let settings = migrate_runtime::config::ConnectionSettings::from_url(&test_database.url())?;
/// # let token = "3f9c0b7d9e1a4c2f8b6d5e4a3c2b1f0e";
/// # let handler = std::sync::Arc::new(migrate_runtime::http::Handler::new(MIGRATIONS, settings, token)?);
/// # let request = migrate_runtime::http::Request {
/// #     method: "GET".to_owned(), path: "/migrations".to_owned(),
/// #     headers: vec![("Authorization".to_owned(), format!("Bearer {token}"))], body: Vec::new(),
/// # };
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let response = migrate_runtime::tokio::handle(handler, request).await;
/// println!("{} {}", response.status, response.body);
/// assert_eq!(response.status, 200);
/// # });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "http")]
pub async fn handle(
    handler: std::sync::Arc<crate::http::Handler<'static>>,
    request: crate::http::Request,
) -> crate::http::Response {
    match ::tokio::task::spawn_blocking(move || handler.handle(&request)).await {
        Ok(response) => response,
        Err(_) => crate::http::Response::error(
            500,
            "task_failed",
            "the request's blocking task panicked or was cancelled",
        ),
    }
}
