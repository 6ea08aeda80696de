//! The failures that carry data of their own: a migration's SQL that failed (where, and
//! why), a no-transaction migration that stopped part-way, a migration the data-safety
//! policy refused. `Display` is one line; [`super::Error::render`] gives the full text.

use std::fmt;

use crate::terms::MigrationStatus;

/// A migration rolled back because it broke the [`crate::SafetyPolicy`].
///
/// ```
/// use migrate_runtime::{Error, Migrator, SafetyPolicy};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(MIGRATIONS).run(&mut client)?;
/// // 011_create_lancio_org.sql inserts a row into an existing table: the default policy
/// // does not allow row changes.
/// let migrator = Migrator::new(MIGRATIONS).environment("production").safety(SafetyPolicy::default());
/// match migrator.run(&mut client) {
///     Err(Error::PolicyViolation(violation)) => {
///         assert_eq!(violation.version, 11);
///         assert!(violation.problems[0].contains("row count"), "{:?}", violation.problems);
///     }
///     other => panic!("expected a policy violation, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyViolation {
    /// The migration's version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// Each thing it did that the policy forbids, e.g.
    /// `table public.users: row count changed from 100 to 95 (allow_row_changes is off)`.
    pub problems: Vec<String>,
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migration {} ({}) breaks the data-safety policy, so it was rolled back: {}",
            self.version,
            self.name,
            self.problems.join("; ")
        )
    }
}

/// Where and why a migration's SQL failed.
///
/// ```
/// use migrate_runtime::{Error, Migrator};
///
/// // 003_fill_c.sql inserts into a table that does not exist, on line 3.
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// match Migrator::new(MIGRATIONS).run(&mut client) {
///     Err(Error::MigrationFailed(failure)) => {
///         eprintln!("{}:{}: {}", failure.path, failure.line, failure.message);
///         assert_eq!((failure.version, failure.line), (3, 3));
///         assert_eq!(failure.sqlstate, "42P01"); // undefined_table
///     }
///     other => panic!("expected a failed migration, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFailure {
    /// The migration's version.
    pub version: i64,
    /// The migration's name.
    pub name: String,
    /// Whether its DOWN section was running (a revert), rather than its UP.
    pub reverting: bool,
    /// The file the failing SQL is in, relative to its crate.
    pub path: String,
    /// The 1-based line in that file: where the error is, or where the failing statement
    /// starts, or (when neither is known) where the section starts; see `located`.
    pub line: u32,
    /// The 1-based column, when the server said where the error is.
    pub column: Option<u32>,
    /// How `line` and `column` were found.
    pub located: Located,
    /// The SQLSTATE code, e.g. `42P01`.
    pub sqlstate: String,
    /// The server's message.
    pub message: String,
    /// The server's detail, if any.
    pub detail: Option<String>,
    /// The server's hint, if any.
    pub hint: Option<String>,
    /// For a migration that runs outside a transaction: which statement failed. The
    /// statements before it stay applied.
    pub statements: Option<StatementProgress>,
    /// Indexes PostgreSQL left `INVALID` (a failed `CREATE INDEX CONCURRENTLY` does that);
    /// each must be dropped before the migration can run again.
    pub invalid_indexes: Vec<String>,
}

/// How a [`MigrationFailure`]'s line was found.
///
/// ```
/// use migrate_runtime::{Error, Located, Migrator};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let Err(Error::MigrationFailed(failure)) = Migrator::new(MIGRATIONS).run(&mut client) else {
///     panic!("003_fill_c.sql fails");
/// };
/// let exact = match failure.located {
///     Located::Position => "line and column",
///     Located::Statement => "the failing statement's first line",
///     Located::SectionStart => "the section's first line",
///     _ => "somewhere",
/// };
/// println!("{}:{} ({exact})", failure.path, failure.line);
/// // The server said where `missing_table` is.
/// assert_eq!(failure.located, Located::Position);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Located {
    /// The server gave the error's position: line and column are exact.
    Position,
    /// The server gave no position; the failing statement was found by running the
    /// migration's statements one by one (in a transaction that was rolled back), and the
    /// line is where it starts.
    Statement,
    /// Neither: the line is where the migration's section starts (for example a deferred
    /// constraint that failed at `COMMIT`).
    SectionStart,
}

/// How far a no-transaction migration got before a statement failed.
///
/// ```
/// use migrate_runtime::{Error, Migrator, StatementProgress};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(&MIGRATIONS[..9]).run(&mut client)?;
/// # client.batch_execute("ALTER TABLE contracts RENAME COLUMN status TO state")?;
/// // Migration 10 builds four indexes outside a transaction; the second one's column was renamed.
/// let Err(Error::MigrationFailed(failure)) = Migrator::new(MIGRATIONS).run(&mut client) else {
///     panic!("migration 10 fails");
/// };
/// assert_eq!(failure.statements, Some(StatementProgress { failed: 2, total: 4 }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementProgress {
    /// The 1-based number of the statement that failed.
    pub failed: usize,
    /// How many statements the migration has.
    pub total: usize,
}

impl MigrationFailure {
    /// One line for the history table: SQLSTATE, message and location.
    ///
    /// ```
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let Err(migrate_runtime::Error::MigrationFailed(failure)) =
    ///     migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client)
    /// else {
    ///     panic!("003_fill_c.sql fails");
    /// };
    /// let summary = failure.summary();
    /// assert!(summary.starts_with("42P01: relation \"missing_table\" does not exist at "), "{summary}");
    /// assert!(summary.contains("003_fill_c.sql:3"), "{summary}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn summary(&self) -> String {
        let column = self.column.map(|c| format!(":{c}")).unwrap_or_default();
        let statement = self
            .statements
            .map(|s| format!(" (statement {} of {})", s.failed, s.total))
            .unwrap_or_default();
        let invalid = if self.invalid_indexes.is_empty() {
            String::new()
        } else {
            format!(" [left INVALID: {}]", self.invalid_indexes.join(", "))
        };
        format!(
            "{}: {} at {}:{}{column}{statement}{invalid}",
            self.sqlstate, self.message, self.path, self.line
        )
    }
}

impl fmt::Display for MigrationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.reverting {
            "reverting migration"
        } else {
            "migration"
        };
        let column = self.column.map(|c| format!(":{c}")).unwrap_or_default();
        write!(
            f,
            "{what} {} ({}) failed at {}:{}{column}: {} (SQLSTATE {})",
            self.version, self.name, self.path, self.line, self.message, self.sqlstate
        )
    }
}

/// A no-transaction migration that stopped part-way: what ran, and how to resolve it.
///
/// ```
/// use migrate_runtime::{Error, MigrationStatus, Migrator};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(&MIGRATIONS[..9]).run(&mut client)?;
/// # client.batch_execute("ALTER TABLE contracts RENAME COLUMN status TO state")?;
/// let migrator = Migrator::new(MIGRATIONS);
/// // Migration 10 (no transaction) fails on its second statement...
/// assert!(migrator.run(&mut client).is_err());
/// // ...and the next run refuses until someone says how it was resolved.
/// let Err(Error::Unfinished(unfinished)) = migrator.run(&mut client) else {
///     panic!("migration 10 is unfinished");
/// };
/// eprintln!("{unfinished}");
/// assert_eq!((unfinished.version, unfinished.status), (10, MigrationStatus::Failed));
/// assert_eq!(unfinished.statements_ran.len(), 1); // the first index was built
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The migration's version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Its file, when this binary has it.
    pub path: Option<String>,
    /// Failed or running.
    pub status: MigrationStatus,
    /// The error recorded when it failed.
    pub error_message: Option<String>,
    /// The statements known to have run (1-based number, file line, first line of text). For
    /// a `running` migration, which of them ran is unknown: this lists them all.
    pub statements_ran: Vec<(usize, u32, String)>,
    /// How many statements the migration has, when this binary has it.
    pub total_statements: Option<usize>,
}

impl fmt::Display for Unfinished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.status {
            MigrationStatus::Running => "was interrupted while running outside a transaction",
            _ => "failed part-way outside a transaction",
        };
        write!(
            f,
            "migration {} ({}) {what}; record how it was resolved with `repair`",
            self.version, self.name
        )
    }
}

/// What stood in a migration's way when its retries ran out ([`crate::Error::LockNotAvailable`]).
///
/// ```
/// use migrate_runtime::{Error, Migrator};
/// use std::time::Duration;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// # Migrator::new(&MIGRATIONS[..1]).run(&mut client)?;
/// // A session keeps `users` locked; migration 2 references it.
/// let mut other = database.client()?;
/// other.batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")?;
/// let other_pid: i32 = other.query_one("SELECT pg_backend_pid()", &[])?.get(0);
///
/// let migrator = Migrator::new(&MIGRATIONS[..2])
///     .lock_timeout(Some(Duration::from_millis(100)))
///     .lock_attempts(2);
/// let error = migrator.run(&mut client).unwrap_err();
/// if let Error::LockNotAvailable(contention) = &error {
///     for blocker in &contention.blockers {
///         eprintln!("blocked by pid {} ({})", blocker.pid, blocker.application_name);
///     }
///     assert!(contention.blockers.iter().any(|blocker| blocker.pid == other_pid));
/// } else {
///     panic!("expected lock contention, got {error:?}");
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockContention {
    /// What the runner was doing, naming the migrations ("applying migration 3 (add_note)").
    pub during: String,
    /// The file of the migration that waited, when one migration did.
    pub path: Option<String>,
    /// How many attempts were made.
    pub attempts: u32,
    /// From the first attempt to giving up, pauses included.
    pub waited: std::time::Duration,
    /// The lock wait each attempt had (`None`: the session's own `lock_timeout`).
    pub lock_timeout: Option<crate::LockTimeout>,
    /// The server's message for the last attempt ("canceling statement due to lock timeout").
    pub message: String,
    /// Its SQLSTATE (55P03 lock_not_available, 40P01 deadlock, 40001 serialization failure).
    pub sqlstate: postgres::error::SqlState,
    /// Sessions that held locks on the tables the migration names when it gave up, the
    /// longest-running first (empty when none was found: the blocker may have just ended).
    pub blockers: Vec<crate::Blocker>,
}

impl fmt::Display for LockContention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "gave up {} after {} attempt(s) in {} ms: {}",
            self.during,
            self.attempts,
            self.waited.as_millis(),
            self.message
        )?;
        if let Some(blocker) = self.blockers.first() {
            write!(
                f,
                " (blocked by pid {}, `{}`)",
                blocker.pid, blocker.application_name
            )?;
        }
        Ok(())
    }
}
