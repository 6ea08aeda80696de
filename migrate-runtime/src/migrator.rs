//! `Migrator`: the settings of a run, the checks made before anything runs, and `run`.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::Client;

use crate::apply::{self, Batch, Direction};
use crate::error::Unfinished;
use crate::history::{AppliedMigration, Fingerprint, HistoryTables};
use crate::lock::{self, LockScope};
use crate::{Error, Migration, SafetyPolicy};

/// Applies a set of migrations to a database.
///
/// ```no_run
/// use migrate_runtime::Migrator;
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// let mut client = postgres::Client::connect("host=localhost user=postgres", postgres::NoTls)?;
/// let report = Migrator::new(MIGRATIONS).run(&mut client)?;
/// for applied in &report.applied {
///     println!("applied {} {} in {:?}", applied.version, applied.name, applied.duration);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Migrator<'m> {
    pub(crate) migrations: &'m [Migration],
    pub(crate) tables: HistoryTables,
    target: Option<i64>,
    grouped: bool,
    allow_out_of_order: bool,
    environment: Option<String>,
    pub(crate) applied_by: Option<String>,
    pub(crate) lock_wait: Duration,
    pub(crate) lock_scope: LockScope,
    observer: Observer<'m>,
    safety: Option<SafetyPolicy>,
}

/// A step finished, as it happens (see [`Migrator::on_progress`]).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Progress<'a> {
    /// A migration was applied.
    Applied(&'a AppliedReport),
    /// A migration was reverted.
    Reverted(&'a AppliedReport),
}

/// The caller's progress callback; `Debug` so `Migrator` can be printed (and keyed on).
#[derive(Clone, Copy, Default)]
struct Observer<'m>(Option<&'m dyn Fn(Progress<'_>)>);

impl std::fmt::Debug for Observer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Observer(set)"
        } else {
            "Observer(none)"
        })
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The migrations applied, in order.
    pub applied: Vec<AppliedReport>,
    /// The migrations reverted (by `down`, `down_to`, `redo`), in order.
    pub reverted: Vec<AppliedReport>,
}

/// One migration applied or reverted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedReport {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// How long its SQL took on the server (for no-transaction migrations, all its statements).
    pub duration: Duration,
}

impl<'m> Migrator<'m> {
    /// A migrator with the defaults: history in `public.schema_migrations`, every migration,
    /// one transaction per migration, in order, no environment, applied by the database user,
    /// waiting up to 60 s for the lock.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// ```
    pub fn new(migrations: &'m [Migration]) -> Self {
        Migrator {
            migrations,
            tables: HistoryTables::new("public", "schema_migrations"),
            target: None,
            grouped: false,
            allow_out_of_order: false,
            environment: None,
            applied_by: None,
            lock_wait: Duration::from_secs(60),
            lock_scope: LockScope::Session,
            observer: Observer::default(),
            safety: None,
        }
    }

    /// Where the history is kept: `schema.table`, plus `schema.{table}_history` for the
    /// action log. The schema is created if missing.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .history_table("platform", "schema_migrations");
    /// ```
    pub fn history_table(mut self, schema: &str, table: &str) -> Self {
        self.tables = HistoryTables::new(schema, table);
        self
    }

    /// Applies migrations up to and including `version`, and no further.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).target(20241201000003);
    /// ```
    pub fn target(mut self, version: i64) -> Self {
        self.target = Some(version);
        self
    }

    /// Applies everything pending in one transaction: all or nothing. Refused when a pending
    /// migration runs outside a transaction.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).grouped(true);
    /// ```
    pub fn grouped(mut self, grouped: bool) -> Self {
        self.grouped = grouped;
        self
    }

    /// Lets a pending migration with a lower version than the highest applied one run
    /// (normally an error: it usually means two branches were merged without renumbering).
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).allow_out_of_order(true);
    /// ```
    pub fn allow_out_of_order(mut self, allow: bool) -> Self {
        self.allow_out_of_order = allow;
        self
    }

    /// The environment this run is in. Migrations marked `-- migrate:env ...` apply only when
    /// one of their environments matches (case-insensitively); without an environment they
    /// are skipped. The environment is recorded in the action log.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let env = std::env::var("MIGRATE_ENV").unwrap_or_else(|_| "development".into());
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).environment(&env);
    /// ```
    pub fn environment(mut self, environment: &str) -> Self {
        self.environment = Some(environment.to_owned());
        self
    }

    /// Who the history records as applying the migrations (default: the database user).
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).applied_by("deploy-bot");
    /// ```
    pub fn applied_by(mut self, who: &str) -> Self {
        self.applied_by = Some(who.to_owned());
        self
    }

    /// How long to wait for another process's migration lock before giving up with
    /// [`Error::LockTimeout`] (default 60 s).
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .lock_wait(std::time::Duration::from_secs(5));
    /// ```
    pub fn lock_wait(mut self, limit: Duration) -> Self {
        self.lock_wait = limit;
        self
    }

    /// Runs each transactional migration under a data-safety policy: inside its transaction,
    /// before `COMMIT`, the row counts of the existing tables it names or touches, their
    /// columns and constraints, constraint validity and index validity are compared with the
    /// state before it, and a migration that breaks the policy is rolled back with
    /// [`Error::PolicyViolation`]. Migrations run one by one (no batching). No-transaction
    /// migrations cannot be rolled back and run as usual.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// use migrate_runtime::{Migrator, SafetyPolicy};
    /// let migrator = Migrator::new(MIGRATIONS).safety(SafetyPolicy::default());
    /// ```
    pub fn safety(mut self, policy: SafetyPolicy) -> Self {
        self.safety = Some(policy);
        self
    }

    /// Calls `observer` after each migration is applied or reverted, as it happens (a run
    /// that fails part-way has still reported what it did before the failure). Each step is
    /// also logged at `info` level through the `log` crate.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// use migrate_runtime::{Migrator, Progress};
    ///
    /// let print = |progress: Progress<'_>| {
    ///     if let Progress::Applied(done) = progress {
    ///         println!("applied {} in {:?}", done.name, done.duration);
    ///     }
    /// };
    /// let migrator = Migrator::new(MIGRATIONS).on_progress(&print);
    /// ```
    pub fn on_progress(mut self, observer: &'m dyn Fn(Progress<'_>)) -> Self {
        self.observer = Observer(Some(observer));
        self
    }

    /// Records a finished step in `report`, and tells the log and the observer.
    pub(crate) fn record(&self, report: &mut Report, done: AppliedReport, reverted: bool) {
        let (verb, list) = if reverted {
            ("reverted", &mut report.reverted)
        } else {
            ("applied", &mut report.applied)
        };
        log::info!(
            "{verb} migration {} ({}) in {} ms",
            done.version,
            done.name,
            done.duration.as_millis()
        );
        list.push(done);
        if let (Some(observer), Some(done)) = (self.observer.0, list.last()) {
            observer(if reverted {
                Progress::Reverted(done)
            } else {
                Progress::Applied(done)
            });
        }
    }

    /// How the lock is held; see [`LockScope`].
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .lock_scope(migrate_runtime::LockScope::Transaction);
    /// ```
    pub fn lock_scope(mut self, scope: LockScope) -> Self {
        self.lock_scope = scope;
        self
    }

    /// Checks the database's history against these migrations and applies what is pending.
    ///
    /// When nothing is pending this costs one round trip and takes no lock. Otherwise it takes
    /// the migration lock, re-reads the history under it (another process may have just
    /// applied everything), and applies each pending migration together with its history rows
    /// in its own transaction; consecutive transactional migrations travel together, up to 100
    /// in one round trip.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn run(&self, client: &mut Client) -> Result<Report, Error> {
        self.check_settings()?;
        #[cfg(debug_assertions)]
        crate::stale::warn_about_unembedded_files(self.migrations);
        // The common start-up: everything this binary would apply is applied, unchanged.
        // One round trip, one small row, no lock. Anything else (including a `failed` or
        // `running` row, which only the lock holder may judge) takes the full, locked path.
        if self.tables.fingerprint(client)? == Some(self.expected_fingerprint()) {
            return Ok(Report::default());
        }
        let started = std::time::Instant::now();
        let (mut locked, pending) = loop {
            let (locked, applied) =
                lock::acquire(client, &self.tables, self.lock_scope, self.lock_wait)?;
            match self.pending(&applied) {
                // Behind a pooler there is no session lock to wait on, and a `running` row may
                // belong to a live run in the middle of a no-transaction migration: wait for
                // it to finish, as long as we would wait for the lock.
                Err(Error::Unfinished(unfinished))
                    if self.lock_scope == LockScope::Transaction
                        && unfinished.status == "running"
                        && started.elapsed() < self.lock_wait =>
                {
                    drop(locked);
                    std::thread::sleep(Duration::from_millis(50));
                }
                pending => break (locked, pending?),
            }
        };
        let mut report = Report::default();
        if let Some(policy) = self.safety {
            for migration in pending {
                let batch = if migration.up().is_transactional() {
                    crate::safety::guarded(self, &mut locked, migration, policy)?
                } else {
                    apply::one(self, &mut locked, migration, Direction::Up)?
                };
                if let Batch::Done(done) = batch {
                    self.record(&mut report, done, false);
                }
            }
        } else if self.grouped {
            for done in apply::grouped(self, &mut locked, &pending)? {
                self.record(&mut report, done, false);
            }
        } else {
            // Runs of transactional migrations go in batches (one round trip each); a
            // no-transaction migration runs on its own, statement by statement.
            for run in
                pending.chunk_by(|a, b| a.up().is_transactional() == b.up().is_transactional())
            {
                if run[0].up().is_transactional() {
                    for batch in apply::batches(self, run) {
                        apply::transactional_run(self, &mut locked, batch, &mut report)?;
                    }
                } else {
                    for migration in run {
                        if let Batch::Done(done) =
                            apply::one(self, &mut locked, migration, Direction::Up)?
                        {
                            self.record(&mut report, done, false);
                        }
                    }
                }
            }
        }
        Ok(report)
    }

    /// The fingerprint of a history holding exactly the migrations this run would leave
    /// applied: every migration in the binary up to the target, in this environment.
    fn expected_fingerprint(&self) -> Fingerprint {
        use sha2::{Digest, Sha256};
        use std::fmt::Write as _;

        /// Feeds formatted text straight into the hash, allocating nothing per migration.
        struct Feed(Sha256);
        impl std::fmt::Write for Feed {
            fn write_str(&mut self, text: &str) -> std::fmt::Result {
                self.0.update(text.as_bytes());
                Ok(())
            }
        }
        let mut feed = Feed(Sha256::new());
        let mut rows = 0;
        for migration in self.selected() {
            let separator = if rows == 0 { "" } else { "\n" };
            let _ = write!(feed, "{separator}{} ", migration.version());
            feed.0.update(migration.checksum().text());
            feed.0.update(b" applied");
            rows += 1;
        }
        let digest = feed.0.finalize();
        let mut sha256_hex = String::with_capacity(64);
        // The server aggregates no rows to NULL, shown as ''.
        for byte in digest.iter().filter(|_| rows > 0) {
            let _ = write!(sha256_hex, "{byte:02x}");
        }
        Fingerprint { rows, sha256_hex }
    }

    /// The history table's rows, in version order (empty before the first run). One round
    /// trip; takes no lock.
    ///
    /// ```no_run
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = &[];
    /// # let mut client: postgres::Client = unimplemented!();
    /// for row in migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut client)? {
    ///     println!("{} {} {}", row.version, row.name, row.status);
    /// }
    /// # Ok::<(), migrate_runtime::Error>(())
    /// ```
    pub fn applied(&self, client: &mut Client) -> Result<Vec<AppliedMigration>, Error> {
        Ok(self.tables.read(client)?.unwrap_or_default())
    }

    fn check_settings(&self) -> Result<(), Error> {
        if self.tables.is_empty() {
            return Err(Error::InvalidSetting(
                "the history schema and table names must not be empty".to_owned(),
            ));
        }
        if self.grouped && self.safety.is_some() {
            return Err(Error::InvalidSetting(
                "data-safety checks roll back one migration at a time, so they cannot be combined with grouped mode".to_owned(),
            ));
        }
        if self.grouped {
            if let Some(m) = self.migrations.iter().find(|m| !m.up().is_transactional()) {
                return Err(Error::InvalidSetting(format!(
                    "grouped mode runs everything in one transaction, but {} runs outside any transaction",
                    m.path()
                )));
            }
        }
        Ok(())
    }

    /// The migrations `run` would apply, after checking the history against this binary.
    pub(crate) fn pending(
        &self,
        applied: &[AppliedMigration],
    ) -> Result<Vec<&'m Migration>, Error> {
        self.verify_applied(applied)?;
        let highest_applied = applied.iter().map(|row| row.version).max();
        let applied_versions: std::collections::BTreeSet<i64> =
            applied.iter().map(|row| row.version).collect();
        let pending: Vec<&Migration> = self
            .migrations
            .iter()
            .filter(|m| !applied_versions.contains(&m.version()))
            .filter(|m| self.target.is_none_or(|target| m.version() <= target))
            .filter(|m| self.in_environment(m))
            .collect();
        if let (Some(highest_applied), false) = (highest_applied, self.allow_out_of_order) {
            if let Some(m) = pending.iter().find(|m| m.version() < highest_applied) {
                return Err(Error::OutOfOrder {
                    version: m.version(),
                    name: m.name().to_owned(),
                    path: m.path().to_owned(),
                    highest_applied,
                });
            }
        }
        Ok(pending)
    }

    /// The checks on what is already applied: nothing unfinished, nothing the binary lacks,
    /// no file changed since it was applied.
    pub(crate) fn verify_applied(&self, applied: &[AppliedMigration]) -> Result<(), Error> {
        self.check_settled(applied)?;
        let in_binary: BTreeMap<i64, &Migration> =
            self.migrations.iter().map(|m| (m.version(), m)).collect();
        let missing: Vec<(i64, String)> = applied
            .iter()
            .filter(|row| !in_binary.contains_key(&row.version))
            .map(|row| (row.version, row.name.clone()))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingFromBinary(missing));
        }
        for row in applied {
            let migration = in_binary[&row.version];
            if !migration.checksum().matches(&row.checksum) {
                return Err(Error::ChecksumMismatch {
                    version: row.version,
                    name: migration.name().to_owned(),
                    path: migration.path().to_owned(),
                    applied: row.checksum.clone(),
                    embedded: migration.checksum(),
                });
            }
        }
        Ok(())
    }

    /// Refuses while a no-transaction migration is `failed` or `running`: what it did is not
    /// undone, and only a repair says how to go on.
    pub(crate) fn check_settled(&self, applied: &[AppliedMigration]) -> Result<(), Error> {
        match applied.iter().find(|row| row.status != "applied") {
            Some(row) => {
                let migration = self.migrations.iter().find(|m| m.version() == row.version);
                Err(Error::Unfinished(Box::new(Unfinished::new(row, migration))))
            }
            None => Ok(()),
        }
    }

    /// The migrations this migrator would leave applied: up to the target, in its environment.
    pub(crate) fn selected(&self) -> impl Iterator<Item = &'m Migration> + '_ {
        self.migrations
            .iter()
            .filter(|m| self.target.is_none_or(|target| m.version() <= target))
            .filter(|m| self.in_environment(m))
    }

    /// The same migrator, telling no observer (its runs are not the user's).
    #[cfg(feature = "testing")]
    pub(crate) fn quiet(mut self) -> Self {
        self.observer = Observer::default();
        self
    }

    /// The same migrator without a target version.
    #[cfg(feature = "testing")]
    pub(crate) fn untargeted(mut self) -> Self {
        self.target = None;
        self
    }

    pub(crate) fn in_environment(&self, migration: &Migration) -> bool {
        match &self.environment {
            Some(environment) => migration.applies_in(environment),
            None => migration.environments().next().is_none(),
        }
    }

    pub(crate) fn environment_name(&self) -> Option<&str> {
        self.environment.as_deref()
    }

    /// The `applied_by` value for SQL: the configured name, escaped, or `current_user`.
    pub(crate) fn applied_by_sql(&self) -> String {
        self.applied_by
            .as_deref()
            .map_or_else(|| "current_user".to_owned(), crate::history::literal)
    }
}
