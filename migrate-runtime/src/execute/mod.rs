//! The execute stage: runs one planned unit on the locked connection, records what it did
//! through the history module, and when the server refuses, blames the migration and the
//! statement that failed, and no other.
//!
//! The attribution contract, for every unit:
//! - an error with a position is mapped through the message's spans to the migration, file,
//!   line and column it falls in;
//! - when nothing of a message ran (a parse error refuses the whole message before any of it
//!   runs), the migrations before the culprit are run again without it, and only then is the
//!   culprit run, first in its own message, so that its failure is its own;
//! - an error without a position is located by replaying the failed migration statement by
//!   statement in a transaction that is rolled back (only on this path: the happy path keeps
//!   its round trips);
//! - a failure is recorded against the migration that failed and no other.
//!
//! A unit whose transaction could not get its locks in time (or lost a deadlock) is not a
//! failure: it was rolled back, nothing of it is recorded as failed, and it runs again after a
//! pause, within the retry budget (see [`crate::contention`]).

mod locate;
mod message;
mod session;
mod statements;

use std::ops::Range;
use std::time::Duration;

use crate::contention::{self, Attempts};
use crate::error::{LockContention, MigrationFailure};
use crate::lock;
use crate::migration::{Direction, Migration};
use crate::plan::{self, Step, Unit};
use crate::run::{AppliedReport, Run, Waiting};
use crate::safety::{self, SafetyPolicy};
use crate::Error;
use message::{Message, Transactions};
use session::{connection_gone, done_elsewhere, record};

pub(crate) use session::rollback;

/// How an attempt at a unit ended, when it did not succeed.
enum Stop {
    /// A transaction could not get a lock in time (or lost a deadlock) and was rolled back;
    /// the first `done` steps of the attempt had committed before it.
    Contention { error: postgres::Error, done: usize },
    /// Anything else: the run stops with this error.
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(error: Error) -> Stop {
        Stop::Failed(error)
    }
}

impl Stop {
    /// The same stop, for an attempt whose steps start `by` steps further into the unit.
    fn after(self, by: usize) -> Stop {
        match self {
            Stop::Contention { error, done } => Stop::Contention {
                error,
                done: done + by,
            },
            failed => failed,
        }
    }
}

/// Runs `unit`: every step done is reported to the run as it is known to have committed.
/// A transaction that could not get its locks in time is retried from where it stopped.
pub(crate) fn unit(run: &mut Run<'_, '_>, unit: &Unit<'_>) -> Result<(), Error> {
    let mut attempts = Attempts::new(run.settings.retry);
    let mut from = 0;
    loop {
        let note = attempts.note();
        let note = note.as_deref();
        let result = match unit {
            Unit::Transactions(steps) => transactions(run, &steps[from..], note),
            Unit::Group { steps, messages } => group(run, steps, messages, note),
            Unit::Statements(step) => {
                statements::run_statements(run, *step, &mut attempts).map_err(Stop::Failed)
            }
            Unit::Guarded(step, policy) => guarded(run, *step, *policy, note),
            Unit::Forget(migration) => forget(run, migration).map_err(Stop::Failed),
        };
        let (error, done) = match result {
            Ok(()) => return Ok(()),
            Err(Stop::Failed(error)) => return Err(error),
            Err(Stop::Contention { error, done }) => (error, done),
        };
        if done > 0 {
            // Progress: the budget starts again for the step that now waits.
            from += done;
            attempts = Attempts::new(run.settings.retry);
        }
        let waiting = waiting_steps(unit, from);
        match attempts.lost() {
            Some(pause) => {
                run.waiting(Waiting {
                    during: during(waiting, ""),
                    cause: error
                        .as_db_error()
                        .map_or_else(|| error.to_string(), |db| db.message().to_owned()),
                    attempt: attempts.lost_count() + 1,
                    pause,
                });
                std::thread::sleep(pause);
            }
            None => {
                let grouped = matches!(unit, Unit::Group { .. });
                return Err(give_up(run, waiting, grouped, error, &attempts));
            }
        }
    }
}

/// The steps of `unit` that have yet to commit, once `from` of them have.
fn waiting_steps<'u, 'm>(unit: &'u Unit<'m>, from: usize) -> &'u [Step<'m>] {
    match unit {
        Unit::Transactions(steps) => &steps[from..],
        Unit::Group { steps, .. } => steps,
        Unit::Statements(step) | Unit::Guarded(step, _) => std::slice::from_ref(step),
        Unit::Forget(_) => &[],
    }
}

/// The error when the retry budget ran out: what was waiting, and who held locks on the
/// tables it names. Outside a group, the first step waiting is the one that could not get
/// its lock, and its action log says so; in a group none is blamed.
fn give_up(
    run: &mut Run<'_, '_>,
    waiting: &[Step<'_>],
    grouped: bool,
    error: postgres::Error,
    attempts: &Attempts,
) -> Error {
    let Some(db) = error.as_db_error() else {
        return Error::database("retrying a migration")(error);
    };
    let (blamed, one) = match waiting.first() {
        Some(step) if !grouped => (std::slice::from_ref(step), Some(*step)),
        _ => (waiting, None),
    };
    let sql: Vec<&str> = blamed.iter().map(|step| step.section().sql()).collect();
    let contention = LockContention {
        during: during(blamed, if grouped { " in one transaction" } else { "" }),
        path: one.map(|step| step.section().path().to_owned()),
        attempts: attempts.lost_count(),
        waited: attempts.elapsed(),
        lock_timeout: match one {
            Some(step) => run.settings.lock_timeout_of(step.migration),
            None => run.settings.lock_timeout.map(crate::LockTimeout::After),
        },
        message: db.message().to_owned(),
        sqlstate: db.code().clone(),
        blockers: contention::blockers(&mut run.client, &sql),
    };
    if let Some(step) = one {
        let sql = run.recorder().failed(
            step.migration,
            step.direction,
            &contention.to_string(),
            None,
        );
        record(run, step.migration.version(), &sql);
    }
    Error::LockNotAvailable(Box::new(contention))
}

/// Each step in its own transaction, all in one message. When one fails the server skips the
/// rest of the message; those before it are committed. Under the session lock nobody else can
/// commit, so the history read after the failure says exactly which of ours went through.
///
/// `note` (a retried attempt's) goes into the first step's action-log row.
fn transactions(run: &mut Run<'_, '_>, steps: &[Step<'_>], note: Option<&str>) -> Result<(), Stop> {
    if steps.is_empty() {
        return Ok(());
    }
    let message = Message::new(run, steps, 0, Transactions::Each, note);
    let error = match run.client.simple_query(message.text()) {
        Ok(rows) => {
            for done in message.reports(&rows) {
                run.done(done, steps[0].direction);
            }
            return Ok(());
        }
        Err(error) => error,
    };
    rollback(&mut run.client);
    if lock::is_not_ours(&error) {
        // Nothing of this message ran; what the history shows is not ours to report.
        return Err(Error::BehindTransactionPooler.into());
    }
    if connection_gone(&run.client, &error) {
        // Which of them committed cannot be asked; the next run reads it.
        return Err(Error::ConnectionLost {
            during: during(steps, ""),
            outside_transaction: false,
            source: error,
        }
        .into());
    }
    if steps.len() == 1 && done_elsewhere(run, steps[0])? {
        return Ok(());
    }
    let committed = committed(run, steps)?;
    let blamed = message.blame(&error);
    for (step, duration) in steps.iter().zip(&committed) {
        run.done(report(step.migration, *duration), step.direction);
    }
    let first_open = committed.len();
    if first_open == steps.len() {
        // Every migration committed: the error came after them (nothing to blame).
        return Err(Error::database("applying a batch of migrations")(error).into());
    }
    if contention::is_contention(&error) {
        return Err(Stop::Contention {
            error,
            done: first_open,
        });
    }
    match blamed {
        // The server refused the message before running the culprit's predecessors: they did
        // not fail. Run them on their own, then the culprit first in its message.
        Some((culprit, _)) if culprit > first_open => {
            transactions(run, &steps[first_open..culprit], None)
                .map_err(|stop| stop.after(first_open))?;
            transactions(run, &steps[culprit..], None).map_err(|stop| stop.after(culprit))
        }
        Some((culprit, position)) if culprit == first_open => {
            Err(failed(run, steps[culprit], error, position).into())
        }
        // No position (or one outside the migrations): the first that did not commit failed.
        _ => Err(failed(run, steps[first_open], error, None).into()),
    }
}

/// How long each step of the committed prefix of `steps` took, from the history.
fn committed(run: &mut Run<'_, '_>, steps: &[Step<'_>]) -> Result<Vec<Duration>, Error> {
    let applied = run
        .settings
        .tables
        .read(&mut run.client)?
        .unwrap_or_default();
    let row = |m: &Migration| applied.iter().find(|row| row.version == m.version());
    Ok(steps
        .iter()
        .map_while(|step| match (step.direction, row(step.migration)) {
            (Direction::Up, Some(row)) => {
                Some(Duration::from_millis(row.execution_time_ms.max(0) as u64))
            }
            (Direction::Down, None) => Some(Duration::ZERO),
            _ => None,
        })
        .collect())
}

/// All steps in one transaction, in several messages. A failure rolls all of them back.
fn group(
    run: &mut Run<'_, '_>,
    steps: &[Step<'_>],
    messages: &[Range<usize>],
    note: Option<&str>,
) -> Result<(), Stop> {
    let mut messages = messages.to_vec();
    'attempt: loop {
        let mut done = Vec::with_capacity(steps.len());
        for (index, range) in messages.iter().enumerate() {
            let transactions = Transactions::Part {
                opens: index == 0,
                closes: index + 1 == messages.len(),
            };
            let message = Message::new(run, &steps[range.clone()], range.start, transactions, note);
            let error = match run.client.simple_query(message.text()) {
                Ok(rows) => {
                    done.extend(message.reports(&rows));
                    continue;
                }
                Err(error) => error,
            };
            rollback(&mut run.client);
            if lock::is_not_ours(&error) {
                return Err(Error::BehindTransactionPooler.into());
            }
            if connection_gone(&run.client, &error) {
                // The server rolls the open transaction back when the session ends: none of
                // the group is applied.
                return Err(Error::ConnectionLost {
                    during: during(steps, " in one transaction"),
                    outside_transaction: false,
                    source: error,
                }
                .into());
            }
            if contention::is_contention(&error) {
                return Err(Stop::Contention { error, done: 0 });
            }
            return match message.blame(&error) {
                Some((culprit, _))
                    if culprit > range.start
                        && refused_before_running(run, message.text(), &error) =>
                {
                    // None of this message ran: its migrations before the culprit have not
                    // been tried. Run the group again with the culprit first in its message.
                    messages = plan::split_before(&messages, culprit);
                    continue 'attempt;
                }
                Some((culprit, Some(position))) => {
                    Err(failed(run, steps[culprit], error, Some(position)).into())
                }
                _ => Err(group_failed_without_position(run, steps, &messages, index, error).into()),
            };
        }
        for report in done {
            run.done(report, Direction::Up);
        }
        return Ok(());
    }
}

/// Whether the server refused `text` as a whole, before running any of it: it parses every
/// statement of a message first, and a parse error stops all of them. Preparing the same text
/// parses it without running it (a text that parses is refused for holding several commands,
/// an error without a position).
fn refused_before_running(run: &mut Run<'_, '_>, text: &str, error: &postgres::Error) -> bool {
    match run.client.prepare(text) {
        Ok(_) => false,
        Err(parse) => {
            let refused = message::original_position(&parse).is_some()
                && message::original_position(&parse) == message::original_position(error);
            rollback(&mut run.client);
            refused
        }
    }
}

/// A group failed in message `index` without a position in a migration's SQL: replay the
/// messages before it as they were, then that message's migrations statement by statement,
/// in a transaction that is rolled back.
fn group_failed_without_position(
    run: &mut Run<'_, '_>,
    steps: &[Step<'_>],
    messages: &[Range<usize>],
    index: usize,
    error: postgres::Error,
) -> Error {
    let no_transactions = Transactions::Part {
        opens: false,
        closes: false,
    };
    let prelude: Vec<String> = messages[..index]
        .iter()
        .map(|range| {
            Message::new(
                run,
                &steps[range.clone()],
                range.start,
                no_transactions,
                None,
            )
            .text()
            .to_owned()
        })
        .collect();
    let candidates = &steps[messages[index].clone()];
    let begin = run.begin_sql();
    let replayed = if locate::was_cancelled(&error) {
        None
    } else {
        locate::replay(&mut run.client, &begin, &prelude, candidates)
    };
    match replayed {
        Some(culprit) => {
            let step = candidates[culprit.index];
            blame(
                run,
                step,
                locate::statement_failure(culprit.error, step, culprit.start),
            )
        }
        // No statement fails on its own (a deferred constraint checked at COMMIT, say): no
        // migration can be blamed, so none is.
        None => {
            Error::database(format!("applying {}", during(steps, " in one transaction")))(error)
        }
    }
}

/// The failure of `step`, located and recorded: by the server's position within its SQL, or
/// by replaying its statements when there is none.
fn failed(
    run: &mut Run<'_, '_>,
    step: Step<'_>,
    error: postgres::Error,
    position: Option<usize>,
) -> Error {
    if position.is_some() || locate::was_cancelled(&error) {
        return blame(run, step, locate::failure(error, step, position));
    }
    let begin = run.begin_sql();
    let located = match locate::replay(&mut run.client, &begin, &[], &[step]) {
        Some(culprit) => locate::statement_failure(culprit.error, step, culprit.start),
        None => locate::failure(error, step, None),
    };
    blame(run, step, located)
}

/// Records `step`'s failure (its action row; nothing else is blamed) and makes it the error.
fn blame(run: &mut Run<'_, '_>, step: Step<'_>, located: Result<MigrationFailure, Error>) -> Error {
    match located {
        Ok(failure) => {
            let sql =
                run.recorder()
                    .failed(step.migration, step.direction, &failure.summary(), None);
            // Its synchronous commit also makes the commits before it durable.
            record(run, step.migration.version(), &sql);
            Error::MigrationFailed(Box::new(failure))
        }
        Err(error) => error,
    }
}

/// One transactional step checked against the data-safety policy before `COMMIT`: the guard's
/// snapshots are steps of the migration's own transaction.
fn guarded(
    run: &mut Run<'_, '_>,
    step: Step<'_>,
    policy: SafetyPolicy,
    note: Option<&str>,
) -> Result<(), Stop> {
    let (migration, sql) = (step.migration, step.section().sql());
    let settings = run.settings;
    let started = std::time::Instant::now();
    let begin = run.begin_sql()
        + &run.still_locked_sql()
        + &settings.timeouts_sql(migration)
        + crate::history::MARK_STARTED;
    let before = run
        .client
        .simple_query(&begin)
        .map_err(Error::database("starting a guarded migration"))
        .and_then(|_| safety::before(&mut run.client, &settings.tables, sql));
    let before = match before {
        Ok(before) => before,
        Err(Error::Database { source, .. }) if lock::is_not_ours(&source) => {
            rollback(&mut run.client);
            return Err(Error::BehindTransactionPooler.into());
        }
        Err(error) => {
            rollback(&mut run.client);
            return Err(error.into());
        }
    };
    if let Err(error) = run.client.simple_query(sql) {
        rollback(&mut run.client);
        if connection_gone(&run.client, &error) {
            return Err(Error::ConnectionLost {
                during: during(std::slice::from_ref(&step), ""),
                outside_transaction: false,
                source: error,
            }
            .into());
        }
        if contention::is_contention(&error) {
            return Err(Stop::Contention { error, done: 0 });
        }
        // The SQL went alone, so the server's position is within it.
        let position = message::original_position(&error);
        return Err(failed(run, step, error, position).into());
    }
    let checked = safety::after(&mut run.client, &settings.tables, before, policy, migration)
        .and_then(|violation| match violation {
            Some(violation) => Err(Error::PolicyViolation(Box::new(violation))),
            None => {
                let done = run
                    .recorder()
                    .done_in_transaction(migration, step.direction, note);
                run.client
                    .simple_query(&(done + "COMMIT;"))
                    .map(drop)
                    .map_err(Error::database("recording a guarded migration"))
            }
        });
    if let Err(error) = checked {
        rollback(&mut run.client);
        if let Error::PolicyViolation(violation) = &error {
            let summary = format!("data-safety policy: {}", violation.problems.join("; "));
            let sql = run
                .recorder()
                .failed(migration, step.direction, &summary, None);
            record(run, migration.version(), &sql);
        }
        return Err(error.into());
    }
    run.done(report(migration, started.elapsed()), step.direction);
    Ok(())
}

/// A migration without a DOWN section recorded as rolled back, running none of its SQL.
fn forget(run: &mut Run<'_, '_>, migration: &Migration) -> Result<(), Error> {
    let sql = format!(
        "{}{}{}COMMIT;",
        run.begin_sql(),
        run.still_locked_sql(),
        run.recorder().forgotten(migration)
    );
    if let Err(error) = run.client.simple_query(&sql) {
        rollback(&mut run.client);
        if lock::is_not_ours(&error) {
            return Err(Error::BehindTransactionPooler);
        }
        return Err(Error::database(format!(
            "recording migration {} as rolled back",
            migration.version()
        ))(error));
    }
    run.done(report(migration, Duration::ZERO), Direction::Down);
    Ok(())
}

/// The failure of `migration`'s UP sent alone, as one query (a rehearsal's).
pub(crate) fn failure_in(
    error: postgres::Error,
    migration: &Migration,
) -> Result<MigrationFailure, Error> {
    let position = message::original_position(&error);
    locate::failure(error, Step::up(migration), position)
}

fn report(migration: &Migration, duration: Duration) -> AppliedReport {
    AppliedReport {
        version: migration.version(),
        name: migration.name().to_owned(),
        duration,
    }
}

/// "applying migrations 1 (a) to 9 (i)" or "reverting migration 3 (c)", for messages about
/// the steps of a unit.
fn during(steps: &[Step<'_>], suffix: &str) -> String {
    let verb = match steps[0].direction {
        Direction::Up => "applying",
        Direction::Down => "reverting",
    };
    let (first, last) = (steps[0].migration, steps[steps.len() - 1].migration);
    if steps.len() == 1 {
        format!(
            "{verb} migration {} ({}){suffix}",
            first.version(),
            first.name()
        )
    } else {
        format!(
            "{verb} migrations {} ({}) to {} ({}){suffix}",
            first.version(),
            first.name(),
            last.version(),
            last.name()
        )
    }
}
