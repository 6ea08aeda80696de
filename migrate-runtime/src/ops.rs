//! Everything an operator does besides applying what is pending: reverting (`down`,
//! `down_to`, `redo`), looking (`plan`, `validate`, `status`, `history`), and rehearsing a run
//! inside a transaction that is rolled back.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::Client;

use crate::execute;
use crate::history::{Action, AppliedMigration};
use crate::lock;
use crate::plan::{self, Step};
use crate::run::{Report, Run};
use crate::terms::MigrationStatus;
use crate::{Error, Migration, MigrationFailure, Migrator};

/// What [`Migrator::plan`] found: what a run would apply, or why it would refuse.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # migrate_runtime::Migrator::new(&MIGRATIONS[6..7]).run(&mut client)?;
/// // Migration 7 was applied first: applying 1 to 6 now would be out of order.
/// let plan = migrate_runtime::Migrator::new(MIGRATIONS).plan(&mut client)?;
/// match &plan.refusal {
///     Some(refusal) => eprintln!("a run would refuse: {refusal}"),
///     None => println!("{} to apply", plan.pending.len()),
/// }
/// assert!(plan.refusal.is_some());
/// assert!(plan.pending.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct Plan<'m> {
    /// The migrations a run would apply, in order (empty when it would refuse).
    pub pending: Vec<&'m Migration>,
    /// Pending migrations this run's phase leaves for the post-deploy phase: from the first
    /// pending post-deploy migration on (see [`crate::Migrator::phase`]).
    pub waiting: Vec<&'m Migration>,
    /// Why a run would refuse to start, if it would.
    pub refusal: Option<Error>,
}

/// Where one migration stands in [`Migrator::status`].
///
/// ```
/// use migrate_runtime::State;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
/// // An older binary, which has only the first five migrations.
/// let status = migrate_runtime::Migrator::new(&MIGRATIONS[..5]).status(&mut client)?;
/// let newer: Vec<i64> = status.entries.iter()
///     .filter(|entry| entry.state == State::MissingFromBinary)
///     .map(|entry| entry.version)
///     .collect();
/// assert_eq!(newer, [6, 7, 8, 9, 10]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum State {
    /// Applied, and the binary's file matches.
    Applied,
    /// Not applied yet; the next run applies it.
    Pending,
    /// A no-transaction migration that failed part-way.
    Failed,
    /// A no-transaction migration marked running (live, or interrupted).
    Running,
    /// Applied, but this binary does not contain it (the binary is older).
    MissingFromBinary,
    /// Applied, but the binary's file differs from what was applied.
    ChecksumDiffers,
    /// Applied under another name: this binary's migration of that version is a different one.
    VersionConflict,
    /// Not applied, with a lower version than one that is: a run refuses it unless allowed.
    OutOfOrder,
    /// Restricted by `-- migrate:env` to other environments.
    FilteredByEnvironment,
}

impl State {
    /// The lowercase name used in tables and JSON (`applied`, `pending`, `missing_from_binary`, ...).
    ///
    /// ```
    /// assert_eq!(migrate_runtime::State::OutOfOrder.as_str(), "out_of_order");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Failed => "failed",
            State::Running => "running",
            State::MissingFromBinary => "missing_from_binary",
            State::ChecksumDiffers => "checksum_differs",
            State::VersionConflict => "version_conflict",
            State::OutOfOrder => "out_of_order",
            State::FilteredByEnvironment => "filtered_by_environment",
        }
    }
}

/// One line of [`Migrator::status`].
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).applied_by("deploy-bot");
/// migrator.run(&mut client)?;
/// let entry = &migrator.status(&mut client)?.entries[0];
/// assert_eq!((entry.version, entry.name.as_str()), (1, "create_users"));
/// assert_eq!(entry.applied.as_ref().map(|row| row.applied_by.as_str()), Some("deploy-bot"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusEntry {
    /// The version.
    pub version: i64,
    /// The name (from the binary, or from the history when the binary lacks it).
    pub name: String,
    /// The file, when the binary has the migration.
    pub path: Option<String>,
    /// Where it stands.
    pub state: State,
    /// Its history row, when it has one.
    pub applied: Option<AppliedMigration>,
    /// Why its UP runs outside a transaction, when that was inferred (see
    /// [`crate::Section::inferred_no_transaction`]).
    pub inferred: Option<String>,
    /// Its deploy phase, when the binary has the migration (see [`crate::Phase`]).
    pub phase: Option<crate::Phase>,
}

/// Every migration the binary or the database knows, and the indexes PostgreSQL marks invalid.
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// migrator.run(&mut client)?;
/// let status = migrator.status(&mut client)?;
/// assert_eq!(status.entries.len(), 11);
/// assert!(status.invalid_indexes.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Status {
    /// One entry per version, in order.
    pub entries: Vec<StatusEntry>,
    /// Indexes left `INVALID` (typically by a failed `CREATE INDEX CONCURRENTLY`).
    pub invalid_indexes: Vec<String>,
}

impl Status {
    /// How many migrations a run would apply.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// let status = migrator.status(&mut client)?;
    /// if status.pending() > 0 {
    ///     eprintln!("{} migrations to apply", status.pending());
    /// }
    /// assert_eq!(status.pending(), 10); // the 11th is for production only
    /// migrator.run(&mut client)?;
    /// assert_eq!(migrator.status(&mut client)?.pending(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pending(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state == State::Pending)
            .count()
    }
}

/// What [`Migrator::rehearse`] found for one pending migration.
///
/// ```
/// use migrate_runtime::Rehearsed;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let outcomes = migrate_runtime::Migrator::new(MIGRATIONS).rehearse(&mut client)?;
/// for (migration, outcome) in &outcomes {
///     let verdict = match outcome {
///         Rehearsed::WouldApply(took) => format!("would apply ({took:?})"),
///         Rehearsed::WouldFail(failure) => format!("would fail: {failure}"),
///         Rehearsed::NotTestable => "runs outside a transaction: not tried".to_owned(),
///         Rehearsed::NotReached => "not reached".to_owned(),
///         _ => "?".to_owned(),
///     };
///     println!("{} {verdict}", migration.version());
/// }
/// // 010_add_concurrent_indexes.sql is `-- migrate:no-transaction`.
/// assert!(matches!(outcomes[9].1, Rehearsed::NotTestable));
/// assert!(matches!(outcomes[0].1, Rehearsed::WouldApply(_)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Rehearsed {
    /// It ran; everything was rolled back afterwards.
    WouldApply(Duration),
    /// It failed, here.
    WouldFail(Box<MigrationFailure>),
    /// It runs outside a transaction, so it cannot be tried and rolled back.
    NotTestable,
    /// An earlier migration failed, so it was not tried.
    NotReached,
}

impl<'m> Migrator<'m> {
    /// Reverts the `count` most recently applied migrations, newest first, each in its own
    /// transaction with its history update. Refuses before touching anything if any of them
    /// has no DOWN section.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// migrator.run(&mut client)?;
    /// let report = migrator.down(&mut client, 1)?;
    /// assert_eq!(report.reverted[0].name, "add_concurrent_indexes"); // the newest applied
    /// assert_eq!(migrator.applied(&mut client)?.len(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn down(&self, client: &mut Client, count: usize) -> Result<Report, Error> {
        self.revert(client, |applied| applied.iter().rev().take(count).collect())
    }

    /// Reverts every applied migration with a version above `version`, newest first.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// migrator.run(&mut client)?;
    /// let report = migrator.down_to(&mut client, 3)?;
    /// assert_eq!(report.reverted.len(), 7); // 10 down to 4, newest first
    /// assert_eq!(report.reverted.last().map(|m| m.version), Some(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn down_to(&self, client: &mut Client, version: i64) -> Result<Report, Error> {
        self.revert(client, |applied| {
            applied
                .iter()
                .rev()
                .filter(|row| row.version > version)
                .collect()
        })
    }

    /// Reverts the applied migration `version` and applies it again (to check its DOWN, or
    /// to pick up an edit during development).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(&MIGRATIONS[..7]).run(&mut client)?;
    /// // Migration 7 is the newest applied.
    /// let report = migrate_runtime::Migrator::new(MIGRATIONS).redo(&mut client, 7)?;
    /// assert_eq!((report.reverted[0].version, report.applied[0].version), (7, 7));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn redo(&self, client: &mut Client, version: i64) -> Result<Report, Error> {
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        plan::check_history(self.migrations, &applied)?;
        if !applied.iter().any(|row| row.version == version) {
            return Err(Error::NotApplied { version });
        }
        let migration = plan::reversible(self.migrations, version)?;
        plan::check_untouched(migration, migration.up(), &self.settings.tables)?;
        plan::check_untouched(
            migration,
            Step::down(migration).section(),
            &self.settings.tables,
        )?;
        for step in [Step::down(migration), Step::up(migration)] {
            execute::unit(&mut run, &plan::single(step))?;
        }
        Ok(run.into_report())
    }

    fn revert(
        &self,
        client: &mut Client,
        choose: impl FnOnce(&[AppliedMigration]) -> Vec<&AppliedMigration>,
    ) -> Result<Report, Error> {
        let (mut run, applied) = Run::start(client, &self.settings, self.observer)?;
        plan::check_history(self.migrations, &applied)?;
        // Every target is checked before the first one is touched.
        let targets = choose(&applied)
            .into_iter()
            .map(|row| plan::revertible(self.migrations, &self.settings, row.version))
            .collect::<Result<Vec<_>, _>>()?;
        for migration in targets.iter().filter(|m| m.down().is_some()) {
            plan::check_untouched(
                migration,
                Step::down(migration).section(),
                &self.settings.tables,
            )?;
        }
        for unit in plan::down(&targets) {
            execute::unit(&mut run, &unit)?;
        }
        Ok(run.into_report())
    }

    /// What [`Migrator::run`] would do, without doing it or taking the lock: the pending
    /// migrations in order, or why the run would refuse. One round trip.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let plan = migrate_runtime::Migrator::new(MIGRATIONS).plan(&mut client)?;
    /// for migration in &plan.pending {
    ///     println!("would apply {} {}", migration.version(), migration.name());
    /// }
    /// assert!(plan.refusal.is_none());
    /// assert_eq!(plan.pending.len(), 10);
    /// // Nothing was applied.
    /// assert!(migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut client)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn plan(&self, client: &mut Client) -> Result<Plan<'m>, Error> {
        let applied = self.applied(client)?;
        Ok(
            match plan::phased(self.migrations, &self.settings, &applied) {
                Ok((pending, waiting)) => Plan {
                    pending,
                    waiting,
                    refusal: None,
                },
                Err(refusal) => Plan {
                    pending: Vec::new(),
                    waiting: Vec::new(),
                    refusal: Some(refusal),
                },
            },
        )
    }

    /// Every check [`Migrator::run`] makes, without running anything: `Ok` with the plan when
    /// a run would proceed, the refusal otherwise.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(&MIGRATIONS[..3]).run(&mut client)?;
    /// let plan = migrate_runtime::Migrator::new(MIGRATIONS).validate(&mut client)?;
    /// assert_eq!(plan.pending[0].version(), 4); // 1 to 3 were applied earlier
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self, client: &mut Client) -> Result<Plan<'m>, Error> {
        let plan = self.plan(client)?;
        match plan.refusal {
            Some(refusal) => Err(refusal),
            None => Ok(plan),
        }
    }

    /// Every version the binary or the database knows, with its state, and any invalid
    /// indexes. Takes no lock.
    ///
    /// ```
    /// use migrate_runtime::State;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(&MIGRATIONS[..3]).run(&mut client)?;
    /// let status = migrate_runtime::Migrator::new(MIGRATIONS).status(&mut client)?;
    /// for entry in &status.entries {
    ///     println!("{:>5} {:<30} {}", entry.version, entry.name, entry.state.as_str());
    /// }
    /// assert_eq!(status.entries[0].state, State::Applied);
    /// assert_eq!(status.entries[3].state, State::Pending);
    /// assert_eq!(status.entries[10].state, State::FilteredByEnvironment);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn status(&self, client: &mut Client) -> Result<Status, Error> {
        let applied = self.applied(client)?;
        // Migrations a squash replaces, all applied, show as the squash; a database part-way
        // below a squash shows its rows as they are (`up` says why it refuses).
        let applied = crate::squashed::reconcile(self.migrations, &applied)
            .map_or(applied, |reconciled| reconciled.applied);
        let rows: BTreeMap<i64, &AppliedMigration> =
            applied.iter().map(|row| (row.version, row)).collect();
        let binary: BTreeMap<i64, &Migration> =
            self.migrations.iter().map(|m| (m.version(), m)).collect();
        let highest_applied = applied.iter().map(|row| row.version).max();
        let mut versions: Vec<i64> = rows.keys().chain(binary.keys()).copied().collect();
        versions.sort_unstable();
        versions.dedup();
        let entries = versions
            .into_iter()
            .map(|version| {
                let (row, migration) = (rows.get(&version).copied(), binary.get(&version).copied());
                let state = match (row, migration) {
                    (Some(row), _) if row.status == MigrationStatus::Failed => State::Failed,
                    (Some(row), _) if row.status == MigrationStatus::Running => State::Running,
                    (Some(_), None) => State::MissingFromBinary,
                    (Some(row), Some(m))
                        if !m.checksum().matches(&row.checksum) && m.name() != row.name =>
                    {
                        State::VersionConflict
                    }
                    (Some(row), Some(m)) if !m.checksum().matches(&row.checksum) => {
                        State::ChecksumDiffers
                    }
                    (Some(_), Some(_)) => State::Applied,
                    (None, Some(m)) if !self.settings.in_environment(m) => {
                        State::FilteredByEnvironment
                    }
                    (None, m)
                        if highest_applied.is_some_and(|highest| version < highest)
                            && !m.is_some_and(Migration::allows_out_of_order) =>
                    {
                        State::OutOfOrder
                    }
                    (None, _) => State::Pending,
                };
                StatusEntry {
                    version,
                    name: migration.map_or_else(
                        || row.map(|r| r.name.clone()).unwrap_or_default(),
                        |m| m.name().to_owned(),
                    ),
                    path: migration.map(|m| m.path().to_owned()),
                    state,
                    applied: row.cloned(),
                    inferred: migration
                        .and_then(|m| m.up().inferred_no_transaction())
                        .map(str::to_owned),
                    phase: migration.map(Migration::phase),
                }
            })
            .collect();
        Ok(Status {
            entries,
            invalid_indexes: crate::schema::invalid_indexes(client),
        })
    }

    /// The action log, oldest first. Empty before the first run.
    ///
    /// ```
    /// use migrate_runtime::ActionKind;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// migrator.run(&mut client)?;
    /// migrator.down(&mut client, 1)?;
    /// for action in migrator.history(&mut client)? {
    ///     println!("{} {} {} by {}", action.action, action.version, action.status, action.executed_by);
    /// }
    /// let last = migrator.history(&mut client)?.pop().expect("the revert is logged");
    /// assert_eq!((last.action, last.version), (ActionKind::Rollback, 10));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history(&self, client: &mut Client) -> Result<Vec<Action>, Error> {
        self.settings.tables.read_actions(client)
    }

    /// Runs every pending transactional migration inside one transaction and rolls it all
    /// back, reporting which would fail and where. The database is left as it was (the
    /// history tables are not even created). Migrations that run outside a transaction cannot
    /// be tried this way and are reported as such.
    ///
    /// ```
    /// use migrate_runtime::Rehearsed;
    ///
    /// // 003_fill_c.sql inserts into a table that does not exist.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let mut failing = None;
    /// for (migration, outcome) in migrate_runtime::Migrator::new(MIGRATIONS).rehearse(&mut client)? {
    ///     if let Rehearsed::WouldFail(failure) = outcome {
    ///         eprintln!("{failure}");
    ///         failing = Some(migration.version());
    ///     }
    /// }
    /// assert_eq!(failing, Some(3));
    /// // Everything was rolled back: not even the history table exists.
    /// let history = client.query_one("SELECT to_regclass('schema_migrations') IS NULL", &[])?;
    /// assert!(history.get::<_, bool>(0));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rehearse(&self, client: &mut Client) -> Result<Vec<(&'m Migration, Rehearsed)>, Error> {
        let tables = &self.settings.tables;
        tables.check()?;
        // The lock, the tables and the history read all happen inside the transaction that is
        // rolled back, so even a first run leaves nothing behind.
        let prelude = format!(
            "BEGIN;\n{}{}{};",
            lock::transaction_lock_sql(lock::key(tables), self.settings.lock_wait),
            tables.create_sql(),
            tables.select_sql()
        );
        let messages = match client.simple_query(&prelude) {
            Ok(messages) => messages,
            Err(error) => {
                execute::rollback(client);
                return Err(Error::database("starting the rehearsal")(error));
            }
        };
        let pending = match self.pending(&crate::history::parse_rows(&messages)) {
            Ok(pending) => pending,
            Err(refusal) => {
                execute::rollback(client);
                return Err(refusal);
            }
        };
        let testable: Vec<&Migration> = pending
            .iter()
            .copied()
            .filter(|m| m.up().is_transactional())
            .collect();
        let replayed = replay(client, &testable);
        execute::rollback(client);

        let mut outcomes: BTreeMap<i64, Rehearsed> = BTreeMap::new();
        for (migration, duration, result) in replayed {
            let outcome = match result {
                Ok(()) => Rehearsed::WouldApply(duration),
                Err(error) => {
                    Rehearsed::WouldFail(Box::new(execute::failure_in(error, migration)?))
                }
            };
            outcomes.insert(migration.version(), outcome);
        }
        Ok(pending
            .into_iter()
            .map(|migration| {
                let outcome = match outcomes.remove(&migration.version()) {
                    Some(outcome) => outcome,
                    None if !migration.up().is_transactional() => Rehearsed::NotTestable,
                    None => Rehearsed::NotReached,
                };
                (migration, outcome)
            })
            .collect())
    }
}

/// Runs each migration's UP as its own query inside the transaction the caller opened,
/// stopping after the first failure: which one fails, and how long each took.
fn replay<'m>(
    client: &mut Client,
    migrations: &[&'m Migration],
) -> Vec<(&'m Migration, Duration, Result<(), postgres::Error>)> {
    let mut outcomes = Vec::new();
    for migration in migrations {
        let started = std::time::Instant::now();
        let result = client.simple_query(migration.up().sql()).map(drop);
        let failed = result.is_err();
        outcomes.push((*migration, started.elapsed(), result));
        if failed {
            break;
        }
    }
    outcomes
}
