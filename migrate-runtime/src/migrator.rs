//! `Migrator`: the settings of a run, the checks made before anything runs, and `run`.

use std::time::Duration;

use postgres::Client;

use crate::execute;
use crate::history::{AppliedMigration, HistoryTables};
use crate::lock::LockScope;
use crate::plan;
use crate::run::{Observer, Progress, Report, Run};
use crate::schema::SchemaSnapshot;
use crate::settings::Settings;
use crate::terms::MigrationStatus;
use crate::{Error, Migration, Phase, SafetyPolicy};

/// Applies a set of migrations to a database.
///
/// ```
/// use migrate_runtime::Migrator;
///
/// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
///
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let url = database.url();
/// // e.g. url = "postgresql://app@db.internal/app"
/// let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
/// let report = Migrator::new(MIGRATIONS).run(&mut client)?;
/// for applied in &report.applied {
///     println!("applied {} {} in {:?}", applied.version, applied.name, applied.duration);
/// }
/// // The 11th migration is `-- migrate:env production`: skipped without an environment.
/// assert_eq!(report.applied.len(), 10);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Migrator<'m> {
    pub(crate) migrations: &'m [Migration],
    pub(crate) settings: Settings,
    pub(crate) observer: Observer<'m>,
}

impl<'m> Migrator<'m> {
    /// A migrator with the defaults: history in `public.schema_migrations`, every migration,
    /// one transaction per migration, in order, no environment, applied by the database user,
    /// waiting up to 60 s for the lock.
    ///
    /// ```
    /// static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    ///
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// assert_eq!(migrator.plan(&mut client)?.pending.len(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(migrations: &'m [Migration]) -> Self {
        Migrator {
            migrations,
            settings: Settings::default(),
            observer: Observer::default(),
        }
    }

    /// Which deploy phase a run applies (see [`Phase`]). [`Phase::PreDeploy`], the default,
    /// applies pending migrations in version order up to the first pending post-deploy one
    /// (those after it wait, whatever their phase, so versions always apply in order);
    /// [`Phase::PostDeploy`], once the new version of the service is fully rolled out, applies
    /// everything pending.
    ///
    /// ```
    /// use migrate_runtime::testing::TestServer;
    /// use migrate_runtime::{Migration, Migrator, Phase};
    ///
    /// static MIGRATIONS: &[Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/phases/new");
    ///
    /// let database = TestServer::shared().create_database()?;
    /// let mut client = database.client()?;
    /// // Before the rollout: the pre-deploy migrations.
    /// let before = Migrator::new(MIGRATIONS).run(&mut client)?;
    /// assert!(before.applied.iter().all(|applied| applied.version < 4));
    /// // After it: the rest (dropping the column the old version still read).
    /// let after = Migrator::new(MIGRATIONS).phase(Phase::PostDeploy).run(&mut client)?;
    /// assert_eq!(after.applied[0].version, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn phase(mut self, phase: Phase) -> Self {
        self.settings.phase = phase;
        self
    }

    /// Where the history is kept: `schema.table`, plus `schema.{table}_history` for the
    /// action log. The schema is created if missing.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .history_table("deploy", "schema_migrations");
    /// migrator.run(&mut client)?;
    /// let recorded: i64 = client.query_one("SELECT count(*) FROM deploy.schema_migrations", &[])?.get(0);
    /// assert_eq!(recorded, 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history_table(mut self, schema: &str, table: &str) -> Self {
        self.settings.tables = HistoryTables::new(schema, table);
        self
    }

    /// Applies migrations up to and including `version`, and no further.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).target(3);
    /// let report = migrator.run(&mut client)?;
    /// assert_eq!(report.applied.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2, 3]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn target(mut self, version: i64) -> Self {
        self.settings.target = Some(version);
        self
    }

    /// Applies everything pending in one transaction: all or nothing. Refused when a pending
    /// migration runs outside a transaction.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// // Migrations 1 to 9 all run in transactions: one transaction for all nine.
    /// let migrator = migrate_runtime::Migrator::new(&MIGRATIONS[..9]).grouped(true);
    /// assert_eq!(migrator.run(&mut client)?.applied.len(), 9);
    /// // Migration 10 is `-- migrate:no-transaction`: refused, nothing run.
    /// let refused = migrate_runtime::Migrator::new(MIGRATIONS).grouped(true).run(&mut client);
    /// assert!(refused.is_err());
    /// assert_eq!(migrate_runtime::Migrator::new(MIGRATIONS).applied(&mut client)?.len(), 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn grouped(mut self, grouped: bool) -> Self {
        self.settings.grouped = grouped;
        self
    }

    /// Lets a pending migration with a lower version than the highest applied one run
    /// (normally an error: it usually means two branches were merged without renumbering).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(&MIGRATIONS[6..7]).run(&mut client)?;
    /// // Migration 7 came from another branch and was applied first.
    /// assert!(migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client).is_err());
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).allow_out_of_order(true);
    /// let report = migrator.run(&mut client)?;
    /// assert_eq!(report.applied.len(), 9); // 1 to 6, then 8 to 10
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn allow_out_of_order(mut self, allow: bool) -> Self {
        self.settings.allow_out_of_order = allow;
        self
    }

    /// The environment this run is in. Migrations marked `-- migrate:env ...` apply only when
    /// one of their environments matches (case-insensitively); without an environment they
    /// are skipped. The environment is recorded in the action log.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// // e.g. let env = std::env::var("MIGRATE_ENV").unwrap_or_else(|_| "development".into());
    /// let env = "production";
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).environment(env);
    /// let report = migrator.run(&mut client)?;
    /// // 011_create_lancio_org.sql (`-- migrate:env production`) is applied too.
    /// assert_eq!(report.applied.len(), 11);
    /// let logged = migrator.history(&mut client)?.pop().and_then(|action| action.environment);
    /// assert_eq!(logged.as_deref(), Some("production"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn environment(mut self, environment: &str) -> Self {
        self.settings.environment = Some(environment.to_owned());
        self
    }

    /// Who the history records as applying the migrations (default: the database user).
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).applied_by("deploy-bot");
    /// migrator.run(&mut client)?;
    /// assert!(migrator.applied(&mut client)?.iter().all(|row| row.applied_by == "deploy-bot"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn applied_by(mut self, who: &str) -> Self {
        self.settings.applied_by = Some(who.to_owned());
        self
    }

    /// How long to wait for another process's migration lock before giving up with
    /// [`Error::LockTimeout`] (default 60 s).
    ///
    /// ```
    /// use migrate_runtime::{Error, Migrator, Progress};
    /// use std::sync::Barrier;
    /// use std::time::Duration;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// // Another deployment's run holds the lock: it pauses after its first batch (1 to 9),
    /// // before migration 10.
    /// let paused = Barrier::new(2);
    /// let pause = |progress: Progress<'_>| {
    ///     if matches!(progress, Progress::Applied(done) if done.version == 9) {
    ///         paused.wait();
    ///         paused.wait();
    ///     }
    /// };
    /// let other = Migrator::new(MIGRATIONS).on_progress(&pause);
    /// std::thread::scope(|scope| -> Result<(), Box<dyn std::error::Error>> {
    ///     let mut other_client = database.client()?;
    ///     let other_run = scope.spawn(move || other.run(&mut other_client));
    ///     paused.wait();
    ///
    ///     let migrator = Migrator::new(MIGRATIONS).lock_wait(Duration::from_millis(200));
    ///     let result = migrator.run(&mut database.client()?);
    ///     assert!(matches!(result, Err(Error::LockTimeout { .. })), "{result:?}");
    ///
    ///     paused.wait();
    ///     assert!(other_run.join().expect("the other run").is_ok());
    ///     Ok(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_wait(mut self, limit: Duration) -> Self {
        self.settings.lock_wait = limit;
        self
    }

    /// How long each migration's transaction waits for a lock on a table before it gives up
    /// and is retried (default [`DEFAULT_LOCK_TIMEOUT`](crate::DEFAULT_LOCK_TIMEOUT), 500 ms;
    /// `None` leaves the session's own `lock_timeout`, e.g. from `PGOPTIONS`).
    ///
    /// A schema change waiting for its lock queues every later query on that table behind
    /// it, so the wait is kept short: when it runs out the transaction is rolled back,
    /// nothing of it is recorded as failed, and it is tried again after a pause with jitter
    /// (see [`lock_retry_budget`](Self::lock_retry_budget)). A migration's own
    /// `-- migrate:lock-timeout 30s` (or `off`) replaces this value for that migration. The
    /// setting is `SET LOCAL` inside each transaction the run opens, after the migration lock
    /// is taken, so the session keeps its own value.
    ///
    /// ```
    /// // 001_settings_seen.sql records the `lock_timeout` its transaction sees.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/lock_timeouts");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// use std::time::Duration;
    /// let migrator = migrate_runtime::Migrator::new(&MIGRATIONS[..1])
    ///     .lock_timeout(Some(Duration::from_millis(200)));
    /// migrator.run(&mut client)?;
    /// let seen: String = client.query_one("SELECT lock_timeout FROM settings_seen", &[])?.get(0);
    /// assert_eq!(seen, "200ms");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_timeout(mut self, limit: Option<Duration>) -> Self {
        self.settings.lock_timeout = limit.filter(|limit| !limit.is_zero());
        self
    }

    /// The `statement_timeout` of each migration's transaction (default `None`: the
    /// session's own). A statement that runs longer is cancelled and its migration fails.
    ///
    /// ```
    /// // 001_settings_seen.sql records the `statement_timeout` its transaction sees.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/lock_timeouts");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// use std::time::Duration;
    /// let migrator = migrate_runtime::Migrator::new(&MIGRATIONS[..1])
    ///     .statement_timeout(Some(Duration::from_secs(300)));
    /// migrator.run(&mut client)?;
    /// let seen: String = client.query_one("SELECT statement_timeout FROM settings_seen", &[])?.get(0);
    /// assert_eq!(seen, "5min");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn statement_timeout(mut self, limit: Option<Duration>) -> Self {
        self.settings.statement_timeout = limit.filter(|limit| !limit.is_zero());
        self
    }

    /// How long one migration (or one grouped transaction) may keep being retried after it
    /// could not get its locks in time, a deadlock or a serialization failure, pauses
    /// included (default [`DEFAULT_RETRY_BUDGET`](crate::DEFAULT_RETRY_BUDGET), 60 s). When
    /// it runs out the run stops with [`Error::LockNotAvailable`], which names the sessions
    /// holding locks on the tables the migration names; the migration stays pending.
    ///
    /// ```
    /// use migrate_runtime::{Error, Migrator};
    /// use std::time::{Duration, Instant};
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
    /// // A session keeps `users` locked; migration 2 references it.
    /// let mut other = database.client()?;
    /// other.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")?;
    ///
    /// let started = Instant::now();
    /// let migrator = Migrator::new(&MIGRATIONS[..2])
    ///     .lock_timeout(Some(Duration::from_millis(100)))
    ///     .lock_retry_budget(Duration::from_secs(1));
    /// let result = migrator.run(&mut client);
    /// assert!(matches!(result, Err(Error::LockNotAvailable(_))), "{result:?}");
    /// assert!(started.elapsed() < Duration::from_secs(10)); // gave up after about a second
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_retry_budget(mut self, budget: Duration) -> Self {
        self.settings.retry.budget = budget;
        self
    }

    /// At most this many attempts per migration (or grouped transaction), within the retry
    /// budget (default: as many as the budget allows; `1` never retries).
    ///
    /// ```
    /// use migrate_runtime::{Error, Migrator, Progress};
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    ///
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
    /// // A session keeps `users` locked; migration 2 references it.
    /// let mut other = database.client()?;
    /// other.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")?;
    ///
    /// let retries = AtomicU32::new(0);
    /// let count = |progress: Progress<'_>| {
    ///     if let Progress::Waiting(_) = progress {
    ///         retries.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// };
    /// let migrator = Migrator::new(&MIGRATIONS[..2])
    ///     .lock_timeout(Some(Duration::from_millis(100)))
    ///     .lock_attempts(3)
    ///     .on_progress(&count);
    /// assert!(matches!(migrator.run(&mut client), Err(Error::LockNotAvailable(_))));
    /// assert_eq!(retries.load(Ordering::Relaxed), 2); // 3 attempts: 2 waits
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_attempts(mut self, attempts: u32) -> Self {
        self.settings.retry.max_attempts = Some(attempts.max(1));
        self
    }

    /// Runs each transactional migration under a data-safety policy: inside its transaction,
    /// before `COMMIT`, the row counts of the existing tables it names or touches, their
    /// columns and constraints, constraint validity and index validity are compared with the
    /// state before it, and a migration that breaks the policy is rolled back with
    /// [`Error::PolicyViolation`]. Migrations run one by one (no batching). No-transaction
    /// migrations cannot be rolled back and run as usual.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// use migrate_runtime::{Error, Migrator, SafetyPolicy};
    /// let migrator = Migrator::new(MIGRATIONS).safety(SafetyPolicy::default());
    /// // 1 to 7 only create tables. 008_platform_billing.sql adds constraints to an
    /// // existing table, which the default policy does not allow: it is rolled back.
    /// let result = migrator.run(&mut client);
    /// assert!(matches!(&result, Err(Error::PolicyViolation(violation)) if violation.version == 8), "{result:?}");
    /// assert_eq!(migrator.applied(&mut client)?.len(), 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn safety(mut self, policy: SafetyPolicy) -> Self {
        self.settings.safety = Some(policy);
        self
    }

    /// Calls `observer` after each migration is applied or reverted, as it happens (a run
    /// that fails part-way has still reported what it did before the failure). Each step is
    /// also logged at `info` level through the `log` crate.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// use migrate_runtime::{Migrator, Progress};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// let seen = AtomicUsize::new(0);
    /// let print = |progress: Progress<'_>| {
    ///     if let Progress::Applied(done) = progress {
    ///         println!("applied {} in {:?}", done.name, done.duration);
    ///         seen.fetch_add(1, Ordering::Relaxed);
    ///     }
    /// };
    /// let migrator = Migrator::new(MIGRATIONS).on_progress(&print);
    /// migrator.run(&mut client)?;
    /// assert_eq!(seen.load(Ordering::Relaxed), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_progress(mut self, observer: &'m (dyn Fn(Progress<'_>) + Send + Sync)) -> Self {
        self.observer = Observer(Some(observer));
        self
    }

    /// Lets `down` and `down_to` go through migrations without a DOWN section (an empty or
    /// comment-only one counts as none): each is recorded as rolled back without running any
    /// SQL, with a note in the action log, and what its UP did stays in the database. Off by
    /// default: such a migration refuses the revert before anything is reverted.
    ///
    /// ```
    /// // An up/down pair set in which `2_index-accounts.up.sql` has no `.down.sql`.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/updown");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).through_irreversible(true);
    /// let report = migrator.down_to(&mut client, 0)?;
    /// assert_eq!(report.reverted.len(), 3);
    /// assert!(migrator.applied(&mut client)?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn through_irreversible(mut self, through: bool) -> Self {
        self.settings.through_irreversible = through;
        self
    }

    /// How the lock is held; see [`LockScope`].
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS)
    ///     .lock_scope(migrate_runtime::LockScope::Transaction);
    /// // The no-transaction migration 10 is claimed by a `running` row, then applied.
    /// assert_eq!(migrator.run(&mut client)?.applied.len(), 10);
    /// assert_eq!(migrator.status(&mut client)?.pending(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lock_scope(mut self, scope: LockScope) -> Self {
        self.settings.lock_scope = scope;
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
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// let report = migrator.run(&mut client)?;
    /// assert_eq!(report.applied.first().map(|m| m.name.as_str()), Some("create_users"));
    /// // Nothing is pending any more: a second run applies nothing.
    /// assert!(migrator.run(&mut client)?.applied.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run(&self, client: &mut Client) -> Result<Report, Error> {
        plan::check_settings(self.migrations, &self.settings)?;
        #[cfg(debug_assertions)]
        crate::stale::warn_about_unembedded_files(self.migrations);
        // The common start-up: everything this binary would apply is applied, unchanged.
        // One round trip, one small row, no lock. Anything else (including a `failed` or
        // `running` row, which only the lock holder may judge) takes the full, locked path.
        let started = std::time::Instant::now();
        let expected = plan::expected_fingerprints(self.migrations, &self.settings);
        if let Some(found) = self
            .settings
            .tables
            .fingerprint(client)?
            .filter(|found| expected.contains(found))
        {
            log::info!(
                "migrations up to date: {} checked against {}, nothing to apply ({} ms)",
                self.migrations.len(),
                self.settings.tables.display(),
                started.elapsed().as_millis()
            );
            if found != expected[0] {
                log::info!("post-deploy migrations wait for `up --phase post-deploy` (Migrator::phase(Phase::PostDeploy))");
            }
            return Ok(Report::default());
        }
        let (mut run, pending, applied) = loop {
            let (run, applied) = Run::start(client, &self.settings, self.observer)?;
            match plan::pending(self.migrations, &self.settings, &applied) {
                // Behind a pooler there is no session lock to wait on, and a `running` row may
                // belong to a live run in the middle of a no-transaction migration: wait for
                // it to finish, as long as we would wait for the lock.
                Err(Error::Unfinished(unfinished))
                    if self.settings.lock_scope == LockScope::Transaction
                        && unfinished.status == MigrationStatus::Running
                        && started.elapsed() < self.settings.lock_wait =>
                {
                    drop(run);
                    std::thread::sleep(Duration::from_millis(50));
                }
                pending => break (run, pending?, applied),
            }
        };
        // Squashes whose replaced migrations were all applied one by one: recorded, no SQL.
        for (squash, replaced) in crate::squashed::reconcile(self.migrations, &applied)?.to_record {
            let sql = run.recorder().squash(squash, &replaced);
            run.client
                .simple_query(&sql)
                .map_err(Error::database("recording a squash"))?;
            log::info!(
                "squash {} ({}) recorded in place of {} migrations applied one by one; no SQL ran",
                squash.version(),
                squash.name(),
                replaced.len()
            );
        }
        for unit in plan::up(&pending, &self.settings) {
            execute::unit(&mut run, &unit)?;
        }
        Ok(run.into_report())
    }

    /// The history table's rows, in version order (empty before the first run). One round
    /// trip; takes no lock.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
    /// assert!(migrator.applied(&mut client)?.is_empty()); // before the first run
    /// migrator.run(&mut client)?;
    /// for row in migrator.applied(&mut client)? {
    ///     println!("{} {} {}", row.version, row.name, row.status);
    /// }
    /// assert_eq!(migrator.applied(&mut client)?.len(), 10);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn applied(&self, client: &mut Client) -> Result<Vec<AppliedMigration>, Error> {
        Ok(self.settings.tables.read(client)?.unwrap_or_default())
    }

    /// The [`SchemaSnapshot`] of the database `client` is connected to, leaving out this
    /// migrator's history tables. One round trip.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// # migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)?;
    /// let snapshot = migrate_runtime::Migrator::new(MIGRATIONS).schema_snapshot(&mut client)?;
    /// println!("{} objects", snapshot.objects().count());
    /// assert!(snapshot.objects().any(|(object, _)| object == "table public.users"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn schema_snapshot(&self, client: &mut Client) -> Result<SchemaSnapshot, Error> {
        let (schema, table) = self.settings.tables.names();
        SchemaSnapshot::read(client, schema, table)
    }

    /// The migrations `run` would apply, after checking the history against this binary.
    pub(crate) fn pending(
        &self,
        applied: &[AppliedMigration],
    ) -> Result<Vec<&'m Migration>, Error> {
        plan::pending(self.migrations, &self.settings, applied)
    }

    /// The migrations this migrator would leave applied: up to the target, in its environment.
    #[cfg(feature = "testing")]
    pub(crate) fn selected(&self) -> impl Iterator<Item = &'m Migration> + '_ {
        plan::selected(self.migrations, &self.settings)
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
        self.settings.target = None;
        self
    }
}
