//! The record stage: the two history tables (`schema_migrations`, one row per applied version,
//! and `schema_migrations_history`, one row per action), their DDL, reading them, and every
//! row the runtime ever writes to them.
//!
//! Values are escaped by the driver's own function and identifiers are always quoted; no
//! other module formats SQL for these tables.

pub(crate) mod foreign;

use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use crate::error::HistoryNameProblem;
use crate::migration::Direction;
use crate::terms::{ActionKind, ActionStatus, MigrationStatus};
use crate::{Error, Migration};

/// One row of `schema_migrations`.
///
/// ```
/// use migrate_runtime::MigrationStatus;
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS).applied_by("ci");
/// migrator.run(&mut client)?;
/// let row = &migrator.applied(&mut client)?[0];
/// assert_eq!((row.version, row.name.as_str()), (1, "create_users"));
/// assert_eq!(row.status, MigrationStatus::Applied);
/// assert_eq!(row.checksum, MIGRATIONS[0].checksum().to_string());
/// assert_eq!(row.applied_by, "ci");
/// assert!(row.error_message.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The migration's version.
    pub version: i64,
    /// Its name when it was applied.
    pub name: String,
    /// Its checksum when it was applied (`sha256:...`).
    pub checksum: String,
    /// Applied, failed or running.
    pub status: MigrationStatus,
    /// When it was applied, in microseconds since the Unix epoch.
    pub applied_at_micros: i64,
    /// How long it took, in milliseconds.
    pub execution_time_ms: i64,
    /// Who applied it.
    pub applied_by: String,
    /// The error recorded for a failed no-transaction migration.
    pub error_message: Option<String>,
}

/// One row of the action log (`schema_migrations_history`).
///
/// ```
/// use migrate_runtime::{ActionKind, ActionStatus};
///
/// # static MIGRATIONS: &[migrate_runtime::Migration] = migrate_macros::embed_migrations!("../migrations");
/// # let database = migrate_runtime::testing::TestServer::shared().create_database()?;
/// # let mut client = database.client()?;
/// let migrator = migrate_runtime::Migrator::new(MIGRATIONS);
/// migrator.baseline(&mut client, 2, "tables restored from a dump")?;
/// let action = &migrator.history(&mut client)?[0];
/// assert_eq!((action.action, action.status), (ActionKind::Baseline, ActionStatus::Success));
/// assert_eq!(action.version, 1);
/// assert!(action.note.as_deref().is_some_and(|note| note.contains("restored from a dump")));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Action {
    /// Its position in the log.
    pub id: i64,
    /// The migration's version.
    pub version: i64,
    /// The migration's name.
    pub name: String,
    /// What was done.
    pub action: ActionKind,
    /// The checksum involved, if any.
    pub checksum: Option<String>,
    /// When it started, in microseconds since the Unix epoch.
    pub started_at_micros: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// How it ended.
    pub status: ActionStatus,
    /// The error, for a failure.
    pub error_message: Option<String>,
    /// Who did it.
    pub executed_by: String,
    /// The environment it ran in, if one was set.
    pub environment: Option<String>,
    /// The reason given (repairs and baselines).
    pub note: Option<String>,
}

/// Where the history lives: a schema and a table name (the action log is the same name with
/// `_history` appended). Identifiers are always quoted, so any name works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryTables {
    schema: String,
    table: String,
}

impl HistoryTables {
    pub(crate) fn new(schema: &str, table: &str) -> HistoryTables {
        HistoryTables {
            schema: schema.to_owned(),
            table: table.to_owned(),
        }
    }

    /// The schema and the table name, unquoted.
    pub(crate) fn names(&self) -> (&str, &str) {
        (&self.schema, &self.table)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.schema.is_empty() || self.table.is_empty()
    }

    /// Refuses names PostgreSQL would not keep as given: it cuts names to 63 bytes, which
    /// would make the action log (`<table>_history`, 8 bytes more) a cut name, or the very
    /// same name as the history table; and it refuses empty names and NUL characters.
    pub(crate) fn check(&self) -> Result<(), Error> {
        const MAX_NAME_BYTES: usize = 63;
        const SUFFIX_BYTES: usize = "_history".len();
        let problem = if self.is_empty() {
            HistoryNameProblem::Empty
        } else if self.schema.contains('\0') {
            HistoryNameProblem::NulInSchema
        } else if self.table.contains('\0') {
            HistoryNameProblem::NulInTable
        } else if self.schema.len() > MAX_NAME_BYTES {
            HistoryNameProblem::SchemaTooLong
        } else if self.table.len() > MAX_NAME_BYTES - SUFFIX_BYTES {
            HistoryNameProblem::TableTooLong
        } else {
            return Ok(());
        };
        Err(Error::HistoryTableName {
            schema: self.schema.clone(),
            table: self.table.clone(),
            problem,
        })
    }

    /// `"schema"."table"`
    pub(crate) fn migrations(&self) -> String {
        format!(
            "{}.{}",
            escape_identifier(&self.schema),
            escape_identifier(&self.table)
        )
    }

    /// `"schema"."table_history"`
    pub(crate) fn actions(&self) -> String {
        format!(
            "{}.{}",
            escape_identifier(&self.schema),
            escape_identifier(&format!("{}_history", self.table))
        )
    }

    /// `schema.table`, for messages.
    pub(crate) fn display(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// Creates the schema and both tables when missing. Only ever run under the migration
    /// lock: `CREATE ... IF NOT EXISTS` is not safe against a concurrent creator.
    pub(crate) fn create_sql(&self) -> String {
        let migrations = self.migrations();
        let actions = self.actions();
        format!(
            "CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {migrations} (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    execution_time_ms BIGINT NOT NULL DEFAULT 0,
    applied_by TEXT NOT NULL DEFAULT current_user,
    status TEXT NOT NULL DEFAULT 'applied' CHECK (status IN ('applied', 'failed', 'running')),
    error_message TEXT
);
CREATE TABLE IF NOT EXISTS {actions} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version BIGINT NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('apply', 'rollback', 'baseline', 'repair')),
    checksum TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    duration_ms BIGINT NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('success', 'failed')),
    error_message TEXT,
    executed_by TEXT NOT NULL DEFAULT current_user,
    environment TEXT,
    note TEXT
);
",
            schema = escape_identifier(&self.schema),
        )
    }

    /// The query that reads `schema_migrations`, in version order, as text columns.
    pub(crate) fn select_sql(&self) -> String {
        format!(
            "SELECT version, name, checksum, status, \
             (extract(epoch FROM applied_at) * 1000000)::bigint, execution_time_ms, \
             applied_by, error_message FROM {} ORDER BY version",
            self.migrations()
        )
    }

    /// Reads the history, or `None` when the table does not exist yet. One round trip.
    pub(crate) fn read(&self, client: &mut Client) -> Result<Option<Vec<AppliedMigration>>, Error> {
        self.check()?;
        match client.simple_query(&self.select_sql()) {
            Ok(messages) => Ok(Some(parse_rows(&messages))),
            Err(error) if is_missing_relation(&error) => Ok(None),
            Err(error) => Err(foreign::read_failed(
                client,
                self,
                "reading the migration history",
                error,
            )),
        }
    }

    /// The action log, oldest first; empty when it does not exist yet. One round trip.
    pub(crate) fn read_actions(&self, client: &mut Client) -> Result<Vec<Action>, Error> {
        self.check()?;
        let query = format!(
            "SELECT id, version, name, action, checksum, (extract(epoch FROM started_at) * 1000000)::bigint, \
             duration_ms, status, error_message, executed_by, environment, note FROM {} ORDER BY id",
            self.actions()
        );
        let messages = match client.simple_query(&query) {
            Ok(messages) => messages,
            // No action log yet; but another tool's table under our name has none either.
            Err(error) if is_missing_relation(&error) => {
                return match foreign::foreign(client, self) {
                    Some(foreign) => Err(foreign),
                    None => Ok(Vec::new()),
                }
            }
            Err(error) => return Err(Error::database("reading the action log")(error)),
        };
        Ok(rows(&messages, 12)
            .map(|row| {
                let text = |i: usize| row.get(i).map(str::to_owned);
                let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or_default();
                Action {
                    id: number(0),
                    version: number(1),
                    name: text(2).unwrap_or_default(),
                    // The table's CHECK constraints allow nothing else.
                    action: row
                        .get(3)
                        .and_then(ActionKind::parse)
                        .unwrap_or(ActionKind::Repair),
                    checksum: text(4),
                    started_at_micros: number(5),
                    duration_ms: number(6),
                    // The table's CHECK constraint allows nothing else.
                    status: row
                        .get(7)
                        .and_then(ActionStatus::parse)
                        .unwrap_or(ActionStatus::Failed),
                    error_message: text(8),
                    executed_by: text(9).unwrap_or_default(),
                    environment: text(10),
                    note: text(11),
                }
            })
            .collect())
    }

    /// The server's fingerprint of the history (one small row, one round trip), or `None`
    /// when the table does not exist yet.
    pub(crate) fn fingerprint(&self, client: &mut Client) -> Result<Option<Fingerprint>, Error> {
        self.check()?;
        let query = format!(
            "SELECT count(*), coalesce(encode(sha256(convert_to(string_agg(version::text || ' ' || checksum || ' ' || status, E'\\n' ORDER BY version), 'UTF8')), 'hex'), '') FROM {}",
            self.migrations()
        );
        let messages = match client.simple_query(&query) {
            Ok(messages) => messages,
            Err(error) if is_missing_relation(&error) => return Ok(None),
            Err(error) => {
                return Err(foreign::read_failed(
                    client,
                    self,
                    "reading the migration history",
                    error,
                ))
            }
        };
        let fingerprint = rows(&messages, 2).next().and_then(|row| {
            Some(Fingerprint {
                rows: row.get(0)?.parse().ok()?,
                sha256_hex: row.get(1)?.to_owned(),
            })
        });
        Ok(fingerprint)
    }
}

/// What a history amounts to, compared without shipping it: how many rows, and a SHA-256 over
/// one line `version checksum status` per row in version order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) rows: i64,
    pub(crate) sha256_hex: String,
}

/// `42P01` (undefined table) or `3F000` (undefined schema).
pub(crate) fn is_missing_relation(error: &postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| matches!(code.code(), "42P01" | "3F000"))
}

/// The rows of `width` columns among a simple query's messages.
fn rows(
    messages: &[SimpleQueryMessage],
    width: usize,
) -> impl Iterator<Item = &postgres::SimpleQueryRow> {
    messages.iter().filter_map(move |message| match message {
        SimpleQueryMessage::Row(row) if row.len() == width => Some(row),
        _ => None,
    })
}

/// The rows of a [`HistoryTables::select_sql`] result (possibly among other messages of a
/// multi-statement query: every row with eight columns is a history row).
pub(crate) fn parse_rows(messages: &[SimpleQueryMessage]) -> Vec<AppliedMigration> {
    rows(messages, 8)
        .map(|row| {
            let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
            let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or_default();
            AppliedMigration {
                version: number(0),
                name: text(1),
                checksum: text(2),
                // The table's CHECK constraint allows nothing else; a row we cannot read
                // is treated as unfinished, so a run stops at it rather than skipping it.
                status: row
                    .get(3)
                    .and_then(MigrationStatus::parse)
                    .unwrap_or(MigrationStatus::Failed),
                applied_at_micros: number(4),
                execution_time_ms: number(5),
                applied_by: text(6),
                error_message: row.get(7).map(str::to_owned),
            }
        })
        .collect()
}

/// Notes when a migration's SQL starts, for [`ELAPSED_MS`].
pub(crate) const MARK_STARTED: &str =
    "SELECT set_config('migrate.started', clock_timestamp()::text, true);\n";

/// Milliseconds since this migration's SQL started, measured by the server.
const ELAPSED_MS: &str = "(extract(epoch FROM clock_timestamp() - current_setting('migrate.started')::timestamptz) * 1000)::bigint";

/// How long an action took, for its action-log row.
#[derive(Clone, Copy, Debug)]
enum Took {
    /// Since [`MARK_STARTED`], measured by the server inside the transaction.
    SinceMarked,
    /// Measured by the runner.
    Measured(Duration),
}

/// What a repair changes in `schema_migrations`.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RepairChange<'a> {
    /// Forget the row, so the migration runs again.
    Forget,
    /// The row becomes `applied`, with this checksum.
    MarkApplied(&'a str),
    /// An applied row takes this checksum.
    AcceptChecksum(&'a str),
}

/// Writes the history rows of one run: who it runs as and in which environment, and the SQL
/// of every row it records. Every statement that changes either table is built here.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Recorder<'a> {
    tables: &'a HistoryTables,
    applied_by: Option<&'a str>,
    environment: Option<&'a str>,
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(
        tables: &'a HistoryTables,
        applied_by: Option<&'a str>,
        environment: Option<&'a str>,
    ) -> Self {
        Recorder {
            tables,
            applied_by,
            environment,
        }
    }

    /// The `applied_by` value: the configured name, escaped, or `current_user`.
    fn applied_by(&self) -> String {
        self.applied_by
            .map_or_else(|| "current_user".to_owned(), literal)
    }

    /// The rows of a transactional migration that just ran, inside its transaction: its
    /// `schema_migrations` row (inserted, or deleted going down) and its action-log row.
    /// Returns `version, milliseconds` as a row.
    /// `note` says how it went (a retried attempt's).
    pub(crate) fn done_in_transaction(
        &self,
        migration: &Migration,
        direction: Direction,
        note: Option<&str>,
    ) -> String {
        let table = self.tables.migrations();
        let version = migration.version();
        let record = match direction {
            Direction::Up => format!(
                // clock_timestamp(): now() is the same for every transaction in one message.
                "INSERT INTO {table} (version, name, checksum, applied_at, execution_time_ms, applied_by) VALUES ({version}, {}, {}, clock_timestamp(), {ELAPSED_MS}, {}) RETURNING version, execution_time_ms;\n",
                literal(migration.name()),
                literal(&migration.checksum().to_string()),
                self.applied_by(),
            ),
            Direction::Down => format!(
                "DELETE FROM {table} WHERE version = {version} RETURNING version, {ELAPSED_MS};\n"
            ),
        };
        record + &self.succeeded(migration, direction, Took::SinceMarked, note)
    }

    /// Before a no-transaction migration's statements: its row becomes `running` (inserted
    /// going up).
    pub(crate) fn claim(&self, migration: &Migration, direction: Direction) -> String {
        let table = self.tables.migrations();
        let version = migration.version();
        match direction {
            Direction::Up => format!(
                "INSERT INTO {table} (version, name, checksum, applied_by, status) VALUES ({version}, {}, {}, {}, 'running');\n",
                literal(migration.name()),
                literal(&migration.checksum().to_string()),
                self.applied_by(),
            ),
            Direction::Down => {
                format!("UPDATE {table} SET status = 'running' WHERE version = {version};\n")
            }
        }
    }

    /// After a no-transaction migration's last statement: its row becomes `applied` (or is
    /// deleted going down), and the action is logged.
    pub(crate) fn statements_done(
        &self,
        migration: &Migration,
        direction: Direction,
        took: Duration,
        note: Option<&str>,
    ) -> String {
        let table = self.tables.migrations();
        let version = migration.version();
        let record = match direction {
            Direction::Up => format!(
                "UPDATE {table} SET status = 'applied', applied_at = now(), execution_time_ms = {} WHERE version = {version};\n",
                took.as_millis()
            ),
            Direction::Down => format!("DELETE FROM {table} WHERE version = {version};\n"),
        };
        record + &self.succeeded(migration, direction, Took::Measured(took), note)
    }

    /// A failed action. `statements_took` is set for a no-transaction migration, whose row
    /// becomes `failed` with the same summary.
    pub(crate) fn failed(
        &self,
        migration: &Migration,
        direction: Direction,
        summary: &str,
        statements_took: Option<Duration>,
    ) -> String {
        let action = self.action(
            migration,
            ActionKind::of(direction),
            ActionStatus::Failed,
            Some(summary),
            Took::Measured(Duration::ZERO),
            None,
        );
        match statements_took {
            Some(took) => format!(
                "UPDATE {} SET status = 'failed', error_message = {}, execution_time_ms = {} WHERE version = {};\n{action}",
                self.tables.migrations(),
                literal(summary),
                took.as_millis(),
                migration.version()
            ),
            None => action,
        }
    }

    /// A migration without a DOWN section forgotten, going down through it: its row goes, and
    /// the action log says that no SQL ran.
    pub(crate) fn forgotten(&self, migration: &Migration) -> String {
        format!(
            "DELETE FROM {} WHERE version = {};\n{}",
            self.tables.migrations(),
            migration.version(),
            self.note(
                migration.version(),
                migration.name(),
                ActionKind::Rollback,
                Some(&migration.checksum().to_string()),
                "no DOWN section: recorded as rolled back without running any SQL (through irreversible); what its UP did is still in the database",
            )
        )
    }

    /// A repair of `version`, in one transaction with its action-log row.
    pub(crate) fn repair(
        &self,
        version: i64,
        name: &str,
        change: RepairChange<'_>,
        checksum: Option<&str>,
        note: &str,
    ) -> String {
        let table = self.tables.migrations();
        let change = match change {
            RepairChange::Forget => format!("DELETE FROM {table} WHERE version = {version};\n"),
            RepairChange::MarkApplied(checksum) => format!(
                "UPDATE {table} SET status = 'applied', error_message = NULL, checksum = {} WHERE version = {version};\n",
                literal(checksum)
            ),
            RepairChange::AcceptChecksum(checksum) => format!(
                "UPDATE {table} SET checksum = {} WHERE version = {version};\n",
                literal(checksum)
            ),
        };
        let action = self.note(version, name, ActionKind::Repair, checksum, note);
        format!("BEGIN;\n{change}{action}COMMIT;")
    }

    /// `migrations` recorded as applied without running them, in one transaction.
    pub(crate) fn baseline(&self, migrations: &[&Migration], note: &str) -> String {
        let table = self.tables.migrations();
        let applied_by = self.applied_by();
        let mut sql = String::from("BEGIN;\n");
        for migration in migrations {
            let checksum = migration.checksum().to_string();
            sql.push_str(&format!(
                "INSERT INTO {table} (version, name, checksum, applied_by) VALUES ({}, {}, {}, {applied_by});\n",
                migration.version(),
                literal(migration.name()),
                literal(&checksum),
            ));
            sql.push_str(&self.note(
                migration.version(),
                migration.name(),
                ActionKind::Baseline,
                Some(&checksum),
                note,
            ));
        }
        sql.push_str("COMMIT;");
        sql
    }

    /// A squash recorded as applied in place of the rows of the versions it replaces, which
    /// the database applied one by one: no SQL of it runs. One transaction.
    pub(crate) fn squash(&self, squash: &Migration, replaced: &[i64]) -> String {
        let table = self.tables.migrations();
        let checksum = squash.checksum().to_string();
        let list = replaced
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "BEGIN;
DELETE FROM {table} WHERE version IN ({list});
             INSERT INTO {table} (version, name, checksum, applied_by) VALUES ({}, {}, {}, {});
{}COMMIT;",
            squash.version(),
            literal(squash.name()),
            literal(&checksum),
            self.applied_by(),
            self.note(
                squash.version(),
                squash.name(),
                ActionKind::Baseline,
                Some(&checksum),
                &format!(
                    "squash recorded in place of {list}, which were applied one by one; no SQL ran"
                ),
            )
        )
    }

    /// The action-log row of a migration's SQL that ran in `direction` and succeeded.
    fn succeeded(
        &self,
        migration: &Migration,
        direction: Direction,
        took: Took,
        note: Option<&str>,
    ) -> String {
        self.action(
            migration,
            ActionKind::of(direction),
            ActionStatus::Success,
            None,
            took,
            note,
        )
    }

    /// An action-log row for a migration's SQL that ran (or failed).
    fn action(
        &self,
        migration: &Migration,
        kind: ActionKind,
        status: ActionStatus,
        error: Option<&str>,
        took: Took,
        note: Option<&str>,
    ) -> String {
        let (started, duration_ms) = match took {
            Took::SinceMarked => (
                "current_setting('migrate.started')::timestamptz".to_owned(),
                ELAPSED_MS.to_owned(),
            ),
            Took::Measured(took) => {
                let ms = took.as_millis();
                (
                    format!("clock_timestamp() - {ms} * interval '1 millisecond'"),
                    ms.to_string(),
                )
            }
        };
        format!(
            "INSERT INTO {} (version, name, action, checksum, started_at, duration_ms, status, error_message, executed_by, environment, note) \
             VALUES ({}, {}, '{kind}', {}, {started}, {duration_ms}, '{status}', {}, {}, {}, {});\n",
            self.tables.actions(),
            migration.version(),
            literal(migration.name()),
            literal(&migration.checksum().to_string()),
            optional_literal(error),
            self.applied_by(),
            optional_literal(self.environment),
            optional_literal(note),
        )
    }

    /// An action-log row for an action that ran no SQL of the migration, with a note.
    fn note(
        &self,
        version: i64,
        name: &str,
        kind: ActionKind,
        checksum: Option<&str>,
        note: &str,
    ) -> String {
        format!(
            "INSERT INTO {} (version, name, action, checksum, started_at, status, executed_by, environment, note) \
             VALUES ({version}, {}, '{kind}', {}, clock_timestamp(), 'success', {}, {}, {});\n",
            self.tables.actions(),
            literal(name),
            optional_literal(checksum),
            self.applied_by(),
            optional_literal(self.environment),
            literal(note),
        )
    }
}

/// A text value for SQL, escaped by the driver's own function (never pasted raw).
pub(crate) fn literal(value: &str) -> String {
    escape_literal(value)
}

/// An optional text value: `NULL` or the escaped literal.
fn optional_literal(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_owned(), literal)
}
