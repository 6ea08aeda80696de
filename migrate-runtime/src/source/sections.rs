//! Reading one migration file: its header directives, its `-- migrate:up` / `-- migrate:down`
//! (or `-- UP` / `-- DOWN`) sections, and the checks on each section's statements.

use super::lexer::{Lexer, TokenKind};
use super::position::Cursor;
use super::statements::{self, StatementKind};
use super::Reporter;

/// Whether section markers may appear in a file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Markers {
    /// `001_name.sql`: markers split the file into UP and DOWN; no marker means all UP.
    Allowed,
    /// `.up.sql`, `.down.sql`, diesel's files, `rollback-N.sql`: the whole file is one section.
    Forbidden,
}

/// A header directive and the line it is on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Directive<'a> {
    pub(super) line: u32,
    pub(super) kind: DirectiveKind<'a>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum DirectiveKind<'a> {
    /// `-- migrate:no-transaction` (also sqlx's `-- no-transaction`).
    NoTransaction,
    /// `-- migrate:requires 001, 003`, the list as written.
    Requires(&'a str),
    /// `-- migrate:env production, staging`, the list as written.
    Env(&'a str),
    /// `-- migrate:allow rule, rule`: lint rules this migration breaks on purpose.
    Allow(&'a str),
    /// `-- migrate:lock-timeout 30s` or `off`, as written.
    LockTimeout(&'a str),
    /// `-- migrate:phase post-deploy` (or `pre-deploy`), as written.
    Phase(&'a str),
    /// `-- migrate:out-of-order ok`, its argument as written.
    OutOfOrder(&'a str),
    /// `-- migrate:replaces 3 sha256:...`, as written (one replaced migration per line).
    Replaces(&'a str),
}

/// A section as it appears in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct RawSection<'a> {
    /// The section's text: from the line after its marker (or the file's start) to the next
    /// marker (or the file's end).
    pub(super) text: &'a str,
    /// The 1-based line on which `text` starts.
    pub(super) line: u32,
    /// `transaction:false` / `transaction:true` on dbmate's marker line.
    pub(super) transaction_option: Option<bool>,
}

/// A file split into its parts.
#[derive(Debug, Default)]
pub(super) struct SplitFile<'a> {
    pub(super) directives: Vec<Directive<'a>>,
    pub(super) up: Option<RawSection<'a>>,
    pub(super) down: Option<RawSection<'a>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Direction {
    Up,
    Down,
}

struct Marker {
    direction: Direction,
    line: u32,
    /// Byte offsets of the marker line's start and of the line after it.
    line_start: usize,
    next_line_start: usize,
    transaction_option: Option<bool>,
}

const MARKER_HELP: &str = "a migration file is: optional header comments and directives, \
    `-- migrate:up`, the UP SQL, then optionally `-- migrate:down` and the DOWN SQL";

/// Splits `text` (already normalised: no BOM, LF line endings) into header directives and
/// sections, reporting every structural problem. Returns `None` when the structure is too
/// broken to check further.
pub(super) fn split_file<'a>(
    text: &'a str,
    markers: Markers,
    report: &mut Reporter<'_>,
) -> Option<SplitFile<'a>> {
    let errors_before = report.count();
    let mut found: Vec<Marker> = Vec::new();
    let mut directives = Vec::new();
    let mut first_sql: Option<(usize, u32)> = None;
    let mut line = 1u32;
    let mut line_is_blank = true;
    let mut copy = CopyFromStdin::default();
    // The line of the last psql meta-command: the rest of it is no SQL.
    let mut meta_line = 0;

    for token in Lexer::new(text) {
        // No SQL token is a backslash (PostgreSQL has no such operator; inside strings and
        // comments it is part of their token), so one here is psql's, wherever it stands.
        if token.kind == TokenKind::Other && token.text == "\\" {
            meta_command(text, token.start, line, line_is_blank, report);
            meta_line = line;
        }
        if let Some(copy_line) = copy.observe(&token, line) {
            report.error(
                Some(copy_line),
                "`COPY ... FROM stdin` with inline data is not supported: the rows after it are psql input, not SQL, and the runner sends only SQL",
                Some("convert the rows to INSERT statements (`pg_dump --inserts` or `--column-inserts` writes them), or load the data outside migrations"),
            );
            // What follows is data, not SQL: nothing more can be read from the file.
            break;
        }
        if token.kind == TokenKind::LineComment && line_is_blank {
            let comment = token.text[2..].trim();
            let in_header = first_sql.is_none() && found.is_empty();
            if let Some(marker) = parse_marker(comment, line, token.start, text, report) {
                if markers == Markers::Forbidden {
                    report.error(
                        Some(line),
                        format!("section marker `{}` in a file that is a single section", token.text.trim()),
                        Some("in this layout each file holds one section; the DOWN SQL goes in its own file"),
                    );
                }
                found.push(marker);
            } else if let Some(kind) = parse_directive(comment, line, in_header, report) {
                directives.push(Directive { line, kind });
            }
        }
        if !token.is_trivia() && line != meta_line {
            first_sql.get_or_insert((token.start, line));
        }
        if let TokenKind::Unterminated(_) = token.kind {
            // Reported per section by `check_section`; line counting ends here.
            break;
        }
        match token.text.rfind('\n') {
            Some(last) => {
                line += token.text.matches('\n').count() as u32;
                line_is_blank = token.text[last + 1..].trim().is_empty();
            }
            None => line_is_blank &= token.kind == TokenKind::Whitespace,
        }
    }

    let split = if markers == Markers::Forbidden || found.is_empty() {
        SplitFile {
            directives,
            up: Some(RawSection {
                text,
                line: 1,
                transaction_option: None,
            }),
            down: None,
        }
    } else {
        sections_from_markers(text, &found, first_sql, directives, report)?
    };
    (report.count() == errors_before).then_some(split)
}

/// Recognises `COPY ... FROM STDIN ...;` as its tokens go by.
#[derive(Default)]
struct CopyFromStdin {
    /// Significant tokens of the current statement seen so far.
    seen: usize,
    /// The statement starts with `COPY`.
    is_copy: bool,
    /// The previous significant token was `FROM`.
    after_from: bool,
    /// `FROM STDIN` was seen.
    from_stdin: bool,
    /// The line of the statement's `COPY`.
    line: u32,
}

impl CopyFromStdin {
    /// The line of the `COPY` when `token` ends a `COPY ... FROM STDIN` statement.
    fn observe(&mut self, token: &super::lexer::Token<'_>, line: u32) -> Option<u32> {
        if token.is_trivia() {
            return None;
        }
        if token.kind == TokenKind::Semicolon {
            let ends_copy = (self.is_copy && self.from_stdin).then_some(self.line);
            *self = CopyFromStdin::default();
            return ends_copy;
        }
        if self.seen == 0 && token.is_keyword("copy") {
            self.is_copy = true;
            self.line = line;
        }
        self.seen += 1;
        if self.is_copy {
            self.from_stdin |= self.after_from && token.is_keyword("stdin");
            self.after_from = token.is_keyword("from");
        }
        None
    }
}

/// Reports the psql meta-command (`\i file`, `\set ...`) whose backslash is at `start`.
fn meta_command(text: &str, start: usize, line: u32, starts_line: bool, report: &mut Reporter<'_>) {
    let rest = &text[start..];
    let command = rest[..rest.find('\n').unwrap_or(rest.len())].trim_end();
    let name = command[1..]
        .split(|c: char| c.is_whitespace() || c == '\\')
        .next()
        .unwrap_or_default();
    let help = match name {
        "i" | "ir" | "include" | "include_relative" => {
            "inline the included file's SQL here, or make it a separate migration"
        }
        "set" if command.to_ascii_uppercase().contains("ON_ERROR_STOP") => {
            "delete the line: `\\set ON_ERROR_STOP` is not needed, every error stops the migration"
        }
        "c" | "connect" => {
            "delete the line: migrations run on the database the runner connects to; migrate another database with its own migrations directory and database URL"
        }
        "." => "delete the line: `\\.` ends the inline data of `COPY ... FROM stdin`, which migrations do not support",
        _ => "delete the line, or write what it does in SQL",
    };
    let help = if starts_line {
        help
    } else {
        "psql runs the SQL before it on the line, then the command: keep the SQL (ending it with `;`) and delete the command"
    };
    report.error(
        Some(line),
        format!("psql meta-command `{command}`: migrations are plain SQL, run without psql"),
        Some(help),
    );
}

fn sections_from_markers<'a>(
    text: &'a str,
    found: &[Marker],
    first_sql: Option<(usize, u32)>,
    directives: Vec<Directive<'a>>,
    report: &mut Reporter<'_>,
) -> Option<SplitFile<'a>> {
    let first = &found[0];
    if let Some((offset, line)) = first_sql {
        if offset < first.line_start {
            report.error(
                Some(line),
                format!("SQL before the first section marker (line {})", first.line),
                Some("only comments and blank lines may come before `-- migrate:up`; move this SQL below it"),
            );
        }
    }
    let mut split = SplitFile {
        directives,
        ..SplitFile::default()
    };
    let mut up_line = None;
    let mut down_line = None;
    for (index, marker) in found.iter().enumerate() {
        let end = found
            .get(index + 1)
            .map_or(text.len(), |next| next.line_start);
        let section = RawSection {
            text: &text[marker.next_line_start.min(end)..end],
            line: marker.line + 1,
            transaction_option: marker.transaction_option,
        };
        match marker.direction {
            Direction::Up => {
                if let Some(first) = up_line {
                    report.error(
                        Some(marker.line),
                        format!("a second UP marker (the first is on line {first})"),
                        Some(MARKER_HELP),
                    );
                } else if let Some(down) = down_line {
                    report.error(
                        Some(marker.line),
                        format!("the UP marker comes after the DOWN marker on line {down}"),
                        Some("put the UP section first, then `-- migrate:down`"),
                    );
                }
                up_line.get_or_insert(marker.line);
                split.up.get_or_insert(section);
            }
            Direction::Down => {
                if let Some(first) = down_line {
                    report.error(
                        Some(marker.line),
                        format!("a second DOWN marker (the first is on line {first})"),
                        Some(MARKER_HELP),
                    );
                }
                down_line.get_or_insert(marker.line);
                split.down.get_or_insert(section);
            }
        }
    }
    if up_line.is_none() {
        report.error(
            down_line,
            "a DOWN section but no UP marker",
            Some("add `-- migrate:up` and the migration's SQL above `-- migrate:down`"),
        );
        return None;
    }
    Some(split)
}

/// `-- UP`, `-- DOWN`, `-- migrate:up [transaction:false]`, `-- migrate:down [...]`.
fn parse_marker(
    comment: &str,
    line: u32,
    line_start_hint: usize,
    text: &str,
    report: &mut Reporter<'_>,
) -> Option<Marker> {
    let lower = comment.to_ascii_lowercase();
    let (direction, options) = match lower.as_str() {
        "up" => (Direction::Up, ""),
        "down" => (Direction::Down, ""),
        _ => {
            let (word, options) = lower
                .split_once(char::is_whitespace)
                .unwrap_or((&lower, ""));
            let direction = match word {
                "migrate:up" => Direction::Up,
                "migrate:down" => Direction::Down,
                _ => return None,
            };
            (direction, options)
        }
    };
    let mut transaction_option = None;
    for option in options.split_whitespace() {
        match option {
            "transaction:false" => transaction_option = Some(false),
            "transaction:true" => transaction_option = Some(true),
            other => report.error(
                Some(line),
                format!("unknown option `{other}` on a section marker"),
                Some("the only marker option is `transaction:false` (or `transaction:true`)"),
            ),
        }
    }
    let line_start = text[..line_start_hint].rfind('\n').map_or(0, |i| i + 1);
    let next_line_start = text[line_start_hint..]
        .find('\n')
        .map_or(text.len(), |i| line_start_hint + i + 1);
    Some(Marker {
        direction,
        line,
        line_start,
        next_line_start,
        transaction_option,
    })
}

const KNOWN_DIRECTIVES: &str =
    "known directives: `-- migrate:no-transaction`, `-- migrate:requires 001, 002`, `-- migrate:env production`, `-- migrate:allow destructive`, `-- migrate:lock-timeout 30s`, `-- migrate:phase post-deploy`, `-- migrate:out-of-order ok`";

fn parse_directive<'a>(
    comment: &'a str,
    line: u32,
    in_header: bool,
    report: &mut Reporter<'_>,
) -> Option<DirectiveKind<'a>> {
    let kind = if comment.eq_ignore_ascii_case("no-transaction") {
        DirectiveKind::NoTransaction
    } else {
        let body = comment
            .get(..8)
            .filter(|prefix| prefix.eq_ignore_ascii_case("migrate:"))
            .map(|_| &comment[8..])?;
        let (name, args) = body
            .split_once(char::is_whitespace)
            .map_or((body, ""), |(name, args)| (name, args.trim()));
        match name.to_ascii_lowercase().as_str() {
            "no-transaction" if args.is_empty() => DirectiveKind::NoTransaction,
            "no-transaction" => {
                report.error(
                    Some(line),
                    "`-- migrate:no-transaction` takes no arguments",
                    None::<&str>,
                );
                return None;
            }
            "requires" => DirectiveKind::Requires(args),
            "env" => DirectiveKind::Env(args),
            "allow" => DirectiveKind::Allow(args),
            "lock-timeout" => DirectiveKind::LockTimeout(args),
            "phase" => DirectiveKind::Phase(args),
            "out-of-order" => DirectiveKind::OutOfOrder(args),
            "replaces" => DirectiveKind::Replaces(args),
            _ => {
                report.error(
                    Some(line),
                    format!("unknown directive `-- migrate:{name}`"),
                    Some(KNOWN_DIRECTIVES),
                );
                return None;
            }
        }
    };
    if !in_header {
        report.error(
            Some(line),
            "a directive after the file's header",
            Some("directives go in the comment lines at the top of the file, before `-- migrate:up` and before any SQL"),
        );
        return None;
    }
    Some(kind)
}

/// A section whose statements passed the checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct CheckedSection<'a> {
    /// The SQL to run: the section, minus a whole-section `BEGIN; ... COMMIT;` wrapper.
    pub(super) sql: &'a str,
    /// The 1-based file line on which `sql` starts.
    pub(super) line: u32,
}

/// Checks a section's statements. `None` when a problem was reported, or (for DOWN) when the
/// section holds no statement, which makes the migration irreversible rather than silently
/// reversible by doing nothing.
pub(super) fn check_section<'a>(
    section: RawSection<'a>,
    transactional: bool,
    direction_name: &str,
    report: &mut Reporter<'_>,
) -> Option<CheckedSection<'a>> {
    let text = section.text;
    let mut position = Cursor::new(text, section.line);
    let list: Vec<_> = statements::split(text)
        .map(|s| (s, statements::classify(s.text)))
        .collect();
    // An unterminated string or comment runs to the end of the text, so it can only be in the
    // last statement or in what follows it: look there, not through the whole section again.
    let tail = list.last().map_or(0, |(statement, _)| statement.start);
    if let Some((what, offset)) = statements::find_unterminated(&text[tail..]) {
        report.error(
            Some(position.line_at(tail + offset)),
            format!("unterminated {} starts here", what.describe()),
            Some(
                "close it; everything after it up to the end of the section was read as part of it",
            ),
        );
        return None;
    }
    if list.is_empty() {
        if direction_name == "UP" {
            report.error(
                Some(section.line.saturating_sub(1).max(1)),
                "the UP section is empty",
                Some("write the migration's SQL after the UP marker, or delete the file"),
            );
        }
        return None;
    }

    let wrapped = transactional
        && list.len() >= 2
        && matches!(list[0].1, StatementKind::Begin { plain: true })
        && matches!(
            list[list.len() - 1].1,
            StatementKind::Commit { plain: true }
        );
    let (body, sql, line) = if wrapped {
        let body_start = list[0].0.end();
        let body_end = list[list.len() - 1].0.start;
        (
            &list[1..list.len() - 1],
            &text[body_start..body_end],
            position.line_at(body_start),
        )
    } else {
        (&list[..], text, section.line)
    };
    if wrapped && body.is_empty() {
        report.error(
            Some(section.line),
            format!("the {direction_name} section is empty: only `BEGIN;` and `COMMIT;`"),
            Some("write the migration's SQL between them"),
        );
        return None;
    }

    let errors_before = report.count();
    let mut open_block: Option<u32> = None;
    for (statement, kind) in body {
        // Only a statement that is reported or opens a block needs its line (counted forward).
        let mut line = || position.line_at(statement.start);
        match (*kind, transactional) {
            (StatementKind::RefusedInTransaction(name), true) => report.error(
                Some(line()),
                format!("`{name}` cannot run inside a transaction block, and this {direction_name} section runs in one"),
                Some("add `-- migrate:no-transaction` to the file's header so its statements run one by one, outside any transaction (and keep the file to statements that are safe to run that way)"),
            ),
            (kind, true) if kind.is_transaction_control() => report.error(
                Some(line()),
                format!("`{}` inside a migration: the runner already wraps each migration in a transaction", first_words(statement.text)),
                Some("remove it; a single `BEGIN;` ... `COMMIT;` around the whole section is accepted and dropped, and `-- migrate:no-transaction` hands transaction control to the file"),
            ),
            (StatementKind::Begin { .. }, false) => open_block = Some(line()),
            (StatementKind::Commit { .. } | StatementKind::Rollback, false) => open_block = None,
            (StatementKind::RefusedInTransaction(name), false) => {
                if let Some(begin) = open_block {
                    report.error(
                        Some(line()),
                        format!("`{name}` cannot run inside a transaction block, and the `BEGIN` on line {begin} opened one"),
                        Some("end the transaction with `COMMIT;` before this statement"),
                    );
                }
            }
            _ => {}
        }
    }
    (report.count() == errors_before).then_some(CheckedSection { sql, line })
}

/// Why a section of an imported layout (written for sqlx, golang-migrate or diesel, whose
/// authors never wrote our directives) must run outside a transaction, as its tool ran it: it
/// holds a statement PostgreSQL refuses in a transaction block, or it manages its own
/// transactions (anything but one `BEGIN; ... COMMIT;` around the whole section). `None`:
/// it can run in one.
pub(super) fn inferred_no_transaction(section: RawSection<'_>) -> Option<String> {
    let text = section.text;
    let line_of = |offset: usize| section.line + text[..offset].matches('\n').count() as u32;
    let list: Vec<_> = statements::split(text)
        .map(|s| (s, statements::classify(s.text)))
        .collect();
    if let Some((statement, StatementKind::RefusedInTransaction(name))) = list
        .iter()
        .find(|(_, kind)| matches!(kind, StatementKind::RefusedInTransaction(_)))
    {
        return Some(format!(
            "`{name}` on line {} cannot run inside a transaction block",
            line_of(statement.start)
        ));
    }
    let one_wrapper = list.len() >= 2
        && matches!(list[0].1, StatementKind::Begin { plain: true })
        && matches!(
            list[list.len() - 1].1,
            StatementKind::Commit { plain: true }
        )
        && list[1..list.len() - 1]
            .iter()
            .all(|(_, kind)| !kind.is_transaction_control());
    if one_wrapper {
        return None;
    }
    list.iter()
        .find(|(_, kind)| kind.is_transaction_control())
        .map(|(statement, _)| {
            format!(
                "it manages its own transactions (`{}` on line {})",
                first_words(statement.text),
                line_of(statement.start)
            )
        })
}

/// The first two words of a statement, for messages.
fn first_words(statement: &str) -> String {
    let words: Vec<&str> = statement
        .trim_end_matches(';')
        .split_whitespace()
        .take(2)
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Diagnostic;

    fn split(text: &str, markers: Markers) -> (Option<SplitFile<'_>>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let split = split_file(text, markers, &mut Reporter::new("m.sql", &mut diagnostics));
        (split, diagnostics)
    }

    fn errors(text: &str) -> Vec<(Option<u32>, String)> {
        split(text, Markers::Allowed)
            .1
            .into_iter()
            .map(|d| (d.line, d.message))
            .collect()
    }

    fn check(text: &str, transactional: bool) -> (Option<CheckedSection<'_>>, Vec<Diagnostic>) {
        let mut diagnostics = Vec::new();
        let section = RawSection {
            text,
            line: 10,
            transaction_option: None,
        };
        let checked = check_section(
            section,
            transactional,
            "UP",
            &mut Reporter::new("m.sql", &mut diagnostics),
        );
        (checked, diagnostics)
    }

    #[test]
    fn dbmate_markers_split_sections() {
        let text = "-- header\n-- migrate:up\nCREATE TABLE t ();\n-- migrate:down\nDROP TABLE t;\n";
        let (split, diagnostics) = split(text, Markers::Allowed);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let split = split.unwrap();
        let up = split.up.unwrap();
        let down = split.down.unwrap();
        assert_eq!(up.text, "CREATE TABLE t ();\n");
        assert_eq!(up.line, 3);
        assert_eq!(down.text, "DROP TABLE t;\n");
        assert_eq!(down.line, 5);
    }

    #[test]
    fn seed_style_markers_are_case_insensitive() {
        let text = "-- up\nSELECT 1;\n--DOWN  \nSELECT 2;";
        let split = split(text, Markers::Allowed).0.unwrap();
        assert_eq!(split.up.unwrap().text, "SELECT 1;\n");
        assert_eq!(split.down.unwrap().text, "SELECT 2;");
        // A comment that merely starts with the word is not a marker.
        let split = self::split("-- Up next: users\nSELECT 1;", Markers::Allowed)
            .0
            .unwrap();
        assert_eq!(split.up.unwrap().line, 1);
        assert!(split.down.is_none());
    }

    #[test]
    fn no_marker_means_the_whole_file_is_up() {
        let text = "-- just a comment\nCREATE TABLE t ();\n";
        let split = split(text, Markers::Allowed).0.unwrap();
        assert_eq!(split.up.unwrap().text, text);
        assert!(split.down.is_none());
    }

    #[test]
    fn markers_inside_strings_and_bodies_do_not_count() {
        let text = "-- migrate:up\nCREATE FUNCTION f() RETURNS int AS $$\n-- migrate:down\nSELECT 1 $$ LANGUAGE sql;\n/*\n-- migrate:down\n*/\n";
        let split = split(text, Markers::Allowed).0.unwrap();
        assert!(split.down.is_none());
        let text = "-- migrate:up\nSELECT 1; -- migrate:down\n";
        assert!(self::split(text, Markers::Allowed)
            .0
            .unwrap()
            .down
            .is_none());
    }

    #[test]
    fn marker_options() {
        let text = "-- migrate:up transaction:false\nSELECT 1;\n-- migrate:down\nSELECT 2;\n";
        let split = split(text, Markers::Allowed).0.unwrap();
        assert_eq!(split.up.unwrap().transaction_option, Some(false));
        assert_eq!(split.down.unwrap().transaction_option, None);
        assert_eq!(
            errors("-- migrate:up fast\nSELECT 1;"),
            vec![(
                Some(1),
                "unknown option `fast` on a section marker".to_owned()
            )]
        );
    }

    #[test]
    fn structural_errors_name_their_lines() {
        assert_eq!(
            errors("SELECT 0;\n-- migrate:up\nSELECT 1;"),
            vec![(
                Some(1),
                "SQL before the first section marker (line 2)".to_owned()
            )]
        );
        assert_eq!(
            errors("-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;"),
            vec![(
                Some(3),
                "a second UP marker (the first is on line 1)".to_owned()
            )]
        );
        assert_eq!(
            errors("-- migrate:up\nSELECT 1;\n-- migrate:down\n-- migrate:down\n"),
            vec![(
                Some(4),
                "a second DOWN marker (the first is on line 3)".to_owned()
            )]
        );
        assert_eq!(
            errors("-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;"),
            vec![(
                Some(3),
                "the UP marker comes after the DOWN marker on line 1".to_owned()
            )]
        );
        assert_eq!(
            errors("-- migrate:down\nSELECT 1;"),
            vec![(Some(1), "a DOWN section but no UP marker".to_owned())]
        );
    }

    #[test]
    fn directives_in_the_header() {
        let text = "-- migrate:no-transaction\n-- migrate:requires 001, 003\n-- migrate:env production\n-- migrate:up\nSELECT 1;";
        let (split, diagnostics) = split(text, Markers::Allowed);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let kinds: Vec<_> = split
            .unwrap()
            .directives
            .into_iter()
            .map(|d| d.kind)
            .collect();
        assert_eq!(
            kinds,
            vec![
                DirectiveKind::NoTransaction,
                DirectiveKind::Requires("001, 003"),
                DirectiveKind::Env("production")
            ]
        );
        // sqlx's spelling, in a file without markers.
        let split = self::split("-- no-transaction\nVACUUM;", Markers::Forbidden)
            .0
            .unwrap();
        assert_eq!(split.directives[0].kind, DirectiveKind::NoTransaction);
    }

    #[test]
    fn directive_errors() {
        assert_eq!(
            errors("-- migrate:transactional\n-- migrate:up\nSELECT 1;"),
            vec![(
                Some(1),
                "unknown directive `-- migrate:transactional`".to_owned()
            )]
        );
        assert_eq!(
            errors("-- migrate:up\nSELECT 1;\n-- migrate:no-transaction\n"),
            vec![(Some(3), "a directive after the file's header".to_owned())]
        );
        assert_eq!(
            errors("SELECT 1;\n-- migrate:env production\n"),
            vec![(Some(2), "a directive after the file's header".to_owned())]
        );
    }

    #[test]
    fn psql_meta_commands_are_errors_naming_their_lines() {
        let text = "\\set ON_ERROR_STOP on\n-- migrate:up\nSELECT 1;\n  \\i other.sql\n\\connect db\nSELECT 2; \\gset\n";
        let (split, diagnostics) = split(text, Markers::Allowed);
        assert!(split.is_none());
        let found: Vec<_> = diagnostics
            .iter()
            .map(|d| (d.line, d.message.as_str()))
            .collect();
        assert_eq!(
            found,
            vec![
                (
                    Some(1),
                    "psql meta-command `\\set ON_ERROR_STOP on`: migrations are plain SQL, run without psql"
                ),
                (
                    Some(4),
                    "psql meta-command `\\i other.sql`: migrations are plain SQL, run without psql"
                ),
                (
                    Some(5),
                    "psql meta-command `\\connect db`: migrations are plain SQL, run without psql"
                ),
                (
                    Some(6),
                    "psql meta-command `\\gset`: migrations are plain SQL, run without psql"
                ),
            ]
        );
        // After SQL on its line, the help says to keep the SQL, end it and drop the command;
        // done as it says, the line is accepted.
        assert!(diagnostics[3]
            .help
            .as_deref()
            .unwrap()
            .contains("keep the SQL"));
        let fixed = text.replace("SELECT 2; \\gset", "SELECT 2;");
        let fixed = fixed.replace("\\set ON_ERROR_STOP on\n", "");
        let fixed = fixed.replace("  \\i other.sql\n\\connect db\n", "");
        let (split_fixed, fixed_diagnostics) = self::split(&fixed, Markers::Allowed);
        assert!(
            fixed_diagnostics.is_empty() && split_fixed.is_some(),
            "{fixed_diagnostics:?}"
        );
        assert!(diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("every error stops the migration"));
        assert!(diagnostics[1].help.as_deref().unwrap().contains("inline"));
    }

    #[test]
    fn backslashes_in_strings_comments_and_bodies_are_not_meta_commands() {
        let text = "SELECT E'\\n\\\\i x', '\\i';\n/*\n\\i x\n*/\n-- \\set x\nCREATE FUNCTION f() RETURNS text AS $$\n\\i x\n$$ LANGUAGE sql;\nSELECT 'a\n\\i b';\n";
        let (split, diagnostics) = split(text, Markers::Allowed);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert!(split.is_some());
    }

    #[test]
    fn copy_from_stdin_with_inline_data_is_refused_on_its_line() {
        let text = "-- migrate:up\nCREATE TABLE t (a int, b text);\nCOPY public.t (a, b) FROM stdin;\n1\tit's\n2\t\\N\n\\.\n\nSELECT 1;\n-- migrate:down\nDROP TABLE t;\n";
        let (split, diagnostics) = split(text, Markers::Allowed);
        assert!(split.is_none());
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].line, Some(3));
        assert!(diagnostics[0]
            .message
            .starts_with("`COPY ... FROM stdin` with inline data is not supported"));
        assert!(diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("pg_dump --inserts"));
        // Other COPY forms are SQL the server runs.
        for ok in [
            "COPY t TO stdout;\nSELECT 1;\n",
            "COPY t FROM '/data/t.csv' WITH (FORMAT csv);\n",
            "SELECT 'COPY t FROM stdin;';\n",
        ] {
            let (split, diagnostics) = self::split(ok, Markers::Allowed);
            assert!(diagnostics.is_empty(), "{ok}: {diagnostics:?}");
            assert!(split.is_some());
        }
    }

    #[test]
    fn markers_are_refused_where_each_file_is_one_section() {
        let (_, diagnostics) = split("SELECT 1;\n-- migrate:down\nSELECT 2;", Markers::Forbidden);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].line, Some(2));
    }

    #[test]
    fn begin_commit_wrapper_is_dropped() {
        let text = "\nBEGIN;\n\nCREATE TABLE t ();\nCOMMIT;\n";
        let (checked, diagnostics) = check(text, true);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let checked = checked.unwrap();
        assert_eq!(checked.sql, "\n\nCREATE TABLE t ();\n");
        // The section starts on line 10; `BEGIN;` is on line 11, and the kept SQL starts
        // right after it.
        assert_eq!(checked.line, 11);
    }

    #[test]
    fn transaction_control_that_is_not_a_wrapper() {
        let (checked, diagnostics) = check("CREATE TABLE t ();\nCOMMIT;\n", true);
        assert!(checked.is_none());
        assert_eq!(diagnostics[0].line, Some(11));
        assert!(
            diagnostics[0].message.contains("`COMMIT`"),
            "{diagnostics:?}"
        );

        let (_, diagnostics) = check(
            "BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n",
            true,
        );
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");

        let (_, diagnostics) = check(
            "BEGIN ISOLATION LEVEL SERIALIZABLE;\nSELECT 1;\nCOMMIT;",
            true,
        );
        assert!(
            diagnostics[0].message.contains("`BEGIN ISOLATION`"),
            "{diagnostics:?}"
        );

        let (_, diagnostics) = check("BEGIN;\nSELECT 1;\nROLLBACK;", true);
        assert_eq!(diagnostics.len(), 2, "{diagnostics:?}");
    }

    #[test]
    fn refused_statements_in_transactional_sections() {
        let (checked, diagnostics) =
            check("SELECT 1;\nCREATE INDEX CONCURRENTLY i ON t (x);\n", true);
        assert!(checked.is_none());
        assert_eq!(diagnostics[0].line, Some(11));
        assert!(diagnostics[0].message.contains("CREATE INDEX CONCURRENTLY"));
        assert!(diagnostics[0]
            .help
            .as_deref()
            .unwrap()
            .contains("-- migrate:no-transaction"));
        // Strings and comments that mention the command are fine.
        let (checked, _) = check(
            "COMMENT ON TABLE t IS 'use CREATE INDEX CONCURRENTLY; later';\n-- VACUUM;\n",
            true,
        );
        assert!(checked.is_some());
    }

    #[test]
    fn no_transaction_sections_keep_their_own_transactions() {
        let (checked, diagnostics) = check(
            "CREATE INDEX CONCURRENTLY i ON t (x);\nBEGIN;\nSELECT 1;\nCOMMIT;\n",
            false,
        );
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        assert!(checked.unwrap().sql.contains("BEGIN;"));
        let (_, diagnostics) = check("BEGIN;\nVACUUM t;\nCOMMIT;\n", false);
        assert_eq!(diagnostics[0].line, Some(11));
        assert!(diagnostics[0].message.contains("line 10"));
    }

    #[test]
    fn empty_and_unterminated_sections() {
        let (_, diagnostics) = check("-- nothing yet\n", true);
        assert_eq!(diagnostics[0].message, "the UP section is empty");
        let (_, diagnostics) = check("BEGIN;\nCOMMIT;\n", true);
        assert!(diagnostics[0]
            .message
            .contains("only `BEGIN;` and `COMMIT;`"));
        let (_, diagnostics) = check("SELECT 1;\nCREATE FUNCTION f() AS $$ SELECT 1;\n", true);
        assert_eq!(diagnostics[0].line, Some(11));
        assert!(diagnostics[0].message.contains("dollar-quoted"));
    }

    #[test]
    fn an_empty_down_section_is_irreversible_not_an_error() {
        let mut diagnostics = Vec::new();
        let section = RawSection {
            text: "\n-- nothing to undo\n",
            line: 4,
            transaction_option: None,
        };
        let checked = check_section(
            section,
            true,
            "DOWN",
            &mut Reporter::new("m.sql", &mut diagnostics),
        );
        assert!(checked.is_none());
        assert!(diagnostics.is_empty());
    }

    #[test]
    fn random_files_never_panic_and_errors_have_lines_in_the_file() {
        let mut inputs: Vec<String> = crate::source::random_sql::inputs(5_000).collect();
        // Give the marker and directive paths their share of inputs.
        for (index, input) in inputs.iter_mut().enumerate() {
            match index % 4 {
                0 => input.insert_str(0, "-- migrate:up\n"),
                1 => input.push_str("\n-- migrate:down\nSELECT 1;"),
                2 => input.insert_str(0, "-- migrate:no-transaction\n-- UP\n"),
                _ => {}
            }
        }
        for input in &inputs {
            let lines = input.matches('\n').count() as u32 + 1;
            let (split, mut diagnostics) = split(input, Markers::Allowed);
            if let Some(split) = split {
                for (section, name) in [(split.up, "UP"), (split.down, "DOWN")] {
                    let Some(section) = section else { continue };
                    let mut reporter = Reporter::new("m.sql", &mut diagnostics);
                    if let Some(checked) = check_section(section, true, name, &mut reporter) {
                        assert!(input.contains(checked.sql));
                        assert!(checked.line <= lines);
                    }
                }
            }
            for diagnostic in diagnostics {
                let line = diagnostic.line.unwrap_or(1);
                assert!((1..=lines).contains(&line), "{diagnostic} in {input:?}");
            }
        }
    }
}
