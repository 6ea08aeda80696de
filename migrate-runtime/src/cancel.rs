//! Cancelling the statement a client is running, from another thread: what a signal handler
//! needs so that Ctrl-C or a SIGTERM does not leave the session waiting in the server.

use postgres::{CancelToken, Client};

use crate::config::Tls;

/// Cancels whatever statement the client it was made from is running, from any thread (a
/// signal handler's, a watchdog's): it sends PostgreSQL's cancel request over a new connection
/// to the same server, as `pg_cancel_backend` would.
///
/// Stopping the process alone is not enough: a backend waiting for a lock (an `ALTER TABLE`
/// behind a long transaction) does not notice that its client went away, stays in the lock
/// queue, and its statement runs and commits once the lock is granted. A cancel makes the
/// statement fail at once with SQLSTATE 57014 (`query_canceled`); the runner then rolls the
/// migration back and [`Migrator::run`](crate::Migrator::run) returns
/// [`Error::MigrationFailed`](crate::Error::MigrationFailed) with that SQLSTATE. A cancel that
/// arrives while nothing runs (between two statements) does nothing, so a handler should send
/// it again while the run goes on, and stop the process if the run has not ended after a
/// while, as the `migrate` command line does (again every second; exit 5 s after the signal).
///
/// Make it with [`ConnectionSettings::cancel_handle`](crate::config::ConnectionSettings::cancel_handle)
/// (the same TLS as the connection) or, for a connection made without TLS, [`CancelHandle::new`].
///
/// ```
/// # #[cfg(feature = "testing")] {
/// use std::time::Duration;
///
/// let server = migrate_runtime::testing::TestServer::shared();
/// let mut client = server.connect("postgres").unwrap();
/// let cancel = migrate_runtime::CancelHandle::new(&client);
/// // In an application this is the signal handler's thread (see below).
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(300));
///     cancel.cancel()
/// });
/// let error = client.batch_execute("SELECT pg_sleep(60)").unwrap_err();
/// assert_eq!(error.code(), Some(&postgres::error::SqlState::QUERY_CANCELED));
/// # }
/// ```
///
/// With the `signal-hook` crate, on SIGINT or SIGTERM:
///
/// ```no_run
/// use migrate_runtime::config::ConnectionSettings;
/// use signal_hook::consts::{SIGINT, SIGTERM};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let settings = ConnectionSettings::from_env(None)?.expect("set DATABASE_URL");
/// let mut client = settings.connect()?;
/// let cancel = settings.cancel_handle(&client)?;
/// let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
/// std::thread::spawn(move || {
///     if let Some(signal) = signals.forever().next() {
///         // The running statement fails, its migration is rolled back, and `run` returns.
///         // Sent again a few times, in case it arrived between two statements; then stop.
///         for _ in 0..5 {
///             if let Err(error) = cancel.cancel() {
///                 log::warn!("could not cancel the running statement: {error}");
///             }
///             std::thread::sleep(std::time::Duration::from_secs(1));
///         }
///         std::process::exit(128 + signal);
///     }
/// });
/// migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct CancelHandle {
    token: CancelToken,
    tls: Tls,
}

impl CancelHandle {
    /// A handle that sends the cancel request without TLS, for a client connected without TLS
    /// (or with `sslmode=prefer` to a server that accepts a plain cancel request, as
    /// PostgreSQL does).
    ///
    /// ```
    /// # let client = migrate_runtime::testing::TestServer::shared().connect("postgres")?;
    /// let cancel = migrate_runtime::CancelHandle::new(&client);
    /// // Nothing is running: the request is sent, and does nothing.
    /// assert!(cancel.cancel().is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(client: &Client) -> CancelHandle {
        CancelHandle {
            token: client.cancel_token(),
            tls: Tls::Off,
        }
    }

    pub(crate) fn with_tls(client: &Client, tls: Tls) -> CancelHandle {
        CancelHandle {
            token: client.cancel_token(),
            tls,
        }
    }

    /// Asks the server to cancel the statement running now, if any. It opens a connection
    /// (bounded by the client's `connect_timeout`, 10 s by default with
    /// [`ConnectionSettings`](crate::config::ConnectionSettings)) and returns once the request
    /// is sent; the statement fails shortly after. Safe to call from any thread, any number
    /// of times.
    ///
    /// ```
    /// # let mut client = migrate_runtime::testing::TestServer::shared().connect("postgres")?;
    /// let cancel = migrate_runtime::CancelHandle::new(&client);
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(300));
    ///     if let Err(error) = cancel.cancel() {
    ///         log::warn!("could not cancel the running statement: {error}");
    ///     }
    /// });
    /// let error = client.batch_execute("SELECT pg_sleep(60)").unwrap_err();
    /// assert_eq!(error.code(), Some(&postgres::error::SqlState::QUERY_CANCELED));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn cancel(&self) -> Result<(), postgres::Error> {
        self.tls.cancel(&self.token)
    }
}

impl std::fmt::Debug for CancelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelHandle").finish_non_exhaustive()
    }
}
