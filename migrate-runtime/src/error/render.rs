//! The compiler-style text of an error, as the command line, the HTTP endpoint and
//! applications show it: what happened, `-->` where, the server's detail and hint, and
//! `help:` lines that say what to do.

use std::fmt;
use std::time::Duration;

use postgres::error::SqlState;

use super::failure::{Located, LockContention, MigrationFailure, PolicyViolation, Unfinished};
use super::{Error, HistoryNameProblem, PartlySquashed};
use crate::terms::{MigrationStatus, OtherTool, Repair};

/// An error's full text ([`Error::render`], [`MigrationFailure::render`]).
///
/// ```
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let error = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client).unwrap_err();
/// let rendered: migrate_runtime::Rendered<'_> = error.render();
/// let text = rendered.to_string();
/// assert!(text.starts_with("error: migration 3 (fill_c) failed"), "{text}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Rendered<'a>(Target<'a>);

#[derive(Clone, Copy, Debug)]
enum Target<'a> {
    Error(&'a Error),
    Failure(&'a MigrationFailure),
}

impl Error {
    /// The full text, as the command line prints it: what happened, where (`-->` file, line
    /// and column), the server's detail and hint, and `help:` lines that say what to do.
    ///
    /// ```
    /// // 003_fill_c.sql inserts into a table that does not exist, on line 3.
    /// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../tests/fixtures/valid/fails_at_run");
    /// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
    /// # let mut client = database.client()?;
    /// if let Err(error) = migrate_runtime::Migrator::new(MIGRATIONS).run(&mut client) {
    ///     eprintln!("{}", error.render());
    /// #   let text = error.render().to_string();
    /// #   assert!(text.contains("--> ../tests/fixtures/valid/fails_at_run/003_fill_c.sql:3"), "{text}");
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn render(&self) -> Rendered<'_> {
        Rendered(Target::Error(self))
    }
}

impl MigrationFailure {
    /// The full text of the failure (see [`Error::render`]).
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
    /// eprintln!("{}", failure.render());
    /// let text = failure.render().to_string();
    /// assert!(text.contains("relation \"missing_table\" does not exist"), "{text}");
    /// assert!(text.contains("003_fill_c.sql:3"), "{text}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn render(&self) -> Rendered<'_> {
        Rendered(Target::Failure(self))
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = match self.0 {
            Target::Failure(failure) => return migration_failure(f, failure),
            Target::Error(error) => error,
        };
        match error {
            Error::MigrationFailed(failure) => migration_failure(f, failure),
            Error::ChecksumMismatch {
                version,
                name,
                path,
                applied,
                embedded,
            } => write!(
                f,
                "error: migration {version} ({name}) was changed after it was applied\n  --> {path}\n   = applied checksum:  {applied}\n   = embedded checksum: {embedded}\n   = help: restore the file as it was when applied (see its version control history) and put the change in a new migration\n   = help: if the edit changes nothing in the database (a comment, formatting), accept it: `migrate repair {version} --mark accept-checksum --reason \"...\" --yes`"
            ),
            Error::VersionConflict {
                version,
                applied_name,
                name,
                path,
            } => write!(
                f,
                "error: version {version} is two different migrations: the database applied `{applied_name}`, this binary has `{name}`\n  --> {path}\n   = note: two branches gave their migrations the same version; `{name}` has not run here\n   = help: bring `{applied_name}` (version {version}) into this build, and give `{name}` a version above the highest applied one (rename {path}), then build and run again"
            ),
            Error::TouchesHistoryTable {
                version,
                name,
                path,
                line,
                table,
            } => write!(
                f,
                "error: migration {version} ({name}) would drop or change {table}, the table this runtime keeps its history in\n  --> {path}:{line}\n   = note: nothing was run; an older tool probably kept its own history under the same name\n   = help: keep this runtime's history under another name: `migrate --history-table migrate_history up` (from Rust: `.history_table(\"public\", \"migrate_history\")`)"
            ),
            Error::MissingFromBinary(_) => write!(
                f,
                "error: {error}\n   = help: this binary is older than the database; deploy the build that contains them (or newer)"
            ),
            Error::OutOfOrder {
                version,
                name,
                path,
                highest_applied,
            } => write!(
                f,
                "error: migration {version} ({name}) is pending but version {highest_applied} is already applied\n  --> {path}\n   = help: give the new migration a version above {highest_applied}, or, if applying it late is intended, write `-- migrate:out-of-order ok` in its header (or allow all out-of-order migrations: `up --allow-out-of-order`, `Migrator::allow_out_of_order(true)`)"
            ),
            Error::PartlySquashed(gap) => {
                let PartlySquashed {
                    version,
                    name,
                    path,
                    first,
                    last,
                    applied,
                    missing,
                    differing,
                } = &**gap;
                let list = |versions: &[i64]| {
                    versions.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
                };
                write!(f, "error: squash {version} ({name}) replaces migrations {first}..={last}, and the database applied only some of them: nothing was applied
  --> {path}")?;
                if !applied.is_empty() {
                    write!(f, "
   = note: applied: {}", list(applied))?;
                }
                if !missing.is_empty() {
                    write!(f, "
   = note: not applied: {}", list(missing))?;
                }
                if !differing.is_empty() {
                    write!(f, "
   = note: applied with other checksums than the squash records: {}", list(differing))?;
                }
                write!(f, "
   = help: bring this database to version {last} with a release that still has the migrations {first}..={last} (its `migrate up --to {last}`); this binary then records the squash without running it")
            }
            Error::Unfinished(stopped) => unfinished(f, stopped),
            Error::LockTimeout { .. } => write!(
                f,
                "error: {error}\n   = help: another process is migrating this database; wait for it, or stop it if it is stuck"
            ),
            Error::LockNotAvailable(contention) => lock_contention(f, contention),
            // The connection error's own text is already compiler-style, help included.
            Error::Connect(error) => write!(f, "{error}"),
            Error::TaskFailed { .. } => write!(
                f,
                "error: {error}\n   = help: `status` shows what was applied; a panic's message was printed where it happened"
            ),
            Error::BehindTransactionPooler => write!(
                f,
                "error: {error}\n   = note: nothing more was run once this was seen; what was reported applied before it is applied\n   = note: the lock may stay on one of the pooler's server connections until the pooler closes it (PgBouncer: `RECONNECT` in its admin console); a run with lock scope `transaction` that lands there releases it\n   = help: behind a transaction pooler, use lock scope `transaction`: `migrate --lock-scope transaction up` (from Rust: `.lock_scope(LockScope::Transaction)`), or connect to PostgreSQL directly"
            ),
            Error::Irreversible { version, name, path } => write!(
                f,
                "error: migration {version} ({name}) cannot be reverted: it has no DOWN section; nothing was reverted\n  --> {path}\n   = help: add a `-- migrate:down` section (it does not change the checksum), or, to go on past it without running any SQL (what its UP did stays), `migrate down --through-irreversible`"
            ),
            Error::ForeignHistoryTable {
                schema,
                table,
                tool,
                columns,
            } => foreign_history_table(f, schema, table, *tool, columns),
            Error::OtherHistoryDirty { version } => write!(
                f,
                "error: {error}; nothing was imported\n   = help: finish or undo version {version} by hand, then clear the flag as golang-migrate does (`migrate -database URL force {version}`, or `UPDATE schema_migrations SET dirty = false`), and import again"
            ),
            Error::CannotSquash { .. } => write!(f, "error: {error}; nothing was written"),
            Error::UnmetSetRequirement { path, known: false, .. } => write!(
                f,
                "error: {error}; nothing was applied\n  --> {path}\n   = help: give that set to `Migrator::sets` too (its name as in `MigrationSet::new`), or correct the `-- migrate:requires` line"
            ),
            Error::UnmetSetRequirement { path, requires_set, requires_version, .. } => write!(
                f,
                "error: {error}: the sets wait for each other; migrations that could run were applied\n  --> {path}\n   = help: {requires_set}:{requires_version} itself waits for a migration that comes after this one: remove one of the requirements that form the cycle"
            ),
            Error::HistoryTableName { .. }
            | Error::GroupedWithSafety
            | Error::GroupedNoTransaction { .. }
            | Error::NotApplied { .. }
            | Error::UnknownVersion { .. }
            | Error::HistoryNotEmpty { .. }
            | Error::NoOtherHistory { .. }
            | Error::UnreadableOtherHistory { .. }
            | Error::ReasonRequired
            | Error::NothingToRepair { .. } => {
                write!(f, "error: invalid migrator setting: {error}")
            }
            Error::ConnectionLost {
                during,
                outside_transaction,
                source,
            } => write!(
                f,
                "error: the connection to the database was lost while {during}: {}\n   = help: {}",
                describe_source(source),
                if *outside_transaction {
                    LOST_OUTSIDE_TRANSACTION
                } else {
                    LOST_IN_TRANSACTIONS
                }
            ),
            Error::PolicyViolation(violation) => policy_violation(f, violation),
            #[cfg(feature = "testing")]
            Error::Throwaway(server) => {
                write!(f, "error: the throwaway PostgreSQL server: {server}")
            }
            Error::Database { context, source } => {
                write!(
                    f,
                    "error: database error while {context}: {}",
                    describe_source(source)
                )?;
                if source.code() == Some(&SqlState::READ_ONLY_SQL_TRANSACTION) {
                    write!(f, "\n   = help: {READ_ONLY}")?;
                }
                Ok(())
            }
        }
    }
}

/// `: it looks like dbmate's`, or nothing for a shape not known.
pub(super) fn looks_like(tool: Option<OtherTool>) -> String {
    tool.map_or_else(String::new, |tool| {
        format!(": it looks like {}'s", tool.name())
    })
}

/// Another tool's table where the history should be: which tool, and the way out, as
/// commands that work as written.
fn foreign_history_table(
    f: &mut fmt::Formatter<'_>,
    schema: &str,
    table: &str,
    tool: Option<OtherTool>,
    columns: &[String],
) -> fmt::Result {
    let elsewhere = if table == "migrate_history" {
        "migrate_history_2"
    } else {
        "migrate_history"
    };
    let schema_flag = if schema == "public" {
        String::new()
    } else {
        format!("--history-schema {schema} ")
    };
    let flags = format!("{schema_flag}--history-table {elsewhere}");
    writeln!(
        f,
        "error: {schema}.{table} is not this runtime's history table{}",
        looks_like(tool)
    )?;
    writeln!(f, "   = columns: {}", columns.join(", "))?;
    writeln!(
        f,
        "   = note: nothing was run; this runtime keeps its history in a table of its own, and `{table}` is taken"
    )?;
    match tool {
        Some(tool) => write!(
            f,
            "   = help: keep this runtime's history under another name and import {}'s, then apply the rest:\n       \
             migrate {flags} baseline --from {}\n       \
             migrate {flags} up\n       \
             (from Rust: `.history_table(\"{schema}\", \"{elsewhere}\")`, then `baseline_from(&mut client, {})` once)",
            tool.name(),
            tool.flag_value(),
            tool.rust_name()
        ),
        None => write!(
            f,
            "   = help: keep this runtime's history under another name; if the schema its migrations build is already there, first record them as applied up to the last one there:\n       \
             migrate {flags} baseline VERSION\n       \
             migrate {flags} up\n       \
             (from Rust: `.history_table(\"{schema}\", \"{elsewhere}\")`)"
        ),
    }
}

/// The text of [`Error::HistoryTableName`].
pub(super) fn history_name(schema: &str, table: &str, problem: HistoryNameProblem) -> String {
    match problem {
        HistoryNameProblem::Empty => {
            "the history schema and table names must not be empty".to_owned()
        }
        HistoryNameProblem::NulInSchema | HistoryNameProblem::NulInTable => format!(
            "the history {} name contains a NUL character, which PostgreSQL does not allow in names",
            if problem == HistoryNameProblem::NulInSchema { "schema" } else { "table" }
        ),
        HistoryNameProblem::SchemaTooLong => format!(
            "the history schema name `{schema}` is {} bytes long; PostgreSQL keeps only the first 63 bytes of a name: use a shorter one",
            schema.len()
        ),
        HistoryNameProblem::TableTooLong => format!(
            "the history table name `{table}` is {} bytes long; its action log `{table}_history` must fit in the 63 bytes PostgreSQL keeps of a name: use at most 55 bytes",
            table.len()
        ),
    }
}

/// Why [`Error::NothingToRepair`].
pub(super) fn nothing_to_repair(
    version: i64,
    repair: Repair,
    status: Option<MigrationStatus>,
    in_binary: bool,
) -> String {
    let state = match status {
        None => "has no row in the history".to_owned(),
        Some(status) => format!("is `{status}`"),
    };
    match (repair, in_binary) {
        (Repair::Applied | Repair::AcceptChecksum, false) => {
            format!("migration {version} is not in this binary")
        }
        (Repair::AcceptChecksum, true) if status == Some(MigrationStatus::Applied) => {
            format!("migration {version}'s recorded checksum already matches this binary")
        }
        (Repair::AcceptChecksum, true) => format!(
            "migration {version} {state}; only an applied migration's checksum can be accepted"
        ),
        (Repair::RolledBack, _) => format!(
            "migration {version} {state}; only a `failed` or `running` migration can be marked rolled back"
        ),
        (Repair::Applied, true) => format!(
            "migration {version} {state}; only a `failed` or `running` migration can be marked applied"
        ),
    }
}

fn policy_violation(f: &mut fmt::Formatter<'_>, violation: &PolicyViolation) -> fmt::Result {
    writeln!(
        f,
        "error: migration {} ({}) breaks the data-safety policy, so it was rolled back",
        violation.version, violation.name
    )?;
    writeln!(f, "  --> {}", violation.path)?;
    for problem in &violation.problems {
        writeln!(f, "   = {problem}")?;
    }
    write!(
        f,
        "   = help: nothing of it was kept; if this is intended, allow it in the policy for this run"
    )
}

fn migration_failure(f: &mut fmt::Formatter<'_>, failure: &MigrationFailure) -> fmt::Result {
    let what = if failure.reverting {
        "reverting migration"
    } else {
        "migration"
    };
    writeln!(
        f,
        "error: {what} {} ({}) failed: {}",
        failure.version, failure.name, failure.message
    )?;
    match (failure.column, failure.located) {
        (Some(column), _) => writeln!(f, "  --> {}:{}:{column}", failure.path, failure.line)?,
        // The statement is known (it ran on its own), only the column is not.
        (None, Located::Statement | Located::Position) => {
            writeln!(f, "  --> {}:{}", failure.path, failure.line)?
        }
        (None, Located::SectionStart) => writeln!(
            f,
            "  --> {}:{} (where the migration starts: the server did not say which statement)",
            failure.path, failure.line
        )?,
    }
    write!(f, "   = SQLSTATE {}", failure.sqlstate)?;
    if let Some(detail) = &failure.detail {
        write!(f, "\n   = detail: {detail}")?;
    }
    if let Some(hint) = &failure.hint {
        write!(f, "\n   = hint: {hint}")?;
    }
    for index in &failure.invalid_indexes {
        write!(
            f,
            "\n   = note: PostgreSQL left index {index} INVALID; drop it (DROP INDEX CONCURRENTLY {index}) before the migration runs again"
        )?;
    }
    match failure.statements {
        None if failure.reverting => write!(
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

fn unfinished(f: &mut fmt::Formatter<'_>, unfinished: &Unfinished) -> fmt::Result {
    let version = unfinished.version;
    if unfinished.status == MigrationStatus::Running {
        writeln!(
            f,
            "error: migration {version} ({}) was interrupted while running outside a transaction (its process was killed or lost its connection)",
            unfinished.name
        )?;
    } else {
        writeln!(
            f,
            "error: migration {version} ({}) failed part-way outside a transaction, and what it did is not undone",
            unfinished.name
        )?;
    }
    if let Some(path) = &unfinished.path {
        writeln!(f, "  --> {path}")?;
    }
    if let Some(error) = &unfinished.error_message {
        writeln!(f, "   = recorded error: {error}")?;
    }
    let heading = if unfinished.status == MigrationStatus::Running {
        "statements that may have run"
    } else {
        "statements that ran and stay applied"
    };
    if unfinished.statements_ran.is_empty() {
        writeln!(f, "   = {heading}: none")?;
    } else {
        writeln!(f, "   = {heading}:")?;
        for (number, line, text) in &unfinished.statements_ran {
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

const READ_ONLY: &str = "this server only accepts reads (a hot standby, or `default_transaction_read_only` is on): connect to the primary; if this database is read-only by that setting, it must be off for the migration (PGOPTIONS='-c default_transaction_read_only=off' turns it off for this connection only)";
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
        // The driver's words, then the cause it leaves out ("connection timed out" when
        // keepalive probes went unanswered).
        None => match std::error::Error::source(source) {
            Some(cause) => format!("{source}: {cause}"),
            None => source.to_string(),
        },
    }
}

pub(super) fn list_versions(missing: &[(i64, String)]) -> String {
    missing
        .iter()
        .map(|(version, name)| format!("{version} ({name})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A wait as people write it: `300 ms`, `4.2 s`, `60 s`.
pub(super) fn describe_wait(waited: Duration) -> String {
    match waited.as_millis() {
        ms @ 0..1_000 => format!("{ms} ms"),
        ms @ 1_000..10_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} s", waited.as_secs()),
    }
}

pub(super) fn describe_holder(pid: Option<i32>, application: Option<&str>) -> String {
    match (pid, application) {
        (Some(pid), Some(app)) if !app.is_empty() => {
            format!("pid {pid} (application_name `{app}`)")
        }
        (Some(pid), _) => format!("pid {pid}"),
        (None, _) => "a session that has since released it".to_owned(),
    }
}

fn lock_contention(f: &mut fmt::Formatter<'_>, contention: &LockContention) -> fmt::Result {
    let limit = match contention.lock_timeout {
        Some(crate::LockTimeout::After(limit)) => {
            format!(
                "a lock_timeout of {}",
                crate::source::format_duration(limit)
            )
        }
        Some(crate::LockTimeout::Off) => "no lock_timeout".to_owned(),
        None => "the session's lock_timeout".to_owned(),
    };
    write!(
        f,
        "error: gave up {} after {} attempt(s) in {}: {} (SQLSTATE {})",
        contention.during,
        contention.attempts,
        describe_wait(contention.waited),
        contention.message,
        contention.sqlstate.code()
    )?;
    if let Some(path) = &contention.path {
        write!(f, "\n  --> {path}")?;
    }
    write!(
        f,
        "\n   = note: each attempt ran with {limit} and was rolled back; nothing of it is applied and it stays pending"
    )?;
    for blocker in &contention.blockers {
        write!(f, "\n   = blocked by: {blocker}")?;
    }
    if contention.blockers.is_empty() {
        write!(f, "\n   = note: no other session holds a lock on the tables it names now; the blocker may have just finished")?;
    }
    let end = contention.blockers.first().map_or_else(String::new, |b| {
        format!(" (or end it: `SELECT pg_terminate_backend({})`)", b.pid)
    });
    write!(
        f,
        "\n   = help: run again once the blocking session has finished{end}"
    )?;
    write!(
        f,
        "\n   = help: or keep retrying for longer: `--lock-retry-budget 10min` (from Rust: `.lock_retry_budget(...)`); a migration that must wait whatever it blocks meanwhile takes `-- migrate:lock-timeout off` in its header"
    )
}
