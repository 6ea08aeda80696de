//! The runtime's one error type. Each variant says what happened, where (file, line, version)
//! and what to do; none of them ever contains a password.

use std::fmt;
use std::time::Duration;

use crate::Checksum;

/// Everything that can go wrong while checking or applying migrations.
///
/// ```no_run
/// # fn demo(client: &mut postgres::Client, migrations: &[migrate_runtime::Migration]) {
/// use migrate_runtime::{Error, Migrator};
///
/// match Migrator::new(migrations).run(client) {
///     Ok(report) => println!("applied {}", report.applied.len()),
///     Err(Error::MigrationFailed(failure)) => eprintln!("{failure}"),
///     Err(other) => eprintln!("{other}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A migration's SQL failed; nothing of it was kept (transactional migrations).
    #[error("{0}")]
    MigrationFailed(Box<MigrationFailure>),

    /// An applied migration's file changed after it was applied.
    #[error(
        "error: migration {version} ({name}) was changed after it was applied\n  --> {path}\n   = applied checksum:  {applied}\n   = embedded checksum: {embedded}\n   = help: restore the file as it was when applied (see its version control history) and put the change in a new migration\n   = help: if the edit changes nothing in the database (a comment, formatting), accept it: `migrate repair {version} --mark accept-checksum --reason \"...\" --yes`"
    )]
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

    /// The database has applied migrations that this binary does not contain: it is older
    /// than the database.
    #[error(
        "error: the database has {} applied migration(s) this binary does not contain: {}\n   = help: this binary is older than the database; deploy the build that contains them (or newer)",
        .0.len(),
        list_versions(.0)
    )]
    MissingFromBinary(Vec<(i64, String)>),

    /// A pending migration has a lower version than one already applied.
    #[error(
        "error: migration {version} ({name}) is pending but version {highest_applied} is already applied\n  --> {path}\n   = help: give the new migration a version above {highest_applied}, or allow out-of-order migrations if applying it late is intended"
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

    /// The history table records a no-transaction migration as `failed`, or as `running`
    /// with no live process behind it: it stopped part-way, and what it did is not undone.
    #[error("{0}")]
    Unfinished(Box<Unfinished>),

    /// Another session held the migration lock for longer than the configured wait.
    #[error(
        "error: waited {} for the migration lock on {table}, held by {}\n   = help: another process is migrating this database; wait for it, or stop it if it is stuck",
        describe_wait(*waited),
        describe_holder(*holder_pid, holder_application.as_deref())
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

    /// A migration to revert has no DOWN section; nothing was reverted.
    #[error(
        "error: migration {version} ({name}) cannot be reverted: it has no DOWN section; nothing was reverted\n  --> {path}\n   = help: add a `-- migrate:down` section (it does not change the checksum), or revert by hand and use `repair`"
    )]
    Irreversible {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: String,
        /// Its file.
        path: String,
    },

    /// A setting given to the [`crate::Migrator`] cannot be used.
    #[error("error: invalid migrator setting: {0}")]
    InvalidSetting(String),

    /// The connection was lost in the middle of a run: the server crashed or restarted, the
    /// backend was terminated, or the network failed. Each transactional migration committed
    /// together with its history row or not at all; a no-transaction migration that was cut off
    /// stays `running`, and the next run says what to do.
    #[error(
        "error: the connection to the database was lost while {during}: {}\n   = help: {}",
        describe_source(source),
        if *outside_transaction { LOST_OUTSIDE_TRANSACTION } else { LOST_IN_TRANSACTIONS }
    )]
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
    #[error("error: the throwaway PostgreSQL server: {0}")]
    Throwaway(Box<crate::testing::TestServerError>),

    /// The database refused or lost the connection, outside of a migration's own SQL.
    #[error("error: database error while {context}: {}", describe_source(source))]
    Database {
        /// What the runner was doing.
        context: String,
        /// The driver's error (never includes connection parameters).
        #[source]
        source: postgres::Error,
    },
}

#[cfg(feature = "testing")]
impl From<crate::testing::TestServerError> for Error {
    fn from(error: crate::testing::TestServerError) -> Error {
        Error::Throwaway(Box::new(error))
    }
}

impl Error {
    /// The SQLSTATE of the underlying server error, when there is one.
    ///
    /// ```no_run
    /// # fn demo(error: migrate_runtime::Error) {
    /// if error.sqlstate() == Some("42P01") {
    ///     eprintln!("a migration refers to a table that does not exist");
    /// }
    /// # }
    /// ```
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::MigrationFailed(failure) => Some(&failure.sqlstate),
            Error::Database { source, .. } | Error::ConnectionLost { source, .. } => {
                source.code().map(|code| code.code())
            }
            _ => None,
        }
    }

    pub(crate) fn database(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }
}

/// A migration rolled back because it broke the [`crate::SafetyPolicy`].
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
        writeln!(
            f,
            "error: migration {} ({}) breaks the data-safety policy, so it was rolled back",
            self.version, self.name
        )?;
        writeln!(f, "  --> {}", self.path)?;
        for problem in &self.problems {
            writeln!(f, "   = {problem}")?;
        }
        write!(
            f,
            "   = help: nothing of it was kept; if this is intended, allow it in the policy for this run"
        )
    }
}

/// Where and why a migration's SQL failed.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatementProgress {
    /// The 1-based number of the statement that failed.
    pub failed: usize,
    /// How many statements the migration has.
    pub total: usize,
}

impl MigrationFailure {
    /// One line for the history table: SQLSTATE, message and location.
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
        writeln!(
            f,
            "error: {what} {} ({}) failed: {}",
            self.version, self.name, self.message
        )?;
        match (self.column, self.located) {
            (Some(column), _) => writeln!(f, "  --> {}:{}:{column}", self.path, self.line)?,
            // The statement is known (it ran on its own), only the column is not.
            (None, Located::Statement | Located::Position) => {
                writeln!(f, "  --> {}:{}", self.path, self.line)?
            }
            (None, Located::SectionStart) => writeln!(
                f,
                "  --> {}:{} (where the migration starts: the server did not say which statement)",
                self.path, self.line
            )?,
        }
        write!(f, "   = SQLSTATE {}", self.sqlstate)?;
        if let Some(detail) = &self.detail {
            write!(f, "\n   = detail: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n   = hint: {hint}")?;
        }
        for index in &self.invalid_indexes {
            write!(
                f,
                "\n   = note: PostgreSQL left index {index} INVALID; drop it (DROP INDEX CONCURRENTLY {index}) before the migration runs again"
            )?;
        }
        match self.statements {
            None if self.reverting => write!(
                f,
                "\n   = note: nothing of the revert was kept; the migration stays applied"
            ),
            None => write!(
                f,
                "\n   = note: nothing of this migration was kept; migrations before it stay applied"
            ),
            Some(progress) => write!(
                f,
                "\n   = note: statement {} of {} failed; this migration runs outside a transaction, so the {} statement(s) before it stay applied\n   = help: fix the database by hand (finish or undo those statements), then run `repair` to mark the migration rolled back or applied",
                progress.failed,
                progress.total,
                progress.failed - 1
            ),
        }
    }
}

/// A no-transaction migration that stopped part-way: what ran, and how to resolve it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The migration's version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// Its file, when this binary has it.
    pub path: Option<String>,
    /// Failed or running.
    pub status: crate::MigrationStatus,
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
        let version = self.version;
        if self.status == crate::MigrationStatus::Running {
            writeln!(
                f,
                "error: migration {version} ({}) was interrupted while running outside a transaction (its process was killed or lost its connection)",
                self.name
            )?;
        } else {
            writeln!(
                f,
                "error: migration {version} ({}) failed part-way outside a transaction, and what it did is not undone",
                self.name
            )?;
        }
        if let Some(path) = &self.path {
            writeln!(f, "  --> {path}")?;
        }
        if let Some(error) = &self.error_message {
            writeln!(f, "   = recorded error: {error}")?;
        }
        let heading = if self.status == crate::MigrationStatus::Running {
            "statements that may have run"
        } else {
            "statements that ran and stay applied"
        };
        if self.statements_ran.is_empty() {
            writeln!(f, "   = {heading}: none")?;
        } else {
            writeln!(f, "   = {heading}:")?;
            for (number, line, text) in &self.statements_ran {
                writeln!(f, "       {number}. line {line}: {text}")?;
            }
        }
        write!(
            f,
            "   = help: finish or undo those statements by hand, then record the outcome:\n       \
             it should run again:  migrate repair {version} --mark rolled-back --reason \"...\"\n       \
             it is now complete:   migrate repair {version} --mark applied --reason \"...\"\n       \
             (from Rust: migrator.repair(&mut client, {version}, Repair::RolledBack or Repair::Applied, reason))"
        )
    }
}

const LOST_IN_TRANSACTIONS: &str = "each migration commits together with its history row or not at all; `status` shows which ones committed, and running again applies the rest";
const LOST_OUTSIDE_TRANSACTION: &str = "it was running outside a transaction, so some of its statements may have run; its history row stays `running`, and the next run lists them and says how to finish";

/// The server's own message when it sent one (the driver's `Display` says only "db error"),
/// else the driver's words.
fn describe_source(source: &postgres::Error) -> String {
    match source.as_db_error() {
        Some(db) => format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => source.to_string(),
    }
}

fn list_versions(missing: &[(i64, String)]) -> String {
    missing
        .iter()
        .map(|(version, name)| format!("{version} ({name})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A wait as people write it: `300 ms`, `4.2 s`, `60 s`.
fn describe_wait(waited: Duration) -> String {
    match waited.as_millis() {
        ms @ 0..1_000 => format!("{ms} ms"),
        ms @ 1_000..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} s", waited.as_secs()),
    }
}

fn describe_holder(pid: Option<i32>, application: Option<&str>) -> String {
    match (pid, application) {
        (Some(pid), Some(app)) if !app.is_empty() => {
            format!("pid {pid} (application_name `{app}`)")
        }
        (Some(pid), _) => format!("pid {pid}"),
        (None, _) => "a session that has since released it".to_owned(),
    }
}
