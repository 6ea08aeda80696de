//! Turning a server error into a failure that points into the migration file: by the
//! server's position when it gives one, else by replaying statement by statement inside a
//! transaction that is rolled back, until the statement that fails is found.

use postgres::Client;

use super::message::original_position;
use super::session::rollback;
use crate::error::{Located, MigrationFailure};
use crate::plan::Step;
use crate::source::statements;
use crate::Error;

/// The failure of `step`. `position` is the error's 1-based character position within the
/// step's SQL, when the server gave one that falls there.
pub(super) fn failure(
    error: postgres::Error,
    step: Step<'_>,
    position: Option<usize>,
) -> Result<MigrationFailure, Error> {
    let Some(db) = error.as_db_error() else {
        // No answer from the server: the connection itself failed.
        return Err(Error::ConnectionLost {
            during: format!(
                "running migration {} ({})",
                step.migration.version(),
                step.migration.name()
            ),
            outside_transaction: !step.section().is_transactional(),
            source: error,
        });
    };
    let section = step.section();
    let (line, column, located) = match position {
        Some(position) => {
            let (line, column) = section.file_position(position);
            (line, Some(column), Located::Position)
        }
        None => (section.line(), None, Located::SectionStart),
    };
    Ok(MigrationFailure {
        version: step.migration.version(),
        name: step.migration.name().to_owned(),
        reverting: step.direction == crate::migration::Direction::Down,
        path: section.path().to_owned(),
        line,
        column,
        located,
        sqlstate: db.code().code().to_owned(),
        message: db.message().to_owned(),
        detail: db.detail().map(str::to_owned),
        hint: db.hint().map(str::to_owned),
        statements: None,
        invalid_indexes: Vec::new(),
    })
}

/// The failure of a statement that ran on its own: `start` is where it starts in the step's
/// SQL, in bytes.
pub(super) fn statement_failure(
    error: postgres::Error,
    step: Step<'_>,
    start: usize,
) -> Result<MigrationFailure, Error> {
    let sql = step.section().sql();
    let before = sql[..start].chars().count();
    let position = original_position(&error).map(|p| before + p);
    let mut failure = failure(error, step, position)?;
    if failure.column.is_none() {
        // No position from the server, but we know which statement it was.
        failure.line = step.section().file_position(before + 1).0;
        failure.located = Located::Statement;
    }
    Ok(failure)
}

/// Whether the statement was cancelled (a cancel request, `statement_timeout`: SQLSTATE 57014).
/// Such a failure is not replayed to locate it: the replay would run the statement again, and
/// wait or sleep again, after the user (or the timeout) asked it to stop.
pub(super) fn was_cancelled(error: &postgres::Error) -> bool {
    error.code() == Some(&postgres::error::SqlState::QUERY_CANCELED)
}

/// What a replay found: the step (an index into the candidates) and the statement that fail.
pub(super) struct Culprit {
    pub(super) index: usize,
    pub(super) start: usize,
    pub(super) error: postgres::Error,
}

/// Replays, inside a transaction opened with `begin` and always rolled back, first the
/// `prelude` queries (the state the candidates ran on) and then each candidate's statements
/// one by one, stopping at the first that fails. `None` when nothing fails: the error did not
/// come from a statement (a deferred constraint at `COMMIT`, say), or the prelude failed.
pub(super) fn replay(
    client: &mut Client,
    begin: &str,
    prelude: &[String],
    candidates: &[Step<'_>],
) -> Option<Culprit> {
    let mut culprit = None;
    if client.simple_query(begin).is_ok()
        && prelude
            .iter()
            .all(|query| client.simple_query(query).is_ok())
    {
        'steps: for (index, step) in candidates.iter().enumerate() {
            for statement in statements::split(step.section().sql()) {
                if let Err(error) = client.simple_query(statement.text) {
                    culprit = Some(Culprit {
                        index,
                        start: statement.start,
                        error,
                    });
                    break 'steps;
                }
            }
        }
    }
    rollback(client);
    culprit
}
