//! The connection's state around a failure: rolling back, telling a lost connection from a
//! refused statement, and, behind a pooler, whether another process did the work.

use std::time::{Duration, Instant};

use postgres::Client;

use crate::lock::LockScope;
use crate::migration::Direction;
use crate::plan::Step;
use crate::run::Run;
use crate::terms::MigrationStatus;
use crate::Error;

/// Ends the open transaction, if any. A failure here is only logged: the error that led here
/// is the one the caller reports.
pub(crate) fn rollback(client: &mut Client) {
    if let Err(error) = client.simple_query("ROLLBACK") {
        log::debug!("rolling back: {error}");
    }
}

/// Whether `error` ended the session: the socket closed (or failed: an error that is not the
/// server's answer), or the server said it is ending it (SQLSTATE class 08, or 57P01-57P03:
/// terminated, shutting down, crashed) before closing.
pub(super) fn connection_gone(client: &Client, error: &postgres::Error) -> bool {
    client.is_closed()
        || error.as_db_error().is_none()
        || error.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        })
}

/// After a failure behind a pooler ([`LockScope::Transaction`]): did another process do
/// `step`? Under the session lock nobody else can.
pub(super) fn done_elsewhere(run: &mut Run<'_, '_>, step: Step<'_>) -> Result<bool, Error> {
    if run.settings.lock_scope != LockScope::Transaction {
        return Ok(false);
    }
    let started = Instant::now();
    loop {
        let applied = run
            .settings
            .tables
            .read(&mut run.client)?
            .unwrap_or_default();
        let status = applied
            .iter()
            .find(|row| row.version == step.migration.version())
            .map(|row| row.status);
        // Another live run is in the middle of it (no-transaction): wait, as for the lock.
        if status == Some(MigrationStatus::Running) && started.elapsed() < run.settings.lock_wait {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Ok(match step.direction {
            Direction::Up => status == Some(MigrationStatus::Applied),
            Direction::Down => status.is_none(),
        });
    }
}

/// Writes a failure's history rows. Best effort: the migration's own error is what the
/// caller must see.
pub(super) fn record(run: &mut Run<'_, '_>, version: i64, sql: &str) {
    if let Err(error) = run.client.simple_query(sql) {
        log::warn!("could not record the failure of migration {version}: {error}");
    }
}
