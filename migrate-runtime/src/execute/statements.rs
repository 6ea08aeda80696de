//! A no-transaction unit: one migration's statements, each on its own outside any
//! transaction. Its row is `running` first; it ends `applied` (or, going down, deleted), or
//! `failed` with the statement that failed.
//!
//! The run's timeouts are set on the session for the statements (each is its own
//! transaction) and the session's own values restored after. A statement that could not get
//! its lock in time ran nothing and is tried again on its own, unless it is inside a
//! transaction the file opened itself (that transaction is gone with it) or is one of the
//! commands PostgreSQL refuses in a transaction block: `CREATE INDEX CONCURRENTLY` waits for
//! older transactions by design, blocks no reader or writer meanwhile, and a cancelled build
//! leaves an invalid index behind, so those run with the session's own timeouts.

use std::time::Instant;

use super::locate;
use super::session::{connection_gone, done_elsewhere, record, rollback};
use crate::contention::{self, Attempts};
use crate::error::StatementProgress;
use crate::lock::{self, LockScope};
use crate::plan::Step;
use crate::run::{AppliedReport, Run, Waiting};
use crate::source::statements::{self, StatementKind};
use crate::Error;

/// The run's timeouts as session settings, around a no-transaction migration's statements.
struct SessionTimeouts(Vec<(&'static str, String)>);

impl SessionTimeouts {
    /// None behind a transaction pooler ([`LockScope::Transaction`]): there a session setting
    /// would stay on whichever server connection ran it, for other clients to inherit, and
    /// the saved value could not be read back on the next one.
    fn of(run: &Run<'_, '_>, step: Step<'_>) -> Self {
        let settings = run.settings;
        let mut values = Vec::new();
        if settings.lock_scope == LockScope::Transaction {
            return SessionTimeouts(values);
        }
        if let Some(limit) = settings.lock_timeout_of(step.migration) {
            values.push(("lock_timeout", contention::lock_timeout_setting(limit)));
        }
        if let Some(limit) = settings.statement_timeout {
            values.push(("statement_timeout", contention::milliseconds(limit)));
        }
        SessionTimeouts(values)
    }

    /// Keeps the session's values (in `migrate.saved_*`) and sets ours.
    fn save_and_set(&self) -> String {
        self.0
            .iter()
            .map(|(name, _)| {
                format!("SELECT set_config('migrate.saved_{name}', current_setting('{name}'), false);\n")
            })
            .collect::<String>()
            + &self.set()
    }

    fn set(&self) -> String {
        self.0
            .iter()
            .map(|(name, value)| format!("SET {name} = '{value}';\n"))
            .collect()
    }

    /// The session's own values back.
    fn restore(&self) -> String {
        self.0
            .iter()
            .map(|(name, _)| {
                // A session moved by a pooler may lack the saved value: keep its own then.
                format!("SELECT set_config('{name}', coalesce(current_setting('migrate.saved_{name}', true), current_setting('{name}')), false);\n")
            })
            .collect()
    }
}

pub(super) fn run_statements(
    run: &mut Run<'_, '_>,
    step: Step<'_>,
    attempts: &mut Attempts,
) -> Result<(), Error> {
    let migration = step.migration;
    let version = migration.version();
    let recorder = run.recorder();
    let timeouts = SessionTimeouts::of(run, step);
    let claim = match run.settings.lock_scope {
        LockScope::Session => run.still_locked_sql() + &recorder.claim(migration, step.direction),
        LockScope::Transaction => format!(
            "{}{}COMMIT;",
            run.begin_sql(),
            recorder.claim(migration, step.direction)
        ),
    } + &timeouts.save_and_set();
    if let Err(error) = run.client.simple_query(&claim) {
        rollback(&mut run.client);
        if lock::is_not_ours(&error) {
            return Err(Error::BehindTransactionPooler);
        }
        if done_elsewhere(run, step)? {
            return Ok(());
        }
        return Err(Error::database(format!("claiming migration {version}"))(
            error,
        ));
    }

    let started = Instant::now();
    let section = step.section();
    let all: Vec<statements::Statement<'_>> = statements::split(section.sql()).collect();
    let mut ours = true;
    let mut in_own_transaction = false;
    for (index, statement) in all.iter().enumerate() {
        let kind = statements::classify(statement.text);
        let wants_ours = !matches!(kind, StatementKind::RefusedInTransaction(_));
        if wants_ours != ours && !timeouts.0.is_empty() {
            let switch = if wants_ours {
                timeouts.set()
            } else {
                timeouts.restore()
            };
            run.client
                .simple_query(&switch)
                .map_err(Error::database(format!(
                    "setting the timeouts of migration {version}"
                )))?;
            ours = wants_ours;
        }
        let error = loop {
            match run.client.simple_query(statement.text) {
                Ok(_) => break None,
                Err(error)
                    if contention::is_contention(&error)
                        && wants_ours
                        && !in_own_transaction
                        && !connection_gone(&run.client, &error) =>
                {
                    match attempts.lost() {
                        Some(pause) => {
                            run.waiting(Waiting {
                                during: format!(
                                    "migration {version} ({}), statement {} of {}",
                                    migration.name(),
                                    index + 1,
                                    all.len()
                                ),
                                cause: error.as_db_error().map_or_else(
                                    || error.to_string(),
                                    |db| db.message().to_owned(),
                                ),
                                attempt: attempts.lost_count() + 1,
                                pause,
                            });
                            std::thread::sleep(pause);
                        }
                        None => break Some(error),
                    }
                }
                Err(error) => break Some(error),
            }
        };
        match kind {
            StatementKind::Begin { .. } => in_own_transaction = true,
            StatementKind::Commit { .. } | StatementKind::Rollback => in_own_transaction = false,
            _ => {}
        }
        let Some(error) = error else {
            continue;
        };
        if connection_gone(&run.client, &error) {
            // The row cannot be marked `failed`: it stays `running` for the next run.
            let offset = section.sql()[..statement.start].chars().count();
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
        // A file that manages its own transactions may have one open, now aborted: end it, so
        // the failure can be recorded (outside a transaction block this only warns).
        rollback(&mut run.client);
        let mut failure = locate::statement_failure(error, step, statement.start)?;
        failure.statements = Some(StatementProgress {
            failed: index + 1,
            total: all.len(),
        });
        failure.invalid_indexes = crate::schema::invalid_indexes(&mut run.client);
        let sql = recorder.failed(
            migration,
            step.direction,
            &failure.summary(),
            Some(started.elapsed()),
        ) + &timeouts.restore();
        record(run, version, &sql);
        return Err(Error::MigrationFailed(Box::new(failure)));
    }
    let duration = started.elapsed();
    let done = recorder.statements_done(
        migration,
        step.direction,
        duration,
        attempts.note().as_deref(),
    );
    // Not checked for the lock: every statement succeeded, so the migration is complete
    // wherever they ran, and its `running` row (claimed under the lock) kept any other run
    // from starting it.
    run.client
        .simple_query(&(done + &timeouts.restore()))
        .map_err(Error::database(format!("recording migration {version}")))?;
    run.done(
        AppliedReport {
            version,
            name: migration.name().to_owned(),
            duration,
        },
        step.direction,
    );
    Ok(())
}
