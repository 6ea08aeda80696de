//! A no-transaction unit: one migration's statements, each on its own outside any
//! transaction. Its row is `running` first; it ends `applied` (or, going down, deleted), or
//! `failed` with the statement that failed.

use std::time::Instant;

use super::locate;
use super::session::{connection_gone, done_elsewhere, record, rollback};
use crate::error::StatementProgress;
use crate::lock::LockScope;
use crate::plan::Step;
use crate::run::{AppliedReport, Run};
use crate::source::statements;
use crate::Error;

pub(super) fn run_statements(run: &mut Run<'_, '_>, step: Step<'_>) -> Result<(), Error> {
    let migration = step.migration;
    let version = migration.version();
    let recorder = run.recorder();
    let claim = match run.settings.lock_scope {
        LockScope::Session => recorder.claim(migration, step.direction),
        LockScope::Transaction => format!(
            "{}{}COMMIT;",
            run.begin_sql(),
            recorder.claim(migration, step.direction)
        ),
    };
    if let Err(error) = run.client.simple_query(&claim) {
        rollback(&mut run.client);
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
    for (index, statement) in all.iter().enumerate() {
        let Err(error) = run.client.simple_query(statement.text) else {
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
        );
        record(run, version, &sql);
        return Err(Error::MigrationFailed(Box::new(failure)));
    }
    let duration = started.elapsed();
    run.client
        .simple_query(&recorder.statements_done(migration, step.direction, duration))
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
