//! Running a migration's SQL, up or down: the batches sent to the server, and turning a server
//! error into a failure that points into the migration file.
//!
//! A transactional migration is `BEGIN`, its SQL, its history rows, `COMMIT`: one commit per
//! migration, and the history can only change together with the schema change it records.
//! Consecutive transactional migrations share one simple-query message (one round trip for up
//! to 100 of them), each still in its own transaction. Values are escaped by the driver's own
//! functions; identifiers are always quoted.

use std::time::{Duration, Instant};

use postgres::error::ErrorPosition;
use postgres::{Client, SimpleQueryMessage};

use crate::error::{MigrationFailure, StatementProgress};
use crate::history::{literal, optional_literal};
use crate::lock::{self, LockScope};
use crate::migrator::{AppliedReport, Migrator, Report};
use crate::source::statements;
use crate::{Error, Migration, Section};

/// Which way a migration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Its UP section: the migration becomes applied.
    Up,
    /// Its DOWN section: the migration is reverted and forgotten.
    Down,
}

impl Direction {
    /// The section to run. Callers check `Migration::down()` before reverting.
    fn section(self, migration: &Migration) -> &Section {
        match self {
            Direction::Up => migration.up(),
            Direction::Down => migration
                .down()
                .expect("reversibility is checked before reverting"),
        }
    }

    fn action(self) -> &'static str {
        match self {
            Direction::Up => "apply",
            Direction::Down => "rollback",
        }
    }
}

/// The outcome of one migration's batch.
pub(crate) enum Batch {
    Done(AppliedReport),
    /// Another process did it first (only possible with [`LockScope::Transaction`]).
    DoneElsewhere,
}

/// Runs one migration's section, in a transaction or statement by statement.
pub(crate) fn one(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    direction: Direction,
) -> Result<Batch, Error> {
    if !direction.section(migration).is_transactional() {
        return statement_by_statement(migrator, client, migration, direction);
    }
    let batch = BatchSql::transactional(migrator, &[migration], direction, Transactions::Each);
    match client.simple_query(&batch.text) {
        Ok(messages) => Ok(Batch::Done(batch.reports(&messages).remove(0))),
        Err(error) => {
            rollback(client);
            if connection_gone(client, &error) {
                return Err(Error::ConnectionLost {
                    during: format!(
                        "{} migration {} ({})",
                        match direction {
                            Direction::Up => "applying",
                            Direction::Down => "reverting",
                        },
                        migration.version(),
                        migration.name()
                    ),
                    outside_transaction: false,
                    source: error,
                });
            }
            if done_elsewhere(migrator, client, migration, direction)? {
                return Ok(Batch::DoneElsewhere);
            }
            let failure = batch.locate(error, migration)?;
            record_failure(migrator, client, migration, direction, &failure, None);
            Err(Error::MigrationFailed(Box::new(failure)))
        }
    }
}

/// How the migrations of one batch map to transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transactions {
    /// Each migration in its own transaction (with its history rows).
    Each,
    /// All of them in one (grouped mode), which this message may open, close, or neither:
    /// a large group goes in several messages.
    Part { opens: bool, closes: bool },
}

/// At most this many migrations, or about this much SQL, go into one message.
const BATCH_MIGRATIONS: usize = 100;
const BATCH_BYTES: usize = 1 << 20;

/// Splits consecutive transactional migrations into the batches [`transactional_run`] sends.
/// Behind a pooler ([`LockScope::Transaction`]) another process may commit between two of
/// our migrations, so there each batch holds one migration (see `transactional_run`).
pub(crate) fn batches<'a, 'm>(
    migrator: &Migrator<'_>,
    run: &'a [&'m Migration],
) -> Vec<&'a [&'m Migration]> {
    if migrator.lock_scope == LockScope::Transaction {
        return run.chunks(1).collect();
    }
    messages(run)
}

/// Splits `run` into messages of at most [`BATCH_MIGRATIONS`] migrations and, unless one
/// migration alone is larger, [`BATCH_BYTES`] of SQL.
fn messages<'a, 'm>(run: &'a [&'m Migration]) -> Vec<&'a [&'m Migration]> {
    let mut batches = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, migration) in run.iter().enumerate() {
        let size = migration.up().sql().len();
        if index > start && (index - start == BATCH_MIGRATIONS || bytes + size > BATCH_BYTES) {
            batches.push(&run[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < run.len() {
        batches.push(&run[start..]);
    }
    batches
}

/// Applies a batch of transactional migrations in one message and one round trip, each in
/// its own transaction with its history rows. When one fails the server skips the rest of
/// the message; those before it are committed. Under the session lock nobody else can commit,
/// so the history read after the failure says exactly which of ours went through.
pub(crate) fn transactional_run(
    migrator: &Migrator<'_>,
    client: &mut Client,
    batch_of: &[&Migration],
    report: &mut Report,
) -> Result<(), Error> {
    if batch_of.len() == 1 {
        if let Batch::Done(done) = one(migrator, client, batch_of[0], Direction::Up)? {
            migrator.record(report, done, false);
        }
        return Ok(());
    }
    let batch = BatchSql::transactional(migrator, batch_of, Direction::Up, Transactions::Each);
    match client.simple_query(&batch.text) {
        Ok(messages) => {
            for done in batch.reports(&messages) {
                migrator.record(report, done, false);
            }
            Ok(())
        }
        Err(error) => {
            rollback(client);
            if connection_gone(client, &error) {
                // Which of them committed cannot be asked; the next run reads it.
                return Err(Error::ConnectionLost {
                    during: format!("applying {}", from_to(batch_of)),
                    outside_transaction: false,
                    source: error,
                });
            }
            let applied = migrator.tables.read(client)?.unwrap_or_default();
            let applied_ms = |migration: &Migration| {
                applied
                    .iter()
                    .find(|row| row.version == migration.version())
                    .map(|row| row.execution_time_ms.max(0) as u64)
            };
            let committed = batch_of
                .iter()
                .take_while(|m| applied_ms(m).is_some())
                .count();
            let failed = match batch_of.get(committed) {
                Some(&failing) => {
                    let failure = batch.locate(error, failing)?;
                    // Its synchronous commit also makes the ones before it durable.
                    record_failure(migrator, client, failing, Direction::Up, &failure, None);
                    Error::MigrationFailed(Box::new(failure))
                }
                // Every migration committed: the error came after them (nothing to blame).
                None => Error::database("applying a batch of migrations")(error),
            };
            for migration in &batch_of[..committed] {
                let duration = Duration::from_millis(applied_ms(migration).unwrap_or_default());
                let done = AppliedReport {
                    version: migration.version(),
                    name: migration.name().to_owned(),
                    duration,
                };
                migrator.record(report, done, false);
            }
            Err(failed)
        }
    }
}

/// "migrations 1 (a) to 9 (i)", for messages about a run of them.
fn from_to(migrations: &[&Migration]) -> String {
    let (first, last) = (migrations[0], migrations[migrations.len() - 1]);
    format!(
        "migrations {} ({}) to {} ({})",
        first.version(),
        first.name(),
        last.version(),
        last.name()
    )
}

/// Applies all of `pending` in one transaction, sent in messages of the same size as
/// [`batches`]: one message of thousands of migrations makes the server parse and hold all
/// of them at once, which measured slower than a hundred at a time (README, Performance).
pub(crate) fn grouped(
    migrator: &Migrator<'_>,
    client: &mut Client,
    pending: &[&Migration],
) -> Result<Vec<AppliedReport>, Error> {
    let parts = messages(pending);
    let mut reports = Vec::with_capacity(pending.len());
    for (index, part) in parts.iter().enumerate() {
        let transactions = Transactions::Part {
            opens: index == 0,
            closes: index + 1 == parts.len(),
        };
        let batch = BatchSql::transactional(migrator, part, Direction::Up, transactions);
        match client.simple_query(&batch.text) {
            Ok(messages) => reports.extend(batch.reports(&messages)),
            Err(error) => return Err(group_failed(migrator, client, pending, &batch, error)),
        }
    }
    Ok(reports)
}

/// After the group's transaction failed in `batch`: roll it back, find the migration to
/// blame, and record its failure.
fn group_failed(
    migrator: &Migrator<'_>,
    client: &mut Client,
    pending: &[&Migration],
    batch: &BatchSql<'_>,
    error: postgres::Error,
) -> Error {
    rollback(client);
    if connection_gone(client, &error) {
        // The server rolls the open transaction back when the session ends: none of the
        // group is applied.
        return Error::ConnectionLost {
            during: format!("applying {} in one transaction", from_to(pending)),
            outside_transaction: false,
            source: error,
        };
    }
    let located = match batch.span_at(&error) {
        Some(migration) => batch.locate(error, migration).map(|f| (migration, f)),
        // The server did not say where: replay the group migration by migration in a
        // transaction that is rolled back, to find the one that fails.
        None => {
            let replayed = client
                .simple_query("BEGIN")
                .map(|_| replay(client, pending));
            rollback(client);
            match replayed.ok().and_then(|outcomes| {
                outcomes
                    .into_iter()
                    .find_map(|(m, _, r)| r.err().map(|e| (m, e)))
            }) {
                Some((migration, error)) => {
                    locate(error, migration, migration.up(), Direction::Up, 0)
                        .map(|f| (migration, f))
                }
                None => batch.locate(error, pending[0]).map(|f| (pending[0], f)),
            }
        }
    };
    match located {
        Ok((migration, failure)) => {
            record_failure(migrator, client, migration, Direction::Up, &failure, None);
            Error::MigrationFailed(Box::new(failure))
        }
        Err(error) => error,
    }
}

/// Runs each migration's UP as its own query inside the transaction the caller opened,
/// stopping after the first failure: which one fails, and how long each took.
pub(crate) fn replay<'m>(
    client: &mut Client,
    migrations: &[&'m Migration],
) -> Vec<(&'m Migration, Duration, Result<(), postgres::Error>)> {
    let mut outcomes = Vec::new();
    for migration in migrations {
        let started = Instant::now();
        let result = client.simple_query(migration.up().sql()).map(drop);
        let failed = result.is_err();
        outcomes.push((*migration, started.elapsed(), result));
        if failed {
            break;
        }
    }
    outcomes
}

/// Statement by statement, each outside any transaction. The row is marked `running` first;
/// it ends `applied` (or, going down, deleted), or `failed` with the statement that failed.
fn statement_by_statement(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    direction: Direction,
) -> Result<Batch, Error> {
    let table = migrator.tables.migrations();
    let version = migration.version();
    let claim = match direction {
        Direction::Up => format!(
            "INSERT INTO {table} (version, name, checksum, applied_by, status) VALUES ({version}, {}, {}, {}, 'running')",
            literal(migration.name()),
            literal(&migration.checksum().to_string()),
            migrator.applied_by_sql(),
        ),
        Direction::Down => format!("UPDATE {table} SET status = 'running' WHERE version = {version}"),
    };
    let claim = match migrator.lock_scope {
        LockScope::Session => claim,
        LockScope::Transaction => format!("{}{claim};\nCOMMIT;", begin_sql(migrator)),
    };
    if let Err(error) = client.simple_query(&claim) {
        rollback(client);
        if done_elsewhere(migrator, client, migration, direction)? {
            return Ok(Batch::DoneElsewhere);
        }
        return Err(Error::database(format!("claiming migration {version}"))(
            error,
        ));
    }

    let started = Instant::now();
    let section = direction.section(migration);
    let sql = section.sql();
    let all: Vec<statements::Statement<'_>> = statements::split(sql).collect();
    for (index, statement) in all.iter().enumerate() {
        if let Err(error) = client.simple_query(statement.text) {
            let offset = sql[..statement.start].chars().count();
            if connection_gone(client, &error) {
                // The row cannot be marked `failed`: it stays `running` for the next run.
                return Err(Error::ConnectionLost {
                    during: format!(
                        "running migration {} ({}), statement {} of {} at {}:{}",
                        version,
                        migration.name(),
                        index + 1,
                        all.len(),
                        section.path(),
                        section.file_position(offset + 1).0,
                    ),
                    outside_transaction: true,
                    source: error,
                });
            }
            let mut failure = locate(error, migration, section, direction, offset)?;
            if failure.column.is_none() {
                // No position from the server, but we know which statement it was.
                failure.line = section.file_position(offset + 1).0;
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
                direction,
                &failure,
                Some(started.elapsed()),
            );
            return Err(Error::MigrationFailed(Box::new(failure)));
        }
    }
    let duration = started.elapsed();
    let ms = duration.as_millis().to_string();
    let record = match direction {
        Direction::Up => format!(
            "UPDATE {table} SET status = 'applied', applied_at = now(), execution_time_ms = {ms} WHERE version = {version};\n"
        ),
        Direction::Down => format!("DELETE FROM {table} WHERE version = {version};\n"),
    };
    let finish = format!(
        "{record}{}",
        action_row(migrator, migration, direction, "success", None, &ms)
    );
    client
        .simple_query(&finish)
        .map_err(Error::database(format!("recording migration {version}")))?;
    Ok(Batch::Done(AppliedReport {
        version,
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
    direction: Direction,
}

/// `BEGIN`, and behind a pooler ([`LockScope::Transaction`]) the transaction's migration lock.
pub(crate) fn begin_sql(migrator: &Migrator<'_>) -> String {
    let mut sql = String::from("BEGIN;\n");
    if migrator.lock_scope == LockScope::Transaction {
        sql.push_str(&lock::transaction_lock_sql(
            lock::key(&migrator.tables),
            migrator.lock_wait,
        ));
    }
    sql
}

/// Notes when a migration's SQL starts, for [`ELAPSED_MS`].
pub(crate) const MARK_STARTED: &str =
    "SELECT set_config('migrate.started', clock_timestamp()::text, true);\n";

/// Milliseconds since this migration's SQL started, measured by the server.
const ELAPSED_MS: &str = "(extract(epoch FROM clock_timestamp() - current_setting('migrate.started')::timestamptz) * 1000)::bigint";

impl<'m> BatchSql<'m> {
    fn transactional(
        migrator: &Migrator<'_>,
        migrations: &[&'m Migration],
        direction: Direction,
        transactions: Transactions,
    ) -> Self {
        let mut batch = BatchSql {
            text: String::new(),
            chars: 0,
            spans: Vec::new(),
            direction,
        };
        let last = migrations.len().saturating_sub(1);
        let opens = match transactions {
            Transactions::Each => true,
            Transactions::Part { opens, .. } => opens,
        };
        for (index, migration) in migrations.iter().enumerate() {
            if transactions == Transactions::Each || (index == 0 && opens) {
                batch.begin(migrator);
            }
            if transactions == Transactions::Each && index < last {
                // Group commit: the last transaction of the message commits with the session's
                // own setting, and its WAL flush covers every commit before it. Nothing is
                // reported before that flush (or, when one fails, before the failure row's).
                batch.push("SET LOCAL synchronous_commit = off;\n");
            }
            batch.push(MARK_STARTED);
            let start = batch.chars;
            batch.push(direction.section(migration).sql());
            batch.spans.push((start, batch.chars - start, migration));
            // A newline ends a trailing `--` comment; the `;` ends a last statement without one.
            batch.push("\n;\n");
            batch.push(&record_sql(migrator, migration, direction));
            if transactions == Transactions::Each {
                batch.push("COMMIT;\n");
            }
        }
        if let Transactions::Part { closes: true, .. } = transactions {
            batch.push("COMMIT;\n");
        }
        batch
    }

    fn begin(&mut self, migrator: &Migrator<'_>) {
        self.push(&begin_sql(migrator));
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.chars += text.chars().count();
    }

    /// The `RETURNING version, milliseconds` rows, one per migration.
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
        let inside = self
            .span_at(&error)
            .is_some_and(|m| m.version() == migration.version());
        let offset = match self
            .spans
            .iter()
            .find(|(_, _, m)| m.version() == migration.version())
        {
            Some(&(start, _, _)) if inside => start,
            _ => usize::MAX,
        };
        locate(
            error,
            migration,
            self.direction.section(migration),
            self.direction,
            offset,
        )
    }
}

/// The server's error as a [`MigrationFailure`]. `offset` is how many characters precede the
/// section's SQL in the query that failed (`usize::MAX`: the error is not in that SQL).
pub(crate) fn locate(
    error: postgres::Error,
    migration: &Migration,
    section: &Section,
    direction: Direction,
    offset: usize,
) -> Result<MigrationFailure, Error> {
    let Some(db) = error.as_db_error() else {
        // No answer from the server: the connection itself failed.
        return Err(Error::ConnectionLost {
            during: format!(
                "running migration {} ({})",
                migration.version(),
                migration.name()
            ),
            outside_transaction: !section.is_transactional(),
            source: error,
        });
    };
    let position = original_position(&error)
        .filter(|_| offset != usize::MAX)
        .and_then(|position| position.checked_sub(offset));
    let (line, column) = match position {
        Some(position) => {
            let (line, column) = section.file_position(position);
            (line, Some(column))
        }
        None => (section.line(), None),
    };
    Ok(MigrationFailure {
        version: migration.version(),
        name: migration.name().to_owned(),
        reverting: direction == Direction::Down,
        path: section.path().to_owned(),
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
pub(crate) fn invalid_indexes(client: &mut Client) -> Vec<String> {
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

/// After a failure in [`LockScope::Transaction`] mode: did another process do it?
fn done_elsewhere(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    direction: Direction,
) -> Result<bool, Error> {
    if migrator.lock_scope != LockScope::Transaction {
        return Ok(false);
    }
    let started = Instant::now();
    loop {
        let applied = migrator.tables.read(client)?.unwrap_or_default();
        let row = applied
            .iter()
            .find(|row| row.version == migration.version());
        // Another live run is in the middle of it (no-transaction): wait, as for the lock.
        if row.is_some_and(|row| row.status == "running") && started.elapsed() < migrator.lock_wait
        {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Ok(match direction {
            Direction::Up => row.is_some_and(|row| row.status == "applied"),
            Direction::Down => row.is_none(),
        });
    }
}

/// Records a guarded migration's failure in the action log (best effort, like
/// [`record_failure`]).
pub(crate) fn record_error(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    error: &Error,
) {
    match error {
        Error::MigrationFailed(failure) => {
            record_failure(migrator, client, migration, Direction::Up, failure, None)
        }
        Error::PolicyViolation(violation) => {
            let summary = format!("data-safety policy: {}", violation.problems.join("; "));
            let sql = action_row(
                migrator,
                migration,
                Direction::Up,
                "failed",
                Some(&summary),
                "0",
            );
            if let Err(error) = client.simple_query(&sql) {
                log::warn!(
                    "could not record the refusal of migration {}: {error}",
                    migration.version()
                );
            }
        }
        _ => {}
    }
}

/// Records the failure: an action row, and for a statement-by-statement run its row becomes
/// `failed`. Best effort: the migration's own error is what the caller must see.
fn record_failure(
    migrator: &Migrator<'_>,
    client: &mut Client,
    migration: &Migration,
    direction: Direction,
    failure: &MigrationFailure,
    statement_by_statement_elapsed: Option<Duration>,
) {
    let summary = failure.summary();
    let mut sql = action_row(
        migrator,
        migration,
        direction,
        "failed",
        Some(&summary),
        "0",
    );
    if let Some(elapsed) = statement_by_statement_elapsed {
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
/// The history rows of a transactional migration that just ran, inside its transaction:
/// its `schema_migrations` row (inserted, or deleted going down) and its action-log row.
/// Returns `version, milliseconds` as a row.
pub(crate) fn record_sql(
    migrator: &Migrator<'_>,
    migration: &Migration,
    direction: Direction,
) -> String {
    let table = migrator.tables.migrations();
    let record = match direction {
        Direction::Up => format!(
            // clock_timestamp(): now() is the same for every transaction in one message.
            "INSERT INTO {table} (version, name, checksum, applied_at, execution_time_ms, applied_by) VALUES ({}, {}, {}, clock_timestamp(), {ELAPSED_MS}, {}) RETURNING version, execution_time_ms;\n",
            migration.version(),
            literal(migration.name()),
            literal(&migration.checksum().to_string()),
            migrator.applied_by_sql(),
        ),
        Direction::Down => format!(
            "DELETE FROM {table} WHERE version = {} RETURNING version, {ELAPSED_MS};\n",
            migration.version()
        ),
    };
    record + &action_row(migrator, migration, direction, "success", None, ELAPSED_MS)
}

fn action_row(
    migrator: &Migrator<'_>,
    migration: &Migration,
    direction: Direction,
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
         VALUES ({}, {}, '{}', {}, {started}, {duration_ms}, {}, {}, {}, {});\n",
        migrator.tables.actions(),
        migration.version(),
        literal(migration.name()),
        direction.action(),
        literal(&migration.checksum().to_string()),
        literal(status),
        optional_literal(error),
        migrator.applied_by_sql(),
        optional_literal(migrator.environment_name()),
    )
}

/// Whether `error` ended the session: the socket closed (or failed: an error that is not the
/// server's answer), or the server said it is ending it (SQLSTATE class 08, or 57P01-57P03:
/// terminated, shutting down, crashed) before closing.
fn connection_gone(client: &Client, error: &postgres::Error) -> bool {
    client.is_closed()
        || error.as_db_error().is_none()
        || error.code().is_some_and(|code| {
            let code = code.code();
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        })
}

pub(crate) fn rollback(client: &mut Client) {
    if let Err(error) = client.simple_query("ROLLBACK") {
        log::debug!("rolling back: {error}");
    }
}
