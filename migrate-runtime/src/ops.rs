//! Everything an operator does besides applying what is pending: reverting (`down`,
//! `down_to`, `redo`), looking (`plan`, `validate`, `status`, `history`), and rehearsing a run
//! inside a transaction that is rolled back.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};

use crate::apply::{self, Batch, Direction};
use crate::history::AppliedMigration;
use crate::lock;
use crate::migrator::Report;
use crate::{Error, Migration, MigrationFailure, Migrator};

/// What [`Migrator::plan`] found: what a run would apply, or why it would refuse.
#[derive(Debug)]
#[non_exhaustive]
pub struct Plan<'m> {
    /// The migrations a run would apply, in order (empty when it would refuse).
    pub pending: Vec<&'m Migration>,
    /// Why a run would refuse to start, if it would.
    pub refusal: Option<Error>,
}

/// Where one migration stands in [`Migrator::status`].
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
            State::OutOfOrder => "out_of_order",
            State::FilteredByEnvironment => "filtered_by_environment",
        }
    }
}

/// One line of [`Migrator::status`].
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
}

/// Every migration the binary or the database knows, and the indexes PostgreSQL marks invalid.
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
    /// ```no_run
    /// # let status: migrate_runtime::Status = unimplemented!();
    /// if status.pending() > 0 { std::process::exit(3); }
    /// ```
    pub fn pending(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.state == State::Pending)
            .count()
    }
}

/// One row of the action log (`schema_migrations_history`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Action {
    /// Its position in the log.
    pub id: i64,
    /// The migration's version.
    pub version: i64,
    /// The migration's name.
    pub name: String,
    /// `apply`, `rollback`, `baseline` or `repair`.
    pub action: String,
    /// The checksum involved, if any.
    pub checksum: Option<String>,
    /// When it started, in microseconds since the Unix epoch.
    pub started_at_micros: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// `success` or `failed`.
    pub status: String,
    /// The error, for a failure.
    pub error_message: Option<String>,
    /// Who did it.
    pub executed_by: String,
    /// The environment it ran in, if one was set.
    pub environment: Option<String>,
    /// The reason given (repairs and baselines).
    pub note: Option<String>,
}

/// What [`Migrator::rehearse`] found for one pending migration.
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
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// let report = migrate_runtime::Migrator::new(MIGRATIONS).down(&mut client, 1)?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn down(&self, client: &mut Client, count: usize) -> Result<Report, Error> {
        self.revert(client, |applied| applied.iter().rev().take(count).collect())
    }

    /// Reverts every applied migration with a version above `version`, newest first.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// migrate_runtime::Migrator::new(MIGRATIONS).down_to(&mut client, 3)?;
    /// # Ok::<(), migrate_runtime::Error>(())
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
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// migrate_runtime::Migrator::new(MIGRATIONS).redo(&mut client, 7)?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn redo(&self, client: &mut Client, version: i64) -> Result<Report, Error> {
        let (mut locked, applied) =
            lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
        self.verify_applied(&applied)?;
        if !applied.iter().any(|row| row.version == version) {
            return Err(Error::InvalidSetting(format!(
                "redo {version}: that version is not applied"
            )));
        }
        let migration = self.reversible(version)?;
        let mut report = Report::default();
        if let Batch::Done(done) = apply::one(self, &mut locked, migration, Direction::Down)? {
            self.record(&mut report, done, true);
        }
        if let Batch::Done(done) = apply::one(self, &mut locked, migration, Direction::Up)? {
            self.record(&mut report, done, false);
        }
        Ok(report)
    }

    fn revert(
        &self,
        client: &mut Client,
        choose: impl FnOnce(&[AppliedMigration]) -> Vec<&AppliedMigration>,
    ) -> Result<Report, Error> {
        let (mut locked, applied) =
            lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
        self.verify_applied(&applied)?;
        // Every target is checked before the first one is touched.
        let targets = choose(&applied)
            .into_iter()
            .map(|row| self.reversible(row.version))
            .collect::<Result<Vec<_>, _>>()?;
        let mut report = Report::default();
        for migration in targets {
            if let Batch::Done(done) = apply::one(self, &mut locked, migration, Direction::Down)? {
                self.record(&mut report, done, true);
            }
        }
        Ok(report)
    }

    /// The binary's migration `version`, if it has a DOWN section.
    fn reversible(&self, version: i64) -> Result<&'m Migration, Error> {
        let migration = self
            .migrations
            .iter()
            .find(|m| m.version() == version)
            .ok_or_else(|| Error::MissingFromBinary(vec![(version, String::new())]))?;
        match migration.down() {
            Some(_) => Ok(migration),
            None => Err(Error::Irreversible {
                version,
                name: migration.name().to_owned(),
                path: migration.path().to_owned(),
            }),
        }
    }

    /// What [`Migrator::run`] would do, without doing it or taking the lock: the pending
    /// migrations in order, or why the run would refuse. One round trip.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// let plan = migrate_runtime::Migrator::new(MIGRATIONS).plan(&mut client)?;
    /// for migration in &plan.pending {
    ///     println!("would apply {} {}", migration.version(), migration.name());
    /// }
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn plan(&self, client: &mut Client) -> Result<Plan<'m>, Error> {
        let applied = self.applied(client)?;
        Ok(match self.pending(&applied) {
            Ok(pending) => Plan {
                pending,
                refusal: None,
            },
            Err(refusal) => Plan {
                pending: Vec::new(),
                refusal: Some(refusal),
            },
        })
    }

    /// Every check [`Migrator::run`] makes, without running anything: `Ok` with the plan when
    /// a run would proceed, the refusal otherwise.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// migrate_runtime::Migrator::new(MIGRATIONS).validate(&mut client)?;
    /// # Ok::<(), migrate_runtime::Error>(())
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
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// for entry in migrate_runtime::Migrator::new(MIGRATIONS).status(&mut client)?.entries {
    ///     println!("{:>5} {:<30} {}", entry.version, entry.name, entry.state.as_str());
    /// }
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn status(&self, client: &mut Client) -> Result<Status, Error> {
        let applied = self.applied(client)?;
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
                    (Some(row), _) if row.status == "failed" => State::Failed,
                    (Some(row), _) if row.status == "running" => State::Running,
                    (Some(_), None) => State::MissingFromBinary,
                    (Some(row), Some(m)) if !m.checksum().matches(&row.checksum) => {
                        State::ChecksumDiffers
                    }
                    (Some(_), Some(_)) => State::Applied,
                    (None, Some(m)) if !self.in_environment(m) => State::FilteredByEnvironment,
                    (None, _) if highest_applied.is_some_and(|highest| version < highest) => {
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
                }
            })
            .collect();
        Ok(Status {
            entries,
            invalid_indexes: apply::invalid_indexes(client),
        })
    }

    /// The action log, oldest first. Empty before the first run.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// for action in migrate_runtime::Migrator::new(MIGRATIONS).history(&mut client)? {
    ///     println!("{} {} {} by {}", action.action, action.version, action.status, action.executed_by);
    /// }
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn history(&self, client: &mut Client) -> Result<Vec<Action>, Error> {
        self.tables.check()?;
        let query = format!(
            "SELECT id, version, name, action, checksum, (extract(epoch FROM started_at) * 1000000)::bigint, \
             duration_ms, status, error_message, executed_by, environment, note FROM {} ORDER BY id",
            self.tables.actions()
        );
        let messages = match client.simple_query(&query) {
            Ok(messages) => messages,
            Err(error) if crate::history::is_missing_relation(&error) => return Ok(Vec::new()),
            Err(error) => return Err(Error::database("reading the action log")(error)),
        };
        Ok(messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .map(|row| {
                let text = |i: usize| row.get(i).map(str::to_owned);
                let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or_default();
                Action {
                    id: number(0),
                    version: number(1),
                    name: text(2).unwrap_or_default(),
                    action: text(3).unwrap_or_default(),
                    checksum: text(4),
                    started_at_micros: number(5),
                    duration_ms: number(6),
                    status: text(7).unwrap_or_default(),
                    error_message: text(8),
                    executed_by: text(9).unwrap_or_default(),
                    environment: text(10),
                    note: text(11),
                }
            })
            .collect())
    }

    /// Runs every pending transactional migration inside one transaction and rolls it all
    /// back, reporting which would fail and where. The database is left as it was (the
    /// history tables are not even created). Migrations that run outside a transaction cannot
    /// be tried this way and are reported as such.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// use migrate_runtime::Rehearsed;
    ///
    /// for (migration, outcome) in migrate_runtime::Migrator::new(MIGRATIONS).rehearse(&mut client)? {
    ///     if let Rehearsed::WouldFail(failure) = outcome {
    ///         eprintln!("{failure}");
    ///     }
    /// }
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn rehearse(&self, client: &mut Client) -> Result<Vec<(&'m Migration, Rehearsed)>, Error> {
        self.tables.check()?;
        // The lock, the tables and the history read all happen inside the transaction that is
        // rolled back, so even a first run leaves nothing behind.
        let prelude = format!(
            "BEGIN;\n{}{}{};",
            lock::transaction_lock_sql(lock::key(&self.tables), self.lock_wait),
            self.tables.create_sql(),
            self.tables.select_sql()
        );
        let messages = match client.simple_query(&prelude) {
            Ok(messages) => messages,
            Err(error) => {
                apply::rollback(client);
                return Err(Error::database("starting the rehearsal")(error));
            }
        };
        let pending = match self.pending(&crate::history::parse_rows(&messages)) {
            Ok(pending) => pending,
            Err(refusal) => {
                apply::rollback(client);
                return Err(refusal);
            }
        };
        let testable: Vec<&Migration> = pending
            .iter()
            .copied()
            .filter(|m| m.up().is_transactional())
            .collect();
        let replayed = apply::replay(client, &testable);
        apply::rollback(client);

        let mut outcomes: BTreeMap<i64, Rehearsed> = BTreeMap::new();
        for (migration, duration, result) in replayed {
            let outcome = match result {
                Ok(()) => Rehearsed::WouldApply(duration),
                Err(error) => Rehearsed::WouldFail(Box::new(apply::locate(
                    error,
                    migration,
                    migration.up(),
                    Direction::Up,
                    0,
                )?)),
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
