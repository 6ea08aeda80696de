//! A run in progress: the locked connection, the settings, and what has been done so far,
//! told to the log and to the caller's observer as it happens.

use std::time::Duration;

use postgres::Client;

use crate::history::{AppliedMigration, Recorder};
use crate::lock::{self, SessionLock};
use crate::migration::Direction;
use crate::settings::Settings;
use crate::Error;

/// What a run did.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// let report = migrator.run(&mut client)?;
/// assert_eq!(report.applied.len(), 10);
/// assert!(report.reverted.is_empty());
/// let report = migrator.down(&mut client, 2)?;
/// assert!(report.applied.is_empty());
/// assert_eq!(report.reverted.iter().map(|m| m.version).collect::<Vec<_>>(), [10, 9]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The migrations applied, in order.
    pub applied: Vec<AppliedReport>,
    /// The migrations reverted (by `down`, `down_to`, `redo`), in order.
    pub reverted: Vec<AppliedReport>,
}

/// One migration applied or reverted.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let report = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
/// let slowest = report.applied.iter().max_by_key(|m| m.duration).expect("ten were applied");
/// println!("slowest: {} {} ({:?})", slowest.version, slowest.name, slowest.duration);
/// assert_eq!(report.applied[0].name, "create_users");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedReport {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// How long its SQL took on the server (for no-transaction migrations, all its statements).
    pub duration: Duration,
}

/// A step finished, or a unit waits to try again, as it happens (see
/// [`crate::Migrator::on_progress`]).
///
/// ```
/// use migrate_runtime::Progress;
/// use std::sync::Mutex;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let seen = Mutex::new(Vec::new());
/// let observe = |progress: Progress<'_>| match progress {
///     Progress::Applied(done) => seen.lock().unwrap().push(format!("applied {}", done.version)),
///     Progress::Reverted(done) => seen.lock().unwrap().push(format!("reverted {}", done.version)),
///     Progress::Waiting(waiting) => eprintln!("waiting: {}", waiting.cause),
///     _ => {}
/// };
/// let migrator = migrate_runtime::Migrator::new(&MIGRATIONS[..2]).on_progress(&observe);
/// migrator.run(&mut client)?;
/// migrator.down(&mut client, 1)?;
/// assert_eq!(*seen.lock().unwrap(), ["applied 1", "applied 2", "reverted 2"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A migration was applied.
    Applied(&'a AppliedReport),
    /// A migration was reverted.
    Reverted(&'a AppliedReport),
    /// A transaction could not get a lock in time (or lost a deadlock) and was rolled back;
    /// it runs again after a pause.
    Waiting(&'a Waiting),
}

/// A unit about to be tried again (see [`Progress::Waiting`]).
///
/// ```
/// # use migrate_runtime::{Progress, Waiting};
/// let print = |progress: Progress<'_>| {
///     if let Progress::Waiting(waiting) = progress {
///         eprintln!("{}: attempt {} in {:?}", waiting.during, waiting.attempt, waiting.pause);
///     }
/// };
/// # let _ = print;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Waiting {
    /// What is waiting, naming the migrations ("applying migration 2 (add_note)").
    pub during: String,
    /// The server's reason ("canceling statement due to lock timeout").
    pub cause: String,
    /// The attempt that comes next (2 for the first retry).
    pub attempt: u32,
    /// The pause before it.
    pub pause: Duration,
}

/// The caller's progress callback; `Debug` so `Migrator` can be printed (and keyed on).
/// `Send + Sync`, so that a `Migrator` can be built once and moved to (or shared with) the
/// thread that runs it.
#[derive(Clone, Copy, Default)]
pub(crate) struct Observer<'o>(pub(crate) Option<&'o (dyn Fn(Progress<'_>) + Send + Sync)>);

impl std::fmt::Debug for Observer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

/// A run holding the migration lock: what the executor works on.
pub(crate) struct Run<'c, 'a> {
    pub(crate) client: SessionLock<'c>,
    pub(crate) settings: &'a Settings,
    report: Report,
    observer: Observer<'a>,
}

impl<'c, 'a> Run<'c, 'a> {
    /// Takes the migration lock (the only place that does), creating the history tables if
    /// needed and reading them under it: another process may have just changed them.
    pub(crate) fn start(
        client: &'c mut Client,
        settings: &'a Settings,
        observer: Observer<'a>,
    ) -> Result<(Self, Vec<AppliedMigration>), Error> {
        let (client, applied) = lock::acquire(
            client,
            &settings.tables,
            settings.lock_scope,
            settings.lock_wait,
        )?;
        let run = Run {
            client,
            settings,
            report: Report::default(),
            observer,
        };
        Ok((run, applied))
    }

    /// The writer of this run's history rows.
    pub(crate) fn recorder(&self) -> Recorder<'a> {
        self.settings.recorder()
    }

    /// `BEGIN`, and behind a pooler the transaction's migration lock.
    pub(crate) fn begin_sql(&self) -> String {
        lock::begin_sql(
            &self.settings.tables,
            self.settings.lock_scope,
            self.settings.lock_wait,
        )
    }

    /// The check that this message runs on the server session holding the migration lock
    /// (empty behind a pooler, where the lock is per transaction).
    pub(crate) fn still_locked_sql(&self) -> String {
        lock::still_held_sql(&self.settings.tables, self.settings.lock_scope)
    }

    /// Records a finished step in the report, and tells the log and the observer.
    pub(crate) fn done(&mut self, done: AppliedReport, direction: Direction) {
        let (verb, list) = match direction {
            Direction::Up => ("applied", &mut self.report.applied),
            Direction::Down => ("reverted", &mut self.report.reverted),
        };
        log::info!(
            "{verb} migration {} ({}) in {} ms",
            done.version,
            done.name,
            done.duration.as_millis()
        );
        list.push(done);
        if let (Some(observer), Some(done)) = (self.observer.0, list.last()) {
            observer(match direction {
                Direction::Up => Progress::Applied(done),
                Direction::Down => Progress::Reverted(done),
            });
        }
    }

    /// Tells the log and the observer that a unit waits to try again, so that no retry is
    /// silent.
    pub(crate) fn waiting(&self, waiting: Waiting) {
        log::info!(
            "{} could not get a lock in time ({}); attempt {} in {} ms",
            waiting.during,
            waiting.cause,
            waiting.attempt,
            waiting.pause.as_millis()
        );
        if let Some(observer) = self.observer.0 {
            observer(Progress::Waiting(&waiting));
        }
    }

    /// What the run did; the lock is released when the run is dropped.
    pub(crate) fn into_report(self) -> Report {
        self.report
    }
}
