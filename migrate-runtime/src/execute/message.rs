//! One simple-query message being built: its text, and where each step's part and each
//! step's own SQL sit in it (in characters, as PostgreSQL counts error positions).

use std::ops::Range;
use std::time::Duration;

use postgres::error::ErrorPosition;
use postgres::SimpleQueryMessage;

use crate::history::MARK_STARTED;
use crate::plan::Step;
use crate::run::{AppliedReport, Run};

/// Where one step sits in a message.
#[derive(Clone, Debug)]
struct Span<'m> {
    step: Step<'m>,
    /// The step's index in its unit.
    index: usize,
    /// Everything the message sends for this step (its `BEGIN`, SQL, history rows, `COMMIT`).
    part: Range<usize>,
    /// The step's own SQL (and the `;` that ends it).
    sql: Range<usize>,
}

/// Which transactions a message opens and closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Transactions {
    /// Each step in its own transaction, with its history rows.
    Each,
    /// Part of one transaction (grouped mode) that this message may open, close, or neither.
    Part { opens: bool, closes: bool },
}

/// A message's text and spans.
#[derive(Debug)]
pub(super) struct Message<'m> {
    text: String,
    chars: usize,
    spans: Vec<Span<'m>>,
}

impl<'m> Message<'m> {
    /// The message for `steps`, which start at index `first` of their unit.
    pub(super) fn new(
        run: &Run<'_, '_>,
        steps: &[Step<'m>],
        first: usize,
        transactions: Transactions,
        note: Option<&str>,
    ) -> Self {
        let mut message = Message {
            text: String::new(),
            chars: 0,
            spans: Vec::with_capacity(steps.len()),
        };
        let recorder = run.recorder();
        let last = steps.len().saturating_sub(1);
        for (offset, step) in steps.iter().enumerate() {
            let part_start = message.chars;
            let opens = match transactions {
                Transactions::Each => true,
                Transactions::Part { opens, .. } => opens && offset == 0,
            };
            if opens {
                message.push(&run.begin_sql());
            }
            if offset == 0 {
                message.push(&run.still_locked_sql());
            }
            // Each step's own lock wait (and the run's statement timeout), for this
            // transaction only.
            message.push(&run.settings.timeouts_sql(step.migration));
            if transactions == Transactions::Each && offset < last {
                // Group commit: the last transaction of the message commits with the session's
                // own setting, and its WAL flush covers every commit before it. Nothing is
                // reported before that flush (or, when one fails, before the failure row's).
                message.push("SET LOCAL synchronous_commit = off;\n");
            }
            message.push(MARK_STARTED);
            let sql_start = message.chars;
            message.push(step.section().sql());
            // A newline ends a trailing `--` comment; the `;` ends a last statement without one.
            // An error there (an unfinished last statement) is the step's own.
            message.push("\n;\n");
            let sql = sql_start..message.chars;
            // A retried attempt's note goes to the step that waited: the first of a message of
            // separate transactions, every step of a group.
            let note = note.filter(|_| offset == 0 || transactions != Transactions::Each);
            message.push(&recorder.done_in_transaction(step.migration, step.direction, note));
            let closes = match transactions {
                Transactions::Each => true,
                Transactions::Part { closes, .. } => closes && offset == last,
            };
            if closes {
                message.push("COMMIT;\n");
            }
            message.spans.push(Span {
                step: *step,
                index: first + offset,
                part: part_start..message.chars,
                sql,
            });
        }
        message
    }

    fn push(&mut self, text: &str) {
        self.text.push_str(text);
        self.chars += text.chars().count();
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    /// The steps done, with the durations their `RETURNING version, milliseconds` rows give.
    pub(super) fn reports(&self, messages: &[SimpleQueryMessage]) -> Vec<AppliedReport> {
        let mut rows = messages.iter().filter_map(|message| match message {
            SimpleQueryMessage::Row(row) if row.len() == 2 => Some(row),
            _ => None,
        });
        self.spans
            .iter()
            .map(|span| {
                let version = span.step.migration.version().to_string();
                // A migration's own SQL may return two-column rows too: take the next row
                // that names this version.
                let duration = rows
                    .by_ref()
                    .find(|row| row.get(0) == Some(version.as_str()))
                    .and_then(|row| row.get(1)?.parse().ok())
                    .map_or(Duration::ZERO, Duration::from_millis);
                AppliedReport {
                    version: span.step.migration.version(),
                    name: span.step.migration.name().to_owned(),
                    duration,
                }
            })
            .collect()
    }

    /// Where the server's error points: the index (in the unit) of the step whose part of the
    /// message holds the error's position, and, when it falls in the step's own SQL, the
    /// 1-based character position within that SQL.
    pub(super) fn blame(&self, error: &postgres::Error) -> Option<(usize, Option<usize>)> {
        let position = original_position(error)?;
        // PostgreSQL's positions are 1-based: position p is the character at index p - 1.
        let at = position.checked_sub(1)?;
        let span = self.spans.iter().find(|span| span.part.contains(&at))?;
        let within_sql = span.sql.contains(&at).then(|| position - span.sql.start);
        Some((span.index, within_sql))
    }
}

/// The error's position in the query that was sent, if the server gave one.
pub(super) fn original_position(error: &postgres::Error) -> Option<usize> {
    match error.as_db_error()?.position()? {
        ErrorPosition::Original(position) => Some(*position as usize),
        ErrorPosition::Internal { .. } => None,
    }
}
