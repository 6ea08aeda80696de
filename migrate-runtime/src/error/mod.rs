//! The runtime's one error type, as data: each variant names what happened with the fields
//! that say where (file, line, version). `Display` is one lowercase line; the compiler-style
//! text with `-->` locations and `help:` lines is [`Error::render`]'s, and `Debug`'s too (what
//! `main` returning the error prints); `{:#?}` shows the variant and its fields. None of it
//! ever holds a password.

mod debug;
mod failure;
mod render;

use std::time::Duration;

use postgres::error::SqlState;

pub use failure::{
    Located, LockContention, MigrationFailure, PolicyViolation, StatementProgress, Unfinished,
};
pub use render::Rendered;

use crate::terms::{MigrationStatus, OtherTool, Repair};
use crate::Checksum;

/// Everything that can go wrong while checking or applying migrations.
///
/// `{}` is one line; [`render`](Error::render) and `{:?}` are the full text (so
/// `fn main() -> Result<(), Box<dyn std::error::Error>>` prints `Error: error: migration 3
/// (...) failed`, its `-->` file and line, and the server's detail and hint); `{:#?}` is the
/// variant and its fields.
///
/// ```
/// use migrate_runtime::{Error, Migrator};
///
/// // 003_fill_c.sql inserts into a table that does not exist.
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// match Migrator::new(MIGRATIONS).run(&mut client) {
///     Ok(report) => println!("applied {}", report.applied.len()),
///     Err(Error::MigrationFailed(failure)) => eprintln!("{} at line {}", failure.path, failure.line),
///     Err(other) => eprintln!("{}", other.render()),
/// }
/// let error = Migrator::new(MIGRATIONS).run(&mut client).unwrap_err();
/// assert!(matches!(&error, Error::MigrationFailed(failure) if failure.version == 3));
/// // One line for `{}`, the full text for `{:?}` and `render`.
/// assert!(!error.to_string().contains('\n'));
/// assert_eq!(format!("{error:?}"), error.render().to_string());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A migration's SQL failed; nothing of it was kept (transactional migrations).
    #[error("{0}")]
    MigrationFailed(Box<MigrationFailure>),

    /// An applied migration's file changed after it was applied.
    #[error("migration {version} ({name}) was changed after it was applied ({path})")]
    ChecksumMismatch {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: String,
        /// The file, relative to its crate.
        path: String,
        /// The checksum recorded in the database.
        applied: String,
        /// The checksum of the migration in this binary.
        embedded: Checksum,
    },

    /// The database applied a different migration under this version: two branches chose the
    /// same number (the names differ, and so do the checksums).
    #[error("version {version} is two different migrations: the database applied `{applied_name}`, this binary has `{name}` ({path})")]
    VersionConflict {
        /// The version both use.
        version: i64,
        /// The name the database recorded.
        applied_name: String,
        /// The name in this binary.
        name: String,
        /// This binary's file.
        path: String,
    },

    /// A pending migration would drop, alter or truncate this runtime's own history table;
    /// nothing was run.
    #[error("migration {version} ({name}) would change the history table {table} ({path}:{line})")]
    TouchesHistoryTable {
        /// The migration's version.
        version: i64,
        /// Its name.
        name: String,
        /// The file.
        path: String,
        /// The statement's line.
        line: u32,
        /// The history table it names, as `schema.table`.
        table: String,
    },

    /// The database has applied migrations that this binary does not contain: it is older
    /// than the database.
    #[error(
        "the database has {} applied migration(s) this binary does not contain: {}",
        .0.len(),
        render::list_versions(.0)
    )]
    MissingFromBinary(Vec<(i64, String)>),

    /// A pending migration has a lower version than one already applied.
    #[error(
        "migration {version} ({name}) is pending but version {highest_applied} is already applied"
    )]
    OutOfOrder {
        /// The pending migration's version.
        version: i64,
        /// The pending migration's name.
        name: String,
        /// Its file.
        path: String,
        /// The highest version applied so far.
        highest_applied: i64,
    },

    /// The database applied some, but not all, of the migrations a squash replaces (or
    /// applied them with other checksums): it cannot take the squash, which stands for all of
    /// them at once.
    #[error("squash {} ({}) replaces migrations {}..={}; the database applied only some of them", .0.version, .0.name, .0.first, .0.last)]
    PartlySquashed(Box<PartlySquashed>),

    /// The history table records a no-transaction migration as `failed`, or as `running`
    /// with no live process behind it: it stopped part-way, and what it did is not undone.
    #[error("{0}")]
    Unfinished(Box<Unfinished>),

    /// Another session held the migration lock for longer than the configured wait.
    #[error(
        "waited {} for the migration lock on {table}, held by {}",
        render::describe_wait(*waited),
        render::describe_holder(*holder_pid, holder_application.as_deref())
    )]
    LockTimeout {
        /// The history table whose lock was wanted.
        table: String,
        /// How long the run waited.
        waited: Duration,
        /// The server process id of the session holding the lock, if it could be found.
        holder_pid: Option<i32>,
        /// That session's `application_name`.
        holder_application: Option<String>,
    },

    /// A migration's transaction could not get the locks it needs (or lost a deadlock) on
    /// every attempt within the retry budget ([`crate::Migrator::lock_retry_budget`]). Each
    /// attempt was rolled back: nothing of it is applied, and it stays pending.
    #[error("{0}")]
    LockNotAvailable(Box<LockContention>),

    /// The run holds a session-level migration lock, but its messages reach PostgreSQL through
    /// a transaction pooler (PgBouncer in transaction mode, ...), which hands each transaction
    /// to whichever server session is free: the lock protects nothing there. Nothing more
    /// was run once this was seen.
    #[error("the migration lock is session-level, but a transaction pooler moves this run between server sessions")]
    BehindTransactionPooler,

    /// A migration to revert has no DOWN section; nothing was reverted.
    #[error("migration {version} ({name}) cannot be reverted: it has no DOWN section")]
    Irreversible {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: String,
        /// Its file.
        path: String,
    },

    /// The history schema or table name cannot be used as given.
    #[error("{}", render::history_name(schema, table, *problem))]
    HistoryTableName {
        /// The schema asked for.
        schema: String,
        /// The table asked for.
        table: String,
        /// What is wrong with them.
        problem: HistoryNameProblem,
    },

    /// Grouped mode and the data-safety policy were both asked for.
    #[error("data-safety checks roll back one migration at a time, so they cannot be combined with grouped mode")]
    GroupedWithSafety,

    /// Grouped mode was asked for, but a migration runs outside any transaction.
    #[error(
        "grouped mode runs everything in one transaction, but {path} runs outside any transaction"
    )]
    GroupedNoTransaction {
        /// That migration's version.
        version: i64,
        /// Its file.
        path: String,
    },

    /// `redo` was asked for a version that is not applied.
    #[error("redo {version}: that version is not applied")]
    NotApplied {
        /// The version.
        version: i64,
    },

    /// A migration of one set requires (`-- migrate:requires set:version`) a migration of
    /// another set that is not given to [`crate::Migrator::sets`] (`known: false`, refused
    /// before anything runs), or that cannot be applied before it (`known: true`: the sets
    /// wait for each other).
    #[error("{set}:{version} requires {requires_set}:{requires_version}, which {}", if *known { "cannot be applied before it" } else { "no set given has" })]
    UnmetSetRequirement {
        /// The set of the migration that has the requirement.
        set: String,
        /// That migration's version.
        version: i64,
        /// Its file.
        path: String,
        /// The set it requires a migration of.
        requires_set: String,
        /// The version it requires.
        requires_version: i64,
        /// Whether that set and version exist among the sets given.
        known: bool,
    },

    /// `squash` cannot replace the migrations up to `version` with one file.
    #[error("cannot squash through {version}: {reason}")]
    CannotSquash {
        /// The version asked for.
        version: i64,
        /// Why, and what to do instead.
        reason: String,
    },

    /// `baseline` was asked for a version this binary does not have.
    #[error("baseline {version}: no migration in this binary has that version")]
    UnknownVersion {
        /// The version.
        version: i64,
    },

    /// `baseline_from` needs an empty history table.
    #[error("{table} already has {rows} row(s); importing another tool's history needs it empty")]
    HistoryNotEmpty {
        /// The history table, as `schema.table`.
        table: String,
        /// How many rows it has.
        rows: usize,
    },

    /// `baseline_from` found no history of that tool.
    #[error("this database has no `{}` table to import", tool.table())]
    NoOtherHistory {
        /// The tool.
        tool: OtherTool,
    },

    /// `baseline_from` found a version in the other tool's history it cannot read.
    #[error("{}: {why}", tool.table())]
    UnreadableOtherHistory {
        /// The tool.
        tool: OtherTool,
        /// What is wrong with the version.
        why: String,
    },

    /// The table named as this runtime's history holds another tool's history (dbmate's,
    /// Rails' or golang-migrate's `schema_migrations`, or a shape not known): nothing was run.
    #[error(
        "{schema}.{table} is not this runtime's history table{}",
        render::looks_like(*tool)
    )]
    ForeignHistoryTable {
        /// The history schema.
        schema: String,
        /// The history table name.
        table: String,
        /// The tool whose table it looks like, when its shape is one we know.
        tool: Option<OtherTool>,
        /// Its columns, `name type`, in order.
        columns: Vec<String>,
    },

    /// golang-migrate's history says its last migration failed part-way (`dirty`), so what
    /// it applied is not known; nothing was imported.
    #[error("golang-migrate's schema_migrations marks version {version} dirty: it failed part-way, so what it applied is not known")]
    OtherHistoryDirty {
        /// The version golang-migrate was applying.
        version: i64,
    },

    /// `repair` and `baseline` record a reason, and none was given.
    #[error("say why: the reason is recorded in the action log")]
    ReasonRequired,

    /// `repair` was asked for something the migration's state does not allow.
    #[error("nothing to repair: {}", render::nothing_to_repair(*version, *repair, *status, *in_binary))]
    NothingToRepair {
        /// The version.
        version: i64,
        /// What was asked for.
        repair: Repair,
        /// The version's state in the history (`None`: it has no row).
        status: Option<MigrationStatus>,
        /// Whether this binary has the migration.
        in_binary: bool,
    },

    /// The connection was lost in the middle of a run: the server crashed or restarted, the
    /// backend was terminated, or the network failed. Each transactional migration committed
    /// together with its history row or not at all; a no-transaction migration that was cut off
    /// stays `running`, and the next run says what to do.
    #[error("the connection to the database was lost while {during}")]
    ConnectionLost {
        /// What the runner was doing, naming the migrations.
        during: String,
        /// A no-transaction migration was running: some of its statements may have run.
        outside_transaction: bool,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },

    /// A migration broke the data-safety policy ([`crate::Migrator::safety`]) and was rolled back.
    #[error("{0}")]
    PolicyViolation(Box<PolicyViolation>),

    /// The throwaway server that `verify` and `drift` use failed.
    #[cfg(feature = "testing")]
    #[error("the throwaway PostgreSQL server failed")]
    Throwaway(#[source] Box<crate::testing::TestServerError>),

    /// The connection settings are unusable, or connecting failed (the async entry points of
    /// `migrate_runtime::tokio` connect for the caller): nothing was attempted.
    #[error("no usable database connection")]
    Connect(#[source] Box<crate::config::ConfigError>),

    /// The blocking task that ran the operation for async code panicked or was cancelled
    /// (its runtime shutting down); what it committed before that stays committed.
    #[error("the migration task did not finish: {why}")]
    TaskFailed {
        /// What happened to it.
        why: String,
    },

    /// The database refused or lost the connection, outside of a migration's own SQL.
    #[error("database error while {context}")]
    Database {
        /// What the runner was doing.
        context: String,
        /// The driver's error (never includes connection parameters).
        #[source]
        source: postgres::Error,
    },
}

/// What is wrong with a history schema or table name ([`Error::HistoryTableName`]).
///
/// ```
/// use migrate_runtime::{Error, HistoryNameProblem, Migrator};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = Migrator::new(MIGRATIONS).history_table("public", &"m".repeat(60));
/// match migrator.run(&mut client) {
///     Err(Error::HistoryTableName { problem, .. }) => assert_eq!(problem, HistoryNameProblem::TableTooLong),
///     other => panic!("expected a refused name, got {other:?}"),
/// }
/// // Nothing was created.
/// assert_eq!(client.query("SELECT 1 FROM pg_tables WHERE schemaname = 'public'", &[])?.len(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HistoryNameProblem {
    /// The schema or the table name is empty.
    Empty,
    /// The schema name holds a NUL character.
    NulInSchema,
    /// The table name holds a NUL character.
    NulInTable,
    /// The schema name is longer than the 63 bytes PostgreSQL keeps of a name.
    SchemaTooLong,
    /// The table name leaves no room in 63 bytes for the action log's `_history` suffix.
    TableTooLong,
}

impl From<crate::config::ConfigError> for Error {
    fn from(error: crate::config::ConfigError) -> Error {
        Error::Connect(Box::new(error))
    }
}

#[cfg(feature = "testing")]
impl From<crate::testing::TestServerError> for Error {
    fn from(error: crate::testing::TestServerError) -> Error {
        Error::Throwaway(Box::new(error))
    }
}

impl Error {
    /// The SQLSTATE of the underlying server error, when there is one, as the driver's
    /// typed code.
    ///
    /// ```
    /// use postgres::error::SqlState;
    ///
    /// // 003_fill_c.sql inserts into a table that does not exist.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// let error = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client).unwrap_err();
    /// if error.sqlstate() == Some(SqlState::UNDEFINED_TABLE) {
    ///     eprintln!("a migration refers to a table that does not exist");
    /// }
    /// assert_eq!(error.sqlstate(), Some(SqlState::UNDEFINED_TABLE));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sqlstate(&self) -> Option<SqlState> {
        match self {
            Error::MigrationFailed(failure) => Some(SqlState::from_code(&failure.sqlstate)),
            Error::LockNotAvailable(contention) => Some(contention.sqlstate.clone()),
            Error::Database { source, .. } | Error::ConnectionLost { source, .. } => {
                source.code().cloned()
            }
            _ => None,
        }
    }

    pub(crate) fn database(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }
}

/// What [`Error::PartlySquashed`] found: which of the migrations a squash replaces the
/// database applied, and which not.
///
/// ```
/// fn explain(error: &migrate_runtime::Error) {
///     if let migrate_runtime::Error::PartlySquashed(gap) = error {
///         eprintln!("reach {} with the previous release first; missing {:?}", gap.last, gap.missing);
///     }
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartlySquashed {
    /// The squash's version.
    pub version: i64,
    /// The squash's name.
    pub name: String,
    /// Its file.
    pub path: String,
    /// The lowest version it replaces.
    pub first: i64,
    /// The highest version it replaces.
    pub last: i64,
    /// Replaced versions the database has applied.
    pub applied: Vec<i64>,
    /// Replaced versions the database has not applied.
    pub missing: Vec<i64>,
    /// Replaced versions applied with another checksum than the squash records.
    pub differing: Vec<i64>,
}
