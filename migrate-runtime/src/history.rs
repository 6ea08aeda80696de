//! The two history tables: `schema_migrations` (one row per applied version) and
//! `schema_migrations_history` (one row per action), their DDL, and reading them.

use postgres::{Client, SimpleQueryMessage};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use crate::Error;

/// Where the history lives: a schema and a table name (the action log is the same name with
/// `_history` appended). Identifiers are always quoted, so any name works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HistoryTables {
    schema: String,
    table: String,
}

/// One row of `schema_migrations`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedMigration {
    /// The migration's version.
    pub version: i64,
    /// Its name when it was applied.
    pub name: String,
    /// Its checksum when it was applied (`sha256:...`).
    pub checksum: String,
    /// `applied`, `failed` or `running`.
    pub status: String,
    /// When it was applied, in microseconds since the Unix epoch.
    pub applied_at_micros: i64,
    /// How long it took, in milliseconds.
    pub execution_time_ms: i64,
    /// Who applied it.
    pub applied_by: String,
    /// The error recorded for a failed no-transaction migration.
    pub error_message: Option<String>,
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
            "the history schema and table names must not be empty".to_owned()
        } else if let Some(what) = [("schema", &self.schema), ("table", &self.table)]
            .iter()
            .find_map(|(what, name)| name.contains('\0').then_some(what))
        {
            format!("the history {what} name contains a NUL character, which PostgreSQL does not allow in names")
        } else if self.schema.len() > MAX_NAME_BYTES {
            format!(
                "the history schema name `{}` is {} bytes long; PostgreSQL keeps only the first {MAX_NAME_BYTES} bytes of a name: use a shorter one",
                self.schema,
                self.schema.len()
            )
        } else if self.table.len() > MAX_NAME_BYTES - SUFFIX_BYTES {
            format!(
                "the history table name `{}` is {} bytes long; its action log `{}_history` must fit in the {MAX_NAME_BYTES} bytes PostgreSQL keeps of a name: use at most {} bytes",
                self.table,
                self.table.len(),
                self.table,
                MAX_NAME_BYTES - SUFFIX_BYTES
            )
        } else {
            return Ok(());
        };
        Err(Error::InvalidSetting(problem))
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
            Err(error) => Err(Error::database("reading the migration history")(error)),
        }
    }
}

/// What a history amounts to, compared without shipping it: how many rows, and a SHA-256 over
/// one line `version checksum status` per row in version order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    pub(crate) rows: i64,
    pub(crate) sha256_hex: String,
}

impl HistoryTables {
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
            Err(error) => return Err(Error::database("reading the migration history")(error)),
        };
        Ok(messages.iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(Fingerprint {
                rows: row.get(0)?.parse().ok()?,
                sha256_hex: row.get(1)?.to_owned(),
            }),
            _ => None,
        }))
    }
}

/// `42P01` (undefined table) or `3F000` (undefined schema).
pub(crate) fn is_missing_relation(error: &postgres::Error) -> bool {
    error
        .code()
        .is_some_and(|code| matches!(code.code(), "42P01" | "3F000"))
}

/// The rows of a [`HistoryTables::select_sql`] result (possibly among other messages of a
/// multi-statement query: every row with eight columns is a history row).
pub(crate) fn parse_rows(messages: &[SimpleQueryMessage]) -> Vec<AppliedMigration> {
    messages
        .iter()
        .filter_map(|message| match message {
            SimpleQueryMessage::Row(row) if row.len() == 8 => Some(row),
            _ => None,
        })
        .map(|row| {
            let text = |i: usize| row.get(i).unwrap_or_default().to_owned();
            let number = |i: usize| row.get(i).and_then(|v| v.parse().ok()).unwrap_or_default();
            AppliedMigration {
                version: number(0),
                name: text(1),
                checksum: text(2),
                status: text(3),
                applied_at_micros: number(4),
                execution_time_ms: number(5),
                applied_by: text(6),
                error_message: row.get(7).map(str::to_owned),
            }
        })
        .collect()
}

/// A text value for SQL, escaped by the driver's own function (never pasted raw).
pub(crate) fn literal(value: &str) -> String {
    escape_literal(value)
}

/// An optional text value: `NULL` or the escaped literal.
pub(crate) fn optional_literal(value: Option<&str>) -> String {
    value.map_or_else(|| "NULL".to_owned(), literal)
}
