//! Applying migrations: the SQL batches sent to the server, and turning a server error into
//! a failure that points into the migration file.
//!
//! A transactional migration is one simple-query message: `BEGIN`, its SQL, the two history
//! rows, `COMMIT`. That is one round trip and one commit per migration, and the history row
//! can only ever commit together with the schema change it records. Values are escaped by the
//! driver's own functions; identifiers are always quoted.

use std::time::{Duration, Instant};

use postgres::error::ErrorPosition;
use postgres::{Client, SimpleQueryMessage};

use crate::error::{MigrationFailure, StatementProgress};
use crate::history::{literal, optional_literal};
use crate::lock::{self, LockScope};
use crate::migrator::{AppliedReport, Migrator, Report};
use crate::source::statements;
use crate::{Error, Migration};

/// The outcome of one migration's batch.
pub(crate) enum Batch {
    Applied(AppliedReport),
    /// Another process applied it first (only possible with [`LockScope::Transaction`]).
    AppliedElsewhere,
}

/// Applies one migration, in a transaction or statement by statement.
pub(crate) fn one(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
) -> Result<Batch, Error> {
    if !migration.up().is_transactional() {
        return no_transaction(migrator, client, migration);
    }
    let batch = BatchSql::transactional(migrator, &[migration]);
    match client.simple_query(&batch.text) {
        Ok(messages) => Ok(Batch::Applied(batch.reports(&messages).remove(0))),
        Err(error) => {
            rollback(client);
            if applied_elsewhere(migrator, client, migration)? {
                return Ok(Batch::AppliedElsewhere);
            }
            let failure = batch.locate(error, migration)?;
            record_failure(migrator, client, migration, &failure, None);
            Err(Error::MigrationFailed(Box::new(failure)))
        }
    }
}

/// Applies all of `pending` in one transaction.
pub(crate) fn grouped(
    migrator: &Migrator<'_>,
    client: &mut Client,
    pending: &[&Migration],
    report: &mut Report,
) -> Result<(), Error> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch = BatchSql::transactional(migrator, pending);
    match client.simple_query(&batch.text) {
        Ok(messages) => {
            report.applied.extend(batch.reports(&messages));
            Ok(())
        }
        Err(error) => {
            rollback(client);
            let (migration, failure) = match batch.span_at(&error) {
                Some(migration) => (migration, batch.locate(error, migration)?),
                // The server did not say where: replay the group migration by migration in a
                // transaction that is rolled back, to find the one that fails.
                None => match diagnose(client, pending) {
                    Some((migration, error)) => {
                        (migration, locate_in_section(error, migration, 0)?)
                    }
                    None => (pending[0], batch.locate(error, pending[0])?),
                },
            };
            record_failure(migrator, client, migration, &failure, None);
            Err(Error::MigrationFailed(Box::new(failure)))
        }
    }
}

/// Statement by statement, each outside any transaction. A `running` row claims the migration
/// first; it becomes `applied`, or `failed` with the statement that failed.
fn no_transaction(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
) -> Result<Batch, Error> {
    let migrations = migrator.tables.migrations();
    let applied_by = migrator.applied_by_sql();
    let claim = format!(
        "INSERT INTO {migrations} (version, name, checksum, applied_by, status) VALUES ({}, {}, {}, {applied_by}, 'running')",
        migration.version(),
        literal(migration.name()),
        literal(&migration.checksum().to_string()),
    );
    let claim = match migrator.lock_scope {
        LockScope::Session => claim,
        LockScope::Transaction => format!(
            "BEGIN;\n{}{claim};\nCOMMIT;",
            lock::transaction_lock_sql(lock::key(&migrator.tables), migrator.lock_wait)
        ),
    };
    if let Err(error) = client.simple_query(&claim) {
        rollback(client);
        if applied_elsewhere(migrator, client, migration)? {
            return Ok(Batch::AppliedElsewhere);
        }
        return Err(Error::database(format!(
            "claiming migration {}",
            migration.version()
        ))(error));
    }

    let started = Instant::now();
    let sql = migration.up().sql();
    let all: Vec<statements::Statement<'_>> = statements::split(sql).collect();
    for (index, statement) in all.iter().enumerate() {
        if let Err(error) = client.simple_query(statement.text) {
            let offset = sql[..statement.start].chars().count();
            let mut failure = locate_in_section(error, migration, offset)?;
            if failure.column.is_none() {
                // No position from the server, but we know which statement it was.
                failure.line = migration.up().file_position(offset + 1).0;
            }
            failure.statements = Some(StatementProgress {
                failed: index + 1,
                total: all.len(),
            });
            failure.invalid_indexes = invalid_indexes(client);
            record_failure(
                migrator,
                client,
                migration,
                &failure,
                Some(started.elapsed()),
            );
            return Err(Error::MigrationFailed(Box::new(failure)));
        }
    }
    let duration = started.elapsed();
    let ms = duration.as_millis().to_string();
    let finish = format!(
        "UPDATE {migrations} SET status = 'applied', applied_at = now(), execution_time_ms = {ms} WHERE version = {version};\n{}",
        action_row(migrator, migration, "success", None, &ms),
        version = migration.version(),
    );
    client
        .simple_query(&finish)
        .map_err(Error::database(format!(
            "recording migration {} as applied",
            migration.version()
        )))?;
    Ok(Batch::Applied(AppliedReport {
        version: migration.version(),
        name: migration.name().to_owned(),
        duration,
    }))
}

/// A batch of SQL being built, with where each migration's own SQL sits in it (in
/// characters, as PostgreSQL counts error positions).
struct BatchSql<'m> {
    text: String,
    chars: usize,
    spans: Vec<(usize, usize, &'m Migration)>,
}

/// Milliseconds since this migration's SQL started, measured by the server.
const ELAPSED_MS: &str = "(extract(epoch FROM clock_timestamp() - current_setting('migrate.started')::timestamptz) * 1000)::bigint";

impl<'m> BatchSql<'m> {
    fn transactional(migrator: &Migrator<'_>, migrations: &[&'m Migration]) -> Self {
        let mut batch = BatchSql {
            text: String::new(),
            chars: 0,
            spans: Vec::new(),
        };
        batch.push("BEGIN;\n");
        if migrator.lock_scope == LockScope::Transaction {
            batch.push(&lock::transaction_lock_sql(
                lock::key(&migrator.tables),
                migrator.lock_wait,
            ));
        }
        let table = migrator.tables.migrations();
        let applied_by = migrator.applied_by_sql();
        for migration in migrations {
            batch.push("SELECT set_config('migrate.started', clock_timestamp()::text, true);\n");
            let start = batch.chars;
            batch.push(migration.up().sql());
            batch.spans.push((start, batch.chars - start, migration));
            // A newline ends a trailing `--` comment; the `;` ends a last statement without one.
            batch.push("\n;\n");
            batch.push(&format!(
                "INSERT INTO {table} (version, name, checksum, execution_time_ms, applied_by) VALUES ({}, {}, {}, {ELAPSED_MS}, {applied_by}) RETURNING version, execution_time_ms;\n",
                migration.version(),
                literal(migration.name()),
                literal(&migration.checksum().to_string()),
            ));
            batch.push(&action_row(
                migrator, migration, "success", None, ELAPSED_MS,
            ));
        }
        batch.push("COMMIT;");
        batch
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.chars += text.chars().count();
    }

    /// The `RETURNING version, execution_time_ms` rows, one per migration.
    fn reports(&self, messages: &[SimpleQueryMessage]) -> Vec<AppliedReport> {
        let durations: Vec<Duration> = messages
            .iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) if row.len() == 2 => row.get(1)?.parse().ok(),
                _ => None,
            })
            .map(Duration::from_millis)
            .collect();
        self.spans
            .iter()
            .zip(
                durations
                    .into_iter()
                    .chain(std::iter::repeat(Duration::ZERO)),
            )
            .map(|(&(_, _, migration), duration)| AppliedReport {
                version: migration.version(),
                name: migration.name().to_owned(),
                duration,
            })
            .collect()
    }

    /// The migration whose SQL contains the error's position, if the server gave one.
    fn span_at(&self, error: &postgres::Error) -> Option<&'m Migration> {
        let position = original_position(error)?;
        self.spans
            .iter()
            .find(|(start, len, _)| position > *start && position <= start + len)
            .map(|&(_, _, migration)| migration)
    }

    /// A failure in `migration`, located in its file when the position falls in its SQL.
    fn locate(
        &self,
        error: postgres::Error,
        migration: &Migration,
    ) -> Result<MigrationFailure, Error> {
        let start = self
            .spans
            .iter()
            .find(|(_, _, m)| m.version() == migration.version())
            .map_or(0, |&(start, _, _)| start);
        let inside = self
            .span_at(&error)
            .is_some_and(|m| m.version() == migration.version());
        let offset = if inside { start } else { usize::MAX };
        locate_in_section(error, migration, offset)
    }
}

/// The server's error as a [`MigrationFailure`]. `offset` is how many characters precede the
/// section's SQL in the query that failed (`usize::MAX`: the error is not in that SQL).
fn locate_in_section(
    error: postgres::Error,
    migration: &Migration,
    offset: usize,
) -> Result<MigrationFailure, Error> {
    let Some(db) = error.as_db_error() else {
        let context = format!(
            "applying migration {} ({})",
            migration.version(),
            migration.name()
        );
        return Err(Error::database(context)(error));
    };
    let up = migration.up();
    let position = original_position(&error)
        .filter(|_| offset != usize::MAX)
        .and_then(|position| position.checked_sub(offset));
    let (line, column) = match position {
        Some(position) => {
            let (line, column) = up.file_position(position);
            (line, Some(column))
        }
        None => (up.line(), None),
    };
    Ok(MigrationFailure {
        version: migration.version(),
        name: migration.name().to_owned(),
        path: up.path().to_owned(),
        line,
        column,
        sqlstate: db.code().code().to_owned(),
        message: db.message().to_owned(),
        detail: db.detail().map(str::to_owned),
        hint: db.hint().map(str::to_owned),
        statements: None,
        invalid_indexes: Vec::new(),
    })
}

fn original_position(error: &postgres::Error) -> Option<usize> {
    match error.as_db_error()?.position()? {
        ErrorPosition::Original(position) => Some(*position as usize),
        ErrorPosition::Internal { .. } => None,
    }
}

/// Indexes marked invalid, as `schema.name` (best effort: an empty list if the query fails).
fn invalid_indexes(client: &mut Client) -> Vec<String> {
    let query = "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE NOT i.indisvalid ORDER BY 1";
    client
        .simple_query(query)
        .map(|messages| {
            messages
                .iter()
                .filter_map(|message| match message {
                    SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Replays `pending` in one transaction, each migration as its own query, and rolls back.
fn diagnose<'m>(
    client: &mut Client,
    pending: &[&'m Migration],
) -> Option<(&'m Migration, postgres::Error)> {
    client.simple_query("BEGIN").ok()?;
    let found = pending.iter().find_map(|migration| {
        client
            .simple_query(migration.up().sql())
            .err()
            .map(|e| (*migration, e))
    });
    rollback(client);
    found
}

/// After a failure in [`LockScope::Transaction`] mode: did another process apply it?
fn applied_elsewhere(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
) -> Result<bool, Error> {
    if migrator.lock_scope != LockScope::Transaction {
        return Ok(false);
    }
    let applied = migrator.tables.read(client)?.unwrap_or_default();
    Ok(applied
        .iter()
        .any(|row| row.version == migration.version() && row.status == "applied"))
}

/// Records the failure: an action row, and for a no-transaction migration its row becomes
/// `failed`. Best effort: the migration's own error is what the caller must see.
fn record_failure(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    failure: &MigrationFailure,
    no_transaction_elapsed: Option<Duration>,
) {
    let summary = failure.summary();
    let mut sql = action_row(migrator, migration, "failed", Some(&summary), "0");
    if let Some(elapsed) = no_transaction_elapsed {
        sql = format!(
            "UPDATE {} SET status = 'failed', error_message = {}, execution_time_ms = {} WHERE version = {};\n{sql}",
            migrator.tables.migrations(),
            literal(&summary),
            elapsed.as_millis(),
            migration.version()
        );
    }
    if let Err(error) = client.simple_query(&sql) {
        log::warn!(
            "could not record the failure of migration {}: {error}",
            migration.version()
        );
    }
}

/// An `INSERT` into the action log.
fn action_row(
    migrator: &Migrator<'_>,
    migration: &Migration,
    status: &str,
    error: Option<&str>,
    duration_ms: &str,
) -> String {
    let started = if duration_ms == ELAPSED_MS {
        "current_setting('migrate.started')::timestamptz".to_owned()
    } else {
        format!("clock_timestamp() - {duration_ms} * interval '1 millisecond'")
    };
    format!(
        "INSERT INTO {} (version, name, action, checksum, started_at, duration_ms, status, error_message, executed_by, environment) \
         VALUES ({}, {}, 'apply', {}, {started}, {duration_ms}, {}, {}, {}, {});\n",
        migrator.tables.actions(),
        migration.version(),
        literal(migration.name()),
        literal(&migration.checksum().to_string()),
        literal(status),
        optional_literal(error),
        migrator.applied_by_sql(),
        optional_literal(migrator.environment_name()),
    )
}

fn rollback(client: &mut Client) {
    if let Err(error) = client.simple_query("ROLLBACK") {
        log::debug!("rolling back after a failed migration: {error}");
    }
}
