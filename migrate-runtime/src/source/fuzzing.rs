//! The invariants the fuzz targets (`migrate-runtime/fuzz`) and the property tests check, one
//! function per parser, panicking on a violation. Not a stable API.
//!
//! They live here, not in the fuzz crate, so they can reach the private parsers (file names,
//! whole files) and so the corpus replay in `tests/parser_properties.rs` runs exactly the
//! checks the fuzzer ran.

use super::directory::{self, UpFile};
use super::file_name::{self, Layout, MigrationFile};
use super::lexer::{Lexer, Token, TokenKind};
use super::sections::{self, Markers, RawSection};
use super::statements::{self, StatementKind};
use super::{Diagnostic, Reporter};
use crate::{Checksum, Section};

/// A directory entry's name: the migration-file parser, the diesel directory parser and
/// both version readers.
pub fn check_file_name(data: &[u8]) {
    let name = String::from_utf8_lossy(data);
    let name = name.as_ref();
    let lower = name.to_ascii_lowercase();
    match file_name::parse_file_name(name) {
        Ok(None) => assert!(
            file_name::is_ignored(name) || !lower.ends_with(".sql"),
            "{name:?} was skipped although it is a visible .sql file"
        ),
        Ok(Some(file)) => {
            // The parts are the whole name: nothing dropped, nothing invented.
            let (rebuilt, version) = match file {
                MigrationFile::Single { version, name } => {
                    (format!("{version}_{name}.sql"), version)
                }
                MigrationFile::Up { version, name } => {
                    (format!("{version}_{name}.up.sql"), version)
                }
                MigrationFile::Down { version, name } => {
                    (format!("{version}_{name}.down.sql"), version)
                }
                MigrationFile::Rollback { version } => (format!("rollback-{version}.sql"), version),
            };
            assert_eq!(rebuilt, name, "the parts of {name:?} do not rebuild it");
            check_numeric_version(version);
        }
        Err(why) => {
            assert!(
                !file_name::is_ignored(name) && lower.ends_with(".sql"),
                "{name:?} is not ours to judge, yet was refused: {why}"
            );
            assert!(
                why.contains('`'),
                "{name:?}: the message shows no example: {why}"
            );
        }
    }
    if let Some((version, migration)) = file_name::parse_diesel_dir_name(name) {
        assert_eq!(format!("{version}_{migration}"), name);
        assert!(
            version.starts_with(|c: char| c.is_ascii_digit()),
            "{name:?}"
        );
        // Whatever the directory name, reading its version must not panic; its result is
        // checked like any other text's just below.
        check_diesel_version(version);
    }
    check_diesel_version(name);
    check_numeric_version(name);
}

/// `numeric_version` is `str::parse` with the crate's message: an error means the text is
/// not a non-negative BIGINT, a value means the digits read back to it.
fn check_numeric_version(text: &str) {
    match file_name::numeric_version(text) {
        // `i64::from_str` also accepts a sign, which never reaches this function from the
        // parsers (they pass digits only), so only digit strings are compared.
        Ok(value) if text.bytes().all(|b| b.is_ascii_digit()) => {
            let significant = text.trim_start_matches('0');
            let expected = if significant.is_empty() {
                "0"
            } else {
                significant
            };
            assert_eq!(value.to_string(), expected, "{text:?}");
        }
        Ok(_) => {}
        Err(why) => assert!(why.contains("BIGINT"), "{text:?}: {why}"),
    }
}

/// `diesel_version` pads the digits on the right to 18 places: a value means exactly that,
/// an error means the text is not 1 to 18 digits with dashes.
fn check_diesel_version(text: &str) {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    let well_formed =
        !digits.is_empty() && digits.len() <= 18 && digits.bytes().all(|b| b.is_ascii_digit());
    match file_name::diesel_version(text) {
        Ok(value) => {
            assert!(well_formed, "{text:?} was read as {value}");
            assert_eq!(format!("{value:018}"), format!("{digits:0<18}"), "{text:?}");
        }
        Err(why) => {
            assert!(!well_formed, "{text:?} was refused: {why}");
            assert!(why.contains('`'), "{text:?}: {why}");
        }
    }
}

/// SQL text: the lexer, the statement splitter, `classify` and `find_unterminated`.
pub fn check_sql(data: &[u8]) {
    let sql = String::from_utf8_lossy(data);
    let sql = sql.as_ref();
    let tokens: Vec<Token<'_>> = Lexer::new(sql).collect();
    check_tokens(sql, &tokens);
    check_statements(sql, &tokens);
    let unterminated = statements::find_unterminated(sql);
    match tokens.last().map(|t| t.kind) {
        Some(TokenKind::Unterminated(what)) => {
            let last = tokens.last().expect("matched above");
            assert_eq!(unterminated, Some((what, last.start)), "{sql:?}");
        }
        _ => assert_eq!(unterminated, None, "{sql:?}"),
    }
    let _ = statements::classify(sql);
}

/// Tokens are non-empty, contiguous, cover the input, and each looks like its kind.
fn check_tokens(sql: &str, tokens: &[Token<'_>]) {
    let mut offset = 0;
    for (index, token) in tokens.iter().enumerate() {
        assert_eq!(
            token.start, offset,
            "gap or overlap before {token:?} in {sql:?}"
        );
        assert!(!token.text.is_empty(), "empty token at {offset} in {sql:?}");
        assert_eq!(&sql[token.start..token.end()], token.text);
        offset = token.end();
        let text = token.text;
        let shaped = match token.kind {
            TokenKind::Whitespace => text.chars().all(|c| " \t\n\r\x0B\x0C".contains(c)),
            TokenKind::LineComment => text.starts_with("--") && !text.contains('\n'),
            TokenKind::BlockComment => {
                text.starts_with("/*") && text.ends_with("*/") && text.len() >= 4
            }
            TokenKind::String => text.len() >= 2 && text.ends_with('\''),
            TokenKind::QuotedIdentifier => text.len() >= 2 && text.ends_with('"'),
            TokenKind::DollarString => {
                let tag_end = 1 + text[1..].find('$').expect("a dollar quote has two `$`");
                let delimiter = &text[..=tag_end];
                text.len() >= 2 * delimiter.len() && text.ends_with(delimiter)
            }
            TokenKind::Semicolon => text == ";",
            TokenKind::OpenParen => text == "(",
            TokenKind::CloseParen => text == ")",
            TokenKind::Parameter => {
                text.starts_with('$') && text[1..].bytes().all(|b| b.is_ascii_digit())
            }
            TokenKind::Other => text.chars().count() == 1,
            TokenKind::Word | TokenKind::Number => true,
            TokenKind::Unterminated(_) => {
                assert_eq!(index, tokens.len() - 1, "{token:?} is not last in {sql:?}");
                true
            }
        };
        assert!(shaped, "{token:?} does not look like its kind in {sql:?}");
    }
    assert_eq!(
        offset,
        sql.len(),
        "the tokens stop short of the end of {sql:?}"
    );
}

/// The splitter's contract: statements are ordered, non-overlapping slices that start and end
/// on significant tokens; everything between them is whitespace, comments or empty
/// statements' `;`; every statement but the last ends with `;`; and a statement split again
/// on its own is itself.
fn check_statements(sql: &str, tokens: &[Token<'_>]) {
    let list: Vec<_> = statements::split(sql).collect();
    let mut tokens = tokens.iter().peekable();
    let mut previous_end = 0;
    for (index, statement) in list.iter().enumerate() {
        assert!(
            statement.start >= previous_end,
            "overlap at {} in {sql:?}",
            statement.start
        );
        assert_eq!(&sql[statement.start..statement.end()], statement.text);
        // The separator before it: only trivia and `;`.
        while let Some(token) = tokens.next_if(|t| t.start < statement.start) {
            assert!(
                token.is_trivia() || token.kind == TokenKind::Semicolon,
                "{token:?} belongs to no statement in {sql:?}"
            );
            assert!(
                token.end() <= statement.start,
                "{token:?} straddles a statement start"
            );
        }
        let inside: Vec<&Token<'_>> =
            std::iter::from_fn(|| tokens.next_if(|t| t.start < statement.end())).collect();
        let (first, last) = (inside[0], inside[inside.len() - 1]);
        assert_eq!(first.start, statement.start, "{sql:?}");
        assert_eq!(
            last.end(),
            statement.end(),
            "a statement ends inside a token in {sql:?}"
        );
        assert!(
            !first.is_trivia() && first.kind != TokenKind::Semicolon,
            "{sql:?}"
        );
        assert!(!last.is_trivia(), "{sql:?}");
        if index + 1 < list.len() {
            assert_eq!(last.kind, TokenKind::Semicolon, "{statement:?} in {sql:?}");
        }
        let again: Vec<_> = statements::split(statement.text).collect();
        assert_eq!(again.len(), 1, "{statement:?} splits into {again:?}");
        assert_eq!((again[0].start, again[0].text), (0, statement.text));
        let _ = statements::classify(statement.text);
        previous_end = statement.end();
    }
    for token in tokens {
        assert!(
            token.is_trivia() || token.kind == TokenKind::Semicolon,
            "{token:?} after the last statement belongs to none in {sql:?}"
        );
    }
}

/// A migration file's bytes: decoding, the section splitter (markers and directives), and the
/// whole-file parse in every layout, for UP and for down files.
pub fn check_file(data: &[u8]) {
    let mut diagnostics = Vec::new();
    let decoded = directory::decode(data, &mut Reporter::new("m.sql", &mut diagnostics));
    let Some(text) = decoded else {
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        let lines = 1 + data.iter().filter(|b| **b == b'\n').count() as u32;
        check_lines(&diagnostics, lines, data);
        return;
    };
    assert!(diagnostics.is_empty());
    // A Windows checkout of the same file (BOM, CRLF) reads as the same text, so it has the
    // same checksum.
    let windows = format!("\u{FEFF}{}", text.replace('\n', "\r\n"));
    let again = directory::decode(
        windows.as_bytes(),
        &mut Reporter::new("m.sql", &mut diagnostics),
    );
    assert_eq!(
        again.as_deref(),
        Some(text.as_str()),
        "CRLF and BOM change the text"
    );

    check_split(&text);
    for layout in [
        Layout::SingleFile,
        Layout::UpDownFiles,
        Layout::DieselDirectories,
    ] {
        for run_in_transaction in [true, false] {
            let first = parse_up(&text, layout, run_in_transaction);
            check_up(&text, &first);
            // Same input, same result: the checksum is a function of the text.
            let second = parse_up(&text, layout, run_in_transaction);
            assert_eq!(
                first
                    .0
                    .as_ref()
                    .map(|f| (f.checksum, &f.up, &f.down, &f.requires)),
                second
                    .0
                    .as_ref()
                    .map(|f| (f.checksum, &f.up, &f.down, &f.requires)),
            );
            assert_eq!(first.1, second.1);
        }
    }
    for (no_transaction, imported) in [(false, false), (true, false), (false, true)] {
        let mut diagnostics = Vec::new();
        let down = directory::parse_down_text(
            &text,
            no_transaction,
            imported,
            &mut Reporter::new("m.down.sql", &mut diagnostics),
        );
        check_lines(&diagnostics, line_count(&text), text.as_bytes());
        if let Some(down) = &down {
            assert!(diagnostics.is_empty(), "{diagnostics:?}");
            check_section(&text, down);
        }
    }
}

fn parse_up(
    text: &str,
    layout: Layout,
    run_in_transaction: bool,
) -> (Option<UpFile>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let parsed = directory::parse_up_text(
        text,
        layout,
        run_in_transaction,
        None,
        &mut Reporter::new("m.sql", &mut diagnostics),
    );
    (parsed, diagnostics)
}

fn check_up(text: &str, (parsed, diagnostics): &(Option<UpFile>, Vec<Diagnostic>)) {
    check_lines(diagnostics, line_count(text), text.as_bytes());
    let Some(file) = parsed else {
        assert!(
            !diagnostics.is_empty(),
            "refused without a reason: {text:?}"
        );
        return;
    };
    assert!(diagnostics.is_empty(), "accepted despite {diagnostics:?}");
    check_section(text, &file.up);
    if let Some(down) = &file.down {
        check_section(text, down);
    }
    let shown = file.checksum.to_string();
    assert_eq!(Checksum::parse(&shown), Some(file.checksum));
    assert!(file.checksum.matches(&shown));
    for (_, line) in &file.requires {
        assert!(
            (1..=line_count(text)).contains(line),
            "requires on line {line}"
        );
    }
}

/// A checked section's SQL is a piece of the file, starts on the line it claims, holds at
/// least one statement, and holds none a transaction would refuse when it runs in one.
fn check_section(text: &str, section: &Section) {
    let sql = section.sql();
    let on_its_line = text
        .match_indices(sql)
        .any(|(offset, _)| 1 + text[..offset].matches('\n').count() as u32 == section.line());
    assert!(
        on_its_line,
        "{sql:?} is not on line {} of {text:?}",
        section.line()
    );
    let kinds: Vec<StatementKind> = statements::split(sql)
        .map(|s| statements::classify(s.text))
        .collect();
    assert!(
        !kinds.is_empty(),
        "an accepted section without statements: {text:?}"
    );
    if section.is_transactional() {
        for kind in kinds {
            assert!(
                !kind.is_transaction_control()
                    && !matches!(kind, StatementKind::RefusedInTransaction(_)),
                "{kind:?} accepted in a transactional section: {text:?}"
            );
        }
    }
}

/// `split_file` directly: the sections are ordered slices of the file that start on the
/// lines they claim, and directives are on lines of the file, in order.
fn check_split(text: &str) {
    for markers in [Markers::Allowed, Markers::Forbidden] {
        let mut diagnostics = Vec::new();
        let split =
            sections::split_file(text, markers, &mut Reporter::new("m.sql", &mut diagnostics));
        check_lines(&diagnostics, line_count(text), text.as_bytes());
        let Some(split) = split else { continue };
        let up = split.up.expect("split_file always yields an UP section");
        let up_range = slice_range(text, up);
        if let Some(down) = split.down {
            let down_range = slice_range(text, down);
            assert!(
                up_range.end <= down_range.start,
                "DOWN overlaps UP in {text:?}"
            );
            assert!(markers == Markers::Allowed);
        }
        let mut previous = 0;
        for directive in &split.directives {
            assert!(directive.line > previous, "{:?}", split.directives);
            assert!(directive.line <= line_count(text));
            previous = directive.line;
        }
    }
}

/// Where `section.text` lies in `text`; checks that it is a slice of it whose first line is
/// `section.line`. (A section that starts at the very end of the file, after a marker on the
/// last line, is empty and its line is one past the file's last line.)
fn slice_range(text: &str, section: RawSection<'_>) -> std::ops::Range<usize> {
    let start = (section.text.as_ptr() as usize).wrapping_sub(text.as_ptr() as usize);
    assert!(
        start + section.text.len() <= text.len(),
        "{section:?} is not part of {text:?}"
    );
    assert_eq!(&text[start..start + section.text.len()], section.text);
    let line = 1 + text[..start].matches('\n').count() as u32;
    let empty_at_end = section.text.is_empty() && start == text.len();
    assert!(
        section.line == line || (empty_at_end && section.line == line + 1),
        "{section:?} starts on line {line} of {text:?}"
    );
    start..start + section.text.len()
}

fn line_count(text: &str) -> u32 {
    1 + text.matches('\n').count() as u32
}

/// Every diagnostic names a line of the file (or none), and says what is wrong.
fn check_lines(diagnostics: &[Diagnostic], lines: u32, input: &[u8]) {
    for diagnostic in diagnostics {
        let line = diagnostic.line.unwrap_or(1);
        assert!(
            (1..=lines).contains(&line),
            "{diagnostic} is outside the file's {lines} lines: {:?}",
            String::from_utf8_lossy(input)
        );
        assert!(!diagnostic.message.is_empty());
    }
}
